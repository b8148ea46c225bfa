//! AVX2 building blocks: the fused activations on 8 lanes, and [`Ymm`].

use std::arch::x86_64::*;

use super::Vector;
use crate::kernels::Activation;

/// `act` on 8 lanes, the same operations in the same order as
/// [`Activation::apply`] so the paths agree to the last bit.
#[inline(always)]
pub unsafe fn act(x: __m256, act: Activation) -> __m256 {
    // SAFETY: callers run with AVX2 enabled (their own `#[target_feature]`).
    unsafe {
        match act {
            Activation::None => x,
            Activation::Relu => _mm256_max_ps(x, _mm256_setzero_ps()),
            Activation::Relu6 => _mm256_min_ps(_mm256_max_ps(x, _mm256_setzero_ps()), _mm256_set1_ps(6.0)),
            Activation::HardSwish => {
                let t = _mm256_add_ps(x, _mm256_set1_ps(3.0));
                let t = _mm256_min_ps(_mm256_max_ps(t, _mm256_setzero_ps()), _mm256_set1_ps(6.0));
                _mm256_mul_ps(_mm256_mul_ps(x, t), _mm256_set1_ps(1.0 / 6.0))
            }
        }
    }
}

/// A 256-bit register of 8 lanes (AVX2 + FMA).
#[derive(Clone, Copy)]
pub struct Ymm(__m256);

// SAFETY (every method): the caller runs on an AVX2+FMA CPU in a function
// compiled with those features, and keeps the pointers in bounds.
impl Vector for Ymm {
    const LANES: usize = 8;
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
    unsafe fn act(self, a: Activation) -> Self {
        unsafe { Ymm(act(self.0, a)) }
    }
}
