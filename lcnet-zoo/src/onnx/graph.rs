//! A read-only view of an ONNX graph for pattern matching: initializers by
//! name, `Identity` nodes seen through, shape plumbing skipped, and a cursor
//! that walks the compute nodes in order and checks that each one consumes
//! what the previous one produced.

use std::collections::HashMap;

use super::proto::{AttributeProto, GraphProto, NodeProto, TensorProto, DATA_TYPE_FLOAT, DATA_TYPE_INT64};

/// Ops that only compute shapes for a Reshape/Flatten; the importer skips them.
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
    inits: HashMap<&'a str, &'a TensorProto>,
    alias: HashMap<&'a str, &'a str>,
}

impl<'a> Graph<'a> {
    /// Indexes `g`.
    pub fn new(g: &'a GraphProto) -> Result<Self, String> {
        let mut inits: HashMap<&str, &TensorProto> = g.initializer.iter().map(|t| (t.name.as_str(), t)).collect();
        let mut alias = HashMap::new();
        let mut nodes = Vec::new();
        for (i, n) in g.node.iter().enumerate() {
            match n.op_type.as_str() {
                "Identity" => {
                    let (Some(out), Some(inp)) = (n.output.first(), n.input.first()) else {
                        return Err(format!("{} has no input or output", label(i, n)));
                    };
                    alias.insert(out.as_str(), inp.as_str());
                }
                "Constant" => {
                    let t = n.attribute.iter().find(|a| a.name == "value").and_then(|a| a.t.as_ref());
                    match (t, n.output.first()) {
                        (Some(t), Some(out)) => {
                            inits.insert(out.as_str(), t);
                        }
                        _ => return Err(format!("{}: Constant without a tensor value", label(i, n))),
                    }
                }
                op if SHAPE_PLUMBING.contains(&op) => {}
                _ => nodes.push((i, n)),
            }
        }
        Ok(Graph { nodes, inits, alias })
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

    /// The initializer feeding input `name`, as f32.
    pub fn constant(&self, name: &str) -> Option<Result<Tensor, String>> {
        self.inits.get(self.resolve(name)).map(|t| read_f32(t))
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
            .ok_or_else(|| format!("node `{}`: {what} `{name}` is not a constant initializer", node.name))?
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
    let data: Vec<f32> = match t.data_type {
        DATA_TYPE_FLOAT if !t.raw_data.is_empty() => {
            t.raw_data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
        }
        DATA_TYPE_FLOAT => t.float_data.clone(),
        DATA_TYPE_INT64 if !t.raw_data.is_empty() => t
            .raw_data
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32)
            .collect(),
        DATA_TYPE_INT64 => t.int64_data.iter().map(|&v| v as f32).collect(),
        other => return Err(format!("data type {other} is not float32")),
    };
    if data.len() != count {
        return Err(format!("holds {} values but its shape {shape:?} needs {count}", data.len()));
    }
    Ok(Tensor { shape, data })
}
