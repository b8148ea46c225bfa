//! The stem: a dense kxk convolution over the NCHW input image, writing NHWC.
//!
//! Reading NCHW here means the public NCHW tensor never needs a separate
//! transpose: the stem is where the layout changes.

use super::dispatch::Fma;
use super::{conv_out_len, isa, Activation, Isa, Tier};
use crate::aligned::AlignedVec;

/// Folded, packed weights of a dense convolution with few input channels.
#[derive(Debug, Clone)]
pub struct StemWeights {
    /// `[(ci * k + ky) * k + kx][out]`: one row of `out_channels` per tap
    /// (64-byte aligned, as the biases).
    pub weight: AlignedVec,
    /// One bias per output channel (the folded BatchNorm shift).
    pub bias: AlignedVec,
    /// Input channels (3 for RGB).
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Square kernel size (odd).
    pub kernel: usize,
    /// Stride along (height, width).
    pub stride: [usize; 2],
    /// Activation applied after the bias.
    pub act: Activation,
}

impl StemWeights {
    /// Packs a PaddleClas `[out, in, k, k]` weight (already BN-folded).
    pub fn pack(
        oihw: &[f32],
        bias: Vec<f32>,
        in_channels: usize,
        kernel: usize,
        stride: [usize; 2],
        act: Activation,
    ) -> Self {
        let out_channels = bias.len();
        let taps = in_channels * kernel * kernel;
        assert_eq!(oihw.len(), out_channels * taps, "stem weight size");
        let mut weight = AlignedVec::zeroed(oihw.len());
        for o in 0..out_channels {
            for t in 0..taps {
                weight[t * out_channels + o] = oihw[o * taps + t];
            }
        }
        StemWeights { weight, bias: bias.into(), in_channels, out_channels, kernel, stride, act }
    }

    /// Output (height, width) for an input of `h` x `w`.
    pub fn out_hw(&self, h: usize, w: usize) -> (usize, usize) {
        (conv_out_len(h, self.kernel, self.stride[0]), conv_out_len(w, self.kernel, self.stride[1]))
    }
}

/// Runs the stem on `batch` NCHW images of `h` x `w`; writes NHWC into `out`
/// (`batch * oh * ow * out_channels` values).
pub fn run(p: &StemWeights, input: &[f32], batch: usize, h: usize, w: usize, out: &mut [f32]) {
    run_isa(isa(), p, input, batch, h, w, out)
}

/// [`run`] on a given ISA (tests force each one).
pub fn run_isa(isa: Isa, p: &StemWeights, input: &[f32], batch: usize, h: usize, w: usize, out: &mut [f32]) {
    let (oh, ow) = p.out_hw(h, w);
    let image_len = p.in_channels * h * w;
    debug_assert_eq!(input.len(), batch * image_len);
    debug_assert_eq!(out.len(), batch * oh * ow * p.out_channels);
    super::threads::for_each_chunk(out, ow * p.out_channels, |row, out_row| {
        let (img, oy) = (row / oh, row % oh);
        row_isa(isa, p, &input[img * image_len..][..image_len], h, w, oy, out_row);
    });
}

/// Output row `oy` of one NCHW image of `h` x `w` (`image`) on a given ISA.
pub(crate) fn row_isa(isa: Isa, p: &StemWeights, image: &[f32], h: usize, w: usize, oy: usize, out_row: &mut [f32]) {
    let cout = p.out_channels;
    match isa.tier() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: an `Isa` holds only a detected tier; the output count fits.
        Tier::Avx512 | Tier::Avx512Vnni | Tier::Avx512Amx if cout.is_multiple_of(8) && cout <= 64 => unsafe {
            simd::stem_row_avx512(p, image, h, w, oy, out_row)
        },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Tier::Avx2 | Tier::Avx2Vnni if cout.is_multiple_of(8) && cout <= 64 => unsafe {
            simd::stem_row_avx2(p, image, h, w, oy, out_row)
        },
        #[cfg(target_arch = "aarch64")]
        // SAFETY: NEON is in every aarch64 CPU; the output count fits.
        Tier::Neon if cout.is_multiple_of(4) && cout <= 64 => unsafe {
            simd::stem_row_neon(p, image, h, w, oy, out_row)
        },
        _ => stem_row(isa, p, image, h, w, oy, out_row),
    }
}

/// Hand-vectorised rows for up to 64 output channels (a multiple of 8; of 4
/// on NEON): all of a pixel's outputs stay in registers over the `in * k *
/// k` taps. One body for AVX2, AVX-512 and NEON (generic over
/// [`Vector`](crate::kernels::simd::Vector)); AVX-512 takes output counts
/// that are a multiple of 16 in 16-lane registers (x1.0's 16 outputs: one
/// register per pixel, 8 pixels at once), others in 8-lane ones.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
mod simd {
    use super::StemWeights;
    #[cfg(target_arch = "aarch64")]
    use crate::kernels::simd::neon::Neon;
    use crate::kernels::simd::Vector;
    #[cfg(target_arch = "x86_64")]
    use crate::kernels::simd::{avx2::Ymm, avx512::Zmm};

    /// One output row, AVX2 + FMA.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA; `out_channels` is a multiple of 8, at most 64.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn stem_row_avx2(p: &StemWeights, image: &[f32], h: usize, w: usize, oy: usize, out_row: &mut [f32]) {
        // SAFETY: forwarded from the caller. `P` pixels at once keep about 8
        // independent accumulator vectors in flight.
        unsafe {
            match p.out_channels / 8 {
                1 => row::<Ymm, 1, 8>(p, image, h, w, oy, out_row),
                2 => row::<Ymm, 2, 4>(p, image, h, w, oy, out_row),
                3 => row::<Ymm, 3, 2>(p, image, h, w, oy, out_row),
                4 => row::<Ymm, 4, 2>(p, image, h, w, oy, out_row),
                5 => row::<Ymm, 5, 1>(p, image, h, w, oy, out_row),
                6 => row::<Ymm, 6, 1>(p, image, h, w, oy, out_row),
                7 => row::<Ymm, 7, 1>(p, image, h, w, oy, out_row),
                _ => row::<Ymm, 8, 1>(p, image, h, w, oy, out_row),
            }
        }
    }

    /// One output row, AVX-512.
    ///
    /// # Safety
    /// The CPU must support AVX-512F (and AVX2 + FMA); `out_channels` is a
    /// multiple of 8, at most 64.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")]
    pub unsafe fn stem_row_avx512(p: &StemWeights, image: &[f32], h: usize, w: usize, oy: usize, out_row: &mut [f32]) {
        // SAFETY: forwarded from the caller.
        unsafe {
            match (p.out_channels / 16, p.out_channels % 16) {
                (1, 0) => row::<Zmm, 1, 8>(p, image, h, w, oy, out_row),
                (2, 0) => row::<Zmm, 2, 4>(p, image, h, w, oy, out_row),
                (3, 0) => row::<Zmm, 3, 2>(p, image, h, w, oy, out_row),
                (_, 0) => row::<Zmm, 4, 2>(p, image, h, w, oy, out_row),
                // An odd number of 8-lane registers: 8-lane vectors, but with
                // AVX-512's 32 registers twice AVX2's pixels at once (x2.5's
                // 40 outputs ran one pixel at a time, 5 accumulators).
                (0, _) => row::<Ymm, 1, 8>(p, image, h, w, oy, out_row),
                (1, _) => row::<Ymm, 3, 4>(p, image, h, w, oy, out_row),
                (2, _) => row::<Ymm, 5, 2>(p, image, h, w, oy, out_row),
                _ => row::<Ymm, 7, 2>(p, image, h, w, oy, out_row),
            }
        }
    }

    /// One output row, NEON.
    ///
    /// # Safety
    /// `out_channels` is a multiple of 4, at most 64 (NEON is aarch64's
    /// baseline).
    #[cfg(target_arch = "aarch64")]
    pub unsafe fn stem_row_neon(p: &StemWeights, image: &[f32], h: usize, w: usize, oy: usize, out_row: &mut [f32]) {
        // SAFETY: forwarded from the caller. `P` pixels at once keep 16-24
        // accumulators of the 32 registers busy, with the `V` weight vectors
        // and a broadcast beside them (x1.0's 16 outputs: 4 x 4 pixels).
        unsafe {
            match p.out_channels / 4 {
                1 => row::<Neon, 1, 16>(p, image, h, w, oy, out_row),
                2 => row::<Neon, 2, 8>(p, image, h, w, oy, out_row),
                3 => row::<Neon, 3, 6>(p, image, h, w, oy, out_row),
                4 => row::<Neon, 4, 4>(p, image, h, w, oy, out_row),
                5 => row::<Neon, 5, 4>(p, image, h, w, oy, out_row),
                6 => row::<Neon, 6, 4>(p, image, h, w, oy, out_row),
                7 => row::<Neon, 7, 3>(p, image, h, w, oy, out_row),
                8 => row::<Neon, 8, 2>(p, image, h, w, oy, out_row),
                9 => row::<Neon, 9, 2>(p, image, h, w, oy, out_row),
                10 => row::<Neon, 10, 2>(p, image, h, w, oy, out_row),
                11 => row::<Neon, 11, 1>(p, image, h, w, oy, out_row),
                12 => row::<Neon, 12, 1>(p, image, h, w, oy, out_row),
                13 => row::<Neon, 13, 1>(p, image, h, w, oy, out_row),
                14 => row::<Neon, 14, 1>(p, image, h, w, oy, out_row),
                15 => row::<Neon, 15, 1>(p, image, h, w, oy, out_row),
                _ => row::<Neon, 16, 1>(p, image, h, w, oy, out_row),
            }
        }
    }

    #[inline(always)]
    unsafe fn row<T: Vector, const V: usize, const P: usize>(
        p: &StemWeights,
        image: &[f32],
        h: usize,
        w: usize,
        oy: usize,
        out_row: &mut [f32],
    ) {
        let (k, cout) = (p.kernel, p.out_channels);
        assert!(
            cout == T::LANES * V
                && image.len() >= p.in_channels * h * w
                && p.weight.len() == p.in_channels * k * k * cout
        );
        let pad = (k - 1) / 2;
        let ow = out_row.len() / cout;
        let kx = |ox: usize| (pad.saturating_sub(ox * p.stride[1]), k.min(w + pad - ox * p.stride[1]));
        let mut ox = 0;
        while ox < ow {
            // SAFETY: taps inside the image, pixels inside the row (group check).
            unsafe {
                if ox + P <= ow && kx(ox) == (0, k) && kx(ox + P - 1) == (0, k) {
                    pixels::<T, V, P>(p, image, h, w, oy, ox, (0, k), out_row);
                    ox += P;
                } else {
                    pixels::<T, V, 1>(p, image, h, w, oy, ox, kx(ox), out_row);
                    ox += 1;
                }
            }
        }
    }

    /// `P` pixels from `ox` sharing kernel columns `kx`, `V` registers of
    /// outputs each.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    unsafe fn pixels<T: Vector, const V: usize, const P: usize>(
        p: &StemWeights,
        image: &[f32],
        h: usize,
        w: usize,
        oy: usize,
        ox: usize,
        kx: (usize, usize),
        out_row: &mut [f32],
    ) {
        let (k, cin, cout) = (p.kernel, p.in_channels, p.out_channels);
        let l = T::LANES;
        let pad = (k - 1) / 2;
        let ky_lo = pad.saturating_sub(oy * p.stride[0]);
        let ky_hi = k.min(h + pad - oy * p.stride[0]);
        let (img, wt) = (image.as_ptr(), p.weight.as_ptr());
        // SAFETY: the caller keeps every tap inside the image and every pixel in the row.
        unsafe {
            let bias: [T; V] = std::array::from_fn(|v| T::load(p.bias.as_ptr().add(l * v)));
            let mut acc = [bias; P];
            for ci in 0..cin {
                for ky in ky_lo..ky_hi {
                    let iy = oy * p.stride[0] + ky - pad;
                    let in_row = img.add((ci * h + iy) * w);
                    for kxx in kx.0..kx.1 {
                        let tap = wt.add(((ci * k + ky) * k + kxx) * cout);
                        let weights: [T; V] = std::array::from_fn(|v| T::load(tap.add(l * v)));
                        for (j, px) in acc.iter_mut().enumerate() {
                            let x = T::splat(in_row.add((ox + j) * p.stride[1] + kxx - pad));
                            for (v, a) in px.iter_mut().enumerate() {
                                *a = T::mul_add(x, weights[v], *a);
                            }
                        }
                    }
                }
            }
            for (j, px) in acc.iter().enumerate() {
                let dst = out_row.as_mut_ptr().add((ox + j) * cout);
                for (v, a) in px.iter().enumerate() {
                    a.act(p.act).store(dst.add(l * v));
                }
            }
        }
    }
}

crate::kernels::dispatch::multiversion!(fn stem_row(p: &StemWeights, image: &[f32], h: usize, w: usize, oy: usize, out_row: &mut [f32]) => stem_row_body);

/// One output row: for each pixel, bias plus one `out_channels` vector per
/// in-bounds tap, then the activation.
#[inline(always)]
fn stem_row_body<F: Fma>(p: &StemWeights, image: &[f32], h: usize, w: usize, oy: usize, out_row: &mut [f32]) {
    let (k, cin, cout) = (p.kernel, p.in_channels, p.out_channels);
    let pad = (k - 1) / 2;
    let ow = out_row.len() / cout;
    let ky_lo = pad.saturating_sub(oy * p.stride[0]);
    let ky_hi = k.min(h + pad - oy * p.stride[0]);
    for ox in 0..ow {
        let kx_lo = pad.saturating_sub(ox * p.stride[1]);
        let kx_hi = k.min(w + pad - ox * p.stride[1]);
        let acc = &mut out_row[ox * cout..(ox + 1) * cout];
        acc.copy_from_slice(&p.bias);
        for ci in 0..cin {
            for ky in ky_lo..ky_hi {
                let iy = oy * p.stride[0] + ky - pad;
                let in_row = &image[(ci * h + iy) * w..][..w];
                for kx in kx_lo..kx_hi {
                    let v = in_row[ox * p.stride[1] + kx - pad];
                    let tap = &p.weight[((ci * k + ky) * k + kx) * cout..][..cout];
                    for (a, &wt) in acc.iter_mut().zip(tap) {
                        *a = F::mul_add(v, wt, *a);
                    }
                }
            }
        }
        p.act.apply_slice(acc);
    }
}

/// Reference dense convolution in PaddleClas layouts: NCHW input, `[out, in,
/// k, k]` weight, NCHW output, zero padding `(k - 1) / 2`. The test oracle for
/// [`run`].
#[allow(clippy::too_many_arguments)]
pub fn reference(
    input: &[f32],
    [batch, cin, h, w]: [usize; 4],
    oihw: &[f32],
    bias: &[f32],
    kernel: usize,
    stride: [usize; 2],
    act: Activation,
) -> Vec<f32> {
    let cout = bias.len();
    let (oh, ow) = (conv_out_len(h, kernel, stride[0]), conv_out_len(w, kernel, stride[1]));
    let pad = ((kernel - 1) / 2) as isize;
    let mut out = vec![0.0; batch * cout * oh * ow];
    for n in 0..batch {
        for o in 0..cout {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut acc = bias[o] as f64;
                    for ci in 0..cin {
                        for ky in 0..kernel {
                            for kx in 0..kernel {
                                let iy = (oy * stride[0] + ky) as isize - pad;
                                let ix = (ox * stride[1] + kx) as isize - pad;
                                if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                    continue;
                                }
                                let x = input[((n * cin + ci) * h + iy as usize) * w + ix as usize];
                                acc += x as f64 * oihw[((o * cin + ci) * kernel + ky) * kernel + kx] as f64;
                            }
                        }
                    }
                    out[((n * cout + o) * oh + oy) * ow + ox] = act.apply(acc as f32);
                }
            }
        }
    }
    out
}
