//! NEON building blocks: [`Neon`], 4 lanes (aarch64 Advanced SIMD).

use std::arch::aarch64::*;

use super::Vector;

/// A 128-bit register of 4 lanes. NEON and its fused multiply-add are part
/// of every aarch64 CPU, so no `#[target_feature]` trampoline is needed.
#[derive(Clone, Copy)]
pub struct Neon(pub(crate) float32x4_t);

// SAFETY (every method): NEON is in aarch64's base instruction set; the
// caller keeps the pointers in bounds.
impl Vector for Neon {
    const LANES: usize = 4;
    const REGISTERS: usize = 32;
    type Tail = Neon;
    #[inline(always)]
    unsafe fn zero() -> Self {
        unsafe { Neon(vdupq_n_f32(0.0)) }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        unsafe { Neon(vld1q_f32(p)) }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        unsafe { vst1q_f32(p, self.0) }
    }
    #[inline(always)]
    unsafe fn splat(p: *const f32) -> Self {
        // `ld1r`: load and broadcast in one instruction.
        unsafe { Neon(vld1q_dup_f32(p)) }
    }
    #[inline(always)]
    unsafe fn mul_add(a: Self, b: Self, c: Self) -> Self {
        // `fmla`: c + a * b, one rounding.
        unsafe { Neon(vfmaq_f32(c.0, a.0, b.0)) }
    }
    #[inline(always)]
    unsafe fn splat_value(v: f32) -> Self {
        unsafe { Neon(vdupq_n_f32(v)) }
    }
    #[inline(always)]
    unsafe fn add(self, o: Self) -> Self {
        unsafe { Neon(vaddq_f32(self.0, o.0)) }
    }
    #[inline(always)]
    unsafe fn mul(self, o: Self) -> Self {
        unsafe { Neon(vmulq_f32(self.0, o.0)) }
    }
    #[inline(always)]
    unsafe fn max(self, o: Self) -> Self {
        // `fmaxnm`, not `fmax`: a NaN lane gives the other operand, as
        // `f32::max` and x86's `maxps` with the number second do.
        unsafe { Neon(vmaxnmq_f32(self.0, o.0)) }
    }
    #[inline(always)]
    unsafe fn min(self, o: Self) -> Self {
        unsafe { Neon(vminnmq_f32(self.0, o.0)) }
    }
}
