//! Finding a compiled variant by name or by a checkpoint's shapes.

use std::sync::LazyLock;

use lcnet_core::{Checkpoint, Network, VariantInfo};

use crate::error::{Error, Result};

/// The ImageNet table's widths, then the text-line table's.
static VARIANTS: LazyLock<Vec<VariantInfo>> =
    LazyLock::new(|| crate::pplcnet::VARIANTS.iter().chain(crate::pplcnet_textline::VARIANTS).copied().collect());

/// Every variant compiled into this build: the ImageNet architecture's
/// widths narrowest first, then the text-line architecture's.
pub fn variants() -> &'static [VariantInfo] {
    &VARIANTS
}

/// The variant called `name`: `pplcnet_x1_0`, or just its feature `x1_0`.
pub fn find(name: &str) -> Result<&'static VariantInfo> {
    VARIANTS.iter().find(|v| v.name == name || v.feature == name).ok_or_else(|| Error::UnknownModel {
        name: name.to_string(),
        known: VARIANTS.iter().map(|v| v.name.to_string()).collect(),
    })
}

/// Loads `ck` as the variant `model`, or, when `model` is `None`, as the
/// one compiled variant whose layer shapes match the checkpoint.
pub fn load(ck: &mut Checkpoint, model: Option<&str>) -> Result<Box<dyn Network>> {
    if lcnet_core::quant::is_quantized(ck) {
        // An int8 checkpoint names its variant (its tensors are not the f32 shapes).
        let name = model.or(ck.metadata().get("model").map(String::as_str)).unwrap_or_default().to_string();
        return Ok(Box::new(lcnet_core::quant::QuantNet::load(ck, find(&name)?)?));
    }
    let variant = match model {
        Some(name) => find(name)?,
        None => infer(ck)?,
    };
    Ok((variant.load)(ck)?)
}

/// The variant the checkpoint's `model` metadata names, else the first whose
/// shapes match (the text-line x1.0 has x1.0's shapes: only the strides
/// differ, which no tensor shows).
fn infer(ck: &Checkpoint) -> Result<&'static VariantInfo> {
    let named = ck.metadata().get("model").and_then(|name| VARIANTS.iter().find(|v| v.name == name));
    if let Some(v) = named.filter(|v| v.matches(ck)) {
        return Ok(v);
    }
    if let Some(v) = VARIANTS.iter().find(|v| v.matches(ck)) {
        return Ok(v);
    }
    let shape = |key: &str| ck.shape(key).map_or("absent".to_string(), |s| format!("{s:?}"));
    Err(Error::NoVariantMatches {
        path: ck.path().to_path_buf(),
        detail: format!(
            "conv1.conv.weight is {}, last_conv.weight is {}; compiled: {}",
            shape("conv1.conv.weight"),
            shape("last_conv.weight"),
            VARIANTS.iter().map(|v| v.name).collect::<Vec<_>>().join(", ")
        ),
    })
}
