//! Vector helpers shared by the hand-written kernels.

#[cfg(target_arch = "x86_64")]
pub mod avx2;
