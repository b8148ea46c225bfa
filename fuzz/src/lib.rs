//! The fuzzed entry points, one per loader. Each takes untrusted bytes and
//! must return (with an error or a result), never panic, abort or hang;
//! `fuzz_targets/*.rs` hand them to libFuzzer, `tests/replay.rs` runs every
//! file of `corpus/` and `regressions/` through them in CI.

use std::path::Path;

use lcnet_zoo::lcnet_core::ndarray::Array4;
use lcnet_zoo::lcnet_core::{Checkpoint, Workspace};
use lcnet_zoo::presets::Preprocess;

// The network table's parser and checks, as the proc-macro runs them
// (a proc-macro crate exports no functions, so its modules are compiled in).
#[allow(dead_code, missing_docs)]
#[path = "../../lcnet-macros/src/arith.rs"]
mod arith;
#[allow(dead_code, missing_docs)]
#[path = "../../lcnet-macros/src/config.rs"]
mod config;
#[allow(dead_code, missing_docs)]
#[path = "../../lcnet-macros/src/plan.rs"]
mod plan;
#[allow(dead_code, missing_docs)]
#[path = "../../lcnet-macros/src/validate.rs"]
mod validate;

/// A canonical safetensors checkpoint: parse, load as whatever variant its
/// shapes or metadata say, read its labels and preprocessing, run an 8x8 input.
pub fn checkpoint(data: &[u8]) {
    let Ok(mut ck) = Checkpoint::from_vec("fuzz.safetensors", data.to_vec()) else { return };
    let Ok(classifier) = lcnet_zoo::Classifier::from_checkpoint(&mut ck, None) else { return };
    let input = Array4::<f32>::from_elem((1, 3, 8, 8), 0.5);
    let _ = classifier.network().forward(input.view(), &mut Workspace::new());
}

/// A paddle2onnx export: decode, fold, match, convert.
pub fn onnx(data: &[u8]) {
    let _ = lcnet_zoo::onnx::import_bytes(Path::new("fuzz.onnx"), data);
}

/// A `.pdparams` pickle: the interpreter, then the state-dict reader.
pub fn pickle(data: &[u8]) {
    let _ = lcnet_zoo::__private::pickle::load(data);
    let _ = lcnet_zoo::__private::pdparams::read(data);
}

/// A network table: parse, check, and plan every width it lists.
pub fn table(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(raw) = config::parse(text) else { return };
    let Ok(net) = validate::check(&raw) else { return };
    for &w in &net.widths {
        let _ = plan::plan(&net, w);
    }
}

/// An image file: the library's bounded decode (1 Mpixel here, to keep each run fast),
/// then both preprocessings (short side + centre crop, and stretch).
pub fn image(data: &[u8]) {
    let path = std::env::temp_dir().join(format!("lcnet-fuzz-image-{}", std::process::id()));
    if std::fs::write(&path, data).is_err() {
        return;
    }
    let limits = lcnet_zoo::ImageLimits { max_pixels: 1_000_000, ..Default::default() };
    let decoding = lcnet_zoo::Decoding { limits, apply_exif: true };
    let Ok(decoded) = lcnet_zoo::decode_rgb(&path, &decoding) else { return };
    for preprocess in [Preprocess::paddlex_classification(), Preprocess::paddlex_textline()] {
        let (h, w) = preprocess.input_hw();
        let mut out = vec![0.0; 3 * h * w];
        if preprocess.apply(&decoded, &mut out).is_ok() {
            assert!(out.iter().all(|v| v.is_finite()), "preprocessing wrote a non-finite value");
        }
    }
}
