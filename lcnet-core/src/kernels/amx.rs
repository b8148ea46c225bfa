//! Intel AMX (Advanced Matrix Extensions): whether this process may use
//! the int8 tiles, and the tile configuration the kernels load.
//!
//! AMX holds eight tile registers of up to 16 rows x 64 bytes, 8 KB of
//! state that the operating system saves only for processes that asked
//! for it: on Linux (5.16 and later) `arch_prctl(ARCH_REQ_XCOMP_PERM,
//! XFEATURE_XTILEDATA)`, once per process. Without that permission the
//! first tile instruction faults, so [`granted`] asks before any kernel
//! may run one. The standard library's `is_x86_feature_detected!("amx-int8")`
//! is not stable yet; the CPUID and XCR0 bits are read here.

use std::arch::x86_64::{__cpuid, __cpuid_count, _xgetbv};
use std::sync::OnceLock;

/// Whether the CPU has AMX-TILE and AMX-INT8, the operating system
/// enables their state, and this process holds the permission to use it
/// (asked for on the first call).
pub fn granted() -> bool {
    static GRANTED: OnceLock<bool> = OnceLock::new();
    *GRANTED.get_or_init(|| cpu_has_int8_tiles() && os_enables_tiles() && request_permission())
}

/// CPUID leaf 7: EDX bit 24 AMX-TILE, bit 25 AMX-INT8.
fn cpu_has_int8_tiles() -> bool {
    if __cpuid(0).eax < 7 {
        return false;
    }
    let edx = __cpuid_count(7, 0).edx;
    edx & (1 << 24) != 0 && edx & (1 << 25) != 0
}

/// XCR0 bits 17 (TILECFG) and 18 (TILEDATA), readable once CPUID leaf 1
/// reports OSXSAVE (ECX bit 27).
fn os_enables_tiles() -> bool {
    if __cpuid(1).ecx & (1 << 27) == 0 {
        return false;
    }
    #[target_feature(enable = "xsave")]
    unsafe fn xcr0() -> u64 {
        // SAFETY: `xgetbv` exists where OSXSAVE is set (checked by the caller).
        unsafe { _xgetbv(0) }
    }
    // SAFETY: OSXSAVE is set, so XSAVE and `xgetbv` are available.
    let xcr0 = unsafe { xcr0() };
    xcr0 & (0b11 << 17) == 0b11 << 17
}

/// Linux: asks for the tile data state (`arch_prctl`, which fails on
/// kernels before 5.16 or where it is disabled).
#[cfg(target_os = "linux")]
fn request_permission() -> bool {
    const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
    const XFEATURE_XTILEDATA: libc::c_long = 18;
    // SAFETY: a system call with two integer arguments; it only changes
    // which state the kernel saves for this process.
    unsafe { libc::syscall(libc::SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0 }
}

/// Elsewhere lcnet does not ask, and runs without AMX.
#[cfg(not(target_os = "linux"))]
fn request_permission() -> bool {
    false
}

/// The 64-byte operand of `ldtilecfg`: palette 1, then per tile its bytes
/// per row and its rows (unused tiles 0, 0).
#[repr(C, align(64))]
#[derive(Debug, Clone, Copy)]
pub struct TileConfig {
    palette: u8,
    start_row: u8,
    reserved: [u8; 14],
    bytes_per_row: [u16; 16],
    rows: [u8; 16],
    reserved_end: [u8; 16],
}

impl TileConfig {
    /// Every tile unused.
    pub const fn new() -> Self {
        TileConfig {
            palette: 1,
            start_row: 0,
            reserved: [0; 14],
            bytes_per_row: [0; 16],
            rows: [0; 16],
            reserved_end: [0; 16],
        }
    }

    /// Tile `tile` as `rows` rows of `bytes` bytes (at most 16 and 64).
    pub const fn tile(mut self, tile: usize, rows: usize, bytes: usize) -> Self {
        assert!(tile < 8 && rows <= 16 && bytes <= 64, "AMX tiles hold 16 rows of 64 bytes");
        self.rows[tile] = rows as u8;
        self.bytes_per_row[tile] = bytes as u16;
        self
    }
}
