//! `lcnet run`: classify images, by default with the embedded
//! document-orientation model.

use std::io::Write;
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};
use lcnet_zoo::{Class, Decoding, ImageLimits};
use rayon::prelude::*;
use serde_json::json;

use super::images;
use super::output::printable;
use super::upright::{Upright, Written};

/// Exit code when some images could not be read (the others were classified).
pub const EXIT_SOME_FAILED: u8 = 3;

/// Arguments of `lcnet run`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    lcnet run examples/pages/                      # orientation of every page image in a folder\n  \
    lcnet run --json scan.jpg                      # one JSON object per image\n  \
    lcnet run --model textline_ori lines/           # text lines: 0_degree or 180_degree\n  \
    lcnet run --upright upright/ scans/            # also write every page turned upright\n  \
    lcnet run --model pplcnet_x1_0 --weights imagenet.safetensors --top 5 cat.jpg\n\n\
    Exit codes: 0 all images classified, 1 error, 2 bad usage, 3 some images could not be read.")]
pub struct Args {
    /// Images (PNG, JPEG) or folders of images (walked recursively).
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// Preset or architecture: `doc_ori` (embedded, the default), `pplcnet_x1_0`, ... (see `lcnet list`).
    #[arg(long, short)]
    model: Option<String>,
    /// Checkpoint to use instead of the embedded weights (its metadata supplies labels and preprocessing):
    /// safetensors with PaddleClas, timm or transformers names, a `.pdparams`, or a `save_pretrained` folder.
    #[arg(long, short)]
    weights: Option<PathBuf>,
    /// How many classes to report per image.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    top: u32,
    /// One JSON object per line: {"file", "top": [{"index", "label", "prob"}]}, with --upright also
    /// "upright" (the file written), "rotated" and "turned_back" (degrees).
    #[arg(long)]
    json: bool,
    /// Images per forward pass.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=1024))]
    batch: u32,
    /// Do not turn images upright by their EXIF orientation tag.
    #[arg(long)]
    ignore_exif: bool,
    /// Refuse images larger than this many pixels (width x height), read from the header before
    /// decoding; the other images still run. Sides are limited to 65535.
    #[arg(long, value_name = "N", default_value_t = ImageLimits::default().max_pixels,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000_000))]
    max_pixels: u64,
    /// Worker threads (default: one per core).
    #[arg(long, value_parser = super::parse_threads)]
    threads: Option<usize>,
    /// Also write every image turned upright by the predicted angle into this folder (orientation
    /// models: doc_ori turns back 90/180/270 degrees, textline_ori 180), with the same file name,
    /// sub-folder and format, EXIF orientation applied first. Inputs are never overwritten.
    #[arg(long, value_name = "DIR")]
    upright: Option<PathBuf>,
    /// With --upright: leave an image as it is (copied unrotated, `"rotated": false`) when the top
    /// probability is below P.
    #[arg(long, value_name = "P", requires = "upright", default_value_t = 0.0)]
    min_prob: f32,
    /// With --upright: replace existing regular files in DIR.
    #[arg(long, requires = "upright")]
    force: bool,
}

/// Classifies every image; returns the number of images that failed.
pub fn run(args: &Args) -> anyhow::Result<usize> {
    super::set_threads(args.threads)?;
    let decoding = Decoding {
        limits: ImageLimits { max_pixels: args.max_pixels, ..Default::default() },
        apply_exif: !args.ignore_exif,
    };
    let classifier = super::open_classifier(args.model.as_deref(), args.weights.as_deref())?
        .with_decoding(decoding)
        .with_batch_size(args.batch as usize);
    let upright = match &args.upright {
        Some(dir) => Some(Upright::new(dir, classifier.labels(), &args.images, (args.min_prob, args.force), decoding)?),
        None => None,
    };
    let (files, mut failed) = images::collect(&args.images);
    for (path, why) in &failed {
        eprintln!("lcnet: error: {}: {why}", path.display());
    }
    if files.is_empty() {
        anyhow::bail!("no images to classify");
    }
    let bar = ProgressBar::new(files.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} images, {per_sec}, eta {eta}").expect("valid template"),
    );
    if files.len() < 16 {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }

    let mut stdout = std::io::stdout().lock();
    // One library batch per group, so that lines and the bar follow along.
    for group in files.chunks(args.batch as usize) {
        let paths: Vec<&Path> = group.iter().map(|f| f.path.as_path()).collect();
        let predictions = classifier.classify_batch(&paths)?;
        // Upright copies are re-decoded and encoded in parallel.
        let written: Vec<Option<anyhow::Result<Written>>> = group
            .par_iter()
            .zip(&predictions)
            .map(|(file, p)| match (upright.as_ref(), p) {
                (Some(u), Ok(p)) => Some(u.write(file, p.index, p.prob)),
                _ => None,
            })
            .collect();
        for ((file, prediction), written) in group.iter().zip(predictions).zip(written) {
            let prediction = match prediction {
                Ok(p) => p,
                Err(e) => {
                    bar.suspend(|| eprintln!("lcnet: error: {e}"));
                    failed.push((file.path.clone(), e.to_string()));
                    continue;
                }
            };
            let written = match written {
                Some(Err(e)) => {
                    bar.suspend(|| eprintln!("lcnet: error: {}: {e:#}", file.path.display()));
                    failed.push((file.path.clone(), format!("{e:#}")));
                    None
                }
                Some(Ok(w)) => Some(w),
                None => None,
            };
            let top = prediction.top(args.top as usize);
            let line = if args.json {
                json_line(&file.path, &top, written.as_ref())
            } else {
                text_line(&file.path, &top, written.as_ref())
            };
            bar.suspend(|| writeln!(stdout, "{line}")).map_err(super::output::write_error)?;
        }
        bar.inc(group.len() as u64);
    }
    bar.finish_and_clear();
    if !failed.is_empty() {
        eprintln!("lcnet: {} input(s) could not be classified (or written upright); the others were", failed.len());
    }
    Ok(failed.len())
}

fn text_line(path: &Path, top: &[Class], written: Option<&Written>) -> String {
    let classes: Vec<String> = top.iter().map(|p| format!("{} ({:.3})", printable(&p.label), p.prob)).collect();
    let upright = match written {
        Some(w) if w.rotated => format!(" -> {} (turned back {} degrees)", w.path.display(), w.turned_back),
        Some(w) => format!(" -> {} (as it is)", w.path.display()),
        None => String::new(),
    };
    format!("{}: {}{upright}", path.display(), classes.join(", "))
}

fn json_line(path: &Path, top: &[Class], written: Option<&Written>) -> String {
    let top: Vec<_> = top.iter().map(|p| json!({"index": p.index, "label": p.label, "prob": p.prob})).collect();
    let mut line = json!({"file": path.display().to_string(), "top": top});
    if let Some(w) = written {
        line["upright"] = json!(w.path.display().to_string());
        line["rotated"] = json!(w.rotated);
        line["turned_back"] = json!(w.turned_back);
    }
    line.to_string()
}
