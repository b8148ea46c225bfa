//! Typed layers: the building blocks the generated forward passes are made of.
//!
//! Each layer carries its channel counts as const generics, so the chain
//! `Stem<16> -> DwConv<16> -> PwConv<16, 32> -> ...` is checked by rustc, and
//! each knows its PaddleClas checkpoint names. The layers are thin: loading
//! folds BatchNorm and packs weights once, forwarding calls a runtime-sized
//! kernel from [`crate::kernels`], so eight widths do not mean eight copies of
//! every kernel.

use ndarray::{Array2, ArrayView4};

use crate::aligned::AlignedVec;
use crate::kernels::matvec::input_major;
use crate::kernels::{dwconv, head, pwconv, se, stem, Activation};
use crate::{Checkpoint, Error, FeatureMap, Result, Workspace};

/// BatchNorm epsilon of PaddleClas's `BatchNorm2D` layers, used when a
/// checkpoint's metadata has no `bn_eps`.
pub const BN_EPS: f64 = 1e-5;

/// The checkpoint metadata key holding the BatchNorm epsilon its running
/// variances go with (importers write the source's own, e.g. the f32
/// `9.99999974738e-06` of paddle2onnx exports, instead of rewriting the variances).
pub const BN_EPS_KEY: &str = "bn_eps";

/// The BatchNorm epsilon of `ck`: its `bn_eps` metadata, else [`BN_EPS`].
pub fn bn_eps(ck: &Checkpoint) -> Result<f64> {
    let Some(text) = ck.metadata().get(BN_EPS_KEY) else { return Ok(BN_EPS) };
    match text.trim().parse::<f64>() {
        Ok(eps) if eps.is_finite() && eps > 0.0 && eps < 1.0 => Ok(eps),
        _ => Err(Error::BadMetadata {
            path: ck.path().to_path_buf(),
            key: BN_EPS_KEY.to_string(),
            reason: format!("`{text}` is not a number in (0, 1) such as 1e-5"),
        }),
    }
}

/// Reads `{prefix}.conv.weight` of shape `shape` and `{prefix}.bn.*`, and
/// folds the BatchNorm into the weight and a bias, in f64 from the stored
/// values: `w' = w * g / sqrt(v + eps)`, `b' = beta - mean * g / sqrt(v + eps)`.
/// A running variance of 0 or a denormal is valid (dead channels of trained
/// networks); only a non-finite one or one at or below `-eps` is refused.
pub(crate) fn load_conv_bn(ck: &mut Checkpoint, prefix: &str, shape: [usize; 4]) -> Result<(Vec<f32>, Vec<f32>)> {
    let c = shape[0];
    let eps = bn_eps(ck)?;
    let weight = ck.take(&format!("{prefix}.conv.weight"), &shape)?;
    let gamma = ck.take(&format!("{prefix}.bn.weight"), &[c])?;
    let beta = ck.take(&format!("{prefix}.bn.bias"), &[c])?;
    let mean = ck.take(&format!("{prefix}.bn._mean"), &[c])?;
    let var = ck.take(&format!("{prefix}.bn._variance"), &[c])?;
    if let Some(i) = var.iter().position(|&v| !(v.is_finite() && v as f64 + eps > 0.0)) {
        return Err(Error::UnusableWeights {
            path: ck.path().to_path_buf(),
            name: format!("{prefix}.bn._variance"),
            reason: format!(
                "`{prefix}.bn._variance` is {} at channel {i}: a running variance must be finite and above -eps ({eps:e})",
                var[i]
            ),
        });
    }
    let per_out = weight.len() / c;
    let mut folded = vec![0.0; weight.len()];
    let mut bias = vec![0.0; c];
    for o in 0..c {
        let scale = gamma[o] as f64 / (var[o] as f64 + eps).sqrt();
        for (dst, &src) in folded[o * per_out..][..per_out].iter_mut().zip(&weight[o * per_out..][..per_out]) {
            *dst = (src as f64 * scale) as f32;
        }
        bias[o] = (beta[o] as f64 - mean[o] as f64 * scale) as f32;
    }
    if let Some(i) = folded.iter().chain(&bias).position(|v| !v.is_finite()) {
        let channel = if i < folded.len() { i / per_out } else { i - folded.len() };
        return Err(Error::UnusableWeights {
            path: ck.path().to_path_buf(),
            name: prefix.to_string(),
            reason: format!(
                "`{prefix}` overflows f32 when its BatchNorm is folded in (channel {channel}: weight {} x gamma {} / \
                 sqrt(variance {} + eps)); the checkpoint's values are not usable",
                weight.get(channel * per_out).copied().unwrap_or_default(),
                gamma[channel],
                var[channel]
            ),
        });
    }
    Ok((folded, bias))
}

/// Index of the first NaN or infinity in `values`. A plain `position` runs one
/// value per step (a fifth of the stem's own time at 224x224); this checks
/// blocks with a vectorizable maximum of the exponent-and-mantissa bits first,
/// compiled for the dispatched ISA (portable x86-64 has no 32-bit vector
/// maximum: 1.5 % of x1.0's pass went here).
pub(crate) fn first_non_finite(values: &[f32]) -> Option<usize> {
    let mut bad_block = None;
    first_bad_block(crate::kernels::isa(), values, &mut bad_block);
    let start = bad_block? * FINITE_BLOCK;
    values[start..].iter().position(|v| !v.is_finite()).map(|i| start + i)
}

/// Values per block of [`first_non_finite`]'s first sweep.
const FINITE_BLOCK: usize = 1024;

crate::kernels::dispatch::multiversion!(fn first_bad_block(values: &[f32], found: &mut Option<usize>) => first_bad_block_body);

/// The first block of [`FINITE_BLOCK`] values holding a NaN or infinity.
/// (`F` is unused: no multiply-adds here, only the ISA matters.)
#[inline(always)]
#[allow(clippy::extra_unused_type_parameters)]
fn first_bad_block_body<F: crate::kernels::dispatch::Fma>(values: &[f32], found: &mut Option<usize>) {
    let all_finite = |block: &[f32]| block.iter().fold(0u32, |m, v| m.max(v.to_bits() & 0x7fff_ffff)) < 0x7f80_0000;
    *found = values.chunks(FINITE_BLOCK).position(|b| !all_finite(b));
}

/// The stem: dense conv + BN + activation from 3-channel NCHW input to `C`
/// channels NHWC (PaddleClas `conv1`).
#[derive(Debug, Clone)]
pub struct Stem<const C: usize> {
    weights: stem::StemWeights,
}

impl<const C: usize> Stem<C> {
    /// Input channels of the network.
    pub const IN_CHANNELS: usize = 3;

    /// Loads `{prefix}.conv.weight` `[C, 3, k, k]` and `{prefix}.bn.*`.
    pub fn load(ck: &mut Checkpoint, prefix: &str, kernel: usize, stride: [usize; 2], act: Activation) -> Result<Self> {
        let (w, b) = load_conv_bn(ck, prefix, [C, Self::IN_CHANNELS, kernel, kernel])?;
        Ok(Stem { weights: stem::StemWeights::pack(&w, b, Self::IN_CHANNELS, kernel, stride, act) })
    }

    /// Runs on an NCHW batch `[n, 3, h, w]`.
    pub fn forward(&self, input: ArrayView4<f32>, ws: &mut Workspace) -> Result<FeatureMap<C>> {
        let [n, c, h, w] = input.shape() else { unreachable!("ArrayView4 has four axes") };
        let (n, c, h, w) = (*n, *c, *h, *w);
        if c != Self::IN_CHANNELS || n == 0 || h == 0 || w == 0 {
            return Err(Error::BadInput {
                expected: format!("[N, {}, H, W] with N, H, W >= 1 (NCHW)", Self::IN_CHANNELS),
                got: input.shape().to_vec(),
            });
        }
        let input = input.as_standard_layout();
        let data = input.as_slice().expect("standard layout is contiguous");
        if let Some(i) = first_non_finite(data) {
            return Err(Error::NonFiniteInput { index: i, value: data[i] });
        }
        let (oh, ow) = self.weights.out_hw(h, w);
        let len = n * oh * ow * C;
        let mut out = ws.take(len);
        stem::run(&self.weights, data, n, h, w, &mut out[..len]);
        ws.observe_channels(&out[..len], C);
        Ok(FeatureMap::from_buffer(out, n, oh, ow))
    }
}

/// Depthwise kxk conv + BN + activation on `C` channels (PaddleClas `dw_conv`).
#[derive(Debug, Clone)]
pub struct DwConv<const C: usize> {
    weights: dwconv::DwWeights,
}

impl<const C: usize> DwConv<C> {
    /// Loads `{prefix}.conv.weight` `[C, 1, k, k]` and `{prefix}.bn.*`.
    pub fn load(ck: &mut Checkpoint, prefix: &str, kernel: usize, stride: [usize; 2], act: Activation) -> Result<Self> {
        let (w, b) = load_conv_bn(ck, prefix, [C, 1, kernel, kernel])?;
        Ok(DwConv { weights: dwconv::DwWeights::pack(&w, b, kernel, stride, act) })
    }

    /// Runs on a feature map; the input buffer goes back to the workspace.
    pub fn forward(&self, x: FeatureMap<C>, ws: &mut Workspace) -> FeatureMap<C> {
        let (n, h, w) = (x.batch(), x.height(), x.width());
        let (oh, ow) = self.weights.out_hw(h, w);
        let len = n * oh * ow * C;
        let mut out = ws.take(len);
        dwconv::run(&self.weights, x.as_slice(), n, h, w, &mut out[..len]);
        ws.observe_channels(&out[..len], C);
        ws.give(x.into_buffer());
        FeatureMap::from_buffer(out, n, oh, ow)
    }
}

/// Squeeze-and-excitation on `C` channels with a bottleneck of `MID`
/// (PaddleClas `SEModule`): rescales its input in place.
#[derive(Debug, Clone)]
pub struct Se<const C: usize, const MID: usize> {
    weights: se::SeWeights,
}

impl<const C: usize, const MID: usize> Se<C, MID> {
    /// Loads `{prefix}.conv1.{weight,bias}` (`[MID, C, 1, 1]`, `[MID]`) and
    /// `{prefix}.conv2.{weight,bias}` (`[C, MID, 1, 1]`, `[C]`).
    pub fn load(ck: &mut Checkpoint, prefix: &str) -> Result<Self> {
        Ok(Se {
            weights: se::SeWeights::pack(
                &ck.take(&format!("{prefix}.conv1.weight"), &[MID, C, 1, 1])?,
                ck.take(&format!("{prefix}.conv1.bias"), &[MID])?,
                &ck.take(&format!("{prefix}.conv2.weight"), &[C, MID, 1, 1])?,
                ck.take(&format!("{prefix}.conv2.bias"), &[C])?,
            ),
        })
    }

    /// Rescales `x` in place and hands it on.
    pub fn forward(&self, mut x: FeatureMap<C>, ws: &mut Workspace) -> FeatureMap<C> {
        let (n, pixels) = (x.batch(), x.height() * x.width());
        let mut scratch = ws.take_scratch(n * self.weights.scratch_per_image());
        se::run(&self.weights, x.as_mut_slice(), n, pixels, &mut scratch);
        ws.give_scratch(scratch);
        ws.observe(x.as_slice());
        x
    }
}

/// Pointwise 1x1 conv + BN + activation from `I` to `O` channels (PaddleClas
/// `pw_conv`).
#[derive(Debug, Clone)]
pub struct PwConv<const I: usize, const O: usize> {
    weights: pwconv::PwWeights,
}

impl<const I: usize, const O: usize> PwConv<I, O> {
    /// Loads `{prefix}.conv.weight` `[O, I, 1, 1]` and `{prefix}.bn.*`.
    pub fn load(ck: &mut Checkpoint, prefix: &str, act: Activation) -> Result<Self> {
        let (w, b) = load_conv_bn(ck, prefix, [O, I, 1, 1])?;
        Ok(PwConv { weights: pwconv::PwWeights::pack(&w, b, I, act) })
    }

    /// Runs on a feature map; the input buffer goes back to the workspace.
    pub fn forward(&self, x: FeatureMap<I>, ws: &mut Workspace) -> FeatureMap<O> {
        let (n, h, w) = (x.batch(), x.height(), x.width());
        let len = n * h * w * O;
        let mut out = ws.take(len);
        pwconv::run(&self.weights, x.as_slice(), n * h * w, &mut out[..len]);
        ws.observe_channels(&out[..len], O);
        ws.give(x.into_buffer());
        FeatureMap::from_buffer(out, n, h, w)
    }
}

/// The classifier head on `I` channels: GAP -> 1x1 conv to `HIDDEN`
/// channels (none when `HIDDEN` is 0, PaddleClas `use_last_conv=False`) ->
/// activation -> dropout scale -> FC. The number of classes comes from the
/// checkpoint.
#[derive(Debug, Clone)]
pub struct Head<const I: usize, const HIDDEN: usize> {
    weights: head::HeadWeights,
}

impl<const I: usize, const HIDDEN: usize> Head<I, HIDDEN> {
    /// Loads `{conv}.weight` `[HIDDEN, I, 1, 1]` (and `{conv}.bias` `[HIDDEN]`:
    /// required when `bias`, optional otherwise; nothing when `HIDDEN` is 0), `{fc}.weight` `[features,
    /// classes]` (Paddle's Linear layout; features = `HIDDEN`, or `I` without
    /// a conv) and `{fc}.bias` `[classes]`, and folds `dropout_scale` (0.8
    /// for Paddle's `downscale_in_infer` with p = 0.2) into the FC weights.
    pub fn load(
        ck: &mut Checkpoint,
        conv: &str,
        fc: &str,
        act: Activation,
        dropout_scale: f32,
        bias: bool,
    ) -> Result<Self> {
        Ok(Head { weights: load_head(ck, [conv, fc], act, dropout_scale, bias, [I, HIDDEN])? })
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.weights.classes()
    }

    /// Runs on the last feature map; returns `[n, classes]` logits.
    pub fn forward(&self, x: FeatureMap<I>, ws: &mut Workspace) -> Array2<f32> {
        let (n, pixels) = (x.batch(), x.height() * x.width());
        let mut logits = Array2::zeros((n, self.classes()));
        let mut scratch = ws.take_scratch(n * self.weights.scratch_per_image());
        head::run(
            &self.weights,
            x.as_slice(),
            n,
            pixels,
            &mut scratch,
            logits.as_slice_mut().expect("fresh array is contiguous"),
        );
        ws.give_scratch(scratch);
        ws.give(x.into_buffer());
        logits
    }
}

/// [`Head::load`] for channel counts known only at run time (`hidden` 0:
/// no head conv).
pub(crate) fn load_head(
    ck: &mut Checkpoint,
    [conv, fc]: [&str; 2],
    act: Activation,
    dropout_scale: f32,
    bias: bool,
    [in_channels, hidden]: [usize; 2],
) -> Result<head::HeadWeights> {
    let features = if hidden == 0 { in_channels } else { hidden };
    let (conv_w, conv_bias) = if hidden == 0 {
        (AlignedVec::default(), Vec::new())
    } else {
        let weight = ck.take(&format!("{conv}.weight"), &[hidden, in_channels, 1, 1])?;
        let packed = input_major(&weight, hidden, in_channels);
        // A bias the table does not ask for is still taken when present:
        // timm's `conv_head` has one where PaddleClas's `last_conv` has none.
        let bias_name = format!("{conv}.bias");
        let b = if bias || ck.shape(&bias_name).is_some() { ck.take(&bias_name, &[hidden])? } else { Vec::new() };
        (packed, b)
    };
    let classes = fc_classes(ck, &format!("{fc}.weight"), features)?;
    let mut fc_w = ck.take_aligned(&format!("{fc}.weight"), &[features, classes])?;
    fc_w.iter_mut().for_each(|v| *v *= dropout_scale);
    let fc_bias = ck.take(&format!("{fc}.bias"), &[classes])?;
    Ok(head::HeadWeights { conv: conv_w, conv_bias, in_channels, hidden, act, fc: fc_w, fc_bias })
}

/// Classes of the fc weight `fc_name`, `[features, classes]` (Paddle's
/// Linear layout).
pub(crate) fn fc_classes(ck: &Checkpoint, fc_name: &str, features: usize) -> Result<usize> {
    let classes = match ck.shape(fc_name) {
        Some([rows, classes]) if *rows == features && *classes > 0 => *classes,
        Some(got) => {
            return Err(Error::UnusableWeights {
                path: ck.path().to_path_buf(),
                name: fc_name.to_string(),
                reason: format!(
                    "tensor `{fc_name}` has shape {got:?}, expected [{features}, classes] with classes >= 1"
                ),
            })
        }
        None => {
            return Err(Error::MissingTensor {
                path: ck.path().to_path_buf(),
                name: fc_name.to_string(),
                expected: vec![features, 0],
            })
        }
    };
    Ok(classes)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::{first_non_finite, load_conv_bn};
    use crate::Checkpoint;

    /// A 1x1 conv of 4 channels with BN, its variances `var`, and `bn_eps`
    /// metadata when `eps` is given.
    fn conv_bn_checkpoint(var: [f32; 4], eps: Option<&str>) -> Checkpoint {
        let (w, g, b, m) = ([1.0, 2.0, -1.0, 0.5], [1.5, 1.0, 2.0, 0.25], [0.1, 0.2, 0.3, 0.4], [0.0, 1.0, -2.0, 3.0]);
        let tensors: Vec<(&str, Vec<usize>, &[f32])> = vec![
            ("c.conv.weight", vec![4, 1, 1, 1], &w),
            ("c.bn.weight", vec![4], &g),
            ("c.bn.bias", vec![4], &b),
            ("c.bn._mean", vec![4], &m),
            ("c.bn._variance", vec![4], &var),
        ];
        let meta: BTreeMap<String, String> = eps.map(|e| ("bn_eps".to_string(), e.to_string())).into_iter().collect();
        Checkpoint::from_vec("test", crate::weights::to_bytes(&tensors, &meta).unwrap()).unwrap()
    }

    #[test]
    fn dead_batchnorm_channels_fold_with_the_sources_eps() {
        // A trained PP-LCNet_x1_0_textline_ori has running variances of 6e-45
        // (denormal) in four layers, with paddle2onnx's f32 eps.
        let eps32 = 9.999_999_747_378_752e-6_f64;
        let var = [6e-45, 0.0, 1e-3, 2.0];
        let mut ck = conv_bn_checkpoint(var, Some("9.999999747378752e-06"));
        let (w, b) = load_conv_bn(&mut ck, "c", [4, 1, 1, 1]).unwrap();
        // gamma / sqrt(var + eps), by hand in f64, for channel 0 and 1:
        // 1.5 / sqrt(eps32) and 1.0 / sqrt(eps32).
        let s0 = 1.5 / eps32.sqrt();
        let s1 = 1.0 / eps32.sqrt();
        assert_eq!(w[0], (1.0 * s0) as f32);
        assert_eq!(w[1], (2.0 * s1) as f32);
        assert_eq!(b[1], (0.2 - 1.0 * s1) as f32);
        assert!((w[3] - (0.5 * 0.25 / (2.0f64 + eps32).sqrt()) as f32).abs() < 1e-7);
        assert!(w.iter().chain(&b).all(|v| v.is_finite()));

        // Without metadata the eps is PaddleClas's 1e-5.
        let (w, _) = load_conv_bn(&mut conv_bn_checkpoint(var, None), "c", [4, 1, 1, 1]).unwrap();
        assert_eq!(w[0], (1.5 / 1e-5f64.sqrt()) as f32);
    }

    #[test]
    fn only_impossible_variances_and_eps_are_refused() {
        // Slightly negative (an f32 rounding of 0) but above -eps: valid.
        assert!(load_conv_bn(&mut conv_bn_checkpoint([-1e-9, 1.0, 1.0, 1.0], None), "c", [4, 1, 1, 1]).is_ok());
        for bad in [-2e-5, -1.0, f32::NAN, f32::INFINITY] {
            let err = load_conv_bn(&mut conv_bn_checkpoint([1.0, 1.0, bad, 1.0], None), "c", [4, 1, 1, 1]).unwrap_err();
            let err = err.to_string();
            assert!(err.contains("c.bn._variance") && (err.contains("channel 2") || err.contains("index 2")), "{err}");
        }
        for eps in ["0", "-1e-5", "nan", "one"] {
            let err = load_conv_bn(&mut conv_bn_checkpoint([1.0; 4], Some(eps)), "c", [4, 1, 1, 1]).unwrap_err();
            assert!(err.to_string().contains("metadata `bn_eps`"), "{eps}: {err}");
        }
    }

    #[test]
    fn finds_the_first_nan_or_infinity_anywhere() {
        let mut v: Vec<f32> = (0..3000).map(|i| (i as f32 - 1500.0) * 1e35).collect();
        v[7] = f32::MAX;
        v[8] = -f32::MAX;
        v[9] = f32::MIN_POSITIVE / 2.0;
        assert!(v.iter().all(|x| x.is_finite()));
        assert_eq!(first_non_finite(&v), None);
        for (at, bad) in [(0, f32::NAN), (1023, f32::INFINITY), (1024, f32::NEG_INFINITY), (2999, -f32::NAN)] {
            let mut w = v.clone();
            w[at] = bad;
            w[at + 1..].iter_mut().step_by(97).for_each(|x| *x = f32::NAN);
            assert_eq!(first_non_finite(&w), Some(at), "{bad} at {at}");
        }
        assert_eq!(first_non_finite(&[]), None);
    }
}
