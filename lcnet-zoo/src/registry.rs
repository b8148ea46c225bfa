//! Finding a compiled variant by name or by a checkpoint's shapes.

use lcnet_core::{Checkpoint, Error, Network, Result, VariantInfo};

use crate::pplcnet::VARIANTS;

/// Every variant compiled into this build, narrowest first.
pub fn variants() -> &'static [VariantInfo] {
    VARIANTS
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
    let variant = match model {
        Some(name) => find(name)?,
        None => infer(ck)?,
    };
    (variant.load)(ck)
}

fn infer(ck: &Checkpoint) -> Result<&'static VariantInfo> {
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
