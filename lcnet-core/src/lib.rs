//! # lcnet-core
//!
//! The runtime of lcnet: NHWC feature maps, rayon CPU kernels, typed layers
//! and safetensors checkpoints for PP-LCNet (Cui et al., "PP-LCNet: A
//! Lightweight CPU Convolutional Neural Network", 2021).
//!
//! The network itself is not written here: the `lcnet_zoo::network!` macro
//! generates one forward pass per width from a TOML layer table, as a straight
//! list of calls into [`layers`]. This crate knows nothing of the zoo.
//!
//! - [`kernels`]: one file per op, each with a scalar `reference` oracle.
//! - [`layers`]: const-generic wrappers that load PaddleClas weights (BN
//!   folded at load) and call the kernels.
//! - [`Checkpoint`]: memory-mapped safetensors with strict key accounting.
//! - [`Network`], [`VariantInfo`]: what every generated variant implements.
//!
//! Tensors at the API are NCHW `ndarray`s (PaddleClas and ONNX order);
//! activations are NHWC inside.

pub mod aligned;
pub mod error;
pub mod files;
pub mod kernels;
pub mod layers;
pub mod network;
pub mod preprocess;
pub mod tensor;
pub mod weights;

pub use aligned::AlignedVec;
pub use error::{Error, Result};
pub use network::{LayerInfo, LayerKind, Network, VariantInfo};
pub use tensor::{forward_per_image, FeatureMap, Workspace};
pub use weights::Checkpoint;

/// Re-exported so that generated code and users name one ndarray version.
pub use ndarray;
