//! `lcnet infer`: raw tensor in, logits out. The scriptable entry point that
//! parity checks use.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context;
use lcnet_zoo::lcnet_core::files::{check_output, Overwrite};
use lcnet_zoo::lcnet_core::ndarray::ArrayView4;
use lcnet_zoo::lcnet_core::weights::save_f32_as;
use lcnet_zoo::lcnet_core::Workspace;

/// Arguments of `lcnet infer`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example:\n  lcnet infer --weights pplcnet_x1_0.safetensors --tensor batch.safetensors:input --out logits.safetensors"
)]
pub struct Args {
    #[command(flatten)]
    run: super::tensor_arg::ModelInput,
    /// Output safetensors file; receives `logits` `[N, classes]` f32 (before softmax).
    #[arg(long, short)]
    out: PathBuf,
    /// Also write every stage output (`stage.conv1`, `stage.blocks2`, ...) NCHW.
    #[arg(long)]
    stages: bool,
    /// Overwrite OUT if it exists.
    #[arg(long)]
    force: bool,
}

/// Loads, runs, writes.
pub fn run(args: &Args) -> anyhow::Result<()> {
    super::set_threads(args.run.threads)?;
    let overwrite = if args.force { Overwrite::RegularFile } else { Overwrite::Never };
    check_output(&args.out, overwrite)?;
    let input = super::tensor_arg::read(&args.run.tensor, "input")?;
    let (n, c, h, w) = input.nchw()?;
    let (input_label, input) = (input.label(), ArrayView4::from_shape((n, c, h, w), &input.values)?);

    let mut ck = lcnet_zoo::formats::open(&args.run.weights)?;
    let net = lcnet_zoo::load(&mut ck, args.run.model.as_deref())?;
    let mut ws = Workspace::new();
    if args.stages {
        ws.record_stages();
    }
    let logits = net.forward(input, &mut ws).with_context(|| input_label.clone())?;
    lcnet_zoo::check_logits(net.as_ref(), input, &logits).with_context(|| args.run.weights.display().to_string())?;

    let logits_shape = logits.shape().to_vec();
    let logits = logits.as_standard_layout();
    let recorded = ws.take_recorded();
    let names: Vec<String> = recorded.iter().map(|(stage, _)| format!("stage.{stage}")).collect();
    let mut tensors: Vec<(&str, Vec<usize>, &[f32])> =
        vec![("logits", logits_shape, logits.as_slice().expect("standard layout"))];
    for ((_, array), name) in recorded.iter().zip(&names) {
        tensors.push((name, array.shape().to_vec(), array.as_slice().expect("fresh array is contiguous")));
    }
    let metadata = BTreeMap::from([
        ("model".to_string(), net.variant().name.to_string()),
        ("classes".to_string(), net.classes().to_string()),
        ("weights".to_string(), args.run.weights.display().to_string()),
    ]);
    save_f32_as(&args.out, &tensors, &metadata, overwrite)?;
    Ok(())
}
