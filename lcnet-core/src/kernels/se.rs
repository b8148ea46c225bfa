//! Squeeze-and-excitation, PaddleClas `SEModule`:
//! `x * hsigmoid(W2 · relu(W1 · GAP(x) + b1) + b2)`, per image and channel.
//!
//! It rescales its own input (the depthwise output) in place.

use rayon::prelude::*;

use super::dispatch::Fma;
use super::matvec::{accumulate_rows, input_major};
use super::{hard_sigmoid, isa, Isa};
use crate::aligned::AlignedVec;

/// Weights of one SE module.
#[derive(Debug, Clone)]
pub struct SeWeights {
    /// `[channels][mid]`: PaddleClas `conv1.weight` transposed, so the
    /// product runs along `mid` (see [`SeWeights::pack`]).
    pub reduce: AlignedVec,
    /// `[mid]`.
    pub reduce_bias: Vec<f32>,
    /// `[mid][channels]`: PaddleClas `conv2.weight` transposed.
    pub expand: AlignedVec,
    /// `[channels]`.
    pub expand_bias: Vec<f32>,
}

impl SeWeights {
    /// Packs PaddleClas's `conv1.weight` (`[mid, channels, 1, 1]`) and
    /// `conv2.weight` (`[channels, mid, 1, 1]`) with their biases.
    ///
    /// Both are stored transposed: the products then go one input at a
    /// time along the outputs, which vectorises, where a dot product per
    /// output is a sequential sum (as such, x2.5's SE modules took 4% of a
    /// forward pass, several times ONNX Runtime's).
    pub fn pack(conv1: &[f32], reduce_bias: Vec<f32>, conv2: &[f32], expand_bias: Vec<f32>) -> Self {
        let (mid, c) = (reduce_bias.len(), expand_bias.len());
        assert_eq!(conv1.len(), mid * c, "SE conv1 weight size");
        assert_eq!(conv2.len(), c * mid, "SE conv2 weight size");
        SeWeights { reduce: input_major(conv1, mid, c), reduce_bias, expand: input_major(conv2, c, mid), expand_bias }
    }

    /// Channels of the feature map it rescales.
    pub fn channels(&self) -> usize {
        self.expand_bias.len()
    }

    /// Width of the bottleneck (`channels / 4` in PP-LCNet, not rounded).
    pub fn mid(&self) -> usize {
        self.reduce_bias.len()
    }

    /// Scratch values [`run`] needs per image.
    pub fn scratch_per_image(&self) -> usize {
        2 * self.channels() + self.mid()
    }
}

/// Rescales `batch` NHWC images of `pixels` pixels in place. `scratch` holds
/// `batch * p.scratch_per_image()` values.
pub fn run(p: &SeWeights, x: &mut [f32], batch: usize, pixels: usize, scratch: &mut [f32]) {
    run_isa(isa(), p, x, batch, pixels, scratch)
}

/// [`run`] on a given ISA (tests force each one).
pub fn run_isa(isa: Isa, p: &SeWeights, x: &mut [f32], batch: usize, pixels: usize, scratch: &mut [f32]) {
    let c = p.channels();
    assert_eq!(x.len(), batch * pixels * c, "SE input size");
    assert_eq!(scratch.len(), batch * p.scratch_per_image(), "SE scratch size");
    let per_image = p.scratch_per_image();
    if super::threads::threads() == 1 {
        let images = x.chunks_mut(pixels * c).zip(scratch.chunks_mut(per_image));
        images.for_each(|(image, scratch)| se_image(isa, p, image, scratch));
        return;
    }
    x.par_chunks_mut(pixels * c)
        .zip(scratch.par_chunks_mut(per_image))
        .for_each(|(image, scratch)| se_image(isa, p, image, scratch));
}

crate::kernels::dispatch::multiversion!(fn se_image(p: &SeWeights, image: &mut [f32], scratch: &mut [f32]) => se_image_body);

#[inline(always)]
fn se_image_body<F: Fma>(p: &SeWeights, image: &mut [f32], scratch: &mut [f32]) {
    let (c, mid) = (p.channels(), p.mid());
    let (pooled, rest) = scratch.split_at_mut(c);
    let (hidden, scale) = rest.split_at_mut(mid);
    super::global_average_pool(image, pooled);
    hidden.copy_from_slice(&p.reduce_bias);
    accumulate_rows::<F, f32>(pooled, &p.reduce, hidden);
    hidden.iter_mut().for_each(|h| *h = h.max(0.0));
    scale.copy_from_slice(&p.expand_bias);
    accumulate_rows::<F, f32>(hidden, &p.expand, scale);
    scale.iter_mut().for_each(|s| *s = hard_sigmoid(*s));
    for pixel in image.chunks_exact_mut(c) {
        for (v, &s) in pixel.iter_mut().zip(scale.iter()) {
            *v *= s;
        }
    }
}

/// Reference SE on an NCHW tensor (returns the rescaled copy), with the
/// PaddleClas weights: `conv1` `[mid][c]`, `conv2` `[c][mid]`. The test
/// oracle for [`run`].
pub fn reference(
    x: &[f32],
    [batch, c, h, w]: [usize; 4],
    conv1: &[f32],
    b1: &[f32],
    conv2: &[f32],
    b2: &[f32],
) -> Vec<f32> {
    let hw = h * w;
    let mid = b1.len();
    let mut out = x.to_vec();
    for n in 0..batch {
        let pooled: Vec<f64> =
            (0..c).map(|ch| x[(n * c + ch) * hw..][..hw].iter().map(|&v| v as f64).sum::<f64>() / hw as f64).collect();
        let hidden: Vec<f64> = (0..mid)
            .map(|j| {
                let s: f64 = (0..c).map(|ch| conv1[j * c + ch] as f64 * pooled[ch]).sum();
                (s + b1[j] as f64).max(0.0)
            })
            .collect();
        for ch in 0..c {
            let s: f64 = (0..mid).map(|j| conv2[ch * mid + j] as f64 * hidden[j]).sum();
            let scale = hard_sigmoid((s + b2[ch] as f64) as f32);
            for v in &mut out[(n * c + ch) * hw..][..hw] {
                *v *= scale;
            }
        }
    }
    out
}
