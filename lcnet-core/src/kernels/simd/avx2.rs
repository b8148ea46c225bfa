//! AVX2 building blocks: the fused activations on 8 lanes.

use std::arch::x86_64::*;

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
