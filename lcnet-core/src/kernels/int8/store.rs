//! The requantisation in vector registers, for every SIMD tier: what each
//! int8 kernel's store computes before it rounds its lanes to bytes.

use std::marker::PhantomData;

use super::Channels;
use crate::kernels::simd::Vector;
use crate::kernels::Activation;

/// Which activation a store applies: fixed when the kernel is compiled
/// ([`HardSwishAct`], [`HardSwishUnfloored`]), or read from the channels at
/// each store ([`AnyAct`]), a branch that LLVM leaves in the store loops.
pub trait Act: Copy {
    /// Whether the store ends with `max(v, 0)` (see
    /// [`Channels::floor_free`]).
    const FLOOR: bool = true;
    /// The activation of channels whose own is `channels`.
    fn of(channels: Activation) -> Activation;
}

/// The channels' activation, matched at each store.
#[derive(Clone, Copy)]
pub struct AnyAct;

/// HardSwish, PP-LCNet's activation in every int8 layer.
#[derive(Clone, Copy)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))] // the x86 kernels fix it
pub struct HardSwishAct;

/// HardSwish into channels whose store needs no `max(v, 0)`.
#[derive(Clone, Copy)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))] // the x86 kernels fix it
pub struct HardSwishUnfloored;

impl Act for AnyAct {
    #[inline(always)]
    fn of(channels: Activation) -> Activation {
        channels
    }
}

impl Act for HardSwishAct {
    #[inline(always)]
    fn of(_: Activation) -> Activation {
        Activation::HardSwish
    }
}

impl Act for HardSwishUnfloored {
    const FLOOR: bool = false;
    #[inline(always)]
    fn of(_: Activation) -> Activation {
        Activation::HardSwish
    }
}

/// Runs `$body` with the type `$A` the [`Act`] of [`Channels`] `$channels`.
#[cfg_attr(not(target_arch = "x86_64"), allow(unused_macros))] // used by the x86 kernels
macro_rules! with_act {
    ($channels:expr, $A:ident => $body:expr) => {{
        let channels: &$crate::kernels::int8::Channels = $channels;
        if channels.act == $crate::kernels::Activation::HardSwish && channels.floor_free {
            type $A = $crate::kernels::int8::store::HardSwishUnfloored;
            $body
        } else if channels.act == $crate::kernels::Activation::HardSwish {
            type $A = $crate::kernels::int8::store::HardSwishAct;
            $body
        } else {
            type $A = $crate::kernels::int8::store::AnyAct;
            $body
        }
    }};
}
#[cfg_attr(not(target_arch = "x86_64"), allow(unused_imports))]
pub(crate) use with_act;

/// The constants of a [`Channels`]' store in registers, made once per tile
/// or row, for activation `A`.
#[derive(Clone, Copy)]
pub struct Output<'a, F, A = AnyAct> {
    channels: &'a Channels,
    six: F,
    act: PhantomData<A>,
}

impl<'a, F: Vector, A: Act> Output<'a, F, A> {
    /// For the stores of `channels`.
    ///
    /// # Panics
    /// If `A` fixes an activation that is not the channels'.
    ///
    /// # Safety
    /// The ISA of `F`.
    #[inline(always)]
    pub unsafe fn new(channels: &'a Channels) -> Self {
        assert!(A::of(channels.act) == channels.act, "a store for another activation");
        assert!(A::FLOOR || channels.floor_free, "a store without the floor its channels need");
        // SAFETY: forwarded from the caller.
        unsafe { Output { channels, six: F::splat_value(6.0), act: PhantomData } }
    }
}

/// The requantisation constants of channels `o..o + LANES` in registers:
/// for a kernel that stores many pixels of the same channels.
#[derive(Clone, Copy)]
pub struct Lanes<F, A = AnyAct> {
    scale: F,
    bias: F,
    factor: F,
    zero: F,
    offset: F,
    cap: F,
    six: F,
    act: Activation,
    fixed: PhantomData<A>,
}

impl<F: Vector, A: Act> Output<'_, F, A> {
    /// The constants of channels `o..o + LANES`.
    ///
    /// # Safety
    /// The ISA of `F`, and `o + LANES` at most the channels' padded length.
    #[inline(always)]
    pub unsafe fn lanes(&self, o: usize) -> Lanes<F, A> {
        let ch = self.channels;
        debug_assert!(o + F::LANES <= ch.scale.len());
        // SAFETY: forwarded from the caller; the arrays have one length.
        unsafe {
            Lanes {
                scale: F::load(ch.scale.as_ptr().add(o)),
                bias: F::load(ch.bias.as_ptr().add(o)),
                factor: F::load(ch.factor.as_ptr().add(o)),
                zero: F::load(ch.zero.as_ptr().add(o)),
                offset: F::load(ch.offset.as_ptr().add(o)),
                cap: F::load(ch.cap.as_ptr().add(o)),
                six: self.six,
                act: ch.act,
                fixed: PhantomData,
            }
        }
    }
}

impl<F: Vector, A: Act> Lanes<F, A> {
    /// `sums` (as `f32`) times their scale plus their bias, the activation
    /// and the output's quantisation folded into one more multiply-add, at
    /// least 0: the operations and order of [`Channels::apply`] up to its
    /// rounding, which the caller's store does (to nearest, ties to even,
    /// capped at 255).
    ///
    /// # Safety
    /// The ISA of `F`.
    #[inline(always)]
    pub unsafe fn requantised(&self, sums: F) -> F {
        // SAFETY: forwarded from the caller.
        unsafe {
            let (factor, out_zero) = (self.factor, self.zero);
            let y = F::mul_add(sums, self.scale, self.bias);
            let zero = F::zero();
            let v = match A::of(self.act) {
                Activation::None => F::mul_add(y, factor, out_zero),
                Activation::Relu => F::mul_add(y.max(zero), factor, out_zero),
                Activation::Relu6 => F::mul_add(y.max(zero).min(self.six), factor, out_zero),
                Activation::HardSwish => {
                    let t = F::mul_add(y, factor, self.offset).max(zero).min(self.cap);
                    F::mul_add(y, t, out_zero)
                }
            };
            if A::FLOOR {
                v.max(zero)
            } else {
                v
            }
        }
    }
}

/// [`Lanes::requantised`] for channels `o..o + LANES` of `out`.
///
/// # Safety
/// The ISA of `F`, and `o + LANES` at most the channels' padded length.
#[inline(always)]
pub unsafe fn requantised<F: Vector, A: Act>(sums: F, o: usize, out: &Output<F, A>) -> F {
    // SAFETY: forwarded from the caller.
    unsafe { out.lanes(o).requantised(sums) }
}
