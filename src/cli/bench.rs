//! `lcnet bench`: time the forward pass (and, given images, preprocessing)
//! on this machine.

use super::output::outln;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::bail;
use lcnet_zoo::lcnet_core::ndarray::Array4;
use lcnet_zoo::lcnet_core::{Checkpoint, Workspace};
use serde_json::json;

use super::images;

/// Arguments of `lcnet bench`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    lcnet bench --model pplcnet_x1_0                      # random weights, 224x224, batch 1, all cores\n  \
    lcnet bench --model x2_5 --batch 8 --threads 2 --json\n  \
    lcnet bench --weights doc_ori.safetensors --images examples/pages   # also times preprocessing")]
pub struct Args {
    /// Architecture or preset to time (random weights unless the preset embeds some).
    #[arg(long, short, default_value = "pplcnet_x1_0")]
    model: String,
    /// Time this checkpoint instead (its architecture is inferred); any format `lcnet import` reads.
    #[arg(long, short)]
    weights: Option<PathBuf>,
    /// Images per forward pass.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=4096))]
    batch: u32,
    /// Worker threads (default: one per core).
    #[arg(long, value_parser = super::parse_threads)]
    threads: Option<usize>,
    /// Input size HxW (default: the model's, 224x224).
    #[arg(long, value_parser = parse_size)]
    size: Option<(usize, usize)>,
    /// Timed forward passes (after warm-up).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    iters: u32,
    /// Untimed forward passes first.
    #[arg(long, default_value_t = 5)]
    warmup: u32,
    /// Also time decoding + preprocessing of these images (files or folders).
    #[arg(long, num_args = 1..)]
    images: Vec<PathBuf>,
    /// Also report the median time of each stage (stem, blocks2..blocks6, head).
    #[arg(long)]
    stages: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

fn parse_size(s: &str) -> Result<(usize, usize), String> {
    let (h, w) = s.split_once(['x', 'X']).ok_or("expected HxW, e.g. 224x224")?;
    let (h, w) = (h.parse::<usize>().map_err(|e| e.to_string())?, w.parse::<usize>().map_err(|e| e.to_string())?);
    if !(1..=4096).contains(&h) || !(1..=4096).contains(&w) {
        return Err("height and width must be 1 to 4096".into());
    }
    Ok((h, w))
}

/// Median, minimum and 90th percentile of `times`, in milliseconds.
fn stats(times: &mut [Duration]) -> (f64, f64, f64) {
    times.sort_unstable();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let n = times.len();
    let median = if n % 2 == 1 { ms(times[n / 2]) } else { (ms(times[n / 2 - 1]) + ms(times[n / 2])) / 2.0 };
    (median, ms(times[0]), ms(times[((n * 9).div_ceil(10)).clamp(1, n) - 1]))
}

/// Runs the benchmark and prints the result.
pub fn run(args: &Args) -> anyhow::Result<()> {
    super::set_threads(args.threads)?;
    let (net, source) = match &args.weights {
        Some(path) => {
            let mut ck = lcnet_zoo::formats::open(path)?;
            (lcnet_zoo::load(&mut ck, None)?, path.display().to_string())
        }
        None => {
            let preset = lcnet_zoo::presets::find(&args.model)?;
            match preset.weights {
                Some(bytes) => {
                    let mut ck = Checkpoint::from_static(preset.name, bytes)?;
                    (lcnet_zoo::load(&mut ck, Some(preset.model))?, format!("embedded {}", preset.name))
                }
                None => {
                    let variant = lcnet_zoo::find(preset.model)?;
                    let mut ck = lcnet_zoo::random_checkpoint(variant, variant.classes, 0)?;
                    (lcnet_zoo::load(&mut ck, Some(variant.name))?, "random weights".to_string())
                }
            }
        }
    };
    let variant = net.variant();
    let (h, w) = args.size.unwrap_or((variant.input[1], variant.input[2]));
    let batch = args.batch as usize;

    // Preprocessing is timed separately, per image, when images are given.
    let mut preprocess_ms = None;
    if !args.images.is_empty() {
        let (files, failed) = images::collect(&args.images);
        if let Some((path, why)) = failed.first() {
            bail!("{}: {why}", path.display());
        }
        let classifier = super::open_classifier(Some(&args.model), args.weights.as_deref())
            .or_else(|_| super::open_classifier(None, args.weights.as_deref()))?;
        let preprocess = classifier.preprocess();
        let (h, w) = preprocess.input_hw();
        let mut out = vec![0.0; 3 * h * w];
        let mut times = Vec::new();
        for path in files.iter().map(|f| &f.path).cycle().take(files.len().max(10)) {
            let start = Instant::now();
            let image = lcnet_zoo::decode_rgb(path, classifier.decoding())?;
            preprocess.apply(&image, &mut out)?;
            times.push(start.elapsed());
        }
        preprocess_ms = Some(stats(&mut times).0);
    }

    // A fixed pseudo-random input: values do not change the work done.
    let input = Array4::from_shape_fn((batch, 3, h, w), |(n, c, y, x)| {
        (((n * 7 + c * 13 + y * 3 + x) % 17) as f32 - 8.0) / 4.0
    });
    let mut ws = Workspace::new();
    for _ in 0..args.warmup {
        net.forward(input.view(), &mut ws)?;
    }
    if args.stages {
        ws.time_stages();
    }
    let mut times = Vec::with_capacity(args.iters as usize);
    let mut stage_times: Vec<(String, Vec<f64>)> = Vec::new();
    for _ in 0..args.iters {
        let start = Instant::now();
        let logits = net.forward(input.view(), &mut ws)?;
        let end = Instant::now();
        times.push(end - start);
        std::hint::black_box(logits);
        if args.stages {
            let mut stages = ws.stage_times(start);
            // Whatever follows the last stage is the head.
            let staged: f64 = stages.iter().map(|(_, ms)| ms).sum();
            stages.push(("head".to_string(), (end - start).as_secs_f64() * 1e3 - staged));
            for (i, (name, ms)) in stages.into_iter().enumerate() {
                if stage_times.len() <= i {
                    stage_times.push((name, Vec::new()));
                }
                stage_times[i].1.push(ms);
            }
        }
    }
    let stage_medians: Vec<(String, f64)> = stage_times
        .into_iter()
        .map(|(name, mut v)| {
            v.sort_by(f64::total_cmp);
            (name, v[v.len() / 2])
        })
        .collect();
    let (median, min, p90) = stats(&mut times);
    let threads = rayon::current_num_threads();
    let images_per_s = batch as f64 / (median / 1e3);
    if args.json {
        let mut out = json!({
            "model": variant.name, "weights": source, "batch": batch, "threads": threads, "size": [h, w],
            "iters": args.iters, "median_ms": median, "min_ms": min, "p90_ms": p90,
            "ms_per_image": median / batch as f64, "images_per_s": images_per_s,
            "isa": lcnet_zoo::lcnet_core::isa().name(),
        });
        if let Some(p) = preprocess_ms {
            out["preprocess_ms_per_image"] = json!(p);
        }
        if args.stages {
            out["stage_median_ms"] =
                stage_medians.iter().map(|(n, ms)| (n.clone(), json!(ms))).collect::<serde_json::Map<_, _>>().into();
        }
        if let Some(kib) = peak_rss_kib() {
            out["peak_rss_kib"] = json!(kib);
        }
        outln!("{out}");
    } else {
        outln!(
            "{} ({source}), batch {batch}, {h}x{w}, {threads} thread(s), ISA {}: median {median:.3} ms, min {min:.3} ms, p90 {p90:.3} ms per batch; {:.3} ms/image, {images_per_s:.1} images/s",
            variant.name,
            lcnet_zoo::lcnet_core::isa().name(),
            median / batch as f64
        );
        if let Some(p) = preprocess_ms {
            outln!("preprocessing (decode + resize + crop + normalise): {p:.3} ms/image");
        }
        for (name, ms) in &stage_medians {
            outln!("  {name:<8} {ms:>8.3} ms");
        }
    }
    Ok(())
}

/// Peak resident memory of this process (Linux `VmHWM`), in KiB.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
