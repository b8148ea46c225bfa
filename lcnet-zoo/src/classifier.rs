//! A network with its labels and preprocessing: what `lcnet run` and library
//! users need to classify images.

use std::path::Path;

use lcnet_core::ndarray::{Array2, ArrayView4};
use lcnet_core::preprocess::Image8;
use lcnet_core::{Checkpoint, Error, Network, Result, Workspace};

use crate::presets::{self, Preprocess};

/// A loaded model ready for images.
pub struct Classifier {
    /// The network.
    pub net: Box<dyn Network>,
    /// One label per class.
    pub labels: Vec<String>,
    /// How images become input tensors.
    pub preprocess: Preprocess,
    /// Preset name, or the architecture name for a bare checkpoint.
    pub name: String,
}

impl std::fmt::Debug for Classifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Classifier").field("name", &self.name).field("classes", &self.labels.len()).finish()
    }
}

/// One class and its probability.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// Class index.
    pub index: usize,
    /// Class label.
    pub label: String,
    /// Softmax probability.
    pub prob: f32,
}

impl Classifier {
    /// Opens a model the way the CLI does.
    ///
    /// - `weights` given: that checkpoint; labels and preprocessing come from
    ///   its metadata, else from the preset `model` names, else from the
    ///   ImageNet preset of its architecture.
    /// - no `weights`: the preset `model` (default `doc_ori`) with its embedded
    ///   weights.
    pub fn open(model: Option<&str>, weights: Option<&Path>) -> Result<Self> {
        let Some(path) = weights else {
            let preset = presets::find(model.unwrap_or("doc_ori"))?;
            let bytes = preset.weights.ok_or_else(|| {
                Error::Invalid(format!(
                    "{} has no embedded weights in this build; pass --weights FILE.safetensors",
                    preset.name
                ))
            })?;
            let mut ck = Checkpoint::from_static(&format!("<embedded {}>", preset.name), bytes)?;
            return Self::from_checkpoint(&mut ck, Some(&preset.name.to_string()));
        };
        let mut ck = crate::formats::open(path)?;
        Self::from_checkpoint(&mut ck, model.map(str::to_string).as_ref())
    }

    /// Loads `ck`; `model` may name a preset or an architecture.
    pub fn from_checkpoint(ck: &mut Checkpoint, model: Option<&String>) -> Result<Self> {
        let meta = ck.metadata().clone();
        let preset_name = model.cloned().or_else(|| meta.get("preset").cloned());
        let preset = match &preset_name {
            Some(name) => Some(presets::find(name)?),
            None => None,
        };
        let arch = match &preset {
            Some(p) => Some(p.architecture_for(ck).to_string()),
            None => meta.get("model").cloned(),
        };
        let net = crate::load(ck, arch.as_deref())?;
        let preset = match preset {
            Some(p) => p,
            None => presets::for_model(net.variant().name)?,
        };
        let classes = net.classes();
        let labels = match meta.get("labels") {
            Some(text) => serde_json::from_str::<Vec<String>>(text)
                .map_err(|e| Error::Invalid(format!("{}: `labels` metadata: {e}", ck.path().display())))?,
            None if preset.labels.len() == classes => preset.labels.iter().map(|s| s.to_string()).collect(),
            None => (0..classes).map(|i| i.to_string()).collect(),
        };
        if labels.len() != classes {
            return Err(Error::Invalid(format!(
                "{}: {} labels for {classes} classes",
                ck.path().display(),
                labels.len()
            )));
        }
        let preprocess = match meta.get("preprocess") {
            Some(text) => {
                Preprocess::from_json(text).map_err(|e| Error::Invalid(format!("{}: {e}", ck.path().display())))?
            }
            None => preset.preprocess.clone(),
        };
        let name = if meta.contains_key("preset") || model.is_some() {
            preset.name.to_string()
        } else {
            net.variant().name.to_string()
        };
        Ok(Classifier { net, labels, preprocess, name })
    }

    /// Values per preprocessed image.
    pub fn input_len(&self) -> usize {
        let (h, w) = self.preprocess.input_hw();
        3 * h * w
    }

    /// Preprocesses one RGB image into `out` (`input_len()` values).
    pub fn preprocess_into(&self, image: &Image8, out: &mut [f32]) -> Result<()> {
        self.preprocess.apply(image, out)
    }

    /// Runs a preprocessed batch `[n, 3, crop, crop]`; returns softmax probabilities.
    pub fn probabilities(&self, batch: ArrayView4<f32>, ws: &mut Workspace) -> Result<Array2<f32>> {
        let mut logits = self.net.forward(batch, ws)?;
        check_logits(self.net.as_ref(), batch, &logits)?;
        softmax_rows(&mut logits);
        Ok(logits)
    }

    /// The `k` most probable classes of one probability row.
    pub fn top(&self, probs: &[f32], k: usize) -> Vec<Prediction> {
        let mut order: Vec<usize> = (0..probs.len()).collect();
        order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]).then(a.cmp(&b)));
        order
            .into_iter()
            .take(k)
            .map(|index| Prediction { index, label: self.labels[index].clone(), prob: probs[index] })
            .collect()
    }
}

/// Fails when `logits` (of `net` on `input`) hold a NaN or infinity, naming
/// the first stage whose output does: the input is checked finite on the way
/// in, so the weights made them (BatchNorm folded from huge statistics, an
/// overflowing checkpoint).
pub fn check_logits(net: &dyn Network, input: ArrayView4<f32>, logits: &Array2<f32>) -> Result<()> {
    let Some(image) = logits.rows().into_iter().position(|row| row.iter().any(|v| !v.is_finite())) else {
        return Ok(());
    };
    let mut ws = Workspace::new();
    ws.record_stages();
    let one = input.slice(lcnet_core::ndarray::s![image..image + 1, .., .., ..]);
    net.forward(one, &mut ws)?;
    let stages = ws.take_recorded();
    let stage =
        stages.iter().find(|(_, x)| x.iter().any(|v| !v.is_finite())).map_or("the head (last_conv, fc)", |(s, _)| s);
    Err(Error::Invalid(format!(
        "{}: non-finite logits for image {image}: values first overflow in {stage}; the weights are not usable",
        net.variant().name
    )))
}

/// Softmax of every row of `[n, classes]` logits, in place (max-subtracted,
/// so large logits do not overflow).
pub fn softmax_rows(logits: &mut Array2<f32>) {
    for mut row in logits.rows_mut() {
        let max = row.fold(f32::NEG_INFINITY, |m, &v| m.max(v));
        row.mapv_inplace(|v| (v - max).exp());
        let sum = row.sum();
        row.mapv_inplace(|v| v / sum);
    }
}
