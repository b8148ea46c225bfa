//! int8 depthwise 3x3 and 5x5 on x86 CPUs without AVX-512 VBMI (AVX2,
//! AVX-VNNI, AVX-512BW): two kernel rows' taps as the `i16` pair of a
//! `vpmaddwd` lane.
//!
//! `vpmaddwd` multiplies pairs of `i16` and adds each pair into an `i32`
//! lane, exactly for any 8-bit weight (`2 x 255 x 127` fits easily). Its
//! pair must be two taps of one channel, which NHWC keeps `channels` bytes
//! apart; so the input rows are copied in pairs into *pair rows* (padded
//! rows `2m` and `2m + 1`), each laid out `[block][column][channel][row]`
//! for blocks of 8 channels: a column of a block is 8 lanes of `(x[2m] -
//! zero, x[2m + 1] - zero)`, one 32-byte load. An output row whose first
//! padded input row is even reads its kernel rows as pairs `(0, 1), (2, 3),
//! ..`, one whose first row is odd as `(-, 0), (1, 2), ..`; each layer holds
//! both sets of weights, with 0 for the missing tap. A 3x3 output then
//! takes 2 pair rows x 3 columns of `vpmaddwd` and add (one `vpdpwssd` with
//! AVX-VNNI), a 5x5 one 3 x 5, where the widened `f32` route took a
//! multiply-add per tap after widening and before a separate
//! requantisation pass; each input row is copied once, into one pair row.
//!
//! The padding (columns and rows) holds 0, which is `x - zero` of a real 0;
//! the sums are `sum(w * (x - zero))`, the widened route's integers, and
//! are requantised from the registers by the same operations
//! ([`requantised`]): the same bytes (`int8_kernels.rs` checks every tier
//! against an integer reference).

use std::arch::x86_64::*;

use super::store::{with_act, Output};
use super::window::{slide, Window};
use super::{Channels, Requant};
use crate::kernels::int8::dot::{Avx2Ymm, Dot};
use crate::kernels::simd::avx2::Ymm;
use crate::kernels::threads::for_each_part;
use crate::kernels::{Isa, Tier};

/// Channels per block: the `i32` lanes of a 256-bit register.
const LANES: usize = 8;

/// Output pixels computed together (3 and 4 measured the same).
const NPIX: usize = 2;

/// Whether the kernel takes a layer of `channels` channels, kernel size
/// `kernel` and `stride`: 3x3 or 5x5, strides 1 or 2, whole blocks of
/// channels (every PP-LCNet layer).
pub fn fits(kernel: usize, stride: [usize; 2], channels: usize) -> bool {
    (kernel == 3 || kernel == 5) && stride.iter().all(|&s| s == 1 || s == 2) && channels.is_multiple_of(LANES)
}

/// Whether [`run`] can run on `isa`: every x86 tier but the scalar one
/// has AVX2.
pub fn available(isa: Isa) -> bool {
    isa.tier() != Tier::Scalar
}

/// Pair rows an output row reads: `(k + 1) / 2`, whatever the parity of
/// its first row.
const fn pairs(kernel: usize) -> usize {
    kernel.div_ceil(2)
}

/// The weights in `vpmaddwd`'s layout, both parities, and what the store
/// needs.
#[derive(Debug, Clone)]
pub struct PairsDwWeights {
    kernel: usize,
    stride: [usize; 2],
    channels: usize,
    /// `[parity][block][pair][kx][lane][2]`: for an even first row, pair
    /// `p` holds kernel rows `2p, 2p + 1`; for an odd one `2p - 1, 2p`; 0
    /// where that row is outside the kernel.
    weights: Vec<i16>,
    /// Per channel, twice (both rows of a pair): the input's zero point.
    zero: Vec<i16>,
    /// The input's zero point per channel as bytes: the source of a
    /// padding row, whose `x - zero` is then 0.
    zero_row: Vec<u8>,
    requant: Channels,
}

impl PairsDwWeights {
    /// From PaddleClas's `[c, 1, k, k]` weights ([`fits`] must hold for
    /// the layer) and one input zero point per channel.
    pub fn pack(c1kk: &[i8], kernel: usize, stride: [usize; 2], in_zero: &[u8], requant: &Requant) -> Self {
        let channels = in_zero.len();
        let (blocks, np) = (channels / LANES, pairs(kernel));
        let mut weights = vec![0i16; 2 * channels * np * kernel * 2];
        for parity in 0..2 {
            for ch in 0..channels {
                let (block, lane) = (ch / LANES, ch % LANES);
                for p in 0..np {
                    for (half, ky) in [2 * p, 2 * p + 1].into_iter().enumerate() {
                        // Kernel row of this half: one before for an odd first row.
                        let Some(ky) = (ky + 1).checked_sub(1 + parity).filter(|&ky| ky < kernel) else { continue };
                        for kx in 0..kernel {
                            let at = (((((parity * blocks + block) * np + p) * kernel + kx) * LANES + lane) * 2) + half;
                            weights[at] = i16::from(c1kk[(ch * kernel + ky) * kernel + kx]);
                        }
                    }
                }
            }
        }
        PairsDwWeights {
            kernel,
            stride,
            channels,
            weights,
            zero: in_zero.iter().flat_map(|&z| [i16::from(z); 2]).collect(),
            zero_row: in_zero.to_vec(),
            requant: Channels::new(requant, channels),
        }
    }

    fn blocks(&self) -> usize {
        self.channels / LANES
    }

    /// `i16` values of one pair row: every block's padded columns.
    fn pair_row_len(&self, w: usize) -> usize {
        self.blocks() * (w + self.kernel - 1) * LANES * 2
    }

    /// Bytes one part of [`run`] needs for images `w` wide.
    pub fn scratch_bytes(&self, w: usize) -> usize {
        pairs(self.kernel) * self.pair_row_len(w) * 2
    }
}

/// The convolution of `batch` NHWC images of `h` x `w` into `out` (`oh`
/// x `ow` each), on `isa` ([`available`] must hold); `scratch` holds
/// `parts * PairsDwWeights::scratch_bytes(w)` bytes.
#[allow(clippy::too_many_arguments)]
pub fn run(
    isa: Isa,
    p: &PairsDwWeights,
    input: &[u8],
    [batch, h, w]: [usize; 3],
    [oh, ow]: [usize; 2],
    out: &mut [u8],
    scratch: &mut [u8],
) {
    assert!(
        available(isa) && fits(p.kernel, p.stride, p.channels),
        "the pairs depthwise kernel: AVX2, a layer it fits"
    );
    let (k, [sy, sx], c) = (p.kernel, p.stride, p.channels);
    assert_eq!(input.len(), batch * h * w * c, "int8 depthwise input size");
    assert_eq!(out.len(), batch * oh * ow * c, "int8 depthwise output size");
    if out.is_empty() {
        return;
    }
    // The last output's taps end inside the padded input.
    assert!((oh - 1) * sy < h && (ow - 1) * sx < w, "output size for the input");
    let (np, pad) = (pairs(k), (k - 1) / 2);
    let (pair_len, out_row) = (p.pair_row_len(w), ow * c);
    let per_part = p.scratch_bytes(w);
    for_each_part(out, out_row, scratch, per_part, |first, out, scratch| {
        // SAFETY: any bytes are valid `i16`s.
        let (unaligned, ring, _) = unsafe { scratch.align_to_mut::<i16>() };
        assert!(unaligned.is_empty() && ring.len() >= np * pair_len, "int8 depthwise scratch alignment and size");
        // Prepared row `m`: pair row `m`, padded rows `2m` and `2m + 1`.
        let fill = |img: usize, m: usize, slot: &mut [i16]| {
            let image = &input[img * h * w * c..][..h * w * c];
            let source = |r: usize| r.checked_sub(pad).filter(|&iy| iy < h).map(|iy| &image[iy * w * c..][..w * c]);
            // SAFETY: every x86 tier has AVX2; the rows are `w * c` bytes,
            // the slot one pair row.
            unsafe { fill_pair_row(p, [source(2 * m), source(2 * m + 1)], w, slot) };
        };
        let compute = |oy: usize, window: &Window<i16>, out_row: &mut [u8]| {
            let (rows, parity) = (|q| window.row(q), oy * sy % 2);
            // SAFETY: `available` checked the tier (AVX2 at least, AVX-VNNI
            // for its own); each row is a pair row of the padded width,
            // `out_row` the row's `ow * c` outputs.
            unsafe {
                match (k, isa.tier()) {
                    (3, Tier::Avx2Vnni) => row_avx2vnni::<3, 2>(p, std::array::from_fn(rows), parity, ow, sx, out_row),
                    (3, _) => row_avx2::<3, 2>(p, std::array::from_fn(rows), parity, ow, sx, out_row),
                    (_, Tier::Avx2Vnni) => row_avx2vnni::<5, 3>(p, std::array::from_fn(rows), parity, ow, sx, out_row),
                    _ => row_avx2::<5, 3>(p, std::array::from_fn(rows), parity, ow, sx, out_row),
                }
            }
        };
        let ring = &mut ring[..np * pair_len];
        slide(out, out_row, first, oh, ring, np, |oy| oy * sy / 2, fill, compute);
    });
}

/// One pair row from image rows `rows` (`None`: a padding row): per block
/// of 8 channels and column, the two rows' bytes interleaved, widened to
/// `i16` and less the zero point; the padding columns 0.
///
/// # Safety
/// AVX2; each row holds `w * channels` bytes, `dst` one pair row.
#[target_feature(enable = "avx2,fma")]
unsafe fn fill_pair_row(p: &PairsDwWeights, rows: [Option<&[u8]>; 2], w: usize, dst: &mut [i16]) {
    let (c, pad) = (p.channels, (p.kernel - 1) / 2);
    let columns = w + p.kernel - 1;
    // A padding row reads the zero points at every column (stride 0).
    let [(a, a_step), (b, b_step)] = rows.map(|r| match r {
        Some(r) => (r.as_ptr(), c),
        None => (p.zero_row.as_ptr(), 0),
    });
    for (block, dst) in dst.chunks_exact_mut(columns * LANES * 2).enumerate() {
        let (left, rest) = dst.split_at_mut(pad * LANES * 2);
        let (middle, right) = rest.split_at_mut(w * LANES * 2);
        left.fill(0);
        right.fill(0);
        // SAFETY: AVX2 is the caller's; column `x` of block `block` reads
        // 8 bytes at `x * step + 8 * block`, inside a row of `w * c`
        // bytes (or the `c` zero points when the step is 0), and writes
        // the 16 values of `middle`'s column `x`.
        unsafe {
            let zero = _mm256_loadu_si256(p.zero.as_ptr().add(block * LANES * 2).cast());
            let (a, b) = (a.add(block * LANES), b.add(block * LANES));
            for x in 0..w {
                let ra = _mm_loadl_epi64(a.add(x * a_step).cast());
                let rb = _mm_loadl_epi64(b.add(x * b_step).cast());
                let pairs = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(ra, rb));
                _mm256_storeu_si256(middle.as_mut_ptr().add(x * LANES * 2).cast(), _mm256_sub_epi16(pairs, zero));
            }
        }
    }
}

/// The `vpmaddwd`-and-add step: `acc + x . w`, pairwise.
trait PairDot {
    /// # Safety
    /// The step's ISA.
    unsafe fn step(acc: __m256i, x: __m256i, w: __m256i) -> __m256i;
}

/// AVX2: `vpmaddwd`, then `vpaddd`.
struct Madd;

/// AVX-VNNI: `vpdpwssd`, both in one.
struct Dpwssd;

impl PairDot for Madd {
    #[inline(always)]
    unsafe fn step(acc: __m256i, x: __m256i, w: __m256i) -> __m256i {
        // SAFETY: AVX2 is the caller's.
        unsafe { _mm256_add_epi32(acc, _mm256_madd_epi16(x, w)) }
    }
}

impl PairDot for Dpwssd {
    #[inline(always)]
    unsafe fn step(acc: __m256i, x: __m256i, w: __m256i) -> __m256i {
        // SAFETY: AVX-VNNI is the caller's.
        unsafe { _mm256_dpwssd_avx_epi32(acc, x, w) }
    }
}

/// [`row`] on AVX2.
///
/// # Safety
/// As [`row`], and AVX2.
#[target_feature(enable = "avx2,fma")]
unsafe fn row_avx2<const K: usize, const P: usize>(
    p: &PairsDwWeights,
    rows: [&[i16]; P],
    parity: usize,
    ow: usize,
    sx: usize,
    out: &mut [u8],
) {
    // SAFETY: forwarded.
    unsafe { row::<Madd, K, P>(p, rows, parity, ow, sx, out) }
}

/// [`row`] on AVX-VNNI.
///
/// # Safety
/// As [`row`], and AVX2 with AVX-VNNI.
#[target_feature(enable = "avx2,fma,avxvnni")]
unsafe fn row_avx2vnni<const K: usize, const P: usize>(
    p: &PairsDwWeights,
    rows: [&[i16]; P],
    parity: usize,
    ow: usize,
    sx: usize,
    out: &mut [u8],
) {
    // SAFETY: forwarded.
    unsafe { row::<Dpwssd, K, P>(p, rows, parity, ow, sx, out) }
}

/// One output row: for each block of 8 channels, each output pixel sums
/// `P` pair rows of `K` columns, then requantises.
///
/// # Safety
/// `D`'s ISA and AVX2; `rows` are the `P` pair rows the output row reads
/// (padded width), `parity` its first padded row's, `out` its `ow *
/// channels` bytes, `(ow - 1) * sx + K` at most the padded width.
#[inline(always)]
unsafe fn row<D: PairDot, const K: usize, const P: usize>(
    p: &PairsDwWeights,
    rows: [&[i16]; P],
    parity: usize,
    ow: usize,
    sx: usize,
    out: &mut [u8],
) {
    let (c, blocks) = (p.channels, p.blocks());
    let columns = rows[0].len() / blocks / (LANES * 2);
    debug_assert!(out.len() == ow * c && (ow - 1) * sx + K <= columns);
    // SAFETY: the ISA is the caller's. Loads: block `b`'s column `ox * sx
    // + kx < columns` of each pair row, and the block's `P * K` weight
    // vectors of this parity; stores: the block's 8 channels of pixel
    // `ox`.
    unsafe {
        with_act!(&p.requant, A => {
            let output = Output::<Ymm, A>::new(&p.requant);
            for block in 0..blocks {
                let wt = p.weights.as_ptr().add((parity * blocks + block) * P * K * LANES * 2);
                let weights: [[__m256i; K]; P] = std::array::from_fn(|q| {
                    std::array::from_fn(|kx| _mm256_loadu_si256(wt.add((q * K + kx) * LANES * 2).cast()))
                });
                let base: [*const i16; P] = std::array::from_fn(|q| rows[q].as_ptr().add(block * columns * LANES * 2));
                let lanes = output.lanes(block * LANES);
                let dst = out.as_mut_ptr().add(block * LANES);
                // Pixels NPIX at a time: each weight register serves them
                // all, and at stride 1 (a constant here) they share columns.
                let whole = ow - ow % NPIX;
                for ox in (0..whole).step_by(NPIX) {
                    // `fits` allows strides 1 and 2 only.
                    let sums = match sx {
                        1 => sums::<D, K, P, NPIX, 1>(&weights, base, ox),
                        _ => sums::<D, K, P, NPIX, 2>(&weights, base, 2 * ox),
                    };
                    for (n, sum) in sums.into_iter().enumerate() {
                        let real = lanes.requantised(Ymm(_mm256_cvtepi32_ps(sum)));
                        Avx2Ymm::store_u8(real, dst.add((ox + n) * c));
                    }
                }
                for ox in whole..ow {
                    let [sum] = sums::<D, K, P, 1, 1>(&weights, base, ox * sx);
                    let real = lanes.requantised(Ymm(_mm256_cvtepi32_ps(sum)));
                    Avx2Ymm::store_u8(real, dst.add(ox * c));
                }
            }
        });
    }
}

/// The sums of `N` pixels `SX` columns apart, the first at column
/// `column`: `P` pair rows of `K` columns each.
///
/// # Safety
/// `D`'s ISA and AVX2; columns `column .. column + (N - 1) * SX + K` of
/// each pair row `base[q]` (a block's first column) readable.
#[inline(always)]
unsafe fn sums<D: PairDot, const K: usize, const P: usize, const N: usize, const SX: usize>(
    weights: &[[__m256i; K]; P],
    base: [*const i16; P],
    column: usize,
) -> [__m256i; N] {
    // SAFETY: forwarded from the caller.
    unsafe {
        let mut sums = [_mm256_setzero_si256(); N];
        for (row, weights) in base.iter().zip(weights) {
            let taps = row.add(column * LANES * 2);
            for (kx, &w) in weights.iter().enumerate() {
                for (n, sum) in sums.iter_mut().enumerate() {
                    let x = _mm256_loadu_si256(taps.add((n * SX + kx) * LANES * 2).cast());
                    *sum = D::step(*sum, x, w);
                }
            }
        }
        sums
    }
}
