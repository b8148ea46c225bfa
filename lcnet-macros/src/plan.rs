//! Stage 4: the concrete layer list of one width: channels after
//! `make_divisible`, feature-map sizes at the default input, parameters and
//! MACs. Pure arithmetic, shared by expansion and the unit tests.

use crate::arith::{conv_out, feature_name, make_divisible};
use crate::validate::{Block, Net};

/// What a layer computes, with the channel counts that kind has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// The dense `kernel` x `kernel` conv on the RGB input.
    Stem { kernel: usize, stride: [usize; 2], out_c: usize },
    /// A depthwise conv on `channels`.
    Depthwise { kernel: usize, stride: [usize; 2], channels: usize },
    /// Squeeze-and-excitation on `channels` with a `mid`-wide bottleneck.
    SqueezeExcite { channels: usize, mid: usize },
    /// A 1x1 conv.
    Pointwise { in_c: usize, out_c: usize },
    /// The head's optional 1x1 conv after global average pooling.
    HeadConv { in_c: usize, out_c: usize },
    /// The classifier; `features` are the channels of the last feature map
    /// (the head's input, whether or not a head conv comes first).
    Fc { features: usize, in_c: usize, classes: usize },
}

impl Op {
    pub fn kernel(&self) -> usize {
        match *self {
            Op::Stem { kernel, .. } | Op::Depthwise { kernel, .. } => kernel,
            _ => 1,
        }
    }

    pub fn stride(&self) -> [usize; 2] {
        match *self {
            Op::Stem { stride, .. } | Op::Depthwise { stride, .. } => stride,
            _ => [1, 1],
        }
    }

    pub fn in_channels(&self) -> usize {
        match *self {
            Op::Stem { .. } => 3,
            Op::Depthwise { channels, .. } | Op::SqueezeExcite { channels, .. } => channels,
            Op::Pointwise { in_c, .. } | Op::HeadConv { in_c, .. } | Op::Fc { in_c, .. } => in_c,
        }
    }

    pub fn out_channels(&self) -> usize {
        match *self {
            Op::Depthwise { channels, .. } | Op::SqueezeExcite { channels, .. } => channels,
            Op::Stem { out_c, .. } | Op::Pointwise { out_c, .. } | Op::HeadConv { out_c, .. } => out_c,
            Op::Fc { classes, .. } => classes,
        }
    }

    /// The SE bottleneck; 0 for every other layer.
    pub fn mid_channels(&self) -> usize {
        match *self {
            Op::SqueezeExcite { mid, .. } => mid,
            _ => 0,
        }
    }
}

/// One layer of one width.
#[derive(Debug, Clone, PartialEq)]
pub struct Layer {
    /// Field name in the generated weights struct (`blocks2_0_dw`).
    pub field: String,
    /// PaddleClas sublayer name (`blocks2.0.dw_conv`).
    pub name: String,
    pub op: Op,
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

/// Lays out every layer of `net` at `width`.
pub fn plan(net: &Net, width: f64) -> Plan {
    let channels = |c: usize| make_divisible(c as f64 * width, net.divisor);
    let mut layers = vec![stem(net, channels(net.stem_channels))];
    let mut c = channels(net.stem_channels);
    let mut hw = layers[0].out_hw;
    for stage in &net.stages {
        for (i, b) in stage.blocks.iter().enumerate() {
            let out_c = channels(b.out_c);
            let ends_stage = (i + 1 == stage.blocks.len()).then(|| stage.name.clone());
            let block_layers = block(net, b, &format!("{}.{i}", stage.name), (c, out_c), &mut hw);
            layers.extend(block_layers);
            layers.last_mut().expect("a block ends with its pointwise conv").ends_stage = ends_stage;
            c = out_c;
        }
    }
    layers.extend(head(net, c));

    let width_tag = feature_name(width);
    let feature = format!("{}{width_tag}", net.feature_prefix);
    Plan { width, model: format!("{}_{width_tag}", net.name), feature, layers }
}

/// The stem conv with `out_c` channels.
fn stem(net: &Net, out_c: usize) -> Layer {
    let (kernel, stride) = (net.stem_kernel, net.stem_stride);
    let [_, h, w] = net.input;
    let out_hw = [conv_out(h, kernel, stride[0]), conv_out(w, kernel, stride[1])];
    let taps = (3 * kernel * kernel) as u64;
    Layer {
        field: "conv1".into(),
        name: "conv1".into(),
        op: Op::Stem { kernel, stride, out_c },
        out_hw,
        params: taps * out_c as u64 + 2 * out_c as u64,
        macs: (out_hw[0] * out_hw[1]) as u64 * taps * out_c as u64,
        ends_stage: Some("conv1".into()),
    }
}

/// One depthwise-separable block (`prefix` = `blocks2.0`) from `c` to
/// `out_c` channels: depthwise conv, SE if the row asks, pointwise conv.
/// Advances the feature-map size `hw` by the block's stride.
fn block(net: &Net, b: &Block, prefix: &str, (c, out_c): (usize, usize), hw: &mut [usize; 2]) -> Vec<Layer> {
    let (kernel, stride) = (b.kernel, b.stride);
    *hw = [conv_out(hw[0], kernel, stride[0]), conv_out(hw[1], kernel, stride[1])];
    let pixels = (hw[0] * hw[1]) as u64;
    let field = prefix.replace('.', "_");
    let taps = (kernel * kernel) as u64;
    let mut layers = vec![Layer {
        field: format!("{field}_dw"),
        name: format!("{prefix}.dw_conv"),
        op: Op::Depthwise { kernel, stride, channels: c },
        out_hw: *hw,
        params: taps * c as u64 + 2 * c as u64,
        macs: pixels * taps * c as u64,
        ends_stage: None,
    }];
    if b.se {
        let mid = c / net.se_reduction;
        let (c64, m64) = (c as u64, mid as u64);
        layers.push(Layer {
            field: format!("{field}_se"),
            name: format!("{prefix}.se"),
            op: Op::SqueezeExcite { channels: c, mid },
            out_hw: *hw,
            params: 2 * c64 * m64 + m64 + c64,
            macs: 2 * c64 * m64,
            ends_stage: None,
        });
    }
    layers.push(Layer {
        field: format!("{field}_pw"),
        name: format!("{prefix}.pw_conv"),
        op: Op::Pointwise { in_c: c, out_c },
        out_hw: *hw,
        params: (c * out_c + 2 * out_c) as u64,
        macs: pixels * (c * out_c) as u64,
        ends_stage: None,
    });
    layers
}

/// The head on `features` channels: an optional 1x1 conv (with optional
/// bias), then the FC.
fn head(net: &Net, features: usize) -> Vec<Layer> {
    let mut layers = Vec::new();
    let fc_in = if net.head_conv {
        let hidden = net.head_channels;
        let bias = if net.head_bias { hidden as u64 } else { 0 };
        layers.push(Layer {
            field: "head".into(),
            name: "last_conv".into(),
            op: Op::HeadConv { in_c: features, out_c: hidden },
            out_hw: [1, 1],
            params: (features * hidden) as u64 + bias,
            macs: (features * hidden) as u64,
            ends_stage: None,
        });
        hidden
    } else {
        features
    };
    layers.push(Layer {
        field: "head".into(),
        name: "fc".into(),
        op: Op::Fc { features, in_c: fc_in, classes: net.classes },
        out_hw: [1, 1],
        params: (fc_in * net.classes + net.classes) as u64,
        macs: (fc_in * net.classes) as u64,
        ends_stage: None,
    });
    layers
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
            assert_eq!(p.layers[0].op.out_channels(), stem, "{w}");
            let ends: Vec<usize> =
                p.layers.iter().filter(|l| l.ends_stage.is_some()).skip(1).map(|l| l.op.out_channels()).collect();
            assert_eq!(ends, stages, "{w}");
            let mids: Vec<usize> = p
                .layers
                .iter()
                .filter_map(|l| match l.op {
                    Op::SqueezeExcite { mid, .. } => Some(mid),
                    _ => None,
                })
                .collect();
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
