//! Finding and decoding images: folders are walked, EXIF orientation is
//! applied as OpenCV's `imread` does (unless asked not to), and every failure
//! names its file.

use std::path::{Path, PathBuf};

use anyhow::Context;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader};
use lcnet_zoo::lcnet_core::preprocess::Image8;

/// File endings picked up when walking a folder (decoders compiled in).
const EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

/// An image file to classify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageFile {
    /// Where it is.
    pub path: PathBuf,
    /// Its name relative to the folder given on the command line (the file
    /// name for a file given directly): where `--upright` writes it.
    pub name: PathBuf,
}

/// Expands folders (recursively, sorted) into image files; files named
/// directly are kept whatever their ending. Paths that do not exist come back
/// as failures.
pub fn collect(inputs: &[PathBuf]) -> (Vec<ImageFile>, Vec<(PathBuf, String)>) {
    let mut files = Vec::new();
    let mut failed = Vec::new();
    for input in inputs {
        if input.is_dir() {
            let mut found = Vec::new();
            if let Err(e) = walk(input, &mut found) {
                failed.push((input.clone(), format!("cannot read folder: {e}")));
            } else if found.is_empty() {
                failed.push((input.clone(), format!("no images ({}) in this folder", EXTENSIONS.join(", "))));
            }
            for path in found {
                let name = path.strip_prefix(input).unwrap_or(&path).to_path_buf();
                files.push(ImageFile { path, name });
            }
        } else if input.exists() {
            let name = input.file_name().map(PathBuf::from).unwrap_or_else(|| input.clone());
            files.push(ImageFile { path: input.clone(), name });
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
    let rgb = decode_image(path, apply_exif)?.0.to_rgb8();
    let (width, height) = (rgb.width() as usize, rgb.height() as usize);
    Ok(Image8 { data: rgb.into_raw(), width, height })
}

/// Decodes `path` as it is stored (colour type kept), turned upright by its
/// EXIF orientation when `apply_exif`; also returns its format.
pub fn decode_image(path: &Path, apply_exif: bool) -> anyhow::Result<(DynamicImage, ImageFormat)> {
    let reader = ImageReader::open(path)?.with_guessed_format().context("cannot read")?;
    let Some(format) = reader.format() else { anyhow::bail!("not a PNG or JPEG image") };
    let mut decoder = reader.into_decoder().context("cannot decode")?;
    let orientation = decoder.orientation().context("cannot read the EXIF orientation")?;
    let mut image = DynamicImage::from_decoder(decoder).context("cannot decode")?;
    if apply_exif {
        image.apply_orientation(orientation);
    }
    Ok((image, format))
}
