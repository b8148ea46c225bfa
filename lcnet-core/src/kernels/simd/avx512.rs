//! AVX-512 building blocks: [`Zmm`], 16 lanes.

use std::arch::x86_64::*;

use super::Vector;

/// A 512-bit register of 16 lanes (AVX-512F).
#[derive(Clone, Copy)]
pub struct Zmm(pub(crate) __m512);

// SAFETY (every method): the caller runs on an AVX-512F CPU in a function
// compiled with that feature, and keeps the pointers in bounds.
impl Vector for Zmm {
    const LANES: usize = 16;
    const REGISTERS: usize = 32;
    type Tail = super::avx2::Ymm;
    #[inline(always)]
    unsafe fn zero() -> Self {
        unsafe { Zmm(_mm512_setzero_ps()) }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        unsafe { Zmm(_mm512_loadu_ps(p)) }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        unsafe { _mm512_storeu_ps(p, self.0) }
    }
    #[inline(always)]
    unsafe fn splat(p: *const f32) -> Self {
        unsafe { Zmm(_mm512_set1_ps(*p)) }
    }
    #[inline(always)]
    unsafe fn mul_add(a: Self, b: Self, c: Self) -> Self {
        unsafe { Zmm(_mm512_fmadd_ps(a.0, b.0, c.0)) }
    }
    #[inline(always)]
    unsafe fn splat_value(v: f32) -> Self {
        unsafe { Zmm(_mm512_set1_ps(v)) }
    }
    #[inline(always)]
    unsafe fn add(self, o: Self) -> Self {
        unsafe { Zmm(_mm512_add_ps(self.0, o.0)) }
    }
    #[inline(always)]
    unsafe fn mul(self, o: Self) -> Self {
        unsafe { Zmm(_mm512_mul_ps(self.0, o.0)) }
    }
    #[inline(always)]
    unsafe fn max(self, o: Self) -> Self {
        unsafe { Zmm(_mm512_max_ps(self.0, o.0)) }
    }
    #[inline(always)]
    unsafe fn min(self, o: Self) -> Self {
        unsafe { Zmm(_mm512_min_ps(self.0, o.0)) }
    }
}
