//! Pointwise (1x1) convolution: a GEMM `[pixels, in] x [in, out]` with the
//! bias and activation fused into the store.
//!
//! NHWC makes a 1x1 convolution a plain matrix product: every pixel is a row
//! of `in` channels. Rows are processed in register tiles of [`MR`] pixels by
//! [`NB`] output channels, so each weight row loaded from memory serves `MR`
//! pixels.

use rayon::prelude::*;

use super::Activation;

/// Pixels per register tile.
pub const MR: usize = 4;
/// Output channels per register tile.
pub const NB: usize = 64;

/// Folded, packed weights of a 1x1 convolution.
#[derive(Debug, Clone)]
pub struct PwWeights {
    /// `[in][out]`: row `k` holds input channel `k`'s weight for every output.
    pub weight: Vec<f32>,
    /// One bias per output channel (folded BatchNorm shift, or the conv bias).
    pub bias: Vec<f32>,
    /// Input channels (GEMM K).
    pub in_channels: usize,
    /// Output channels (GEMM N).
    pub out_channels: usize,
    /// Activation applied after the bias.
    pub act: Activation,
}

impl PwWeights {
    /// Packs a PaddleClas `[out, in, 1, 1]` weight (already BN-folded).
    pub fn pack(oi: &[f32], bias: Vec<f32>, in_channels: usize, act: Activation) -> Self {
        let out_channels = bias.len();
        assert_eq!(oi.len(), out_channels * in_channels, "pointwise weight size");
        let mut weight = vec![0.0; oi.len()];
        for o in 0..out_channels {
            for i in 0..in_channels {
                weight[i * out_channels + o] = oi[o * in_channels + i];
            }
        }
        PwWeights { weight, bias, in_channels, out_channels, act }
    }
}

/// Runs the 1x1 convolution over `pixels` NHWC rows of `in_channels` values,
/// writing `pixels` rows of `out_channels` values.
pub fn run(p: &PwWeights, input: &[f32], pixels: usize, out: &mut [f32]) {
    let (k, n) = (p.in_channels, p.out_channels);
    debug_assert_eq!(input.len(), pixels * k);
    debug_assert_eq!(out.len(), pixels * n);
    let rows = rows_per_task(pixels);
    out.par_chunks_mut(rows * n).zip(input.par_chunks(rows * k)).for_each(|(out, input)| {
        let full = input.len() / k / MR * MR;
        let (out_tiles, out_rest) = out.split_at_mut(full * n);
        let (in_tiles, in_rest) = input.split_at(full * k);
        for (o, x) in out_tiles.chunks_exact_mut(MR * n).zip(in_tiles.chunks_exact(MR * k)) {
            tile::<MR>(p, x, o);
        }
        for (o, x) in out_rest.chunks_exact_mut(n).zip(in_rest.chunks_exact(k)) {
            tile::<1>(p, x, o);
        }
    });
}

/// Rows per rayon task: a few tasks per thread so that work balances, but
/// never less than one register tile.
fn rows_per_task(pixels: usize) -> usize {
    let tasks = 4 * rayon::current_num_threads();
    pixels.div_ceil(tasks).next_multiple_of(MR).max(MR)
}

/// `R` pixel rows times all output channels, in blocks of [`NB`] outputs.
#[inline(always)]
fn tile<const R: usize>(p: &PwWeights, x: &[f32], out: &mut [f32]) {
    let (k, n) = (p.in_channels, p.out_channels);
    for n0 in (0..n).step_by(NB) {
        let nb = NB.min(n - n0);
        let mut acc = [[0.0f32; NB]; R];
        for row in acc.iter_mut() {
            row[..nb].copy_from_slice(&p.bias[n0..n0 + nb]);
        }
        for kk in 0..k {
            let w_row = &p.weight[kk * n + n0..][..nb];
            for (r, row) in acc.iter_mut().enumerate() {
                let a = x[r * k + kk];
                for (acc, &wt) in row[..nb].iter_mut().zip(w_row) {
                    *acc += a * wt;
                }
            }
        }
        for (r, row) in acc.iter().enumerate() {
            let dst = &mut out[r * n + n0..][..nb];
            for (d, &v) in dst.iter_mut().zip(&row[..nb]) {
                *d = p.act.apply(v);
            }
        }
    }
}

/// Reference 1x1 convolution in PaddleClas layouts: NCHW input, `[out, in]`
/// weight, NCHW output. The test oracle for [`run`].
pub fn reference(input: &[f32], [batch, cin, h, w]: [usize; 4], oi: &[f32], bias: &[f32], act: Activation) -> Vec<f32> {
    let cout = bias.len();
    let hw = h * w;
    let mut out = vec![0.0; batch * cout * hw];
    for n in 0..batch {
        for o in 0..cout {
            for px in 0..hw {
                let mut acc = bias[o] as f64;
                for i in 0..cin {
                    acc += input[(n * cin + i) * hw + px] as f64 * oi[o * cin + i] as f64;
                }
                out[(n * cout + o) * hw + px] = act.apply(acc as f32);
            }
        }
    }
    out
}
