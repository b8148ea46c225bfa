//! Runtime ISA dispatch: chosen once, cached, overridable downwards.
//!
//! Each kernel body is written once as an `#[inline(always)]` function
//! generic over an [`Fma`] marker, and `multiversion!`
//! instantiates it three times: inside `#[target_feature(enable = "avx512f,...")]`
//! and `#[target_feature(enable = "avx2,fma")]` trampolines (so LLVM
//! vectorises it with zmm / ymm registers and fused multiply-adds) and as
//! portable code. `LCNET_ISA=scalar|avx2|avx512` lowers the choice (never
//! raises it) so that tests cover every path on one machine.

use std::sync::OnceLock;

/// An instruction-set tier, best last: a name, with no promise that this
/// CPU has it (see [`Isa`] for that).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Tier {
    /// Portable Rust (SSE2 on x86_64), no fused multiply-add.
    Scalar,
    /// AVX2 + FMA (256-bit).
    Avx2,
    /// AVX-512F/BW/DQ/VL + FMA (512-bit).
    Avx512,
}

impl Tier {
    /// Lowercase name, as `LCNET_ISA` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Tier::Scalar => "scalar",
            Tier::Avx2 => "avx2",
            Tier::Avx512 => "avx512",
        }
    }

    /// Whether this CPU can run `self` (runtime detection).
    pub fn supported(self) -> bool {
        match self {
            Tier::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Tier::Avx2 => is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"),
            #[cfg(target_arch = "x86_64")]
            Tier::Avx512 => {
                Tier::Avx2.supported()
                    && is_x86_feature_detected!("avx512f")
                    && is_x86_feature_detected!("avx512bw")
                    && is_x86_feature_detected!("avx512dq")
                    && is_x86_feature_detected!("avx512vl")
            }
            #[cfg(not(target_arch = "x86_64"))]
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
pub struct Isa(Tier);

impl Isa {
    /// Portable code: every CPU has it.
    pub const SCALAR: Isa = Isa(Tier::Scalar);

    /// `tier`, if this CPU has it.
    pub fn detect(tier: Tier) -> Option<Isa> {
        tier.supported().then_some(Isa(tier))
    }

    /// The tier.
    pub fn tier(self) -> Tier {
        self.0
    }

    /// Lowercase name, as `LCNET_ISA` spells it.
    pub fn name(self) -> &'static str {
        self.0.name()
    }

    /// Every tier this CPU supports, best last.
    pub fn all_supported() -> Vec<Isa> {
        [Tier::Scalar, Tier::Avx2, Tier::Avx512].into_iter().filter_map(Isa::detect).collect()
    }
}

/// The ISA every kernel uses: the best this CPU supports, lowered by
/// `LCNET_ISA` if set. Decided on first use.
pub fn isa() -> Isa {
    static CHOSEN: OnceLock<Isa> = OnceLock::new();
    *CHOSEN.get_or_init(|| {
        let best = Isa::all_supported().into_iter().max().unwrap_or(Isa::SCALAR);
        match std::env::var("LCNET_ISA").ok().as_deref() {
            Some("scalar") => Isa::SCALAR,
            Some("avx2") => best.min(Isa::detect(Tier::Avx2).unwrap_or(Isa::SCALAR)),
            Some("avx512") | None | Some("") => best,
            Some(other) => {
                eprintln!("lcnet: LCNET_ISA={other} is not one of scalar, avx2, avx512; using {}", best.name());
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
/// AVX-512 or AVX2+FMA `#[target_feature]` trampoline, or `body::<NoFma>`.
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
                    $crate::kernels::Tier::Avx512 => return unsafe { avx512($($arg),*) },
                    // SAFETY: as above.
                    $crate::kernels::Tier::Avx2 => return unsafe { avx2($($arg),*) },
                    $crate::kernels::Tier::Scalar => {}
                }
            }
            $body::<$crate::kernels::dispatch::NoFma>($($arg),*)
        }
    };
}
pub(crate) use multiversion;
