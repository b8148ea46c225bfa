//! Command-line parsing (clap) and dispatch to one module per subcommand.

mod bench;
mod digest;
mod format;
mod images;
mod import;
mod infer;
mod info;
mod list;
mod output;
mod quantize;
mod run;
#[cfg(feature = "serve")]
mod serve;
mod tensor_arg;
mod upright;
mod verify;

use clap::{Parser, Subcommand};

use crate::build_info;

/// The long version: what is compiled in, for bug reports.
fn long_version() -> &'static str {
    let isa = lcnet_zoo::lcnet_core::isa();
    let tiers: Vec<_> = lcnet_zoo::lcnet_core::Isa::all_supported().iter().map(|t| t.name()).collect();
    let text = format!(
        "{} (git {})\ntarget: {}\nvariants: {}\nbaseline SIMD: {}\nkernels: {} (this CPU: {}; LCNET_ISA lowers it)",
        build_info::VERSION,
        build_info::GIT_REV,
        build_info::TARGET,
        build_info::VARIANT_FEATURES.join(" "),
        build_info::BASELINE_SIMD.join(" "),
        isa.name(),
        tiers.join(" "),
    );
    Box::leak(text.into_boxed_str())
}

/// PP-LCNet, the fast CPU image classifier from PaddleClas, in Rust.
///
/// Every width (x0.25 .. x2.5) is generated at compile time from the paper's
/// layer table and loads PP-LCNet checkpoints as PaddleClas, timm and Hugging
/// Face transformers publish them (safetensors, `.pdparams`, ONNX via import).
#[derive(Debug, Parser)]
#[command(name = "lcnet", version = build_info::VERSION, long_version = long_version())]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Classify images (default: the embedded document-orientation model).
    Run(run::Args),
    /// List the compiled-in architectures and presets with parameters and MACs.
    List(list::Args),
    /// Show a model's layer table, labels, preprocessing and provenance.
    Info(info::Args),
    /// Run a raw NCHW f32 tensor through a model and write its logits.
    Infer(infer::Args),
    /// Time the forward pass (median/min/p90 ms, images/s) on this machine.
    Bench(bench::Args),
    /// Convert a checkpoint (paddle2onnx ONNX, .pdparams, timm or transformers safetensors) into a canonical one.
    Import(import::Args),
    /// Quantise a checkpoint to int8 with calibration images (post-training, static).
    Quantize(quantize::Args),
    /// Run a checkpoint on an input and compare with reference outputs (prove a conversion).
    Verify(verify::Args),
    /// Serve a model over HTTP with PaddleX's serving protocol, batching concurrent requests.
    #[cfg(feature = "serve")]
    Serve(serve::Args),
}

/// Parses the command line and runs the subcommand; returns the exit code.
pub fn run() -> anyhow::Result<u8> {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // --help and --version print to stdout (exit 0), usage errors to stderr (exit 2);
        // a failed write of either is an error, not a silent success.
        Err(e) => {
            e.print().map_err(output::write_error)?;
            output::flush()?;
            return Ok(e.exit_code() as u8);
        }
    };
    let code = match cli.command {
        Command::Run(args) => run::run(&args).map(|failed| if failed > 0 { run::EXIT_SOME_FAILED } else { 0 }),
        Command::List(args) => list::run(&args).map(|()| 0),
        Command::Info(args) => info::run(&args).map(|()| 0),
        Command::Infer(args) => infer::run(&args).map(|()| 0),
        Command::Import(args) => import::run(&args).map(|()| 0),
        Command::Bench(args) => bench::run(&args).map(|()| 0),
        Command::Quantize(args) => quantize::run(&args).map(|()| 0),
        Command::Verify(args) => verify::run(&args),
        #[cfg(feature = "serve")]
        Command::Serve(args) => serve::run(&args).map(|()| 0),
    }?;
    output::flush()?;
    Ok(code)
}

/// The model `lcnet run` and `lcnet bench` use: the checkpoint `weights`
/// (with the preset or architecture `model`, if named), else the preset
/// `model` with its embedded weights, `doc_ori` by default.
pub fn open_classifier(
    model: Option<&str>,
    weights: Option<&std::path::Path>,
) -> lcnet_zoo::Result<lcnet_zoo::Classifier> {
    match weights {
        Some(path) => lcnet_zoo::Classifier::from_weights(path, model),
        None => lcnet_zoo::Classifier::preset(model.unwrap_or("doc_ori")),
    }
}

/// Sizes rayon's global pool (`--threads`); `None` keeps one thread per core.
pub fn set_threads(threads: Option<usize>) -> anyhow::Result<()> {
    if let Some(n) = threads {
        rayon::ThreadPoolBuilder::new().num_threads(n).build_global()?;
    }
    Ok(())
}

/// `--threads N`: 1 to 4 threads per core (more only oversubscribes; 100000
/// failed after 18 s creating threads), checked as a usage error.
pub fn parse_threads(text: &str) -> Result<usize, String> {
    let n: usize = text.parse().map_err(|_| format!("`{text}` is not a whole number"))?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if n == 0 || n > 4 * cores {
        return Err(format!("must be 1 to {} (4 per core on this machine's {cores})", 4 * cores));
    }
    Ok(n)
}
