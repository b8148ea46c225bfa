//! A look at the protobuf wire format before decoding: how many messages
//! prost would build. Each decoded node or attribute costs a hundred bytes
//! or more of memory for as little as two bytes of file, so a 10 MB file of
//! empty attributes decoded to 1.27 GB before the matcher refused it. This
//! counts them first (no allocation) and refuses a file that would decode to
//! more than [`MAX_DECODED`].

/// Memory the decoded model may take, beyond its tensors' bytes.
const MAX_DECODED: u64 = 256 << 20;

/// Bytes one decoded message of the graph costs at the least (a `NodeProto`
/// or `AttributeProto` with its vectors and strings empty).
const PER_MESSAGE: u64 = 160;

/// The messages of `onnx.proto` the decoder builds, as far as they repeat.
#[derive(Clone, Copy)]
enum Kind {
    Model,
    Graph,
    Node,
}

/// The message kind of field `field` inside a `kind`: `Some(Some(kind))` to
/// count and descend, `Some(None)` to count only (a tensor, a value, an
/// attribute, a metadata entry), `None` for scalars, strings and bytes.
fn field_kind(kind: Kind, field: u64) -> Option<Option<Kind>> {
    match (kind, field) {
        (Kind::Model, 7) => Some(Some(Kind::Graph)),
        (Kind::Model, 14) | (Kind::Model, 8) => Some(None),
        (Kind::Graph, 1) => Some(Some(Kind::Node)),
        (Kind::Graph, 5 | 11 | 12 | 13) => Some(None),
        (Kind::Node, 5) => Some(None),
        _ => None,
    }
}

/// Refuses `bytes` when decoding them would build too many messages.
pub fn check_decoded_size(bytes: &[u8]) -> Result<(), String> {
    let mut messages = 0u64;
    count(bytes, Kind::Model, &mut messages).map_err(|e| format!("not a readable ONNX model: {e}"))?;
    let decoded = messages.saturating_mul(PER_MESSAGE);
    if decoded > MAX_DECODED {
        return Err(format!(
            "the model holds {messages} graph messages (nodes, attributes, values), which would take over {} MB \
             to decode; a PP-LCNet has a few hundred",
            decoded >> 20
        ));
    }
    Ok(())
}

/// Counts the messages in `bytes`, a `kind`, that the decoder builds
/// (three levels deep at most: model, graph, node).
fn count(mut bytes: &[u8], kind: Kind, messages: &mut u64) -> Result<(), String> {
    while !bytes.is_empty() {
        let key = varint(&mut bytes)?;
        let (field, wire_type) = (key >> 3, key & 7);
        match wire_type {
            0 => {
                varint(&mut bytes)?;
            }
            1 => bytes = bytes.get(8..).ok_or("truncated fixed64")?,
            5 => bytes = bytes.get(4..).ok_or("truncated fixed32")?,
            2 => {
                let len = usize::try_from(varint(&mut bytes)?).map_err(|_| "length overflows")?;
                let body = bytes.get(..len).ok_or("truncated (a field is longer than the file)")?;
                if let Some(inner) = field_kind(kind, field) {
                    *messages += 1;
                    if let Some(inner) = inner {
                        count(body, inner, messages)?;
                    }
                }
                bytes = &bytes[len..];
            }
            other => return Err(format!("wire type {other} is not protobuf's")),
        }
    }
    Ok(())
}

fn varint(bytes: &mut &[u8]) -> Result<u64, String> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = bytes.split_first().ok_or("truncated varint")?;
        *bytes = rest;
        value |= ((b & 0x7f) as u64) << shift;
        if b & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err("varint longer than 10 bytes".into())
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::super::proto::{AttributeProto, GraphProto, ModelProto, NodeProto};
    use super::*;

    #[test]
    fn counts_nodes_and_attributes_without_decoding() {
        let node = NodeProto { attribute: vec![AttributeProto::default(); 3], ..Default::default() };
        let model =
            ModelProto { graph: Some(GraphProto { node: vec![node; 2], ..Default::default() }), ..Default::default() };
        let mut messages = 0;
        count(&model.encode_to_vec(), Kind::Model, &mut messages).unwrap();
        assert_eq!(messages, 1 + 2 + 2 * 3);
        assert!(check_decoded_size(&model.encode_to_vec()).is_ok());
    }

    #[test]
    fn a_file_of_empty_attributes_is_refused_before_decoding() {
        // 2M empty attributes: a 4 MB file that would decode to over 300 MB.
        let node = NodeProto { attribute: vec![AttributeProto::default(); 2_000_000], ..Default::default() };
        let model =
            ModelProto { graph: Some(GraphProto { node: vec![node], ..Default::default() }), ..Default::default() };
        let bytes = model.encode_to_vec();
        assert!(bytes.len() < 5_000_000, "{}", bytes.len());
        let err = check_decoded_size(&bytes).unwrap_err();
        assert!(err.contains("2000002 graph messages"), "{err}");
        assert!(check_decoded_size(&bytes[..bytes.len() - 1]).unwrap_err().contains("truncated"));
    }
}
