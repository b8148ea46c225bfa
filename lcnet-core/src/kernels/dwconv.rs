//! Depthwise kxk convolution, NHWC, vectorised across channels.
//!
//! Each output pixel starts from the bias and adds one contiguous
//! channel vector per kernel tap; taps that fall into the zero padding are
//! skipped, so borders need no padded copy of the input.

use super::dispatch::Fma;
use super::{conv_out_len, isa, Activation, Isa, Tier};
use crate::aligned::AlignedVec;

/// Folded, packed weights of a depthwise convolution.
#[derive(Debug, Clone)]
pub struct DwWeights {
    /// `[ky][kx][c]`: one channel vector per tap (64-byte aligned).
    pub weight: AlignedVec,
    /// One bias per channel (the folded BatchNorm shift), aligned too.
    pub bias: AlignedVec,
    /// Square kernel size (odd).
    pub kernel: usize,
    /// Stride along (height, width).
    pub stride: [usize; 2],
    /// Activation applied after the bias.
    pub act: Activation,
}

impl DwWeights {
    /// Packs a PaddleClas `[c, 1, k, k]` weight (already BN-folded).
    pub fn pack(c1kk: &[f32], bias: Vec<f32>, kernel: usize, stride: [usize; 2], act: Activation) -> Self {
        let channels = bias.len();
        let taps = kernel * kernel;
        assert_eq!(c1kk.len(), channels * taps, "depthwise weight size");
        let mut weight = AlignedVec::zeroed(c1kk.len());
        for c in 0..channels {
            for t in 0..taps {
                weight[t * channels + c] = c1kk[c * taps + t];
            }
        }
        DwWeights { weight, bias: bias.into(), kernel, stride, act }
    }

    /// Number of channels.
    pub fn channels(&self) -> usize {
        self.bias.len()
    }

    /// Output (height, width) for an input of `h` x `w`.
    pub fn out_hw(&self, h: usize, w: usize) -> (usize, usize) {
        (conv_out_len(h, self.kernel, self.stride[0]), conv_out_len(w, self.kernel, self.stride[1]))
    }
}

/// Runs the depthwise convolution on `batch` NHWC images of `h` x `w`.
pub fn run(p: &DwWeights, input: &[f32], batch: usize, h: usize, w: usize, out: &mut [f32]) {
    run_isa(isa(), p, input, batch, h, w, out)
}

/// [`run`] on a given ISA (tests force each one).
pub fn run_isa(isa: Isa, p: &DwWeights, input: &[f32], batch: usize, h: usize, w: usize, out: &mut [f32]) {
    let c = p.channels();
    let (oh, ow) = p.out_hw(h, w);
    debug_assert_eq!(input.len(), batch * h * w * c);
    debug_assert_eq!(out.len(), batch * oh * ow * c);
    super::threads::for_each_chunk(out, ow * c, |row, out_row| {
        let (img, oy) = (row / oh, row % oh);
        row_isa(isa, p, &input[img * h * w * c..][..h * w * c], h, w, oy, out_row);
    });
}

/// Output row `oy` of one NHWC image of `h` x `w` on a given ISA: `image`
/// holds at least `h * w * channels` values, `out_row` one row's.
pub(crate) fn row_isa(isa: Isa, p: &DwWeights, image: &[f32], h: usize, w: usize, oy: usize, out_row: &mut [f32]) {
    match isa.tier() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: an `Isa` holds only a detected tier; AVX-512 implies AVX2 + FMA.
        Tier::Avx2 | Tier::Avx2Vnni => unsafe { simd::dw_row_avx2(p, image, h, w, oy, out_row) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Tier::Avx512 | Tier::Avx512Vnni | Tier::Avx512Amx => unsafe {
            simd::dw_row_avx512(p, image, h, w, oy, out_row)
        },
        #[cfg(target_arch = "aarch64")]
        // SAFETY: NEON is in every aarch64 CPU.
        Tier::Neon => unsafe { simd::dw_row_neon(p, image, h, w, oy, out_row) },
        _ => dw_row(Isa::SCALAR, p, image, h, w, oy, out_row),
    }
}

/// Hand-vectorised rows, one body for AVX2, AVX-512 and NEON (generic over
/// [`Vector`](crate::kernels::simd::Vector)). Channel blocks of 4, 2 or 1
/// registers (32, 16 or 8 lanes on AVX2; 64, 32, 16 on AVX-512, then one
/// 8-lane block; 16, 8, 4 on NEON) times 2, 4 or 8 neighbouring output
/// pixels at once, so that 8 independent accumulator vectors hide the FMA
/// latency and each weight vector loaded serves several pixels. Border
/// pixels (taps in the padding) go one at a time. From 4 registers of
/// channels up the row goes pixel pair by pixel pair (all channels of each);
/// with fewer, channel block by channel block (all pixels of each). With 32
/// registers (AVX-512, NEON), 3x3 and 5x5 rows of stride 1 go in strips of 8
/// pixels instead (`strips`).
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
mod simd {
    use super::DwWeights;
    #[cfg(target_arch = "aarch64")]
    use crate::kernels::simd::neon::Neon;
    use crate::kernels::simd::Vector;
    #[cfg(target_arch = "x86_64")]
    use crate::kernels::simd::{avx2::Ymm, avx512::Zmm};

    /// Geometry of one output row.
    struct Row {
        img: *const f32,
        wt: *const f32,
        bias: *const f32,
        out: *mut f32,
        c: usize,
        k: usize,
        w: usize,
        sx: usize,
        pad: usize,
        iy0: usize,
        ky: (usize, usize),
    }

    /// One output row of an NHWC image, AVX2 + FMA.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dw_row_avx2(p: &DwWeights, image: &[f32], h: usize, w: usize, oy: usize, out_row: &mut [f32]) {
        // SAFETY: the features are enabled.
        unsafe { dw_row::<Ymm>(p, image, h, w, oy, out_row) }
    }

    /// One output row of an NHWC image, AVX-512.
    ///
    /// # Safety
    /// The CPU must support AVX-512F (and AVX2 + FMA).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")]
    pub unsafe fn dw_row_avx512(p: &DwWeights, image: &[f32], h: usize, w: usize, oy: usize, out_row: &mut [f32]) {
        // SAFETY: the features are enabled.
        unsafe { dw_row::<Zmm>(p, image, h, w, oy, out_row) }
    }

    /// One output row of an NHWC image, NEON.
    ///
    /// # Safety
    /// None beyond the slices' own (NEON is aarch64's baseline).
    #[cfg(target_arch = "aarch64")]
    pub unsafe fn dw_row_neon(p: &DwWeights, image: &[f32], h: usize, w: usize, oy: usize, out_row: &mut [f32]) {
        // SAFETY: NEON is always there.
        unsafe { dw_row::<Neon>(p, image, h, w, oy, out_row) }
    }

    /// One output row of an NHWC image.
    #[inline(always)]
    unsafe fn dw_row<V: Vector>(p: &DwWeights, image: &[f32], h: usize, w: usize, oy: usize, out_row: &mut [f32]) {
        let c = p.channels();
        let k = p.kernel;
        let pad = (k - 1) / 2;
        let ow = out_row.len() / c;
        assert!(image.len() >= h * w * c && p.weight.len() == k * k * c && out_row.len() == ow * c);
        let ky = (pad.saturating_sub(oy * p.stride[0]), k.min(h + pad - oy * p.stride[0]));
        let row = Row {
            img: image.as_ptr(),
            wt: p.weight.as_ptr(),
            bias: p.bias.as_ptr(),
            out: out_row.as_mut_ptr(),
            c,
            k,
            w,
            sx: p.stride[1],
            pad,
            // The input row of kernel row 0 (before subtracting the padding).
            iy0: oy * p.stride[0],
            ky,
        };
        let kx = |ox: usize| (pad.saturating_sub(ox * p.stride[1]), k.min(w + pad - ox * p.stride[1]));
        // 32 registers only (AVX-512, NEON): with 16 the strip's inputs and
        // accumulators do not fit, and AVX2 ran 10-25% slower this way.
        if V::REGISTERS == 32 && row.sx == 1 && c >= V::Tail::LANES && (k == 3 || k == 5) {
            // SAFETY: `strips` keeps every read inside the image and every
            // write inside the row.
            unsafe {
                if k == 3 {
                    strips::<V, 8, 3>(&row, ow, p)
                } else {
                    strips::<V, 8, 5>(&row, ow, p)
                }
            }
            return;
        }
        if c >= 4 * V::LANES {
            // Pixel-major: every channel of two pixels, then the next two, so
            // the input is read in address order. A layer's input was just
            // written by the layer before and is often in DRAM; read
            // channel-block by channel-block (below), each row is fetched in
            // strided pieces the prefetchers follow poorly: 112x112x80 with
            // stride 2 ran 1.3 ms from a cold cache that way, 0.73 ms this way
            // (0.3-0.4 ms warm either way); whole passes 1-2% faster at x2.0
            // and x2.5. Below 4 registers of channels (32 AVX2, 64 AVX-512) a
            // pair holds too few accumulators to hide the FMA latency.
            let mut ox = 0;
            while ox < ow {
                let pair = ox + 2 <= ow && kx(ox) == (0, k) && kx(ox + 1) == (0, k);
                // SAFETY: the pair's taps are inside the image; a single
                // pixel keeps to its kernel columns.
                unsafe { pixel_group::<V>(&row, ox, pair, kx(ox), p) };
                ox += if pair { 2 } else { 1 };
            }
            return;
        }
        let l = V::LANES;
        let mut c0 = 0;
        while c0 < c {
            let left = c - c0;
            // SAFETY: every block stays inside the channels (c0 + lanes <= c),
            // pixels inside the row (ox + P <= ow) and taps inside the image.
            unsafe {
                if left >= 4 * l {
                    sweep::<V, 4, 2>(&row, c0, ow, &kx, p);
                    c0 += 4 * l;
                } else if left >= 2 * l {
                    sweep::<V, 2, 4>(&row, c0, ow, &kx, p);
                    c0 += 2 * l;
                } else if left >= l {
                    sweep::<V, 1, 8>(&row, c0, ow, &kx, p);
                    c0 += l;
                } else if left >= V::Tail::LANES {
                    sweep::<V::Tail, 1, 8>(&row, c0, ow, &kx, p);
                    c0 += V::Tail::LANES;
                } else {
                    for ox in 0..ow {
                        scalar_lanes(&row, c0, left, ox, kx(ox), p);
                    }
                    c0 = c;
                }
            }
        }
    }

    /// A stride-1 row in strips of `P` output pixels, each strip every
    /// channel block in turn (so the input is read in address order, as in
    /// the pixel-major path). Per kernel row, the `P + k - 1` input vectors
    /// under a strip are loaded once and each serves up to `k` outputs: the
    /// tap-by-tap paths load an input vector per FMA and, with a weight
    /// load beside it, are bound by the load ports (14x14x256 5x5: 42
    /// GFLOP/s on AVX-512, where the FMA units give 240). Taps in the
    /// padding read zeros; a strip past the row's end computes its missing
    /// pixels from zeros and does not store them. On AVX-512, against those
    /// paths: 14x14x256 5x5 42 -> 65-86 GFLOP/s, 7x7x512 5x5 47 -> 78,
    /// 112x112x16 3x3 50 -> 58 (`cargo bench --bench kernels`, one run).
    #[inline(always)]
    unsafe fn strips<V: Vector, const P: usize, const K: usize>(row: &Row, ow: usize, p: &DwWeights) {
        let l = V::LANES;
        let mut ox = 0;
        while ox < ow {
            let valid = P.min(ow - ox);
            let mut c0 = 0;
            // SAFETY: forwarded; every block ends at or before `c`.
            unsafe {
                while row.c - c0 >= l {
                    strip::<V, P, K>(row, c0, ox, valid, p);
                    c0 += l;
                }
                if row.c - c0 >= V::Tail::LANES {
                    strip::<V::Tail, P, K>(row, c0, ox, valid, p);
                    c0 += V::Tail::LANES;
                }
                if c0 < row.c {
                    for px in ox..ox + valid {
                        let kx = (row.pad.saturating_sub(px), row.k.min(row.w + row.pad - px));
                        scalar_lanes(row, c0, row.c - c0, px, kx, p);
                    }
                }
            }
            ox += valid;
        }
    }

    /// Output pixels `ox .. ox + valid` (`valid <= P`) of a stride-1 row,
    /// channels `c0 .. c0 + V::LANES`, kernel size `K` (a constant, so the
    /// strip's inputs stay in registers).
    #[inline(always)]
    unsafe fn strip<V: Vector, const P: usize, const K: usize>(
        row: &Row,
        c0: usize,
        ox: usize,
        valid: usize,
        p: &DwWeights,
    ) {
        // SAFETY: the caller keeps `c0 + LANES <= c` and `ox + valid <= ow`;
        // input columns outside `0..w` are never read (zeros instead).
        unsafe {
            let bias = V::load(row.bias.add(c0));
            let mut acc = [bias; P];
            // Input column of strip input `t`: ox + t - pad, t < P + K - 1.
            let first = ox as isize - row.pad as isize;
            for ky in row.ky.0..row.ky.1 {
                let iy = row.iy0 + ky - row.pad;
                let line = row.img.add(iy * row.w * row.c + c0);
                let mut x = [V::zero(); 16];
                for (t, x) in x.iter_mut().enumerate().take(P + K - 1) {
                    let ix = first + t as isize;
                    if ix >= 0 && (ix as usize) < row.w {
                        *x = V::load(line.add(ix as usize * row.c));
                    }
                }
                for kx in 0..K {
                    let wv = V::load(row.wt.add((ky * K + kx) * row.c + c0));
                    for (j, a) in acc.iter_mut().enumerate() {
                        *a = V::mul_add(x[j + kx], wv, *a);
                    }
                }
            }
            for (j, a) in acc.iter().enumerate().take(valid) {
                a.act(p.act).store(row.out.add((ox + j) * row.c + c0));
            }
        }
    }

    /// Every channel of output pixel `ox`, and of `ox + 1` when `pair` (then
    /// every tap of both is inside the image; a single pixel uses the kernel
    /// columns `kx`).
    #[inline(always)]
    unsafe fn pixel_group<V: Vector>(row: &Row, ox: usize, pair: bool, kx: (usize, usize), p: &DwWeights) {
        let l = V::LANES;
        let mut c0 = 0;
        // SAFETY: forwarded from the caller; every block ends at or before `c`.
        unsafe {
            while c0 < row.c {
                let left = row.c - c0;
                if left >= 4 * l {
                    lanes::<V, 4>(row, c0, ox, pair, kx, p);
                    c0 += 4 * l;
                } else if left >= 2 * l {
                    lanes::<V, 2>(row, c0, ox, pair, kx, p);
                    c0 += 2 * l;
                } else if left >= l {
                    lanes::<V, 1>(row, c0, ox, pair, kx, p);
                    c0 += l;
                } else if left >= V::Tail::LANES {
                    lanes::<V::Tail, 1>(row, c0, ox, pair, kx, p);
                    c0 += V::Tail::LANES;
                } else {
                    scalar_lanes(row, c0, left, ox, if pair { (0, row.k) } else { kx }, p);
                    if pair {
                        scalar_lanes(row, c0, left, ox + 1, (0, row.k), p);
                    }
                    c0 = row.c;
                }
            }
        }
    }

    /// Channels `c0 .. c0 + NV` registers of pixel `ox`, and of `ox + 1`
    /// when `pair`.
    #[inline(always)]
    unsafe fn lanes<V: Vector, const NV: usize>(
        row: &Row,
        c0: usize,
        ox: usize,
        pair: bool,
        kx: (usize, usize),
        p: &DwWeights,
    ) {
        // SAFETY: forwarded from the caller.
        unsafe {
            if pair {
                pixels::<V, NV, 2>(row, c0, ox, (0, row.k), p)
            } else {
                pixels::<V, NV, 1>(row, c0, ox, kx, p)
            }
        }
    }

    /// Every output pixel of the row for channels `c0 .. c0 + NV` registers.
    #[inline(always)]
    unsafe fn sweep<V: Vector, const NV: usize, const P: usize>(
        row: &Row,
        c0: usize,
        ow: usize,
        kx: &impl Fn(usize) -> (usize, usize),
        p: &DwWeights,
    ) {
        let mut ox = 0;
        while ox < ow {
            let (lo, hi) = kx(ox);
            // A group of P pixels with every tap inside the image.
            // SAFETY: forwarded; the group check keeps all P pixels in bounds.
            unsafe {
                if lo == 0 && ox + P <= ow && kx(ox + P - 1) == (0, row.k) && hi == row.k {
                    pixels::<V, NV, P>(row, c0, ox, (0, row.k), p);
                    ox += P;
                } else {
                    pixels::<V, NV, 1>(row, c0, ox, (lo, hi), p);
                    ox += 1;
                }
            }
        }
    }

    /// `P` output pixels from `ox`, all with kernel columns `kx`, `NV`
    /// registers of channels.
    #[inline(always)]
    unsafe fn pixels<V: Vector, const NV: usize, const P: usize>(
        row: &Row,
        c0: usize,
        ox: usize,
        kx: (usize, usize),
        p: &DwWeights,
    ) {
        // SAFETY: the caller keeps every offset in bounds.
        unsafe {
            let l = V::LANES;
            let mut acc = [[V::zero(); NV]; P];
            for px in acc.iter_mut() {
                for (v, a) in px.iter_mut().enumerate() {
                    *a = V::load(row.bias.add(c0 + l * v));
                }
            }
            for ky in row.ky.0..row.ky.1 {
                let iy = row.iy0 + ky - row.pad;
                for kxx in kx.0..kx.1 {
                    let wv = row.wt.add((ky * row.k + kxx) * row.c + c0);
                    let weights: [V; NV] = std::array::from_fn(|v| V::load(wv.add(l * v)));
                    for (j, px) in acc.iter_mut().enumerate() {
                        let ix = (ox + j) * row.sx + kxx - row.pad;
                        let x = row.img.add((iy * row.w + ix) * row.c + c0);
                        for (v, a) in px.iter_mut().enumerate() {
                            *a = V::mul_add(V::load(x.add(l * v)), weights[v], *a);
                        }
                    }
                }
            }
            for (j, px) in acc.iter().enumerate() {
                let dst = row.out.add((ox + j) * row.c + c0);
                for (v, a) in px.iter().enumerate() {
                    a.act(p.act).store(dst.add(l * v));
                }
            }
        }
    }

    /// The last channels of one pixel (fewer than the narrowest vector's
    /// lanes), one at a time.
    #[inline(always)]
    unsafe fn scalar_lanes(row: &Row, c0: usize, lanes: usize, ox: usize, kx: (usize, usize), p: &DwWeights) {
        // SAFETY: the caller keeps every offset in bounds.
        unsafe {
            for l in 0..lanes {
                let mut a = *row.bias.add(c0 + l);
                for ky in row.ky.0..row.ky.1 {
                    let iy = row.iy0 + ky - row.pad;
                    for kxx in kx.0..kx.1 {
                        let ix = ox * row.sx + kxx - row.pad;
                        let x = *row.img.add((iy * row.w + ix) * row.c + c0 + l);
                        a = x.mul_add(*row.wt.add((ky * row.k + kxx) * row.c + c0 + l), a);
                    }
                }
                *row.out.add(ox * row.c + c0 + l) = p.act.apply(a);
            }
        }
    }
}

crate::kernels::dispatch::multiversion!(fn dw_row(p: &DwWeights, image: &[f32], h: usize, w: usize, oy: usize, out_row: &mut [f32]) => dw_row_body);

/// One output row of an NHWC image.
#[inline(always)]
fn dw_row_body<F: Fma>(p: &DwWeights, image: &[f32], h: usize, w: usize, oy: usize, out_row: &mut [f32]) {
    let c = p.channels();
    let k = p.kernel;
    let pad = (k - 1) / 2;
    let ow = out_row.len() / c;
    // Kernel rows that land inside the image for this output row.
    let ky_lo = pad.saturating_sub(oy * p.stride[0]);
    let ky_hi = k.min(h + pad - oy * p.stride[0]);
    for ox in 0..ow {
        let kx_lo = pad.saturating_sub(ox * p.stride[1]);
        let kx_hi = k.min(w + pad - ox * p.stride[1]);
        let acc = &mut out_row[ox * c..(ox + 1) * c];
        acc.copy_from_slice(&p.bias);
        for ky in ky_lo..ky_hi {
            let iy = oy * p.stride[0] + ky - pad;
            for kx in kx_lo..kx_hi {
                let ix = ox * p.stride[1] + kx - pad;
                let pixel = &image[(iy * w + ix) * c..][..c];
                let tap = &p.weight[(ky * k + kx) * c..][..c];
                for ((a, &x), &wt) in acc.iter_mut().zip(pixel).zip(tap) {
                    *a = F::mul_add(x, wt, *a);
                }
            }
        }
        p.act.apply_slice(acc);
    }
}

/// Reference depthwise convolution in PaddleClas layouts: NCHW input,
/// `[c, 1, k, k]` weight, NCHW output. The test oracle for [`run`].
pub fn reference(
    input: &[f32],
    [batch, c, h, w]: [usize; 4],
    c1kk: &[f32],
    bias: &[f32],
    kernel: usize,
    stride: [usize; 2],
    act: Activation,
) -> Vec<f32> {
    let (oh, ow) = (conv_out_len(h, kernel, stride[0]), conv_out_len(w, kernel, stride[1]));
    let pad = ((kernel - 1) / 2) as isize;
    let mut out = vec![0.0; batch * c * oh * ow];
    for n in 0..batch {
        for ch in 0..c {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut acc = bias[ch] as f64;
                    for ky in 0..kernel {
                        for kx in 0..kernel {
                            let iy = (oy * stride[0] + ky) as isize - pad;
                            let ix = (ox * stride[1] + kx) as isize - pad;
                            if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                continue;
                            }
                            let x = input[((n * c + ch) * h + iy as usize) * w + ix as usize];
                            acc += x as f64 * c1kk[(ch * kernel + ky) * kernel + kx] as f64;
                        }
                    }
                    out[((n * c + ch) * oh + oy) * ow + ox] = act.apply(acc as f32);
                }
            }
        }
    }
    out
}
