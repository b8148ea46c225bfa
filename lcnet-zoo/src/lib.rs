//! # lcnet-zoo
//!
//! PP-LCNet (Cui et al., "PP-LCNet: A Lightweight CPU Convolutional Neural
//! Network", 2021), the fast CPU classifier of PaddleClas, PaddleOCR and
//! PaddleX, in Rust: every width generated at compile time from the paper's
//! layer table, the PaddleX document and text-line orientation models
//! embedded, and checkpoints read as PaddleClas, paddle2onnx, timm and
//! Hugging Face publish them.
//!
//! ## Quick start
//!
//! ```
//! # #[cfg(feature = "doc-ori")] {
//! use lcnet_zoo::Classifier;
//!
//! let classifier = Classifier::preset("doc_ori")?; // the embedded PP-LCNet_x1_0_doc_ori
//! let page = classifier.classify_path("examples/pages/page_90.png")?;
//! println!("turned {} degrees ({:.3})", page.label, page.prob);
//! # assert_eq!(page.label, "90");
//! # }
//! # Ok::<(), lcnet_zoo::Error>(())
//! ```
//!
//! - [`Classifier`]: open a [preset](presets) with its embedded weights
//!   ([`Classifier::preset`]) or any checkpoint
//!   ([`Classifier::from_weights`]); classify files, decoded images, raw RGB
//!   or whole batches ([`Classifier::classify_batch`]: decoded in parallel,
//!   run in batches). Image files are decoded within [`ImageLimits`].
//! - [`formats::open`] reads `.safetensors` in PaddleClas, timm and
//!   transformers naming, `.pdparams` and `save_pretrained` folders;
//!   [`onnx::import`] reads paddle2onnx exports.
//! - [`load`], [`find`], [`variants`]: the compiled architectures, for
//!   tensor-level use through [`lcnet_core::Network`].
//! - [`network!`]: generate a network from your own TOML layer table.
//! - [`Error`]: one error type; every variant names the file, key, shape or
//!   value at fault.
//!
//! ## Cargo features
//!
//! | feature | model | params | MACs |
//! |---|---|---|---|
//! | `x0_25` | `pplcnet_x0_25` | 1.52 M | 16.8 M |
//! | `x0_35` | `pplcnet_x0_35` | 1.64 M | 27.4 M |
//! | `x0_5`  | `pplcnet_x0_5`  | 1.88 M | 44.7 M |
//! | `x0_75` | `pplcnet_x0_75` | 2.36 M | 94.8 M |
//! | `x1_0` (default) | `pplcnet_x1_0` | 2.95 M | 155.7 M |
//! | `x1_5`  | `pplcnet_x1_5`  | 4.50 M | 334.2 M |
//! | `x2_0`  | `pplcnet_x2_0`  | 6.52 M | 580.2 M |
//! | `x2_5`  | `pplcnet_x2_5`  | 9.02 M | 893.7 M |
//! | `textline_x0_25` | `pplcnet_textline_x0_25` | 0.24 M | 23.2 M |
//! | `textline_x1_0` | `pplcnet_textline_x1_0` | 1.67 M | 293.0 M |
//!
//! MACs at 224x224 (ImageNet, 1000 classes) and 80x160 (text lines, 2
//! classes). `doc-ori` and `textline-ori` embed the PaddleX orientation
//! models (6.8 and 6.7 MB); `all-variants` turns on every width.

extern crate self as lcnet_zoo;

/// Re-exported so that users name the same `image` version as
/// [`Classifier::classify_image`].
pub use image;
pub use lcnet_core;
/// Generates networks from a TOML layer table: one module per width, each
/// behind its cargo feature, with a shape-checked forward pass. A wrong
/// table is a compile error pointing at its line. See `configs/pp_lcnet.toml`
/// and `examples/custom-net` in the repository.
///
/// ```ignore
/// lcnet_zoo::network!("configs/my_net.toml"); // relative to CARGO_MANIFEST_DIR
/// ```
pub use lcnet_macros::network;

mod classifier;
mod error;
pub mod formats;
mod images;
pub mod onnx;
pub mod presets;
mod random;
mod registry;
pub use classifier::{check_logits, softmax_rows, Class, Classifier, ImageInput, Prediction, SizedImage};
pub use error::{Error, ImageProblem, Result};
pub use images::{decode, decode_bytes, decode_rgb, Decoding, ImageLimits};
pub use random::random_checkpoint;
pub use registry::{find, load, variants};

/// The checkpoint parsers and wire structs that lcnet's own tests and
/// fuzzers drive directly. Not part of the API: anything here may change in
/// any release.
#[doc(hidden)]
pub mod __private {
    /// The restricted pickle interpreter under `.pdparams` reading.
    pub mod pickle {
        pub use crate::formats::pickle::*;
    }
    /// `.pdparams` files as tensors.
    pub mod pdparams {
        pub use crate::formats::pdparams::*;
    }
    /// The ONNX protobuf messages the importer reads.
    pub mod onnx_proto {
        pub use crate::onnx::proto::*;
    }
}

/// The generated PP-LCNet widths, one module per enabled feature.
pub mod pplcnet {
    crate::network!("configs/pp_lcnet.toml");
}

/// The text-line orientation architecture of PaddleX (80x160 input, strides
/// `[2, 1]` from the second stage on), one module per enabled feature
/// (`textline_x0_25`, `textline_x1_0`).
pub mod pplcnet_textline {
    crate::network!("configs/pp_lcnet_textline.toml");
}

/// The README's code, run as a doc test so that it stays true.
#[cfg(all(doctest, feature = "doc-ori"))]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
