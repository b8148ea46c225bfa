//! Importing paddle2onnx exports of PP-LCNet into the canonical checkpoint
//! (PaddleClas names and layouts).
//!
//! The graph is matched against the PP-LCNet pattern node by node:
//! `Conv -> BatchNormalization -> HardSwish` for the stem; per block a
//! depthwise `Conv -> BN -> HardSwish`, optionally the SE subgraph
//! `GlobalAveragePool -> Conv -> Add -> Relu -> Conv -> Add -> HardSigmoid ->
//! Mul`, then a pointwise `Conv -> BN -> HardSwish`; and the head
//! `GlobalAveragePool -> Conv -> HardSwish -> [Mul (dropout)] -> Reshape/Flatten
//! -> MatMul -> Add -> [Softmax]`. Weights may be initializers or `Constant`
//! nodes, and constant subgraphs (a bias reshaped to `[1, C, 1, 1]`, a
//! flatten's `Shape -> Slice -> Concat` target) are folded first. A graph that
//! differs names the node that did not fit. The architecture comes from the
//! matched channel counts and strides (and the input size when that is not
//! enough), the classes from the FC.

mod fold;
mod graph;
pub(crate) mod proto;
mod wire;

use std::collections::BTreeMap;
use std::path::Path;

use lcnet_core::files::Overwrite;
use lcnet_core::{LayerKind, VariantInfo};
use lcnet_core::{BN_EPS, BN_EPS_KEY};

use crate::error::{Error, Result};
use prost::Message;

use graph::{attr_f, attr_i, attr_ints, Cursor, Graph, Tensor};

/// A converted model: canonical tensors plus what the ONNX file said about itself.
#[derive(Debug)]
pub struct Imported {
    /// The matching compiled variant.
    pub variant: &'static VariantInfo,
    /// Number of classes.
    pub classes: usize,
    /// Canonical tensors (PaddleClas names and layouts), in network order.
    pub tensors: Vec<(String, Vec<usize>, Vec<f32>)>,
    /// Class labels from the ONNX metadata (`character`, one per line), if any.
    pub labels: Option<Vec<String>>,
    /// Whether the ONNX graph ends in a Softmax (it outputs probabilities).
    pub softmax: bool,
    /// The graph's BatchNorm epsilon (one for every BN node), kept as the
    /// checkpoint's `bn_eps` so the running variances are copied unchanged.
    pub bn_eps: Option<f32>,
}

/// One layer as found in the graph, before it is named.
enum Found {
    ConvBn { weight: Tensor, bn: [Vec<f32>; 4], stride: [usize; 2], eps: Option<f32> },
    Se { reduce: Tensor, reduce_bias: Vec<f32>, expand: Tensor, expand_bias: Vec<f32> },
    HeadConv { weight: Tensor },
}

impl Found {
    /// The shape that identifies the layer in a variant's signature.
    fn signature_shape(&self) -> &[usize] {
        match self {
            Found::ConvBn { weight, .. } | Found::HeadConv { weight } => &weight.shape,
            Found::Se { reduce, .. } => &reduce.shape,
        }
    }
}

/// Reads and converts `path`.
pub fn import(path: &Path) -> Result<Imported> {
    let bytes = lcnet_core::files::read_regular(path)?;
    import_bytes(path, &bytes)
}

/// Converts the ONNX model in `bytes`; `path` names it in messages.
pub fn import_bytes(path: &Path, bytes: &[u8]) -> Result<Imported> {
    let fail = |reason: String| Error::Import { path: path.to_path_buf(), reason };
    wire::check_decoded_size(bytes).map_err(fail)?;
    let model = proto::ModelProto::decode(bytes)
        .map_err(|e| fail(format!("not a readable ONNX model (truncated or not protobuf): {e}")))?;
    let graph = model.graph.as_ref().ok_or_else(|| fail("the ONNX model has no graph".into()))?;
    let input = graph.input.iter().find(|i| !graph.initializer.iter().any(|t| t.name == i.name));
    let input = input.ok_or_else(|| fail("the graph has no input".into()))?;
    let indexed = Graph::new(graph).map_err(fail)?;
    let mut cursor = indexed.cursor(&input.name);
    let (layers, fc_weight, fc_bias, dropout, softmax) = match_pplcnet(&mut cursor).map_err(fail)?;
    let variant = pick_variant(&layers, input_hw(input)).map_err(fail)?;
    let bn_eps = common_eps(&layers).map_err(fail)?;

    let mut tensors = Vec::new();
    let named = variant.layers.iter().filter(|l| l.kind != LayerKind::Fc);
    for (info, layer) in named.zip(layers) {
        let prefix = info.name;
        match layer {
            Found::ConvBn { weight, bn: [gamma, beta, mean, mut var], eps, .. } => {
                let c = gamma.len();
                if let (None, Some(graph_eps)) = (eps, bn_eps) {
                    var = vec![(1.0 - graph_eps as f64) as f32; c];
                }
                tensors.push((format!("{prefix}.conv.weight"), weight.shape, weight.data));
                tensors.push((format!("{prefix}.bn.weight"), vec![c], gamma));
                tensors.push((format!("{prefix}.bn.bias"), vec![c], beta));
                tensors.push((format!("{prefix}.bn._mean"), vec![c], mean));
                tensors.push((format!("{prefix}.bn._variance"), vec![c], var));
            }
            Found::Se { reduce, reduce_bias, expand, expand_bias } => {
                let (mid, c) = (reduce_bias.len(), expand_bias.len());
                tensors.push((format!("{prefix}.conv1.weight"), reduce.shape, reduce.data));
                tensors.push((format!("{prefix}.conv1.bias"), vec![mid], reduce_bias));
                tensors.push((format!("{prefix}.conv2.weight"), expand.shape, expand.data));
                tensors.push((format!("{prefix}.conv2.bias"), vec![c], expand_bias));
            }
            Found::HeadConv { weight } => tensors.push((format!("{prefix}.weight"), weight.shape, weight.data)),
        }
    }
    // The canonical loader multiplies by the table's dropout scale (0.8);
    // keep the ONNX graph's own scale (its Mul constant, or 1 without one).
    let fc_scale = dropout / variant.dropout_scale;
    let classes = fc_weight.shape[1];
    let fc_data = fc_weight.data.iter().map(|v| v * fc_scale).collect();
    tensors.push(("fc.weight".into(), fc_weight.shape, fc_data));
    tensors.push(("fc.bias".into(), vec![classes], fc_bias));

    // `run` refuses non-finite weights at load; refuse them here already.
    for (name, _, data) in &tensors {
        if let Some(i) = data.iter().position(|v| !v.is_finite()) {
            return Err(fail(format!("tensor `{name}` holds a non-finite value ({}) at flat index {i}", data[i])));
        }
    }
    let labels = model
        .metadata_props
        .iter()
        .find(|p| p.key == "character" || p.key == "labels")
        .map(|p| p.value.lines().map(str::to_string).collect::<Vec<_>>())
        .filter(|l| l.len() == classes);
    Ok(Imported { variant, classes, tensors, labels, softmax, bn_eps })
}

/// The graph input's (height, width) when both are fixed numbers.
fn input_hw(input: &proto::ValueInfoProto) -> Option<[usize; 2]> {
    let dims = &input.r#type.as_ref()?.tensor_type.as_ref()?.shape.as_ref()?.dim;
    match dims[..] {
        [_, _, ref h, ref w] if h.dim_value > 0 && w.dim_value > 0 => {
            Some([h.dim_value as usize, w.dim_value as usize])
        }
        _ => None,
    }
}

/// The compiled variant whose channels and strides are the graph's; among
/// several, the one whose default input is the graph's fixed input size.
fn pick_variant(layers: &[Found], input: Option<[usize; 2]>) -> std::result::Result<&'static VariantInfo, String> {
    let strides: Vec<[usize; 2]> = layers
        .iter()
        .filter_map(|l| match l {
            Found::ConvBn { stride, .. } => Some(*stride),
            _ => None,
        })
        .collect();
    let fits = |v: &&VariantInfo| {
        let sig = v.signature();
        let table_strides: Vec<[usize; 2]> = v
            .layers
            .iter()
            .filter(|l| matches!(l.kind, LayerKind::Stem | LayerKind::Depthwise | LayerKind::Pointwise))
            .map(|l| l.stride)
            .collect();
        sig.len() == layers.len()
            && sig.iter().zip(layers).all(|((_, shape), l)| shape == l.signature_shape())
            && table_strides == strides
    };
    let candidates: Vec<&VariantInfo> = crate::variants().iter().filter(fits).collect();
    let by_input = candidates.iter().find(|v| input == Some([v.input[1], v.input[2]]));
    if let Some(v) = by_input.or(candidates.first()) {
        return Ok(v);
    }
    // The strides other than 1, in network order, as the table writes them.
    let dw_strides: Vec<String> = strides
        .iter()
        .filter(|s| **s != [1, 1])
        .map(|s| if s[0] == s[1] { s[0].to_string() } else { format!("[{}, {}]", s[0], s[1]) })
        .collect();
    let compiled: Vec<String> =
        crate::variants().iter().map(|v| format!("{} ({}x{} input)", v.name, v.input[1], v.input[2])).collect();
    Err(format!(
        "the graph is a PP-LCNet (stem {:?}, last conv {:?}, strides {}, input {}), but no compiled architecture \
         has its channels and strides; compiled: {}. The text-line architecture is the cargo feature \
         textline_x0_25 / textline_x1_0. For another one, copy lcnet-zoo/configs/pp_lcnet_textline.toml, set its \
         `widths`, `input` and block strides to the graph's, and either add it to lcnet-zoo (src/lib.rs, \
         src/registry.rs) so that this CLI imports it, or generate it with `lcnet_zoo::network!` in your own \
         crate and load the PaddleClas checkpoint there (examples/custom-net shows how)",
        layers.first().map(Found::signature_shape).unwrap_or_default(),
        layers.last().map(Found::signature_shape).unwrap_or_default(),
        dw_strides.join(", "),
        input.map_or("of any size".to_string(), |[h, w]| format!("{h}x{w}")),
        compiled.join(", ")
    ))
}

/// The one BatchNorm epsilon of every BN node (None without BN nodes).
fn common_eps(layers: &[Found]) -> std::result::Result<Option<f32>, String> {
    let mut all = layers.iter().filter_map(|l| match l {
        Found::ConvBn { eps, .. } => *eps,
        _ => None,
    });
    let first = all.next();
    match (first, all.find(|e| Some(*e) != first)) {
        (_, Some(other)) => Err(format!(
            "the BatchNorm nodes use different epsilons ({first:?} and {other}); lcnet keeps one per checkpoint"
        )),
        _ => Ok(first),
    }
}

type Matched = (Vec<Found>, Tensor, Vec<f32>, f32, bool);

fn match_pplcnet(cur: &mut Cursor) -> std::result::Result<Matched, String> {
    let mut layers = Vec::new();
    layers.push(conv_bn_act(cur, "the stem conv", |g| g == 1)?);
    // Depthwise-separable blocks until the head's pooling.
    while cur.peek() == Some("Conv") {
        layers.push(conv_bn_act(cur, "a depthwise conv", |g| g > 1)?);
        if cur.peek() == Some("GlobalAveragePool") && looks_like_se(cur) {
            layers.push(squeeze_excite(cur)?);
        }
        layers.push(conv_bn_act(cur, "a pointwise conv", |g| g == 1)?);
    }
    if layers.len() < 3 {
        return Err(format!("{}: expected depthwise-separable blocks after the stem", cur.position()));
    }
    cur.expect("GlobalAveragePool", "the head's pooling")?;
    let conv = cur.expect("Conv", "the head conv (last_conv)")?;
    let weight = cur.weight(conv, 1, "last_conv weight")?;
    if conv.input.len() > 2 {
        return Err(format!("node `{}`: the head conv has a bias; PaddleClas's last_conv has none", conv.name));
    }
    layers.push(Found::HeadConv { weight });
    cur.expect("HardSwish", "the head activation")?;
    let mut dropout = 1.0;
    if cur.peek() == Some("Mul") {
        let (node, scale) = cur.expect_with_constant("Mul", "the dropout scale")?;
        if scale.data.len() != 1 {
            return Err(format!(
                "node `{}`: the dropout Mul has {} values, expected one scalar",
                node.name,
                scale.data.len()
            ));
        }
        dropout = scale.data[0];
    }
    if matches!(cur.peek(), Some("Reshape" | "Flatten")) {
        let op = cur.peek().unwrap_or_default();
        cur.expect(op, "the flatten")?;
    }
    let (fc_weight, fc_bias) = match cur.peek() {
        Some("Gemm") => {
            let (node, w) = cur.expect_with_constant("Gemm", "the FC")?;
            let bias = cur.weight(node, 2, "FC bias")?;
            // Gemm computes A x B' when transB = 1 (PyTorch's Linear layout).
            let w = if attr_i(node, "transB") == Some(1) { transpose(&w) } else { w };
            (w, bias)
        }
        _ => {
            let (_, w) = cur.expect_with_constant("MatMul", "the FC (MatMul)")?;
            let (_, bias) = cur.expect_with_constant("Add", "the FC bias")?;
            (w, bias)
        }
    };
    if fc_weight.shape.len() != 2 || fc_bias.data.len() != fc_weight.shape[1] {
        return Err(format!("FC weight {:?} and bias {:?} do not fit together", fc_weight.shape, fc_bias.shape));
    }
    let softmax = cur.peek() == Some("Softmax");
    if softmax {
        cur.expect("Softmax", "the output softmax")?;
    }
    if let Some(op) = cur.peek() {
        return Err(format!("{}: unexpected {op} after the classifier", cur.position()));
    }
    Ok((layers, fc_weight, fc_bias.data, dropout, softmax))
}

/// True when the GlobalAveragePool ahead opens an SE module (its Conv is
/// followed by a bias Add or the ReLU), not the head (Conv then HardSwish).
fn looks_like_se(cur: &Cursor) -> bool {
    let mut probe = cur.clone();
    probe.expect("GlobalAveragePool", "").is_ok()
        && probe.expect("Conv", "").is_ok()
        && matches!(probe.peek(), Some("Add" | "Relu"))
}

/// An SE conv and its bias: a third Conv input (exporters that fold it) or
/// a following `Add` of a constant (paddle2onnx).
fn conv_with_bias(cur: &mut Cursor, what: &str) -> std::result::Result<(Tensor, Vec<f32>), String> {
    let node = cur.expect("Conv", what)?;
    let weight = cur.weight(node, 1, what)?;
    let bias = if node.input.len() > 2 {
        cur.weight(node, 2, what)?
    } else {
        cur.expect_with_constant("Add", &format!("the bias of {what}"))?.1
    };
    Ok((weight, bias.data))
}

fn squeeze_excite(cur: &mut Cursor) -> std::result::Result<Found, String> {
    cur.expect("GlobalAveragePool", "the SE pooling")?;
    let (reduce, reduce_bias) = conv_with_bias(cur, "the SE reduce conv")?;
    cur.expect("Relu", "the SE ReLU")?;
    let (expand, expand_bias) = conv_with_bias(cur, "the SE expand conv")?;
    let sig = cur.expect("HardSigmoid", "the SE gate")?;
    let alpha = attr_f(sig, "alpha").unwrap_or(0.2);
    let beta = attr_f(sig, "beta").unwrap_or(0.5);
    if (alpha - lcnet_core::__private::kernels::activation::HARD_SIGMOID_SLOPE).abs() > 1e-6
        || (beta - 0.5).abs() > 1e-6
    {
        return Err(format!(
            "node `{}`: HardSigmoid alpha {alpha}, beta {beta}; PaddleClas uses 0.1666667 and 0.5",
            sig.name
        ));
    }
    cur.expect("Mul", "the SE rescale")?;
    Ok(Found::Se { reduce, reduce_bias, expand, expand_bias })
}

/// `Conv [-> BatchNormalization] -> HardSwish`; a Conv with a bias and no BN
/// (an export with BN already folded) becomes an identity BN.
fn conv_bn_act(cur: &mut Cursor, what: &str, group_ok: impl Fn(i64) -> bool) -> std::result::Result<Found, String> {
    let conv = cur.expect("Conv", what)?;
    let weight = cur.weight(conv, 1, "conv weight")?;
    let [o, _, kh, kw] = weight.shape[..] else {
        return Err(format!("node `{}`: conv weight has shape {:?}, expected 4 dims", conv.name, weight.shape));
    };
    let group = attr_i(conv, "group").unwrap_or(1);
    if !group_ok(group) {
        return Err(format!("node `{}`: group {group} does not fit {what}", conv.name));
    }
    let strides = attr_ints(conv, "strides").unwrap_or_else(|| vec![1, 1]);
    let pads = attr_ints(conv, "pads").unwrap_or_else(|| vec![0, 0, 0, 0]);
    let (ph, pw) = (((kh - 1) / 2) as i64, ((kw - 1) / 2) as i64);
    if kh != kw || pads != [ph, pw, ph, pw] || attr_ints(conv, "dilations").is_some_and(|d| d != [1, 1]) {
        return Err(format!(
            "node `{}`: kernel {kh}x{kw}, pads {pads:?}: PP-LCNet pads every conv symmetrically by (k - 1) / 2",
            conv.name
        ));
    }
    let [sh, sw] = strides[..] else { return Err(format!("node `{}`: strides {strides:?}", conv.name)) };
    let stride = [sh as usize, sw as usize];
    let bn = if cur.peek() == Some("BatchNormalization") {
        let node = cur.expect("BatchNormalization", "the BatchNorm after the conv")?;
        let mut params = Vec::new();
        for (i, name) in [(1, "scale"), (2, "bias"), (3, "mean"), (4, "var")] {
            let t = cur.weight(node, i, name)?;
            if t.data.len() != o {
                return Err(format!("node `{}`: BN {name} has {} values for {o} channels", node.name, t.data.len()));
            }
            params.push(t.data);
        }
        // ONNX's default epsilon is the f32 1e-5, as paddle2onnx writes it.
        let eps = attr_f(node, "epsilon").unwrap_or(1e-5);
        let var = params.pop().expect("four BN tensors");
        ([params[0].clone(), params[1].clone(), params[2].clone(), var], Some(eps))
    } else if conv.input.len() > 2 {
        let bias = cur.weight(conv, 2, "conv bias")?;
        // An identity BN: var + eps = 1 with the default eps (import()
        // rewrites it for another graph-wide eps).
        ([vec![1.0; o], bias.data, vec![0.0; o], vec![(1.0 - BN_EPS) as f32; o]], None)
    } else {
        return Err(format!("{}: expected the BatchNorm of {what}", cur.position()));
    };
    let (bn, eps) = bn;
    cur.expect("HardSwish", &format!("the activation of {what}"))?;
    Ok(Found::ConvBn { weight, bn, stride, eps })
}

fn transpose(t: &Tensor) -> Tensor {
    let (r, c) = (t.shape[0], t.shape[1]);
    let mut data = vec![0.0; t.data.len()];
    for i in 0..r {
        for j in 0..c {
            data[j * r + i] = t.data[i * c + j];
        }
    }
    Tensor { shape: vec![c, r], data }
}

/// Writes `imported` as a canonical safetensors checkpoint with `metadata`
/// (plus model, classes and labels), atomically, replacing an existing file
/// only as `overwrite` allows.
pub fn save(
    imported: &Imported,
    path: &Path,
    mut metadata: BTreeMap<String, String>,
    overwrite: Overwrite,
) -> Result<()> {
    metadata.insert("model".into(), imported.variant.name.into());
    metadata.insert("classes".into(), imported.classes.to_string());
    metadata.insert("output".into(), if imported.softmax { "softmax" } else { "logits" }.into());
    if let Some(labels) = &imported.labels {
        metadata.insert("labels".into(), json_string_array(labels));
    }
    if let Some(eps) = imported.bn_eps {
        // The shortest text that reads back as this f32 widened to f64.
        metadata.insert(BN_EPS_KEY.into(), format!("{:e}", eps as f64));
    }
    let views: Vec<(&str, Vec<usize>, &[f32])> =
        imported.tensors.iter().map(|(n, s, d)| (n.as_str(), s.clone(), d.as_slice())).collect();
    Ok(lcnet_core::weights::save_f32_as(path, &views, &metadata, overwrite)?)
}

fn json_string_array(items: &[String]) -> String {
    serde_json::to_string(items).expect("strings serialise")
}
