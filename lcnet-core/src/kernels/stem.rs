//! The stem: a dense kxk convolution over the NCHW input image, writing NHWC.
//!
//! Reading NCHW here means the public NCHW tensor never needs a separate
//! transpose: the stem is where the layout changes.

use rayon::prelude::*;

use super::{conv_out_len, Activation};

/// Folded, packed weights of a dense convolution with few input channels.
#[derive(Debug, Clone)]
pub struct StemWeights {
    /// `[(ci * k + ky) * k + kx][out]`: one row of `out_channels` per tap.
    pub weight: Vec<f32>,
    /// One bias per output channel (the folded BatchNorm shift).
    pub bias: Vec<f32>,
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
        let mut weight = vec![0.0; oihw.len()];
        for o in 0..out_channels {
            for t in 0..taps {
                weight[t * out_channels + o] = oihw[o * taps + t];
            }
        }
        StemWeights { weight, bias, in_channels, out_channels, kernel, stride, act }
    }

    /// Output (height, width) for an input of `h` x `w`.
    pub fn out_hw(&self, h: usize, w: usize) -> (usize, usize) {
        (conv_out_len(h, self.kernel, self.stride[0]), conv_out_len(w, self.kernel, self.stride[1]))
    }
}

/// Runs the stem on `batch` NCHW images of `h` x `w`; writes NHWC into `out`
/// (`batch * oh * ow * out_channels` values).
pub fn run(p: &StemWeights, input: &[f32], batch: usize, h: usize, w: usize, out: &mut [f32]) {
    let (oh, ow) = p.out_hw(h, w);
    let (k, cin, cout) = (p.kernel, p.in_channels, p.out_channels);
    debug_assert_eq!(input.len(), batch * cin * h * w);
    debug_assert_eq!(out.len(), batch * oh * ow * cout);
    let pad = (k - 1) / 2;
    out.par_chunks_mut(ow * cout).enumerate().for_each(|(row, out_row)| {
        let (img, oy) = (row / oh, row % oh);
        let image = &input[img * cin * h * w..(img + 1) * cin * h * w];
        for ox in 0..ow {
            let acc = &mut out_row[ox * cout..(ox + 1) * cout];
            acc.copy_from_slice(&p.bias);
            for ci in 0..cin {
                for ky in 0..k {
                    let iy = (oy * p.stride[0] + ky) as isize - pad as isize;
                    if iy < 0 || iy >= h as isize {
                        continue;
                    }
                    let in_row = &image[(ci * h + iy as usize) * w..][..w];
                    for kx in 0..k {
                        let ix = (ox * p.stride[1] + kx) as isize - pad as isize;
                        if ix < 0 || ix >= w as isize {
                            continue;
                        }
                        let v = in_row[ix as usize];
                        let tap = &p.weight[((ci * k + ky) * k + kx) * cout..][..cout];
                        for (a, &wt) in acc.iter_mut().zip(tap) {
                            *a += v * wt;
                        }
                    }
                }
            }
            p.act.apply_slice(acc);
        }
    });
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
