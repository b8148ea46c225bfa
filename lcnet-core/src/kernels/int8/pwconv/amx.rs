//! The int8 pointwise convolution on AMX tiles: `tdpbusd` multiplies a
//! tile of 16 pixels x 64 input bytes by one of 64 inputs x 16 outputs
//! (as 16 rows of four inputs per output: the packed panels' layout, one
//! 64-byte group per tile row) into 16 x 16 `i32` sums, 16384 products per
//! instruction where `vpdpbusd` makes 64.
//!
//! The tiles of a block of 32 pixels read the input in place, or, where
//! the inputs are not a whole number of chunks or the block is the last
//! and partial, a copy laid out by tile (`[chunk][pixel][64]`, the inputs
//! past `in_channels` zero). For every 32 outputs (two panels) four sum
//! tiles (2 x 16 pixels x 2 x 16 outputs) run over the chunks, are stored
//! to a 4 KB buffer and requantised from there like every other tier's
//! sums, so the bytes are the same. Layers with at most 64 inputs take one
//! chunk of their own width (rounded up to four), wider ones chunks of 64.
//!
//! The tile configuration is loaded once per call and released at its end;
//! between those, the `asm!` blocks of [`tile_sums`] run under it (each
//! declares the tile registers it changes). Nothing else in the process
//! touches AMX state: no code here is compiled with AMX enabled, so the
//! compiler never emits a tile instruction of its own.

use std::arch::asm;
use std::arch::x86_64::*;
use std::cell::RefCell;

use super::{QPwWeights, NR};
use crate::kernels::amx::TileConfig;
use crate::kernels::int8::dot::{with_act, Output};
use crate::kernels::simd::avx512::Zmm;

/// Pixels per block: two tiles of 16 rows.
const MB: usize = 32;
/// Bytes of one tile row.
const ROW: usize = 64;

/// Inputs per tile step for `k` inputs: `k` rounded up to four bytes when
/// it fits one tile row, else a whole row.
pub(super) fn chunk(k: usize) -> usize {
    if k <= ROW {
        k.div_ceil(4) * 4
    } else {
        ROW
    }
}

/// Groups of four inputs per panel, the inputs padded to whole chunks.
pub(super) fn padded_groups(k: usize) -> usize {
    k.div_ceil(chunk(k)) * chunk(k) / 4
}

/// One 64-byte tile row, so that the input buffer's rows are aligned.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([u8; ROW]);

thread_local! {
    /// Each thread's input buffer (`[chunk][pixel][64]`), grown to the
    /// widest layer it has run: made once, not per pass.
    static BLOCK: RefCell<Vec<Line>> = const { RefCell::new(Vec::new()) };
}

/// Four sum tiles as stored: tile `2 * (pixel / 16) + panel`, 16 rows of
/// 16 `i32`.
#[repr(C, align(64))]
struct Sums([i32; 4 * 256]);

/// Every row of `input` (`in_channels` bytes each) times every panel, into
/// `out` (`out_channels` bytes per row).
///
/// # Safety
/// The CPU must have AVX-512F/BW/DQ/VL and VNNI, and AMX-TILE and
/// AMX-INT8 with this process's permission ([`crate::kernels::amx::granted`]).
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma")]
pub unsafe fn rows(p: &QPwWeights, input: &[u8], out: &mut [u8]) {
    let (k, n) = (p.in_channels, p.out_channels);
    debug_assert!(k > 0 && n > 0 && input.len() / k == out.len() / n);
    let m = input.len() / k;
    let (chunk, chunks) = (chunk(k), k.div_ceil(chunk(k)));
    // Whole blocks of pixels are read in place when the chunks end with
    // the row; others are copied.
    let in_place = chunks * chunk == k;
    let panels = p.amx_panels();
    let panel_bytes = padded_groups(k) * NR * 4;
    debug_assert_eq!(panels.len(), n.div_ceil(NR) * panel_bytes);
    let config = TileConfig::new()
        .tile(0, 16, ROW)
        .tile(1, 16, ROW)
        .tile(2, 16, ROW)
        .tile(3, 16, ROW)
        .tile(4, 16, chunk)
        .tile(5, 16, chunk)
        .tile(6, chunk / 4, ROW)
        .tile(7, chunk / 4, ROW);
    let mut sums = Sums([0; 4 * 256]);
    // SAFETY: the configuration is a valid palette 1 layout; it stays
    // loaded for this call's tile instructions and is released below.
    unsafe { asm!("ldtilecfg [{0}]", in(reg) &config as *const TileConfig, options(nostack, readonly)) };
    BLOCK.with_borrow_mut(|block| {
        for (m0, a) in (0..m).step_by(MB).zip(input.chunks(MB * k)) {
            let rows = a.len() / k;
            let pixels = if in_place && rows == MB {
                Pixels { first: a.as_ptr(), second: a[16 * k..].as_ptr(), stride: k, step: chunk }
            } else {
                copy_block(a, k, chunk, chunks, block)
            };
            for col0 in (0..n).step_by(2 * NR) {
                let first = &panels[col0 / NR * panel_bytes..][..panel_bytes];
                // A last lone panel is run twice; the second's sums are not stored.
                let second =
                    if col0 + NR < n { &panels[(col0 / NR + 1) * panel_bytes..][..panel_bytes] } else { first };
                // SAFETY: the tiles read `chunks` chunks of 32 pixels
                // (`pixels`) and of each panel (`chunk / 4` rows of 64
                // bytes each, `panel_bytes` in all) and write the 4 KB of
                // `sums`, under the configuration loaded above.
                unsafe { tile_sums(&pixels, first.as_ptr(), second.as_ptr(), chunks, &mut sums) };
                // SAFETY: the CPU has AVX-512; `out` holds `rows` rows of `n`
                // bytes from `m0`.
                unsafe { store(p, &sums, rows, col0, &mut out[m0 * n..]) };
            }
        }
    });
    // SAFETY: AMX is available; this ends the tile use begun above.
    unsafe { asm!("tilerelease", options(nostack, nomem)) };
}

/// Where the tiles of a block of 32 pixels read: pixels 0-15 of chunk
/// `c` from `first + c * step`, `stride` bytes apart, pixels 16-31 from
/// `second + c * step`.
struct Pixels {
    first: *const u8,
    second: *const u8,
    stride: usize,
    step: usize,
}

/// Copies the rows of `a` (`k` bytes each, at most 32) into `block` as
/// `[chunk][pixel][64]`, zero past `k`. Pixels past the rows keep an
/// earlier block's bytes (or zeros): their sums are never stored.
fn copy_block(a: &[u8], k: usize, chunk: usize, chunks: usize, block: &mut Vec<Line>) -> Pixels {
    if block.len() < chunks * MB {
        block.resize(chunks * MB, Line([0; ROW]));
    }
    for (r, pixel) in a.chunks_exact(k).enumerate() {
        for (c, part) in pixel.chunks(chunk).enumerate() {
            let line = &mut block[c * MB + r].0[..chunk];
            line[..part.len()].copy_from_slice(part);
            line[part.len()..].fill(0);
        }
    }
    let first: *const u8 = block.as_ptr().cast();
    Pixels { first, second: first.wrapping_add(16 * ROW), stride: ROW, step: MB * ROW }
}

/// The four sum tiles of a block of 32 pixels and two panels.
///
/// # Safety
/// AMX with permission and [`rows`]' configuration loaded; `pixels` reach
/// `chunks` chunks, `b0` and `b1` `chunks` chunks of the configuration's B
/// rows each.
unsafe fn tile_sums(pixels: &Pixels, b0: *const i8, b1: *const i8, chunks: usize, sums: &mut Sums) {
    // SAFETY: forwarded from the caller. A panel's chunk is 1 KB (only one
    // chunk when it is narrower); `sums` holds the four stored tiles at
    // 1 KB steps.
    unsafe {
        asm!(
            "tilezero tmm0",
            "tilezero tmm1",
            "tilezero tmm2",
            "tilezero tmm3",
            "2:",
            "tileloadd tmm4, [{a0} + {stride}*1]",
            "tileloadd tmm6, [{b0} + {row}*1]",
            "tileloadd tmm7, [{b1} + {row}*1]",
            "tdpbusd tmm0, tmm4, tmm6",
            "tdpbusd tmm1, tmm4, tmm7",
            "tileloadd tmm5, [{a1} + {stride}*1]",
            "tdpbusd tmm2, tmm5, tmm6",
            "tdpbusd tmm3, tmm5, tmm7",
            "add {a0}, {step}",
            "add {a1}, {step}",
            "add {b0}, 1024",
            "add {b1}, 1024",
            "dec {chunks}",
            "jnz 2b",
            "tilestored [{sums} + {row}*1], tmm0",
            "tilestored [{sums} + {row}*1 + 1024], tmm1",
            "tilestored [{sums} + {row}*1 + 2048], tmm2",
            "tilestored [{sums} + {row}*1 + 3072], tmm3",
            a0 = inout(reg) pixels.first => _,
            a1 = inout(reg) pixels.second => _,
            stride = in(reg) pixels.stride,
            step = in(reg) pixels.step,
            b0 = inout(reg) b0 => _,
            b1 = inout(reg) b1 => _,
            chunks = inout(reg) chunks => _,
            sums = in(reg) sums.0.as_mut_ptr(),
            row = in(reg) ROW,
            out("tmm0") _, out("tmm1") _, out("tmm2") _, out("tmm3") _,
            out("tmm4") _, out("tmm5") _, out("tmm6") _, out("tmm7") _,
            options(nostack),
        );
    }
}

/// Requantises the sums of `rows` pixels and the outputs `col0 ..` (up to
/// two panels) into `out`'s rows.
///
/// # Safety
/// AVX-512F/BW/VL; `out` holds `rows` rows of `out_channels` bytes.
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma")]
unsafe fn store(p: &QPwWeights, sums: &Sums, rows: usize, col0: usize, out: &mut [u8]) {
    let n = p.out_channels;
    debug_assert!(rows <= MB && out.len() >= rows * n);
    // SAFETY: the starts and requantisation are padded to whole panels;
    // each store writes the panel's `cols` bytes of row `r`.
    unsafe {
        with_act!(&p.requant, A => {
            let output = Output::<Zmm, A>::new(&p.requant);
            for j in 0..2 {
                let o = col0 + j * NR;
                if o >= n {
                    break;
                }
                let lanes = output.lanes(o);
                let start = _mm512_loadu_si512(p.start.as_ptr().add(o).cast());
                let mask: __mmask16 = if n - o >= NR { !0 } else { (1 << (n - o)) - 1 };
                for r in 0..rows {
                    let tile = sums.0.as_ptr().add(((r / 16) * 2 + j) * 256 + (r % 16) * 16);
                    let sum = _mm512_add_epi32(_mm512_loadu_si512(tile.cast()), start);
                    let real = lanes.requantised(Zmm(_mm512_cvtepi32_ps(sum)));
                    _mm512_mask_cvtusepi32_storeu_epi8(
                        out.as_mut_ptr().add(r * n + o).cast(),
                        mask,
                        _mm512_cvtps_epi32(real.0),
                    );
                }
            }
        });
    }
}
