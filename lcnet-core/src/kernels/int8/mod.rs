//! int8 kernels: 8-bit activations and weights, 32-bit sums.
//!
//! Activations are `u8` with a per-tensor scale and zero point (`real =
//! (q - zero) * scale`), weights `i8`, symmetric, one scale per output
//! channel. A kernel sums `u8 x i8` products into `i32` and its store
//! requantises ([`Requant`]): scale, bias and activation in `f32`, rounded
//! back to `u8` for the next layer.
//!
//! Weights are limited to 7 bits, `-64..=63` ([`WEIGHT_MIN`],
//! [`WEIGHT_MAX`]), as ONNX Runtime's `reduce_range` and oneDNN do on CPUs
//! without VNNI: there the sums go through `vpmaddubsw`, which adds two
//! `u8 x i8` products into a saturating `i16`, and `2 x 255 x 64 = 32640`
//! always fits. With 8-bit weights that step could saturate and the AVX2
//! answers would differ from the VNNI ones. With 7 bits every tier computes
//! the same integers, and the requantisation is the same `f32` operations
//! in the same order everywhere (no fused multiply-add), so every tier's
//! output equals the scalar one bit for bit.

pub mod dwconv;
pub mod pwconv;

#[cfg(target_arch = "x86_64")]
mod dot;

use super::Activation;

/// Smallest weight value the kernels take.
pub const WEIGHT_MIN: i8 = -64;
/// Largest weight value the kernels take.
pub const WEIGHT_MAX: i8 = 63;

/// How a layer turns its 32-bit sums into 8-bit outputs. For output
/// channel `o` and a sum `s` (zero point already accounted for):
/// `y = act(s * scale[o] + bias[o])`, then
/// `q = round_ties_even(clamp(y * (1 / out_scale) + out_zero, 0, 255))`.
#[derive(Debug, Clone)]
pub struct Requant {
    /// Per output channel: the real value of one unit of the sum (the
    /// input's scale times the channel's weight scale).
    pub scale: Vec<f32>,
    /// Per output channel: the bias, in real units.
    pub bias: Vec<f32>,
    /// Activation on the real value.
    pub act: Activation,
    /// The output's scale.
    pub out_scale: f32,
    /// The output's zero point.
    pub out_zero: u8,
}

impl Requant {
    /// The output of channel `o` for sum `sum`: the definition every tier
    /// follows.
    #[inline(always)]
    pub fn apply(&self, o: usize, sum: i32) -> u8 {
        let y = self.act.apply(sum as f32 * self.scale[o] + self.bias[o]);
        quantize(y, 1.0 / self.out_scale, f32::from(self.out_zero))
    }
}

/// `y` to `u8` with the reciprocal of the scale and the zero point.
#[inline(always)]
// max then min, the vector code's order: a NaN becomes 0 in both.
#[allow(clippy::manual_clamp)]
pub fn quantize(y: f32, inv_scale: f32, zero: f32) -> u8 {
    (y * inv_scale + zero).max(0.0).min(255.0).round_ties_even() as u8
}
