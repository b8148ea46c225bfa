//! Every checkpoint format lcnet reads, turned into the canonical layout.
//!
//! [`open`] is what `--weights` goes through: it recognises the file
//! (safetensors, a PaddlePaddle `.pdparams` pickle, a transformers
//! `save_pretrained` folder) and the naming scheme inside it
//! ([`Layout`]: PaddleClas, timm, transformers), and hands the network a
//! [`Checkpoint`] with PaddleClas's names and layouts. A canonical
//! safetensors file is memory-mapped as it is; the others are converted in
//! memory. `lcnet import` writes the converted tensors to disk.

mod layouts;
pub(crate) mod pdparams;
pub(crate) mod pickle;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use layouts::{Layout, CANONICAL_DROPOUT_SCALE};
use lcnet_core::Checkpoint;

use crate::error::{Error, Result};

/// One named f32 tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// Name (canonical after [`read`]).
    pub name: String,
    /// Dimensions.
    pub shape: Vec<usize>,
    /// Values, row-major.
    pub values: Vec<f32>,
}

/// How a checkpoint file is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// safetensors.
    Safetensors,
    /// A pickled dict of numpy arrays (`paddle.save`).
    Pdparams,
}

/// A checkpoint converted to canonical names and layouts.
#[derive(Debug)]
pub struct Converted {
    /// The tensors, canonical.
    pub tensors: Vec<Tensor>,
    /// The file the tensors came from.
    pub file: PathBuf,
    /// Its encoding.
    pub encoding: Encoding,
    /// Its naming scheme.
    pub layout: Layout,
    /// The source's `__metadata__` (safetensors only).
    pub metadata: BTreeMap<String, String>,
}

impl Converted {
    /// The converted tensors as an in-memory canonical checkpoint, with the
    /// source noted in its metadata (`source_layout`, `source_encoding`).
    pub fn to_checkpoint(&self) -> Result<Checkpoint> {
        let mut metadata = self.metadata.clone();
        metadata.insert("source_layout".into(), self.layout.name().into());
        metadata.insert("source_encoding".into(), format!("{:?}", self.encoding).to_lowercase());
        let bytes = lcnet_core::weights::to_bytes(&self.views(), &metadata)?;
        Ok(Checkpoint::from_vec(&self.file.display().to_string(), bytes)?)
    }

    /// `(name, shape, values)` of every tensor, as the safetensors writers take them.
    pub fn views(&self) -> Vec<(&str, Vec<usize>, &[f32])> {
        self.tensors.iter().map(|t| (t.name.as_str(), t.shape.clone(), t.values.as_slice())).collect()
    }
}

/// Opens a checkpoint in any supported format and layout as a canonical
/// [`Checkpoint`] (memory-mapped when it already is one).
pub fn open(path: &Path) -> Result<Checkpoint> {
    let file = checkpoint_file(path)?;
    if encoding(&file)? == Encoding::Safetensors {
        let ck = Checkpoint::open(&file)?;
        if Layout::detect(&ck.names()).map_err(|e| invalid(&file, e))? == Layout::PaddleClas {
            return Ok(ck);
        }
    }
    read(path)?.to_checkpoint()
}

/// Reads a checkpoint in any supported format and layout and converts it to
/// canonical names and layouts.
pub fn read(path: &Path) -> Result<Converted> {
    let file = checkpoint_file(path)?;
    let encoding = encoding(&file)?;
    let (tensors, metadata) = match encoding {
        Encoding::Pdparams => {
            let bytes = lcnet_core::files::read_regular(&file)?;
            let tensors =
                pdparams::read(&bytes).map_err(|e| invalid(&file, format!("not a readable .pdparams: {e}")))?;
            (tensors, BTreeMap::new())
        }
        Encoding::Safetensors => {
            let mut ck = Checkpoint::open(&file)?;
            let metadata = ck.metadata().clone();
            let names: Vec<String> = ck.names().into_iter().map(str::to_string).collect();
            let mut tensors = Vec::with_capacity(names.len());
            for name in names.into_iter().filter(|n| !n.ends_with("num_batches_tracked")) {
                let (shape, values) = ck.take_any(&name)?;
                tensors.push(Tensor { name, shape, values });
            }
            (tensors, metadata)
        }
    };
    let names: Vec<&str> = tensors.iter().map(|t| t.name.as_str()).collect();
    let layout = Layout::detect(&names).map_err(|e| invalid(&file, e))?;
    let mut metadata = metadata;
    let dropout_scale = match layout {
        Layout::PaddleClas => CANONICAL_DROPOUT_SCALE,
        // PyTorch's Dropout is the identity at inference.
        Layout::Timm => 1.0,
        Layout::Transformers => {
            let config = transformers_config(&file)?;
            if let Some(labels) = config.labels {
                metadata.insert("labels".into(), serde_json::to_string(&labels).expect("strings serialise"));
            }
            1.0 - config.dropout
        }
    };
    let tensors = layouts::to_canonical(layout, tensors, dropout_scale).map_err(|e| invalid(&file, e))?;
    Ok(Converted { tensors, file, encoding, layout, metadata })
}

/// The weights file of `path`: itself, or `model.safetensors` in a
/// `save_pretrained` folder.
fn checkpoint_file(path: &Path) -> Result<PathBuf> {
    if !path.is_dir() {
        return Ok(path.to_path_buf());
    }
    let file = path.join("model.safetensors");
    if file.is_file() {
        Ok(file)
    } else {
        Err(invalid(path, "a folder, but without model.safetensors (a transformers save_pretrained folder has one)"))
    }
}

/// Tells the encodings apart by their first bytes.
fn encoding(file: &Path) -> Result<Encoding> {
    use std::io::Read;
    let mut head = [0u8; 4];
    let mut f = lcnet_core::files::open_regular(file)?;
    let n = f.read(&mut head).map_err(|source| lcnet_core::Error::Io { path: file.to_path_buf(), source })?;
    let head = &head[..n];
    if pdparams::looks_like_pickle(head) {
        Ok(Encoding::Pdparams)
    } else if head.starts_with(b"PK\x03\x04") {
        Err(invalid(
            file,
            "a zip archive (PyTorch's torch.save format?); lcnet reads safetensors and .pdparams: \
             convert with safetensors.torch.save_file(torch.load(path), out)",
        ))
    } else {
        Ok(Encoding::Safetensors)
    }
}

/// What lcnet uses of a transformers `config.json`.
struct TransformersConfig {
    /// `hidden_dropout_prob`: the head multiplies by `1 - p` at inference.
    dropout: f32,
    /// `id2label` in class order, when it names every class from 0.
    labels: Option<Vec<String>>,
}

/// The `config.json` beside a transformers checkpoint; without one,
/// transformers' defaults (dropout 0.2, no labels).
fn transformers_config(file: &Path) -> Result<TransformersConfig> {
    const DEFAULT_DROPOUT: f32 = 0.2;
    let mut config = TransformersConfig { dropout: DEFAULT_DROPOUT, labels: None };
    let Some(path) = file.parent().map(|d| d.join("config.json")).filter(|c| c.is_file()) else {
        return Ok(config);
    };
    let bytes = lcnet_core::files::read_regular(&path)?;
    let text = String::from_utf8(bytes).map_err(|_| invalid(&path, "not UTF-8 text"))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| invalid(&path, format!("not valid JSON: {e}")))?;
    if !json.is_object() {
        return Err(invalid(&path, "is not a JSON object (a transformers config.json is one)"));
    }
    if let Some(p) = json.get("hidden_dropout_prob") {
        config.dropout = match p.as_f64() {
            Some(p) if (0.0..1.0).contains(&p) => p as f32,
            _ => return Err(invalid(&path, format!("hidden_dropout_prob is {p}, expected a number in [0, 1)"))),
        };
    }
    if let Some(map) = json.get("id2label").and_then(|m| m.as_object()) {
        let labels: Option<Vec<String>> =
            (0..map.len()).map(|i| map.get(&i.to_string()).and_then(|l| l.as_str()).map(str::to_string)).collect();
        config.labels = labels;
    }
    Ok(config)
}

fn invalid(path: &Path, reason: impl std::fmt::Display) -> Error {
    Error::BadCheckpoint { path: path.to_path_buf(), reason: reason.to_string() }
}
