//! The one error type of lcnet-zoo.

use std::path::PathBuf;

/// Everything that can go wrong when finding a model, reading a checkpoint
/// in any of the formats the zoo reads, or classifying an image.
///
/// Every variant names the file, key, shape or value at fault, so the
/// message alone tells a user what to fix; callers who want to react match
/// on the variant.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Loading or running the network failed: a file, tensor, shape or value
    /// at fault (see [`lcnet_core::Error`]).
    #[error(transparent)]
    Core(#[from] lcnet_core::Error),
    /// A model or preset name that is not compiled into this build.
    #[error("unknown model `{name}`; this build has: {}", known.join(", "))]
    UnknownModel {
        /// The name asked for.
        name: String,
        /// The names this build knows.
        known: Vec<String>,
    },
    /// No compiled variant has the layer shapes a checkpoint holds.
    #[error("{path}: no compiled PP-LCNet variant matches this checkpoint ({detail})")]
    NoVariantMatches {
        /// The checkpoint file.
        path: PathBuf,
        /// What was compared.
        detail: String,
    },
    /// A file that is not a checkpoint the zoo can read: an unreadable
    /// `.pdparams`, a layout with unknown tensor names, a transformers folder
    /// without its weights, a bad `config.json`.
    #[error("{path}: {reason}")]
    BadCheckpoint {
        /// The file or folder.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// An ONNX file could not be imported.
    #[error("{path}: {reason}")]
    Import {
        /// The file being imported.
        path: PathBuf,
        /// Which node or tensor did not fit, and why.
        reason: String,
    },
    /// A preset whose weights are not embedded in this build (its cargo
    /// feature is off, or it never ships weights).
    #[error("{preset} has no embedded weights in this build; open a checkpoint instead (Classifier::from_weights, or --weights FILE on the command line)")]
    NoEmbeddedWeights {
        /// The preset.
        preset: String,
    },
    /// A metadata entry of a checkpoint (`labels`, `preprocess`) that cannot
    /// be used.
    #[error("{path}: metadata `{key}`: {reason}")]
    BadMetadata {
        /// The checkpoint file.
        path: PathBuf,
        /// The metadata key.
        key: String,
        /// What is wrong with its value.
        reason: String,
    },
    /// A checkpoint's labels do not match its number of classes.
    #[error("{path}: {labels} labels for {classes} classes")]
    LabelCount {
        /// The checkpoint file.
        path: PathBuf,
        /// Labels found.
        labels: usize,
        /// Classes of the network.
        classes: usize,
    },
    /// The network produced a NaN or infinity from a finite input: the
    /// weights overflow.
    #[error(
        "{model}: non-finite logits for image {image}: values first overflow in {stage}; the weights are not usable"
    )]
    NonFiniteLogits {
        /// The architecture.
        model: String,
        /// Index of the first such image in the batch.
        image: usize,
        /// The first stage whose output is not finite.
        stage: String,
    },
    /// [`Classifier::classify_tensors`](crate::Classifier::classify_tensors)
    /// got a slice whose length is not `images` input tensors.
    #[error("{len} floats for {images} input tensors of {per_image} each")]
    TensorLength {
        /// Floats given.
        len: usize,
        /// Images they should hold.
        images: usize,
        /// Floats per image (`3 x H x W`).
        per_image: usize,
    },
    /// An image that cannot be read, decoded or classified.
    #[error("{image}: {problem}")]
    Image {
        /// The file, or `<image>` for one given in memory.
        image: String,
        /// What is wrong with it.
        problem: ImageProblem,
    },
}

/// Why an image cannot be classified.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImageProblem {
    /// A FIFO, device or folder where an image file was expected.
    #[error("not a regular file ({0}); refused")]
    NotRegularFile(&'static str),
    /// The file cannot be read.
    #[error("cannot read: {0}")]
    Io(std::io::Error),
    /// Neither PNG nor JPEG.
    #[error("not a PNG or JPEG image")]
    UnknownFormat,
    /// The decoder refused the data.
    #[error("cannot decode: {0}")]
    Decode(image::ImageError),
    /// A side above [`ImageLimits::max_side`](crate::ImageLimits::max_side).
    #[error("image is {width}x{height}; the largest side allowed is {max_side} pixels")]
    SideTooLarge {
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
        /// The limit.
        max_side: u32,
    },
    /// More pixels than [`ImageLimits::max_pixels`](crate::ImageLimits::max_pixels).
    #[error(
        "image is {width}x{height} ({:.1} Mpixel); the limit is {:.1} Mpixel (--max-pixels)",
        *width as f64 * *height as f64 / 1e6,
        *max_pixels as f64 / 1e6
    )]
    TooManyPixels {
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
        /// The limit.
        max_pixels: u64,
    },
    /// A decoded size above what the pixel limit allows (deep colour).
    #[error("image is {width}x{height} at {} bytes per pixel ({} MB decoded); the limit is {} MB",
        bytes / (*width as u64 * *height as u64).max(1), bytes / 1_000_000, max_bytes / 1_000_000)]
    TooManyBytes {
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
        /// Bytes it would take decoded.
        bytes: u64,
        /// The limit.
        max_bytes: u64,
    },
    /// An aspect ratio so extreme that the preprocessing's resize would be
    /// larger than any classifier input.
    #[error(
        "image of {width}x{height} would be {}x{} after resizing its short side to {resize_short}: an aspect ratio \
         no classifier input has (PaddleX's cv2.resize would need {:.1} GB for it)",
        resized.0, resized.1, resized.0 as f64 * resized.1 as f64 * 3.0 / 1e9
    )]
    AspectRatio {
        /// Width in pixels.
        width: usize,
        /// Height in pixels.
        height: usize,
        /// The short side's target.
        resize_short: u32,
        /// (width, height) after that resize.
        resized: (usize, usize),
    },
    /// Smaller than the crop after resizing.
    #[error("image of {width}x{height} is {}x{} after resizing, smaller than the {crop} crop", resized.0, resized.1)]
    SmallerThanCrop {
        /// Width in pixels.
        width: usize,
        /// Height in pixels.
        height: usize,
        /// (width, height) after resizing.
        resized: (usize, usize),
        /// The crop side.
        crop: u32,
    },
    /// Raw RGB bytes whose length is not `3 * width * height`.
    #[error("{len} bytes for a {width}x{height} RGB image (expected {})", 3 * width * height)]
    RgbLength {
        /// Bytes given.
        len: usize,
        /// Width in pixels.
        width: usize,
        /// Height in pixels.
        height: usize,
    },
    /// A side of 0 pixels.
    #[error("image is {width}x{height}; both sides must be at least 1 pixel")]
    Empty {
        /// Width in pixels.
        width: usize,
        /// Height in pixels.
        height: usize,
    },
}

impl Error {
    /// An [`Error::Image`] for the image called `image`.
    pub(crate) fn image(image: impl std::fmt::Display, problem: ImageProblem) -> Self {
        Error::Image { image: image.to_string(), problem }
    }
}

/// `Result` with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
