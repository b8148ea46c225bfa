//! `lcnet quantize`: an f32 checkpoint becomes an int8 one (docs/int8.md).

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Context};
use lcnet_zoo::lcnet_core::files::{check_output, write_atomically, Overwrite};
use lcnet_zoo::lcnet_core::quant::WeightRange;
use lcnet_zoo::lcnet_core::Checkpoint;

use super::output::outln;
use crate::cli::digest::sha256_file;

/// Arguments of `lcnet quantize`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Post-training static quantisation: weights per output channel, symmetric int8 (-127..=127, or
-64..=64 for the pointwise layers with --reduce-range); activations unsigned 8-bit with a zero
point: per channel where a depthwise layer reads them (the stem's and pointwise outputs before a
depthwise layer), over each channel's least and greatest value on all calibration images; per
tensor elsewhere, over the mean of each image's least and greatest value (moving-average
min/max). The stem computes in f32, SE and the head run in f32 on dequantised values. The output
is a safetensors file that every command taking --weights runs.

int8 is fastest on CPUs with AVX-512 VNNI or AVX-VNNI (`lcnet --version` names the kernels). For
CPUs without VNNI (AVX2 only: AMD before Zen 4, Intel before Ice Lake and Alder Lake) quantise
with --reduce-range.

Examples:
  lcnet quantize --model doc_ori --calib pages/ -o doc_ori.int8.safetensors
  lcnet quantize --weights pplcnet_x1_0.safetensors --calib imagenet_val_100/ -o x1_0.int8.safetensors
  lcnet quantize --reduce-range --model doc_ori --calib pages/ -o doc_ori.avx2.int8.safetensors")]
pub struct Args {
    /// The f32 checkpoint (any format `lcnet import` reads); default: the preset's embedded weights.
    #[arg(long, short)]
    weights: Option<PathBuf>,
    /// Preset or architecture, as for `lcnet run` (default: doc_ori).
    #[arg(long, short)]
    model: Option<String>,
    /// Calibration images, files or folders (searched recursively); use images like the ones the
    /// model will see, and not the ones you evaluate it on.
    #[arg(long, required = true, num_args = 1..)]
    calib: Vec<PathBuf>,
    /// Where to write the int8 safetensors checkpoint.
    #[arg(long, short)]
    out: PathBuf,
    /// Pointwise weights in -64..=64 (ONNX Runtime's reduce_range): on CPUs without VNNI (AVX2,
    /// AVX-512BW) their products sum in one `vpmaddubsw` step, exactly, where 8-bit weights take a
    /// slower exact step (x1.0 about 1.3x faster there); on VNNI CPUs no faster. Half the weights'
    /// resolution: check accuracy on your images (docs/int8.md has ours).
    #[arg(long)]
    reduce_range: bool,
    /// Overwrite OUT if it exists.
    #[arg(long)]
    force: bool,
}

/// Calibrates, quantises and writes; prints a summary.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let overwrite = if args.force { Overwrite::RegularFile } else { Overwrite::Never };
    check_output(&args.out, overwrite)?;
    let classifier = super::open_classifier(args.model.as_deref(), args.weights.as_deref())?;
    let info = classifier.network().variant();
    if lcnet_zoo::lcnet_core::quant::is_quantized(&source(args)?) {
        bail!("{}: already an int8 checkpoint", args.weights.as_deref().unwrap_or(std::path::Path::new("-")).display());
    }
    let (files, failed) = super::images::collect(&args.calib);
    if let Some((path, reason)) = failed.first() {
        bail!("{}: {reason}", path.display());
    }
    let paths: Vec<PathBuf> = files.into_iter().map(|f| f.path).collect();
    let bar = indicatif::ProgressBar::new(paths.len() as u64).with_message("calibrating");
    let ranges = classifier.calibrate(&paths, |done| bar.set_position(done as u64))?;
    bar.finish_and_clear();
    let (origin, source_size) = match &args.weights {
        Some(path) => (
            format!(
                "{} (sha256 {})",
                path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
                sha256_file(path)?
            ),
            Some(std::fs::metadata(path).with_context(|| path.display().to_string())?.len()),
        ),
        None => (format!("embedded {} weights of lcnet {}", classifier.name(), env!("CARGO_PKG_VERSION")), None),
    };
    let extra = BTreeMap::from([
        ("quantized_from".to_string(), origin),
        ("calibration".to_string(), format!(
                "{} images; per-channel outputs: min/max over all images; per-tensor outputs: moving-average min/max",
                paths.len()
            )),
        (
            "quantization".to_string(),
            format!(
                "weights int8 per output channel, symmetric, {}; activations uint8, per channel into depthwise layers, else per tensor",
                if args.reduce_range { "pointwise layers in -64..=64 (reduce_range), others in -127..=127" } else { "-127..=127" }
            ),
        ),
        ("converter".to_string(), format!("lcnet quantize {}", env!("CARGO_PKG_VERSION"))),
    ]);
    let pointwise = if args.reduce_range { WeightRange::Reduced } else { WeightRange::Full };
    let bytes = lcnet_zoo::lcnet_core::quant::quantize(&mut source(args)?, info, &ranges, pointwise, &extra)?;
    write_atomically(&args.out, &bytes, overwrite)?;
    outln!(
        "{}: {} int8, calibrated on {} images -> {} ({} bytes{})",
        classifier.name(),
        info.name,
        paths.len(),
        args.out.display(),
        bytes.len(),
        source_size
            .map(|s| format!(", {:.0} % of the f32 file", 100.0 * bytes.len() as f64 / s as f64))
            .unwrap_or_default()
    );
    Ok(())
}

/// The f32 checkpoint to quantise, opened afresh (loading a network takes
/// its tensors).
fn source(args: &Args) -> anyhow::Result<Checkpoint> {
    Ok(match &args.weights {
        Some(path) => lcnet_zoo::formats::open(path)?,
        None => {
            let preset = lcnet_zoo::presets::find(args.model.as_deref().unwrap_or("doc_ori"))?;
            let Some(bytes) = preset.weights else {
                bail!("preset {} has no embedded weights: give --weights", preset.name)
            };
            Checkpoint::from_static(&format!("<embedded {}>", preset.name), bytes)?
        }
    })
}
