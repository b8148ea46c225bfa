//! Build info for `lcnet --version` and `lcnet list`: package version, git
//! revision, the compiled-in variant features and the target's SIMD
//! features, written to `$OUT_DIR/build_info.rs`. Fails the build with a clear
//! message when no variant feature is enabled.

use std::env;
use std::fs;
use std::path::Path;
use std::process::Command;

const VARIANTS: [&str; 10] =
    ["x0_25", "x0_35", "x0_5", "x0_75", "x1_0", "x1_5", "x2_0", "x2_5", "textline_x0_25", "textline_x1_0"];

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=LCNET_GIT_REV");
    for head in [".git/HEAD", ".git/refs/heads"] {
        if Path::new(head).exists() {
            println!("cargo::rerun-if-changed={head}");
        }
    }

    let enabled: Vec<&str> = VARIANTS
        .iter()
        .copied()
        .filter(|v| env::var_os(format!("CARGO_FEATURE_{}", v.to_uppercase())).is_some())
        .collect();
    if enabled.is_empty() {
        eprintln!(
            "error: lcnet needs at least one model variant feature.\n  \
             Enable one or more of {} (or `all-variants`), e.g.\n  \
             cargo build --no-default-features --features x1_0",
            VARIANTS.join(", ")
        );
        std::process::exit(1);
    }

    let git_rev = env::var("LCNET_GIT_REV").ok().or_else(git_rev).unwrap_or_else(|| "unknown".into());
    let target = env::var("TARGET").unwrap_or_default();
    let simd: Vec<String> = env::var("CARGO_CFG_TARGET_FEATURE")
        .unwrap_or_default()
        .split(',')
        .filter(|f| f.starts_with("sse") || f.starts_with("avx") || f.starts_with("fma") || *f == "neon")
        .map(str::to_string)
        .collect();

    let out = Path::new(&env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("build_info.rs");
    let code = format!(
        "/// Package version.\npub const VERSION: &str = {:?};\n\
         /// Git revision the binary was built from.\npub const GIT_REV: &str = {:?};\n\
         /// Target triple.\npub const TARGET: &str = {:?};\n\
         /// Variant features compiled in.\npub const VARIANT_FEATURES: &[&str] = &{:?};\n\
         /// SIMD features the compiler may assume everywhere (runtime dispatch may use more).\npub const BASELINE_SIMD: &[&str] = &{:?};\n",
        env::var("CARGO_PKG_VERSION").unwrap_or_default(),
        git_rev,
        target,
        enabled,
        simd,
    );
    // Only rewrite on change, so the binary is not relinked for nothing.
    if fs::read_to_string(&out).ok().as_deref() != Some(code.as_str()) {
        fs::write(&out, code).expect("write build_info.rs");
    }
}

fn git_rev() -> Option<String> {
    let out = Command::new("git").args(["rev-parse", "--short=12", "HEAD"]).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}
