//! The stem of an int8 network: the f32 stem kernel (three input channels
//! leave int8 nothing to gain there), its output quantised to `u8` a few
//! rows at a time, while they are in the first-level cache, instead of in a
//! pass over the whole map.

use super::requantise::{requantise, Requantiser};
use crate::kernels::stem::{self, StemWeights};
use crate::kernels::threads::{for_each_part, parts};
use crate::kernels::Isa;

/// Output rows computed, then quantised, together.
const ROWS: usize = 4;

/// `f32` scratch values [`run_isa`] needs for `batch` images of `h` x `w`.
pub fn scratch_len(p: &StemWeights, batch: usize, h: usize, w: usize) -> usize {
    let (oh, ow) = p.out_hw(h, w);
    parts(batch * oh) * ROWS * ow * p.out_channels
}

/// The stem on `batch` NCHW images of `h` x `w`, its NHWC output quantised
/// by `quantiser` into `out`; `scratch` holds at least [`scratch_len`] values.
#[allow(clippy::too_many_arguments)]
pub fn run_isa(
    isa: Isa,
    p: &StemWeights,
    quantiser: &Requantiser,
    input: &[f32],
    batch: usize,
    [h, w]: [usize; 2],
    out: &mut [u8],
    scratch: &mut [f32],
) {
    let (oh, ow) = p.out_hw(h, w);
    let (row, image_len) = (ow * p.out_channels, p.in_channels * h * w);
    assert_eq!(input.len(), batch * image_len, "stem input size");
    assert_eq!(out.len(), batch * oh * row, "stem output size");
    if out.is_empty() {
        return;
    }
    for_each_part(out, row, scratch, ROWS * row, |first, out, scratch| {
        for (b, block) in out.chunks_mut(ROWS * row).enumerate() {
            let real = &mut scratch[..block.len()];
            for (i, real_row) in real.chunks_exact_mut(row).enumerate() {
                let (img, oy) = ((first + b * ROWS + i) / oh, (first + b * ROWS + i) % oh);
                stem::row_isa(isa, p, &input[img * image_len..][..image_len], h, w, oy, real_row);
            }
            requantise(isa, quantiser, real, block);
        }
    });
}
