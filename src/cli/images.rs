//! Finding and decoding images: folders are walked, EXIF orientation is
//! applied as OpenCV's `imread` does (unless asked not to), and every failure
//! names its file.

use std::path::{Path, PathBuf};

use anyhow::Context;
use image::{DynamicImage, ImageDecoder, ImageReader};
use lcnet_zoo::lcnet_core::preprocess::Image8;

/// File endings picked up when walking a folder (decoders compiled in).
const EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

/// Expands folders (recursively, sorted) into image files; files named
/// directly are kept whatever their ending. Paths that do not exist come back
/// as failures.
pub fn collect(inputs: &[PathBuf]) -> (Vec<PathBuf>, Vec<(PathBuf, String)>) {
    let mut files = Vec::new();
    let mut failed = Vec::new();
    for input in inputs {
        if input.is_dir() {
            let before = files.len();
            if let Err(e) = walk(input, &mut files) {
                failed.push((input.clone(), format!("cannot read folder: {e}")));
            } else if files.len() == before {
                failed.push((input.clone(), format!("no images ({}) in this folder", EXTENSIONS.join(", "))));
            }
        } else if input.exists() {
            files.push(input.clone());
        } else {
            failed.push((input.clone(), "no such file or folder".to_string()));
        }
    }
    (files, failed)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            walk(&path, out)?;
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
        {
            out.push(path);
        }
    }
    Ok(())
}

/// Decodes `path` to 8-bit RGB, turned upright by its EXIF orientation when
/// `apply_exif` (OpenCV's `imread` default).
pub fn decode(path: &Path, apply_exif: bool) -> anyhow::Result<Image8> {
    let reader = ImageReader::open(path)?.with_guessed_format().context("cannot read")?;
    if reader.format().is_none() {
        anyhow::bail!("not a PNG or JPEG image");
    }
    let mut decoder = reader.into_decoder().context("cannot decode")?;
    let orientation = decoder.orientation().context("cannot read the EXIF orientation")?;
    let mut image = DynamicImage::from_decoder(decoder).context("cannot decode")?;
    if apply_exif {
        image.apply_orientation(orientation);
    }
    let rgb = image.to_rgb8();
    let (width, height) = (rgb.width() as usize, rgb.height() as usize);
    Ok(Image8 { data: rgb.into_raw(), width, height })
}
