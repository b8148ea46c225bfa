//! `lcnet list`: the compiled-in architectures and the presets built on them.

use super::output::outln;
use lcnet_zoo::presets::{self, Preset};
use serde_json::json;

use super::format::group;

/// Arguments of `lcnet list`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print one JSON array (for scripts) instead of tables: one object per
    /// architecture (`"kind": "architecture"`), then per ready-to-run preset
    /// (`"kind": "preset"`).
    #[arg(long)]
    json: bool,
}

/// Prints the tables or JSON.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let variants = lcnet_zoo::variants();
    // The task presets (an architecture's own preset has its name).
    let ready: Vec<Preset> = presets::all().into_iter().filter(|p| p.name != p.model).collect();
    if args.json {
        let mut rows: Vec<_> = variants
            .iter()
            .map(|v| {
                json!({
                    "kind": "architecture",
                    "name": v.name,
                    "feature": v.feature,
                    "width": v.width,
                    "input": v.input,
                    "classes": v.classes,
                    "params": v.params,
                    "macs": v.macs,
                })
            })
            .collect();
        for p in &ready {
            let (params, macs) = counts(p);
            rows.push(json!({
                "kind": "preset",
                "name": p.name,
                "model": p.model,
                "classes": p.labels.len(),
                "labels": p.labels,
                "params": params,
                "macs": macs,
                "embedded": p.weights.is_some(),
                "description": p.description,
            }));
        }
        outln!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    outln!("{:<24} {:>6} {:>12} {:>14}  AT", "ARCHITECTURE", "WIDTH", "PARAMS", "MACS");
    for v in variants {
        let width = format!("{:?}x", v.width);
        let at = format!("{}x{}, {} classes", v.input[1], v.input[2], v.classes);
        outln!("{:<24} {:>6} {:>12} {:>14}  {at}", v.name, width, group(v.params), group(v.macs));
    }
    if !ready.is_empty() {
        outln!("\n{:<20} {:<24} {:>7}  WHAT", "PRESET", "ARCHITECTURE", "CLASSES");
        for p in &ready {
            let weights = if p.weights.is_some() { "embedded" } else { "needs --weights" };
            outln!("{:<20} {:<24} {:>7}  {} ({weights})", p.name, p.model, p.labels.len(), p.description);
        }
    }
    outln!(
        "\n`lcnet run IMAGE` uses doc_ori, `lcnet run --model textline_ori LINES` the text-line model; \
         the others need --weights (see `lcnet info NAME`)."
    );
    Ok(())
}

/// (params, MACs) of a preset at its own class count.
pub fn counts(p: &Preset) -> (u64, u64) {
    lcnet_zoo::find(p.model).map(|v| v.counts_with_classes(p.labels.len())).unwrap_or_default()
}
