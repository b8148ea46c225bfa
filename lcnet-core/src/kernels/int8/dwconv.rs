//! int8 depthwise kxk convolution, NHWC: `u8` inputs x `i8` weights,
//! requantised to `u8`.
//!
//! The taps of one channel are not neighbours in memory, so neither
//! `vpdpbusd` nor `vpmaddubsw` fits; widening and multiplying in `i32` costs
//! three or four instructions per 16 products where the f32 kernel needs one
//! fused multiply-add. Instead the input is widened once, to `f32` values
//! `x - zero` (exact), and the f32 depthwise kernel runs with the integer
//! weights as `f32`. Every product and every partial sum is then an integer
//! below `25 x 255 x 127 < 2^24`, which `f32` holds exactly, so the sums are
//! the exact integer sums whatever the tier, the order or the fused
//! multiply-adds. A last pass requantises them to `u8` ([`Requant`]).
//!
//! Padding needs nothing: the f32 kernel skips padded taps, and a padded
//! input is a real 0, which is `x - zero = 0` here.

use super::requantise::{requantise, Requantiser};
use super::{Requant, WEIGHT_MAX, WEIGHT_MIN};
use crate::kernels::dispatch::Fma;
use crate::kernels::dwconv::{self, DwWeights};
use crate::kernels::threads::for_each_chunk;
use crate::kernels::{Activation, Isa};

/// int8 depthwise weights (as exact `f32` integers for the f32 kernel) and
/// the requantisation.
#[derive(Debug, Clone)]
pub struct QDwWeights {
    /// The weights, bias 0, no activation: the f32 kernel's output is the sums.
    sums: DwWeights,
    zero_in: i32,
    /// From the sums to the `u8` outputs.
    requant: Requantiser,
}

impl QDwWeights {
    /// Packs PaddleClas's `[c, 1, k, k]` weights for inputs with zero point
    /// `in_zero`.
    ///
    /// # Panics
    /// If a weight is outside `WEIGHT_MIN..=WEIGHT_MAX`, the kernel is
    /// larger than 5 (sums could leave `f32`'s exact integers), or the sizes
    /// do not agree (loaders check all three first).
    pub fn pack(c1kk: &[i8], kernel: usize, stride: [usize; 2], in_zero: u8, requant: &Requant) -> Self {
        let c = requant.scale.len();
        assert_eq!(c1kk.len(), c * kernel * kernel, "int8 depthwise weight size");
        assert_eq!(requant.bias.len(), c, "one bias per channel");
        assert!(kernel <= 5, "int8 depthwise kernels are at most 5x5");
        assert!(c1kk.iter().all(|w| (WEIGHT_MIN..=WEIGHT_MAX).contains(w)), "int8 weights must be in -127..=127");
        let weights: Vec<f32> = c1kk.iter().map(|&w| f32::from(w)).collect();
        QDwWeights {
            sums: DwWeights::pack(&weights, vec![0.0; c], kernel, stride, Activation::None),
            zero_in: i32::from(in_zero),
            requant: Requantiser::new(requant),
        }
    }

    /// Number of channels.
    pub fn channels(&self) -> usize {
        self.requant.channels()
    }

    /// Output (height, width) for an input of `h` x `w`.
    pub fn out_hw(&self, h: usize, w: usize) -> (usize, usize) {
        self.sums.out_hw(h, w)
    }
}

/// Runs the convolution on `batch` NHWC images of `h` x `w`, on the best
/// tier; `scratch` holds the widened input and the sums: at least
/// `input.len() + out.len()` values.
pub fn run(p: &QDwWeights, input: &[u8], batch: usize, h: usize, w: usize, out: &mut [u8], scratch: &mut [f32]) {
    run_isa(crate::kernels::isa(), p, input, batch, h, w, out, scratch)
}

/// [`run`] on a given ISA (tests force each one).
#[allow(clippy::too_many_arguments)]
pub fn run_isa(
    isa: Isa,
    p: &QDwWeights,
    input: &[u8],
    batch: usize,
    h: usize,
    w: usize,
    out: &mut [u8],
    scratch: &mut [f32],
) {
    let c = p.channels();
    let (oh, ow) = p.out_hw(h, w);
    assert_eq!(input.len(), batch * h * w * c, "int8 depthwise input size");
    assert_eq!(out.len(), batch * oh * ow * c, "int8 depthwise output size");
    if out.is_empty() {
        return;
    }
    assert!(scratch.len() >= input.len() + out.len(), "int8 depthwise scratch size");
    let (widened, sums) = scratch.split_at_mut(input.len());
    let sums = &mut sums[..out.len()];
    // Both passes by rows, over the threads as the convolution between them.
    let row = w * c;
    for_each_chunk(widened, row, |y, widened| widen(isa, &input[y * row..][..widened.len()], p.zero_in, widened));
    dwconv::run_isa(isa, &p.sums, widened, batch, h, w, sums);
    let row = ow * c;
    for_each_chunk(out, row, |y, out| requantise(isa, &p.requant, &sums[y * row..][..out.len()], out));
}

crate::kernels::dispatch::multiversion!(fn widen(input: &[u8], zero: i32, out: &mut [f32]) => widen_body);

/// `out = x - zero` as `f32`, exactly.
#[inline(always)]
#[allow(clippy::extra_unused_type_parameters)] // only the ISA matters
fn widen_body<F: Fma>(input: &[u8], zero: i32, out: &mut [f32]) {
    for (y, &x) in out.iter_mut().zip(input) {
        *y = (i32::from(x) - zero) as f32;
    }
}
