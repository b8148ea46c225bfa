//! The library front door (`lcnet_zoo::Classifier`) as a Rust user calls it,
//! against ONNX Runtime's answers on the real text-line export and the
//! known rotations of the example pages.

use std::path::{Path, PathBuf};

use lcnet_zoo::{Classifier, Error, ImageProblem};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// `tests/data/textlines.ort.jsonl`: ORT 1.32 on the real PaddleX export
/// with PaddleX's preprocessing (`tools/textline_reference.py ort`).
fn ort_reference() -> Vec<(String, Vec<f32>)> {
    std::fs::read_to_string(Path::new(ROOT).join("tests/data/textlines.ort.jsonl"))
        .unwrap()
        .lines()
        .map(|line| {
            let row: serde_json::Value = serde_json::from_str(line).unwrap();
            let probs = row["probs"].as_array().unwrap().iter().map(|p| p.as_f64().unwrap() as f32).collect();
            (row["file"].as_str().unwrap().to_string(), probs)
        })
        .collect()
}

#[test]
fn classify_batch_gives_onnx_runtimes_probabilities_in_order() {
    let reference = ort_reference();
    assert_eq!(reference.len(), 32);
    let dir = Path::new(ROOT).join("tests/data/textlines");
    let files: Vec<PathBuf> = reference.iter().map(|(name, _)| dir.join(name)).collect();
    // A batch size that splits the files unevenly: 32 = 3 x 10 + 2.
    let classifier = Classifier::preset("textline_ori").unwrap().with_batch_size(10);
    let results = classifier.classify_batch(&files).unwrap();
    assert_eq!(results.len(), files.len());
    for ((name, ort), result) in reference.iter().zip(results) {
        let prediction = result.unwrap();
        let expected = if name.contains("_180.") { "180_degree" } else { "0_degree" };
        assert_eq!(prediction.label, expected, "{name}");
        assert_eq!(prediction.probs.len(), 2);
        for (ours, theirs) in prediction.probs.iter().zip(ort) {
            // The bound of tests/textline.rs: decoding and resizing are
            // lcnet's own, not OpenCV's fixed-point resize.
            assert!((ours - theirs).abs() <= 2e-3, "{name}: {:?} vs ORT {ort:?}", prediction.probs);
        }
    }
}

#[test]
fn one_bad_file_fails_alone_and_is_named() {
    let pages = Path::new(ROOT).join("examples/pages");
    let inputs = [
        pages.join("page_90.png"),
        Path::new(ROOT).join("Cargo.toml"),
        pages.join("no_such_page.png"),
        pages.join("page_270.png"),
    ];
    let classifier = Classifier::preset("doc_ori").unwrap();
    let results = classifier.classify_batch(&inputs).unwrap();
    assert_eq!(results[0].as_ref().unwrap().label, "90");
    assert_eq!(results[3].as_ref().unwrap().label, "270");
    match &results[1] {
        Err(Error::Image { image, problem: ImageProblem::UnknownFormat }) => assert!(image.ends_with("Cargo.toml")),
        other => panic!("{other:?}"),
    }
    match &results[2] {
        Err(Error::Image { image, problem: ImageProblem::Io(_) }) => assert!(image.ends_with("no_such_page.png")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn path_image_and_raw_pixels_agree_on_every_page() {
    let classifier = Classifier::preset("doc_ori").unwrap();
    for angle in ["0", "90", "180", "270"] {
        let path = Path::new(ROOT).join(format!("examples/pages/page_{angle}.png"));
        let from_path = classifier.classify_path(&path).unwrap();
        assert_eq!(from_path.label, angle);
        assert!(from_path.prob > 0.8, "{angle}: {}", from_path.prob);
        let image = lcnet_zoo::image::open(&path).unwrap();
        let from_image = classifier.classify_image(&image).unwrap();
        let rgb = image.to_rgb8();
        let from_rgb = classifier.classify_rgb8(rgb.as_raw(), rgb.width() as usize, rgb.height() as usize).unwrap();
        assert_eq!(from_image.probs, from_path.probs, "{angle}");
        assert_eq!(from_rgb.probs, from_path.probs, "{angle}");
        let top = from_path.top(4);
        assert_eq!(top[0].label, angle);
        assert!(top.windows(2).all(|w| w[0].prob >= w[1].prob), "{top:?}");
    }
}

#[test]
fn bad_pixels_and_names_are_typed_errors() {
    let classifier = Classifier::preset("doc_ori").unwrap();
    match classifier.classify_rgb8(&[0; 10], 2, 2) {
        Err(Error::Image { problem: ImageProblem::RgbLength { len: 10, width: 2, height: 2 }, .. }) => {}
        other => panic!("{other:?}"),
    }
    match classifier.classify_rgb8(&[], 0, 5) {
        Err(Error::Image { problem: ImageProblem::Empty { .. }, .. }) => {}
        other => panic!("{other:?}"),
    }
    // A 1 x 65535 strip: resizing its short side to 256 would make
    // 256 x 16,776,960 pixels, past what an OpenCV Mat indexes (2^31 - 1).
    match classifier.classify_rgb8(&vec![128; 3 * 65_535], 1, 65_535) {
        Err(Error::Image { problem: ImageProblem::AspectRatio { width: 1, height: 65_535, resized, .. }, .. }) => {
            assert_eq!(resized, (256, 16_776_960));
        }
        other => panic!("{other:?}"),
    }
    match Classifier::preset("no_such_model") {
        Err(Error::UnknownModel { name, known }) => {
            assert_eq!(name, "no_such_model");
            assert!(known.iter().any(|k| k == "doc_ori"), "{known:?}");
        }
        other => panic!("{other:?}"),
    }
    match Classifier::preset("pplcnet_x1_0") {
        Err(Error::NoEmbeddedWeights { preset }) => assert_eq!(preset, "pplcnet_x1_0"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn one_classifier_serves_many_threads() {
    let classifier = Classifier::preset("doc_ori").unwrap();
    let page = Path::new(ROOT).join("examples/pages/page_180.png");
    let expected = classifier.classify_path(&page).unwrap().probs;
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..3 {
                    assert_eq!(classifier.classify_path(&page).unwrap().probs, expected);
                }
            });
        }
    });
}
