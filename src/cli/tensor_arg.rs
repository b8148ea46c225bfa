//! `FILE.safetensors[:NAME]` arguments (`infer --tensor`, `verify --tensor
//! --expect`): parsing and reading one f32 tensor.

use std::path::{Path, PathBuf};

use anyhow::Context;
use lcnet_zoo::lcnet_core::Checkpoint;

/// The options of the commands that run a checkpoint on a raw tensor
/// (`infer`, `verify`).
#[derive(Debug, clap::Args)]
pub struct ModelInput {
    /// Model name (`pplcnet_x1_0` or `x1_0`); inferred from the checkpoint's shapes when omitted.
    #[arg(long, short)]
    pub model: Option<String>,
    /// Checkpoint: safetensors (PaddleClas, timm or transformers names), a PaddlePaddle
    /// `.pdparams`, or a transformers `save_pretrained` folder.
    #[arg(long, short)]
    pub weights: PathBuf,
    /// Input tensor, `FILE.safetensors[:NAME]`: f32 NCHW `[N, 3, H, W]`; NAME defaults to `input`.
    #[arg(long, short)]
    pub tensor: String,
    /// Worker threads (default: one per core).
    #[arg(long, value_parser = super::parse_threads)]
    pub threads: Option<usize>,
}

/// One f32 tensor read from a safetensors file.
#[derive(Debug)]
pub struct NamedTensor {
    /// The file it came from.
    pub file: PathBuf,
    /// Its name in the file.
    pub name: String,
    /// Its dimensions.
    pub shape: Vec<usize>,
    /// Its values, row-major.
    pub values: Vec<f32>,
}

impl NamedTensor {
    /// `file:name`, for messages.
    pub fn label(&self) -> String {
        format!("{}:{}", self.file.display(), self.name)
    }

    /// The four dimensions of an NCHW input, or an error naming the tensor.
    pub fn nchw(&self) -> anyhow::Result<(usize, usize, usize, usize)> {
        match self.shape[..] {
            [n, c, h, w] if n > 0 && h > 0 && w > 0 => Ok((n, c, h, w)),
            [n, _, h, w] => anyhow::bail!(
                "{}: tensor `{}` has shape {:?}: {n} images of {h}x{w}; expected [N, 3, H, W] with N, H, W >= 1",
                self.file.display(),
                self.name,
                self.shape
            ),
            _ => anyhow::bail!(
                "{}: tensor `{}` has shape {:?}, expected NCHW [N, 3, H, W]",
                self.file.display(),
                self.name,
                self.shape
            ),
        }
    }
}

/// `file.safetensors:name` -> (file, name); a path that exists as a whole is
/// taken as the file (so names with colons still work), and the tensor name
/// defaults to `default_name`.
pub fn split<'a>(arg: &'a str, default_name: &'a str) -> (&'a Path, &'a str) {
    if !Path::new(arg).exists() {
        if let Some((file, name)) = arg.rsplit_once(':') {
            if !name.is_empty() && !name.contains('/') {
                return (Path::new(file), name);
            }
        }
    }
    (Path::new(arg), default_name)
}

/// Reads the tensor `arg` names (see [`split`]); a missing name lists the
/// tensors the file has.
pub fn read(arg: &str, default_name: &str) -> anyhow::Result<NamedTensor> {
    let (file, name) = split(arg, default_name);
    if file.as_os_str().is_empty() {
        anyhow::bail!("`{arg}` names no file; expected FILE.safetensors[:NAME]");
    }
    let mut ck = Checkpoint::open(file)?;
    let (shape, values) =
        ck.take_any(name).with_context(|| format!("tensors in {}: {}", file.display(), ck.names().join(", ")))?;
    Ok(NamedTensor { file: file.to_path_buf(), name: name.to_string(), shape, values })
}
