//! Every seed, corpus file and past crash of each fuzz target, through the
//! same entry point libFuzzer calls: a regression fails `cargo test` (CI runs
//! this; fuzzing itself needs `cargo fuzz`, see README.md).

use std::path::{Path, PathBuf};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// The seed files (the project's own test data) of each target.
fn seeds(target: &str) -> Vec<&'static str> {
    match target {
        "checkpoint" => vec![
            "lcnet-zoo/tests/heads/x0_25_c3_64x64_nolastconv.weights.safetensors",
            "lcnet-zoo/tests/golden/x0_25_c2_80x160.weights.safetensors",
            "lcnet-zoo/models/textline_ori.safetensors",
        ],
        "onnx" => vec!["tests/data/not_pplcnet.onnx", "lcnet-zoo/tests/golden/x0_25_c2_80x160.onnx"],
        "pickle" => vec!["lcnet-zoo/tests/formats/x0_25_c10.pdparams", "lcnet-zoo/tests/formats/x0_25_c10.protocol2.pdparams"],
        "table" => vec![
            "lcnet-zoo/configs/pp_lcnet.toml",
            "lcnet-zoo/configs/pp_lcnet_textline.toml",
            "examples/custom-net/net.toml",
        ],
        "image" => vec!["tests/data/textlines/line00_0.png", "tests/data/textlines/line03_0.jpg", "tests/data/page_exif6.jpg"],
        _ => unreachable!(),
    }
}

/// Seeds, then `corpus/<target>/*` and `regressions/<target>/*`.
fn inputs(target: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = seeds(target).into_iter().map(|s| Path::new(ROOT).join(s)).collect();
    for dir in ["corpus", "regressions"] {
        if let Ok(entries) = std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(dir).join(target)) {
            let mut more: Vec<PathBuf> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
            more.sort();
            files.extend(more);
        }
    }
    files
}

fn replay(target: &str, run: fn(&[u8])) {
    let files = inputs(target);
    for file in &files {
        let bytes = std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        run(&bytes);
        // Truncations of every seed too: the cheapest hostile inputs.
        for len in [0, 1, 7, 8, 64, bytes.len() / 2] {
            run(&bytes[..len.min(bytes.len())]);
        }
    }
    println!("{target}: {} inputs replayed", files.len());
}

#[test]
fn checkpoint() {
    replay("checkpoint", lcnet_fuzz::checkpoint);
}

#[test]
fn onnx() {
    replay("onnx", lcnet_fuzz::onnx);
}

#[test]
fn pickle() {
    replay("pickle", lcnet_fuzz::pickle);
}

#[test]
fn table() {
    replay("table", lcnet_fuzz::table);
}

#[test]
fn image() {
    replay("image", lcnet_fuzz::image);
}
