//! The head of an int8 network (global average pool, 1x1 conv, activation,
//! FC) with its weights kept in 8 bits: each product takes the weight as
//! `f32`, and the sum in weight units meets the per-output scale once at
//! the end, with the bias. At batch 1 the head reads every weight once per
//! image, so the pass is bound by reading them: a quarter of the bytes of
//! f32 weights (x0.25's FC alone is 5 MB in f32), and a quarter of the
//! memory.

use crate::kernels::dispatch::Fma;
use crate::kernels::matvec::accumulate_rows;
use crate::kernels::{global_average_pool, Activation, Isa};

/// One 1x1 conv or FC: `out[o] = bias[o] + scale[o] * sum_j x[j] * q[j][o]`.
#[derive(Debug, Clone)]
pub struct QMatrix {
    /// `[inputs][outputs]`, so that the inner loop runs along the outputs.
    q: Vec<i8>,
    /// Per output: the real value of one weight unit.
    scale: Vec<f32>,
    /// Per output.
    bias: Vec<f32>,
}

impl QMatrix {
    /// From `[outputs][inputs]` weights (a conv's layout) or, when
    /// `input_major`, `[inputs][outputs]` ones (Paddle's Linear layout).
    ///
    /// # Panics
    /// If the sizes do not agree (the loader checks them first).
    pub fn new(q: &[i8], input_major: bool, scale: Vec<f32>, bias: Vec<f32>) -> Self {
        let n = scale.len();
        assert_eq!(bias.len(), n, "one bias per output");
        assert!(n > 0 && q.len().is_multiple_of(n), "int8 matrix of {} values for {n} outputs", q.len());
        let k = q.len() / n;
        let q = if input_major { q.to_vec() } else { (0..k * n).map(|i| q[(i % n) * k + i / n]).collect() };
        QMatrix { q, scale, bias }
    }

    /// Number of inputs.
    pub fn inputs(&self) -> usize {
        self.q.len() / self.outputs()
    }

    /// Number of outputs.
    pub fn outputs(&self) -> usize {
        self.scale.len()
    }

    /// `out = bias + scale * sum_j x[j] * q[j]`: one multiply-add per input
    /// in input order, then one with the scale and bias.
    #[inline(always)]
    fn apply<F: Fma>(&self, x: &[f32], out: &mut [f32]) {
        out.fill(0.0);
        accumulate_rows::<F, i8>(x, &self.q, out);
        for ((o, &s), &b) in out.iter_mut().zip(&self.scale).zip(&self.bias) {
            *o = F::mul_add(*o, s, b);
        }
    }
}

/// The int8 network's head.
#[derive(Debug, Clone)]
pub struct QHeadWeights {
    /// The 1x1 conv (`last_conv`), if the network has one.
    pub conv: Option<QMatrix>,
    /// Activation after the conv.
    pub act: Activation,
    /// The FC, its scales times the inference-time dropout factor.
    pub fc: QMatrix,
}

impl QHeadWeights {
    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.fc.outputs()
    }

    /// Scratch values [`run_isa`] needs per image.
    pub fn scratch_per_image(&self) -> usize {
        self.fc.inputs() + self.conv.as_ref().map_or(0, QMatrix::inputs)
    }
}

/// The head on `batch` NHWC images of `pixels` pixels (real values):
/// `batch x classes` logits. The same bits on every tier for an
/// [`Isa::fused`] ISA.
pub fn run_isa(isa: Isa, p: &QHeadWeights, x: &[f32], batch: usize, scratch: &mut [f32], logits: &mut [f32]) {
    assert_eq!(logits.len(), batch * p.classes(), "int8 head output size");
    assert_eq!(scratch.len(), batch * p.scratch_per_image(), "int8 head scratch size");
    if batch == 0 {
        return;
    }
    let channels = p.conv.as_ref().map_or(p.fc.inputs(), QMatrix::inputs);
    assert!(x.len().is_multiple_of(batch * channels), "int8 head input size");
    let images = x.chunks_exact(x.len() / batch);
    let scratch = scratch.chunks_exact_mut(p.scratch_per_image());
    for ((image, scratch), logits) in images.zip(scratch).zip(logits.chunks_exact_mut(p.classes())) {
        head_image(isa, p, image, scratch, logits);
    }
}

crate::kernels::dispatch::multiversion!(fn head_image(p: &QHeadWeights, image: &[f32], scratch: &mut [f32], logits: &mut [f32]) => head_image_body);

#[inline(always)]
fn head_image_body<F: Fma>(p: &QHeadWeights, image: &[f32], scratch: &mut [f32], logits: &mut [f32]) {
    let (features, pooled) = scratch.split_at_mut(p.fc.inputs());
    match &p.conv {
        Some(conv) => {
            global_average_pool(image, pooled);
            conv.apply::<F>(pooled, features);
            p.act.apply_slice(features);
        }
        None => global_average_pool(image, features),
    }
    p.fc.apply::<F>(features, logits);
}
