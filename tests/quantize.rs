//! `lcnet quantize` end to end on the real doc_ori weights: the int8 file
//! runs through `lcnet run`, agrees with f32 on the example pages (whose
//! file names give the true rotation), records its provenance, and bad
//! int8 files are refused by name. The held-out accuracy run is
//! `bench/int8_accuracy.py` (docs/int8.md).

mod common;

use std::collections::HashMap;
use std::path::Path;

use common::{lcnet, stderr, stdout, temp_dir};
use lcnet_core::Checkpoint;

/// `lcnet run --json --top 4` as file -> (label, probability of each class).
fn run(args: &[&str]) -> HashMap<String, (String, HashMap<String, f64>)> {
    let out = lcnet(&[&["run", "--json", "--top", "4"], args].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
        .lines()
        .map(|line| {
            let row: serde_json::Value = serde_json::from_str(line).unwrap();
            let top = row["top"].as_array().unwrap();
            let probs =
                top.iter().map(|t| (t["label"].as_str().unwrap().to_string(), t["prob"].as_f64().unwrap())).collect();
            (row["file"].as_str().unwrap().to_string(), (top[0]["label"].as_str().unwrap().to_string(), probs))
        })
        .collect()
}

fn quantize(dir: &Path) -> String {
    quantize_with(dir, &[])
}

/// `lcnet quantize` of doc_ori on the example pages with `options`.
fn quantize_with(dir: &Path, options: &[&str]) -> String {
    let int8 = dir.join("doc_ori.int8.safetensors").to_string_lossy().into_owned();
    let out = lcnet(&[&["quantize", "--model", "doc_ori", "--calib", "examples/pages", "-o", &int8], options].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("calibrated on 4 images"), "{}", stdout(&out));
    int8
}

/// The least and greatest weight of every `qweight` tensor of `kind`
/// (`dw_conv`, `pw_conv`) in an int8 file.
fn weight_extremes(int8: &str, kind: &str) -> Vec<(String, i8, i8)> {
    let mut ck = Checkpoint::open(int8).unwrap();
    let names: Vec<String> =
        ck.names().into_iter().filter(|n| n.ends_with(&format!("{kind}.qweight"))).map(str::to_string).collect();
    assert!(!names.is_empty(), "no {kind} weights in {int8}");
    names
        .into_iter()
        .map(|name| {
            let shape = ck.shape(&name).unwrap().to_vec();
            let w = ck.take_i8(&name, &shape).unwrap();
            let (lo, hi) = (*w.iter().min().unwrap(), *w.iter().max().unwrap());
            (name, lo, hi)
        })
        .collect()
}

#[test]
fn reduce_range_keeps_pointwise_weights_in_7_bits_and_the_pages_right() {
    let dir = temp_dir("quantize-reduce-range");
    let int8 = quantize_with(&dir, &["--reduce-range"]);
    // Pointwise weights within -64..=64, each layer reaching an end (the
    // scale is the layer's own); depthwise ones keep 8 bits.
    for (name, lo, hi) in weight_extremes(&int8, "pw_conv") {
        assert!(lo >= -64 && hi <= 64 && (lo == -64 || hi == 64), "{name}: weights in {lo}..={hi}");
    }
    for (name, lo, hi) in weight_extremes(&int8, "dw_conv") {
        assert!(lo == -127 || hi == 127, "{name}: weights in {lo}..={hi}");
    }
    let ck = Checkpoint::open(&int8).unwrap();
    assert!(ck.metadata()["quantization"].contains("-64..=64 (reduce_range)"), "{:?}", ck.metadata());
    // The pages read as f32 reads them.
    let f32 = run(&["examples/pages"]);
    for (file, (label, probs)) in &run(&["--weights", &int8, "examples/pages"]) {
        assert_eq!(label, &f32[file].0, "{file}");
        for (class, p) in probs {
            let want = f32[file].1[class];
            assert!((p - want).abs() < 0.05, "{file} class {class}: int8 {p}, f32 {want}");
        }
    }
}

#[test]
fn int8_doc_ori_reads_the_pages_as_f32_does() {
    let dir = temp_dir("quantize-agree");
    let int8 = quantize(&dir);
    let f32 = run(&["examples/pages"]);
    let q8 = run(&["--weights", &int8, "examples/pages"]);
    assert_eq!(q8.len(), 4);
    for (file, (label, probs)) in &q8 {
        let angle = file.rsplit('_').next().unwrap().trim_end_matches(".png");
        assert_eq!(label, angle, "{file}");
        for (class, p) in probs {
            let want = f32[file].1[class];
            assert!((p - want).abs() < 0.05, "{file} class {class}: int8 {p}, f32 {want}");
        }
    }
    // A batch split over the threads reads each page as it reads it alone.
    let alone = run(&["--weights", &int8, "--batch", "1", "examples/pages"]);
    for (file, (label, probs)) in &alone {
        assert_eq!(label, &q8[file].0, "{file}");
        for (class, p) in probs {
            assert!(
                (p - q8[file].1[class]).abs() < 1e-5,
                "{file} class {class}: alone {p}, in a batch {}",
                q8[file].1[class]
            );
        }
    }
    // Integer tensors (8 bits by default: each layer's weights reach an
    // end of -127..=127), provenance, and smaller than the f32 file.
    for (name, lo, hi) in weight_extremes(&int8, "pw_conv") {
        assert!(lo == -127 || hi == 127, "{name}: weights in {lo}..={hi}");
    }
    let ck = Checkpoint::open(&int8).unwrap();
    assert_eq!(ck.metadata()["format"], "lcnet-int8");
    assert_eq!(ck.metadata()["model"], "pplcnet_x1_0");
    assert!(ck.metadata()["calibration"].starts_with("4 images"));
    assert!(ck.metadata()["quantized_from"].contains("doc_ori"));
    let f32_size =
        std::fs::metadata(Path::new(common::ROOT).join("lcnet-zoo/models/doc_ori.safetensors")).unwrap().len();
    assert!(std::fs::metadata(&int8).unwrap().len() < f32_size);
    // An existing output is kept unless --force.
    let again = lcnet(&["quantize", "--model", "doc_ori", "--calib", "examples/pages", "-o", &int8]);
    assert!(!again.status.success() && stderr(&again).contains("doc_ori.int8.safetensors"), "{}", stderr(&again));
}

#[test]
fn bad_int8_files_and_calibration_folders_are_refused_by_name() {
    let dir = temp_dir("quantize-bad");
    let int8 = quantize(&dir);
    // A weight of -128 (outside -127..=127) in the first pointwise layer.
    let mut bytes = std::fs::read(&int8).unwrap();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + header_len]).unwrap();
    let name = "blocks2.0.pw_conv.qweight";
    let start = header[name]["data_offsets"][0].as_u64().unwrap() as usize;
    bytes[8 + header_len + start + 5] = 0x80;
    let bad = dir.join("bad.safetensors");
    std::fs::write(&bad, &bytes).unwrap();
    let out = lcnet(&["run", "--weights", bad.to_str().unwrap(), "examples/pages/page_0.png"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains(name) && stderr(&out).contains("-128"), "{}", stderr(&out));

    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let out =
        lcnet(&["quantize", "--calib", empty.to_str().unwrap(), "-o", dir.join("x.safetensors").to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no images"), "{}", stderr(&out));
}
