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

use super::{isa, Activation, Isa};

/// Pixel rows per register tile (AVX2: 6 rows x 2 vectors = 12 accumulators).
pub const MR: usize = 6;
/// Output channels per packed panel (two 8-lane vectors).
pub const NR: usize = 16;
/// Most K per block: a panel's slice of `KC x NR` weights (16 KiB) stays
/// in L1 while the row tiles pass over it (384 measured 10% slower).
pub const KC: usize = 256;

/// Folded, packed weights of a 1x1 convolution.
#[derive(Debug, Clone)]
pub struct PwWeights {
    /// K block `b` (inputs `b * k_block ..`, `kc` of them) holds, for each
    /// panel `p` in turn, `[kc][NR]` weights of outputs `p * NR ..`, zero past
    /// `out_channels`.
    pub packed: Vec<f32>,
    /// Inputs per K block (the last block may be shorter): K split into
    /// blocks of at most [`KC`], as even as possible.
    pub k_block: usize,
    /// One bias per output channel, zero-padded to whole panels.
    pub bias: Vec<f32>,
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
        let k_block = even_split(k, KC, 8);
        let mut packed = vec![0.0; panels * k * NR];
        for o in 0..n {
            let (panel, j) = (o / NR, o % NR);
            for i in 0..k {
                let (kb, kc) = k_range(i, k_block, k);
                packed[kb * panels * NR + (panel * kc + i - kb) * NR + j] = oi[o * k + i];
            }
        }
        let mut padded_bias = bias;
        padded_bias.resize(panels * NR, 0.0);
        PwWeights { packed, k_block, bias: padded_bias, in_channels, out_channels: n, act }
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
    let gemm = |out: &mut [f32], input: &[f32]| match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `isa` is a tier the CPU supports (from `isa()` or checked by
        // the caller), and AVX-512 implies AVX2 + FMA.
        Isa::Avx2 | Isa::Avx512 => unsafe { avx2::gemm_rows(p, input, out) },
        _ => portable::gemm_rows(p, input, out),
    };
    if super::threads::threads() == 1 {
        return gemm(out, input);
    }
    let rows = rows_per_task(pixels);
    out.par_chunks_mut(rows * n).zip(input.par_chunks(rows * k)).for_each(|(out, input)| gemm(out, input));
}

/// Rows per rayon task: one task per thread, whole register tiles. Each task
/// streams every weight panel once per row block, so fewer, larger tasks
/// read the weights fewer times (they dominate the traffic of the late,
/// small-image layers).
fn rows_per_task(pixels: usize) -> usize {
    pixels.div_ceil(super::threads::threads()).next_multiple_of(MR).max(MR)
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

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{even_split, PwWeights, MR, NR};
    use crate::kernels::simd::avx2::act;
    use crate::kernels::Activation;

    /// Most rows per block: the block's `MC x KC` slice of the input (96 KiB)
    /// stays in L2 while every panel passes over it.
    const MC: usize = 16 * MR;

    /// All rows of `input` times every panel, blocked over K and M.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn gemm_rows(p: &PwWeights, input: &[f32], out: &mut [f32]) {
        let (k, n) = (p.in_channels, p.out_channels);
        let m = input.len() / k;
        let (k_step, m_step) = (p.k_block, even_split(m, MC, MR));
        let panels = n.div_ceil(NR);
        for kb in (0..k).step_by(k_step) {
            let kc = k_step.min(k - kb);
            let pass = Pass { first: kb == 0, last: kb + kc == k, act: p.act };
            for mb in (0..m).step_by(m_step) {
                let mc = m_step.min(m - mb);
                let tiles = mc.div_ceil(MR);
                for panel in 0..panels {
                    let (b, bias) = p.panel_block(panel, kb);
                    let cols = NR.min(n - panel * NR);
                    for t in 0..tiles {
                        let (r0, rows) = (mb + t * MR, MR.min(mc - t * MR));
                        let a = &input[r0 * k + kb..(r0 + rows - 1) * k + kb + kc];
                        let c = &mut out[r0 * n + panel * NR..];
                        let g = Geometry { kc, lda: k, ldc: n, cols };
                        // SAFETY: `a` holds `rows` rows (stride k) of `kc` values,
                        // `b` is `kc x NR`, and `c` holds `rows - 1` full rows of
                        // `n` plus `cols` values (checked by the slicing above).
                        unsafe {
                            match rows {
                                6 => tile::<6>(a, b, bias, c, g, pass),
                                5 => tile::<5>(a, b, bias, c, g, pass),
                                4 => tile::<4>(a, b, bias, c, g, pass),
                                3 => tile::<3>(a, b, bias, c, g, pass),
                                2 => tile::<2>(a, b, bias, c, g, pass),
                                _ => tile::<1>(a, b, bias, c, g, pass),
                            }
                        }
                    }
                }
            }
        }
    }

    /// How many K steps ahead the micro-kernel prefetches weights (32 rows
    /// of 64 bytes: measured best of 8, 16, 32, 64 on Zen 3).
    const PF_AHEAD: usize = 32;

    /// K steps per iteration of the micro-kernel's loop.
    const UNROLL: usize = 4;

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

    /// `R` rows x 16 outputs over `kc` of K, accumulators in registers.
    #[inline(always)]
    unsafe fn tile<const R: usize>(a: &[f32], b: &[f32], bias: &[f32], c: &mut [f32], g: Geometry, pass: Pass) {
        let Geometry { kc, lda, ldc, cols } = g;
        debug_assert!(a.len() >= (R - 1) * lda + kc && b.len() >= kc * NR && bias.len() >= NR);
        debug_assert!(c.len() >= (R - 1) * ldc + cols);
        // SAFETY: every pointer offset below stays inside the slices, per
        // the assertions above.
        unsafe {
            let (ap, bp) = (a.as_ptr(), b.as_ptr());
            let mut lo = [_mm256_setzero_ps(); R];
            let mut hi = [_mm256_setzero_ps(); R];
            for r in 0..R {
                if pass.first {
                    lo[r] = _mm256_loadu_ps(bias.as_ptr());
                    hi[r] = _mm256_loadu_ps(bias.as_ptr().add(8));
                } else if cols == NR {
                    lo[r] = _mm256_loadu_ps(c.as_ptr().add(r * ldc));
                    hi[r] = _mm256_loadu_ps(c.as_ptr().add(r * ldc + 8));
                } else {
                    let mut tmp = [0.0f32; NR];
                    std::ptr::copy_nonoverlapping(c.as_ptr().add(r * ldc), tmp.as_mut_ptr(), cols);
                    lo[r] = _mm256_loadu_ps(tmp.as_ptr());
                    hi[r] = _mm256_loadu_ps(tmp.as_ptr().add(8));
                }
            }
            // One pointer per row, advanced once per UNROLL steps, so every
            // load in the unrolled body is a pointer plus a constant offset.
            let mut rows: [*const f32; R] = std::array::from_fn(|r| ap.add(r * lda));
            let mut bk = bp;
            macro_rules! step {
                ($u:expr) => {{
                    let u = $u;
                    // The weights of the rows a few steps ahead (of this panel,
                    // then of the next one, which follows it in memory: the
                    // packing is K-block-major): the first tile of a panel
                    // finds them in L1 instead of L3 or DRAM.
                    _mm_prefetch::<_MM_HINT_T0>(bk.wrapping_add((u + PF_AHEAD) * NR).cast());
                    let b0 = _mm256_loadu_ps(bk.add(u * NR));
                    let b1 = _mm256_loadu_ps(bk.add(u * NR + 8));
                    for r in 0..R {
                        let x = _mm256_broadcast_ss(&*rows[r].add(u));
                        lo[r] = _mm256_fmadd_ps(x, b0, lo[r]);
                        hi[r] = _mm256_fmadd_ps(x, b1, hi[r]);
                    }
                }};
            }
            // Four K steps per loop iteration, as MLAS does: 10-15% faster
            // than one at x2.5 (in-process A/B), the loop's own bookkeeping
            // no longer competing with the FMAs.
            let mut left = kc;
            while left >= UNROLL {
                for u in 0..UNROLL {
                    step!(u);
                }
                for row in rows.iter_mut() {
                    *row = row.add(UNROLL);
                }
                bk = bk.add(UNROLL * NR);
                left -= UNROLL;
            }
            while left > 0 {
                step!(0);
                for row in rows.iter_mut() {
                    *row = row.add(1);
                }
                bk = bk.add(NR);
                left -= 1;
            }
            for r in 0..R {
                let (v0, v1) = if pass.last { (act(lo[r], pass.act), act(hi[r], pass.act)) } else { (lo[r], hi[r]) };
                let dst = c.as_mut_ptr().add(r * ldc);
                if cols == NR {
                    _mm256_storeu_ps(dst, v0);
                    _mm256_storeu_ps(dst.add(8), v1);
                } else {
                    let mut tmp = [0.0f32; NR];
                    _mm256_storeu_ps(tmp.as_mut_ptr(), v0);
                    _mm256_storeu_ps(tmp.as_mut_ptr().add(8), v1);
                    std::ptr::copy_nonoverlapping(tmp.as_ptr(), dst, cols);
                }
            }
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
