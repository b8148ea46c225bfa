//! `lcnet verify`: run a checkpoint on an input and compare with outputs the
//! original framework computed, so a user can prove a conversion.

use super::output::outln;
use anyhow::bail;
use lcnet_zoo::lcnet_core::ndarray::ArrayView4;
use lcnet_zoo::lcnet_core::Workspace;
use serde_json::json;

use super::tensor_arg::{self, NamedTensor};

/// Exit code when the outputs differ beyond the tolerance.
pub const EXIT_MISMATCH: u8 = 4;

/// Arguments of `lcnet verify`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Passes when every element satisfies |lcnet - expected| <= atol + rtol * |expected| (numpy's allclose).
Exit codes: 0 pass, 4 outputs differ, 1 an input could not be read.

Examples:
  lcnet verify --weights PPLCNet_x1_0_pretrained.pdparams --tensor io.safetensors:input --expect io.safetensors:logits
  lcnet verify --weights lcnet_050.safetensors --tensor x.safetensors --expect probs.safetensors:probs --json")]
pub struct Args {
    #[command(flatten)]
    run: super::tensor_arg::ModelInput,
    /// Reference outputs, `FILE.safetensors[:NAME]`: `[N, classes]` logits or probabilities;
    /// NAME defaults to `logits`.
    #[arg(long, short)]
    expect: String,
    /// What the reference holds: `logits`, `probs` (softmax), or `auto` (probabilities when
    /// every row is non-negative and sums to 1).
    #[arg(long, default_value = "auto", value_parser = ["auto", "logits", "probs"])]
    outputs: String,
    /// Relative tolerance.
    #[arg(long, default_value_t = 1e-3)]
    rtol: f64,
    /// Absolute tolerance.
    #[arg(long, default_value_t = 1e-4)]
    atol: f64,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// The largest difference found.
#[derive(Debug, Clone, Copy)]
struct Worst {
    /// Row (image) and column (class).
    at: (usize, usize),
    got: f32,
    expected: f32,
    /// How far over the allowed difference it is (`|d| / (atol + rtol |e|)`).
    ratio: f64,
}

/// Runs and compares; returns the exit code.
pub fn run(args: &Args) -> anyhow::Result<u8> {
    super::set_threads(args.run.threads)?;
    if !(args.rtol >= 0.0 && args.atol >= 0.0) {
        bail!("--rtol and --atol must be >= 0 (got {} and {})", args.rtol, args.atol);
    }
    let input = tensor_arg::read(&args.run.tensor, "input")?;
    let expected = tensor_arg::read(&args.expect, "logits")?;
    let (n, c, h, w) = input.nchw()?;
    let mut ck = lcnet_zoo::formats::open(&args.run.weights)?;
    let source = describe_source(ck.metadata());
    let net = lcnet_zoo::load(&mut ck, args.run.model.as_deref())?;
    let view = ArrayView4::from_shape((n, c, h, w), &input.values)?;
    let mut logits = net.forward(view, &mut Workspace::new())?;
    lcnet_zoo::check_logits(net.as_ref(), view, &logits)?;
    if expected.shape != logits.shape() {
        bail!(
            "{}: tensor `{}` has shape {:?}, but {} gives [{n}, {}] for this input",
            expected.file.display(),
            expected.name,
            expected.shape,
            net.variant().name,
            net.classes()
        );
    }
    let probs = match args.outputs.as_str() {
        "probs" => true,
        "logits" => false,
        _ => looks_like_probabilities(&expected),
    };
    if probs {
        lcnet_zoo::softmax_rows(&mut logits);
    }
    let got = logits.as_standard_layout();
    let got = got.as_slice().expect("standard layout");
    let classes = net.classes();
    let (mut max_abs, mut max_rel) = (0.0f64, 0.0f64);
    let mut worst: Option<Worst> = None;
    for (i, (&g, &e)) in got.iter().zip(&expected.values).enumerate() {
        let d = (g as f64 - e as f64).abs();
        let d = if d.is_nan() { f64::INFINITY } else { d };
        max_abs = max_abs.max(d);
        max_rel = max_rel.max(d / (e.abs() as f64).max(f64::MIN_POSITIVE));
        let ratio = d / (args.atol + args.rtol * e.abs() as f64).max(f64::MIN_POSITIVE);
        if worst.is_none_or(|w| ratio > w.ratio) {
            worst = Some(Worst { at: (i / classes, i % classes), got: g, expected: e, ratio });
        }
    }
    let pass = worst.is_none_or(|w| w.ratio <= 1.0);
    let what = if probs { "probabilities" } else { "logits" };
    if args.json {
        let worst_json = worst.map(|w| {
            json!({"index": [w.at.0, w.at.1], "got": w.got, "expected": w.expected,
                   "allowed": args.atol + args.rtol * w.expected.abs() as f64})
        });
        let out = json!({
            "pass": pass, "model": net.variant().name, "classes": classes, "source": source,
            "compared": what, "shape": expected.shape, "max_abs_error": max_abs, "max_rel_error": max_rel,
            "rtol": args.rtol, "atol": args.atol, "worst": worst_json,
        });
        outln!("{out}");
    } else {
        print_report(args, net.variant().name, classes, &source, what, &expected, (max_abs, max_rel), worst, pass)?;
    }
    Ok(if pass { 0 } else { EXIT_MISMATCH })
}

#[allow(clippy::too_many_arguments)]
fn print_report(
    args: &Args,
    model: &str,
    classes: usize,
    source: &str,
    what: &str,
    expected: &NamedTensor,
    (max_abs, max_rel): (f64, f64),
    worst: Option<Worst>,
    pass: bool,
) -> anyhow::Result<()> {
    outln!("{}: {model}, {classes} classes ({source})", args.run.weights.display());
    outln!("compared {what} {:?} with {} (rtol {}, atol {})", expected.shape, expected.label(), args.rtol, args.atol);
    outln!("max abs error {max_abs:.3e}, max rel error {max_rel:.3e}");
    if let Some(w) = worst {
        outln!(
            "worst element [{}, {}]: lcnet {} vs expected {} (|d| {:.3e}, allowed {:.3e})",
            w.at.0,
            w.at.1,
            w.got,
            w.expected,
            (w.got as f64 - w.expected as f64).abs(),
            args.atol + args.rtol * w.expected.abs() as f64
        );
    }
    outln!("{}", if pass { "PASS" } else { "FAIL" });
    Ok(())
}

/// Every row non-negative and summing to 1 (within float error).
fn looks_like_probabilities(t: &NamedTensor) -> bool {
    let classes = t.shape.last().copied().unwrap_or(0).max(1);
    t.values.iter().all(|&v| (0.0..=1.0).contains(&v))
        && t.values.chunks(classes).all(|row| (row.iter().map(|&v| v as f64).sum::<f64>() - 1.0).abs() < 1e-3)
}

/// Where the weights came from, from a checkpoint's metadata: converted on
/// load (`formats::open`), written by `lcnet import`, or canonical as is.
fn describe_source(meta: &std::collections::BTreeMap<String, String>) -> String {
    match (meta.get("source_layout"), meta.get("source_encoding"), meta.get("converter")) {
        (Some(layout), Some(encoding), Some(_)) => {
            format!("canonical PaddleClas layout, imported from {layout} layout, {encoding}")
        }
        (Some(layout), Some(encoding), None) => format!("{layout} layout, {encoding}, converted on load"),
        _ => "canonical PaddleClas layout".to_string(),
    }
}
