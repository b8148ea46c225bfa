//! What the CLI's integration tests share: running the binary (killed after
//! 60 s, so a hang fails instead of stalling CI), its output, scratch folders
//! and checkpoints rewritten from the test data.

#![allow(dead_code)] // each test file uses its own part

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use lcnet_core::Checkpoint;

#[cfg(all(unix, feature = "serve"))]
pub mod server;

/// The repository root; commands run there.
pub const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Runs `lcnet args` in the repository root; fails the test after 60 s.
pub fn lcnet(args: &[&str]) -> Output {
    lcnet_to(args, Stdio::piped())
}

/// [`lcnet`] with its standard output sent to `stdout`.
pub fn lcnet_to(args: &[&str], stdout: Stdio) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_lcnet"))
        .args(args)
        .current_dir(ROOT)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::piped())
        .spawn()
        .expect("run lcnet");
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(60) {
            child.kill().unwrap();
            panic!("lcnet {args:?} still running after 60 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A fresh scratch folder for one test.
pub fn temp_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lcnet-test-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Every tensor of the safetensors file `path` (relative to the root).
pub fn read_all(path: impl AsRef<Path>) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let mut ck = Checkpoint::open(Path::new(ROOT).join(path)).unwrap();
    let names: Vec<String> = ck.names().into_iter().map(str::to_string).collect();
    names
        .into_iter()
        .map(|n| {
            let (shape, data) = ck.take_any(&n).unwrap();
            (n, shape, data)
        })
        .collect()
}

/// Writes `tensors` with `metadata` to `path`.
pub fn write_all(path: &Path, tensors: &[(String, Vec<usize>, Vec<f32>)], metadata: &[(&str, &str)]) {
    let views: Vec<(&str, Vec<usize>, &[f32])> =
        tensors.iter().map(|(n, s, d)| (n.as_str(), s.clone(), d.as_slice())).collect();
    let meta: BTreeMap<String, String> = metadata.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    lcnet_core::weights::save_f32(path, &views, &meta).unwrap();
}

/// Largest |softmax(logits) - probs| over rows of `classes`; a NaN anywhere fails.
pub fn softmax_error(logits: &[f32], probs: &[f32], classes: usize) -> f32 {
    assert_eq!(logits.len(), probs.len());
    let mut worst = 0.0f32;
    for (l, p) in logits.chunks(classes).zip(probs.chunks(classes)) {
        let max = l.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let e: Vec<f32> = l.iter().map(|v| (v - max).exp()).collect();
        let sum: f32 = e.iter().sum();
        for (a, b) in e.iter().zip(p) {
            let d = (a / sum - b).abs();
            assert!(d.is_finite(), "non-finite: logits {l:?}, reference {p:?}");
            worst = worst.max(d);
        }
    }
    worst
}
