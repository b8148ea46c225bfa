//! Checkpoints as their own libraries write them load directly and give
//! the logits those libraries compute (data: `tools/gen_checkpoints.py`):
//! PaddlePaddle's `paddle.save` `.pdparams` (PaddleClas PPLCNet), timm's
//! `lcnet_035` state dict, transformers' `save_pretrained` folder.

use std::path::{Path, PathBuf};

use lcnet_zoo::formats::{self, Encoding, Layout};
use lcnet_zoo::lcnet_core::ndarray::ArrayView4;
use lcnet_zoo::lcnet_core::{Checkpoint, Workspace};

/// Largest |a - b|; infinite if either side holds a NaN (`f32::max` skips NaN).
fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, |m, d| if d.is_nan() { f32::INFINITY } else { m.max(d) })
}

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/formats").join(name)
}

/// Runs `checkpoint` on `<case>.io.safetensors`'s input and compares with its
/// logits (the foundation's tolerance: 1e-3 of the largest logit, at least 1e-3).
fn check(checkpoint: &str, case: &str, model: &str) -> f32 {
    let mut ck = formats::open(&data(checkpoint)).unwrap();
    let net = lcnet_zoo::load(&mut ck, None).unwrap();
    assert_eq!(net.variant().name, model, "width inferred from the shapes");
    let worst = compare(net.as_ref(), case, 1e-3);
    eprintln!("{checkpoint}: max |d logits| {worst:.2e}");
    worst
}

/// Runs `net` on `<case>.io.safetensors`'s input; fails unless every logit
/// is within `rel_tol` of the largest reference logit (at least 1).
fn compare(net: &dyn lcnet_zoo::lcnet_core::Network, case: &str, rel_tol: f32) -> f32 {
    let mut io = Checkpoint::open(data(&format!("{case}.io.safetensors"))).unwrap();
    let (shape, input) = io.take_any("input").unwrap();
    let (want_shape, want) = io.take_any("logits").unwrap();
    let input = ArrayView4::from_shape((shape[0], shape[1], shape[2], shape[3]), &input).unwrap();
    let got = net.forward(input, &mut Workspace::new()).unwrap();
    assert_eq!(got.shape(), want_shape.as_slice());
    let scale = want.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    let worst = max_abs_diff(got.as_slice().unwrap(), &want);
    assert!(worst <= rel_tol * scale, "{case}: max |d| {worst} > {}", rel_tol * scale);
    worst
}

#[test]
#[cfg_attr(
    not(all(feature = "x0_25", feature = "x0_35")),
    ignore = "needs widths x0_25 and x0_35: cargo test -p lcnet-zoo --features all-variants"
)]
fn paddle_save_pdparams_match_paddleclas() {
    check("x0_25_c10.pdparams", "x0_25_c10", "pplcnet_x0_25");
    check("x0_35_c4.pdparams", "x0_35_c4", "pplcnet_x0_35");
    // Protocol 2 (older Paddle): text GLOBALs, bytes as _codecs.encode(text, "latin1").
    check("x0_25_c10.protocol2.pdparams", "x0_25_c10", "pplcnet_x0_25");
}

#[test]
#[cfg_attr(
    not(all(feature = "x0_25", feature = "x0_35")),
    ignore = "needs widths x0_25 and x0_35: cargo test -p lcnet-zoo --features all-variants"
)]
fn timm_state_dict_matches_timm() {
    check("timm_lcnet_035_c5.safetensors", "timm_lcnet_035_c5", "pplcnet_x0_35");
}

#[test]
#[cfg_attr(
    not(all(feature = "x0_25", feature = "x0_35")),
    ignore = "needs widths x0_25 and x0_35: cargo test -p lcnet-zoo --features all-variants"
)]
fn transformers_folder_and_its_safetensors_match_transformers() {
    check("hf_pp_lcnet_x0_25_c3", "hf_pp_lcnet_x0_25_c3", "pplcnet_x0_25");
    // The file alone (config.json beside it is still found).
    check("hf_pp_lcnet_x0_25_c3/model.safetensors", "hf_pp_lcnet_x0_25_c3", "pplcnet_x0_25");
}

/// Hugging Face's PaddleX checkpoints (`PP-LCNet_x1_0_table_cls_safetensors`)
/// store fp16: the same folder with every tensor in f16 loads, widened, and
/// stays within fp16's rounding of transformers' logits.
#[test]
#[cfg_attr(
    not(all(feature = "x0_25", feature = "x0_35")),
    ignore = "needs widths x0_25 and x0_35: cargo test -p lcnet-zoo --features all-variants"
)]
fn a_transformers_folder_in_fp16_loads_widened() {
    let mut ck = Checkpoint::open(data("hf_pp_lcnet_x0_25_c3/model.safetensors")).unwrap();
    let names: Vec<String> = ck.names().into_iter().map(str::to_string).collect();
    let mut header = serde_json::Map::new();
    let mut bytes = Vec::new();
    // (BN's integer step counters are left out: lcnet skips them anyway.)
    for name in names.into_iter().filter(|n| !n.ends_with("num_batches_tracked")) {
        let (shape, values) = ck.take_any(&name).unwrap();
        let start = bytes.len();
        bytes.extend(values.iter().flat_map(|&v| half::f16::from_f32(v).to_le_bytes()));
        let entry = serde_json::json!({"dtype": "F16", "shape": shape, "data_offsets": [start, bytes.len()]});
        header.insert(name, entry);
    }
    let header = serde_json::to_vec(&header).unwrap();
    let dir = std::env::temp_dir().join(format!("lcnet-formats-fp16-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file: Vec<u8> = [&(header.len() as u64).to_le_bytes()[..], &header, &bytes].concat();
    std::fs::write(dir.join("model.safetensors"), file).unwrap();
    std::fs::copy(data("hf_pp_lcnet_x0_25_c3/config.json"), dir.join("config.json")).unwrap();

    let mut ck = formats::open(&dir).unwrap();
    let net = lcnet_zoo::load(&mut ck, None).unwrap();
    // A config.json that is not an object is an error, not transformers' defaults.
    let bad = std::env::temp_dir().join(format!("lcnet-formats-badconfig-{}", std::process::id()));
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::copy(dir.join("model.safetensors"), bad.join("model.safetensors")).unwrap();
    std::fs::write(bad.join("config.json"), "[]").unwrap();
    let err = formats::open(&bad).unwrap_err().to_string();
    assert!(err.contains("config.json: is not a JSON object"), "{err}");
    // fp16 rounding of the weights: 2e-2 of the largest logit.
    compare(net.as_ref(), "hf_pp_lcnet_x0_25_c3", 2e-2);
}

#[test]
#[cfg_attr(
    not(all(feature = "x0_25", feature = "x0_35")),
    ignore = "needs widths x0_25 and x0_35: cargo test -p lcnet-zoo --features all-variants"
)]
fn conversion_reports_its_source_and_keeps_every_tensor() {
    let pd = formats::read(&data("x0_25_c10.pdparams")).unwrap();
    assert_eq!((pd.encoding, pd.layout), (Encoding::Pdparams, Layout::PaddleClas));
    assert!(pd.tensors.iter().all(|t| t.name != lcnet_zoo::__private::pdparams::STRUCTURED_NAMES_KEY));
    assert!(pd.tensors.iter().any(|t| t.name == "blocks6.1.se.conv2.bias"));

    let timm = formats::read(&data("timm_lcnet_035_c5.safetensors")).unwrap();
    assert_eq!((timm.encoding, timm.layout), (Encoding::Safetensors, Layout::Timm));
    let fc = timm.tensors.iter().find(|t| t.name == "fc.weight").unwrap();
    assert_eq!(fc.shape, [1280, 5], "Linear [out, in] stored as PaddleClas [in, out]");
    assert!(timm.tensors.iter().any(|t| t.name == "last_conv.bias"), "timm's head conv bias is kept");

    let hf = formats::read(&data("hf_pp_lcnet_x0_25_c3")).unwrap();
    assert_eq!(hf.layout, Layout::Transformers);
    assert_eq!(hf.metadata.get("labels").map(String::as_str), Some(r#"["LABEL_0","LABEL_1","LABEL_2"]"#));

    // Every tensor is used by the network (the loader refuses leftovers).
    let mut ck = hf.to_checkpoint().unwrap();
    assert_eq!(ck.metadata()["source_layout"], "transformers");
    lcnet_zoo::load(&mut ck, None).unwrap();
}

#[test]
#[cfg_attr(
    not(all(feature = "x0_25", feature = "x0_35")),
    ignore = "needs widths x0_25 and x0_35: cargo test -p lcnet-zoo --features all-variants"
)]
fn a_truncated_or_corrupted_pdparams_is_an_error_never_a_panic() {
    let bytes = std::fs::read(data("x0_25_c10.pdparams")).unwrap();
    let cuts = (0..bytes.len()).step_by(4099).chain(bytes.len() - 64..bytes.len());
    for cut in cuts {
        assert!(lcnet_zoo::__private::pdparams::read(&bytes[..cut]).is_err(), "cut at {cut} of {}", bytes.len());
    }
    // Flip bytes all over the stream: each read either fails cleanly or gives
    // tensors; it never panics, hangs or allocates beyond the input.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..400 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let mut corrupt = bytes.clone();
        let at = (state % bytes.len() as u64) as usize;
        corrupt[at] ^= (state >> 32) as u8 | 1;
        let _ = lcnet_zoo::__private::pdparams::read(&corrupt);
    }
}

#[test]
#[cfg_attr(
    not(all(feature = "x0_25", feature = "x0_35")),
    ignore = "needs widths x0_25 and x0_35: cargo test -p lcnet-zoo --features all-variants"
)]
fn unknown_layouts_and_torch_zips_are_named() {
    let dir = std::env::temp_dir().join(format!("lcnet-formats-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let zip = dir.join("model.pth");
    std::fs::write(&zip, b"PK\x03\x04 rest of a torch.save zip").unwrap();
    let err = formats::open(&zip).unwrap_err().to_string();
    assert!(err.contains("model.pth") && err.contains("safetensors"), "{err}");

    let other = dir.join("bert.safetensors");
    let w = [0.0f32; 4];
    lcnet_zoo::lcnet_core::weights::save_f32(&other, &[("encoder.layer.0.weight", vec![4], &w)], &Default::default())
        .unwrap();
    let err = formats::open(&other).unwrap_err().to_string();
    assert!(err.contains("bert.safetensors") && err.contains("encoder.layer.0.weight"), "{err}");

    let err = formats::open(&dir).unwrap_err().to_string();
    assert!(err.contains("model.safetensors"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
