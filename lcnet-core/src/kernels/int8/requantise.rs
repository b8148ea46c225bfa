//! From `f32` values to `u8` outputs with a [`Requant`], vectorised: the
//! store of the int8 depthwise convolution, and the quantisation of the
//! f32 stem's and SE's outputs.

use super::{Channels, Requant};
use crate::kernels::dispatch::Fma;
use crate::kernels::{Isa, Tier};

/// A [`Requant`] ready to apply: per channel, scale, bias, `1 /
/// out_scale` and the zero point, and the activation.
#[derive(Debug, Clone)]
pub struct Requantiser {
    channels: Channels,
}

impl Requantiser {
    /// From the definition.
    pub fn new(r: &Requant) -> Self {
        Requantiser { channels: Channels::new(r, r.scale.len()) }
    }

    /// Channels per pixel.
    pub fn channels(&self) -> usize {
        self.channels.scale.len()
    }
}

/// `values` (pixels of [`Requantiser::channels`] values) to `u8`, as
/// [`Requant::apply`] defines it.
pub fn requantise(isa: Isa, p: &Requantiser, sums: &[f32], out: &mut [u8]) {
    match isa.tier() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: an `Isa` holds only a detected tier; each implies the ones below.
        Tier::Avx512 | Tier::Avx512Vnni | Tier::Avx512Amx => unsafe { simd::requantise_avx512(p, sums, out) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Tier::Avx2 | Tier::Avx2Vnni => unsafe { simd::requantise_avx2(p, sums, out) },
        Tier::Neon | Tier::Scalar => requantise_channels(p, sums, out, 0),
        #[allow(unreachable_patterns)] // x86 tiers on other targets
        _ => requantise_channels(p, sums, out, 0),
    }
}

/// Channels `from..` of every pixel, one value at a time.
fn requantise_channels(p: &Requantiser, sums: &[f32], out: &mut [u8], from: usize) {
    let c = p.channels();
    for (pixel, sums) in out.chunks_exact_mut(c).zip(sums.chunks_exact(c)) {
        for ch in from..c {
            pixel[ch] = p.channels.apply(ch, sums[ch]);
        }
    }
}

/// The requantisation in registers (LLVM does not vectorise the rounding
/// and clamping of [`quantize`]: a value at a time, it took three quarters
/// of the layer's time).
#[cfg(target_arch = "x86_64")]
mod simd {
    use super::{requantise_channels, Requantiser};
    use crate::kernels::int8::dot::{requantise, Avx2Ymm, BwZmm, Dot, Output};
    use crate::kernels::simd::Vector;

    /// # Safety
    /// The CPU must support AVX-512F/BW/DQ/VL.
    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")]
    pub unsafe fn requantise_avx512(p: &Requantiser, sums: &[f32], out: &mut [u8]) {
        // SAFETY: the features are enabled.
        unsafe { rows::<BwZmm, Avx2Ymm>(p, sums, out) }
    }

    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn requantise_avx2(p: &Requantiser, sums: &[f32], out: &mut [u8]) {
        // SAFETY: the features are enabled.
        unsafe { rows::<Avx2Ymm, Avx2Ymm>(p, sums, out) }
    }

    /// Blocks of `D`'s lanes, then of `T`'s (8-lane registers after
    /// 16-lane ones: x0.25's 8-channel maps), then one value at a time.
    #[inline(always)]
    unsafe fn rows<D: Dot, T: Dot>(p: &Requantiser, sums: &[f32], out: &mut [u8]) {
        let c = p.channels();
        let (lanes, tail_lanes) = (<D::F as Vector>::LANES, <T::F as Vector>::LANES);
        let whole = c / lanes * lanes;
        let tail = whole + (c - whole) / tail_lanes * tail_lanes;
        debug_assert_eq!(sums.len(), out.len());
        // SAFETY: the ISA is the caller's (`T`'s is part of `D`'s); blocks
        // end at `tail <= c` inside each pixel, and `scale`, `bias` hold `c`
        // values.
        unsafe {
            let output = Output::<D::F>::new(&p.channels);
            let tail_output = Output::<T::F>::new(&p.channels);
            for (pixel, s) in out.chunks_exact_mut(c).zip(sums.chunks_exact(c)) {
                for cb in (0..whole).step_by(lanes) {
                    let sums = <D::F as Vector>::load(s.as_ptr().add(cb));
                    requantise::<D, _>(sums, cb, &output, pixel.as_mut_ptr().add(cb));
                }
                for cb in (whole..tail).step_by(tail_lanes) {
                    let sums = <T::F as Vector>::load(s.as_ptr().add(cb));
                    requantise::<T, _>(sums, cb, &tail_output, pixel.as_mut_ptr().add(cb));
                }
            }
        }
        if tail < c {
            requantise_channels(p, sums, out, tail);
        }
    }
}

/// `out = (x - zero) * scale`, the real values of `u8` ones.
pub fn dequantize(isa: Isa, x: &[u8], zero: u8, scale: f32, out: &mut [f32]) {
    dequantize_tiers(isa, x, zero, scale, out)
}

crate::kernels::dispatch::multiversion!(fn dequantize_tiers(x: &[u8], zero: u8, scale: f32, out: &mut [f32]) => dequantize_body);

/// The body of [`dequantize`].
#[inline(always)]
#[allow(clippy::extra_unused_type_parameters)] // only the ISA matters
fn dequantize_body<F: Fma>(x: &[u8], zero: u8, scale: f32, out: &mut [f32]) {
    for (y, &v) in out.iter_mut().zip(x) {
        *y = (i32::from(v) - i32::from(zero)) as f32 * scale;
    }
}
