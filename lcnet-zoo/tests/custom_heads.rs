//! Head options of the table, against PaddleClas where it has them:
//! `conv = false` is PaddleClas `use_last_conv=False` (GAP straight into
//! the FC, no dropout); `bias = true` gives the head conv a bias
//! (`last_conv.bias`, as timm's `conv_head`).

// The tables below generate only the widths whose features are on; without
// x0_25 this file holds one ignored test that says so (not zero tests).
#[cfg(not(feature = "x0_25"))]
#[test]
#[ignore = "needs width x0_25: cargo test -p lcnet-zoo --features x0_25"]
fn custom_heads_need_x0_25() {}

#[cfg(feature = "x0_25")]
mod with_x0_25 {
    use std::collections::BTreeMap;

    use lcnet_zoo::lcnet_core::ndarray::ArrayView4;
    use lcnet_zoo::lcnet_core::{weights, Checkpoint, Workspace};

    /// PP-LCNet x0.25 at 64x64, 3 classes, without the head conv.
    mod no_last_conv {
        lcnet_zoo::network!("tests/heads/no_last_conv.toml");
    }

    /// The standard x0.25 head, but its 1x1 conv has a bias.
    mod head_bias {
        lcnet_zoo::network!("tests/heads/head_bias.toml");
    }

    const CASE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/heads/x0_25_c3_64x64_nolastconv");

    #[test]
    fn head_without_conv_matches_paddleclas_use_last_conv_false() {
        let mut ck = Checkpoint::open(format!("{CASE}.weights.safetensors")).unwrap();
        let (params, macs): (u64, u64) =
            (ck.metadata()["params"].parse().unwrap(), ck.metadata()["macs"].parse().unwrap());
        assert_eq!(
            (no_last_conv::x0_25::PARAMS, no_last_conv::x0_25::MACS),
            (params, macs),
            "PaddleClas's exact counts"
        );
        assert_eq!(no_last_conv::x0_25::INFO.dropout_scale, 1.0, "no dropout without the head conv");
        let net = no_last_conv::x0_25::Weights::load(&mut ck).unwrap();
        let mut io = Checkpoint::open(format!("{CASE}.io.safetensors")).unwrap();
        let (shape, input) = io.take_any("input").unwrap();
        let (_, want) = io.take_any("logits").unwrap();
        let input = ArrayView4::from_shape((shape[0], shape[1], shape[2], shape[3]), &input).unwrap();
        let got = net.forward(input, &mut Workspace::new()).unwrap();
        let scale = want.iter().fold(1.0f32, |m, v| m.max(v.abs()));
        for (a, b) in got.iter().zip(&want) {
            assert!((a - b).abs() <= 1e-3 * scale, "{a} vs PaddleClas {b}");
        }
    }

    #[test]
    fn head_conv_bias_is_loaded_and_applied() {
        // Random x0.25 weights for the standard head, then the same plus a
        // `last_conv.bias`: zero bias must give the same logits, a large
        // negative one (every HardSwish input below -3) must leave only fc.bias.
        let variant = lcnet_zoo::find("pplcnet_x0_25").unwrap();
        let mut base = lcnet_zoo::random_checkpoint(variant, 3, 5).unwrap();
        let names: Vec<String> = base.names().iter().map(|s| s.to_string()).collect();
        let tensors: Vec<(String, Vec<usize>, Vec<f32>)> =
            names.iter().map(|n| base.take_any(n).map(|(s, d)| (n.clone(), s, d)).unwrap()).collect();
        let with_bias = |b: f32| {
            let mut t = tensors.clone();
            t.push(("last_conv.bias".into(), vec![1280], vec![b; 1280]));
            let views: Vec<(&str, Vec<usize>, &[f32])> =
                t.iter().map(|(n, s, d)| (n.as_str(), s.clone(), d.as_slice())).collect();
            Checkpoint::from_vec("<test>", weights::to_bytes(&views, &BTreeMap::new()).unwrap()).unwrap()
        };
        let input = lcnet_zoo::lcnet_core::ndarray::Array4::from_shape_fn((1, 3, 64, 64), |(_, c, y, x)| {
            ((c + y * 3 + x) % 7) as f32 / 7.0 - 0.5
        });
        let run_plain = {
            let views: Vec<(&str, Vec<usize>, &[f32])> =
                tensors.iter().map(|(n, s, d)| (n.as_str(), s.clone(), d.as_slice())).collect();
            let mut ck = Checkpoint::from_vec("<plain>", weights::to_bytes(&views, &BTreeMap::new()).unwrap()).unwrap();
            lcnet_zoo::load(&mut ck, Some("x0_25")).unwrap().forward(input.view(), &mut Workspace::new()).unwrap()
        };
        let zero = head_bias::x0_25::Weights::load(&mut with_bias(0.0))
            .unwrap()
            .forward(input.view(), &mut Workspace::new())
            .unwrap();
        assert_eq!(zero, run_plain);
        let off = head_bias::x0_25::Weights::load(&mut with_bias(-1e4))
            .unwrap()
            .forward(input.view(), &mut Workspace::new())
            .unwrap();
        let fc_bias = &tensors.iter().find(|(n, ..)| n == "fc.bias").unwrap().2;
        assert_eq!(off.as_slice().unwrap(), fc_bias.as_slice());
        // The bias adds 1280 parameters to the table's count.
        assert_eq!(head_bias::x0_25::PARAMS, variant.counts_with_classes(3).0 + 1280);
    }
}
