//! # lcnet-zoo
//!
//! PP-LCNet (Cui et al., "PP-LCNet: A Lightweight CPU Convolutional Neural
//! Network", 2021) in every PaddleClas width, generated at compile time from
//! the paper's layer table in `configs/pp_lcnet.toml`.
//!
//! | feature | model | params | MACs at 224x224 |
//! |---|---|---|---|
//! | `x0_25` | `pplcnet_x0_25` | 1.52 M | 16.8 M |
//! | `x0_35` | `pplcnet_x0_35` | 1.64 M | 27.4 M |
//! | `x0_5`  | `pplcnet_x0_5`  | 1.88 M | 44.7 M |
//! | `x0_75` | `pplcnet_x0_75` | 2.36 M | 94.8 M |
//! | `x1_0` (default) | `pplcnet_x1_0` | 2.95 M | 155.7 M |
//! | `x1_5`  | `pplcnet_x1_5`  | 4.50 M | 334.2 M |
//! | `x2_0`  | `pplcnet_x2_0`  | 6.52 M | 580.2 M |
//! | `x2_5`  | `pplcnet_x2_5`  | 9.02 M | 893.7 M |
//!
//! ```no_run
//! use lcnet_zoo::lcnet_core::{ndarray::Array4, Checkpoint, Workspace};
//!
//! let mut ck = Checkpoint::open("pplcnet_x1_0.safetensors")?;
//! let net = lcnet_zoo::load(&mut ck, None)?; // width inferred from the shapes
//! let input = Array4::<f32>::zeros((1, 3, 224, 224));
//! let logits = net.forward(input.view(), &mut Workspace::new())?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

extern crate self as lcnet_zoo;

pub use lcnet_core;
pub use lcnet_macros::network;

mod classifier;
pub mod formats;
pub mod onnx;
pub mod presets;
mod random;
mod registry;
pub use classifier::{check_logits, softmax_rows, Classifier, Prediction};
pub use random::random_checkpoint;
pub use registry::{find, load, variants};

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
