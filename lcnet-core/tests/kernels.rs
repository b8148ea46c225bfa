//! Every kernel against its scalar `reference` (PaddleClas layouts, f64
//! accumulation), over odd sizes, stride-2 and per-axis stride edges, channel
//! counts that are not multiples of any vector width, and both kernel sizes.
//! Every kernel with ISA-specific code runs on every tier this CPU supports
//! (`Isa::all_supported()`), whatever `LCNET_ISA` says.

mod common;

use common::{assert_close, to_nchw, to_nhwc, Rng};
use lcnet_core::__private::kernels::{conv_out_len, dwconv, head, pwconv, se, stem, Activation, Isa};

const ATOL: f32 = 2e-5;
const RTOL: f32 = 2e-5;

/// The tiers every CPU of the target has are found, so the tests below
/// cover them (NEON is in every aarch64 CPU).
#[test]
fn baseline_tiers_are_detected() {
    use lcnet_core::__private::kernels::Tier;
    assert!(Isa::all_supported().contains(&Isa::SCALAR));
    if cfg!(target_arch = "aarch64") {
        assert_eq!(Isa::detect(Tier::Neon).map(Isa::tier), Some(Tier::Neon));
    }
    if cfg!(target_arch = "x86_64") {
        assert_eq!(Isa::detect(Tier::Neon), None);
    }
}

#[test]
fn stem_matches_reference() {
    let mut rng = Rng::new(1);
    for &(n, h, w, cout, k, stride) in &[
        (1, 7, 9, 8, 3, [2, 2]),
        (2, 16, 16, 16, 3, [2, 2]),
        (1, 1, 1, 5, 3, [2, 2]),
        (3, 11, 4, 24, 5, [1, 2]),
        (1, 5, 13, 17, 3, [2, 1]),
        (1, 33, 47, 40, 3, [1, 1]),
        (2, 9, 10, 64, 3, [2, 2]),
        (1, 6, 7, 72, 3, [2, 2]),
        // AVX-512: one to three registers of outputs per pixel; 56 = seven
        // 8-lane registers.
        (1, 12, 21, 32, 3, [2, 2]),
        (1, 10, 9, 48, 5, [1, 1]),
        (1, 8, 13, 56, 3, [2, 2]),
        // NEON: every count of 4-lane registers that is not above.
        (1, 9, 11, 4, 3, [2, 2]),
        (1, 9, 11, 12, 3, [2, 2]),
        (1, 9, 11, 20, 3, [1, 2]),
        (1, 9, 11, 28, 3, [2, 2]),
        (1, 9, 11, 36, 5, [2, 2]),
        (1, 9, 11, 44, 3, [2, 2]),
        (1, 9, 11, 52, 3, [2, 2]),
        (1, 9, 11, 60, 3, [2, 2]),
    ] {
        let shape = [n, 3, h, w];
        let x = rng.vec(n * 3 * h * w, 2.0);
        let wt = rng.vec(cout * 3 * k * k, 0.5);
        let b = rng.vec(cout, 0.5);
        let want = stem::reference(&x, shape, &wt, &b, k, stride, Activation::HardSwish);
        let p = stem::StemWeights::pack(&wt, b, 3, k, stride, Activation::HardSwish);
        let (oh, ow) = p.out_hw(h, w);
        for isa in Isa::all_supported() {
            let mut out = vec![f32::NAN; n * oh * ow * cout];
            stem::run_isa(isa, &p, &x, n, h, w, &mut out);
            let got = to_nchw(&out, [n, cout, oh, ow]);
            assert_close(&got, &want, ATOL, RTOL, &format!("{isa:?} stem {shape:?} k{k} s{stride:?}"));
        }
    }
}

#[test]
fn depthwise_matches_reference_at_every_stride_and_border() {
    let mut rng = Rng::new(2);
    for k in [3, 5] {
        for stride in [[1, 1], [2, 2], [2, 1], [1, 2]] {
            for &(n, c, h, w) in &[
                (1, 8, 7, 7),
                (2, 13, 9, 6),
                (1, 40, 1, 1),
                (1, 3, 2, 5),
                (3, 24, 14, 15),
                (1, 77, 6, 5),
                (1, 16, 3, 23),
                (1, 56, 5, 12),
                (2, 9, 4, 19),
            ] {
                let shape = [n, c, h, w];
                let x = rng.vec(n * c * h * w, 2.0);
                let wt = rng.vec(c * k * k, 0.5);
                let b = rng.vec(c, 0.5);
                let act = if c % 2 == 0 { Activation::HardSwish } else { Activation::Relu };
                let want = dwconv::reference(&x, shape, &wt, &b, k, stride, act);
                let p = dwconv::DwWeights::pack(&wt, b, k, stride, act);
                let (oh, ow) = p.out_hw(h, w);
                assert_eq!((oh, ow), (conv_out_len(h, k, stride[0]), conv_out_len(w, k, stride[1])));
                for isa in Isa::all_supported() {
                    let mut out = vec![f32::NAN; n * oh * ow * c];
                    dwconv::run_isa(isa, &p, &to_nhwc(&x, shape), n, h, w, &mut out);
                    let got = to_nchw(&out, [n, c, oh, ow]);
                    assert_close(&got, &want, ATOL, RTOL, &format!("{isa:?} dw {shape:?} k{k} s{stride:?}"));
                }
            }
        }
    }
}

#[test]
fn pointwise_matches_reference_on_ragged_tiles() {
    let mut rng = Rng::new(3);
    // Pixel counts around the register tile, channel counts around the
    // output block and the real PP-LCNet shapes (7x7x512 -> 512 etc.).
    for &(n, h, w, cin, cout) in &[
        (1, 1, 1, 8, 8),
        (1, 3, 1, 5, 7),
        (2, 3, 3, 16, 63),
        (1, 5, 7, 33, 65),
        (1, 7, 7, 512, 512),
        (3, 4, 5, 22, 130),
        (1, 14, 14, 128, 256),
        // K in several blocks (ragged last block and panel), M in several row blocks.
        (1, 5, 5, 650, 33),
        // Several K blocks also where the AVX-512 kernel packs (blocks of up
        // to 1024: 704 + 704 + 692).
        (1, 5, 5, 2100, 33),
        (1, 7, 7, 1280, 24),
        (2, 15, 20, 24, 20),
    ] {
        let shape = [n, cin, h, w];
        let x = rng.vec(n * cin * h * w, 2.0);
        let wt = rng.vec(cout * cin, 1.0 / (cin as f32).sqrt());
        let b = rng.vec(cout, 0.5);
        let want = pwconv::reference(&x, shape, &wt, &b, Activation::HardSwish);
        let p = pwconv::PwWeights::pack(&wt, b, cin, Activation::HardSwish);
        for isa in Isa::all_supported() {
            let mut out = vec![f32::NAN; n * h * w * cout];
            pwconv::run_isa(isa, &p, &to_nhwc(&x, shape), n * h * w, &mut out);
            let got = to_nchw(&out, [n, cout, h, w]);
            assert_close(&got, &want, 1e-4, 1e-4, &format!("{isa:?} pw {shape:?} -> {cout}"));
        }
    }
}

#[test]
fn squeeze_excite_matches_reference() {
    let mut rng = Rng::new(4);
    for &(n, c, mid, h, w) in &[(1, 8, 2, 3, 3), (2, 88, 22, 7, 5), (1, 256, 64, 1, 1), (3, 13, 3, 4, 9)] {
        let shape = [n, c, h, w];
        let x = rng.vec(n * c * h * w, 2.0);
        let (conv1, b1) = (rng.vec(mid * c, 1.0), rng.vec(mid, 0.2));
        let (conv2, b2) = (rng.vec(c * mid, 2.0), rng.vec(c, 1.0));
        let want = se::reference(&x, shape, &conv1, &b1, &conv2, &b2);
        let p = se::SeWeights::pack(&conv1, b1, &conv2, b2);
        for isa in Isa::all_supported() {
            let mut got = to_nhwc(&x, shape);
            let mut scratch = vec![0.0; n * p.scratch_per_image()];
            se::run_isa(isa, &p, &mut got, n, h * w, &mut scratch);
            assert_close(&to_nchw(&got, shape), &want, ATOL, RTOL, &format!("{isa:?} se {shape:?} mid {mid}"));
        }
    }
}

#[test]
fn head_matches_reference_with_dropout_folded() {
    let mut rng = Rng::new(5);
    for &(n, c, hidden, classes, h, w) in &[(1, 16, 32, 4, 2, 3), (2, 128, 1280, 10, 7, 7), (3, 9, 20, 1, 1, 1)] {
        let shape = [n, c, h, w];
        let x = rng.vec(n * c * h * w, 2.0);
        let last_conv = rng.vec(hidden * c, 1.0);
        let fc = rng.vec(hidden * classes, 0.1);
        let fc_bias = rng.vec(classes, 0.1);
        let want = head::reference(&x, shape, &last_conv, hidden, Activation::HardSwish, 0.8, &fc, &fc_bias);
        // Pack as the loader does: transpose last_conv, fold 0.8 into the FC.
        let mut conv = vec![0.0; c * hidden];
        for j in 0..hidden {
            for i in 0..c {
                conv[i * hidden + j] = last_conv[j * c + i];
            }
        }
        let p = head::HeadWeights {
            conv: conv.into(),
            conv_bias: vec![],
            in_channels: c,
            hidden,
            act: Activation::HardSwish,
            fc: fc.iter().map(|v| v * 0.8).collect::<Vec<f32>>().into(),
            fc_bias,
        };
        for isa in Isa::all_supported() {
            let mut scratch = vec![0.0; n * p.scratch_per_image()];
            let mut got = vec![f32::NAN; n * classes];
            head::run_isa(isa, &p, &to_nhwc(&x, shape), n, h * w, &mut scratch, &mut got);
            assert_close(&got, &want, 1e-4, 1e-4, &format!("{isa:?} head {shape:?} -> {hidden} -> {classes}"));
        }
    }
}
