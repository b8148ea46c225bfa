//! Pointwise (1x1) convolution: a GEMM `[pixels, in] x [in, out]` with the
//! bias and activation fused into the store.
//!
//! NHWC makes a 1x1 convolution a plain matrix product: every pixel is a row
//! of `in` channels. The weights are packed once, at load, into panels of
//! [`NR`] output channels (zero-padded), so the micro-kernel streams one
//! panel while [`MR`] pixel rows x [`NR`] outputs of accumulators stay in
//! registers: every weight loaded serves `MR` pixels and every input value
//! broadcast serves `NR` outputs.
//!
//! The kernel walks K in blocks of at most [`KC`] inputs, so the packing is
//! K-block-major: all panels' rows of the first K block, then of the next.
//! The weights the kernel reads for one K block are then one contiguous
//! stream (the late layers' weights come from DRAM on every pass, and short
//! strided pieces leave the hardware prefetchers idle).

use rayon::prelude::*;

use super::{isa, Activation, Isa, Tier};
use crate::aligned::AlignedVec;

/// Pixel rows per register tile of AVX2, NEON and the portable code (6 rows
/// x one panel); AVX-512 tiles have 12 rows x two panels.
pub const MR: usize = 6;
/// Output channels per packed panel (two 8-lane vectors, four 4-lane ones).
pub const NR: usize = 16;
/// Most K per block: a panel's slice of `KC x NR` weights (16 KiB) stays
/// in L1 while the row tiles pass over it (384 measured 10% slower on Zen 3).
pub const KC: usize = 256;
/// Most K per block when the AVX-512 kernel runs: K is not split for any
/// PP-LCNet layer but x2.5's 1280 (2 x 640). Each K block passes the whole
/// output through the cache once more, and with 12 x 32 tiles the weights
/// stream from L2 well enough: x2.5 3.8 %, x2.0 2.8 % faster than with
/// [`KC`] (whole passes, in-process A/B, Xeon with AVX-512).
pub const KC_AVX512: usize = 1024;

/// Folded, packed weights of a 1x1 convolution.
#[derive(Debug, Clone)]
pub struct PwWeights {
    /// K block `b` (inputs `b * k_block ..`, `kc` of them) holds, for each
    /// panel `p` in turn, `[kc][NR]` weights of outputs `p * NR ..`, zero past
    /// `out_channels`.
    pub packed: AlignedVec,
    /// Inputs per K block (the last block may be shorter): K split into
    /// blocks of at most [`KC`] ([`KC_AVX512`] when the AVX-512 kernel will
    /// run), as even as possible. Every kernel takes any block size.
    pub k_block: usize,
    /// One bias per output channel, zero-padded to whole panels.
    pub bias: AlignedVec,
    /// Input channels (GEMM K).
    pub in_channels: usize,
    /// Output channels (GEMM N).
    pub out_channels: usize,
    /// Activation applied after the bias.
    pub act: Activation,
}

impl PwWeights {
    /// Packs a PaddleClas `[out, in, 1, 1]` weight (already BN-folded).
    pub fn pack(oi: &[f32], bias: Vec<f32>, in_channels: usize, act: Activation) -> Self {
        let (k, n) = (in_channels, bias.len());
        assert_eq!(oi.len(), n * k, "pointwise weight size");
        let panels = n.div_ceil(NR);
        let k_max = if isa().is_avx512() { KC_AVX512 } else { KC };
        let k_block = even_split(k, k_max, 8);
        // 64-byte aligned: the AVX-512 kernel loads one cache line per
        // panel row (unaligned, each load straddled two: 2 % slower).
        let mut packed = AlignedVec::zeroed(panels * k * NR);
        for o in 0..n {
            let (panel, j) = (o / NR, o % NR);
            for i in 0..k {
                let (kb, kc) = k_range(i, k_block, k);
                packed[kb * panels * NR + (panel * kc + i - kb) * NR + j] = oi[o * k + i];
            }
        }
        let mut padded_bias = bias;
        padded_bias.resize(panels * NR, 0.0);
        PwWeights { packed, k_block, bias: padded_bias.into(), in_channels, out_channels: n, act }
    }

    /// The `[kc][NR]` weights of `panel` for the K block starting at input
    /// `kb` (a multiple of `k_block`), and the panel's `NR` biases.
    fn panel_block(&self, panel: usize, kb: usize) -> (&[f32], &[f32]) {
        let (kb, kc) = k_range(kb, self.k_block, self.in_channels);
        let panels = self.out_channels.div_ceil(NR);
        (&self.packed[kb * panels * NR + panel * kc * NR..][..kc * NR], &self.bias[panel * NR..][..NR])
    }
}

/// The K block holding input `i`: its first input and its length.
fn k_range(i: usize, k_block: usize, k: usize) -> (usize, usize) {
    let kb = i / k_block * k_block;
    (kb, k_block.min(k - kb))
}

/// `total` split into as few parts of at most `max` as possible, as
/// equal as possible, each (but the last) a multiple of `unit`: K = 640
/// runs as 3 x 216 rather than 256 + 256 + 128, and a 14x14 image's 196
/// rows as 66 + 66 + 64 rather than 96 + 96 + 4. A short last block reads
/// every weight panel for little work; even blocks measured 6-9% faster
/// over whole forward passes (x1.0 and x2.5, one thread).
fn even_split(total: usize, max: usize, unit: usize) -> usize {
    let parts = total.div_ceil(max);
    total.div_ceil(parts).next_multiple_of(unit).min(max)
}

/// Runs the 1x1 convolution over `pixels` NHWC rows of `in_channels` values,
/// writing `pixels` rows of `out_channels` values.
pub fn run(p: &PwWeights, input: &[f32], pixels: usize, out: &mut [f32]) {
    run_isa(isa(), p, input, pixels, out)
}

/// [`run`] on a given ISA (tests force each one).
pub fn run_isa(isa: Isa, p: &PwWeights, input: &[f32], pixels: usize, out: &mut [f32]) {
    let (k, n) = (p.in_channels, p.out_channels);
    assert_eq!(input.len(), pixels * k, "pointwise input size");
    assert_eq!(out.len(), pixels * n, "pointwise output size");
    let gemm = |out: &mut [f32], input: &[f32]| match isa.tier() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: an `Isa` holds only a tier runtime detection found on this
        // CPU, and AVX-512 implies AVX2 + FMA.
        Tier::Avx2 | Tier::Avx2Vnni => unsafe { simd::gemm_rows_avx2(p, input, out) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Tier::Avx512 | Tier::Avx512Vnni | Tier::Avx512Amx => unsafe { simd::gemm_rows_avx512(p, input, out) },
        #[cfg(target_arch = "aarch64")]
        // SAFETY: NEON is in every aarch64 CPU.
        Tier::Neon => unsafe { simd::gemm_rows_neon(p, input, out) },
        _ => portable::gemm_rows(p, input, out),
    };
    if super::threads::threads() == 1 {
        return gemm(out, input);
    }
    let rows = rows_per_task(pixels);
    out.par_chunks_mut(rows * n).zip(input.par_chunks(rows * k)).for_each(|(out, input)| gemm(out, input));
}

/// Rows per rayon task: one task per thread, as even as possible (the
/// tiles inside a task spread its rows evenly too). Each task streams every
/// weight panel once per row block, so fewer, larger tasks read the weights
/// fewer times (they dominate the traffic of the late, small-image layers).
/// Rounded to whole 12-row tiles, x1.0's 49-row layers ran as 36 + 13 rows
/// on two threads; even, two threads ran x1.0 3 % and x2.5 7 % faster.
fn rows_per_task(pixels: usize) -> usize {
    pixels.div_ceil(super::threads::threads()).max(1)
}

/// Portable code over the same packed layout (the test oracle's twin and the
/// fallback on CPUs without AVX2).
mod portable {
    use super::{PwWeights, MR, NR};

    pub fn gemm_rows(p: &PwWeights, input: &[f32], out: &mut [f32]) {
        let (k, n) = (p.in_channels, p.out_channels);
        let m = input.len() / k;
        for panel in 0..n.div_ceil(NR) {
            let bias = p.panel_block(panel, 0).1;
            let cols = NR.min(n - panel * NR);
            for r0 in (0..m).step_by(MR) {
                let rows = MR.min(m - r0);
                let mut acc = [[0.0f32; NR]; MR];
                for row in acc.iter_mut().take(rows) {
                    row.copy_from_slice(bias);
                }
                for kb in (0..k).step_by(p.k_block) {
                    let b = p.panel_block(panel, kb).0;
                    for (kk, b_row) in (kb..).zip(b.chunks_exact(NR)) {
                        for (r, row) in acc.iter_mut().enumerate().take(rows) {
                            let a = input[(r0 + r) * k + kk];
                            for (c, &w) in row.iter_mut().zip(b_row) {
                                *c += a * w;
                            }
                        }
                    }
                }
                for (r, row) in acc.iter().enumerate().take(rows) {
                    let dst = &mut out[(r0 + r) * n + panel * NR..][..cols];
                    for (d, &v) in dst.iter_mut().zip(row) {
                        *d = p.act.apply(v);
                    }
                }
            }
        }
    }
}

/// The hand-written GEMM, one body for AVX2, AVX-512 and NEON (generic
/// over [`Vector`](crate::kernels::simd::Vector)).
///
/// A tile is `R` pixel rows x `J` vectors of output channels, its
/// accumulators in registers. AVX2: 6 rows x one 16-wide panel (2 x 8
/// lanes, 12 accumulators of 16 registers). AVX-512: 12 rows x two
/// neighbouring panels (2 x 16 lanes, 24 accumulators of 32 registers), so
/// each input value broadcast serves 32 outputs and each weight vector 12
/// pixels. NEON: 6 rows x one panel (4 x 4 lanes, 24 accumulators of 32
/// registers, 4 for the weights, the rest for the broadcasts). The packing
/// is the same for all.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
mod simd {
    use super::{even_split, PwWeights, NR};
    #[cfg(target_arch = "aarch64")]
    use crate::kernels::simd::neon::Neon;
    #[cfg(target_arch = "x86_64")]
    use crate::kernels::simd::{avx2::Ymm, avx512::Zmm};
    use crate::kernels::simd::{columns, unrolled, Vector};
    use crate::kernels::Activation;

    /// AVX2 + FMA: all rows of `input` times every panel.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn gemm_rows_avx2(p: &PwWeights, input: &[f32], out: &mut [f32]) {
        // SAFETY: the features are enabled; two Ymm per row cover one panel.
        // Four K steps per loop iteration, as MLAS does: 10-15% faster than
        // one at x2.5 on Zen 3, the loop's bookkeeping no longer competing
        // with the FMAs.
        unsafe { gemm_rows::<Ymm, 6, 4, 2, 1>(p, input, out) }
    }

    /// AVX-512: all rows of `input` times every panel.
    ///
    /// # Safety
    /// The CPU must support AVX-512F (and AVX2 + FMA).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")]
    pub unsafe fn gemm_rows_avx512(p: &PwWeights, input: &[f32], out: &mut [f32]) {
        // SAFETY: the features are enabled; two Zmm per row cover two panels.
        // One K step per loop iteration: unrolled, LLVM hoists the next
        // steps' broadcasts, runs out of the 32 registers and spills
        // accumulators (x2.0, one thread, Xeon with AVX-512: 12 rows 8.0 ms
        // unrolled by 1, 17.1 by 2; 8 rows 8.3 / 8.2 / 10.1 by 1 / 2 / 4;
        // the AVX2 kernel 11.8).
        unsafe { gemm_rows::<Zmm, 12, 1, 2, 1>(p, input, out) }
    }

    /// NEON: all rows of `input` times every panel.
    ///
    /// # Safety
    /// None beyond the slices' own (NEON is aarch64's baseline); `unsafe`
    /// for symmetry with the x86 entry points.
    #[cfg(target_arch = "aarch64")]
    pub unsafe fn gemm_rows_neon(p: &PwWeights, input: &[f32], out: &mut [f32]) {
        // SAFETY: NEON is always there; four Neon per row cover one panel,
        // two its left half (the last panel of an output count that is 8
        // past a multiple of 16). One K step per iteration, as on AVX-512:
        // 24 accumulators, 4 weight vectors and the broadcasts fill the 32
        // registers, and unrolling only hoists loads that then spill.
        unsafe { gemm_rows::<Neon, 6, 1, 4, 2>(p, input, out) }
    }

    /// Most rows per M block: the block's `MC x KC` slice of the input (96
    /// rows, 96 KiB; up to 384 KiB with AVX-512's K blocks) stays in L2
    /// while every panel passes over it (48 and 192 measured the same).
    const MC: usize = 96;

    /// All rows of `input` times every panel, blocked over K and M; `MR`
    /// rows x `JV` vectors of `V` per tile (they span one or two panels),
    /// `UNROLL` K steps per iteration of the micro-kernel's loop. A tile
    /// with no more than `JH` vectors' worth of outputs left (the end of the
    /// last panel) runs `JH` vectors.
    #[inline(always)]
    unsafe fn gemm_rows<V: Vector, const MR: usize, const UNROLL: usize, const JV: usize, const JH: usize>(
        p: &PwWeights,
        input: &[f32],
        out: &mut [f32],
    ) {
        let (k, n) = (p.in_channels, p.out_channels);
        let m = input.len() / k;
        let (k_step, m_step) = (p.k_block, even_split(m, MC, MR));
        // Output channels per tile, and panels per tile.
        let tn = JV * V::LANES;
        let group = tn / NR;
        let panels = n.div_ceil(NR);
        for kb in (0..k).step_by(k_step) {
            let kc = k_step.min(k - kb);
            let pass = Pass { first: kb == 0, last: kb + kc == k, act: p.act };
            for mb in (0..m).step_by(m_step) {
                let mc = m_step.min(m - mb);
                // The block's rows spread evenly over its tiles (49 = 10 + 10 +
                // 10 + 10 + 9, not 4 x 12 + 1): a tile streams its weight
                // panels whatever its row count, so a 1-row tile costs
                // nearly a full one.
                let tiles = mc.div_ceil(MR);
                let (base, extra) = (mc / tiles, mc % tiles);
                for first_panel in (0..panels).step_by(group) {
                    let col0 = first_panel * NR;
                    // The tile's panels: the second (AVX-512) is the next
                    // one, if there is one.
                    let (b0, _) = p.panel_block(first_panel, kb);
                    let b1 =
                        if group == 2 && first_panel + 1 < panels { p.panel_block(first_panel + 1, kb).0 } else { b0 };
                    let narrow = n - col0 <= JH * V::LANES;
                    let bias = &p.bias[col0..];
                    let cols = tn.min(n - col0);
                    for t in 0..tiles {
                        let (r0, rows) = (mb + t * base + t.min(extra), base + usize::from(t < extra));
                        let a = &input[r0 * k + kb..(r0 + rows - 1) * k + kb + kc];
                        let c = &mut out[r0 * n + col0..];
                        let g = Geometry { kc, lda: k, ldc: n, cols };
                        // SAFETY: `a` holds `rows` rows (stride k) of `kc` values,
                        // each `b` has `kc` rows of NR (the second panel is read
                        // only when the tile reaches into it, which it does only
                        // if there is one), the biases are padded to whole
                        // panels, and `c` holds `rows - 1` full rows of `n`
                        // plus `cols` values (checked by the slicing above).
                        unsafe {
                            let ops = Operands { a, b: [b0, b1], bias, c };
                            if narrow {
                                tile_any::<V, MR, UNROLL, JH>(rows, ops, g, pass)
                            } else {
                                tile_any::<V, MR, UNROLL, JV>(rows, ops, g, pass)
                            }
                        }
                    }
                }
            }
        }
    }

    /// [`tile`] for a runtime row count `rows <= MR` (the last tile of a
    /// block may be short).
    #[inline(always)]
    unsafe fn tile_any<V: Vector, const MR: usize, const UNROLL: usize, const J: usize>(
        rows: usize,
        ops: Operands,
        g: Geometry,
        pass: Pass,
    ) {
        macro_rules! rows {
            ($($r:literal)*) => {
                match rows {
                    $($r if $r <= MR => tile::<V, $r, UNROLL, J>(ops, g, pass),)*
                    _ => unreachable!("{rows} rows in a tile of {MR}"),
                }
            };
        }
        // SAFETY: forwarded from the caller.
        unsafe { rows!(12 11 10 9 8 7 6 5 4 3 2 1) }
    }

    /// How many K steps ahead the micro-kernel prefetches weights (32 rows
    /// of 64 bytes: measured best of 8, 16, 32, 64 on Zen 3).
    const PF_AHEAD: usize = 32;

    /// What one tile reads and writes: `a`, its rows of the input (stride
    /// `lda`); `b`, the weight blocks of its (one or two) panels; `bias`, its outputs'
    /// biases; `c`, its output rows (stride `ldc`).
    struct Operands<'a> {
        a: &'a [f32],
        b: [&'a [f32]; 2],
        bias: &'a [f32],
        c: &'a mut [f32],
    }

    /// Sizes of one tile call.
    #[derive(Clone, Copy)]
    struct Geometry {
        kc: usize,
        lda: usize,
        ldc: usize,
        cols: usize,
    }

    /// Which K block this is: the first starts from the bias, the last applies
    /// the activation; the others carry partial sums through `c`.
    #[derive(Clone, Copy)]
    struct Pass {
        first: bool,
        last: bool,
        act: Activation,
    }

    /// `R` rows x `J` (1 to 4) vectors of outputs over `kc` of K,
    /// accumulators in registers. Vector `j` covers outputs `j * LANES ..`
    /// of the tile: it reads its weights from the panel block `b[j * LANES /
    /// NR]`, a `kc x NR` block, one row of NR per K step.
    ///
    /// The columns of accumulators are separate arrays, every loop over them
    /// written out ([`unrolled!`], [`columns!`]): held in one `[[V; J]; R]`
    /// array LLVM kept them in memory (a store after every FMA, AVX-512 50%
    /// slower than AVX2).
    #[inline(always)]
    unsafe fn tile<V: Vector, const R: usize, const UNROLL: usize, const J: usize>(
        ops: Operands,
        g: Geometry,
        pass: Pass,
    ) {
        let Operands { a, b, bias, c } = ops;
        let Geometry { kc, lda, ldc, cols } = g;
        let lanes = V::LANES;
        // Vector `j`'s panel (0 or 1) and its offset in the panel's rows.
        let panel = |j: usize| (j * lanes / NR).min(1);
        let offset = |j: usize| j * lanes % NR;
        debug_assert!((1..=4).contains(&J) && J * lanes <= 32);
        debug_assert!(a.len() >= (R - 1) * lda + kc && bias.len() >= J * lanes);
        debug_assert!((0..J).all(|j| b[panel(j)].len() >= (kc - 1) * NR + offset(j) + lanes));
        debug_assert!(c.len() >= (R - 1) * ldc + cols && cols <= J * lanes);
        // SAFETY: every pointer offset below stays inside the slices, per
        // the assertions above; partial tiles go through a stack buffer.
        unsafe {
            let full = cols == J * lanes;
            let [mut acc0, mut acc1, mut acc2, mut acc3] = [[V::zero(); R]; 4];
            unrolled!(r < R => {
                let src = if pass.first { bias.as_ptr() } else { c.as_ptr().add(r * ldc) };
                let mut tmp = [0.0f32; 32];
                let src = if pass.first || full {
                    src
                } else {
                    std::ptr::copy_nonoverlapping(src, tmp.as_mut_ptr(), cols);
                    tmp.as_ptr()
                };
                columns!(J; acc0, acc1, acc2, acc3 => |acc, j| acc[r] = V::load(src.add(j * lanes)));
            });
            let mut b = [b[0].as_ptr(), b[1].as_ptr()];
            // The second panel has its own 64-byte weight rows only if the
            // tile reaches into it (AVX-512); prefetch each row once.
            let second_panel = panel(J - 1) == 1;
            // One pointer per row, advanced once per UNROLL steps, so every
            // load in the unrolled body is a pointer plus a constant offset.
            let mut rows = [a.as_ptr(); R];
            unrolled!(r < R => rows[r] = a.as_ptr().add(r * lda));
            macro_rules! step {
                ($u:expr) => {{
                    let u = $u;
                    // The weights a few steps ahead (of this panel, then of the
                    // next one, which follows it in memory: the packing is
                    // K-block-major): the first tile of a panel finds them in
                    // L1 instead of L3 or DRAM.
                    prefetch(b[0].wrapping_add((u + PF_AHEAD) * NR));
                    if second_panel {
                        prefetch(b[1].wrapping_add((u + PF_AHEAD) * NR));
                    }
                    let mut w = [V::zero(); 4];
                    for (j, w) in w.iter_mut().enumerate().take(J) {
                        *w = V::load(b[panel(j)].add(u * NR + offset(j)));
                    }
                    unrolled!(r < R => {
                        let x = V::splat(rows[r].add(u));
                        columns!(J; acc0, acc1, acc2, acc3 => |acc, j| acc[r] = V::mul_add(x, w[j], acc[r]));
                    });
                }};
            }
            let mut left = kc;
            while left >= UNROLL {
                unrolled!(u < UNROLL => step!(u));
                unrolled!(r < R => rows[r] = rows[r].add(UNROLL));
                b = b.map(|p| p.add(UNROLL * NR));
                left -= UNROLL;
            }
            while left > 0 {
                step!(0);
                unrolled!(r < R => rows[r] = rows[r].add(1));
                b = b.map(|p| p.add(NR));
                left -= 1;
            }
            unrolled!(r < R => {
                let dst = c.as_mut_ptr().add(r * ldc);
                let mut tmp = [0.0f32; 32];
                let to = if full { dst } else { tmp.as_mut_ptr() };
                columns!(J; acc0, acc1, acc2, acc3 => |acc, j| {
                    let v = if pass.last { acc[r].act(pass.act) } else { acc[r] };
                    v.store(to.add(j * lanes));
                });
                if !full {
                    std::ptr::copy_nonoverlapping(tmp.as_ptr(), dst, cols);
                }
            });
        }
    }

    /// Prefetches the line at `p` into L1 (a hint: any address is fine).
    #[inline(always)]
    fn prefetch(p: *const f32) {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            // SAFETY: prefetching never faults, whatever the address.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(p.cast()) }
        }
        // `prfm pldl1keep` (std's aarch64 prefetch intrinsic is unstable).
        #[cfg(target_arch = "aarch64")]
        // SAFETY: a prefetch never faults, whatever the address, and reads
        // or writes no register but its address operand.
        unsafe {
            std::arch::asm!("prfm pldl1keep, [{0}]", in(reg) p, options(nostack, readonly, preserves_flags))
        }
    }
}

/// Reference 1x1 convolution in PaddleClas layouts: NCHW input, `[out, in]`
/// weight, NCHW output. The test oracle for [`run`].
pub fn reference(input: &[f32], [batch, cin, h, w]: [usize; 4], oi: &[f32], bias: &[f32], act: Activation) -> Vec<f32> {
    let cout = bias.len();
    let hw = h * w;
    let mut out = vec![0.0; batch * cout * hw];
    for n in 0..batch {
        for o in 0..cout {
            for px in 0..hw {
                let mut acc = bias[o] as f64;
                for i in 0..cin {
                    acc += input[(n * cin + i) * hw + px] as f64 * oi[o * cin + i] as f64;
                }
                out[(n * cout + o) * hw + px] = act.apply(acc as f32);
            }
        }
    }
    out
}
