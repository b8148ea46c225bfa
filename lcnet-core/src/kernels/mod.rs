//! CPU kernels, one file per operation.
//!
//! Every kernel file has a plain scalar `reference` function, written to be
//! obviously right (the test oracle), and the function the network runs,
//! which is written for speed: NHWC, fused bias + activation epilogues, no
//! padded copies, and rayon across output rows (so both a batch and a single
//! large image keep every core busy).

pub mod activation;
#[cfg(target_arch = "x86_64")]
pub(crate) mod amx;
pub mod dispatch;
pub mod dwconv;
pub mod head;
pub mod int8;
pub(crate) mod matvec;
pub mod pwconv;
pub mod se;
mod simd;
pub mod stem;
pub mod threads;

pub use activation::{hard_sigmoid, hard_swish, Activation};
pub use dispatch::{isa, Isa, Tier};

/// Output size of a convolution with symmetric padding `(k - 1) / 2`, as
/// PaddleClas pads at every stride: `floor((n + 2 * pad - k) / stride) + 1`,
/// which is `ceil(n / stride)` for odd `k`.
pub const fn conv_out_len(n: usize, kernel: usize, stride: usize) -> usize {
    let pad = (kernel - 1) / 2;
    (n + 2 * pad - kernel) / stride + 1
}

/// Global average pooling of one NHWC image into `pooled` (one value per
/// channel): the squeeze of SE and the first step of the head. Inlined into
/// its callers, so it is vectorised with their ISA.
#[inline(always)]
pub(crate) fn global_average_pool(image: &[f32], pooled: &mut [f32]) {
    let c = pooled.len();
    pooled.fill(0.0);
    for pixel in image.chunks_exact(c) {
        for (s, &v) in pooled.iter_mut().zip(pixel) {
            *s += v;
        }
    }
    let inv = 1.0 / (image.len() / c) as f32;
    pooled.iter_mut().for_each(|s| *s *= inv);
}

#[cfg(test)]
mod tests {
    use super::conv_out_len;

    #[test]
    fn odd_sizes_round_up_at_stride_two() {
        // DESIGN.md: 97x131 -> 49x66 -> 25x33 -> 13x17 -> 7x9 -> 4x5.
        let mut hw = (97, 131);
        let mut seen = vec![];
        for _ in 0..5 {
            hw = (conv_out_len(hw.0, 3, 2), conv_out_len(hw.1, 5, 2));
            seen.push(hw);
        }
        assert_eq!(seen, vec![(49, 66), (25, 33), (13, 17), (7, 9), (4, 5)]);
        assert_eq!(conv_out_len(7, 5, 1), 7);
        assert_eq!(conv_out_len(1, 3, 2), 1);
    }
}
