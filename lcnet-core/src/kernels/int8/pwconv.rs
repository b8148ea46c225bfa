//! int8 pointwise (1x1) convolution: `[pixels, in] u8 x [in, out] i8` summed
//! in `i32`, requantised to `u8` with bias and activation in the store.
//!
//! The weights are packed once into panels of [`NR`] output channels, and
//! within a panel by groups of four inputs: for inputs `4q .. 4q + 4`, the
//! panel holds 16 x 4 bytes (one cache line), output by output. One
//! broadcast of a pixel's four input bytes then meets a register of weights
//! for 16 outputs (AVX-512) or 8 (AVX2), four products per lane, which is
//! the operand layout of `vpdpbusd` and `vpmaddubsw` alike.
//!
//! The input's zero point is folded into each output's starting sum:
//! `sum((x - zx) * w) = sum(x * w) - zx * sum(w)`.

use rayon::prelude::*;

#[cfg(target_arch = "x86_64")]
mod amx;

use super::{Channels, Requant, NARROW_MAX, NARROW_MIN, WEIGHT_MAX, WEIGHT_MIN};
use crate::kernels::{Isa, Tier};

/// Output channels per packed panel.
pub const NR: usize = 16;

/// Packed int8 weights of a 1x1 convolution and its requantisation.
#[derive(Debug, Clone)]
pub struct QPwWeights {
    /// Panel `p`, input group `q`: bytes `(p * groups + q) * 64 ..`, output
    /// `j` of the panel at `4 * j`, its inputs `4q .. 4q + 4` in order;
    /// zero past the real inputs and outputs.
    packed: Vec<i8>,
    /// Per output channel (padded to whole panels): the sum's start,
    /// `-zero_in * sum(w)`.
    start: Vec<i32>,
    /// Per output channel, padded: the start for inputs made signed (`x -
    /// 128`, NEON's `sdot` takes `i8 x i8`): `(128 - zero_in) * sum(w)`.
    #[cfg_attr(not(target_arch = "aarch64"), allow(dead_code))] // only NEON uses it
    start_signed: Vec<i32>,
    /// The requantisation per output channel, padded to whole panels.
    requant: Channels,
    in_channels: usize,
    out_channels: usize,
    /// Every weight in `NARROW_MIN..=NARROW_MAX`: `vpmaddubsw` is exact.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))] // only x86 has that step
    narrow: bool,
    /// For the exact wide step (8-bit weights without VNNI), made on its
    /// first use (a VNNI CPU never holds it): `packed`'s panels with each
    /// block's weights as `i16` (little-endian bytes), per output `j` the
    /// pair of inputs `4q, 4q + 2` at `4 * j`, then the pairs `4q + 1, 4q +
    /// 3` from [`WIDE_ODD`](super::dot::WIDE_ODD).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))] // only x86 has that step
    wide: std::sync::OnceLock<Vec<i8>>,
    /// For AMX, made on its first use where `packed` does not fit: its
    /// panels with the input groups padded to whole tile chunks.
    #[cfg(target_arch = "x86_64")]
    amx: std::sync::OnceLock<Vec<i8>>,
}

impl QPwWeights {
    /// Packs `[out, in]` weights (PaddleClas's `[out, in, 1, 1]`) for
    /// inputs with zero point `in_zero`.
    ///
    /// # Panics
    /// If a weight is outside `WEIGHT_MIN..=WEIGHT_MAX`, or the sizes do not
    /// agree (loaders check both first and report them as errors).
    pub fn pack(oi: &[i8], in_channels: usize, in_zero: u8, requant: &Requant) -> Self {
        let (k, n) = (in_channels, requant.scale.len());
        assert_eq!(oi.len(), n * k, "int8 pointwise weight size");
        assert_eq!(requant.bias.len(), n, "one bias per output");
        assert!(oi.iter().all(|w| (WEIGHT_MIN..=WEIGHT_MAX).contains(w)), "int8 weights must be in -127..=127");
        let (panels, groups) = (n.div_ceil(NR), k.div_ceil(4));
        let mut packed = vec![0i8; panels * groups * NR * 4];
        for o in 0..n {
            let (panel, j) = (o / NR, o % NR);
            for i in 0..k {
                packed[(panel * groups + i / 4) * NR * 4 + j * 4 + i % 4] = oi[o * k + i];
            }
        }
        let sums: Vec<i32> = oi.chunks_exact(k.max(1)).map(|w| w.iter().map(|&w| i32::from(w)).sum()).collect();
        let start_with = |zero: i32| {
            let mut start: Vec<i32> = sums.iter().map(|s| -zero * s).collect();
            start.resize(panels * NR, 0);
            start
        };
        let (start, start_signed) = (start_with(i32::from(in_zero)), start_with(i32::from(in_zero) - 128));
        QPwWeights {
            packed,
            start,
            start_signed,
            requant: Channels::new(requant, panels * NR),
            in_channels: k,
            out_channels: n,
            narrow: oi.iter().all(|w| (NARROW_MIN..=NARROW_MAX).contains(w)),
            wide: std::sync::OnceLock::new(),
            #[cfg(target_arch = "x86_64")]
            amx: std::sync::OnceLock::new(),
        }
    }

    /// The wide panels (see [`QPwWeights::wide`]), made on the first call.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))] // only x86 has that step
    fn wide(&self) -> &[i8] {
        self.wide.get_or_init(|| {
            let mut wide = Vec::with_capacity(self.packed.len() * 2);
            for block in self.packed.chunks_exact(NR * 4) {
                for first in [0, 1] {
                    for w in block.chunks_exact(4) {
                        for i in [first, first + 2] {
                            wide.extend(i16::from(w[i]).to_le_bytes().map(|b| b as i8));
                        }
                    }
                }
            }
            wide
        })
    }

    /// The panels for AMX: [`QPwWeights::packed`] itself where its groups
    /// fill whole tile chunks (any layer with a multiple of 64 inputs, or
    /// at most 64 in a multiple of 4), else a padded copy made once.
    #[cfg(target_arch = "x86_64")]
    fn amx_panels(&self) -> &[i8] {
        let (groups, padded) = (self.groups(), amx::padded_groups(self.in_channels));
        if padded == groups {
            return &self.packed;
        }
        self.amx.get_or_init(|| {
            let mut panels = vec![0i8; self.out_channels.div_ceil(NR) * padded * NR * 4];
            for (to, from) in panels.chunks_exact_mut(padded * NR * 4).zip(self.packed.chunks_exact(groups * NR * 4)) {
                to[..from.len()].copy_from_slice(from);
            }
            panels
        })
    }

    /// Input channels.
    pub fn in_channels(&self) -> usize {
        self.in_channels
    }

    /// Output channels.
    pub fn out_channels(&self) -> usize {
        self.out_channels
    }

    /// Groups of four inputs (the last zero-padded).
    fn groups(&self) -> usize {
        self.in_channels.div_ceil(4)
    }

    /// Output `o` of a sum, as every tier computes it.
    #[inline(always)]
    fn requantise(&self, o: usize, sum: i32) -> u8 {
        self.requant.apply(o, sum as f32)
    }
}

/// Runs the convolution over `pixels` NHWC rows of `in_channels` bytes,
/// writing `pixels` rows of `out_channels` bytes, on the best tier.
pub fn run(p: &QPwWeights, input: &[u8], pixels: usize, out: &mut [u8]) {
    run_isa(crate::kernels::isa(), p, input, pixels, out)
}

/// [`run`] on a given ISA (tests force each one).
pub fn run_isa(isa: Isa, p: &QPwWeights, input: &[u8], pixels: usize, out: &mut [u8]) {
    let (k, n) = (p.in_channels, p.out_channels);
    assert_eq!(input.len(), pixels * k, "int8 pointwise input size");
    assert_eq!(out.len(), pixels * n, "int8 pointwise output size");
    if pixels == 0 || n == 0 {
        return;
    }
    if k == 0 {
        return portable::rows(p, input, out);
    }
    let gemm = |out: &mut [u8], input: &[u8]| match isa.tier() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as below; the AMX tier also means the CPU has AMX-INT8
        // and the process holds the permission to use its tiles.
        Tier::Avx512Amx => unsafe { amx::rows(p, input, out) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: an `Isa` holds only a tier runtime detection found on this
        // CPU; each x86 tier implies AVX2 and FMA.
        Tier::Avx512Vnni => unsafe { simd::rows_vnni(p, input, out) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Tier::Avx512 => unsafe { simd::rows_avx512bw(p, input, out) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Tier::Avx2Vnni => unsafe { simd::rows_avx2vnni(p, input, out) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Tier::Avx2 => unsafe { simd::rows_avx2(p, input, out) },
        #[cfg(target_arch = "aarch64")]
        // SAFETY: NEON is in every aarch64 CPU, the dot product extension
        // (ARMv8.2, optional there, in every v8.4 core) was just detected.
        Tier::Neon if std::arch::is_aarch64_feature_detected!("dotprod") => unsafe { neon::rows_sdot(p, input, out) },
        // NEON without `sdot` (Cortex-A53/A72: a Raspberry Pi 3 or 4): portable code.
        Tier::Neon | Tier::Scalar => portable::rows(p, input, out),
        #[allow(unreachable_patterns)] // x86 tiers on other targets
        _ => portable::rows(p, input, out),
    };
    if crate::kernels::threads::threads() == 1 {
        return gemm(out, input);
    }
    let rows = pixels.div_ceil(crate::kernels::threads::threads()).max(1);
    out.par_chunks_mut(rows * n).zip(input.par_chunks(rows * k)).for_each(|(out, input)| gemm(out, input));
}

/// Plain Rust over the packed layout: the fallback on CPUs without AVX2
/// or NEON's dot product.
mod portable {
    use super::{QPwWeights, NR};

    pub fn rows(p: &QPwWeights, input: &[u8], out: &mut [u8]) {
        let (k, n, groups) = (p.in_channels, p.out_channels, p.groups());
        if k == 0 {
            for row in out.chunks_exact_mut(n) {
                for (o, y) in row.iter_mut().enumerate() {
                    *y = p.requantise(o, p.start[o]);
                }
            }
            return;
        }
        for (x, y) in input.chunks_exact(k).zip(out.chunks_exact_mut(n)) {
            for (o, y) in y.iter_mut().enumerate() {
                let panel = &p.packed[(o / NR) * groups * NR * 4..];
                let mut sum = p.start[o];
                for (i, &x) in x.iter().enumerate() {
                    sum += i32::from(x) * i32::from(panel[(i / 4) * NR * 4 + (o % NR) * 4 + i % 4]);
                }
                *y = p.requantise(o, sum);
            }
        }
    }
}

/// One tile body for the x86 tiers, generic over [`Dot`]: `R` pixel
/// rows x `J` registers of outputs, the sums in registers.
#[cfg(target_arch = "x86_64")]
mod simd {
    use super::{QPwWeights, NR};
    use crate::kernels::int8::dot::{with_act, Avx2Ymm, Avx2YmmWide, BwZmm, BwZmmWide, Dot, Output, VnniYmm, VnniZmm};
    use crate::kernels::simd::{columns, unrolled, Vector};

    /// AVX-512 VNNI: 12 rows x 2 registers (32 outputs, two panels): 24
    /// sums, 2 weight registers and the broadcast of the 32.
    ///
    /// # Safety
    /// The CPU must support AVX-512F/BW/DQ/VL and VNNI.
    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma")]
    pub unsafe fn rows_vnni(p: &QPwWeights, input: &[u8], out: &mut [u8]) {
        // SAFETY: the features are enabled.
        unsafe { rows::<VnniZmm, 12, 2>(p, input, out) }
    }

    /// AVX-512BW: 8 rows x 2 registers; each step needs temporaries and
    /// constants beside the 16 sums. `vpmaddubsw` for narrow weights, the
    /// exact wide step for others.
    ///
    /// # Safety
    /// The CPU must support AVX-512F/BW/DQ/VL.
    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")]
    pub unsafe fn rows_avx512bw(p: &QPwWeights, input: &[u8], out: &mut [u8]) {
        // SAFETY: the features are enabled.
        unsafe {
            if p.narrow {
                rows::<BwZmm, 8, 2>(p, input, out)
            } else {
                rows::<BwZmmWide, 8, 2>(p, input, out)
            }
        }
    }

    /// AVX-VNNI: 6 rows x 2 registers (one panel): 12 sums, 2 weight
    /// registers and the broadcast in 16 registers; exact for 8-bit weights.
    ///
    /// # Safety
    /// The CPU must support AVX2, FMA and AVX-VNNI.
    #[target_feature(enable = "avx2,fma,avxvnni")]
    pub unsafe fn rows_avx2vnni(p: &QPwWeights, input: &[u8], out: &mut [u8]) {
        // SAFETY: the features are enabled.
        unsafe { rows::<VnniYmm, 6, 2>(p, input, out) }
    }

    /// AVX2: 4 rows x 2 registers (one panel): 8 sums, 2 weights, the
    /// broadcast, constants and temporaries in 16 registers; narrow or
    /// wide steps as on AVX-512BW.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn rows_avx2(p: &QPwWeights, input: &[u8], out: &mut [u8]) {
        // SAFETY: the features are enabled.
        unsafe {
            if p.narrow {
                rows::<Avx2Ymm, 4, 2>(p, input, out)
            } else {
                rows::<Avx2YmmWide, 4, 2>(p, input, out)
            }
        }
    }

    /// Every row of `input` times every panel, `MR` rows x `J` registers
    /// per tile; a tile with outputs for one register left runs one.
    #[inline(always)]
    unsafe fn rows<D: Dot, const MR: usize, const J: usize>(p: &QPwWeights, input: &[u8], out: &mut [u8]) {
        let (k, n, groups) = (p.in_channels, p.out_channels, p.groups());
        let m = input.len() / k;
        let lanes = <D::F as Vector>::LANES;
        let tn = J * lanes;
        debug_assert!(tn.is_multiple_of(NR) && J <= 2);
        let packed = if D::WIDE { p.wide() } else { &p.packed };
        for col0 in (0..n).step_by(tn) {
            let cols = tn.min(n - col0);
            let panel = &packed[(col0 / NR) * groups * block::<D>()..];
            for r0 in (0..m).step_by(MR) {
                let rows = MR.min(m - r0);
                let tile = Tile {
                    a: &input[r0 * k..(r0 + rows) * k],
                    b: panel,
                    groups,
                    k,
                    c: &mut out[r0 * n + col0..(r0 + rows - 1) * n + col0 + cols],
                    ldc: n,
                    cols,
                    col0,
                };
                // SAFETY: the slices hold the tile's rows (checked by the
                // slicing), the panel its packed weights for every register
                // the tile runs (whole panels), the padded per-channel
                // arrays reach `col0 + tn`.
                unsafe {
                    if cols <= lanes {
                        tile_any::<D, MR, 1>(rows, p, tile)
                    } else {
                        tile_any::<D, MR, J>(rows, p, tile)
                    }
                }
            }
        }
    }

    /// The bytes of one panel's weights for four inputs.
    const fn block<D: Dot>() -> usize {
        if D::WIDE {
            NR * 8
        } else {
            NR * 4
        }
    }

    /// What one tile reads and writes.
    struct Tile<'a> {
        /// Its rows of the input, `k` bytes each.
        a: &'a [u8],
        /// Its first panel's packed weights (the second follows).
        b: &'a [i8],
        groups: usize,
        k: usize,
        /// Its outputs: rows of stride `ldc`, `cols` of each from `col0`.
        c: &'a mut [u8],
        ldc: usize,
        cols: usize,
        col0: usize,
    }

    /// [`tile`] for a runtime row count `rows <= MR`.
    #[inline(always)]
    unsafe fn tile_any<D: Dot, const MR: usize, const J: usize>(rows: usize, p: &QPwWeights, t: Tile) {
        macro_rules! rows {
            ($($r:literal)*) => {
                match rows {
                    $($r if $r <= MR => tile::<D, $r, J>(p, t),)*
                    _ => unreachable!("{rows} rows in a tile of {MR}"),
                }
            };
        }
        // SAFETY: forwarded from the caller.
        unsafe { rows!(12 11 10 9 8 7 6 5 4 3 2 1) }
    }

    /// `R` rows x `J` registers: sums from the starts, every group of four
    /// inputs (the last padded with zeros if `k` is not a multiple of 4),
    /// then the requantisation into `c`.
    #[inline(always)]
    unsafe fn tile<D: Dot, const R: usize, const J: usize>(p: &QPwWeights, t: Tile) {
        let Tile { a, b, groups, k, c, ldc, cols, col0 } = t;
        let lanes = <D::F as Vector>::LANES;
        // Register `j`'s weights: its panel and its place in the panel's
        // blocks (in a wide block, of its even pairs: the odd ones follow).
        let offset = |j: usize| (j * lanes / NR) * groups * block::<D>() + (j * lanes % NR) * 4;
        debug_assert!(a.len() == R * k && c.len() == (R - 1) * ldc + cols);
        debug_assert!(b.len() >= offset(J - 1) + (groups - 1) * block::<D>() + block::<D>() - (NR - lanes) * 4);
        // SAFETY: every pointer below stays inside the slices, per the
        // assertions above; the last group of a row that is not 4 bytes
        // long, and partial stores, go through stack buffers.
        unsafe {
            let [mut acc0, mut acc1] = [[D::zero(); R]; 2];
            columns!(J; acc0, acc1 => |acc, j| {
                let start = D::load(p.start.as_ptr().add(col0 + j * lanes));
                unrolled!(r < R => acc[r] = start);
            });
            let whole = k / 4;
            let w_ptr = |j: usize, q: usize| b.as_ptr().add(offset(j) + q * block::<D>());
            for q in 0..whole {
                let w = [D::weights(w_ptr(0, q)), D::weights(w_ptr(J - 1, q))];
                unrolled!(r < R => {
                    let x = D::splat4(a.as_ptr().add(r * k + q * 4));
                    columns!(J; acc0, acc1 => |acc, j| acc[r] = acc[r].dot(x, w[j]));
                });
            }
            if k % 4 != 0 {
                let q = whole;
                let w = [D::weights(w_ptr(0, q)), D::weights(w_ptr(J - 1, q))];
                unrolled!(r < R => {
                    let mut last = [0u8; 4];
                    last[..k % 4].copy_from_slice(&a[r * k + q * 4..(r + 1) * k]);
                    let x = D::splat4(last.as_ptr());
                    columns!(J; acc0, acc1 => |acc, j| acc[r] = acc[r].dot(x, w[j]));
                });
            }
            // Register by register: its channels' constants are loaded once
            // for the tile's rows (the weights and broadcast are dead, so
            // they fit beside the sums).
            with_act!(&p.requant, A => {
                let output = Output::<D::F, A>::new(&p.requant);
                columns!(J; acc0, acc1 => |acc, j| {
                    let o = col0 + j * lanes;
                    // The register's outputs inside the tile's columns.
                    let valid = cols.saturating_sub(j * lanes).min(lanes);
                    if valid > 0 {
                        let channels = output.lanes(o);
                        unrolled!(r < R => {
                            let dst = c.as_mut_ptr().add(r * ldc + j * lanes);
                            let real = channels.requantised(acc[r].to_f32());
                            if valid == lanes {
                                D::store_u8(real, dst);
                            } else {
                                let mut tmp = [0u8; 16];
                                D::store_u8(real, tmp.as_mut_ptr());
                                std::ptr::copy_nonoverlapping(tmp.as_ptr(), dst, valid);
                            }
                        });
                    }
                });
            });
        }
    }
}

/// aarch64 with the dot product extension: `sdot` by element adds, in each
/// of four `i32` lanes (four outputs of a panel), the products of their four
/// weight bytes with one four-byte group of the inputs, a lane of another
/// register: the same panel layout as `vpdpbusd`, 16 inputs loaded at once
/// serve four steps. `sdot` multiplies signed bytes, so the inputs go in as
/// `x - 128` (one `eor` per 16) and the start makes up for it. Tiles of 4
/// pixels x 16 outputs: 16 accumulators, 4 weight and 4 input registers.
#[cfg(target_arch = "aarch64")]
mod neon {
    use std::arch::aarch64::*;

    use super::{QPwWeights, NR};
    use crate::kernels::int8::store::{requantised, Output};
    use crate::kernels::simd::neon::Neon;

    /// Every row of `out` (pixels of `out_channels` bytes) from `input`.
    ///
    /// # Safety
    /// The CPU must have NEON and the dot product extension.
    #[target_feature(enable = "neon,dotprod")]
    pub unsafe fn rows_sdot(p: &QPwWeights, input: &[u8], out: &mut [u8]) {
        let (k, n) = (p.in_channels, p.out_channels);
        debug_assert!(k > 0 && input.len() / k == out.len() / n);
        let (a, c) = (input.chunks(4 * k), out.chunks_mut(4 * n));
        for (a, c) in a.zip(c) {
            for panel in 0..n.div_ceil(NR) {
                // SAFETY: the features are the caller's; `a` holds
                // `c.len() / n` rows of `k` bytes.
                unsafe {
                    match c.len() / n {
                        4 => tile::<4>(p, a, c, panel),
                        3 => tile::<3>(p, a, c, panel),
                        2 => tile::<2>(p, a, c, panel),
                        _ => tile::<1>(p, a, c, panel),
                    }
                }
            }
        }
    }

    /// `acc += w . x[L]`: per lane, the four bytes of `w` times the `L`-th
    /// four bytes of `x`. (`vdotq_laneq_s32` is not stable Rust yet.)
    #[inline(always)]
    unsafe fn sdot<const L: i32>(acc: int32x4_t, w: int8x16_t, x: int8x16_t) -> int32x4_t {
        let mut acc = acc;
        // SAFETY: `sdot` only reads and writes these registers; the caller
        // runs with the dot product extension.
        unsafe {
            std::arch::asm!(
                "sdot {acc:v}.4s, {w:v}.16b, {x:v}.4b[{lane}]",
                acc = inout(vreg) acc, w = in(vreg) w, x = in(vreg) x, lane = const L,
                options(pure, nomem, nostack, preserves_flags),
            );
        }
        acc
    }

    /// Output panel `panel` of `R` pixels.
    #[inline(always)]
    unsafe fn tile<const R: usize>(p: &QPwWeights, a: &[u8], c: &mut [u8], panel: usize) {
        let (k, n, groups) = (p.in_channels, p.out_channels, p.groups());
        let o0 = panel * NR;
        let cols = (n - o0).min(NR);
        debug_assert!(a.len() == R * k && c.len() == R * n);
        // SAFETY: the weights of panel `panel` are `groups * NR * 4` bytes
        // from its start; inputs are read 16 bytes at a time only while 16
        // remain in the row, the rest through a stack copy; the starts,
        // scales and biases are padded to whole panels; partial stores go
        // through a stack buffer.
        unsafe {
            let start: [int32x4_t; 4] = std::array::from_fn(|j| vld1q_s32(p.start_signed.as_ptr().add(o0 + 4 * j)));
            let mut acc = [start; R];
            let weights = p.packed.as_ptr().add(panel * groups * NR * 4);
            let flip = vdupq_n_u8(0x80);
            for q in (0..groups).step_by(4) {
                let x: [int8x16_t; R] = std::array::from_fn(|r| {
                    let row = &a[r * k + 4 * q..(r + 1) * k];
                    let bytes = if row.len() >= 16 {
                        vld1q_u8(row.as_ptr())
                    } else {
                        // Zeros past the row meet zero weights.
                        let mut last = [0u8; 16];
                        last[..row.len()].copy_from_slice(row);
                        vld1q_u8(last.as_ptr())
                    };
                    vreinterpretq_s8_u8(veorq_u8(bytes, flip))
                });
                let w = |g: usize| -> [int8x16_t; 4] {
                    std::array::from_fn(|j| vld1q_s8(weights.add((q + g) * NR * 4 + 16 * j)))
                };
                macro_rules! step {
                    ($lane:literal) => {
                        if q + $lane < groups {
                            let w = w($lane);
                            for r in 0..R {
                                for j in 0..4 {
                                    acc[r][j] = sdot::<$lane>(acc[r][j], w[j], x[r]);
                                }
                            }
                        }
                    };
                }
                step!(0);
                step!(1);
                step!(2);
                step!(3);
            }
            let output = Output::<Neon>::new(&p.requant);
            for r in 0..R {
                let v: [Neon; 4] = std::array::from_fn(|j| {
                    let o = o0 + 4 * j;
                    requantised(Neon(vcvtq_f32_s32(acc[r][j])), o, &output)
                });
                // Round to nearest even, then narrow with saturation: 255 caps.
                let int = |v: Neon| vqmovun_s32(vcvtnq_s32_f32(v.0));
                let low = vqmovn_u16(vcombine_u16(int(v[0]), int(v[1])));
                let high = vqmovn_u16(vcombine_u16(int(v[2]), int(v[3])));
                let bytes = vcombine_u8(low, high);
                let dst = c.as_mut_ptr().add(r * n + o0);
                if cols == NR {
                    vst1q_u8(dst, bytes);
                } else {
                    let mut tmp = [0u8; 16];
                    vst1q_u8(tmp.as_mut_ptr(), bytes);
                    std::ptr::copy_nonoverlapping(tmp.as_ptr(), dst, cols);
                }
            }
        }
    }
}
