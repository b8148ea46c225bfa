//! The concrete layer list of one width: channels after `make_divisible`,
//! feature-map sizes at the default input, parameters and MACs. Pure
//! arithmetic, shared by expansion and the unit tests.

use crate::validate::Net;

/// PaddleClas `make_divisible`: round `v` to the nearest multiple of
/// `divisor` (at least `divisor`), adding one more `divisor` if rounding lost
/// more than 10%.
pub fn make_divisible(v: f64, divisor: usize) -> usize {
    let d = divisor as f64;
    let mut new_v = d.max(((v + d / 2.0) as i64 / divisor as i64 * divisor as i64) as f64);
    if new_v < 0.9 * v {
        new_v += d;
    }
    new_v as usize
}

/// Output length of a conv with symmetric padding `(k - 1) / 2` (PaddleClas).
pub fn conv_out(n: usize, kernel: usize, stride: usize) -> usize {
    (n + 2 * ((kernel - 1) / 2) - kernel) / stride + 1
}

/// What a layer is; mirrors `lcnet_core::LayerKind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Stem,
    Depthwise,
    SqueezeExcite,
    Pointwise,
    HeadConv,
    Fc,
}

/// One layer of one width.
#[derive(Debug, Clone, PartialEq)]
pub struct Layer {
    /// Field name in the generated weights struct (`blocks2_0_dw`).
    pub field: String,
    /// PaddleClas sublayer name (`blocks2.0.dw_conv`).
    pub name: String,
    pub kind: Kind,
    pub kernel: usize,
    pub stride: [usize; 2],
    pub in_c: usize,
    pub out_c: usize,
    pub mid: usize,
    pub out_hw: [usize; 2],
    pub params: u64,
    pub macs: u64,
    /// Set on the last layer of a stage: the stage's name (for stage records).
    pub ends_stage: Option<String>,
}

/// One width of the network.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub width: f64,
    /// Cargo feature and module name: `x1_0` (with the table's prefix, if any).
    pub feature: String,
    /// Model name: `pplcnet_x1_0`.
    pub model: String,
    pub layers: Vec<Layer>,
}

impl Plan {
    pub fn params(&self) -> u64 {
        self.layers.iter().map(|l| l.params).sum()
    }

    pub fn macs(&self) -> u64 {
        self.layers.iter().map(|l| l.macs).sum()
    }
}

/// `0.25 -> x0_25`, `1.0 -> x1_0`, `2.5 -> x2_5` (PaddleClas's names).
pub fn feature_name(width: f64) -> String {
    let mut s = format!("{width}");
    if !s.contains('.') {
        s.push_str(".0");
    }
    format!("x{}", s.replace('.', "_"))
}

/// Lays out every layer of `net` at `width`.
pub fn plan(net: &Net, width: f64) -> Plan {
    let ch = |c: usize| make_divisible(c as f64 * width, net.divisor);
    let mut layers = Vec::new();
    let [_, mut h, mut w] = net.input;

    let stem_c = ch(net.stem_channels);
    let (k, s) = (net.stem_kernel, net.stem_stride);
    h = conv_out(h, k, s[0]);
    w = conv_out(w, k, s[1]);
    let taps = (3 * k * k) as u64;
    layers.push(Layer {
        field: "conv1".into(),
        name: "conv1".into(),
        kind: Kind::Stem,
        kernel: k,
        stride: s,
        in_c: 3,
        out_c: stem_c,
        mid: 0,
        out_hw: [h, w],
        params: taps * stem_c as u64 + 2 * stem_c as u64,
        macs: (h * w) as u64 * taps * stem_c as u64,
        ends_stage: Some("conv1".into()),
    });

    let mut c = stem_c;
    for stage in &net.stages {
        for (i, b) in stage.blocks.iter().enumerate() {
            let (k, s) = (b.kernel, b.stride);
            h = conv_out(h, k, s[0]);
            w = conv_out(w, k, s[1]);
            let hw = (h * w) as u64;
            let kk = (k * k) as u64;
            let prefix = format!("{}.{i}", stage.name);
            let field = format!("{}_{i}", stage.name);
            layers.push(Layer {
                field: format!("{field}_dw"),
                name: format!("{prefix}.dw_conv"),
                kind: Kind::Depthwise,
                kernel: k,
                stride: s,
                in_c: c,
                out_c: c,
                mid: 0,
                out_hw: [h, w],
                params: kk * c as u64 + 2 * c as u64,
                macs: hw * kk * c as u64,
                ends_stage: None,
            });
            if b.se {
                let mid = c / net.se_reduction;
                let (c64, m64) = (c as u64, mid as u64);
                layers.push(Layer {
                    field: format!("{field}_se"),
                    name: format!("{prefix}.se"),
                    kind: Kind::SqueezeExcite,
                    kernel: 1,
                    stride: [1, 1],
                    in_c: c,
                    out_c: c,
                    mid,
                    out_hw: [h, w],
                    params: 2 * c64 * m64 + m64 + c64,
                    macs: 2 * c64 * m64,
                    ends_stage: None,
                });
            }
            let out = ch(b.out_c);
            let last = i + 1 == stage.blocks.len();
            layers.push(Layer {
                field: format!("{field}_pw"),
                name: format!("{prefix}.pw_conv"),
                kind: Kind::Pointwise,
                kernel: 1,
                stride: [1, 1],
                in_c: c,
                out_c: out,
                mid: 0,
                out_hw: [h, w],
                params: (c * out + 2 * out) as u64,
                macs: hw * (c * out) as u64,
                ends_stage: last.then(|| stage.name.clone()),
            });
            c = out;
        }
    }

    // The head: an optional 1x1 conv (with optional bias), then the FC.
    let fc_in = if net.head_conv {
        let hidden = net.head_channels;
        let bias = if net.head_bias { hidden as u64 } else { 0 };
        layers.push(Layer {
            field: "head".into(),
            name: "last_conv".into(),
            kind: Kind::HeadConv,
            kernel: 1,
            stride: [1, 1],
            in_c: c,
            out_c: hidden,
            mid: 0,
            out_hw: [1, 1],
            params: (c * hidden) as u64 + bias,
            macs: (c * hidden) as u64,
            ends_stage: None,
        });
        hidden
    } else {
        c
    };
    layers.push(Layer {
        field: "head".into(),
        name: "fc".into(),
        kind: Kind::Fc,
        kernel: 1,
        stride: [1, 1],
        in_c: fc_in,
        out_c: net.classes,
        // The FC's `mid` records the channels of the last feature map.
        mid: c,
        out_hw: [1, 1],
        params: (fc_in * net.classes + net.classes) as u64,
        macs: (fc_in * net.classes) as u64,
        ends_stage: None,
    });

    let width_tag = feature_name(width);
    let feature = format!("{}{width_tag}", net.feature_prefix);
    Plan { width, model: format!("{}_{width_tag}", net.name), feature, layers }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;
    use crate::validate::check;

    fn pp_lcnet() -> Net {
        let src = include_str!("../../lcnet-zoo/configs/pp_lcnet.toml");
        check(&parse(src).unwrap()).unwrap()
    }

    #[test]
    fn make_divisible_matches_paddleclas() {
        // PaddleClas channel table (tools/ref/params_macs.md).
        assert_eq!(make_divisible(16.0 * 0.25, 8), 8);
        assert_eq!(make_divisible(32.0 * 0.35, 8), 16);
        assert_eq!(make_divisible(64.0 * 0.35, 8), 24);
        assert_eq!(make_divisible(256.0 * 0.35, 8), 88);
        assert_eq!(make_divisible(512.0 * 0.35, 8), 176);
        assert_eq!(make_divisible(16.0 * 0.75, 8), 16);
        assert_eq!(make_divisible(16.0 * 2.5, 8), 40);
    }

    #[test]
    fn feature_names_follow_paddleclas() {
        let names: Vec<String> = [0.25, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5].map(feature_name).to_vec();
        assert_eq!(names, ["x0_25", "x0_35", "x0_5", "x0_75", "x1_0", "x1_5", "x2_0", "x2_5"]);
    }

    #[test]
    fn channel_table_matches_paddleclas() {
        let net = pp_lcnet();
        // width: conv1, blocks2..blocks6 outputs, SE mids (params_macs.md).
        for (w, stem, stages, se) in [
            (0.25, 8, [8, 16, 32, 64, 128], [16, 32]),
            (0.35, 8, [16, 24, 48, 88, 176], [22, 44]),
            (1.0, 16, [32, 64, 128, 256, 512], [64, 128]),
            (2.5, 40, [80, 160, 320, 640, 1280], [160, 320]),
        ] {
            let p = plan(&net, w);
            assert_eq!(p.layers[0].out_c, stem, "{w}");
            let ends: Vec<usize> =
                p.layers.iter().filter(|l| l.ends_stage.is_some()).skip(1).map(|l| l.out_c).collect();
            assert_eq!(ends, stages, "{w}");
            let mids: Vec<usize> = p.layers.iter().filter(|l| l.kind == Kind::SqueezeExcite).map(|l| l.mid).collect();
            assert_eq!(mids, se, "{w}");
        }
    }

    #[test]
    fn params_and_macs_match_paddleclas_exactly() {
        let net = pp_lcnet();
        // tools/ref/params_macs.md (PaddleClas 2.6.0, paddle 3.3.1).
        for (w, params, macs) in [
            (0.25, 1_521_184, 16_773_440),
            (0.35, 1_643_090, 27_357_832),
            (0.5, 1_879_576, 44_731_008),
            (0.75, 2_357_008, 94_786_496),
            (1.0, 2_952_520, 155_700_480),
            (1.5, 4_499_832, 334_188_416),
            (2.0, 6_521_512, 580_194_816),
            (2.5, 9_017_560, 893_719_680),
        ] {
            let p = plan(&net, w);
            assert_eq!((p.params(), p.macs()), (params, macs), "width {w}");
        }
    }

    #[test]
    fn textline_table_matches_paddlex_exports() {
        let src = include_str!("../../lcnet-zoo/configs/pp_lcnet_textline.toml");
        let net = check(&parse(src).unwrap()).unwrap();
        // x0.25: PaddleClas PPLCNet(scale=0.25, class_num=2, stride_list=...)
        // (examples/custom-net checks the same numbers). x1.0: counted from
        // the weights and the shape-inferred convs of the real paddle2onnx
        // export of PP-LCNet_x1_0_textline_ori (tools/textline_reference.py).
        for (w, feature, params, macs) in
            [(0.25, "textline_x0_25", 242_746, 23_214_080), (1.0, "textline_x1_0", 1_674_082, 292_979_200)]
        {
            let p = plan(&net, w);
            assert_eq!(
                (p.feature.as_str(), p.model.as_str()),
                (feature, &*format!("pplcnet_textline_{}", &feature[9..]))
            );
            assert_eq!((p.params(), p.macs()), (params, macs), "width {w}");
        }
    }

    #[test]
    fn odd_inputs_round_up_like_paddle() {
        let mut net = pp_lcnet();
        net.input = [3, 97, 131];
        let p = plan(&net, 1.0);
        let sizes: Vec<[usize; 2]> = p.layers.iter().filter(|l| l.ends_stage.is_some()).map(|l| l.out_hw).collect();
        assert_eq!(sizes, [[49, 66], [49, 66], [25, 33], [13, 17], [7, 9], [4, 5]]);
    }
}
