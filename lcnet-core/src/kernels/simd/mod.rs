//! Vector helpers shared by the hand-written kernels.
//!
//! A hand-written kernel body is written once, generic over [`Vector`], and
//! instantiated inside an AVX2+FMA or an AVX-512 `#[target_feature]`
//! function, or for NEON (as tract-linalg and gemm do): the same loads,
//! fused multiply-adds and epilogue on 16, 8 or 4 lanes.

#[cfg(target_arch = "x86_64")]
pub mod avx2;
#[cfg(target_arch = "x86_64")]
pub mod avx512;
#[cfg(target_arch = "aarch64")]
pub mod neon;

use crate::kernels::Activation;

/// One SIMD register of `f32` lanes and the operations the kernels use.
///
/// # Safety
/// Every method may only run on a CPU with the instance's ISA, inside a
/// function compiled for it (so that the intrinsics inline).
pub trait Vector: Copy {
    /// `f32` lanes per register.
    const LANES: usize;
    /// Vector registers of the ISA (16 on AVX2, 32 on AVX-512 and NEON):
    /// how many accumulators and inputs a kernel may keep in flight.
    const REGISTERS: usize;
    /// The narrower vector of the same ISA for a channel tail shorter than
    /// `LANES` (8-lane [`Ymm`](avx2::Ymm) under AVX-512; itself where there is
    /// no narrower one worth using).
    type Tail: Vector;
    /// All lanes zero.
    unsafe fn zero() -> Self;
    /// `LANES` values from `p` (unaligned).
    unsafe fn load(p: *const f32) -> Self;
    /// The lanes to `p` (unaligned).
    unsafe fn store(self, p: *mut f32);
    /// `*p` in every lane.
    unsafe fn splat(p: *const f32) -> Self;
    /// `a * b + c`, fused.
    unsafe fn mul_add(a: Self, b: Self, c: Self) -> Self;
    /// `v` in every lane.
    unsafe fn splat_value(v: f32) -> Self;
    /// Lane-wise `self + o`.
    unsafe fn add(self, o: Self) -> Self;
    /// Lane-wise `self * o`.
    unsafe fn mul(self, o: Self) -> Self;
    /// Lane-wise maximum (`o` where `self` is NaN, as `f32::max` gives).
    unsafe fn max(self, o: Self) -> Self;
    /// Lane-wise minimum.
    unsafe fn min(self, o: Self) -> Self;

    /// `act` on every lane, in the same operations and order as
    /// [`Activation::apply`] (so every path agrees to the last bit).
    #[inline(always)]
    unsafe fn act(self, act: Activation) -> Self {
        // SAFETY: forwarded from the caller.
        unsafe {
            let zero = Self::zero();
            match act {
                Activation::None => self,
                Activation::Relu => self.max(zero),
                Activation::Relu6 => self.max(zero).min(Self::splat_value(6.0)),
                Activation::HardSwish => {
                    let t = self.add(Self::splat_value(3.0)).max(zero).min(Self::splat_value(6.0));
                    self.mul(t).mul(Self::splat_value(1.0 / 6.0))
                }
            }
        }
    }
}

/// `body` once for each of the first `J` accumulator columns, with
/// `acc` naming the column's array and `j` its index (a constant).
macro_rules! columns {
    ($n:expr; $($col:ident),* => |$acc:ident, $j:ident| $body:expr) => {
        columns!(@ $n, $body, $acc, $j, 0, $($col),*)
    };
    (@ $n:expr, $body:expr, $acc:ident, $j:ident, $k:expr, $col:ident $(, $rest:ident)*) => {
        if $k < $n {
            let $j: usize = $k;
            let $acc = &mut $col;
            $body;
        }
        columns!(@ $n, $body, $acc, $j, $k + 1 $(, $rest)*)
    };
    (@ $n:expr, $body:expr, $acc:ident, $j:ident, $k:expr) => {};
}
pub(crate) use columns;

/// `body` for `i` = 0, 1, .. up to `n - 1` (at most 12), written out with
/// constant indices: LLVM does not always unroll a loop over a tile's
/// accumulators (12 x 2 of them), and a loop that stays a loop keeps
/// them in memory instead of registers.
macro_rules! unrolled {
    ($i:ident < $n:expr => $body:expr) => {
        unrolled!(@ $i, $n, $body, 0 1 2 3 4 5 6 7 8 9 10 11)
    };
    (@ $i:ident, $n:expr, $body:expr, $($k:literal)*) => {{
        debug_assert!($n <= 12);
        $(if $k < $n {
            let $i = $k;
            $body;
        })*
    }};
}
pub(crate) use unrolled;
