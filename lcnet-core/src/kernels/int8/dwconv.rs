//! int8 depthwise kxk convolution, NHWC: `u8` inputs x `i8` weights,
//! requantised to `u8`.
//!
//! On AVX-512 VNNI with VBMI, 3x3 and 5x5 layers run `dwconv_vnni`
//! (`vpermb` gathers a kernel row's taps, `vpdpbusd` adds them); on the
//! other x86 tiers, those with whole blocks of 8 channels run
//! `dwconv_pairs` (two kernel rows' taps as the pair of a `vpmaddwd`
//! lane); every other tier and layer runs the widened route below, to the
//! same bytes.
//!
//! The taps of one channel are not neighbours in memory, so neither
//! `vpdpbusd` nor `vpmaddubsw` fits as they lie; widening and multiplying in `i32` costs
//! three or four instructions per 16 products where the f32 kernel needs one
//! fused multiply-add. Instead the input is widened to `f32` values `x -
//! zero` (exact), and the f32 depthwise kernel runs with the integer
//! weights as `f32`. Every product and every partial sum is then an integer
//! below `25 x 255 x 127 < 2^24`, which `f32` holds exactly, so the sums are
//! the exact integer sums whatever the tier, the order or the fused
//! multiply-adds. They are requantised to `u8` ([`Requant`]) at once.
//!
//! The work goes a few output rows at a time (`ROWS`): the input rows
//! they read are widened into a small buffer, the f32 kernel writes their
//! sums into another, and those are requantised into the output, all while
//! the buffers are in the first-level cache. (Widening the whole input and
//! requantising the whole output in passes of their own moved four times the
//! `u8` maps' bytes through memory and cost as much as the convolution.)
//!
//! Padding needs nothing: the f32 kernel skips padded taps, and a padded
//! input is a real 0, which is `x - zero = 0` here.

#[cfg(target_arch = "x86_64")]
use super::dwconv_pairs::{self, PairsDwWeights};
#[cfg(target_arch = "x86_64")]
use super::dwconv_vnni::{self, VnniDwWeights};
use super::requantise::{requantise, Requantiser};
use super::{Requant, WEIGHT_MAX, WEIGHT_MIN};
use crate::kernels::dispatch::Fma;
use crate::kernels::dwconv::{self, DwWeights};
use crate::kernels::threads::{for_each_part, parts};
use crate::kernels::{Activation, Isa};

/// int8 depthwise weights (as exact `f32` integers for the f32 kernel) and
/// the requantisation.
#[derive(Debug, Clone)]
pub struct QDwWeights {
    /// The weights, bias 0, no activation: the f32 kernel's output is the sums.
    sums: DwWeights,
    /// The input's zero point per channel.
    zero_in: Vec<i32>,
    /// From the sums to the `u8` outputs.
    requant: Requantiser,
    /// The same layer for the AVX-512 VNNI kernel (3x3 and 5x5).
    #[cfg(target_arch = "x86_64")]
    vnni: Option<VnniDwWeights>,
    /// The same layer for the other x86 tiers' kernel (3x3 and 5x5, whole
    /// blocks of 8 channels).
    #[cfg(target_arch = "x86_64")]
    pairs: Option<PairsDwWeights>,
}

impl QDwWeights {
    /// Packs PaddleClas's `[c, 1, k, k]` weights for inputs with zero points
    /// `in_zero`, one per channel (each output reads one channel, so its
    /// input may be quantised per channel: `requant.scale` then holds each
    /// channel's input scale times its weight scale).
    ///
    /// # Panics
    /// If a weight is outside `WEIGHT_MIN..=WEIGHT_MAX`, the kernel is
    /// larger than 5 (sums could leave `f32`'s exact integers), or the sizes
    /// do not agree (loaders check all three first).
    pub fn pack(c1kk: &[i8], kernel: usize, stride: [usize; 2], in_zero: &[u8], requant: &Requant) -> Self {
        let c = requant.scale.len();
        assert_eq!(c1kk.len(), c * kernel * kernel, "int8 depthwise weight size");
        assert_eq!(requant.bias.len(), c, "one bias per channel");
        assert_eq!(in_zero.len(), c, "one input zero point per channel");
        assert!(kernel <= 5, "int8 depthwise kernels are at most 5x5");
        assert!(c1kk.iter().all(|w| (WEIGHT_MIN..=WEIGHT_MAX).contains(w)), "int8 weights must be in -127..=127");
        let weights: Vec<f32> = c1kk.iter().map(|&w| f32::from(w)).collect();
        QDwWeights {
            sums: DwWeights::pack(&weights, vec![0.0; c], kernel, stride, Activation::None),
            zero_in: in_zero.iter().map(|&z| i32::from(z)).collect(),
            requant: Requantiser::new(requant),
            #[cfg(target_arch = "x86_64")]
            vnni: (kernel == 3 || kernel == 5).then(|| VnniDwWeights::pack(c1kk, kernel, stride, in_zero, requant)),
            #[cfg(target_arch = "x86_64")]
            pairs: dwconv_pairs::fits(kernel, stride, c)
                .then(|| PairsDwWeights::pack(c1kk, kernel, stride, in_zero, requant)),
        }
    }

    /// Number of channels.
    pub fn channels(&self) -> usize {
        self.requant.channels()
    }

    /// Output (height, width) for an input of `h` x `w`.
    pub fn out_hw(&self, h: usize, w: usize) -> (usize, usize) {
        self.sums.out_hw(h, w)
    }
}

/// Output rows computed together (see the module's documentation).
const ROWS: usize = 4;

impl QDwWeights {
    /// `f32` scratch values [`run`] needs for `batch` images of `h` x `w`.
    pub fn scratch_len(&self, batch: usize, h: usize, w: usize) -> usize {
        let (oh, _) = self.out_hw(h, w);
        parts(batch * oh) * self.scratch_per_part(w)
    }

    /// Values per part: the widened route's, or the VNNI kernel's bytes
    /// in `f32`s, whichever is more.
    fn scratch_per_part(&self, w: usize) -> usize {
        #[cfg(target_arch = "x86_64")]
        {
            let vnni = self.vnni.as_ref().map_or(0, |v| v.scratch_bytes(w));
            let pairs = self.pairs.as_ref().map_or(0, |p| p.scratch_bytes(w));
            return self.widened_per_part(w).max(vnni.max(pairs).div_ceil(4));
        }
        #[allow(unreachable_code)] // on x86 the block above returns
        self.widened_per_part(w)
    }

    /// Widened input rows of one block (with up to `stride - 1` rows before
    /// the first, see `run_isa`), then the block's sums.
    fn widened_per_part(&self, w: usize) -> usize {
        let (k, s, c) = (self.sums.kernel, self.sums.stride[0], self.channels());
        let (_, ow) = self.out_hw(1, w);
        ((ROWS - 1) * s + k + s - 1) * w * c + ROWS * ow * c
    }
}

/// Runs the convolution on `batch` NHWC images of `h` x `w`, on the best
/// tier; `scratch` holds at least [`QDwWeights::scratch_len`] values.
pub fn run(p: &QDwWeights, input: &[u8], batch: usize, h: usize, w: usize, out: &mut [u8], scratch: &mut [f32]) {
    run_isa(crate::kernels::isa(), p, input, batch, h, w, out, scratch)
}

/// [`run`] on a given ISA (tests force each one).
#[allow(clippy::too_many_arguments)]
pub fn run_isa(
    isa: Isa,
    p: &QDwWeights,
    input: &[u8],
    batch: usize,
    h: usize,
    w: usize,
    out: &mut [u8],
    scratch: &mut [f32],
) {
    let c = p.channels();
    let (oh, ow) = p.out_hw(h, w);
    assert_eq!(input.len(), batch * h * w * c, "int8 depthwise input size");
    assert_eq!(out.len(), batch * oh * ow * c, "int8 depthwise output size");
    if out.is_empty() {
        return;
    }
    assert!(scratch.len() >= p.scratch_len(batch, h, w), "int8 depthwise scratch size");
    #[cfg(target_arch = "x86_64")]
    if let Some(vnni) = p.vnni.as_ref().filter(|_| dwconv_vnni::available(isa, p.sums.kernel)) {
        // SAFETY: `u8` has no alignment or validity requirement, and the
        // view borrows `scratch` mutably for its whole life.
        let bytes = unsafe { std::slice::from_raw_parts_mut(scratch.as_mut_ptr().cast::<u8>(), scratch.len() * 4) };
        return dwconv_vnni::run(isa, vnni, input, [batch, h, w], [oh, ow], out, bytes);
    }
    #[cfg(target_arch = "x86_64")]
    if let Some(pairs) = p.pairs.as_ref().filter(|_| dwconv_pairs::available(isa)) {
        // SAFETY: as above.
        let bytes = unsafe { std::slice::from_raw_parts_mut(scratch.as_mut_ptr().cast::<u8>(), scratch.len() * 4) };
        return dwconv_pairs::run(isa, pairs, input, [batch, h, w], [oh, ow], out, bytes);
    }
    let (k, s) = (p.sums.kernel, p.sums.stride[0]);
    let pad = (k - 1) / 2;
    let (in_row, out_row) = (w * c, ow * c);
    let per_part = p.scratch_per_part(w);
    let widened_len = p.widened_per_part(w);
    for_each_part(out, out_row, scratch, per_part, |first, out, scratch| {
        let (widened, sums) = scratch[..widened_len].split_at_mut(widened_len - ROWS * out_row);
        let mut row = first;
        let mut out = out;
        while !out.is_empty() {
            // Output rows oy..oy_end of image `img`: a block never spans two images.
            let (img, oy) = (row / oh, row % oh);
            let oy_end = oh.min(oy + ROWS).min(oy + out.len() / out_row);
            let rows = oy_end - oy;
            // The input rows they read, from a multiple of the stride so that
            // the kernel's row arithmetic on the buffer stays exact: buffer
            // row `r` is image row `lo + r`, output row `oy` there is
            // `oy - lo / s`.
            let lo = (oy * s).saturating_sub(pad) / s * s;
            let hi = h.min((oy_end - 1) * s + k - pad);
            let image = &input[img * h * in_row..][..h * in_row];
            let window = &mut widened[..(hi - lo) * in_row];
            widen(isa, &image[lo * in_row..hi * in_row], &p.zero_in, window);
            let (block, rest) = std::mem::take(&mut out).split_at_mut(rows * out_row);
            let block_sums = &mut sums[..rows * out_row];
            for (i, sums_row) in block_sums.chunks_exact_mut(out_row).enumerate() {
                dwconv::row_isa(isa, &p.sums, window, hi - lo, w, oy + i - lo / s, sums_row);
            }
            requantise(isa, &p.requant, block_sums, block);
            (out, row) = (rest, row + rows);
        }
    });
}

crate::kernels::dispatch::multiversion!(fn widen(input: &[u8], zero: &[i32], out: &mut [f32]) => widen_body);

/// `out = x - zero` as `f32`, exactly; `zero` per channel (pixels of
/// `zero.len()` values).
#[inline(always)]
#[allow(clippy::extra_unused_type_parameters)] // only the ISA matters
fn widen_body<F: Fma>(input: &[u8], zero: &[i32], out: &mut [f32]) {
    for (y, x) in out.chunks_exact_mut(zero.len()).zip(input.chunks_exact(zero.len())) {
        for ((y, &x), &z) in y.iter_mut().zip(x).zip(zero) {
            *y = (i32::from(x) - z) as f32;
        }
    }
}
