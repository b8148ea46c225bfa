//! What every generated network variant provides: static facts
//! ([`VariantInfo`], [`LayerInfo`]) and a runnable, loaded [`Network`].

use ndarray::{Array2, ArrayView4};

use crate::{Checkpoint, Result, Workspace};

/// The kind of a layer in a variant's layer table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerKind {
    /// Dense stem convolution (+ BN + activation).
    Stem,
    /// Depthwise convolution (+ BN + activation).
    Depthwise,
    /// Squeeze-and-excitation module.
    SqueezeExcite,
    /// Pointwise 1x1 convolution (+ BN + activation).
    Pointwise,
    /// Global average pooling followed by the head's 1x1 conv and activation.
    HeadConv,
    /// The final fully connected layer.
    Fc,
}

impl LayerKind {
    /// A short lowercase name for tables.
    pub fn as_str(self) -> &'static str {
        match self {
            LayerKind::Stem => "conv",
            LayerKind::Depthwise => "dw",
            LayerKind::SqueezeExcite => "se",
            LayerKind::Pointwise => "pw",
            LayerKind::HeadConv => "gap+conv",
            LayerKind::Fc => "fc",
        }
    }
}

/// One row of a variant's layer table, at the default input size and class
/// count; computed by the `network!` macro at compile time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerInfo {
    /// The PaddleClas sublayer name (`conv1`, `blocks2.0.dw_conv`, `fc`, ...).
    pub name: &'static str,
    /// What the layer does.
    pub kind: LayerKind,
    /// Square kernel size (1 for 1x1 convs and the FC).
    pub kernel: usize,
    /// Stride along (height, width).
    pub stride: [usize; 2],
    /// Input channels.
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Bottleneck width of an SE module (0 for other layers).
    pub mid_channels: usize,
    /// Output (height, width).
    pub out_hw: [usize; 2],
    /// Trainable parameters (BN running statistics excluded).
    pub params: u64,
    /// Multiply-accumulates for one image.
    pub macs: u64,
}

/// Static facts about one compiled network variant, and how to load it.
#[derive(Debug, Clone, Copy)]
pub struct VariantInfo {
    /// Model name, e.g. `pplcnet_x1_0`.
    pub name: &'static str,
    /// The cargo feature that compiles it, e.g. `x1_0`.
    pub feature: &'static str,
    /// Width multiplier, as the layer table writes it (`0.35`: an `f64` so
    /// that it prints as written).
    pub width: f64,
    /// Default input `[channels, height, width]`.
    pub input: [usize; 3],
    /// Number of classes the table declares (checkpoints may have others).
    pub classes: usize,
    /// Trainable parameters at the default classes.
    pub params: u64,
    /// Multiply-accumulates for one image at the default input and classes.
    pub macs: u64,
    /// What the head's dropout multiplies by at inference (0.8 for Paddle's
    /// `downscale_in_infer` with p = 0.2), folded into the FC at load.
    pub dropout_scale: f32,
    /// Whether the head's 1x1 conv has a bias (`last_conv.bias`).
    pub head_bias: bool,
    /// The activation after every conv (the table's `activation`).
    pub activation: crate::kernels::Activation,
    /// The layer table.
    pub layers: &'static [LayerInfo],
    /// Loads this variant from a checkpoint (every tensor must be used).
    pub load: fn(&mut Checkpoint) -> Result<Box<dyn Network>>,
}

impl VariantInfo {
    /// The checkpoint tensor shapes that identify this variant's widths
    /// (every conv weight); the FC is left out because its class count varies.
    pub fn signature(&self) -> Vec<(String, Vec<usize>)> {
        self.layers
            .iter()
            .filter_map(|l| {
                let (key, shape) = match l.kind {
                    LayerKind::Stem => ("conv.weight", vec![l.out_channels, l.in_channels, l.kernel, l.kernel]),
                    LayerKind::Depthwise => ("conv.weight", vec![l.out_channels, 1, l.kernel, l.kernel]),
                    LayerKind::SqueezeExcite => ("conv1.weight", vec![l.mid_channels, l.in_channels, 1, 1]),
                    LayerKind::Pointwise => ("conv.weight", vec![l.out_channels, l.in_channels, 1, 1]),
                    LayerKind::HeadConv => ("weight", vec![l.out_channels, l.in_channels, 1, 1]),
                    LayerKind::Fc => return None,
                };
                Some((format!("{}.{key}", l.name), shape))
            })
            .collect()
    }

    /// (params, MACs) with `classes` outputs instead of the table's.
    pub fn counts_with_classes(&self, classes: usize) -> (u64, u64) {
        let hidden = self.layers.iter().find(|l| l.kind == LayerKind::Fc).map_or(0, |l| l.in_channels) as u64;
        let (c_old, c_new) = (self.classes as u64, classes as u64);
        (self.params - (hidden + 1) * c_old + (hidden + 1) * c_new, self.macs - hidden * c_old + hidden * c_new)
    }

    /// Whether every conv weight of `ck` has this variant's shape.
    pub fn matches(&self, ck: &Checkpoint) -> bool {
        self.signature().iter().all(|(key, shape)| ck.shape(key) == Some(shape.as_slice()))
    }
}

/// A network with its weights loaded, ready to run.
pub trait Network: Send + Sync {
    /// The variant this network is.
    fn variant(&self) -> &'static VariantInfo;

    /// Number of output classes (from the checkpoint).
    fn classes(&self) -> usize;

    /// Runs an NCHW f32 batch `[n, 3, h, w]` (any `h, w >= 1`) and returns
    /// `[n, classes]` logits (before softmax).
    fn forward(&self, input: ArrayView4<f32>, ws: &mut Workspace) -> Result<Array2<f32>>;
}
