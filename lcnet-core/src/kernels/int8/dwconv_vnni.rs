//! int8 depthwise 3x3 and 5x5 on AVX-512 VNNI with VBMI: a kernel row's
//! taps as the four bytes of a `vpdpbusd` lane.
//!
//! The taps of one channel are `channels` bytes apart in NHWC, so
//! [`super::dwconv`]'s portable route widens the input to `f32` and
//! multiplies tap by tap. Here each input row is copied once into a window
//! of `k` rows laid out by blocks of 16 channels, `[block][column][16]`,
//! with the padding (columns and rows) holding the zero point, a real 0. Four neighbouring columns of a block are then
//! 64 contiguous bytes; one `vpermb` turns them into 16 lanes, one per
//! channel, of its four columns' bytes, and one `vpdpbusd` adds a kernel
//! row's taps into the lane's sum: three instructions per kernel row and 16
//! outputs for 3x3 (the fourth byte meets a zero weight), six for 5x5 (taps
//! 0-3, then 4-7 of which only 4 has a weight), where the widened route
//! takes a multiply-add per tap after widening every input byte to four.
//!
//! The sums are `sum(w * x) - zero * sum(w)` over all taps, padding
//! included, which is the widened route's `sum(w * (x - zero))`: the same
//! integers, requantised by the same operations ([`requantised`]), so the
//! bytes are the same too (`tests/int8_network.rs` checks the network bit
//! for bit, `int8_kernels.rs` the layer, on every tier).

use std::arch::x86_64::*;

use super::store::{requantised, with_act, Output};
use super::window::{slide, Window};
use super::{Channels, Requant};
use crate::kernels::simd::avx512::Zmm;
use crate::kernels::threads::for_each_part;
use crate::kernels::Isa;

/// Channels per block: the `i32` lanes of a 512-bit register.
const LANES: usize = 16;

/// Columns past the padded row the 64-byte loads may read (5x5's second
/// group reads up to three; their weights are 0).
const SLACK: usize = 3;

/// `vpermb`'s selector: lane `l` takes byte `l` (channel `l`) of each of
/// the four 16-byte columns.
const COLUMNS_TO_LANES: [u8; 64] = {
    let mut idx = [0u8; 64];
    let mut i = 0;
    while i < 64 {
        idx[i] = ((i % 4) * LANES + i / 4) as u8;
        i += 1;
    }
    idx
};

/// Whether [`run`] can take a layer of kernel size `kernel` on `isa`.
pub fn available(isa: Isa, kernel: usize) -> bool {
    isa.has_avx512_vnni() && (kernel == 3 || kernel == 5) && is_x86_feature_detected!("avx512vbmi")
}

/// The weights in `vpdpbusd`'s layout and what the store needs, padded to
/// whole blocks of 16 channels.
#[derive(Debug, Clone)]
pub struct VnniDwWeights {
    kernel: usize,
    stride: [usize; 2],
    channels: usize,
    /// `[block][ky][group][lane][4]`: tap `kx = 4 * group + byte`, 0 past
    /// the kernel and for padding channels.
    weights: Vec<i8>,
    /// Each sum's start: `-zero * sum(w)` per channel.
    start: Vec<i32>,
    /// The input's zero point per channel (the padding's value).
    zero: Vec<u8>,
    /// The requantisation, padded to whole blocks.
    requant: Channels,
}

impl VnniDwWeights {
    /// From PaddleClas's `[c, 1, k, k]` weights (`k` 3 or 5; checked by
    /// the caller) and one input zero point per channel.
    pub fn pack(c1kk: &[i8], kernel: usize, stride: [usize; 2], in_zero: &[u8], requant: &Requant) -> Self {
        let channels = in_zero.len();
        let padded = channels.div_ceil(LANES) * LANES;
        let groups = groups(kernel);
        let mut weights = vec![0i8; padded * kernel * groups * 4];
        let mut start = vec![0i32; padded];
        for ch in 0..channels {
            let (block, lane) = (ch / LANES, ch % LANES);
            for ky in 0..kernel {
                for kx in 0..kernel {
                    let wt = c1kk[(ch * kernel + ky) * kernel + kx];
                    let at = (((block * kernel + ky) * groups + kx / 4) * LANES + lane) * 4 + kx % 4;
                    weights[at] = wt;
                    start[ch] -= i32::from(in_zero[ch]) * i32::from(wt);
                }
            }
        }
        VnniDwWeights {
            kernel,
            stride,
            channels,
            weights,
            start,
            zero: in_zero.iter().copied().chain(std::iter::repeat(0)).take(padded).collect(),
            requant: Channels::new(requant, padded),
        }
    }

    fn blocks(&self) -> usize {
        self.channels.div_ceil(LANES)
    }

    /// Bytes of one window row: every block's padded columns.
    fn row_bytes(&self, w: usize) -> usize {
        self.blocks() * (w + self.kernel - 1 + SLACK) * LANES
    }

    /// Window bytes one part of [`run`] needs for images `w` wide.
    pub fn scratch_bytes(&self, w: usize) -> usize {
        self.kernel * self.row_bytes(w)
    }
}

/// 64-byte groups of taps per kernel row.
fn groups(kernel: usize) -> usize {
    kernel.div_ceil(4)
}

/// The convolution of `batch` NHWC images of `h` x `w` into `out`
/// (`oh` x `ow` each), on `isa` ([`available`] must hold); `scratch`
/// holds `parts * VnniDwWeights::scratch_bytes(w)` bytes.
#[allow(clippy::too_many_arguments)]
pub fn run(
    isa: Isa,
    p: &VnniDwWeights,
    input: &[u8],
    [batch, h, w]: [usize; 3],
    [oh, ow]: [usize; 2],
    out: &mut [u8],
    scratch: &mut [u8],
) {
    assert!(available(isa, p.kernel), "the VNNI depthwise kernel needs AVX-512 VNNI and VBMI");
    let (k, [sy, sx], c) = (p.kernel, p.stride, p.channels);
    assert_eq!(input.len(), batch * h * w * c, "int8 depthwise input size");
    assert_eq!(out.len(), batch * oh * ow * c, "int8 depthwise output size");
    if out.is_empty() {
        return;
    }
    // The last output's taps end inside the padded input.
    assert!((oh - 1) * sy < h && (ow - 1) * sx < w, "output size for the input");
    let pad = (k - 1) / 2;
    let (row_bytes, out_row) = (p.row_bytes(w), ow * c);
    let per_part = p.scratch_bytes(w);
    for_each_part(out, out_row, scratch, per_part, |first, out, window| {
        // Prepared row `r`: padded row `r` (image row `r - pad`).
        let fill = |img: usize, r: usize, slot: &mut [u8]| {
            let image = &input[img * h * w * c..][..h * w * c];
            let iy = r.checked_sub(pad).filter(|&iy| iy < h);
            fill_row(p, iy.map(|iy| &image[iy * w * c..][..w * c]), w, slot);
        };
        let compute = |_oy: usize, rows: &Window<u8>, out_row: &mut [u8]| {
            // SAFETY: `available` checked the CPU; each row is a padded
            // window row (the loads end inside its SLACK), `out_row` holds
            // the row's `ow * c` outputs.
            unsafe {
                match k {
                    3 => row_vnni::<3, 1>(p, std::array::from_fn(|ky| rows.row(ky)), ow, sx, out_row),
                    _ => row_vnni::<5, 2>(p, std::array::from_fn(|ky| rows.row(ky)), ow, sx, out_row),
                }
            }
        };
        slide(out, out_row, first, oh, &mut window[..k * row_bytes], k, |oy| oy * sy, fill, compute);
    });
}

/// One window row: image row `src` (`None`: a padding row) by blocks of 16
/// channels, the padding columns (and channels past the last) holding the
/// zero point.
fn fill_row(p: &VnniDwWeights, src: Option<&[u8]>, w: usize, dst: &mut [u8]) {
    let (c, pad) = (p.channels, (p.kernel - 1) / 2);
    let columns = w + p.kernel - 1 + SLACK;
    for (block, dst) in dst.chunks_exact_mut(columns * LANES).enumerate() {
        let zero: &[u8; LANES] = p.zero[block * LANES..][..LANES].try_into().expect("16 zero points");
        let (lo, hi) = (block * LANES, c.min(block * LANES + LANES));
        let (left, rest) = dst.split_at_mut(pad * LANES);
        let (middle, right) = rest.split_at_mut(w * LANES);
        for column in left.chunks_exact_mut(LANES).chain(right.chunks_exact_mut(LANES)) {
            column.copy_from_slice(zero);
        }
        match src {
            None => middle.chunks_exact_mut(LANES).for_each(|column| column.copy_from_slice(zero)),
            // One block of every pixel: the row as it is.
            Some(src) if c == LANES => middle.copy_from_slice(src),
            Some(src) if hi - lo == LANES => {
                for (column, pixel) in middle.chunks_exact_mut(LANES).zip(src.chunks_exact(c)) {
                    let pixel: &[u8; LANES] = pixel[lo..hi].try_into().expect("a whole block");
                    column.copy_from_slice(pixel);
                }
            }
            Some(src) => {
                for (column, pixel) in middle.chunks_exact_mut(LANES).zip(src.chunks_exact(c)) {
                    column[..hi - lo].copy_from_slice(&pixel[lo..hi]);
                    column[hi - lo..].copy_from_slice(&zero[hi - lo..]);
                }
            }
        }
    }
}

/// One output row: for each block of 16 channels, each output pixel sums
/// `K` kernel rows of `G` groups of four taps, then requantises.
///
/// # Safety
/// AVX-512F/BW/VL, VNNI and VBMI; `rows` are the `K` padded window rows
/// the output row reads, `out` its `ow * channels` bytes.
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx512vbmi,avx2,fma")]
unsafe fn row_vnni<const K: usize, const G: usize>(
    p: &VnniDwWeights,
    rows: [&[u8]; K],
    ow: usize,
    sx: usize,
    out: &mut [u8],
) {
    let (c, columns) = (p.channels, rows[0].len() / p.blocks() / LANES);
    debug_assert!(out.len() == ow * c);
    // SAFETY: the features are the caller's. Loads: block `b`'s column
    // `ox * sx + 4 * g` plus four stays below `columns` (the slack), in
    // row `ky`; weights, starts, scales and biases hold
    // whole blocks; stores write the block's channels of pixel `ox` only
    // (masked at the last, partial block).
    unsafe {
        let select = _mm512_loadu_si512(COLUMNS_TO_LANES.as_ptr().cast());
        // HardSwish (every PP-LCNet layer) fixed, so that the loop over
        // pixels holds no branch on the activation.
        with_act!(&p.requant, A => {
            let output = Output::<Zmm, A>::new(&p.requant);
            for block in 0..p.blocks() {
                let wt = p.weights.as_ptr().add(block * K * G * 64);
                let weights: [[__m512i; G]; K] =
                    std::array::from_fn(|ky| std::array::from_fn(|g| _mm512_loadu_si512(wt.add((ky * G + g) * 64).cast())));
                let start = _mm512_loadu_si512(p.start.as_ptr().add(block * LANES).cast());
                let valid = c.min(block * LANES + LANES) - block * LANES;
                let mask: __mmask16 = if valid == LANES { !0 } else { (1 << valid) - 1 };
                let base: [*const u8; K] = std::array::from_fn(|ky| rows[ky].as_ptr().add(block * columns * LANES));
                let dst = out.as_mut_ptr().add(block * LANES);
                for ox in 0..ow {
                    let mut sum = start;
                    for (ky, weights) in weights.iter().enumerate() {
                        let taps = base[ky].add(ox * sx * LANES);
                        for (g, &w) in weights.iter().enumerate() {
                            let x = _mm512_permutexvar_epi8(select, _mm512_loadu_si512(taps.add(g * 64).cast()));
                            sum = _mm512_dpbusd_epi32(sum, x, w);
                        }
                    }
                    let f = requantised(Zmm(_mm512_cvtepi32_ps(sum)), block * LANES, &output);
                    _mm512_mask_cvtusepi32_storeu_epi8(dst.add(ox * c).cast(), mask, _mm512_cvtps_epi32(f.0));
                }
            }
        });
    }
}
