//! The int8 building blocks of each x86 tier: a register of `i32` sums and
//! the step that adds four `u8 x i8` products into each lane.

use std::arch::x86_64::*;

use crate::kernels::simd::avx2::Ymm;
use crate::kernels::simd::avx512::Zmm;
use crate::kernels::simd::Vector;

use super::store::requantised;
pub(crate) use super::store::with_act;
pub use super::store::{Act, Output};

/// In a wide panel block, the bytes from a register's even weight pairs to
/// its odd ones: the block holds the even pairs of its 16 outputs, then the
/// odd pairs.
pub const WIDE_ODD: usize = super::pwconv::NR * 4;

/// A register of `i32` sums and what the int8 kernels do with it.
///
/// # Safety
/// Every method may only run on a CPU with the instance's ISA, inside a
/// function compiled for it, with pointers valid for the bytes it reads or
/// writes.
pub trait Dot: Copy {
    /// The `f32` register with as many lanes, for the requantisation.
    type F: Vector;
    /// The weights of one step: one register of bytes, or two of `i16`.
    type W: Copy;
    /// Whether the step reads the weights widened to `i16` (the panels of
    /// `QPwWeights::wide`) rather than as bytes.
    const WIDE: bool;
    /// All lanes zero.
    unsafe fn zero() -> Self;
    /// `LANES` sums from `p`.
    unsafe fn load(p: *const i32) -> Self;
    /// The four bytes at `p` in every lane.
    unsafe fn splat4(p: *const u8) -> Self;
    /// `4 * LANES` weights from `p`, four per lane: as bytes, or (`WIDE`)
    /// as the `i16` pairs of a wide panel block.
    unsafe fn weights(p: *const i8) -> Self::W;
    /// Each lane plus the four products of `x`'s bytes (unsigned) and the
    /// weights (signed; in `NARROW_MIN..=NARROW_MAX` for the `vpmaddubsw` steps).
    unsafe fn dot(self, x: Self, w: Self::W) -> Self;
    /// The lanes as `f32` (rounded to nearest, ties to even).
    unsafe fn to_f32(self) -> Self::F;
    /// `f`'s lanes, at least 0, capped at 255, rounded to nearest (ties to
    /// even) and stored as `LANES` bytes at `p`.
    unsafe fn store_u8(f: Self::F, p: *mut u8);
}

/// AVX-512 VNNI: `vpdpbusd` adds the four products into each lane in one
/// instruction, exactly.
#[derive(Clone, Copy)]
pub struct VnniZmm(__m512i);

/// AVX-VNNI: [`VnniZmm`]'s `vpdpbusd` on 256 bits (AVX2 CPUs with
/// AVX-VNNI: Intel's since Alder Lake).
#[derive(Clone, Copy)]
pub struct VnniYmm(__m256i);

/// AVX-512BW for weights in `NARROW_MIN..=NARROW_MAX`: `vpmaddubsw` (pairs of
/// products into `i16`, which such weights keep from saturating), then `vpmaddwd` by ones (pairs of those
/// into `i32`), then an add: three instructions for VNNI's one.
#[derive(Clone, Copy)]
pub struct BwZmm(__m512i);

/// AVX2: the same three steps as [`BwZmm`] on 256 bits.
#[derive(Clone, Copy)]
pub struct Avx2Ymm(__m256i);

/// AVX-512BW for 8-bit weights, read widened to `i16` (packed so once):
/// the even and the odd input bytes of each lane widened apart (once per
/// broadcast, shared by the registers of a tile), each meeting its weight
/// pairs in a `vpmaddwd` (exact), both added: four instructions per step
/// where [`BwZmm`] needs three.
#[derive(Clone, Copy)]
pub struct BwZmmWide(__m512i);

/// AVX2: [`BwZmmWide`]'s steps on 256 bits.
#[derive(Clone, Copy)]
pub struct Avx2YmmWide(__m256i);

// SAFETY (every method of the impls): forwarded from the caller (see
// the trait), which runs on a CPU with the ISA, in a function compiled for
// it, with valid pointers.
impl Dot for VnniZmm {
    type F = Zmm;
    type W = Self;
    const WIDE: bool = false;
    #[inline(always)]
    unsafe fn zero() -> Self {
        unsafe { VnniZmm(_mm512_setzero_si512()) }
    }
    #[inline(always)]
    unsafe fn load(p: *const i32) -> Self {
        unsafe { VnniZmm(_mm512_loadu_si512(p.cast())) }
    }
    #[inline(always)]
    unsafe fn splat4(p: *const u8) -> Self {
        unsafe { VnniZmm(_mm512_set1_epi32(p.cast::<i32>().read_unaligned())) }
    }
    #[inline(always)]
    unsafe fn weights(p: *const i8) -> Self {
        unsafe { VnniZmm(_mm512_loadu_si512(p.cast())) }
    }
    #[inline(always)]
    unsafe fn dot(self, x: Self, w: Self) -> Self {
        unsafe { VnniZmm(_mm512_dpbusd_epi32(self.0, x.0, w.0)) }
    }
    #[inline(always)]
    unsafe fn to_f32(self) -> Zmm {
        unsafe { Zmm(_mm512_cvtepi32_ps(self.0)) }
    }
    #[inline(always)]
    unsafe fn store_u8(f: Zmm, p: *mut u8) {
        unsafe { store_u8_zmm(f, p) }
    }
}

impl Dot for VnniYmm {
    type F = Ymm;
    type W = Self;
    const WIDE: bool = false;
    #[inline(always)]
    unsafe fn zero() -> Self {
        unsafe { VnniYmm(_mm256_setzero_si256()) }
    }
    #[inline(always)]
    unsafe fn load(p: *const i32) -> Self {
        unsafe { VnniYmm(_mm256_loadu_si256(p.cast())) }
    }
    #[inline(always)]
    unsafe fn splat4(p: *const u8) -> Self {
        unsafe { VnniYmm(_mm256_set1_epi32(p.cast::<i32>().read_unaligned())) }
    }
    #[inline(always)]
    unsafe fn weights(p: *const i8) -> Self {
        unsafe { VnniYmm(_mm256_loadu_si256(p.cast())) }
    }
    #[inline(always)]
    unsafe fn dot(self, x: Self, w: Self) -> Self {
        unsafe { VnniYmm(_mm256_dpbusd_avx_epi32(self.0, x.0, w.0)) }
    }
    #[inline(always)]
    unsafe fn to_f32(self) -> Ymm {
        unsafe { Ymm(_mm256_cvtepi32_ps(self.0)) }
    }
    #[inline(always)]
    unsafe fn store_u8(f: Ymm, p: *mut u8) {
        unsafe { Avx2Ymm::store_u8(f, p) }
    }
}

impl Dot for BwZmm {
    type F = Zmm;
    type W = Self;
    const WIDE: bool = false;
    #[inline(always)]
    unsafe fn zero() -> Self {
        unsafe { BwZmm(_mm512_setzero_si512()) }
    }
    #[inline(always)]
    unsafe fn load(p: *const i32) -> Self {
        unsafe { BwZmm(_mm512_loadu_si512(p.cast())) }
    }
    #[inline(always)]
    unsafe fn splat4(p: *const u8) -> Self {
        unsafe { BwZmm(_mm512_set1_epi32(p.cast::<i32>().read_unaligned())) }
    }
    #[inline(always)]
    unsafe fn weights(p: *const i8) -> Self {
        unsafe { BwZmm(_mm512_loadu_si512(p.cast())) }
    }
    #[inline(always)]
    unsafe fn dot(self, x: Self, w: Self) -> Self {
        unsafe {
            let pairs = _mm512_maddubs_epi16(x.0, w.0);
            BwZmm(_mm512_add_epi32(self.0, _mm512_madd_epi16(pairs, _mm512_set1_epi16(1))))
        }
    }
    #[inline(always)]
    unsafe fn to_f32(self) -> Zmm {
        unsafe { Zmm(_mm512_cvtepi32_ps(self.0)) }
    }
    #[inline(always)]
    unsafe fn store_u8(f: Zmm, p: *mut u8) {
        unsafe { store_u8_zmm(f, p) }
    }
}

impl Dot for Avx2Ymm {
    type F = Ymm;
    type W = Self;
    const WIDE: bool = false;
    #[inline(always)]
    unsafe fn zero() -> Self {
        unsafe { Avx2Ymm(_mm256_setzero_si256()) }
    }
    #[inline(always)]
    unsafe fn load(p: *const i32) -> Self {
        unsafe { Avx2Ymm(_mm256_loadu_si256(p.cast())) }
    }
    #[inline(always)]
    unsafe fn splat4(p: *const u8) -> Self {
        unsafe { Avx2Ymm(_mm256_set1_epi32(p.cast::<i32>().read_unaligned())) }
    }
    #[inline(always)]
    unsafe fn weights(p: *const i8) -> Self {
        unsafe { Avx2Ymm(_mm256_loadu_si256(p.cast())) }
    }
    #[inline(always)]
    unsafe fn dot(self, x: Self, w: Self) -> Self {
        unsafe {
            let pairs = _mm256_maddubs_epi16(x.0, w.0);
            Avx2Ymm(_mm256_add_epi32(self.0, _mm256_madd_epi16(pairs, _mm256_set1_epi16(1))))
        }
    }
    #[inline(always)]
    unsafe fn to_f32(self) -> Ymm {
        unsafe { Ymm(_mm256_cvtepi32_ps(self.0)) }
    }
    #[inline(always)]
    unsafe fn store_u8(f: Ymm, p: *mut u8) {
        unsafe {
            // At most 255 first (`cvtps` turns values past `i32` into a
            // negative one), then eight i32 in 0..=255 narrowed to bytes.
            let q = _mm256_cvtps_epi32(_mm256_min_ps(f.0, _mm256_set1_ps(255.0)));
            let words = _mm_packus_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256::<1>(q));
            _mm_storel_epi64(p.cast(), _mm_packus_epi16(words, words));
        }
    }
}

impl Dot for BwZmmWide {
    type F = Zmm;
    type W = [__m512i; 2];
    const WIDE: bool = true;
    #[inline(always)]
    unsafe fn zero() -> Self {
        unsafe { BwZmmWide(_mm512_setzero_si512()) }
    }
    #[inline(always)]
    unsafe fn load(p: *const i32) -> Self {
        unsafe { BwZmmWide(_mm512_loadu_si512(p.cast())) }
    }
    #[inline(always)]
    unsafe fn splat4(p: *const u8) -> Self {
        unsafe { BwZmmWide(_mm512_set1_epi32(p.cast::<i32>().read_unaligned())) }
    }
    #[inline(always)]
    unsafe fn weights(p: *const i8) -> [__m512i; 2] {
        unsafe { [_mm512_loadu_si512(p.cast()), _mm512_loadu_si512(p.add(WIDE_ODD).cast())] }
    }
    #[inline(always)]
    unsafe fn dot(self, x: Self, w: [__m512i; 2]) -> Self {
        unsafe {
            // Bytes 0 and 2 of each lane as i16, then bytes 1 and 3: the
            // inputs the even and the odd weight pairs take.
            let x_even = _mm512_and_si512(x.0, _mm512_set1_epi16(0xff));
            let x_odd = _mm512_srli_epi16::<8>(x.0);
            let sum = _mm512_add_epi32(self.0, _mm512_madd_epi16(x_even, w[0]));
            BwZmmWide(_mm512_add_epi32(sum, _mm512_madd_epi16(x_odd, w[1])))
        }
    }
    #[inline(always)]
    unsafe fn to_f32(self) -> Zmm {
        unsafe { Zmm(_mm512_cvtepi32_ps(self.0)) }
    }
    #[inline(always)]
    unsafe fn store_u8(f: Zmm, p: *mut u8) {
        unsafe { store_u8_zmm(f, p) }
    }
}

impl Dot for Avx2YmmWide {
    type F = Ymm;
    type W = [__m256i; 2];
    const WIDE: bool = true;
    #[inline(always)]
    unsafe fn zero() -> Self {
        unsafe { Avx2YmmWide(_mm256_setzero_si256()) }
    }
    #[inline(always)]
    unsafe fn load(p: *const i32) -> Self {
        unsafe { Avx2YmmWide(_mm256_loadu_si256(p.cast())) }
    }
    #[inline(always)]
    unsafe fn splat4(p: *const u8) -> Self {
        unsafe { Avx2YmmWide(_mm256_set1_epi32(p.cast::<i32>().read_unaligned())) }
    }
    #[inline(always)]
    unsafe fn weights(p: *const i8) -> [__m256i; 2] {
        unsafe { [_mm256_loadu_si256(p.cast()), _mm256_loadu_si256(p.add(WIDE_ODD).cast())] }
    }
    #[inline(always)]
    unsafe fn dot(self, x: Self, w: [__m256i; 2]) -> Self {
        unsafe {
            let x_even = _mm256_and_si256(x.0, _mm256_set1_epi16(0xff));
            let x_odd = _mm256_srli_epi16::<8>(x.0);
            let sum = _mm256_add_epi32(self.0, _mm256_madd_epi16(x_even, w[0]));
            Avx2YmmWide(_mm256_add_epi32(sum, _mm256_madd_epi16(x_odd, w[1])))
        }
    }
    #[inline(always)]
    unsafe fn to_f32(self) -> Ymm {
        unsafe { Ymm(_mm256_cvtepi32_ps(self.0)) }
    }
    #[inline(always)]
    unsafe fn store_u8(f: Ymm, p: *mut u8) {
        unsafe { Avx2Ymm::store_u8(f, p) }
    }
}

/// The store every int8 kernel ends with, for channels `o..o + LANES`:
/// `sums` (as `f32`) requantised ([`requantised`]) and stored as bytes to
/// `dst`.
///
/// # Safety
/// As for [`Dot`]'s methods and [`requantised`]: the ISA, the channels, and
/// `LANES` bytes at `dst`.
#[inline(always)]
pub unsafe fn requantise<D: Dot, A: Act>(sums: D::F, o: usize, out: &Output<D::F, A>, dst: *mut u8) {
    // SAFETY: forwarded from the caller.
    unsafe { D::store_u8(requantised(sums, o, out), dst) }
}

/// Sixteen `f32` of at least 0, rounded to nearest even, as 16 bytes at
/// `p`: `vpmovusdb` caps them at 255 (a value past `i32`, which `cvtps`
/// turns into `0x8000_0000`, too).
#[inline(always)]
unsafe fn store_u8_zmm(f: Zmm, p: *mut u8) {
    // SAFETY: forwarded from the caller (AVX-512F, 16 bytes at `p`).
    unsafe { _mm_storeu_si128(p.cast(), _mm512_cvtusepi32_epi8(_mm512_cvtps_epi32(f.0))) }
}
