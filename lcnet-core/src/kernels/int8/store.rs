//! The requantisation in vector registers, for every SIMD tier: what each
//! int8 kernel's store computes before it rounds its lanes to bytes.

use super::OutQuant;
use crate::kernels::simd::Vector;
use crate::kernels::Activation;

/// An [`OutQuant`] in registers, made once per tile or row.
#[derive(Clone, Copy)]
pub struct Output<F> {
    act: Activation,
    factor: F,
    zero: F,
    three: F,
    six: F,
}

impl<F: Vector> Output<F> {
    /// `q`'s values in every lane.
    ///
    /// # Safety
    /// The ISA of `F`.
    #[inline(always)]
    pub unsafe fn new(q: &OutQuant) -> Self {
        // SAFETY: forwarded from the caller.
        unsafe {
            Output {
                act: q.act,
                factor: F::splat_value(q.factor),
                zero: F::splat_value(q.zero),
                three: F::splat_value(3.0),
                six: F::splat_value(6.0),
            }
        }
    }
}

/// `sums` (as `f32`) times `scale` plus `bias` (per-channel values at those
/// pointers), the activation and the output's quantisation folded into one
/// more multiply-add, at least 0: the operations and order of
/// [`OutQuant::apply`] up to its rounding, which the caller's store does
/// (to nearest, ties to even, capped at 255).
///
/// # Safety
/// The ISA of `F`, and `LANES` values at each pointer.
#[inline(always)]
pub unsafe fn requantised<F: Vector>(sums: F, scale: *const f32, bias: *const f32, out: &Output<F>) -> F {
    // SAFETY: forwarded from the caller.
    unsafe {
        let y = F::mul_add(sums, F::load(scale), F::load(bias));
        let zero = F::zero();
        let v = match out.act {
            Activation::None => F::mul_add(y, out.factor, out.zero),
            Activation::Relu => F::mul_add(y.max(zero), out.factor, out.zero),
            Activation::Relu6 => F::mul_add(y.max(zero).min(out.six), out.factor, out.zero),
            Activation::HardSwish => {
                let t = y.add(out.three).max(zero).min(out.six);
                F::mul_add(y, t.mul(out.factor), out.zero)
            }
        };
        v.max(zero)
    }
}
