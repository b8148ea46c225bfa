//! Depthwise kxk convolution, NHWC, vectorised across channels.
//!
//! Each output pixel starts from the bias and adds one contiguous
//! channel vector per kernel tap; taps that fall into the zero padding are
//! skipped, so borders need no padded copy of the input.

use rayon::prelude::*;

use super::dispatch::Fma;
use super::{conv_out_len, isa, Activation, Isa};

/// Folded, packed weights of a depthwise convolution.
#[derive(Debug, Clone)]
pub struct DwWeights {
    /// `[ky][kx][c]`: one channel vector per tap.
    pub weight: Vec<f32>,
    /// One bias per channel (the folded BatchNorm shift).
    pub bias: Vec<f32>,
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
        let mut weight = vec![0.0; c1kk.len()];
        for c in 0..channels {
            for t in 0..taps {
                weight[t * channels + c] = c1kk[c * taps + t];
            }
        }
        DwWeights { weight, bias, kernel, stride, act }
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
    out.par_chunks_mut(ow * c).enumerate().for_each(|(row, out_row)| {
        let (img, oy) = (row / oh, row % oh);
        let image = &input[img * h * w * c..][..h * w * c];
        match isa {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `isa` is a tier the CPU supports; AVX-512 implies AVX2 + FMA.
            Isa::Avx2 | Isa::Avx512 => unsafe { avx2::dw_row(p, image, h, w, oy, out_row) },
            _ => dw_row(Isa::Scalar, p, image, h, w, oy, out_row),
        }
    });
}

/// Hand-vectorised rows: channel blocks of 32 (four 8-lane accumulators in
/// registers across every tap), then single vectors, then scalar lanes.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::DwWeights;
    use crate::kernels::simd::avx2::act;

    /// One output row of an NHWC image.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dw_row(p: &DwWeights, image: &[f32], h: usize, w: usize, oy: usize, out_row: &mut [f32]) {
        let c = p.channels();
        let k = p.kernel;
        let pad = (k - 1) / 2;
        let ow = out_row.len() / c;
        let ky_lo = pad.saturating_sub(oy * p.stride[0]);
        let ky_hi = k.min(h + pad - oy * p.stride[0]);
        assert!(image.len() >= h * w * c && p.weight.len() == k * k * c && out_row.len() == ow * c);
        let (img, wt, bias, out) = (image.as_ptr(), p.weight.as_ptr(), p.bias.as_ptr(), out_row.as_mut_ptr());
        // Channel blocks outermost: a block's k*k weights stay in L1 along the row.
        let mut c0 = 0;
        while c0 < c {
            let lanes = if c - c0 >= 32 { 32 } else if c - c0 >= 8 { 8 } else { c - c0 };
            for ox in 0..ow {
                let kx_lo = pad.saturating_sub(ox * p.stride[1]);
                let kx_hi = k.min(w + pad - ox * p.stride[1]);
                // SAFETY: iy < h, ix < w (tap bounds above), c0 + lanes <= c, ox < ow:
                // every offset is inside `image`, `weight`, `bias` and `out_row`.
                unsafe {
                    let dst = out.add(ox * c + c0);
                    match lanes {
                        32 => {
                            let mut acc = [
                                _mm256_loadu_ps(bias.add(c0)),
                                _mm256_loadu_ps(bias.add(c0 + 8)),
                                _mm256_loadu_ps(bias.add(c0 + 16)),
                                _mm256_loadu_ps(bias.add(c0 + 24)),
                            ];
                            for ky in ky_lo..ky_hi {
                                let iy = oy * p.stride[0] + ky - pad;
                                for kx in kx_lo..kx_hi {
                                    let ix = ox * p.stride[1] + kx - pad;
                                    let x = img.add((iy * w + ix) * c + c0);
                                    let wv = wt.add((ky * k + kx) * c + c0);
                                    for (v, a) in acc.iter_mut().enumerate() {
                                        *a = _mm256_fmadd_ps(_mm256_loadu_ps(x.add(8 * v)), _mm256_loadu_ps(wv.add(8 * v)), *a);
                                    }
                                }
                            }
                            for (v, a) in acc.iter().enumerate() {
                                _mm256_storeu_ps(dst.add(8 * v), act(*a, p.act));
                            }
                        }
                        8 => {
                            let mut a = _mm256_loadu_ps(bias.add(c0));
                            for ky in ky_lo..ky_hi {
                                let iy = oy * p.stride[0] + ky - pad;
                                for kx in kx_lo..kx_hi {
                                    let ix = ox * p.stride[1] + kx - pad;
                                    let x = _mm256_loadu_ps(img.add((iy * w + ix) * c + c0));
                                    a = _mm256_fmadd_ps(x, _mm256_loadu_ps(wt.add((ky * k + kx) * c + c0)), a);
                                }
                            }
                            _mm256_storeu_ps(dst, act(a, p.act));
                        }
                        _ => {
                            for l in 0..lanes {
                                let mut a = *bias.add(c0 + l);
                                for ky in ky_lo..ky_hi {
                                    let iy = oy * p.stride[0] + ky - pad;
                                    for kx in kx_lo..kx_hi {
                                        let ix = ox * p.stride[1] + kx - pad;
                                        a = (*img.add((iy * w + ix) * c + c0 + l)).mul_add(*wt.add((ky * k + kx) * c + c0 + l), a);
                                    }
                                }
                                *dst.add(l) = p.act.apply(a);
                            }
                        }
                    }
                }
            }
            c0 += lanes;
        }
    }
}

crate::multiversion!(fn dw_row(p: &DwWeights, image: &[f32], h: usize, w: usize, oy: usize, out_row: &mut [f32]) => dw_row_body);

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
