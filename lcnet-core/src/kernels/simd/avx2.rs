//! AVX2 building blocks: [`Ymm`], 8 lanes.

use std::arch::x86_64::*;

use super::Vector;

/// A 256-bit register of 8 lanes (AVX2 + FMA).
#[derive(Clone, Copy)]
pub struct Ymm(pub(crate) __m256);

// SAFETY (every method): the caller runs on an AVX2+FMA CPU in a function
// compiled with those features, and keeps the pointers in bounds.
impl Vector for Ymm {
    const LANES: usize = 8;
    const REGISTERS: usize = 16;
    type Tail = Ymm;
    #[inline(always)]
    unsafe fn zero() -> Self {
        unsafe { Ymm(_mm256_setzero_ps()) }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        unsafe { Ymm(_mm256_loadu_ps(p)) }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        unsafe { _mm256_storeu_ps(p, self.0) }
    }
    #[inline(always)]
    unsafe fn splat(p: *const f32) -> Self {
        unsafe { Ymm(_mm256_broadcast_ss(&*p)) }
    }
    #[inline(always)]
    unsafe fn mul_add(a: Self, b: Self, c: Self) -> Self {
        unsafe { Ymm(_mm256_fmadd_ps(a.0, b.0, c.0)) }
    }
    #[inline(always)]
    unsafe fn splat_value(v: f32) -> Self {
        unsafe { Ymm(_mm256_set1_ps(v)) }
    }
    #[inline(always)]
    unsafe fn add(self, o: Self) -> Self {
        unsafe { Ymm(_mm256_add_ps(self.0, o.0)) }
    }
    #[inline(always)]
    unsafe fn mul(self, o: Self) -> Self {
        unsafe { Ymm(_mm256_mul_ps(self.0, o.0)) }
    }
    #[inline(always)]
    unsafe fn max(self, o: Self) -> Self {
        unsafe { Ymm(_mm256_max_ps(self.0, o.0)) }
    }
    #[inline(always)]
    unsafe fn min(self, o: Self) -> Self {
        unsafe { Ymm(_mm256_min_ps(self.0, o.0)) }
    }
}
