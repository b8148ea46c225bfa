//! `lcnet verify` and `lcnet import` on checkpoints in every format, as a
//! user runs them (data: `tools/gen_checkpoints.py`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Output};

use lcnet_core::weights::save_f32;
use lcnet_core::Checkpoint;

const FORMATS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/lcnet-zoo/tests/formats");

fn lcnet(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lcnet")).args(args).output().expect("run lcnet")
}

fn temp_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lcnet-verify-{}-{test}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn path(name: &str) -> String {
    format!("{FORMATS}/{name}")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The reference logits of a case, and its input file.
fn reference(case: &str) -> (Vec<usize>, Vec<f32>) {
    Checkpoint::open(path(&format!("{case}.io.safetensors"))).unwrap().take_any("logits").unwrap()
}

#[test]
fn verify_passes_on_each_format_and_names_the_source() {
    for (weights, case, source) in [
        ("x0_25_c10.pdparams", "x0_25_c10", "PaddleClas layout, pdparams"),
        ("x0_35_c4.pdparams", "x0_35_c4", "PaddleClas layout, pdparams"),
        ("timm_lcnet_035_c5.safetensors", "timm_lcnet_035_c5", "timm layout, safetensors"),
        ("hf_pp_lcnet_x0_25_c3", "hf_pp_lcnet_x0_25_c3", "transformers layout, safetensors"),
    ] {
        let io = path(&format!("{case}.io.safetensors"));
        let out = lcnet(&["verify", "--weights", &path(weights), "--tensor", &io, "--expect", &io]);
        let text = stdout(&out);
        assert_eq!(out.status.code(), Some(0), "{weights}: {text}{}", String::from_utf8_lossy(&out.stderr));
        assert!(text.contains("PASS") && text.contains(source) && text.contains("compared logits"), "{text}");
    }
}

#[test]
fn verify_fails_on_a_perturbed_reference_and_names_the_worst_element() {
    let dir = temp_dir("perturbed");
    let (shape, mut logits) = reference("timm_lcnet_035_c5");
    logits[shape[1] + 2] += 0.05; // row 1, class 2
    let bad = dir.join("bad.safetensors");
    save_f32(&bad, &[("logits", shape.clone(), &logits)], &BTreeMap::new()).unwrap();
    let (weights, io) = (path("timm_lcnet_035_c5.safetensors"), path("timm_lcnet_035_c5.io.safetensors"));
    let out = lcnet(&["verify", "-w", &weights, "-t", &io, "-e", bad.to_str().unwrap()]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(4), "{text}");
    assert!(text.contains("FAIL") && text.contains("worst element [1, 2]"), "{text}");

    // --json for scripts, and a looser tolerance lets the same comparison pass.
    let out = lcnet(&["verify", "-w", &weights, "-t", &io, "-e", bad.to_str().unwrap(), "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["pass"], false);
    assert_eq!(json["worst"]["index"], serde_json::json!([1, 2]));
    assert!((json["max_abs_error"].as_f64().unwrap() - 0.05).abs() < 1e-3, "{json}");
    let out = lcnet(&["verify", "-w", &weights, "-t", &io, "-e", bad.to_str().unwrap(), "--atol", "0.06"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn verify_compares_probabilities_when_the_reference_holds_them() {
    let dir = temp_dir("probs");
    let (shape, logits) = reference("x0_25_c10");
    let probs: Vec<f32> = logits
        .chunks(shape[1])
        .flat_map(|row| {
            let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
            let e: Vec<f64> = row.iter().map(|&v| ((v - max) as f64).exp()).collect();
            let sum: f64 = e.iter().sum();
            e.into_iter().map(move |v| (v / sum) as f32)
        })
        .collect();
    let file = dir.join("probs.safetensors");
    save_f32(&file, &[("probs", shape, &probs)], &BTreeMap::new()).unwrap();
    let expect = format!("{}:probs", file.display());
    let out =
        lcnet(&["verify", "-w", &path("x0_25_c10.pdparams"), "-t", &path("x0_25_c10.io.safetensors"), "-e", &expect]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("compared probabilities"), "{text}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn verify_reports_a_reference_of_the_wrong_shape_as_an_error() {
    let io = path("x0_25_c10.io.safetensors");
    let out = lcnet(&["verify", "-w", &path("x0_25_c10.pdparams"), "-t", &io, "-e", &format!("{io}:input")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("input") && stderr.contains("[2, 10]"), "{stderr}");
}

#[test]
fn import_writes_canonical_checkpoints_that_load_without_conversion() {
    let dir = temp_dir("import");
    for (source, case, layout) in [
        ("x0_35_c4.pdparams", "x0_35_c4", "PaddleClas"),
        ("timm_lcnet_035_c5.safetensors", "timm_lcnet_035_c5", "timm"),
        ("hf_pp_lcnet_x0_25_c3", "hf_pp_lcnet_x0_25_c3", "transformers"),
    ] {
        let out_file = dir.join(format!("{case}.safetensors"));
        let out = lcnet(&["import", &path(source), "-o", out_file.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(stdout(&out).contains(&format!("{layout} layout")), "{}", stdout(&out));
        // Plain safetensors with PaddleClas names: no conversion on load.
        let mut ck = Checkpoint::open(&out_file).unwrap();
        assert_eq!(ck.metadata()["source_layout"], layout);
        assert!(ck.metadata()["source"].contains("sha256"));
        assert!(ck.names().contains(&"conv1.conv.weight"));
        let names: Vec<String> = ck.names().iter().map(|s| s.to_string()).collect();
        for name in &names {
            ck.take_any(name).unwrap();
        }
        let io = path(&format!("{case}.io.safetensors"));
        let out = lcnet(&["verify", "-w", out_file.to_str().unwrap(), "-t", &io, "-e", &io]);
        assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
        assert!(stdout(&out).contains("canonical PaddleClas layout"), "{}", stdout(&out));
        // Never overwritten without --force.
        let again = lcnet(&["import", &path(source), "-o", out_file.to_str().unwrap()]);
        assert_eq!(again.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn infer_and_run_accept_every_format() {
    let dir = temp_dir("infer");
    let out_file = dir.join("logits.safetensors");
    let io = path("hf_pp_lcnet_x0_25_c3.io.safetensors");
    let out = lcnet(&[
        "infer",
        "--weights",
        &path("hf_pp_lcnet_x0_25_c3"),
        "--tensor",
        &io,
        "--out",
        out_file.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let (_, got) = Checkpoint::open(&out_file).unwrap().take_any("logits").unwrap();
    let (_, want) = reference("hf_pp_lcnet_x0_25_c3");
    for (a, b) in got.iter().zip(&want) {
        assert!((a - b).abs() < 1e-4, "{a} vs transformers {b}");
    }
    // `run` labels come from the transformers config.json (id2label).
    let page = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/pages/page_0.png");
    let out = lcnet(&["run", "--weights", &path("hf_pp_lcnet_x0_25_c3"), "--model", "pplcnet_x0_25", page]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout(&out).contains("LABEL_"), "{}", stdout(&out));
    std::fs::remove_dir_all(&dir).unwrap();
}
