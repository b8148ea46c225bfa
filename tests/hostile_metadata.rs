//! A checkpoint's metadata is data from a file: every preprocessing field is
//! range-checked (errors name the file and the field), and labels cannot
//! forge output lines.

mod common;

use std::path::PathBuf;

use common::{lcnet, read_all, temp_dir, write_all};

const GOLDEN_WEIGHTS: &str = "lcnet-zoo/tests/golden/x0_25_c2_80x160.weights.safetensors";

/// The golden x0.25 (2 classes) weights with `metadata`, written to a new file.
fn with_metadata(name: &str, metadata: &[(&str, &str)]) -> PathBuf {
    let path = temp_dir(&format!("metadata-{name}")).join(format!("{name}.safetensors"));
    write_all(&path, &read_all(GOLDEN_WEIGHTS), metadata);
    path
}

const BASE: &str = r#""channel_order":"rgb","interpolation":"bilinear","scale":0.003921569,"mean":[0.485,0.456,0.406]"#;

#[test]
fn preprocessing_metadata_is_range_checked() {
    let cases = [
        (
            "crop",
            format!(r#"{{{BASE},"std":[0.2,0.2,0.2],"resize_short":70000,"crop":65536}}"#),
            "`resize_short` is 70000",
        ),
        (
            "resize",
            format!(r#"{{{BASE},"std":[0.2,0.2,0.2],"resize_short":100000,"crop":224}}"#),
            "`resize_short` is 100000",
        ),
        (
            "crop4e9",
            format!(r#"{{{BASE},"std":[0.2,0.2,0.2],"resize_short":256,"crop":4000000000}}"#),
            "`crop` is 4000000000",
        ),
        (
            "bigcrop",
            format!(r#"{{{BASE},"std":[0.2,0.2,0.2],"resize_short":256,"crop":300}}"#),
            "larger than `resize_short`",
        ),
        ("std0", format!(r#"{{{BASE},"std":[0.2,0.0,0.2],"resize_short":256,"crop":224}}"#), "`std` holds 0"),
        (
            "stretch",
            format!(r#"{{{BASE},"std":[0.2,0.2,0.2],"resize_width":0,"resize_height":80}}"#),
            "`resize_width` is 0",
        ),
        ("garbage", "[]".to_string(), "metadata `preprocess`: invalid type"),
    ];
    for (name, json, needle) in cases {
        let path = with_metadata(name, &[("preprocess", &json), ("model", "pplcnet_x0_25")]);
        let out = lcnet(&["run", "-w", path.to_str().unwrap(), "examples/pages/page_0.png"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: {err}");
        assert!(err.contains(&format!("{name}.safetensors")) && err.contains(needle), "{name}: {err}");
        assert!(!err.contains("panicked") && !err.contains("memory allocation"), "{name}: {err}");
    }
}

#[test]
fn labels_cannot_forge_result_lines() {
    let labels = r#"["upright\nexamples/pages/page_0.png: forged (1.000)", "\u001b[31mred"]"#;
    let path = with_metadata("labels", &[("labels", labels), ("model", "pplcnet_x0_25")]);
    let out = lcnet(&["run", "--top", "2", "-w", path.to_str().unwrap(), "examples/pages/page_0.png"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(
        text.contains(r"upright\nexamples") && text.contains(r"\u{1b}[31mred") && !text.contains('\u{1b}'),
        "{text}"
    );
}

/// The golden weights with `edit` applied, written to a new file.
fn with_weights(name: &str, edit: impl Fn(&str, &mut Vec<f32>)) -> PathBuf {
    let mut tensors = read_all(GOLDEN_WEIGHTS);
    tensors.iter_mut().for_each(|(n, _, d)| edit(n, d));
    let path = temp_dir(&format!("weights-{name}")).join(format!("{name}.safetensors"));
    write_all(&path, &tensors, &[]);
    path
}

#[test]
fn overflowing_weights_are_errors_naming_the_layer_never_printed_nans() {
    // Folding a BatchNorm with gamma 3e38 overflows f32: refused at load.
    let folded = with_weights("fold", |n, d| {
        if n == "blocks3.0.dw_conv.bn.weight" {
            d.fill(3e38)
        }
    });
    let tensor = "lcnet-zoo/tests/golden/x0_25_c2_80x160.io.safetensors:input";
    let out_file = temp_dir("weights-out").join("logits.safetensors");
    let out = lcnet(&["infer", "-w", folded.to_str().unwrap(), "-t", tensor, "-o", out_file.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("fold.safetensors") && err.contains("`blocks3.0.dw_conv` overflows f32"), "{err}");

    // Finite weights whose activations overflow: the stage is named, nothing printed.
    let huge = with_weights("huge", |n, d| {
        if n == "conv1.conv.weight" || n == "blocks2.0.pw_conv.conv.weight" {
            d.iter_mut().for_each(|v| *v *= 1e25)
        }
    });
    for args in [
        vec!["infer", "-w", huge.to_str().unwrap(), "-t", tensor, "-o", out_file.to_str().unwrap()],
        vec!["run", "-w", huge.to_str().unwrap(), "-m", "pplcnet_x0_25", "examples/pages/page_0.png"],
    ] {
        let out = lcnet(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains("non-finite logits") && err.contains("first overflow in blocks2"), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}: printed {}", String::from_utf8_lossy(&out.stdout));
    }
    assert!(!out_file.exists(), "no logits file written");
}
