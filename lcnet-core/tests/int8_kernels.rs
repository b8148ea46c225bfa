//! The int8 kernels against a plain integer reference written here from the
//! definition (`u8 x i8` sums in `i32`, then the requantisation in `f32`),
//! bit for bit, on every tier this CPU supports (`Isa::all_supported()`),
//! over sizes that are not multiples of any register or panel.

mod common;

use common::Rng;
use lcnet_core::__private::kernels::int8::pwconv::{run_isa, QPwWeights};
use lcnet_core::__private::kernels::int8::{Requant, NARROW_MAX, NARROW_MIN, WEIGHT_MAX, WEIGHT_MIN};
use lcnet_core::__private::kernels::{Activation, Isa};

/// The definition: `act(sum((x - zx) * w) * scale + bias)`, then
/// `round_ties_even(clamp(y * (1 / out_scale) + out_zero, 0, 255))`.
fn reference(x: &[u8], w: &[i8], k: usize, in_zero: u8, rq: &Requant) -> Vec<u8> {
    let n = rq.scale.len();
    let mut out = Vec::with_capacity(x.len() / k.max(1) * n);
    for row in x.chunks_exact(k) {
        for o in 0..n {
            let sum: i32 = row
                .iter()
                .zip(&w[o * k..(o + 1) * k])
                .map(|(&x, &w)| (i32::from(x) - i32::from(in_zero)) * i32::from(w))
                .sum();
            out.push(requantised(sum, o, rq));
        }
    }
    out
}

/// Channel `o`'s output for `sum`, as `Requant` defines it: fused
/// multiply-adds, the activation folded into the last one.
fn requantised(sum: i32, o: usize, rq: &Requant) -> u8 {
    let y = (sum as f32).mul_add(rq.scale[o], rq.bias[o]);
    let inv = 1.0 / rq.out_scale[o];
    let zero = f32::from(rq.out_zero[o]);
    let v = match rq.act {
        Activation::None => y.mul_add(inv, zero),
        Activation::HardSwish => {
            let f = inv / 6.0;
            y.mul_add(y.mul_add(f, 3.0 * f).clamp(0.0, 6.0 * f), zero)
        }
        other => panic!("not used here: {other:?}"),
    };
    v.clamp(0.0, 255.0).round_ties_even() as u8
}

/// Random weights in `lo..=hi`, an input zero point and a requantisation
/// (outputs quantised per channel: each its own scale and zero point),
/// output zero points from `least_zero` (at 40 and more HardSwish stores
/// need no lower clamp, and the kernels leave it out).
fn random_case(
    rng: &mut Rng,
    k: usize,
    n: usize,
    act: Activation,
    [lo, hi]: [i8; 2],
    least_zero: u8,
) -> (Vec<i8>, u8, Requant) {
    let span = (i32::from(hi) - i32::from(lo) + 1) as u64;
    let w = (0..n * k).map(|_| (i64::from(lo) + (rng.next_u64() % span) as i64) as i8).collect();
    let in_zero = (rng.next_u64() % 256) as u8;
    // Scales that put typical sums around the output's range, so outputs
    // spread over 0..=255 and also clip at both ends.
    let unit = 4.0 / (k.max(1) as f32 * f32::from(hi) * 40.0);
    let rq = Requant {
        scale: (0..n).map(|_| unit * (0.5 + rng.uniform().abs())).collect(),
        bias: (0..n).map(|_| rng.uniform() * 2.0).collect(),
        act,
        out_scale: (0..n).map(|_| 0.02 + rng.uniform().abs() * 0.02).collect(),
        out_zero: (0..n).map(|_| least_zero.max((rng.next_u64() % 256) as u8)).collect(),
    };
    (w, in_zero, rq)
}

#[test]
fn pointwise_int8_equals_the_integer_reference_on_every_tier() {
    let mut rng = Rng::new(8);
    let tiers = Isa::all_supported();
    let mut spread = [false; 256];
    for &(pixels, k, n) in &[
        (1, 16, 16),
        (7, 3, 5),
        (5, 4, 8),
        (13, 36, 72),
        (49, 512, 512),
        (100, 64, 24),
        (3, 5, 40),
        (37, 130, 33),
        (196, 128, 256),
        (12, 8, 1),
        (25, 1280, 17),
        // AMX: whole blocks of 32 pixels read in place (16 inputs, one
        // narrow chunk), copied (88 inputs: chunks padded), and blocks of
        // 32 outputs with a lone panel last.
        (96, 16, 32),
        (70, 88, 48),
        (64, 256, 80),
    ] {
        // Full 8-bit weights (the exact wide step without VNNI) and narrow
        // ones (`vpmaddubsw`); HardSwish stores with and without the lower
        // clamp.
        for (act, range, least_zero) in [
            (Activation::HardSwish, [WEIGHT_MIN, WEIGHT_MAX], 0),
            (Activation::HardSwish, [WEIGHT_MIN, WEIGHT_MAX], 40),
            (Activation::None, [WEIGHT_MIN, WEIGHT_MAX], 0),
            (Activation::HardSwish, [NARROW_MIN, NARROW_MAX], 0),
        ] {
            let (w, in_zero, rq) = random_case(&mut rng, k, n, act, range, least_zero);
            let x: Vec<u8> = (0..pixels * k).map(|_| (rng.next_u64() % 256) as u8).collect();
            let want = reference(&x, &w, k, in_zero, &rq);
            want.iter().for_each(|&q| spread[usize::from(q)] = true);
            let packed = QPwWeights::pack(&w, k, in_zero, &rq);
            for &isa in &tiers {
                let mut got = vec![0u8; pixels * n];
                run_isa(isa, &packed, &x, pixels, &mut got);
                if let Some(i) = (0..got.len()).find(|&i| got[i] != want[i]) {
                    panic!(
                        "{}: pixels {pixels} k {k} n {n} {act:?}: output {i} (pixel {}, channel {}) is {}, expected {}",
                        isa.name(),
                        i / n,
                        i % n,
                        got[i],
                        want[i]
                    );
                }
            }
        }
    }
    // The cases reached both ends of the output range and most of between:
    // a kernel that clipped or lost bits would have been seen.
    assert!(spread[0] && spread[255], "outputs never clipped");
    assert!(spread.iter().filter(|&&s| s).count() > 200, "outputs spread over too few values");
}

/// The largest sums: every input 255 and every weight at an end of its
/// range. Narrow weights take the saturating `vpmaddubsw` step to its limit
/// (which must not clip), full ones the wide step.
#[test]
fn extreme_weights_and_inputs_do_not_saturate() {
    let (pixels, k, n) = (9, 64, 32);
    for (weight, in_zero) in
        [(NARROW_MIN, 0u8), (NARROW_MAX, 0), (NARROW_MIN, 255), (WEIGHT_MIN, 0), (WEIGHT_MAX, 0), (WEIGHT_MAX, 128)]
    {
        let w = vec![weight; n * k];
        // The largest sum (inputs 255, zero point 0) maps to 120 steps from
        // the output's zero: a sum clipped by a step in the last percent
        // moves the output by a step.
        let largest = k as f32 * 255.0 * f32::from(weight).abs();
        let rq = Requant {
            scale: vec![1.0 / largest; n],
            bias: vec![0.0; n],
            act: Activation::None,
            out_scale: vec![1.0 / 120.0; n],
            out_zero: vec![128; n],
        };
        let x = vec![255u8; pixels * k];
        let want = reference(&x, &w, k, in_zero, &rq);
        let packed = QPwWeights::pack(&w, k, in_zero, &rq);
        for &isa in &Isa::all_supported() {
            let mut got = vec![0u8; pixels * n];
            run_isa(isa, &packed, &x, pixels, &mut got);
            assert_eq!(got, want, "{}: weights {weight}, input zero point {in_zero}", isa.name());
        }
    }
}

/// Depthwise by the definition: the input padded with its zero point (a
/// real 0), `sum((x - zx) * w)` over the taps, then the requantisation.
fn dw_reference(
    x: &[u8],
    [h, w, c]: [usize; 3],
    wt: &[i8],
    k: usize,
    stride: [usize; 2],
    zx: &[u8],
    rq: &Requant,
) -> Vec<u8> {
    let pad = (k - 1) / 2;
    let (oh, ow) = ((h + 2 * pad - k) / stride[0] + 1, (w + 2 * pad - k) / stride[1] + 1);
    let at = |y: isize, xx: isize, ch: usize| -> i32 {
        if y < 0 || xx < 0 || y >= h as isize || xx >= w as isize {
            i32::from(zx[ch])
        } else {
            i32::from(x[(y as usize * w + xx as usize) * c + ch])
        }
    };
    let mut out = vec![0u8; oh * ow * c];
    for oy in 0..oh {
        for ox in 0..ow {
            for ch in 0..c {
                let mut sum = 0i32;
                for ky in 0..k {
                    for kx in 0..k {
                        let (y, xx) = (
                            (oy * stride[0] + ky) as isize - pad as isize,
                            (ox * stride[1] + kx) as isize - pad as isize,
                        );
                        sum += (at(y, xx, ch) - i32::from(zx[ch])) * i32::from(wt[ch * k * k + ky * k + kx]);
                    }
                }
                out[(oy * ow + ox) * c + ch] = requantised(sum, ch, rq);
            }
        }
    }
    out
}

#[test]
fn depthwise_int8_equals_the_integer_reference_on_every_tier() {
    use lcnet_core::__private::kernels::int8::dwconv::{run_isa, QDwWeights};
    let mut rng = Rng::new(9);
    for (i, &(h, w, c, k, stride)) in [
        (7, 9, 8, 3, [2, 2]),
        (16, 16, 16, 3, [1, 1]),
        (1, 1, 5, 3, [2, 2]),
        (11, 4, 24, 5, [1, 2]),
        (5, 13, 17, 3, [2, 1]),
        (14, 14, 256, 5, [1, 1]),
        (9, 10, 72, 5, [2, 2]),
        (23, 6, 16, 5, [2, 2]),
        (21, 5, 8, 3, [1, 1]),
        (19, 6, 8, 3, [2, 2]),
        (8, 12, 48, 3, [1, 1]),
        (6, 7, 32, 5, [2, 1]),
        (3, 2, 64, 3, [1, 2]),
        (9, 11, 16, 5, [1, 1]),
    ]
    .iter()
    .enumerate()
    {
        // Depthwise sums have k*k terms: scales sized for 9 or 25 inputs.
        // HardSwish (PP-LCNet's; every third case into outputs that need
        // no lower clamp) and, every third case, none: the kernels fix the
        // first at compile time and match any other.
        let act = if i % 3 == 2 { Activation::None } else { Activation::HardSwish };
        let least_zero = if i % 3 == 1 { 40 } else { 0 };
        let (wt, _, rq) = random_case(&mut rng, k * k, c, act, [WEIGHT_MIN, WEIGHT_MAX], least_zero);
        // A zero point per channel, as the stem's output has.
        let zx: Vec<u8> = (0..c).map(|_| (rng.next_u64() % 256) as u8).collect();
        // Two images: the kernel works in blocks of rows that must not
        // mix them up, split over two threads or one.
        let x: Vec<u8> = (0..2 * h * w * c).map(|_| (rng.next_u64() % 256) as u8).collect();
        let (first, second) = x.split_at(h * w * c);
        let mut want = dw_reference(first, [h, w, c], &wt, k, stride, &zx, &rq);
        want.extend(dw_reference(second, [h, w, c], &wt, k, stride, &zx, &rq));
        let packed = QDwWeights::pack(&wt, k, stride, &zx, &rq);
        for (&isa, threads) in Isa::all_supported().iter().flat_map(|isa| [(isa, 1), (isa, 2)]) {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("thread pool");
            let mut got = vec![0u8; want.len()];
            pool.install(|| {
                let mut scratch = vec![0.0; packed.scratch_len(2, h, w)];
                run_isa(isa, &packed, &x, 2, h, w, &mut got, &mut scratch)
            });
            if let Some(i) = (0..got.len()).find(|&i| got[i] != want[i]) {
                panic!(
                    "{} on {threads} threads: 2x{h}x{w}x{c} k{k} {stride:?}: output {i} is {}, expected {}",
                    isa.name(),
                    got[i],
                    want[i]
                );
            }
        }
    }
}

#[test]
fn requantisation_fuses_the_first_multiply_add_on_every_tier() {
    use lcnet_core::__private::kernels::int8::requantise::{requantise, Requantiser};
    // Per channel: a sum and a scale whose product is about 1000 and not an
    // f32, and the bias that puts the product rounded to f32 exactly on
    // 100.5. Rounded twice (multiply, then add) a channel gives 100.5,
    // which rounds to even, 100; fused it gives the exact value, just
    // above 100.5: 101. Outputs of scale 1 and zero point 0 keep the rest
    // exact.
    let mut rng = Rng::new(17);
    let (mut sums, mut scale, mut bias) = (Vec::new(), Vec::new(), Vec::new());
    while sums.len() < 37 {
        let sum = 600.0 + (rng.next_u64() % 300) as f32;
        let s = 1.0 + (rng.next_u64() % (1 << 20)) as f32 / (1 << 21) as f32;
        let exact = f64::from(sum) * f64::from(s);
        if exact - f64::from(sum * s) <= f64::powi(2.0, -17) {
            continue; // fused, 100.5 plus what rounding lost must pass the next f32
        }
        sums.push(sum);
        scale.push(s);
        bias.push(100.5 - sum * s);
    }
    let c = sums.len();
    let rq = Requant { scale, bias, act: Activation::None, out_scale: vec![1.0; c], out_zero: vec![0; c] };
    let p = Requantiser::new(&rq);
    for &isa in &Isa::all_supported() {
        let mut out = vec![0u8; c];
        requantise(isa, &p, &sums, &mut out);
        assert_eq!(out, vec![101u8; c], "{}", isa.name());
    }
}

#[test]
fn int8_stem_quantises_every_row_block_as_the_whole_map() {
    use lcnet_core::__private::kernels::int8::requantise::{requantise, Requantiser};
    use lcnet_core::__private::kernels::int8::stem;
    use lcnet_core::__private::kernels::stem::{run_isa as stem_f32, StemWeights};
    // Two images of 13 x 9 (odd: the last output row and column have
    // padding), 16 outputs; the row blocks must not mix images or rows.
    let mut rng = Rng::new(23);
    let (h, w, cout) = (13, 9, 16);
    let uniform = |rng: &mut Rng| (rng.next_u64() % 2001) as f32 / 1000.0 - 1.0;
    let weights: Vec<f32> = (0..cout * 27).map(|_| uniform(&mut rng)).collect();
    let bias: Vec<f32> = (0..cout).map(|_| uniform(&mut rng)).collect();
    let p = StemWeights::pack(&weights, bias, 3, 3, [2, 2], Activation::HardSwish);
    let rq = Requant {
        scale: vec![1.0; cout],
        bias: vec![0.0; cout],
        act: Activation::None,
        out_scale: vec![0.03; cout],
        out_zero: vec![12; cout],
    };
    let quantiser = Requantiser::new(&rq);
    let input: Vec<f32> = (0..2 * 3 * h * w).map(|_| 2.0 * uniform(&mut rng)).collect();
    let (oh, ow) = p.out_hw(h, w);
    for &isa in &Isa::all_supported() {
        let mut real = vec![0.0; 2 * oh * ow * cout];
        stem_f32(isa, &p, &input, 2, h, w, &mut real);
        let mut want = vec![0u8; real.len()];
        requantise(isa, &quantiser, &real, &mut want);
        for threads in [1, 2] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("thread pool");
            let mut got = vec![0u8; want.len()];
            pool.install(|| {
                let mut scratch = vec![0.0; stem::scratch_len(&p, 2, h, w)];
                stem::run_isa(isa, &p, &quantiser, &input, 2, [h, w], &mut got, &mut scratch)
            });
            assert_eq!(got, want, "{} on {threads} threads", isa.name());
        }
    }
}
