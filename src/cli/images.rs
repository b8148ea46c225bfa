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
/// directly are kept whatever their ending. Paths that do not exist, and
/// symlinked folders that loop back, come back as failures (a loop once).
pub fn collect(inputs: &[PathBuf]) -> (Vec<ImageFile>, Vec<(PathBuf, String)>) {
    let mut files = Vec::new();
    let mut failed = Vec::new();
    for input in inputs {
        if input.is_dir() {
            let before = files.len();
            walk(input, &mut files, &mut failed);
            if files.len() == before {
                failed.push((input.clone(), format!("no images ({}) in this folder", EXTENSIONS.join(", "))));
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

/// The image files under `dir`, by name; symlinks are followed, but a link
/// to a folder being walked is reported as a loop and not entered (walkdir
/// tracks the device and inode of every open folder).
fn walk(dir: &Path, files: &mut Vec<ImageFile>, failed: &mut Vec<(PathBuf, String)>) {
    let is_image = |p: &Path| {
        p.extension().and_then(|e| e.to_str()).is_some_and(|e| EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
    };
    for entry in walkdir::WalkDir::new(dir).follow_links(true).sort_by_file_name() {
        match entry {
            Ok(e) if !e.file_type().is_dir() && is_image(e.path()) => {
                let name = e.path().strip_prefix(dir).unwrap_or(e.path()).to_path_buf();
                files.push(ImageFile { path: e.path().to_path_buf(), name });
            }
            Ok(_) => {}
            Err(e) => {
                let path = e.path().unwrap_or(dir).to_path_buf();
                let why = match e.loop_ancestor() {
                    Some(ancestor) => format!("a link back to {} (a loop); not followed", ancestor.display()),
                    None => format!("cannot read: {}", e.io_error().map_or(e.to_string(), |io| io.to_string())),
                };
                failed.push((path, why));
            }
        }
    }
}

/// How large an image may be, checked against its header before any pixel
/// buffer is allocated. The defaults pass any real page scan (an A4 page at
/// 1200 dpi is 140 Mpixel... at 600 dpi 35 Mpixel).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageLimits {
    /// Largest width x height.
    pub max_pixels: u64,
    /// Largest width or height.
    pub max_side: u32,
}

impl Default for ImageLimits {
    fn default() -> Self {
        ImageLimits { max_pixels: 100_000_000, max_side: 65_535 }
    }
}

impl ImageLimits {
    /// Bytes a decoded image may take (16-bit RGBA at the pixel limit would
    /// be 8 per pixel; 4 covers every 8-bit layout and 16-bit grey).
    fn max_bytes(&self) -> u64 {
        self.max_pixels.saturating_mul(4)
    }

    /// Refuses a `width` x `height` image taking `bytes` decoded.
    fn check(&self, width: u32, height: u32, bytes: u64) -> anyhow::Result<()> {
        let pixels = width as u64 * height as u64;
        if width > self.max_side || height > self.max_side {
            anyhow::bail!("image is {width}x{height}; the largest side allowed is {} pixels", self.max_side);
        }
        if pixels > self.max_pixels {
            anyhow::bail!(
                "image is {width}x{height} ({:.1} Mpixel); the limit is {:.1} Mpixel (--max-pixels)",
                pixels as f64 / 1e6,
                self.max_pixels as f64 / 1e6
            );
        }
        if bytes > self.max_bytes() {
            anyhow::bail!(
                "image is {width}x{height} at {} bytes per pixel ({} MB decoded); the limit is {} MB",
                bytes / pixels.max(1),
                bytes / 1_000_000,
                self.max_bytes() / 1_000_000
            );
        }
        Ok(())
    }
}

/// Decodes `path` to 8-bit RGB, turned upright by its EXIF orientation when
/// `apply_exif` (OpenCV's `imread` default). The header's size is checked
/// against `limits` before decoding; grey and RGBA images become RGB in
/// their own buffer, and the EXIF turn is done on the RGB image, so at most
/// two image-sized buffers are alive.
pub fn decode(path: &Path, apply_exif: bool, limits: &ImageLimits) -> anyhow::Result<Image8> {
    let (decoder, _) = open_decoder(path, limits)?;
    let mut decoder = decoder;
    let orientation = decoder.orientation().context("cannot read the EXIF orientation")?;
    let image = DynamicImage::from_decoder(decoder).context("cannot decode")?;
    let mut rgb = DynamicImage::ImageRgb8(into_rgb8(image));
    if apply_exif {
        rgb.apply_orientation(orientation);
    }
    let DynamicImage::ImageRgb8(rgb) = rgb else { unreachable!("orientation keeps the colour type") };
    let (width, height) = (rgb.width() as usize, rgb.height() as usize);
    Ok(Image8 { data: rgb.into_raw(), width, height })
}

/// Decodes `path` as it is stored (colour type kept), turned upright by its
/// EXIF orientation when `apply_exif`; also returns its format.
pub fn decode_image(
    path: &Path,
    apply_exif: bool,
    limits: &ImageLimits,
) -> anyhow::Result<(DynamicImage, ImageFormat)> {
    let (mut decoder, format) = open_decoder(path, limits)?;
    let orientation = decoder.orientation().context("cannot read the EXIF orientation")?;
    let mut image = DynamicImage::from_decoder(decoder).context("cannot decode")?;
    if apply_exif {
        image.apply_orientation(orientation);
    }
    Ok((image, format))
}

/// A decoder for `path` whose declared size is within `limits`, with the
/// decoder's own allocation limit set to what that size needs.
fn open_decoder(path: &Path, limits: &ImageLimits) -> anyhow::Result<(Box<dyn ImageDecoder>, ImageFormat)> {
    // A FIFO would block the open, a device never end: regular files only.
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        anyhow::bail!("not a regular file ({}); refused", lcnet_zoo::lcnet_core::files::kind(&meta));
    }
    let file = std::io::BufReader::new(std::fs::File::open(path)?);
    let reader = ImageReader::new(file).with_guessed_format().context("cannot read")?;
    let Some(format) = reader.format() else { anyhow::bail!("not a PNG or JPEG image") };
    let mut decoder: Box<dyn ImageDecoder> = Box::new(reader.into_decoder().context("cannot decode")?);
    let (width, height) = decoder.dimensions();
    limits.check(width, height, decoder.total_bytes())?;
    let mut decoder_limits = image::Limits::default();
    decoder_limits.max_image_width = Some(limits.max_side);
    decoder_limits.max_image_height = Some(limits.max_side);
    // The output plus the decoder's own working memory (a JPEG's
    // component planes and a PNG's rows stay below one more image).
    decoder_limits.max_alloc = Some(decoder.total_bytes().saturating_mul(2).max(1 << 20));
    decoder.set_limits(decoder_limits).context("cannot decode")?;
    Ok((decoder, format))
}

/// `image` as 8-bit RGB; grey and RGBA are converted inside their own
/// buffer, so the image is never held twice.
fn into_rgb8(image: DynamicImage) -> image::RgbImage {
    let (width, height) = (image.width(), image.height());
    let n = width as usize * height as usize;
    let data = match image {
        DynamicImage::ImageRgb8(rgb) => return rgb,
        DynamicImage::ImageLuma8(grey) => {
            let mut v = grey.into_raw();
            v.resize(3 * n, 0);
            // Back to front: pixel i's three bytes land at 3i >= i, past
            // every grey value still to be read.
            for i in (0..n).rev() {
                let g = v[i];
                v[3 * i..3 * i + 3].fill(g);
            }
            v
        }
        DynamicImage::ImageRgba8(rgba) => {
            let mut v = rgba.into_raw();
            // Front to back: pixel i's RGB lands at 3i <= 4i.
            for i in 0..n {
                v.copy_within(4 * i..4 * i + 3, 3 * i);
            }
            v.truncate(3 * n);
            v.shrink_to_fit();
            v
        }
        other => return other.into_rgb8(),
    };
    image::RgbImage::from_raw(width, height, data).expect("3 bytes per pixel")
}
