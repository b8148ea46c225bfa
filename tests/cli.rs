//! The `lcnet` binary as a user runs it: `list`, `infer`, and one-line errors
//! with a non-zero exit for every kind of bad input.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use common::{lcnet, read_all, temp_dir};
use lcnet_core::weights::save_f32;
use lcnet_core::Checkpoint;

const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/lcnet-zoo/tests/golden");
const CASE: &str = "x0_25_c2_80x160";

fn golden(suffix: &str) -> String {
    format!("{GOLDEN}/{CASE}.{suffix}.safetensors")
}

fn write_all(path: &Path, tensors: &[(String, Vec<usize>, Vec<f32>)]) {
    common::write_all(path, tensors, &[]);
}

/// Fails unless the command failed with exit code 1 and one line on stderr
/// containing every `needle`.
fn assert_fails_with(out: &Output, needles: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "exit code; stderr: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one-line error expected, got: {stderr}");
    assert!(stderr.starts_with("lcnet: error: "), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    for needle in needles {
        assert!(stderr.contains(needle), "stderr lacks {needle:?}: {stderr}");
    }
}

#[test]
fn list_json_has_paddleclas_params_and_macs() {
    let out = lcnet(&["list", "--json"]);
    assert!(out.status.success());
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // Exact counts of the PaddleClas 2.6.0 model (paddle 3.3.1) at 224x224,
    // 1000 classes: tools/ref/params_macs.py -> params_macs.md.
    let paddle = [
        ("pplcnet_x0_25", 1_521_184u64, 16_773_440u64),
        ("pplcnet_x0_35", 1_643_090, 27_357_832),
        ("pplcnet_x0_5", 1_879_576, 44_731_008),
        ("pplcnet_x0_75", 2_357_008, 94_786_496),
        ("pplcnet_x1_0", 2_952_520, 155_700_480),
        ("pplcnet_x1_5", 4_499_832, 334_188_416),
        ("pplcnet_x2_0", 6_521_512, 580_194_816),
        ("pplcnet_x2_5", 9_017_560, 893_719_680),
        // The text-line table at 80x160, 2 classes: PaddleClas
        // PPLCNet(scale=0.25, stride_list=[2, [2, 1] x 4]) (examples/custom-net/data),
        // and the real PP-LCNet_x1_0_textline_ori export's weights and convs
        // (tools/textline_reference.py count).
        ("pplcnet_textline_x0_25", 242_746, 23_214_080),
        ("pplcnet_textline_x1_0", 1_674_082, 292_979_200),
    ];
    let rows: Vec<&serde_json::Value> =
        rows.as_array().unwrap().iter().filter(|r| r["kind"] == "architecture").collect();
    assert_eq!(rows.len(), paddle.len(), "the CLI builds every width by default");
    for (row, (name, params, macs)) in rows.iter().zip(paddle) {
        assert_eq!(row["name"], name);
        let (p, m) = (row["params"].as_u64().unwrap(), row["macs"].as_u64().unwrap());
        assert!((p as f64 - params as f64).abs() <= 0.005 * params as f64, "{name}: params {p} vs {params}");
        assert!((m as f64 - macs as f64).abs() <= 0.005 * macs as f64, "{name}: MACs {m} vs {macs}");
    }
}

#[test]
fn list_prints_a_table() {
    let out = lcnet(&["list"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("pplcnet_x1_0") && text.contains("155,700,480"), "{text}");
}

#[test]
fn widths_print_as_the_table_writes_them() {
    let json = String::from_utf8(lcnet(&["list", "--json"]).stdout).unwrap();
    let widths: Vec<&str> =
        json.lines().filter_map(|l| l.trim().trim_end_matches(',').strip_prefix("\"width\": ")).collect();
    assert_eq!(widths, ["0.25", "0.35", "0.5", "0.75", "1.0", "1.5", "2.0", "2.5", "0.25", "1.0"]);
    let text = String::from_utf8(lcnet(&["list"]).stdout).unwrap();
    assert!(text.contains(" 0.35x "), "{text}");
    let info = String::from_utf8(lcnet(&["info", "--json", "pplcnet_x0_35"]).stdout).unwrap();
    assert!(info.lines().any(|l| l.trim().trim_end_matches(',') == "\"width\": 0.35"), "{info}");
}

#[test]
fn infer_matches_paddleclas_and_infers_the_width() {
    let dir = temp_dir("infer");
    let out_path = dir.join("logits.safetensors");
    let out_arg = out_path.to_str().unwrap();
    let tensor = format!("{}:input", golden("io"));
    let out = lcnet(&["infer", "--weights", &golden("weights"), "--tensor", &tensor, "--out", out_arg]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let mut ours = Checkpoint::open(&out_path).unwrap();
    assert_eq!(ours.metadata().get("model").map(String::as_str), Some("pplcnet_x0_25"));
    let (shape, logits) = ours.take_any("logits").unwrap();
    let mut reference = Checkpoint::open(golden("io")).unwrap();
    let (ref_shape, want) = reference.take_any("logits").unwrap();
    assert_eq!(shape, ref_shape);
    let max_ref = want.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    for (a, b) in logits.iter().zip(&want) {
        assert!((a - b).abs() <= 1e-3 * max_ref, "{a} vs PaddleClas {b}");
    }

    // Never overwrite without being asked.
    let again = lcnet(&["infer", "--weights", &golden("weights"), "--tensor", &tensor, "--out", out_arg]);
    assert_fails_with(&again, &["exists", "--force"]);
    let forced = lcnet(&["infer", "-m", "x0_25", "-w", &golden("weights"), "-t", &tensor, "-o", out_arg, "--force"]);
    assert!(forced.status.success(), "{}", String::from_utf8_lossy(&forced.stderr));
}

#[test]
fn bad_checkpoints_give_one_line_errors() {
    let dir = temp_dir("bad-weights");
    let out = dir.join("out.safetensors");
    let out = out.to_str().unwrap();
    let io = golden("io");
    let weights = read_all(golden("weights"));

    let run = |w: &Path, extra: &[&str]| {
        let mut args = vec!["infer", "--weights", w.to_str().unwrap(), "--tensor", &io, "--out", out];
        args.extend_from_slice(extra);
        lcnet(&args)
    };

    // The wrong width asked for: the first mismatching tensor is named.
    let good = PathBuf::from(golden("weights"));
    assert_fails_with(
        &run(&good, &["--model", "pplcnet_x1_0"]),
        &["conv1.conv.weight", "[8, 3, 3, 3]", "[16, 3, 3, 3]"],
    );
    assert_fails_with(&run(&good, &["--model", "pplcnet_x9"]), &["unknown model `pplcnet_x9`", "pplcnet_x1_0"]);

    let missing = dir.join("missing.safetensors");
    write_all(
        &missing,
        &weights.iter().filter(|(n, ..)| n != "blocks4.1.pw_conv.bn._variance").cloned().collect::<Vec<_>>(),
    );
    assert_fails_with(
        &run(&missing, &["--model", "x0_25"]),
        &["missing tensor `blocks4.1.pw_conv.bn._variance`", "[32]"],
    );

    let mut extra_keys = weights.clone();
    extra_keys.push(("aux_head.weight".into(), vec![2], vec![0.0, 1.0]));
    let extra = dir.join("extra.safetensors");
    write_all(&extra, &extra_keys);
    assert_fails_with(&run(&extra, &[]), &["unexpected tensor(s)", "aux_head.weight"]);

    let mut reshaped = weights.clone();
    let fc = reshaped.iter_mut().find(|(n, ..)| n == "fc.weight").unwrap();
    fc.1 = vec![fc.1[1], fc.1[0]]; // PyTorch's [out, in] instead of Paddle's [in, out]
    let transposed = dir.join("transposed.safetensors");
    write_all(&transposed, &reshaped);
    assert_fails_with(&run(&transposed, &["--model", "x0_25"]), &["fc.weight", "[2, 1280]", "[1280, classes]"]);

    let bytes = std::fs::read(golden("weights")).unwrap();
    let truncated = dir.join("truncated.safetensors");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    assert_fails_with(&run(&truncated, &[]), &["truncated.safetensors", "truncated"]);

    assert_fails_with(&run(&dir.join("nope.safetensors"), &[]), &["nope.safetensors", "No such file"]);

    // Integers: refused by dtype, not misread.
    let i16s = dir.join("i16.safetensors");
    {
        use safetensors::tensor::{Dtype, TensorView};
        let data = vec![0u8; 2 * 8 * 27];
        let view = TensorView::new(Dtype::I16, vec![8, 3, 3, 3], &data).unwrap();
        std::fs::write(&i16s, safetensors::serialize([("conv1.conv.weight", view)], &None).unwrap()).unwrap();
    }
    assert_fails_with(
        &run(&i16s, &["--model", "x0_25"]),
        &["conv1.conv.weight", "dtype I16, expected F32, F16 or BF16"],
    );
    assert!(!Path::new(out).exists(), "no output is written when the run fails");
}

/// Hugging Face's PaddleX checkpoints store fp16: f16 and bf16 tensors are
/// widened exactly, so weights that are exact in half precision give the same
/// logits from an f16/bf16 file as from an f32 one.
#[test]
fn half_precision_checkpoints_are_widened_exactly() {
    use safetensors::tensor::{Dtype, TensorView};
    let dir = temp_dir("half");
    // Weights rounded to what bf16 holds (8 significant bits, so f16 holds them too
    // at these magnitudes), stored once as f32 and once in each half type.
    let tensors: Vec<(String, Vec<usize>, Vec<f32>)> = read_all(golden("weights"))
        .into_iter()
        .map(|(n, s, d)| {
            (
                n,
                s,
                d.iter()
                    .map(|v| f32::from_bits(v.to_bits() & 0xffff_0000))
                    .map(|v| if v.abs() < 1e-4 { 0.0 } else { v })
                    .collect(),
            )
        })
        .collect();
    let f32_file = dir.join("f32.safetensors");
    write_all(&f32_file, &tensors);
    let logits = |weights: &Path| {
        let out = dir.join("logits.safetensors");
        let run = lcnet(&[
            "infer",
            "-w",
            weights.to_str().unwrap(),
            "-t",
            &golden("io"),
            "-o",
            out.to_str().unwrap(),
            "--force",
        ]);
        assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
        Checkpoint::open(&out).unwrap().take_any("logits").unwrap().1
    };
    let reference = logits(&f32_file);
    for (dtype, name) in [(Dtype::F16, "f16"), (Dtype::BF16, "bf16")] {
        let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
            .iter()
            .map(|(n, s, d)| {
                let half: Vec<u8> = match dtype {
                    Dtype::F16 => d.iter().flat_map(|&v| half::f16::from_f32(v).to_le_bytes()).collect(),
                    _ => d.iter().flat_map(|&v| half::bf16::from_f32(v).to_le_bytes()).collect(),
                };
                (n.clone(), s.clone(), half)
            })
            .collect();
        let views: Vec<(&str, TensorView)> =
            bytes.iter().map(|(n, s, b)| (n.as_str(), TensorView::new(dtype, s.clone(), b).unwrap())).collect();
        let file = dir.join(format!("{name}.safetensors"));
        std::fs::write(&file, safetensors::serialize(views, &None).unwrap()).unwrap();
        let got = logits(&file);
        assert_eq!(got.len(), reference.len());
        assert!(
            got.iter().zip(&reference).all(|(a, b)| a.to_bits() == b.to_bits()),
            "{name}: {got:?} vs {reference:?}"
        );
    }
}

#[test]
fn bad_tensors_give_one_line_errors() {
    let dir = temp_dir("bad-tensors");
    let out = dir.join("out.safetensors");
    let out = out.to_str().unwrap();
    let weights = golden("weights");
    let run = |tensor: &str| lcnet(&["infer", "--weights", &weights, "--tensor", tensor, "--out", out]);

    let file = dir.join("inputs.safetensors");
    let four_channels = vec![0.5f32; 4 * 8 * 8];
    let three_d = vec![0.5f32; 3 * 8 * 8];
    let empty: Vec<f32> = vec![];
    let nan = vec![f32::NAN; 3 * 4 * 4];
    save_f32(
        &file,
        &[
            ("rgba", vec![1, 4, 8, 8], &four_channels),
            ("chw", vec![3, 8, 8], &three_d),
            ("zero_height", vec![1, 3, 0, 8], &empty),
            ("nan", vec![1, 3, 4, 4], &nan),
        ],
        &BTreeMap::new(),
    )
    .unwrap();
    let f = file.to_str().unwrap();
    assert_fails_with(&run(&format!("{f}:rgba")), &["shape [1, 4, 8, 8]", "[N, 3, H, W]"]);
    assert_fails_with(&run(&format!("{f}:chw")), &["`chw` has shape [3, 8, 8]", "NCHW"]);
    assert_fails_with(&run(&format!("{f}:zero_height")), &["[1, 3, 0, 8]", "H, W >= 1"]);
    assert_fails_with(&run(&format!("{f}:nan")), &["non-finite", "NaN"]);
    assert_fails_with(&run(&format!("{f}:image")), &["missing tensor `image`", "chw, nan, rgba, zero_height"]);
    assert_fails_with(&run(f), &["missing tensor `input`"]);
    assert!(!Path::new(out).exists(), "no output is written when the run fails");
}

#[test]
fn odd_and_tiny_inputs_run() {
    let dir = temp_dir("tiny");
    let file = dir.join("in.safetensors");
    let one_pixel = vec![0.25f32; 2 * 3];
    save_f32(&file, &[("input", vec![2, 3, 1, 1], &one_pixel)], &BTreeMap::new()).unwrap();
    let out = dir.join("out.safetensors");
    let run = lcnet(&["infer", "-w", &golden("weights"), "-t", file.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let (shape, logits) = Checkpoint::open(&out).unwrap().take_any("logits").unwrap();
    assert_eq!(shape, vec![2, 2]);
    assert_eq!(logits[0..2], logits[2..4], "identical images give identical logits");
}

#[test]
fn no_arguments_print_usage_with_exit_code_2() {
    let out = lcnet(&[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Usage"));
}

/// The best tier this CPU offers, found here without lcnet's own detection.
fn best_tier_of_this_cpu() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        let avx512 = ["avx512f", "avx512bw", "avx512dq", "avx512vl"];
        let has = |f: &str| std::fs::read_to_string("/proc/cpuinfo").unwrap().split_whitespace().any(|w| w == f);
        if avx512.iter().all(|f| has(f)) {
            if !has("avx512_vnni") {
                return "avx512";
            }
            // lcnet also asks Linux for the tiles' state, which it grants
            // wherever /proc/cpuinfo lists them.
            return if has("amx_tile") && has("amx_int8") { "avx512amx" } else { "avx512vnni" };
        }
        if has("avx2") && has("fma") {
            return if has("avx_vnni") { "avx2vnni" } else { "avx2" };
        }
    }
    #[cfg(target_arch = "aarch64")]
    return "neon";
    #[allow(unreachable_code)]
    "scalar"
}

#[test]
fn version_names_the_kernels_in_use_and_lcnet_isa_lowers_them() {
    let kernels = |isa: Option<&str>| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_lcnet"));
        cmd.arg("--version").env_remove("LCNET_ISA");
        if let Some(isa) = isa {
            cmd.env("LCNET_ISA", isa);
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success());
        let text = String::from_utf8(out.stdout).unwrap();
        text.lines().find(|l| l.starts_with("kernels: ")).unwrap_or_else(|| panic!("{text}")).to_string()
    };
    let best = best_tier_of_this_cpu();
    let line = kernels(None);
    assert!(line.starts_with(&format!("kernels: {best} (this CPU: scalar")), "{line}");
    assert!(line.contains(&format!(" {best};")), "{line}");
    assert!(kernels(Some("scalar")).starts_with("kernels: scalar "));
    // A tier this target does not have leaves the best one.
    let foreign = if cfg!(target_arch = "aarch64") { "avx2" } else { "neon" };
    assert!(kernels(Some(foreign)).starts_with(&format!("kernels: {best} ")));
}
