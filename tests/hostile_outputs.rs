//! Where `lcnet` writes: standard output errors are an error line and exit
//! 1 (never a panic or a silent 0), and `--out` replaces only a regular file,
//! only with `--force`, never a device, link or folder.

#![cfg(unix)]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::{lcnet, lcnet_to, stderr, temp_dir, ROOT};
const WEIGHTS: &str = "lcnet-zoo/tests/golden/x0_25_c2_80x160.weights.safetensors";
const TENSOR: &str = "lcnet-zoo/tests/golden/x0_25_c2_80x160.io.safetensors:input";

#[test]
fn a_full_stdout_is_an_error_everywhere() {
    if !Path::new("/dev/full").exists() {
        eprintln!("skipped: no /dev/full");
        return;
    }
    let cases: [&[&str]; 7] = [
        &["list"],
        &["list", "--json"],
        &["info", "doc_ori"],
        &["--version"],
        &["--help"],
        &["run", "examples/pages/page_0.png"],
        &["verify", "-w", WEIGHTS, "-t", TENSOR, "-e", "lcnet-zoo/tests/golden/x0_25_c2_80x160.io.safetensors:logits"],
    ];
    for args in cases {
        let full = std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
        let out = lcnet_to(args, Stdio::from(full));
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains("cannot write to standard output") && !err.contains("panicked"), "{args:?}: {err}");
    }
}

#[test]
fn out_replaces_only_a_regular_file_and_only_with_force() {
    let dir = temp_dir("out");
    let infer = |out: &Path, force: bool| {
        let mut args = vec!["infer", "-w", WEIGHTS, "-t", TENSOR, "-o", out.to_str().unwrap()];
        if force {
            args.push("--force");
        }
        lcnet(&args)
    };
    let no_tmp_left = || {
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().filter_map(|e| e.ok()).map(|e| e.file_name()).collect();
        assert!(left.iter().all(|n| !n.to_string_lossy().ends_with(".tmp")), "{left:?}");
    };

    // A device, even with --force: /dev/null stays a device.
    let out = infer(Path::new("/dev/null"), true);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("/dev/null: is a device; not replaced"), "{}", stderr(&out));
    assert!(!std::fs::metadata("/dev/null").unwrap().is_file());

    // A symbolic link (here to a regular file), even with --force.
    let target = dir.join("target.txt");
    std::fs::write(&target, "keep me").unwrap();
    let link = dir.join("link.safetensors");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let out = infer(&link, true);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("symbolic link"), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me");
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());

    // A folder.
    let out = infer(&dir, true);
    assert!(stderr(&out).contains("is a folder"), "{}", stderr(&out));

    // A new name, then the same name: --force replaces the regular file.
    let new = dir.join("logits.safetensors");
    assert!(infer(&new, false).status.success());
    let again = infer(&new, false);
    assert_eq!(again.status.code(), Some(1));
    assert!(stderr(&again).contains("exists; pass --force"), "{}", stderr(&again));
    assert!(infer(&new, true).status.success());
    no_tmp_left();

    // Two writers racing for one new name: never both.
    let raced = dir.join("raced.safetensors");
    let spawn = || {
        Command::new(env!("CARGO_BIN_EXE_lcnet"))
            .args(["infer", "-w", WEIGHTS, "-t", TENSOR, "-o", raced.to_str().unwrap()])
            .current_dir(ROOT)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let (mut a, mut b) = (spawn(), spawn());
    let (a, b) = (a.wait().unwrap(), b.wait().unwrap());
    assert_eq!([a.success(), b.success()].iter().filter(|ok| **ok).count(), 1, "{a:?} {b:?}");
    no_tmp_left();
}
