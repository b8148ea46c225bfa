//! Squeeze-and-excitation, PaddleClas `SEModule`:
//! `x * hsigmoid(W2 · relu(W1 · GAP(x) + b1) + b2)`, per image and channel.
//!
//! It rescales its own input (the depthwise output) in place.

use rayon::prelude::*;

use super::dispatch::Fma;
use super::{hard_sigmoid, isa, Isa};

/// Weights of one SE module.
#[derive(Debug, Clone)]
pub struct SeWeights {
    /// `[mid][channels]` (PaddleClas `conv1.weight` without its 1x1 axes).
    pub reduce: Vec<f32>,
    /// `[mid]`.
    pub reduce_bias: Vec<f32>,
    /// `[channels][mid]` (PaddleClas `conv2.weight` without its 1x1 axes).
    pub expand: Vec<f32>,
    /// `[channels]`.
    pub expand_bias: Vec<f32>,
}

impl SeWeights {
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

crate::multiversion!(fn se_image(p: &SeWeights, image: &mut [f32], scratch: &mut [f32]) => se_image_body);

#[inline(always)]
fn se_image_body<F: Fma>(p: &SeWeights, image: &mut [f32], scratch: &mut [f32]) {
    let (c, mid) = (p.channels(), p.mid());
    let (pooled, rest) = scratch.split_at_mut(c);
    let (hidden, scale) = rest.split_at_mut(mid);
    super::global_average_pool(image, pooled);
    for (j, h) in hidden.iter_mut().enumerate() {
        let row = &p.reduce[j * c..][..c];
        let dot = row.iter().zip(pooled.iter()).fold(0.0, |acc, (&a, &b)| F::mul_add(a, b, acc));
        *h = (dot + p.reduce_bias[j]).max(0.0);
    }
    for (ch, s) in scale.iter_mut().enumerate() {
        let row = &p.expand[ch * mid..][..mid];
        let dot = row.iter().zip(hidden.iter()).fold(0.0, |acc, (&a, &b)| F::mul_add(a, b, acc));
        *s = hard_sigmoid(dot + p.expand_bias[ch]);
    }
    for pixel in image.chunks_exact_mut(c) {
        for (v, &s) in pixel.iter_mut().zip(scale.iter()) {
            *v *= s;
        }
    }
}

/// Reference SE on an NCHW tensor (returns the rescaled copy). The test
/// oracle for [`run`].
pub fn reference(x: &[f32], [batch, c, h, w]: [usize; 4], p: &SeWeights) -> Vec<f32> {
    let hw = h * w;
    let mid = p.mid();
    let mut out = x.to_vec();
    for n in 0..batch {
        let pooled: Vec<f64> =
            (0..c).map(|ch| x[(n * c + ch) * hw..][..hw].iter().map(|&v| v as f64).sum::<f64>() / hw as f64).collect();
        let hidden: Vec<f64> = (0..mid)
            .map(|j| {
                let s: f64 = (0..c).map(|ch| p.reduce[j * c + ch] as f64 * pooled[ch]).sum();
                (s + p.reduce_bias[j] as f64).max(0.0)
            })
            .collect();
        for ch in 0..c {
            let s: f64 = (0..mid).map(|j| p.expand[ch * mid + j] as f64 * hidden[j]).sum();
            let scale = hard_sigmoid((s + p.expand_bias[ch] as f64) as f32);
            for v in &mut out[(n * c + ch) * hw..][..hw] {
                *v *= scale;
            }
        }
    }
    out
}
