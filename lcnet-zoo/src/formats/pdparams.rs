//! PaddlePaddle `.pdparams` files: what `paddle.save(model.state_dict(),
//! path)` writes, a pickled dict from parameter name to numpy array, read
//! with the allow-listed interpreter in [`super::pickle`].

use lcnet_core::weights::f16_to_f32;

use super::pickle::{self, Array, ElementType, Value};
use super::Tensor;

/// The entry `paddle.save` adds to map structured names to Paddle's internal
/// parameter names (`conv2d_0.w_0`, ...); not a tensor, ignored.
pub const STRUCTURED_NAMES_KEY: &str = "StructuredToParameterName@@";

/// Whether `bytes` starts like a pickle of protocol 2 or later (every
/// `paddle.save` since Paddle 2.0 writes protocol 2 or 4).
pub fn looks_like_pickle(bytes: &[u8]) -> bool {
    bytes.len() >= 2 && bytes[0] == 0x80 && (2..=5).contains(&bytes[1])
}

/// Reads every array of a pickled state dict as f32, in file order.
pub fn read(bytes: &[u8]) -> Result<Vec<Tensor>, String> {
    let root = pickle::load(bytes)?;
    let Value::Dict(dict) = root else {
        return Err(format!("the pickle holds a {}, expected a dict of parameter name -> numpy array", root.kind()));
    };
    let mut tensors = Vec::new();
    for (key, value) in dict.items() {
        let Value::Str(name) = key else {
            return Err(format!("a dict key is a {}, expected a parameter name", key.kind()));
        };
        if &*name == STRUCTURED_NAMES_KEY {
            continue;
        }
        let Value::Array(array) = value else {
            return Err(format!("`{name}` is a {}, expected a numpy array", value.kind()));
        };
        let array = array.borrow();
        let values = to_f32(&array).map_err(|e| format!("`{name}`: {e}"))?;
        tensors.push(Tensor { name: name.to_string(), shape: array.shape.clone(), values });
    }
    Ok(tensors)
}

/// The array's values as f32 in C (row-major) order.
fn to_f32(array: &Array) -> Result<Vec<f32>, String> {
    let et = array.dtype.ok_or("array was never filled in (no BUILD)")?;
    let raw = array.data.chunks_exact(et.size());
    let values: Vec<f32> = match et {
        ElementType::F32 => raw.map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes"))).collect(),
        ElementType::F64 => raw.map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")) as f32).collect(),
        ElementType::F16 => raw.map(|b| f16_to_f32(u16::from_le_bytes(b.try_into().expect("2 bytes")))).collect(),
        ElementType::I64 => raw.map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")) as f32).collect(),
        ElementType::I32 => raw.map(|b| i32::from_le_bytes(b.try_into().expect("4 bytes")) as f32).collect(),
    };
    Ok(if array.fortran && array.shape.len() > 1 { fortran_to_c(&values, &array.shape) } else { values })
}

/// Reorders column-major values of `shape` into row-major order.
fn fortran_to_c(values: &[f32], shape: &[usize]) -> Vec<f32> {
    let mut out = vec![0.0; values.len()];
    let mut index = vec![0usize; shape.len()];
    for slot in out.iter_mut() {
        // Offset of the current row-major index in column-major storage.
        let (mut offset, mut stride) = (0, 1);
        for (i, &n) in index.iter().zip(shape) {
            offset += i * stride;
            stride *= n;
        }
        *slot = values[offset];
        for d in (0..shape.len()).rev() {
            index[d] += 1;
            if index[d] < shape[d] {
                break;
            }
            index[d] = 0;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{f16_to_f32, fortran_to_c};

    #[test]
    fn fortran_order_becomes_row_major() {
        // [[0, 1, 2], [3, 4, 5]] stored column by column.
        assert_eq!(fortran_to_c(&[0.0, 3.0, 1.0, 4.0, 2.0, 5.0], &[2, 3]), vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
    }

    #[test]
    fn half_precision_values() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert!(f16_to_f32(0x7c00).is_infinite());
    }
}
