//! The classifier head, PaddleClas order: GAP -> 1x1 conv (`last_conv`, no
//! BN) -> activation -> dropout (a constant scale at inference, folded into
//! the FC weights at load) -> flatten -> FC.

use rayon::prelude::*;

use super::dispatch::Fma;
use super::matvec::accumulate_columns;
use super::{isa, Activation, Isa};
use crate::aligned::AlignedVec;

/// Weights of the head.
#[derive(Debug, Clone)]
pub struct HeadWeights {
    /// `[in][hidden]` (PaddleClas `last_conv.weight` transposed); empty when
    /// the network has no head conv, in which case the FC reads the pooled
    /// features directly. 64-byte aligned, as [`fc`](Self::fc).
    pub conv: AlignedVec,
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
    pub fc: AlignedVec,
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
///
/// The head's weights (7.7 MB at x1.0, 11.5 MB at x2.5) are read from memory
/// once per call and thread, whatever the batch: the images of a batch go
/// through each weight row together (`matvec::accumulate_columns`). With
/// several threads, each takes a contiguous group of images; a single image
/// is split by outputs instead, so that every core streams its share of the
/// weights (the head is bound by memory, and one core cannot keep enough
/// reads in flight to use the bandwidth of two).
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
    let threads = super::threads::threads();
    if batch == 1 && threads > 1 {
        return head_by_columns(isa, p, x, scratch, logits, threads);
    }
    let groups = threads.min(batch);
    if groups <= 1 {
        return head_images(isa, p, x, batch, scratch, logits);
    }
    let per_group = batch.div_ceil(groups);
    logits
        .par_chunks_mut(per_group * classes)
        .zip(x.par_chunks(per_group * pixels * c))
        .zip(scratch.par_chunks_mut(per_group * per_image))
        .for_each(|((logits, x), scratch)| head_images(isa, p, x, logits.len() / classes, scratch, logits));
}

crate::kernels::dispatch::multiversion!(fn head_images(p: &HeadWeights, x: &[f32], images: usize, scratch: &mut [f32], logits: &mut [f32]) => head_images_body);

/// The head on `images` consecutive NHWC images; `scratch` holds the pooled
/// vectors (`[images][in]`) and then the hidden ones (`[images][hidden]`).
#[inline(always)]
fn head_images_body<F: Fma>(p: &HeadWeights, x: &[f32], images: usize, scratch: &mut [f32], logits: &mut [f32]) {
    if images == 0 {
        return;
    }
    let (pooled, features) = scratch.split_at_mut(images * p.in_channels);
    for (image, pooled) in x.chunks_exact(x.len() / images).zip(pooled.chunks_exact_mut(p.in_channels)) {
        super::global_average_pool(image, pooled);
    }
    let features: &[f32] = if p.conv.is_empty() {
        pooled
    } else {
        let features = &mut features[..images * p.hidden];
        conv_block::<F>(p, pooled, images, 0, features);
        features
    };
    fc_block::<F>(p, features, images, 0, logits);
}

/// One image's head with the outputs of the conv, then of the FC, split
/// over `threads` (columns in multiples of 16, two 8-lane vectors).
fn head_by_columns(isa: Isa, p: &HeadWeights, x: &[f32], scratch: &mut [f32], logits: &mut [f32], threads: usize) {
    let (c, hidden, classes) = (p.in_channels, p.hidden, p.classes());
    let (pooled, features) = scratch.split_at_mut(c);
    super::global_average_pool(x, pooled);
    let share = |n: usize| n.div_ceil(threads).next_multiple_of(16);
    let features: &[f32] = if p.conv.is_empty() {
        pooled
    } else {
        let features = &mut features[..hidden];
        features.par_chunks_mut(share(hidden)).enumerate().for_each(|(i, out)| {
            conv_columns(isa, p, pooled, i * share(hidden), out);
        });
        features
    };
    logits.par_chunks_mut(share(classes)).enumerate().for_each(|(i, out)| {
        fc_columns(isa, p, features, i * share(classes), out);
    });
}

crate::kernels::dispatch::multiversion!(fn conv_columns(p: &HeadWeights, pooled: &[f32], col0: usize, out: &mut [f32]) => conv_columns_body);

#[inline(always)]
fn conv_columns_body<F: Fma>(p: &HeadWeights, pooled: &[f32], col0: usize, out: &mut [f32]) {
    conv_block::<F>(p, pooled, 1, col0, out)
}

crate::kernels::dispatch::multiversion!(fn fc_columns(p: &HeadWeights, features: &[f32], col0: usize, out: &mut [f32]) => fc_columns_body);

#[inline(always)]
fn fc_columns_body<F: Fma>(p: &HeadWeights, features: &[f32], col0: usize, out: &mut [f32]) {
    fc_block::<F>(p, features, 1, col0, out)
}

/// Outputs `col0 ..` of the head conv (bias, product, activation) for
/// `images` pooled vectors; `out` is `[images][columns]`.
#[inline(always)]
fn conv_block<F: Fma>(p: &HeadWeights, pooled: &[f32], images: usize, col0: usize, out: &mut [f32]) {
    let cols = out.len() / images;
    for o in out.chunks_exact_mut(cols) {
        if p.conv_bias.is_empty() {
            o.fill(0.0);
        } else {
            o.copy_from_slice(&p.conv_bias[col0..][..cols]);
        }
    }
    accumulate_columns::<F, f32>(pooled, &p.conv, p.hidden, col0, out, images);
    p.act.apply_slice(out);
}

/// Logits `col0 ..` of the FC for `images` feature vectors; `out` is
/// `[images][columns]`.
#[inline(always)]
fn fc_block<F: Fma>(p: &HeadWeights, features: &[f32], images: usize, col0: usize, out: &mut [f32]) {
    let cols = out.len() / images;
    for o in out.chunks_exact_mut(cols) {
        o.copy_from_slice(&p.fc_bias[col0..][..cols]);
    }
    accumulate_columns::<F, f32>(features, &p.fc, p.classes(), col0, out, images);
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
