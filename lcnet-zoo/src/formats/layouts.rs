//! The key layouts PP-LCNet checkpoints come in, and their mapping to ours.
//!
//! Ours (canonical) is PaddleClas's: `conv1.conv.weight`, `conv1.bn._mean`,
//! `blocks5.3.dw_conv.conv.weight`, `blocks6.0.se.conv1.bias`,
//! `last_conv.weight`, `fc.weight` stored `[in, out]`; the loader multiplies
//! the FC by PaddleClas's inference dropout scale (0.8). The others name the
//! same layers differently and number the blocks in their own stages, so
//! they are matched to PaddleClas's blocks in network order.

use std::collections::BTreeMap;

use super::Tensor;

/// Where a checkpoint's names come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// PaddleClas / lcnet names (`conv1.conv.weight`, ...).
    PaddleClas,
    /// timm's `lcnet_*` (`conv_stem.weight`, `blocks.3.1.conv_dw.weight`, ...).
    Timm,
    /// transformers' `PPLCNetForImageClassification` (`encoder.convolution.*`, ...).
    Transformers,
}

impl Layout {
    /// A short name for messages and metadata.
    pub fn name(self) -> &'static str {
        match self {
            Layout::PaddleClas => "PaddleClas",
            Layout::Timm => "timm",
            Layout::Transformers => "transformers",
        }
    }

    /// Recognises the layout from the tensor names.
    pub fn detect(names: &[&str]) -> Result<Layout, String> {
        let has = |n: &str| names.iter().any(|k| *k == n || k.strip_prefix("model.") == Some(n));
        if has("conv1.conv.weight") {
            Ok(Layout::PaddleClas)
        } else if has("conv_stem.weight") {
            Ok(Layout::Timm)
        } else if has("encoder.convolution.convolution.weight") {
            Ok(Layout::Transformers)
        } else {
            let shown: Vec<&str> = names.iter().take(5).copied().collect();
            Err(format!(
                "not a PP-LCNet checkpoint layout lcnet knows: no `conv1.conv.weight` (PaddleClas), \
                 `conv_stem.weight` (timm) or `encoder.convolution.convolution.weight` (transformers); \
                 its first tensors are {}",
                if shown.is_empty() { "none".to_string() } else { shown.join(", ") }
            ))
        }
    }
}

/// PaddleClas's stages `blocks2` .. `blocks6` and their block counts.
const PADDLE_STAGES: [(&str, usize); 5] =
    [("blocks2", 1), ("blocks3", 2), ("blocks4", 2), ("blocks5", 6), ("blocks6", 2)];

/// The dropout scale the canonical loader multiplies the FC by (PaddleClas
/// `Dropout(p=0.2, mode="downscale_in_infer")`).
pub const CANONICAL_DROPOUT_SCALE: f32 = 0.8;

/// A source's blocks, `(stage, index)`, each with the PaddleClas block it is
/// (`blocks5.2`), matched in network order.
type BlockOrder = BTreeMap<(usize, usize), String>;

/// PaddleClas name prefixes of the blocks, in network order.
fn paddle_blocks() -> Vec<String> {
    PADDLE_STAGES.iter().flat_map(|(stage, n)| (0..*n).map(move |i| format!("{stage}.{i}"))).collect()
}

/// Maps `tensors` in `layout` to canonical names and layouts. `dropout_scale`
/// is what the source multiplies its head's features by at inference (timm:
/// 1; transformers: 1 - hidden_dropout_prob); it is moved into the FC
/// relative to the canonical 0.8.
pub fn to_canonical(layout: Layout, tensors: Vec<Tensor>, dropout_scale: f32) -> Result<Vec<Tensor>, String> {
    let tensors: Vec<Tensor> = tensors
        .into_iter()
        .filter(|t| !t.name.ends_with("num_batches_tracked"))
        .map(|mut t| {
            if let Some(rest) = t.name.strip_prefix("model.") {
                t.name = rest.to_string();
            }
            t
        })
        .collect();
    let rename: fn(&str, &BlockOrder) -> Option<String> = match layout {
        Layout::PaddleClas => return Ok(tensors),
        Layout::Timm => timm_name,
        Layout::Transformers => transformers_name,
    };
    // Match the source's blocks to PaddleClas's in network order.
    let mut order = BlockOrder::new();
    for t in &tensors {
        if let Some(key) = block_key(layout, &t.name) {
            order.entry(key).or_default();
        }
    }
    let paddle = paddle_blocks();
    if order.len() != paddle.len() {
        return Err(format!(
            "the {} checkpoint has {} depthwise-separable blocks; PP-LCNet has {}",
            layout.name(),
            order.len(),
            paddle.len()
        ));
    }
    for (slot, prefix) in order.values_mut().zip(paddle) {
        *slot = prefix;
    }
    let mut out = Vec::with_capacity(tensors.len());
    for t in tensors {
        let canonical = rename(&t.name, &order)
            .ok_or_else(|| format!("tensor `{}` has no place in a {} PP-LCNet", t.name, layout.name()))?;
        out.push(Tensor { name: canonical, ..t });
    }
    for t in &mut out {
        if t.name == "fc.weight" {
            // Linear layers store [out, in]; PaddleClas stores [in, out].
            let [classes, features] = t.shape[..] else {
                return Err(format!("classifier weight has shape {:?}, expected [classes, features]", t.shape));
            };
            let scale = dropout_scale / CANONICAL_DROPOUT_SCALE;
            let mut transposed = vec![0.0; t.values.len()];
            for o in 0..classes {
                for i in 0..features {
                    transposed[i * classes + o] = t.values[o * features + i] * scale;
                }
            }
            t.values = transposed;
            t.shape = vec![features, classes];
        }
    }
    Ok(out)
}

/// `(stage, index)` of a block tensor's name.
fn block_key(layout: Layout, name: &str) -> Option<(usize, usize)> {
    let rest = match layout {
        Layout::Timm => name.strip_prefix("blocks.")?,
        Layout::Transformers => name.strip_prefix("encoder.blocks.")?,
        Layout::PaddleClas => return None,
    };
    let mut parts = rest.split('.');
    let stage = parts.next()?.parse().ok()?;
    if layout == Layout::Transformers && parts.next()? != "layers" {
        return None;
    }
    let index = parts.next()?.parse().ok()?;
    Some((stage, index))
}

/// The part of a block tensor's name after its `(stage, index)`.
fn block_rest(name: &str, skip: usize) -> &str {
    name.splitn(skip + 1, '.').nth(skip).unwrap_or("")
}

/// A BatchNorm tensor's PaddleClas name.
fn bn(field: &str) -> Option<&'static str> {
    Some(match field {
        "weight" => "weight",
        "bias" => "bias",
        "running_mean" => "_mean",
        "running_var" => "_variance",
        _ => return None,
    })
}

/// `blocksN.i.rest`: a block-relative name under its PaddleClas block.
fn in_block(order: &BlockOrder, key: (usize, usize), rest: String) -> Option<String> {
    Some(format!("{}.{rest}", order.get(&key)?))
}

fn timm_name(name: &str, order: &BlockOrder) -> Option<String> {
    if let Some(key) = block_key(Layout::Timm, name) {
        let rest = block_rest(name, 3);
        let (module, field) = rest.rsplit_once('.')?;
        let mapped = match module {
            "conv_dw" if field == "weight" => "dw_conv.conv.weight".to_string(),
            "bn1" => format!("dw_conv.bn.{}", bn(field)?),
            "se.conv_reduce" => format!("se.conv1.{field}"),
            "se.conv_expand" => format!("se.conv2.{field}"),
            "conv_pw" if field == "weight" => "pw_conv.conv.weight".to_string(),
            "bn2" => format!("pw_conv.bn.{}", bn(field)?),
            _ => return None,
        };
        return in_block(order, key, mapped);
    }
    let (module, field) = name.rsplit_once('.')?;
    Some(match module {
        "conv_stem" if field == "weight" => "conv1.conv.weight".to_string(),
        "bn1" => format!("conv1.bn.{}", bn(field)?),
        "conv_head" => format!("last_conv.{field}"),
        "classifier" => format!("fc.{field}"),
        _ => return None,
    })
}

fn transformers_name(name: &str, order: &BlockOrder) -> Option<String> {
    if let Some(key) = block_key(Layout::Transformers, name) {
        let rest = block_rest(name, 5);
        let (module, field) = rest.rsplit_once('.')?;
        let mapped = match module {
            "depthwise_convolution.convolution" if field == "weight" => "dw_conv.conv.weight".to_string(),
            "depthwise_convolution.normalization" => format!("dw_conv.bn.{}", bn(field)?),
            "squeeze_excitation_module.convolutions.0" => format!("se.conv1.{field}"),
            "squeeze_excitation_module.convolutions.2" => format!("se.conv2.{field}"),
            "pointwise_convolution.convolution" if field == "weight" => "pw_conv.conv.weight".to_string(),
            "pointwise_convolution.normalization" => format!("pw_conv.bn.{}", bn(field)?),
            _ => return None,
        };
        return in_block(order, key, mapped);
    }
    let (module, field) = name.rsplit_once('.')?;
    Some(match module {
        "encoder.convolution.convolution" if field == "weight" => "conv1.conv.weight".to_string(),
        "encoder.convolution.normalization" => format!("conv1.bn.{}", bn(field)?),
        "last_convolution" => format!("last_conv.{field}"),
        "head" => format!("fc.{field}"),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(name: &str, shape: &[usize], values: Vec<f32>) -> Tensor {
        Tensor { name: name.into(), shape: shape.to_vec(), values }
    }

    #[test]
    fn detects_each_layout_from_its_stem() {
        assert_eq!(Layout::detect(&["conv1.conv.weight", "fc.bias"]), Ok(Layout::PaddleClas));
        assert_eq!(Layout::detect(&["bn1.bias", "conv_stem.weight"]), Ok(Layout::Timm));
        assert_eq!(Layout::detect(&["model.encoder.convolution.convolution.weight"]), Ok(Layout::Transformers));
        let err = Layout::detect(&["encoder.layer.0.attention.weight"]).unwrap_err();
        assert!(err.contains("encoder.layer.0.attention.weight"), "{err}");
    }

    #[test]
    fn timm_blocks_are_renumbered_in_network_order_and_the_classifier_transposed() {
        // timm's six stages hold 1, 2, 2, 2, 4, 2 blocks; PaddleClas's five hold 1, 2, 2, 6, 2.
        let mut tensors = vec![t("conv_stem.weight", &[8, 3, 3, 3], vec![0.0; 216])];
        for (s, n) in [1, 2, 2, 2, 4, 2].into_iter().enumerate() {
            for i in 0..n {
                tensors.push(t(&format!("blocks.{s}.{i}.conv_dw.weight"), &[1], vec![(s * 10 + i) as f32]));
                tensors.push(t(&format!("blocks.{s}.{i}.bn1.num_batches_tracked"), &[], vec![0.0]));
            }
        }
        tensors.push(t("classifier.weight", &[2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]));
        let out = to_canonical(Layout::Timm, tensors, 1.0).unwrap();
        let get = |n: &str| out.iter().find(|t| t.name == n).unwrap_or_else(|| panic!("{n} missing"));
        assert_eq!(get("blocks5.2.dw_conv.conv.weight").values, [40.0]); // timm stage 4, block 0
        assert_eq!(get("blocks5.1.dw_conv.conv.weight").values, [31.0]); // timm stage 3, block 1
        assert_eq!(get("blocks6.1.dw_conv.conv.weight").values, [51.0]);
        let fc = get("fc.weight");
        assert_eq!(fc.shape, [3, 2]);
        let s = 1.0 / CANONICAL_DROPOUT_SCALE;
        assert_eq!(fc.values, [1.0 * s, 4.0 * s, 2.0 * s, 5.0 * s, 3.0 * s, 6.0 * s]);
        assert!(out.iter().all(|t| !t.name.contains("num_batches_tracked")));
    }

    #[test]
    fn a_block_count_other_than_pplcnets_is_refused() {
        let tensors = vec![t("conv_stem.weight", &[1], vec![0.0]), t("conv_stem.extra", &[1], vec![0.0])];
        let err = to_canonical(Layout::Timm, tensors, 1.0).unwrap_err();
        assert!(err.contains("13"), "{err}");
    }
}
