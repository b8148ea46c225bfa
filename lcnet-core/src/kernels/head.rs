//! The classifier head, PaddleClas order: GAP -> 1x1 conv (`last_conv`, no
//! BN) -> activation -> dropout (a constant scale at inference, folded into
//! the FC weights at load) -> flatten -> FC.

use rayon::prelude::*;

use super::dispatch::Fma;
use super::{isa, Activation, Isa};

/// Weights of the head.
#[derive(Debug, Clone)]
pub struct HeadWeights {
    /// `[in][hidden]` (PaddleClas `last_conv.weight` transposed); empty when
    /// the network has no head conv, in which case the FC reads the pooled
    /// features directly.
    pub conv: Vec<f32>,
    /// `[hidden]`, or empty for a conv without bias (PaddleClas).
    pub conv_bias: Vec<f32>,
    /// Channels of the last feature map.
    pub in_channels: usize,
    /// Width of the head conv (1280 in PP-LCNet).
    pub hidden: usize,
    /// Activation after the head conv.
    pub act: Activation,
    /// `[features][classes]` (Paddle's Linear layout), with the inference
    /// dropout scale already multiplied in.
    pub fc: Vec<f32>,
    /// `[classes]`.
    pub fc_bias: Vec<f32>,
}

impl HeadWeights {
    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.fc_bias.len()
    }

    /// Scratch values [`run`] needs per image.
    pub fn scratch_per_image(&self) -> usize {
        self.in_channels + self.hidden
    }
}

/// Runs the head on `batch` NHWC images of `pixels` pixels; writes `batch x
/// classes` logits.
pub fn run(p: &HeadWeights, x: &[f32], batch: usize, pixels: usize, scratch: &mut [f32], logits: &mut [f32]) {
    run_isa(isa(), p, x, batch, pixels, scratch, logits)
}

/// [`run`] on a given ISA (tests force each one).
#[allow(clippy::too_many_arguments)]
pub fn run_isa(
    isa: Isa,
    p: &HeadWeights,
    x: &[f32],
    batch: usize,
    pixels: usize,
    scratch: &mut [f32],
    logits: &mut [f32],
) {
    let (c, classes) = (p.in_channels, p.classes());
    assert_eq!(x.len(), batch * pixels * c, "head input size");
    assert_eq!(logits.len(), batch * classes, "head output size");
    assert_eq!(scratch.len(), batch * p.scratch_per_image(), "head scratch size");
    let per_image = p.scratch_per_image();
    if super::threads::threads() == 1 {
        let images = logits.chunks_mut(classes).zip(x.chunks(pixels * c)).zip(scratch.chunks_mut(per_image));
        images.for_each(|((logits, image), scratch)| head_image(isa, p, image, scratch, logits));
        return;
    }
    logits
        .par_chunks_mut(classes)
        .zip(x.par_chunks(pixels * c))
        .zip(scratch.par_chunks_mut(per_image))
        .for_each(|((logits, image), scratch)| head_image(isa, p, image, scratch, logits));
}

crate::multiversion!(fn head_image(p: &HeadWeights, image: &[f32], scratch: &mut [f32], logits: &mut [f32]) => head_image_body);

#[inline(always)]
fn head_image_body<F: Fma>(p: &HeadWeights, image: &[f32], scratch: &mut [f32], logits: &mut [f32]) {
    let (c, hidden, classes) = (p.in_channels, p.hidden, p.classes());
    let (pooled, features) = scratch.split_at_mut(c);
    super::global_average_pool(image, pooled);
    let features: &[f32] = if p.conv.is_empty() {
        pooled
    } else {
        if p.conv_bias.is_empty() {
            features.fill(0.0);
        } else {
            features.copy_from_slice(&p.conv_bias);
        }
        super::matvec::accumulate_rows::<F>(pooled, &p.conv[..c * hidden], features);
        p.act.apply_slice(features);
        features
    };
    logits.copy_from_slice(&p.fc_bias);
    super::matvec::accumulate_rows::<F>(features, &p.fc[..features.len() * classes], logits);
}

/// Reference head on an NCHW tensor. `last_conv` is `[hidden, in]` (or empty),
/// `fc` is `[features, classes]` (unscaled) and `dropout_scale` the
/// inference-time dropout factor. The test oracle for [`run`].
#[allow(clippy::too_many_arguments)]
pub fn reference(
    x: &[f32],
    [batch, c, h, w]: [usize; 4],
    last_conv: &[f32],
    hidden: usize,
    act: Activation,
    dropout_scale: f32,
    fc: &[f32],
    fc_bias: &[f32],
) -> Vec<f32> {
    let hw = h * w;
    let classes = fc_bias.len();
    let mut out = vec![0.0; batch * classes];
    for n in 0..batch {
        let pooled: Vec<f64> =
            (0..c).map(|ch| x[(n * c + ch) * hw..][..hw].iter().map(|&v| v as f64).sum::<f64>() / hw as f64).collect();
        let features: Vec<f64> = if last_conv.is_empty() {
            pooled
        } else {
            (0..hidden)
                .map(|j| {
                    let s: f64 = (0..c).map(|ch| last_conv[j * c + ch] as f64 * pooled[ch]).sum();
                    act.apply(s as f32) as f64 * dropout_scale as f64
                })
                .collect()
        };
        for o in 0..classes {
            let s: f64 = features.iter().enumerate().map(|(j, &f)| f * fc[j * classes + o] as f64).sum();
            out[n * classes + o] = (s + fc_bias[o] as f64) as f32;
        }
    }
    out
}
