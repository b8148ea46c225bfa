//! A read-only view of an ONNX graph for pattern matching: initializers and
//! `Constant` nodes by name, constant subgraphs folded ([`super::fold`]),
//! `Identity` nodes seen through, shape plumbing skipped, and a cursor that
//! walks the compute nodes in order and checks that each one consumes what
//! the previous one produced.

use std::collections::HashMap;

use lcnet_core::weights::{bf16_to_f32, f16_to_f32};

use super::fold::{fold, FOLDABLE};
use super::proto::{
    AttributeProto, GraphProto, NodeProto, TensorProto, DATA_TYPE_BFLOAT16, DATA_TYPE_DOUBLE, DATA_TYPE_FLOAT,
    DATA_TYPE_FLOAT16, DATA_TYPE_INT32, DATA_TYPE_INT64,
};

/// Ops that only compute shapes for a Reshape/Flatten; when they read a live
/// value (not foldable), the importer skips them.
const SHAPE_PLUMBING: [&str; 5] = ["Shape", "Slice", "Concat", "Gather", "Unsqueeze"];

/// An f32 tensor read from the graph.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// The graph, indexed.
pub struct Graph<'a> {
    /// Compute nodes in file order, with their index in the file.
    nodes: Vec<(usize, &'a NodeProto)>,
    /// Initializers, `Constant` outputs and folded values (or why one could
    /// not be read, reported only if the matcher needs it).
    consts: HashMap<&'a str, Result<Tensor, String>>,
    alias: HashMap<&'a str, &'a str>,
}

impl<'a> Graph<'a> {
    /// Indexes `g`, folding constant subgraphs.
    pub fn new(g: &'a GraphProto) -> Result<Self, String> {
        let mut consts: HashMap<&str, Result<Tensor, String>> =
            g.initializer.iter().map(|t| (t.name.as_str(), read_f32(t))).collect();
        let mut graph = Graph { nodes: Vec::new(), consts: HashMap::new(), alias: HashMap::new() };
        for (i, n) in g.node.iter().enumerate() {
            let out = n.output.first().map(String::as_str);
            match n.op_type.as_str() {
                "Identity" => {
                    let (Some(out), Some(inp)) = (out, n.input.first()) else {
                        return Err(format!("{} has no input or output", label(i, n)));
                    };
                    graph.alias.insert(out, inp.as_str());
                }
                "Constant" => {
                    let Some(out) = out else { return Err(format!("{} has no output", label(i, n))) };
                    let value =
                        constant_value(n).ok_or_else(|| format!("{}: Constant without a value", label(i, n)))?;
                    consts.insert(out, value);
                }
                op if FOLDABLE.contains(&op) && out.is_some() && graph.all_constant(&consts, n) => {
                    let inputs: Vec<Option<Tensor>> = n
                        .input
                        .iter()
                        .map(|x| match x.is_empty() {
                            true => Ok(None),
                            false => consts[graph.resolve(x)].clone().map(Some),
                        })
                        .collect::<Result<_, _>>()
                        .unwrap_or_default();
                    let refs: Vec<Option<&Tensor>> = inputs.iter().map(Option::as_ref).collect();
                    let value = if refs.is_empty() { Err("an input is unreadable".into()) } else { fold(n, &refs) };
                    let value = value.map_err(|e| format!("{} folds no constant: {e}", label(i, n)));
                    consts.insert(out.unwrap_or_default(), value);
                }
                op if SHAPE_PLUMBING.contains(&op) => {}
                _ => graph.nodes.push((i, n)),
            }
        }
        graph.consts = consts;
        Ok(graph)
    }

    /// Whether every given input of `n` is a known constant.
    fn all_constant(&self, consts: &HashMap<&str, Result<Tensor, String>>, n: &NodeProto) -> bool {
        n.input.iter().all(|x| x.is_empty() || consts.contains_key(self.resolve(x)))
    }

    /// `name` with every Identity seen through.
    pub fn resolve<'n>(&'n self, mut name: &'n str) -> &'n str {
        // Bounded: a cycle of Identity nodes is not a valid ONNX graph.
        for _ in 0..self.alias.len() + 1 {
            match self.alias.get(name) {
                Some(src) => name = src,
                None => break,
            }
        }
        name
    }

    /// The constant feeding input `name`, as f32.
    pub fn constant(&self, name: &str) -> Option<Result<Tensor, String>> {
        self.consts.get(self.resolve(name)).cloned()
    }

    /// A cursor at the first compute node, expecting it to read `input`.
    pub fn cursor(&'a self, input: &'a str) -> Cursor<'a> {
        Cursor { graph: self, pos: 0, current: input, previous: "the graph input".into() }
    }
}

/// Walks compute nodes in order along the main data path.
#[derive(Clone)]
pub struct Cursor<'a> {
    graph: &'a Graph<'a>,
    pos: usize,
    /// The value the next node must consume.
    current: &'a str,
    previous: String,
}

impl<'a> Cursor<'a> {
    /// The op type of the next compute node.
    pub fn peek(&self) -> Option<&'a str> {
        self.graph.nodes.get(self.pos).map(|(_, n)| n.op_type.as_str())
    }

    /// Where the cursor is, for messages.
    pub fn position(&self) -> String {
        match self.graph.nodes.get(self.pos) {
            Some((i, n)) => label(*i, n),
            None => "the end of the graph".to_string(),
        }
    }

    /// Takes the next node, which must be `op` and read the current value.
    pub fn expect(&mut self, op: &str, what: &str) -> Result<&'a NodeProto, String> {
        let Some(&(i, node)) = self.graph.nodes.get(self.pos) else {
            return Err(format!("the graph ends where {what} ({op}) was expected after {}", self.previous));
        };
        if node.op_type != op {
            return Err(format!(
                "{} is where {what} ({op}) was expected after {}: not a PP-LCNet graph",
                label(i, node),
                self.previous
            ));
        }
        let reads_current = node.input.iter().any(|x| self.graph.resolve(x) == self.current);
        if !reads_current {
            return Err(format!(
                "{} ({what}) does not read `{}`, the output of {}: not a PP-LCNet chain",
                label(i, node),
                self.current,
                self.previous
            ));
        }
        let Some(out) = node.output.first() else {
            return Err(format!("{} has no output", label(i, node)));
        };
        self.pos += 1;
        self.current = out.as_str();
        self.previous = label(i, node);
        Ok(node)
    }

    /// The constant input of `node` that is not the main path (a weight or bias).
    pub fn weight(&self, node: &NodeProto, index: usize, what: &str) -> Result<Tensor, String> {
        let name = node.input.get(index).ok_or_else(|| format!("node `{}` has no {what} input", node.name))?;
        self.graph
            .constant(name)
            .ok_or_else(|| format!("node `{}`: {what} `{name}` is not a constant", node.name))?
            .map_err(|e| format!("node `{}`: {what} `{name}`: {e}", node.name))
    }

    /// Takes the next node, a binary `op` (Add, Mul, MatMul) of the current
    /// value and a constant; returns the node and the constant.
    pub fn expect_with_constant(&mut self, op: &str, what: &str) -> Result<(&'a NodeProto, Tensor), String> {
        let main = self.current;
        let node = self.expect(op, what)?;
        let index = node
            .input
            .iter()
            .position(|x| self.graph.resolve(x) != main)
            .ok_or_else(|| format!("node `{}` ({op}, {what}) has no constant operand", node.name))?;
        Ok((node, self.weight(node, index, what)?))
    }
}

/// `node #3 `conv_1` (Conv)`, or `node #3 (Conv)` for an unnamed node.
pub fn label(index: usize, node: &NodeProto) -> String {
    if node.name.is_empty() {
        format!("node #{index} ({})", node.op_type)
    } else {
        format!("node #{index} `{}` ({})", node.name, node.op_type)
    }
}

/// An integer attribute.
pub fn attr_i(node: &NodeProto, name: &str) -> Option<i64> {
    attr(node, name).map(|a| a.i)
}

/// An integer-list attribute.
pub fn attr_ints(node: &NodeProto, name: &str) -> Option<Vec<i64>> {
    attr(node, name).map(|a| a.ints.clone())
}

/// A float attribute.
pub fn attr_f(node: &NodeProto, name: &str) -> Option<f32> {
    attr(node, name).map(|a| a.f)
}

fn attr<'n>(node: &'n NodeProto, name: &str) -> Option<&'n AttributeProto> {
    node.attribute.iter().find(|a| a.name == name)
}

/// Largest tensor the importer accepts (elements); PP-LCNet x2.5's largest is
/// 1280 x 1280, an ImageNet FC 1280 x 1000, so this leaves room for big class
/// counts while refusing absurd declared shapes before allocating.
const MAX_ELEMENTS: usize = 1 << 28;

fn read_f32(t: &TensorProto) -> Result<Tensor, String> {
    let mut shape = Vec::with_capacity(t.dims.len());
    for &d in &t.dims {
        shape.push(usize::try_from(d).map_err(|_| format!("negative dimension {d}"))?);
    }
    let count = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d)).filter(|&n| n <= MAX_ELEMENTS);
    let count = count.ok_or_else(|| format!("declared shape {shape:?} is too large"))?;
    if !t.external_data.is_empty() {
        return Err("tensor data is stored in an external file, which the importer does not read".into());
    }
    let raw = |width: usize| t.raw_data.chunks_exact(width);
    let data: Vec<f32> = match t.data_type {
        DATA_TYPE_FLOAT if !t.raw_data.is_empty() => {
            raw(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
        }
        DATA_TYPE_FLOAT => t.float_data.clone(),
        DATA_TYPE_DOUBLE if !t.raw_data.is_empty() => {
            raw(8).map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")) as f32).collect()
        }
        DATA_TYPE_DOUBLE => t.double_data.iter().map(|&v| v as f32).collect(),
        DATA_TYPE_FLOAT16 | DATA_TYPE_BFLOAT16 => {
            let widen = if t.data_type == DATA_TYPE_FLOAT16 { f16_to_f32 } else { bf16_to_f32 };
            if t.raw_data.is_empty() {
                t.int32_data.iter().map(|&v| widen(v as u16)).collect()
            } else {
                raw(2).map(|b| widen(u16::from_le_bytes([b[0], b[1]]))).collect()
            }
        }
        DATA_TYPE_INT32 if !t.raw_data.is_empty() => {
            raw(4).map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32).collect()
        }
        DATA_TYPE_INT32 => t.int32_data.iter().map(|&v| v as f32).collect(),
        DATA_TYPE_INT64 if !t.raw_data.is_empty() => {
            raw(8).map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")) as f32).collect()
        }
        DATA_TYPE_INT64 => t.int64_data.iter().map(|&v| v as f32).collect(),
        other => return Err(format!("data type {other} is not a float or integer type the importer reads")),
    };
    if data.len() != count {
        return Err(format!("holds {} values but its shape {shape:?} needs {count}", data.len()));
    }
    Ok(Tensor { shape, data })
}

/// The value of a `Constant` node: its `value` tensor or one of the scalar
/// and list forms of opset 12.
fn constant_value(n: &NodeProto) -> Option<Result<Tensor, String>> {
    let a = n.attribute.first()?;
    let list = |data: Vec<f32>| Tensor { shape: vec![data.len()], data };
    Some(Ok(match a.name.as_str() {
        "value" => return a.t.as_ref().map(read_f32),
        "value_float" => Tensor { shape: vec![], data: vec![a.f] },
        "value_int" => Tensor { shape: vec![], data: vec![a.i as f32] },
        "value_floats" => list(a.floats.clone()),
        "value_ints" => list(a.ints.iter().map(|&v| v as f32).collect()),
        other => return Some(Err(format!("Constant `{other}` attribute is not read"))),
    }))
}
