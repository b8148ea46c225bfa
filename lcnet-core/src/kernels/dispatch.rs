//! Runtime ISA dispatch: chosen once, cached, overridable downwards.
//!
//! Each kernel body is written once as an `#[inline(always)]` function
//! generic over an [`Fma`] marker, and `multiversion!` instantiates it once
//! per tier of the target: on x86_64 inside `#[target_feature(enable =
//! "avx512f,...")]` and `#[target_feature(enable = "avx2,fma")]` trampolines
//! (so LLVM vectorises it with zmm / ymm registers and fused multiply-adds);
//! on aarch64, where NEON and FMA are part of the base instruction set, with
//! fused multiply-adds; and everywhere as portable code without them.
//! `LCNET_ISA=scalar|avx2|avx2vnni|avx512|avx512vnni|avx512amx` (x86_64) or
//! `scalar|neon` (aarch64) lowers the choice (never raises it) so that tests
//! cover every path on one machine.

use std::sync::OnceLock;

#[cfg(target_arch = "x86_64")]
use super::amx;

/// An instruction-set tier, best last: a name, with no promise that this
/// CPU has it (see [`Isa`] for that).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Tier {
    /// Portable Rust (SSE2 on x86_64), no fused multiply-add.
    Scalar,
    /// AVX2 + FMA (256-bit).
    Avx2,
    /// [`Avx2`](Tier::Avx2) with AVX-VNNI (`vpdpbusd` on 256 bits: Intel
    /// since Alder Lake and Sapphire Rapids, AMD since Zen 5). The same code
    /// as AVX2 but for the int8 kernels. Not implied by the AVX-512 tiers
    /// (Ice Lake and Zen 4 have AVX-512 VNNI but not AVX-VNNI).
    Avx2Vnni,
    /// AVX-512F/BW/DQ/VL + FMA (512-bit).
    Avx512,
    /// [`Avx512`](Tier::Avx512) with VNNI (`vpdpbusd`: four 8-bit products
    /// added into each 32-bit lane). The same code as AVX-512 but for the
    /// int8 kernels.
    Avx512Vnni,
    /// [`Avx512Vnni`](Tier::Avx512Vnni) with AMX's int8 tiles (`tdpbusd`:
    /// a 16 x 64 by 64 x 16 byte product per instruction; Intel since
    /// Sapphire Rapids), which the operating system must have granted the
    /// process (Linux 5.16 and later). The same code as AVX-512 VNNI but
    /// for the int8 pointwise convolutions.
    Avx512Amx,
    /// aarch64 Advanced SIMD (128-bit) with its fused multiply-add.
    Neon,
}

impl Tier {
    /// Lowercase name, as `LCNET_ISA` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Tier::Scalar => "scalar",
            Tier::Avx2 => "avx2",
            Tier::Avx2Vnni => "avx2vnni",
            Tier::Avx512 => "avx512",
            Tier::Avx512Vnni => "avx512vnni",
            Tier::Avx512Amx => "avx512amx",
            Tier::Neon => "neon",
        }
    }

    /// Whether this CPU can run `self` (runtime detection).
    pub fn supported(self) -> bool {
        match self {
            Tier::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Tier::Avx2 => is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"),
            #[cfg(target_arch = "x86_64")]
            Tier::Avx2Vnni => Tier::Avx2.supported() && is_x86_feature_detected!("avxvnni"),
            #[cfg(target_arch = "x86_64")]
            Tier::Avx512 => {
                Tier::Avx2.supported()
                    && is_x86_feature_detected!("avx512f")
                    && is_x86_feature_detected!("avx512bw")
                    && is_x86_feature_detected!("avx512dq")
                    && is_x86_feature_detected!("avx512vl")
            }
            #[cfg(target_arch = "x86_64")]
            Tier::Avx512Vnni => Tier::Avx512.supported() && is_x86_feature_detected!("avx512vnni"),
            #[cfg(target_arch = "x86_64")]
            Tier::Avx512Amx => Tier::Avx512Vnni.supported() && amx::granted(),
            #[cfg(target_arch = "aarch64")]
            Tier::Neon => std::arch::is_aarch64_feature_detected!("neon"),
            _ => false,
        }
    }
}

/// A tier this CPU has: the proof the kernels ask for before they run its
/// instructions. Its field is private, so outside this module one is made
/// only by runtime detection ([`Isa::detect`], [`isa`],
/// [`Isa::all_supported`]) or is [`Isa::SCALAR`]; safe code therefore
/// cannot make a kernel execute an instruction the CPU lacks (as `gemm` and
/// `pulp` hand out their ISA tokens).
///
/// ```
/// use lcnet_core::{Isa, Tier};
/// // Some only where the CPU has AVX2 and FMA.
/// assert_eq!(Isa::detect(Tier::Avx2).is_some(), Tier::Avx2.supported());
/// ```
///
/// ```compile_fail
/// // The tier inside is private: no token for a tier detection did not find.
/// let forged = lcnet_core::Isa(lcnet_core::Tier::Avx512);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Isa {
    tier: Tier,
    /// Whether the portable kernels fuse multiply-adds ([`Isa::fused`]).
    fused: bool,
}

impl Isa {
    /// Portable code: every CPU has it.
    pub const SCALAR: Isa = Isa { tier: Tier::Scalar, fused: false };

    /// `tier`, if this CPU has it.
    pub fn detect(tier: Tier) -> Option<Isa> {
        tier.supported().then_some(Isa { tier, fused: false })
    }

    /// The tier.
    pub fn tier(self) -> Tier {
        self.tier
    }

    /// Lowercase name, as `LCNET_ISA` spells it.
    pub fn name(self) -> &'static str {
        self.tier.name()
    }

    /// Whether this is one of the AVX-512 tiers (with or without VNNI or
    /// AMX), which the f32 kernels treat alike.
    pub fn is_avx512(self) -> bool {
        matches!(self.tier, Tier::Avx512 | Tier::Avx512Vnni | Tier::Avx512Amx)
    }

    /// Whether this tier has AVX-512 VNNI (with or without AMX).
    pub fn has_avx512_vnni(self) -> bool {
        matches!(self.tier, Tier::Avx512Vnni | Tier::Avx512Amx)
    }

    /// The same tier, with the portable kernels fusing multiply-adds
    /// (`f32::mul_add`) as the SIMD ones do. A kernel that sums in a fixed
    /// order then gives the same bits on every tier: what the int8 network
    /// asks of its f32 parts, whose results are rounded to 8 bits, where one
    /// unit in the last place can change a byte. Slower in portable code
    /// (a library call per multiply-add where the CPU has no FMA).
    pub fn fused(self) -> Isa {
        Isa { fused: true, ..self }
    }

    /// Whether [`Isa::fused`] made this.
    pub fn is_fused(self) -> bool {
        self.fused
    }

    /// Every tier this CPU supports, best last.
    pub fn all_supported() -> Vec<Isa> {
        Tier::ALL.into_iter().filter_map(Isa::detect).collect()
    }
}

impl Tier {
    /// Every tier of every target, in order.
    pub const ALL: [Tier; 7] =
        [Tier::Scalar, Tier::Avx2, Tier::Avx2Vnni, Tier::Avx512, Tier::Avx512Vnni, Tier::Avx512Amx, Tier::Neon];

    /// The tiers of the target this was compiled for, as `LCNET_ISA` names
    /// them (whether or not this CPU has them).
    pub fn of_target() -> &'static [Tier] {
        if cfg!(target_arch = "x86_64") {
            &[Tier::Scalar, Tier::Avx2, Tier::Avx2Vnni, Tier::Avx512, Tier::Avx512Vnni, Tier::Avx512Amx]
        } else if cfg!(target_arch = "aarch64") {
            &[Tier::Scalar, Tier::Neon]
        } else {
            &[Tier::Scalar]
        }
    }
}

/// The ISA every kernel uses: the best this CPU supports, lowered by
/// `LCNET_ISA` if set. Decided on first use.
pub fn isa() -> Isa {
    static CHOSEN: OnceLock<Isa> = OnceLock::new();
    *CHOSEN.get_or_init(|| {
        let best = Isa::all_supported().into_iter().max().unwrap_or(Isa::SCALAR);
        let asked = std::env::var("LCNET_ISA").unwrap_or_default();
        if asked.is_empty() {
            return best;
        }
        match Tier::of_target().iter().find(|t| t.name() == asked) {
            // The best tier this CPU has at or below the one asked for
            // (`avx2vnni` on a CPU without AVX-VNNI: `avx2`).
            Some(&tier) => Isa::all_supported().into_iter().filter(|i| i.tier() <= tier).max().unwrap_or(best),
            None => {
                let names: Vec<_> = Tier::of_target().iter().map(|t| t.name()).collect();
                eprintln!("lcnet: LCNET_ISA={asked} is not one of {}; using {}", names.join(", "), best.name());
                best
            }
        }
    })
}

/// Marks whether a kernel instantiation may use fused multiply-add.
pub trait Fma {
    /// `a * b + c`, fused where the instantiation has FMA.
    fn mul_add(a: f32, b: f32, c: f32) -> f32;
}

/// Instantiations compiled with FMA.
pub struct WithFma;
/// Portable instantiation (no FMA: `f32::mul_add` would be a library call).
pub struct NoFma;

impl Fma for WithFma {
    #[inline(always)]
    fn mul_add(a: f32, b: f32, c: f32) -> f32 {
        a.mul_add(b, c)
    }
}

impl Fma for NoFma {
    #[inline(always)]
    fn mul_add(a: f32, b: f32, c: f32) -> f32 {
        a * b + c
    }
}

/// `multiversion!(pub fn name(a: A, b: B) => body);` defines
/// `name(isa: Isa, a: A, b: B)`, which runs `body::<WithFma>(a, b)` inside an
/// AVX-512 or AVX2+FMA `#[target_feature]` trampoline, or directly on NEON
/// (aarch64's baseline: no trampoline needed), or `body::<NoFma>` (but
/// `body::<WithFma>` for an [`Isa::fused`] one).
macro_rules! multiversion {
    ($vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) => $body:ident) => {
        #[allow(clippy::too_many_arguments)]
        $vis fn $name(isa: $crate::kernels::Isa, $($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn avx512($($arg: $ty),*) {
                    $body::<$crate::kernels::dispatch::WithFma>($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn avx2($($arg: $ty),*) {
                    $body::<$crate::kernels::dispatch::WithFma>($($arg),*)
                }
                match isa.tier() {
                    // SAFETY: an `Isa` holds a tier only if runtime detection
                    // found it on this CPU (its field is private).
                    $crate::kernels::Tier::Avx512
                    | $crate::kernels::Tier::Avx512Vnni
                    | $crate::kernels::Tier::Avx512Amx => {
                        return unsafe { avx512($($arg),*) }
                    }
                    // SAFETY: as above.
                    $crate::kernels::Tier::Avx2 | $crate::kernels::Tier::Avx2Vnni => return unsafe { avx2($($arg),*) },
                    _ => {}
                }
            }
            #[cfg(target_arch = "aarch64")]
            if isa.tier() == $crate::kernels::Tier::Neon {
                return $body::<$crate::kernels::dispatch::WithFma>($($arg),*);
            }
            if isa.is_fused() {
                return $body::<$crate::kernels::dispatch::WithFma>($($arg),*);
            }
            $body::<$crate::kernels::dispatch::NoFma>($($arg),*)
        }
    };
}
pub(crate) use multiversion;
