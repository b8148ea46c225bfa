//! Hostile and broken images against `lcnet run`: declared sizes, bombs,
//! thin strips, special files and folder loops give one error line each
//! (exit 3, the other images still run), within seconds and bounded memory.
//! Every file is made here; none is committed.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use common::{lcnet, stderr, temp_dir, ROOT};
const PAGE: &str = "examples/pages/page_90.png";

/// CRC-32 (IEEE) of `bytes`, for PNG chunks.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let start = out.len();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let crc = crc32(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

/// A PNG of `width` x `height` 8-bit grey whose IDAT holds `idat`.
fn png(width: u32, height: u32, idat: &[u8]) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]); // 8-bit grey, deflate, no filter method, no interlace
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"IDAT", idat);
    chunk(&mut out, b"IEND", &[]);
    out
}

/// A grey PNG of `side` x `side` zeros: a few hundred KB that decode to `side`^2 bytes.
fn bomb(side: u32) -> Vec<u8> {
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    let row = vec![0u8; side as usize + 1]; // filter byte + pixels
    for _ in 0..side {
        z.write_all(&row).unwrap();
    }
    png(side, side, &z.finish().unwrap())
}

/// Peak resident memory of every child waited for so far, in MB.
#[cfg(unix)]
fn children_peak_rss_mb() -> f64 {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes one rusage into the pointer it is given.
    assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) }, 0);
    usage.ru_maxrss as f64 / 1024.0
}

/// Asserts exit 3, one error line naming `file` with `needle`, and the good page classified.
fn assert_refused_beside_a_good_page(out: &Output, file: &Path, needle: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(!err.contains("panicked") && !err.contains("memory allocation"), "{err}");
    let line = err
        .lines()
        .find(|l| l.contains(&*file.to_string_lossy()))
        .unwrap_or_else(|| panic!("no line for {file:?}: {err}"));
    assert!(line.starts_with("lcnet: error: ") && line.contains(needle), "{line}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("page_90.png: 90"), "the good page still runs");
}

#[test]
fn declared_sizes_bombs_and_thin_strips_are_bounded() {
    let dir = temp_dir("sizes");
    // A 68-byte PNG header claiming 65535 x 65535.
    let huge = dir.join("huge.png");
    std::fs::write(&huge, png(65535, 65535, &[])).unwrap();
    assert!(std::fs::metadata(&huge).unwrap().len() < 100);
    let out = lcnet(&["run", huge.to_str().unwrap(), PAGE]);
    assert_refused_beside_a_good_page(&out, &huge, "65535x65535");

    // A JPEG whose SOF0 says 65535 x 65535.
    let mut jpeg = std::fs::read(Path::new(ROOT).join("tests/data/page_exif6.jpg")).unwrap();
    let sof = jpeg.windows(2).position(|w| w == [0xff, 0xc0]).expect("baseline JPEG");
    jpeg[sof + 5..sof + 9].copy_from_slice(&[0xff, 0xff, 0xff, 0xff]);
    let big_jpeg = dir.join("big.jpg");
    std::fs::write(&big_jpeg, jpeg).unwrap();
    let out = lcnet(&["run", big_jpeg.to_str().unwrap(), PAGE]);
    assert_refused_beside_a_good_page(&out, &big_jpeg, "65535x65535");

    // A 20000 x 20000 grey decompression bomb (400 MB decoded, 1.2 GB as RGB).
    let bomb_file = dir.join("bomb.png");
    std::fs::write(&bomb_file, bomb(20_000)).unwrap();
    assert!(std::fs::metadata(&bomb_file).unwrap().len() < 2_000_000);
    let out = lcnet(&["run", bomb_file.to_str().unwrap(), PAGE]);
    assert_refused_beside_a_good_page(&out, &bomb_file, "400.0 Mpixel");
    // --max-pixels lowers the limit.
    let out = lcnet(&["run", "--max-pixels", "1000", PAGE]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("--max-pixels"), "{}", stderr(&out));

    // Thin strips: only the 224 x 224 window the crop keeps is resized.
    for (w, h) in [(1, 5000), (3, 65535), (5000, 1)] {
        let strip = dir.join(format!("strip_{w}x{h}.png"));
        image::GrayImage::from_pixel(w, h, image::Luma([200])).save(&strip).unwrap();
        let start = Instant::now();
        let out = lcnet(&["run", "--json", strip.to_str().unwrap()]);
        assert!(out.status.success(), "{w}x{h}: {}", stderr(&out));
        assert!(start.elapsed() < Duration::from_secs(20), "{w}x{h} took {:?}", start.elapsed());
    }
    // Past what any pipeline resizes (256 x 16776960): a clear error.
    let absurd = dir.join("strip_65535x1.png");
    image::GrayImage::from_pixel(65535, 1, image::Luma([200])).save(&absurd).unwrap();
    let out = lcnet(&["run", absurd.to_str().unwrap(), PAGE]);
    assert_refused_beside_a_good_page(&out, &absurd, "would be 16776960x256 after resizing");
    #[cfg(unix)]
    {
        let peak = children_peak_rss_mb();
        assert!(peak < 1024.0, "a child peaked at {peak:.0} MB");
    }
}

#[cfg(unix)]
#[test]
fn special_files_and_folder_loops_never_hang() {
    use std::os::unix::fs::symlink;
    let dir = temp_dir("special");
    let pages = dir.join("pages");
    std::fs::create_dir_all(pages.join("sub")).unwrap();
    std::fs::copy(Path::new(ROOT).join(PAGE), pages.join("page_90.png")).unwrap();
    symlink(".", pages.join("loop")).unwrap();
    symlink("..", pages.join("sub/up")).unwrap();
    let fifo = pages.join("fifo.png");
    let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a NUL-terminated path and a mode.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o644) }, 0);

    let out = lcnet(&["run", pages.to_str().unwrap()]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.lines().count(), 1, "the page is listed once, not once per loop: {stdout}");
    assert!(err.contains("fifo.png: not a regular file (a FIFO)"), "{err}");
    assert_eq!(err.matches("(a loop); not followed").count(), 2, "each loop reported once: {err}");

    // Named directly, and as weights.
    let out = lcnet(&["run", fifo.to_str().unwrap()]);
    assert!(stderr(&out).contains("not a regular file (a FIFO)"), "{}", stderr(&out));
    let out = lcnet(&["run", "--weights", fifo.to_str().unwrap(), PAGE]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("fifo.png") && stderr(&out).contains("not a regular file"), "{}", stderr(&out));

    // As a tensor and as an ONNX export; a link to /dev/zero named .onnx.
    let out =
        lcnet(&["infer", "-w", "lcnet-zoo/models/doc_ori.safetensors", "-t", fifo.to_str().unwrap(), "-o", "/tmp/x"]);
    assert!(stderr(&out).contains("not a regular file (a FIFO)"), "{}", stderr(&out));
    let zero = dir.join("zero.onnx");
    symlink("/dev/zero", &zero).unwrap();
    let out_file = dir.join("out.safetensors");
    for input in [&zero, &fifo] {
        let out = lcnet(&["import", input.to_str().unwrap(), "-o", out_file.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert!(stderr(&out).contains("not a regular file"), "{}", stderr(&out));
    }
}

#[test]
fn absurd_arguments_are_usage_errors_or_named() {
    let usage = |args: &[&str], needle: &str| {
        let out = lcnet(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(needle), "{args:?}: {}", stderr(&out));
    };
    usage(&["run", "--threads", "100000", PAGE], "4 per core");
    usage(&["bench", "--size", "4294967296x4294967296"], "1 to 4096");
    let out = lcnet(&["verify", "-w", "lcnet-zoo/models/doc_ori.safetensors", "-t", ":input", "-e", ":logits"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("`:input` names no file"), "{}", stderr(&out));

    // A tensor holding no image.
    let dir = temp_dir("args");
    let empty = dir.join("empty.safetensors");
    lcnet_core::weights::save_f32(&empty, &[("input", vec![0, 3, 8, 8], &[])], &Default::default()).unwrap();
    let out = lcnet(&[
        "infer",
        "-w",
        "lcnet-zoo/models/doc_ori.safetensors",
        "-t",
        empty.to_str().unwrap(),
        "-o",
        dir.join("o").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("empty.safetensors: tensor `input` has shape [0, 3, 8, 8]"), "{}", stderr(&out));
}
