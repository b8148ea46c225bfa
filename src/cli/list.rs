//! `lcnet list`: the compiled-in variants.

use lcnet_zoo::lcnet_core::VariantInfo;
use serde_json::json;

/// Arguments of `lcnet list`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print one JSON array (for scripts) instead of a table.
    #[arg(long)]
    json: bool,
}

/// Prints the table or JSON.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let variants = lcnet_zoo::variants();
    if args.json {
        let rows: Vec<_> = variants.iter().map(to_json).collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    println!("{:<16} {:>6} {:>12} {:>14}  AT", "MODEL", "WIDTH", "PARAMS", "MACS");
    for v in variants {
        println!(
            "{:<16} {:>6} {:>12} {:>14}  {}x{}, {} classes",
            v.name,
            format!("{}x", v.width),
            group(v.params),
            group(v.macs),
            v.input[1],
            v.input[2],
            v.classes
        );
    }
    Ok(())
}

fn to_json(v: &VariantInfo) -> serde_json::Value {
    json!({
        "name": v.name,
        "feature": v.feature,
        "width": v.width,
        "input": v.input,
        "classes": v.classes,
        "params": v.params,
        "macs": v.macs,
    })
}

/// `2952520` -> `2,952,520`.
fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
