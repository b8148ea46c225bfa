//! The one error type of lcnet-core. Errors of the zoo (model names,
//! checkpoint formats, images) are `lcnet_zoo::Error`, which wraps this one.

use std::path::PathBuf;

/// Everything that can go wrong when loading weights or running a network.
///
/// Every variant names the file, tensor or value at fault, so that the message
/// alone tells a user what to fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be opened, mapped or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// A path that cannot be read or written as asked: not a regular file
    /// (a FIFO, device, link or folder), or an output that exists.
    #[error("{path}: {reason}")]
    NotAllowed {
        /// The path.
        path: PathBuf,
        /// Why not.
        reason: String,
    },
    /// A file is not a valid safetensors file (truncated, bad header, ...).
    #[error("{path}: not a valid safetensors file: {reason}")]
    BadFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A tensor the network needs is not in the checkpoint.
    #[error("{path}: missing tensor `{name}` (expected shape {expected:?})")]
    MissingTensor {
        /// The checkpoint file.
        path: PathBuf,
        /// The tensor name.
        name: String,
        /// The shape the network expects.
        expected: Vec<usize>,
    },
    /// A tensor has another shape than the network expects.
    #[error("{path}: tensor `{name}` has shape {got:?}, expected {expected:?}")]
    ShapeMismatch {
        /// The checkpoint or tensor file.
        path: PathBuf,
        /// The tensor name.
        name: String,
        /// The shape the network expects.
        expected: Vec<usize>,
        /// The shape found.
        got: Vec<usize>,
    },
    /// A tensor is stored in a dtype that is not read as f32.
    #[error("{path}: tensor `{name}` has dtype {got}, expected F32, F16 or BF16")]
    WrongDtype {
        /// The file.
        path: PathBuf,
        /// The tensor name.
        name: String,
        /// The dtype found.
        got: String,
    },
    /// The checkpoint holds tensors this network does not use.
    #[error("{path}: {} unexpected tensor(s) for {model}: {}", names.len(), names.join(", "))]
    UnexpectedTensors {
        /// The checkpoint file.
        path: PathBuf,
        /// The network being loaded.
        model: String,
        /// The tensors nobody asked for.
        names: Vec<String>,
    },
    /// An input tensor does not fit the network.
    #[error("input has shape {got:?}, expected {expected}")]
    BadInput {
        /// What was expected, in words.
        expected: String,
        /// The shape found.
        got: Vec<usize>,
    },
    /// An input value is NaN or infinite (the network would spread it to
    /// every logit).
    #[error("input holds a non-finite value ({value}) at flat index {index}")]
    NonFiniteInput {
        /// Flat index into the NCHW input.
        index: usize,
        /// The value.
        value: f32,
    },
    /// A tensor in a checkpoint holds a NaN or infinity.
    #[error("{path}: tensor `{name}` holds a non-finite value ({value}) at flat index {index}")]
    NonFiniteTensor {
        /// The checkpoint file.
        path: PathBuf,
        /// The tensor name.
        name: String,
        /// Flat index of the first such value.
        index: usize,
        /// The value.
        value: f32,
    },
    /// Weights that load but cannot be used: a negative running variance, a
    /// BatchNorm whose folding overflows f32, an FC without classes.
    #[error("{path}: {reason}")]
    UnusableWeights {
        /// The checkpoint file.
        path: PathBuf,
        /// The tensor (or layer prefix) at fault.
        name: String,
        /// What is wrong with it, with the values.
        reason: String,
    },
    /// A metadata entry of a checkpoint cannot be used.
    #[error("{path}: metadata `{key}`: {reason}")]
    BadMetadata {
        /// The checkpoint file.
        path: PathBuf,
        /// The metadata key.
        key: String,
        /// What is wrong with its value.
        reason: String,
    },
}

/// `Result` with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
