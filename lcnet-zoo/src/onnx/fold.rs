//! Constant folding: the ops exporters put between a weight and its use.
//!
//! Newer paddle2onnx exports store every weight as a `Constant` node and
//! reshape SE biases with a live `Reshape([1, C, 1, 1])`; others compute a
//! flatten's target shape with `Shape -> Slice -> Concat`. A node whose inputs
//! are all constants and whose op is one of these is evaluated here, so the
//! matcher sees a plain constant operand. Values are f32 (integers of shapes
//! are exact up to 2^24, far past any shape here); no op grows its input
//! beyond the sum of its operands, so folding is bounded by the file.

use super::graph::{attr_i, attr_ints, Tensor};
use super::proto::NodeProto;

/// The ops that [`fold`] evaluates on constant inputs.
pub const FOLDABLE: [&str; 9] =
    ["Reshape", "Unsqueeze", "Squeeze", "Flatten", "Cast", "Shape", "Slice", "Concat", "Gather"];

/// The output of `node` given its constant inputs (`inputs[i]` is input `i`,
/// `None` for an omitted optional input). `Err` says why it cannot be folded.
pub fn fold(node: &NodeProto, inputs: &[Option<&Tensor>]) -> Result<Tensor, String> {
    let input = |i: usize| inputs.get(i).copied().flatten();
    let data = input(0).ok_or("no data input")?;
    match node.op_type.as_str() {
        "Reshape" => {
            let target = ints(input(1).ok_or("Reshape without a shape")?);
            reshaped(data, reshape_dims(&data.shape, &target, attr_i(node, "allowzero") == Some(1))?)
        }
        "Unsqueeze" => {
            let axes = match input(1) {
                Some(t) => ints(t),
                None => attr_ints(node, "axes").unwrap_or_default(),
            };
            let rank = data.shape.len() + axes.len();
            let mut axes: Vec<usize> = axes.iter().map(|&a| axis(a, rank)).collect::<Result<_, _>>()?;
            axes.sort_unstable();
            let mut shape = data.shape.clone();
            for a in axes {
                shape.insert(a.min(shape.len()), 1);
            }
            reshaped(data, shape)
        }
        "Squeeze" => {
            let axes = match input(1) {
                Some(t) => ints(t),
                None => attr_ints(node, "axes").unwrap_or_default(),
            };
            let rank = data.shape.len();
            let axes: Vec<usize> = axes.iter().map(|&a| axis(a, rank)).collect::<Result<_, _>>()?;
            let keep = |(i, &d): &(usize, &usize)| if axes.is_empty() { d != 1 } else { !axes.contains(i) };
            reshaped(data, data.shape.iter().enumerate().filter(keep).map(|(_, &d)| d).collect())
        }
        "Flatten" => {
            let a = axis(attr_i(node, "axis").unwrap_or(1), data.shape.len())?;
            let (outer, inner) = data.shape.split_at(a);
            reshaped(data, vec![outer.iter().product(), inner.iter().product()])
        }
        "Cast" => {
            // To an integer type (TensorProto.DataType 2..=7, 12, 13) values truncate.
            let to_int = matches!(attr_i(node, "to"), Some(2..=7 | 12 | 13));
            let values = if to_int { data.data.iter().map(|v| v.trunc()).collect() } else { data.data.clone() };
            Ok(Tensor { shape: data.shape.clone(), data: values })
        }
        "Shape" => Ok(vector(data.shape.iter().map(|&d| d as f32).collect())),
        "Slice" => {
            let [n] = data.shape[..] else { return Err("Slice of a tensor that is not 1-D".into()) };
            let first = |i: usize| input(i).and_then(|t| t.data.first().copied());
            let (start, end) = (first(1).ok_or("Slice without starts")?, first(2).ok_or("Slice without ends")?);
            if input(3).is_some_and(|t| ints(t) != [0] && ints(t) != [-1]) {
                return Err("Slice on an axis other than 0".into());
            }
            if first(4).is_some_and(|step| step != 1.0) {
                return Err("Slice with a step other than 1".into());
            }
            let clamp = |v: f32| (if v < 0.0 { v as f64 + n as f64 } else { v as f64 }).clamp(0.0, n as f64) as usize;
            let (start, end) = (clamp(start), clamp(end));
            Ok(vector(data.data[start..end.max(start)].to_vec()))
        }
        "Concat" => {
            let parts: Vec<&Tensor> =
                inputs.iter().map(|t| t.ok_or("Concat with an omitted input")).collect::<Result<_, _>>()?;
            let rank = data.shape.len();
            if axis(attr_i(node, "axis").unwrap_or(0), rank)? != 0
                || parts.iter().any(|t| t.shape[1.min(rank)..] != data.shape[1.min(rank)..])
            {
                return Err("Concat other than along the first axis of equal-shaped parts".into());
            }
            let mut shape = data.shape.clone();
            shape[0] = parts.iter().map(|t| t.shape[0]).sum();
            Ok(Tensor { shape, data: parts.iter().flat_map(|t| t.data.iter().copied()).collect() })
        }
        "Gather" => {
            let index = input(1).ok_or("Gather without indices")?;
            let [n] = data.shape[..] else { return Err("Gather from a tensor that is not 1-D".into()) };
            let mut values = Vec::with_capacity(index.data.len());
            for &i in &index.data {
                let i = if i < 0.0 { i + n as f32 } else { i };
                if !(0.0..n as f32).contains(&i) {
                    return Err(format!("Gather index {i} outside 0..{n}"));
                }
                values.push(data.data[i as usize]);
            }
            reshaped(&Tensor { shape: vec![values.len()], data: values }, index.shape.clone())
        }
        op => Err(format!("{op} is not folded")),
    }
}

/// The dims a Reshape to `target` gives `shape` (`0` copies the input's dim
/// unless `allow_zero`, `-1` takes what is left).
fn reshape_dims(shape: &[usize], target: &[i64], allow_zero: bool) -> Result<Vec<usize>, String> {
    let count: usize = shape.iter().product();
    let mut dims = Vec::with_capacity(target.len());
    let mut infer = None;
    for (i, &d) in target.iter().enumerate() {
        dims.push(match d {
            -1 if infer.is_none() => {
                infer = Some(i);
                1
            }
            0 if !allow_zero => *shape.get(i).ok_or("Reshape copies a dim the input lacks")?,
            d if d >= 0 => d as usize,
            _ => return Err(format!("Reshape target {target:?}")),
        });
    }
    if let Some(i) = infer {
        let known: usize = dims.iter().product();
        if known == 0 || !count.is_multiple_of(known) {
            return Err(format!("Reshape of {shape:?} to {target:?}"));
        }
        dims[i] = count / known;
    }
    Ok(dims)
}

/// `data` with new dims holding the same number of values.
fn reshaped(data: &Tensor, shape: Vec<usize>) -> Result<Tensor, String> {
    if shape.iter().product::<usize>() != data.data.len() {
        return Err(format!("{:?} cannot become {shape:?}", data.shape));
    }
    Ok(Tensor { shape, data: data.data.clone() })
}

fn vector(data: Vec<f32>) -> Tensor {
    Tensor { shape: vec![data.len()], data }
}

fn ints(t: &Tensor) -> Vec<i64> {
    t.data.iter().map(|&v| v as i64).collect()
}

/// A possibly negative axis of a tensor of `rank` dims.
fn axis(a: i64, rank: usize) -> Result<usize, String> {
    let r = rank as i64;
    if (-r..r.max(1)).contains(&a) {
        Ok(a.rem_euclid(r.max(1)) as usize)
    } else {
        Err(format!("axis {a} of a rank-{rank} tensor"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(op: &str, attrs: &[(&str, i64)]) -> NodeProto {
        let attribute = attrs
            .iter()
            .map(|&(name, i)| super::super::proto::AttributeProto { name: name.into(), i, ..Default::default() })
            .collect();
        NodeProto { op_type: op.into(), attribute, ..Default::default() }
    }

    fn t(shape: &[usize], data: &[f32]) -> Tensor {
        Tensor { shape: shape.to_vec(), data: data.to_vec() }
    }

    #[test]
    fn reshape_unsqueeze_squeeze_flatten_keep_the_values() {
        let bias = t(&[4], &[1.0, 2.0, 3.0, 4.0]);
        let to = fold(&node("Reshape", &[]), &[Some(&bias), Some(&t(&[4], &[1.0, -1.0, 1.0, 1.0]))]).unwrap();
        assert_eq!(to, t(&[1, 4, 1, 1], &[1.0, 2.0, 3.0, 4.0]));
        let copy = fold(&node("Reshape", &[]), &[Some(&to), Some(&t(&[2], &[0.0, -1.0]))]).unwrap();
        assert_eq!(copy.shape, [1, 4]);
        let un = fold(&node("Unsqueeze", &[]), &[Some(&bias), Some(&t(&[3], &[0.0, 2.0, -1.0]))]).unwrap();
        assert_eq!(un.shape, [1, 4, 1, 1]);
        assert_eq!(fold(&node("Squeeze", &[]), &[Some(&un)]).unwrap().shape, [4]);
        assert_eq!(fold(&node("Flatten", &[("axis", 1)]), &[Some(&un)]).unwrap().shape, [1, 4]);
        assert!(fold(&node("Reshape", &[]), &[Some(&bias), Some(&t(&[1], &[3.0]))]).is_err());
    }

    #[test]
    fn shape_slice_concat_gather_compute_a_flatten_target() {
        let x = t(&[2, 5, 1, 1], &[0.0; 10]);
        let shape = fold(&node("Shape", &[]), &[Some(&x)]).unwrap();
        assert_eq!(shape.data, [2.0, 5.0, 1.0, 1.0]);
        let (zero, one, big) = (t(&[1], &[0.0]), t(&[1], &[1.0]), t(&[1], &[9.2e18]));
        let head = fold(&node("Slice", &[]), &[Some(&shape), Some(&zero), Some(&one), Some(&zero)]).unwrap();
        assert_eq!(head.data, [2.0]);
        let tail = fold(&node("Slice", &[]), &[Some(&shape), Some(&one), Some(&big)]).unwrap();
        assert_eq!(tail.data, [5.0, 1.0, 1.0]);
        let minus = t(&[1], &[-1.0]);
        let target = fold(&node("Concat", &[("axis", 0)]), &[Some(&head), Some(&minus)]).unwrap();
        assert_eq!(target, t(&[2], &[2.0, -1.0]));
        let g = fold(&node("Gather", &[]), &[Some(&shape), Some(&t(&[], &[-3.0]))]).unwrap();
        assert_eq!(g, t(&[], &[5.0]));
        assert!(fold(&node("Gather", &[]), &[Some(&shape), Some(&t(&[], &[4.0]))]).is_err());
        assert!(fold(&node("Mul", &[]), &[Some(&shape)]).is_err());
    }

    #[test]
    fn cast_to_an_integer_truncates() {
        let out = fold(&node("Cast", &[("to", 7)]), &[Some(&t(&[2], &[1.7, -2.5]))]).unwrap();
        assert_eq!(out.data, [1.0, -2.0]);
        let out = fold(&node("Cast", &[("to", 1)]), &[Some(&t(&[1], &[1.5]))]).unwrap();
        assert_eq!(out.data, [1.5]);
    }
}
