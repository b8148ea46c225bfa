//! `lcnet info NAME`: the layer table of an architecture and what a preset
//! adds (labels, preprocessing, provenance).

use super::output::outln;
use lcnet_zoo::lcnet_core::{LayerInfo, LayerKind};
use serde_json::json;

use super::format::group;

/// Arguments of `lcnet info`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A preset (`doc_ori`) or architecture (`pplcnet_x1_0`, `x1_0`).
    name: String,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    json: bool,
}

/// Prints the description.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let preset = lcnet_zoo::presets::find(&args.name)?;
    let variant = lcnet_zoo::find(preset.model)?;
    let classes = preset.labels.len();
    let (params, macs) = variant.counts_with_classes(classes);
    let layers: Vec<LayerInfo> = variant
        .layers
        .iter()
        .map(|l| match l.kind {
            LayerKind::Fc => LayerInfo {
                out_channels: classes,
                params: (l.in_channels as u64 + 1) * classes as u64,
                macs: (l.in_channels * classes) as u64,
                ..*l
            },
            _ => *l,
        })
        .collect();
    if args.json {
        let rows: Vec<_> = layers
            .iter()
            .map(|l| {
                json!({"layer": l.name, "kind": l.kind.as_str(), "kernel": l.kernel, "stride": l.stride,
                       "in": l.in_channels, "out": l.out_channels, "mid": l.mid_channels, "out_hw": l.out_hw,
                       "params": l.params, "macs": l.macs})
            })
            .collect();
        let out = json!({
            "name": preset.name, "model": variant.name, "width": variant.width, "description": preset.description,
            "input": variant.input, "classes": classes, "params": params, "macs": macs,
            "embedded_weights": preset.weights.is_some(), "source": preset.source,
            "labels": preset.labels, "preprocess": serde_json::from_str::<serde_json::Value>(&preset.preprocess.to_json())?,
            "layers": rows,
        });
        outln!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    outln!("{}: {}", preset.name, preset.description);
    outln!(
        "architecture: {} (width {:?}), {} params, {} MACs at {}x{}",
        variant.name,
        variant.width,
        group(params),
        group(macs),
        variant.input[1],
        variant.input[2]
    );
    outln!(
        "weights:      {}",
        if preset.weights.is_some() { "embedded in this binary" } else { "not embedded: pass --weights FILE" }
    );
    outln!("source:       {}", preset.source);
    let shown: Vec<&str> = preset.labels.iter().take(8).copied().collect();
    let more = if classes > shown.len() { format!(", ... ({classes} in all)") } else { String::new() };
    outln!("labels:       {}{more}", shown.join(" | "));
    outln!("preprocess:   {}", preset.preprocess.describe());
    outln!();
    outln!(
        "{:<20} {:<9} {:>6} {:>6} {:>12} {:>9} {:>10} {:>12}",
        "LAYER",
        "KIND",
        "KERNEL",
        "STRIDE",
        "IN -> OUT",
        "OUT HxW",
        "PARAMS",
        "MACS"
    );
    for l in &layers {
        let channels = if l.mid_channels > 0 {
            format!("{}>{}>{}", l.in_channels, l.mid_channels, l.out_channels)
        } else {
            format!("{} -> {}", l.in_channels, l.out_channels)
        };
        outln!(
            "{:<20} {:<9} {:>6} {:>6} {:>12} {:>9} {:>10} {:>12}",
            l.name,
            l.kind.as_str(),
            format!("{0}x{0}", l.kernel),
            format!("{},{}", l.stride[0], l.stride[1]),
            channels,
            format!("{}x{}", l.out_hw[0], l.out_hw[1]),
            group(l.params),
            group(l.macs)
        );
    }
    outln!(
        "{:<20} {:<9} {:>6} {:>6} {:>12} {:>9} {:>10} {:>12}",
        "total",
        "",
        "",
        "",
        "",
        "",
        group(params),
        group(macs)
    );
    Ok(())
}
