//! # lcnet-core
//!
//! The runtime of lcnet: CPU kernels with runtime ISA dispatch, NHWC
//! feature maps, and safetensors checkpoints with strict key accounting,
//! for PP-LCNet (Cui et al., "PP-LCNet: A Lightweight CPU Convolutional
//! Neural Network", 2021).
//!
//! Most users want `lcnet-zoo`, which generates the networks and classifies
//! images. This crate is what those networks run on:
//!
//! - [`Checkpoint`]: a memory-mapped safetensors file whose tensors are
//!   taken by name and shape; [`Checkpoint::finish`] fails if any is left
//!   unused, so a checkpoint of another model never loads silently.
//! - [`Network`] and [`VariantInfo`]: what every generated width implements
//!   and declares (layer table, parameters, MACs).
//! - [`Workspace`]: reusable buffers; after one warm-up pass a forward pass
//!   allocates nothing but its logits.
//! - [`isa`]: the instruction set the kernels use on this CPU (`LCNET_ISA=scalar|avx2|avx2vnni|avx512|avx512vnni|avx512amx`
//!   on x86_64, `scalar|neon` on aarch64, lowers it).
//! - [`files`], [`weights`], [`preprocess`]: safe file handling (regular
//!   files only, atomic writes), safetensors writing, image resizing and
//!   normalisation as OpenCV does it.
//! - [`Error`]: one error type; every variant names the file, tensor, shape
//!   or value at fault.
//!
//! ```
//! use std::collections::BTreeMap;
//! use lcnet_core::{Checkpoint, Error};
//!
//! let path = std::env::temp_dir().join(format!("lcnet-core-doc-{}.safetensors", std::process::id()));
//! let weight = [0.5f32; 6];
//! lcnet_core::weights::save_f32(&path, &[("fc.weight", vec![2, 3], &weight[..])], &BTreeMap::new())?;
//!
//! let mut ck = Checkpoint::open(&path)?;
//! assert_eq!(ck.take("fc.weight", &[2, 3])?, weight);
//! ck.finish("tiny")?; // every tensor was used
//! assert!(matches!(ck.take("fc.bias", &[2]), Err(Error::MissingTensor { .. })));
//! # std::fs::remove_file(&path).ok();
//! # Ok::<(), Error>(())
//! ```
//!
//! Tensors at the API are NCHW `ndarray`s (PaddleClas and ONNX order);
//! activations are NHWC inside. The networks themselves are not written
//! here: `lcnet_zoo::network!` generates one forward pass per width from a
//! TOML layer table, as a straight list of calls into this crate's layers
//! (`docs/architecture.md` in the repository describes the layout).

mod aligned;
pub mod error;
pub mod files;
mod kernels;
mod layers;
mod network;
pub mod preprocess;
pub mod quant;
mod tensor;
pub mod weights;

pub use aligned::AlignedVec;
pub use error::{Error, Result};
pub use kernels::{isa, Isa, Tier};
pub use layers::{bn_eps, BN_EPS, BN_EPS_KEY};
pub use network::{LayerInfo, LayerKind, Network, VariantInfo};
pub use tensor::{FeatureMap, Workspace};
pub use weights::Checkpoint;

/// The building blocks that `network!`-generated code calls, and that
/// lcnet's own kernel tests and benchmarks drive directly. Not part of the
/// API: anything here may change in any release.
#[doc(hidden)]
pub mod __private {
    /// The CPU kernels, one module per operation.
    pub mod kernels {
        pub use crate::kernels::*;
    }
    /// The typed layers generated networks are made of.
    pub mod layers {
        pub use crate::layers::*;
    }
    pub use crate::tensor::forward_per_image;
}

/// Re-exported so that generated code and users name one ndarray version.
pub use ndarray;
