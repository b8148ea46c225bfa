//! Parity with the real PaddleClas PPLCNet.
//!
//! Each case is `<case>.weights.safetensors` (PaddleClas state dict) and
//! `<case>.io.safetensors` (input, logits, stage outputs) written by
//! `tools/ref/gen_fixtures.py`, which runs the unmodified PaddleClas
//! `pp_lcnet.py` (see `tests/golden/README.md`). Cases come from:
//! - `tests/golden/` (carried by the repo, always run);
//! - `../shared/fixtures/paddle/` beside the repo (skipped with a printed
//!   reason when absent);
//! - the folder named by `LCNET_EXTRA_FIXTURES`, if set.
//!
//! Pass criterion (issue #2): max |ours - paddle| <= 1e-3 * max(1, max |paddle|)
//! for the logits and every stage output.

use std::path::{Path, PathBuf};

use lcnet_zoo::lcnet_core::ndarray::ArrayView4;
use lcnet_zoo::lcnet_core::{Checkpoint, Workspace};

const REL_TOL: f32 = 1e-3;

fn case_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok()?.file_name().to_str()?.strip_suffix(".weights.safetensors").map(str::to_string))
        .collect();
    names.sort();
    names
}

fn max_abs(xs: &[f32]) -> f32 {
    xs.iter().fold(0.0, |m, v| m.max(v.abs()))
}

/// Checks one case; returns `Some(reason)` when it had to be skipped.
fn check_case(dir: &Path, case: &str) -> Option<String> {
    let mut ck = Checkpoint::open(dir.join(format!("{case}.weights.safetensors"))).unwrap();
    // The case name starts with the PaddleClas width: x0_25_c1000_224 -> x0_25.
    let feature: String = case.split('_').take(2).collect::<Vec<_>>().join("_");
    if lcnet_zoo::find(&feature).is_err() {
        return Some(format!("{case}: variant {feature} is not compiled in (enable the `{feature}` feature)"));
    }
    let net = lcnet_zoo::load(&mut ck, None).unwrap_or_else(|e| panic!("{case}: {e}"));
    assert_eq!(net.variant().feature, feature, "{case}: width inferred from the checkpoint shapes");

    let mut io = Checkpoint::open(dir.join(format!("{case}.io.safetensors"))).unwrap();
    let (shape, input) = io.take_any("input").unwrap();
    let input = ArrayView4::from_shape((shape[0], shape[1], shape[2], shape[3]), &input).unwrap();
    let (logit_shape, want) = io.take_any("logits").unwrap();

    let mut ws = Workspace::new();
    ws.record_stages();
    let logits = net.forward(input, &mut ws).unwrap();
    assert_eq!(logits.shape(), logit_shape.as_slice(), "{case}: logits shape");
    assert_eq!(net.classes(), logit_shape[1], "{case}: classes from the fc shape");
    let got = logits.as_slice().unwrap();
    let tol = REL_TOL * max_abs(&want).max(1.0);
    let err = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
    assert!(err <= tol, "{case}: logits differ from PaddleClas by {err} (tolerance {tol})");
    println!("{case}: {} max|d logits| = {err:.2e} (tolerance {tol:.1e})", net.variant().name);

    // Stage outputs localise a mismatch; the fixtures hold the first image's.
    for (stage, ours) in ws.take_recorded() {
        let Ok((ref_shape, reference)) = io.take_any(&format!("stage.{stage}")) else {
            continue;
        };
        let n = ref_shape[0];
        let ours = ours.slice_axis(lcnet_zoo::lcnet_core::ndarray::Axis(0), (0..n).into());
        assert_eq!(ours.shape(), ref_shape.as_slice(), "{case}: stage {stage} shape");
        let ours = ours.as_standard_layout();
        let tol = REL_TOL * max_abs(&reference).max(1.0);
        let err = ours.iter().zip(&reference).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(err <= tol, "{case}: stage {stage} differs from PaddleClas by {err} (tolerance {tol})");
    }

    // Without stage recording, a batch runs image by image (in parallel
    // groups): the same numbers, and after one warm-up pass the workspace
    // stops growing (no allocation per forward but the logits).
    let second = net.forward(input, &mut ws).unwrap();
    assert_eq!(second, logits, "{case}: image-by-image pass differs from the whole-batch pass");
    let before = ws.capacity();
    let third = net.forward(input, &mut ws).unwrap();
    assert_eq!(ws.capacity(), before, "{case}: the workspace grew after warm-up");
    assert_eq!(third, logits, "{case}: a third pass differs");
    None
}

fn check_dir(dir: &Path) -> (usize, Vec<String>) {
    let cases = case_names(dir);
    assert!(!cases.is_empty(), "{}: no *.weights.safetensors cases", dir.display());
    let skipped: Vec<String> = cases.iter().filter_map(|c| check_case(dir, c)).collect();
    (cases.len() - skipped.len(), skipped)
}

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn repo_cases_match_paddleclas() {
    let (ran, skipped) = check_dir(&manifest_dir().join("tests/golden"));
    for s in &skipped {
        println!("skipped {s}");
    }
    assert!(ran > 0 || !skipped.is_empty());
}

#[test]
fn shared_cases_match_paddleclas() {
    let dir = manifest_dir().join("../../shared/fixtures/paddle");
    if !dir.is_dir() {
        println!("skipped: {} does not exist (the shared PaddleClas fixtures live beside the repo)", dir.display());
        return;
    }
    let (ran, skipped) = check_dir(&dir);
    for s in &skipped {
        println!("skipped {s}");
    }
    println!("{ran} shared case(s) matched PaddleClas");
}

#[test]
fn extra_cases_match_paddleclas() {
    let Some(dir) = std::env::var_os("LCNET_EXTRA_FIXTURES") else {
        println!("skipped: set LCNET_EXTRA_FIXTURES to a folder of gen_fixtures.py cases to run more");
        return;
    };
    let (ran, skipped) = check_dir(Path::new(&dir));
    for s in &skipped {
        println!("skipped {s}");
    }
    println!("{ran} extra case(s) matched PaddleClas");
}
