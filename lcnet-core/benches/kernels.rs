#![allow(missing_docs)] // criterion_group!/criterion_main! generate undocumented items
//! Per-kernel benchmarks on the real PP-LCNet x1.0 layer shapes (224x224,
//! batch 1, one thread), `reference` against the kernel on every ISA tier
//! this CPU has, with
//! throughput in FLOPs (2 per multiply-accumulate) so criterion prints
//! GFLOP/s. Inputs and outputs are 64-byte aligned, as the workspace's
//! buffers are. The first group measures this core's FMA peak with independent
//! FMA chains, to read the others against.
//!
//! `cargo bench -p lcnet-core --bench kernels`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
#[cfg(target_arch = "x86_64")]
use lcnet_core::__private::kernels::Tier;
use lcnet_core::__private::kernels::{dwconv, pwconv, stem, Activation, Isa};
use lcnet_core::AlignedVec;

/// 10 independent chains of 8-lane FMAs: this core's AVX2 FMA peak.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn fma_chains(iters: u64) -> f32 {
    use std::arch::x86_64::*;
    let x = _mm256_set1_ps(black_box(1.000_001));
    let y = _mm256_set1_ps(black_box(0.999_999));
    let mut acc = [_mm256_setzero_ps(); 10];
    for _ in 0..iters {
        for a in acc.iter_mut() {
            *a = _mm256_fmadd_ps(*a, x, y);
        }
    }
    let mut out = [0.0f32; 8];
    let sum = acc.iter().fold(_mm256_setzero_ps(), |s, a| _mm256_add_ps(s, *a));
    // SAFETY: `out` holds 8 floats.
    unsafe { _mm256_storeu_ps(out.as_mut_ptr(), sum) };
    out.iter().sum()
}

/// 12 independent chains of 16-lane FMAs: this core's AVX-512 FMA peak.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn fma_chains_avx512(iters: u64) -> f32 {
    use std::arch::x86_64::*;
    let x = _mm512_set1_ps(black_box(1.000_001));
    let y = _mm512_set1_ps(black_box(0.999_999));
    let mut acc = [_mm512_setzero_ps(); 12];
    for _ in 0..iters {
        for a in acc.iter_mut() {
            *a = _mm512_fmadd_ps(*a, x, y);
        }
    }
    _mm512_reduce_add_ps(acc.iter().fold(_mm512_setzero_ps(), |s, a| _mm512_add_ps(s, *a)))
}

/// 12 independent chains of `vpdpbusd` (64 `u8 x i8` products each): this
/// core's VNNI peak, which the int8 pointwise kernel is read against.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vnni")]
unsafe fn dpbusd_chains(iters: u64) -> i32 {
    use std::arch::x86_64::*;
    let x = _mm512_set1_epi32(black_box(0x0102_0304));
    let w = _mm512_set1_epi32(black_box(0x0101_0101));
    let mut acc = [_mm512_setzero_si512(); 12];
    for _ in 0..iters {
        for a in acc.iter_mut() {
            *a = _mm512_dpbusd_epi32(*a, x, w);
        }
    }
    _mm512_reduce_add_epi32(acc.iter().fold(_mm512_setzero_si512(), |s, a| _mm512_add_epi32(s, *a)))
}

/// 16 independent chains of 4-lane FMAs: this core's NEON FMA peak (four
/// FMA pipes of 4-cycle latency need 16 in flight).
#[cfg(target_arch = "aarch64")]
fn fma_chains_neon(iters: u64) -> f32 {
    use std::arch::aarch64::*;
    // SAFETY: NEON is in every aarch64 CPU; `out` holds 4 floats.
    unsafe {
        let x = vdupq_n_f32(black_box(1.000_001));
        let y = vdupq_n_f32(black_box(0.999_999));
        let mut acc = [vdupq_n_f32(0.0); 16];
        for _ in 0..iters {
            for a in acc.iter_mut() {
                *a = vfmaq_f32(y, *a, x);
            }
        }
        vaddvq_f32(acc.iter().fold(vdupq_n_f32(0.0), |s, a| vaddq_f32(s, *a)))
    }
}

/// The peaks the kernels are read against (each skipped without its ISA).
fn peak(c: &mut Criterion) {
    const ITERS: u64 = 1 << 16;
    let mut g = c.benchmark_group("peak");
    #[cfg(target_arch = "aarch64")]
    {
        g.throughput(Throughput::Elements(ITERS * 16 * 4 * 2));
        g.bench_function("neon_fma", |b| b.iter(|| fma_chains_neon(black_box(ITERS))));
    }
    #[cfg(target_arch = "x86_64")]
    {
        if Isa::detect(Tier::Avx2).is_some() {
            g.throughput(Throughput::Elements(ITERS * 10 * 8 * 2));
            // SAFETY: AVX2 and FMA are supported (checked above).
            g.bench_function("avx2_fma", |b| b.iter(|| unsafe { fma_chains(black_box(ITERS)) }));
        }
        if Isa::detect(Tier::Avx512).is_some() {
            g.throughput(Throughput::Elements(ITERS * 12 * 16 * 2));
            // SAFETY: AVX-512F is supported (checked above).
            g.bench_function("avx512_fma", |b| b.iter(|| unsafe { fma_chains_avx512(black_box(ITERS)) }));
        }
        if Isa::detect(Tier::Avx512Vnni).is_some() {
            g.throughput(Throughput::Elements(ITERS * 12 * 64 * 2));
            // SAFETY: AVX-512F and VNNI are supported (checked above).
            g.bench_function("avx512vnni_dpbusd", |b| b.iter(|| unsafe { dpbusd_chains(black_box(ITERS)) }));
        }
    }
    g.finish();
}

/// One thread: the numbers compare with one core's peak.
fn pool() -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new().num_threads(1).build().expect("thread pool")
}

/// The 1x1 conv GEMM at four real shapes (and its reference on the small ones).
fn pointwise(c: &mut Criterion) {
    let pool = pool();
    let mut g = c.benchmark_group("pwconv");
    // (pixels, in, out): blocks2.0, blocks4.1, blocks5.x, blocks6.1 at x1.0.
    for (m, k, n) in [(112 * 112, 16, 32), (28 * 28, 128, 128), (14 * 14, 256, 256), (7 * 7, 512, 512)] {
        let p = pwconv::PwWeights::pack(&vec![0.01; k * n], vec![0.0; n], k, Activation::HardSwish);
        let x = AlignedVec::from(vec![0.5f32; m * k]);
        let mut out = AlignedVec::zeroed(m * n);
        g.throughput(Throughput::Elements(2 * (m * k * n) as u64));
        for isa in Isa::all_supported() {
            g.bench_function(format!("{}/{m}x{k}x{n}", isa.name()), |b| {
                pool.install(|| b.iter(|| pwconv::run_isa(isa, &p, black_box(&x), m, &mut out)))
            });
        }
        if m <= 28 * 28 {
            let oi = vec![0.01; k * n];
            let side = (m as f64).sqrt() as usize;
            g.bench_function(format!("reference/{m}x{k}x{n}"), |b| {
                b.iter(|| {
                    pwconv::reference(black_box(&x), [1, k, side, side], &oi, &vec![0.0; n], Activation::HardSwish)
                })
            });
        }
    }
    g.finish();
}

/// The int8 1x1 conv at the same shapes as [`pointwise`], every tier (the
/// fp32 group is the baseline it is read against: same FLOPs), with 7-bit
/// weights (`vpmaddubsw` is exact) and, on the tiers without VNNI, also
/// 8-bit ones (`w8`: the wide step, what quantised checkpoints hold).
fn pointwise_int8(c: &mut Criterion) {
    use lcnet_core::__private::kernels::int8::{pwconv::QPwWeights, Requant};
    let pool = pool();
    let mut g = c.benchmark_group("pwconv_int8");
    for (m, k, n) in [(112 * 112, 16, 32), (28 * 28, 128, 128), (14 * 14, 256, 256), (7 * 7, 512, 512)] {
        let rq = Requant {
            scale: vec![1e-4; n],
            bias: vec![0.0; n],
            act: Activation::HardSwish,
            out_scale: vec![0.02; n],
            out_zero: vec![20; n],
        };
        let narrow: Vec<i8> = (0..k * n).map(|i| (i % 127) as i8 - 63).collect();
        let full: Vec<i8> = (0..k * n).map(|i| (i % 255) as i8 - 127).collect();
        let x: Vec<u8> = (0..m * k).map(|i| (i * 7 % 251) as u8).collect();
        let mut out = vec![0u8; m * n];
        g.throughput(Throughput::Elements(2 * (m * k * n) as u64));
        for isa in Isa::all_supported() {
            let wide_step = matches!(isa.name(), "avx2" | "avx512");
            for (label, w) in [("", &narrow), ("w8/", &full)] {
                if !label.is_empty() && !wide_step {
                    continue;
                }
                let p = QPwWeights::pack(w, k, 7, &rq);
                g.bench_function(format!("{}/{label}{m}x{k}x{n}", isa.name()), |b| {
                    pool.install(|| {
                        b.iter(|| {
                            lcnet_core::__private::kernels::int8::pwconv::run_isa(isa, &p, black_box(&x), m, &mut out)
                        })
                    })
                });
            }
        }
    }
    g.finish();
}

/// Depthwise convs at four real shapes.
fn depthwise(c: &mut Criterion) {
    let pool = pool();
    let mut g = c.benchmark_group("dwconv");
    // (size, channels, kernel, stride): blocks2.0, blocks3.0, blocks5.1, blocks6.1.
    for (hw, ch, k, s) in [(112, 16, 3, 1), (112, 32, 3, 2), (14, 256, 5, 1), (7, 512, 5, 1)] {
        let p = dwconv::DwWeights::pack(&vec![0.01; ch * k * k], vec![0.0; ch], k, [s, s], Activation::HardSwish);
        let (oh, ow) = p.out_hw(hw, hw);
        let x = AlignedVec::from(vec![0.5f32; hw * hw * ch]);
        let mut out = AlignedVec::zeroed(oh * ow * ch);
        g.throughput(Throughput::Elements(2 * (oh * ow * ch * k * k) as u64));
        for isa in Isa::all_supported() {
            g.bench_function(format!("{}/{hw}x{hw}x{ch}k{k}s{s}", isa.name()), |b| {
                pool.install(|| b.iter(|| dwconv::run_isa(isa, &p, black_box(&x), 1, hw, hw, &mut out)))
            });
        }
    }
    g.finish();
}

/// The int8 depthwise convs at the same shapes as [`depthwise`].
fn depthwise_int8(c: &mut Criterion) {
    use lcnet_core::__private::kernels::int8::{dwconv::QDwWeights, Requant};
    let pool = pool();
    let mut g = c.benchmark_group("dwconv_int8");
    for (hw, ch, k, s) in [(112, 16, 3, 1), (112, 32, 3, 2), (14, 256, 5, 1), (7, 512, 5, 1)] {
        let w: Vec<i8> = (0..ch * k * k).map(|i| (i % 127) as i8 - 63).collect();
        let rq = Requant {
            scale: vec![1e-3; ch],
            bias: vec![0.0; ch],
            act: Activation::HardSwish,
            out_scale: vec![0.02; ch],
            out_zero: vec![20; ch],
        };
        let p = QDwWeights::pack(&w, k, [s, s], &vec![7; ch], &rq);
        let (oh, ow) = p.out_hw(hw, hw);
        let x: Vec<u8> = (0..hw * hw * ch).map(|i| (i * 7 % 251) as u8).collect();
        let mut out = vec![0u8; oh * ow * ch];
        let mut scratch = vec![0.0; pool.install(|| p.scratch_len(1, hw, hw))];
        g.throughput(Throughput::Elements(2 * (oh * ow * ch * k * k) as u64));
        for isa in Isa::all_supported() {
            g.bench_function(format!("{}/{hw}x{hw}x{ch}k{k}s{s}", isa.name()), |b| {
                pool.install(|| {
                    b.iter(|| {
                        let x = black_box(&x);
                        lcnet_core::__private::kernels::int8::dwconv::run_isa(
                            isa,
                            &p,
                            x,
                            1,
                            hw,
                            hw,
                            &mut out,
                            &mut scratch,
                        )
                    })
                })
            });
        }
    }
    g.finish();
}

/// The stem at 224x224.
fn stem_conv(c: &mut Criterion) {
    let pool = pool();
    let mut g = c.benchmark_group("stem");
    let p = stem::StemWeights::pack(&vec![0.01; 16 * 27], vec![0.0; 16], 3, 3, [2, 2], Activation::HardSwish);
    let x = vec![0.5f32; 3 * 224 * 224];
    let mut out = AlignedVec::zeroed(112 * 112 * 16);
    g.throughput(Throughput::Elements(2 * 112 * 112 * 16 * 27));
    for isa in Isa::all_supported() {
        g.bench_function(format!("{}/224x224->16", isa.name()), |b| {
            pool.install(|| b.iter(|| stem::run_isa(isa, &p, black_box(&x), 1, 224, 224, &mut out)))
        });
    }
    g.finish();
}

criterion_group!(benches, peak, pointwise, pointwise_int8, depthwise, depthwise_int8, stem_conv);
criterion_main!(benches);
