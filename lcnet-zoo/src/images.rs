//! Decoding images for classification, bounded: the header's size is
//! checked against [`ImageLimits`] before any pixel buffer is allocated,
//! EXIF orientation is applied as OpenCV's `imread` does (unless turned
//! off), and every failure is an [`Error::Image`] naming the file.

use std::path::Path;

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader};
use lcnet_core::preprocess::Image8;

use crate::error::{Error, ImageProblem, Result};

/// How large an image may be, checked against its header before decoding.
/// The defaults pass any real page scan (an A4 page at 600 dpi is
/// 35 Mpixel).
///
/// ```
/// let strict = lcnet_zoo::ImageLimits { max_pixels: 4_000_000, ..Default::default() };
/// assert_eq!(strict.max_side, 65_535);
/// ```
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
    pub fn check(&self, width: u32, height: u32, bytes: u64) -> std::result::Result<(), ImageProblem> {
        if width > self.max_side || height > self.max_side {
            return Err(ImageProblem::SideTooLarge { width, height, max_side: self.max_side });
        }
        if width as u64 * height as u64 > self.max_pixels {
            return Err(ImageProblem::TooManyPixels { width, height, max_pixels: self.max_pixels });
        }
        if bytes > self.max_bytes() {
            return Err(ImageProblem::TooManyBytes { width, height, bytes, max_bytes: self.max_bytes() });
        }
        Ok(())
    }
}

/// How files become pixels: the size limits, and whether to turn images
/// upright by their EXIF orientation tag (OpenCV's `imread` and PaddleX do).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoding {
    /// Refuse images larger than this.
    pub limits: ImageLimits,
    /// Apply the EXIF orientation.
    pub apply_exif: bool,
}

impl Default for Decoding {
    fn default() -> Self {
        Decoding { limits: ImageLimits::default(), apply_exif: true }
    }
}

/// Decodes `path` to 8-bit RGB, turned upright by its EXIF orientation when
/// asked. Grey and RGBA images become RGB in their own buffer, and the EXIF
/// turn is done on the RGB image, so at most two image-sized buffers are
/// alive.
pub fn decode_rgb(path: &Path, decoding: &Decoding) -> Result<Image8> {
    let fail = |problem| Error::image(path.display(), problem);
    let (mut decoder, _) = open_decoder(path, &decoding.limits)?;
    let orientation = decoder.orientation().map_err(|e| fail(ImageProblem::Decode(e)))?;
    let image = DynamicImage::from_decoder(decoder).map_err(|e| fail(ImageProblem::Decode(e)))?;
    let mut rgb = DynamicImage::ImageRgb8(into_rgb8(image));
    if decoding.apply_exif {
        rgb.apply_orientation(orientation);
    }
    let DynamicImage::ImageRgb8(rgb) = rgb else { unreachable!("orientation keeps the colour type") };
    let (width, height) = (rgb.width() as usize, rgb.height() as usize);
    Ok(Image8 { data: rgb.into_raw(), width, height })
}

/// Decodes `path` as it is stored (colour type kept), turned upright by its
/// EXIF orientation when asked; also returns its format.
pub fn decode(path: &Path, decoding: &Decoding) -> Result<(DynamicImage, ImageFormat)> {
    let fail = |problem| Error::image(path.display(), problem);
    let (decoder, format) = open_decoder(path, &decoding.limits)?;
    Ok((decode_upright(decoder, decoding).map_err(fail)?, format))
}

/// Decodes an image held in memory (an upload, a network message), as
/// [`decode`] does a file: the header's size is checked against the limits
/// before the pixels are allocated, the EXIF turn applied when asked. `name`
/// is how errors call it.
///
/// ```
/// let png = std::fs::read("../examples/pages/page_90.png").unwrap();
/// let (page, format) = lcnet_zoo::decode_bytes(&png, "upload", &Default::default()).unwrap();
/// assert_eq!((format, page.width() > 0), (image::ImageFormat::Png, true));
/// assert!(lcnet_zoo::decode_bytes(b"not an image", "upload", &Default::default()).is_err());
/// ```
pub fn decode_bytes(bytes: &[u8], name: &str, decoding: &Decoding) -> Result<(DynamicImage, ImageFormat)> {
    let fail = |problem| Error::image(name, problem);
    let reader =
        ImageReader::new(std::io::Cursor::new(bytes)).with_guessed_format().map_err(|e| fail(ImageProblem::Io(e)))?;
    let (decoder, format) = bounded_decoder(reader, &decoding.limits).map_err(fail)?;
    Ok((decode_upright(decoder, decoding).map_err(fail)?, format))
}

/// The decoder's image, turned by its EXIF orientation when `decoding` asks.
fn decode_upright(
    mut decoder: Box<dyn ImageDecoder + '_>,
    decoding: &Decoding,
) -> std::result::Result<DynamicImage, ImageProblem> {
    let orientation = decoder.orientation().map_err(ImageProblem::Decode)?;
    let mut image = DynamicImage::from_decoder(decoder).map_err(ImageProblem::Decode)?;
    if decoding.apply_exif {
        image.apply_orientation(orientation);
    }
    Ok(image)
}

/// A decoder for `path` whose declared size is within `limits`, with the
/// decoder's own allocation limit set to what that size needs.
fn open_decoder(path: &Path, limits: &ImageLimits) -> Result<(Box<dyn ImageDecoder>, ImageFormat)> {
    let fail = |problem| Error::image(path.display(), problem);
    // A FIFO would block the open, a device never end: regular files only.
    let meta = std::fs::metadata(path).map_err(|e| fail(ImageProblem::Io(e)))?;
    if !meta.is_file() {
        return Err(fail(ImageProblem::NotRegularFile(lcnet_core::files::kind(&meta))));
    }
    let file = std::fs::File::open(path).map_err(|e| fail(ImageProblem::Io(e)))?;
    let reader =
        ImageReader::new(std::io::BufReader::new(file)).with_guessed_format().map_err(|e| fail(ImageProblem::Io(e)))?;
    bounded_decoder(reader, limits).map_err(fail)
}

/// The decoder of `reader` once its declared size passed `limits`, with its
/// own allocation limit set to what that size needs.
fn bounded_decoder<'a, R: std::io::BufRead + std::io::Seek + 'a>(
    reader: ImageReader<R>,
    limits: &ImageLimits,
) -> std::result::Result<(Box<dyn ImageDecoder + 'a>, ImageFormat), ImageProblem> {
    let Some(format) = reader.format() else { return Err(ImageProblem::UnknownFormat) };
    let mut decoder: Box<dyn ImageDecoder + 'a> = Box::new(reader.into_decoder().map_err(ImageProblem::Decode)?);
    let (width, height) = decoder.dimensions();
    limits.check(width, height, decoder.total_bytes())?;
    let mut decoder_limits = image::Limits::default();
    decoder_limits.max_image_width = Some(limits.max_side);
    decoder_limits.max_image_height = Some(limits.max_side);
    // The output plus the decoder's own working memory (a JPEG's
    // component planes and a PNG's rows stay below one more image).
    decoder_limits.max_alloc = Some(decoder.total_bytes().saturating_mul(2).max(1 << 20));
    decoder.set_limits(decoder_limits).map_err(ImageProblem::Decode)?;
    Ok((decoder, format))
}

/// `image` as 8-bit RGB; grey and RGBA are converted inside their own
/// buffer, so the image is never held twice.
pub(crate) fn into_rgb8(image: DynamicImage) -> image::RgbImage {
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
