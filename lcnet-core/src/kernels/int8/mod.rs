//! int8 kernels: 8-bit activations and weights, 32-bit sums.
//!
//! Activations are `u8` with a per-tensor scale and zero point (`real =
//! (q - zero) * scale`), weights `i8`, symmetric, one scale per output
//! channel. A kernel sums `u8 x i8` products into `i32` and its store
//! requantises ([`Requant`]): scale, bias and activation in `f32`, rounded
//! back to `u8` for the next layer.
//!
//! Weights are symmetric, `-127..=127` ([`WEIGHT_MIN`], [`WEIGHT_MAX`]).
//! With VNNI (AVX-512 VNNI or AVX-VNNI), `vpdpbusd` adds four `u8 x i8`
//! products into each `i32` lane exactly. Without it the fast step is
//! `vpmaddubsw`, which adds two products into a saturating `i16`: exact only
//! when the weights lie in `-64..=64` (`2 x 255 x 64 = 32640 < 2^15`), the
//! range ONNX Runtime's `reduce_range` gives on such CPUs. A layer whose
//! weights all lie in [`NARROW_MIN`]`..=`[`NARROW_MAX`] (`lcnet quantize
//! --reduce-range` makes every pointwise layer so) runs `vpmaddubsw` on AVX2
//! and AVX-512BW, any other runs an exact `vpmaddwd` step (odd and even
//! bytes apart), slower. The sums are then the same integers on every tier,
//! and the requantisation is the same `f32` operations in the same order
//! everywhere (no fused multiply-add), so every tier's output equals the
//! scalar one bit for bit.

pub mod dwconv;
pub mod head;
pub mod pwconv;
pub mod requantise;
pub mod stem;

#[cfg(target_arch = "x86_64")]
mod dot;
#[cfg(target_arch = "x86_64")]
mod dwconv_pairs;
#[cfg(target_arch = "x86_64")]
mod dwconv_vnni;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
mod store;
#[cfg(target_arch = "x86_64")]
mod window;

use super::Activation;

/// Smallest weight value the kernels take.
pub const WEIGHT_MIN: i8 = -127;
/// Largest weight value the kernels take.
pub const WEIGHT_MAX: i8 = 127;
/// Smallest weight of a layer that may use `vpmaddubsw` (see above).
pub const NARROW_MIN: i8 = -64;
/// Largest weight of a layer that may use `vpmaddubsw`: two products of
/// 255 and 64 still fit in `i16`.
pub const NARROW_MAX: i8 = 64;

/// How a layer turns its 32-bit sums into 8-bit outputs. For output
/// channel `o` and a sum `s` (zero point already accounted for), with `a =
/// 1 / out_scale` and fused multiply-adds (`fma(x, y, z) = x * y + z`,
/// rounded once):
///
/// - `y = fma(s, scale[o], bias[o])`, the real pre-activation value;
/// - `v = fma(y, a, out_zero)`, or with the activation folded in: ReLU
///   `fma(max(y, 0), a, out_zero)`, ReLU6 `fma(min(max(y, 0), 6), a,
///   out_zero)`, HardSwish `fma(y, min(max(fma(y, f, 3f), 0), 6f),
///   out_zero)` with `f = a / 6` (and `3f`, `6f` those products in `f32`):
///   `relu6(y + 3) / 6 * a` with the factor taken inside the clamp;
/// - `q = round_ties_even(min(max(v, 0), 255))`.
///
/// Ten vector operations from sum to byte where the unfused form took
/// sixteen: in the early layers (16 to 64 inputs per output) the store costs
/// as much as the sums. [`OutQuant::apply`] is the one scalar version.
#[derive(Debug, Clone)]
pub struct Requant {
    /// Per output channel: the real value of one unit of the sum (the
    /// input's scale times the channel's weight scale).
    pub scale: Vec<f32>,
    /// Per output channel: the bias, in real units.
    pub bias: Vec<f32>,
    /// Activation on the real value.
    pub act: Activation,
    /// Per output channel: the output's scale (the same for every channel
    /// of a map quantised per tensor).
    pub out_scale: Vec<f32>,
    /// Per output channel: the output's zero point.
    pub out_zero: Vec<u8>,
}

impl Requant {
    /// The output of channel `o` for sum `sum`: the definition every tier
    /// follows.
    pub fn apply(&self, o: usize, sum: i32) -> u8 {
        self.out_quant(o).apply((sum as f32).mul_add(self.scale[o], self.bias[o]))
    }

    /// The activation and output quantisation of channel `o`.
    pub fn out_quant(&self, o: usize) -> OutQuant {
        OutQuant::new(self.act, self.out_scale[o], self.out_zero[o])
    }
}

/// A [`Requant`] as the vector stores read it: four `f32` per output
/// channel, each array padded with zeros to `len` (whole registers or
/// panels).
#[derive(Debug, Clone)]
pub struct Channels {
    /// [`Requant::scale`].
    pub scale: Vec<f32>,
    /// [`Requant::bias`].
    pub bias: Vec<f32>,
    /// [`OutQuant::factor`] of each channel.
    pub factor: Vec<f32>,
    /// [`OutQuant::zero`] of each channel.
    pub zero: Vec<f32>,
    /// [`OutQuant::offset`] of each channel.
    pub offset: Vec<f32>,
    /// [`OutQuant::cap`] of each channel.
    pub cap: Vec<f32>,
    /// [`Requant::act`].
    pub act: Activation,
    /// Whether the store may leave out its last `max(v, 0)`: HardSwish
    /// (whose least value is -0.375) into outputs whose zero point lies
    /// that far above 0, where every `v` is at least -0.5 and rounds to 0
    /// anyway (see `floor_free` in this module).
    pub floor_free: bool,
}

/// Whether HardSwish outputs of factor `f` (`1 / out_scale / 6`) and zero
/// point `zero` round to at least 0 without the store's `max(v, 0)`: the
/// least `v` is `zero - 2.25 f` (HardSwish's minimum, -0.375 at -1.5,
/// times `6 f`), less a few roundings of `f32` (a relative 1e-5 covers
/// them), and `round_ties_even` takes everything from -0.5 to 0.
fn floor_free(f: f32, zero: f32) -> bool {
    f64::from(zero) + 0.5 >= 2.25 * f64::from(f) * (1.0 + 1e-5)
}

impl Channels {
    /// `r`'s channels, padded to `len` (at least as many).
    pub fn new(r: &Requant, len: usize) -> Self {
        let n = r.scale.len();
        assert!(r.bias.len() == n && r.out_scale.len() == n && r.out_zero.len() == n, "one value per channel");
        let outs: Vec<OutQuant> = (0..n).map(|o| r.out_quant(o)).collect();
        let padded = |v: Vec<f32>| v.into_iter().chain(std::iter::repeat(0.0)).take(len.max(n)).collect();
        Channels {
            scale: padded(r.scale.clone()),
            bias: padded(r.bias.clone()),
            factor: padded(outs.iter().map(|q| q.factor).collect()),
            zero: padded(outs.iter().map(|q| q.zero).collect()),
            offset: padded(outs.iter().map(|q| q.offset).collect()),
            cap: padded(outs.iter().map(|q| q.cap).collect()),
            act: r.act,
            floor_free: r.act == Activation::HardSwish && outs.iter().all(|q| floor_free(q.factor, q.zero)),
        }
    }

    /// Output `o` of the real sum `sum` (an integer sum as `f32`, or the
    /// real value to quantise): [`Requant::apply`].
    #[inline(always)]
    pub fn apply(&self, o: usize, sum: f32) -> u8 {
        let out = OutQuant {
            act: self.act,
            factor: self.factor[o],
            zero: self.zero[o],
            offset: self.offset[o],
            cap: self.cap[o],
        };
        out.apply(sum.mul_add(self.scale[o], self.bias[o]))
    }
}

/// The activation and the output's quantisation of a [`Requant`], with the
/// factor the vector code uses (so that both use the same `f32` values).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OutQuant {
    /// The activation folded into the last multiply-add.
    pub act: Activation,
    /// `1 / out_scale`, divided by 6 for HardSwish.
    pub factor: f32,
    /// The output's zero point.
    pub zero: f32,
    /// HardSwish: `3 * factor`, the clamp's lower end at `y = -3`.
    pub offset: f32,
    /// HardSwish: `6 * factor`, the clamp's upper end.
    pub cap: f32,
}

impl OutQuant {
    /// For outputs of scale `out_scale` and zero point `out_zero` after `act`.
    pub fn new(act: Activation, out_scale: f32, out_zero: u8) -> Self {
        let inv = 1.0 / out_scale;
        let factor = if act == Activation::HardSwish { inv / 6.0 } else { inv };
        OutQuant { act, factor, zero: f32::from(out_zero), offset: 3.0 * factor, cap: 6.0 * factor }
    }

    /// The `u8` of the real pre-activation value `y` ([`Requant`] defines it).
    #[inline(always)]
    // max then min, the vector code's order: a NaN becomes 0 in both.
    #[allow(clippy::manual_clamp)]
    pub fn apply(&self, y: f32) -> u8 {
        let v = match self.act {
            Activation::None => y.mul_add(self.factor, self.zero),
            Activation::Relu => y.max(0.0).mul_add(self.factor, self.zero),
            Activation::Relu6 => y.max(0.0).min(6.0).mul_add(self.factor, self.zero),
            Activation::HardSwish => y.mul_add(y.mul_add(self.factor, self.offset).max(0.0).min(self.cap), self.zero),
        };
        v.max(0.0).min(255.0).round_ties_even() as u8
    }
}

#[cfg(test)]
mod tests {
    use super::{floor_free, OutQuant};
    use crate::kernels::Activation;

    /// Wherever [`floor_free`] holds, HardSwish's `v` before the store's
    /// `max(v, 0)` is at least -0.5 for every `y`, so rounding gives the
    /// same byte without it: checked on a dense grid of `y` through
    /// HardSwish's minimum at -1.5, for output scales and zero points
    /// around the bound.
    #[test]
    fn unfloored_hard_swish_stores_round_to_at_least_zero() {
        let mut checked = 0;
        for zero in 0..=40u8 {
            for step in 0..400 {
                let out_scale = 0.005 + step as f32 * 0.0005;
                let q = OutQuant::new(Activation::HardSwish, out_scale, zero);
                if !floor_free(q.factor, q.zero) {
                    continue;
                }
                for i in 0..=3000 {
                    let y = -3.0 + i as f32 * 0.001;
                    let v = y.mul_add(y.mul_add(q.factor, q.offset).max(0.0).min(q.cap), q.zero);
                    assert!(v >= -0.5, "zero {zero}, scale {out_scale}: v({y}) = {v}");
                }
                checked += 1;
            }
        }
        // Both sides of the bound were met.
        assert!(checked > 1000 && checked < 41 * 400, "{checked} floor-free cases");
    }
}
