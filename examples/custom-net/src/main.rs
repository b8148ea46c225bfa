//! A network of your own: `net.toml` describes PaddleX's text-line
//! orientation PP-LCNet (80x160 input, per-axis strides, 2 classes) and
//! `lcnet_zoo::network!` turns it into Rust at compile time.
//!
//! `cargo run --release` loads the PaddleClas reference weights in `data/`,
//! runs the reference input and checks the logits, PARAMS and MACS against
//! PaddleClas (`tools/gen_textline_ref.py` made them); exits non-zero on a
//! mismatch.

use lcnet_zoo::lcnet_core::{Checkpoint, Workspace};

/// The generated network: `textline::x0_25`.
mod textline {
    lcnet_zoo::network!("net.toml");
}

use textline::x0_25;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data");
    let mut ck = Checkpoint::open(data.join("textline.weights.safetensors"))?;
    let paddle_params: u64 = ck.metadata()["params"].parse()?;
    let paddle_macs: u64 = ck.metadata()["macs"].parse()?;
    let net = x0_25::Weights::load(&mut ck)?;

    let mut io = Checkpoint::open(data.join("textline.io.safetensors"))?;
    let (shape, input) = io.take_any("input")?;
    let (_, want) = io.take_any("logits")?;
    let input =
        lcnet_zoo::lcnet_core::ndarray::ArrayView4::from_shape((shape[0], shape[1], shape[2], shape[3]), &input)?;
    let logits = net.forward(input, &mut Workspace::new())?;

    let last = x0_25::LAYERS.iter().rev().find(|l| l.kind == lcnet_zoo::lcnet_core::LayerKind::Pointwise).unwrap();
    println!("{}: {} params, {} MACs at {:?}", x0_25::INFO.name, x0_25::PARAMS, x0_25::MACS, x0_25::INPUT);
    println!("last feature map: {} channels x {:?}", last.out_channels, last.out_hw);
    println!("logits {:?}", logits.as_slice().unwrap());

    let scale = want.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    // NaN-aware: a NaN anywhere is an infinite error (`f32::max` would skip it).
    let err = logits.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0, |m, d| {
        if d.is_nan() {
            f32::INFINITY
        } else {
            m.max(d)
        }
    });
    let mut ok = true;
    if err > 1e-3 * scale {
        eprintln!("logits differ from PaddleClas by {err}");
        ok = false;
    }
    if (x0_25::PARAMS, x0_25::MACS) != (paddle_params, paddle_macs) {
        eprintln!("PARAMS/MACS {}/{} but PaddleClas counts {paddle_params}/{paddle_macs}", x0_25::PARAMS, x0_25::MACS);
        ok = false;
    }
    if last.out_hw != [3, 80] {
        eprintln!("the last feature map is {:?}, PaddleClas gives [3, 80]", last.out_hw);
        ok = false;
    }
    if !ok {
        std::process::exit(1);
    }
    println!("matches PaddleClas: max |d logits| = {err:.2e}, params and MACs exact");
    Ok(())
}
