//! int8 networks (docs/int8.md): an f32 checkpoint quantised with the
//! activation ranges of a calibration run ([`quantize`]), and the network
//! that runs the result ([`QuantNet`]), built at run time from the
//! variant's layer table.
//!
//! Depthwise and pointwise convolutions run in int8; the stem computes in
//! f32 (three input channels: nothing to gain) and stores `u8`; SE and the
//! head run in f32 on dequantised values (a few hundred values per image).

use std::collections::BTreeMap;

use ndarray::{Array2, ArrayView4};
use rayon::prelude::*;

use crate::kernels::int8::dwconv::{self as q_dwconv, QDwWeights};
use crate::kernels::int8::head::{self as q_head, QHeadWeights, QMatrix};
use crate::kernels::int8::pwconv::{self as q_pwconv, QPwWeights};
use crate::kernels::int8::requantise::{dequantize, requantise, Requantiser};
use crate::kernels::int8::stem as q_stem;
use crate::kernels::int8::{Requant, NARROW_MAX, WEIGHT_MAX, WEIGHT_MIN};
use crate::kernels::{isa, se, stem, Activation};
use crate::layers::{fc_classes, first_non_finite, load_conv_bn};
use crate::weights::{to_bytes_with, TensorData};
use crate::{Checkpoint, Error, LayerInfo, LayerKind, Network, Result, VariantInfo, Workspace};

/// Metadata key and value that mark an int8 checkpoint.
pub const FORMAT_KEY: &str = "format";
/// See [`FORMAT_KEY`].
pub const FORMAT: &str = "lcnet-int8";

/// Whether `ck` is an int8 checkpoint made by [`quantize`].
pub fn is_quantized(ck: &Checkpoint) -> bool {
    ck.metadata().get(FORMAT_KEY).is_some_and(|f| f == FORMAT)
}

/// How a tensor's `u8` values map to real ones: `real = (q - zero) * scale`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quant {
    /// Real value of one step.
    pub scale: f32,
    /// The `u8` that stands for a real 0.
    pub zero: u8,
}

impl Quant {
    /// The quantisation covering `[lo, hi]` and 0 with 256 steps (min/max
    /// calibration: every value seen stays representable, none clips).
    pub fn from_range(lo: f32, hi: f32) -> Quant {
        let (lo, hi) = (lo.min(0.0), hi.max(0.0));
        if !(hi - lo).is_finite() || hi - lo <= f32::MIN_POSITIVE {
            return Quant { scale: 1.0, zero: 0 };
        }
        let scale = (hi - lo) / 255.0;
        Quant { scale, zero: (-lo / scale).round().clamp(0.0, 255.0) as u8 }
    }
}

/// The layers of `info` whose outputs are quantised, in network order:
/// what [`Workspace::observe_ranges`] records, one range each but the
/// stem, one per output channel ([`observed_ranges`]).
pub fn observed_layers(info: &VariantInfo) -> impl Iterator<Item = &LayerInfo> {
    info.layers.iter().filter(|l| {
        matches!(l.kind, LayerKind::Stem | LayerKind::Depthwise | LayerKind::SqueezeExcite | LayerKind::Pointwise)
    })
}

/// Per observed layer, whether its output is quantised per channel: the
/// outputs a depthwise layer reads (the stem's, and the pointwise layers'
/// before each block's depthwise one). Their channels differ in range by
/// 10 to 30 times, and the depthwise layer, channel by channel, multiplies
/// each channel's steps by BatchNorm's gain: per tensor, blocks2's output
/// was 17 % off f32's on doc_ori (3 % with the stem per channel) and
/// textline_ori's blocks4 40 %. The layers that sum channels (pointwise,
/// the head) read maps quantised per tensor, one zero point.
pub fn per_channel_outputs(info: &VariantInfo) -> Vec<bool> {
    let layers: Vec<&LayerInfo> = observed_layers(info).collect();
    (0..layers.len())
        .map(|i| {
            layers[i].kind != LayerKind::SqueezeExcite
                && layers.get(i + 1).is_some_and(|next| next.kind == LayerKind::Depthwise)
        })
        .collect()
}

/// How many ranges a calibration of `info` records: one per channel of the
/// outputs [`per_channel_outputs`] names, one per other output.
pub fn observed_ranges(info: &VariantInfo) -> usize {
    observed_layers(info).zip(per_channel_outputs(info)).map(|(l, pc)| if pc { l.out_channels } else { 1 }).sum()
}

/// The range of the pointwise layers' int8 weights.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum WeightRange {
    /// `-127..=127`, as every other layer: the most accurate. CPUs without
    /// VNNI sum such weights in a slower exact step.
    #[default]
    Full,
    /// `-64..=64` (ONNX Runtime's `reduce_range`): CPUs without VNNI
    /// (AVX2, AVX-512BW) sum them with `vpmaddubsw`, exact for them and
    /// faster, for half the weights' resolution.
    Reduced,
}

impl WeightRange {
    /// The largest weight magnitude.
    fn max(self) -> i8 {
        match self {
            WeightRange::Full => WEIGHT_MAX,
            WeightRange::Reduced => NARROW_MAX,
        }
    }
}

/// Symmetric per-output-channel weights in `-max..=max` and their scales
/// (`w ~ q * scale`); a channel of zeros gets scale 1.
fn quantize_weights(w: &[f32], outputs: usize, range: WeightRange) -> (Vec<i8>, Vec<f32>) {
    let top = f32::from(range.max());
    let per = w.len() / outputs;
    let mut q = Vec::with_capacity(w.len());
    let mut scales = Vec::with_capacity(outputs);
    for row in w.chunks_exact(per) {
        let max = row.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let scale = if max > 0.0 { max / top } else { 1.0 };
        q.extend(row.iter().map(|v| (v / scale).round().clamp(-top, top) as i8));
        scales.push(scale);
    }
    (q, scales)
}

/// Quantises `ck` (an f32 checkpoint of `info`) with `ranges`, one
/// `(least, greatest)` per [`observed_layers`] entry, and the pointwise
/// weights in `pointwise`, into the bytes of an int8 safetensors
/// checkpoint. The metadata is `ck`'s, plus `extra`, plus [`FORMAT_KEY`]
/// and `model`.
pub fn quantize(
    ck: &mut Checkpoint,
    info: &VariantInfo,
    ranges: &[(f32, f32)],
    pointwise: WeightRange,
    extra: &BTreeMap<String, String>,
) -> Result<Vec<u8>> {
    let observed: Vec<&LayerInfo> = observed_layers(info).collect();
    if ranges.len() != observed_ranges(info) {
        return Err(Error::BadInput {
            expected: format!("{} calibration ranges for {}", observed_ranges(info), info.name),
            got: vec![ranges.len()],
        });
    }
    let mut f32s: Vec<(String, Vec<usize>, Vec<f32>)> = Vec::new();
    let mut i8s: Vec<(String, Vec<usize>, Vec<i8>)> = Vec::new();
    let copy =
        |ck: &mut Checkpoint, f32s: &mut Vec<(String, Vec<usize>, Vec<f32>)>, name: String, shape: Vec<usize>| {
            let values = ck.take(&name, &shape)?;
            f32s.push((name, shape, values));
            Ok::<_, Error>(())
        };
    let mut ranges = ranges.iter();
    for (l, per_channel) in observed.iter().zip(per_channel_outputs(info)) {
        let layer_ranges: Vec<(f32, f32)> =
            ranges.by_ref().take(if per_channel { l.out_channels } else { 1 }).copied().collect();
        let quants: Vec<Quant> = layer_ranges.iter().map(|&(lo, hi)| Quant::from_range(lo, hi)).collect();
        let n = quants.len();
        f32s.push((format!("{}.out_scale", l.name), vec![n], quants.iter().map(|q| q.scale).collect()));
        f32s.push((format!("{}.out_zero", l.name), vec![n], quants.iter().map(|q| f32::from(q.zero)).collect()));
        let (o, k) = (l.out_channels, l.kernel);
        match l.kind {
            LayerKind::Stem => {
                copy(ck, &mut f32s, format!("{}.conv.weight", l.name), vec![o, l.in_channels, k, k])?;
                for part in ["weight", "bias", "_mean", "_variance"] {
                    copy(ck, &mut f32s, format!("{}.bn.{part}", l.name), vec![o])?;
                }
            }
            LayerKind::Depthwise | LayerKind::Pointwise => {
                let shape = if l.kind == LayerKind::Depthwise { [o, 1, k, k] } else { [o, l.in_channels, 1, 1] };
                let (w, bias) = load_conv_bn(ck, l.name, shape)?;
                let range = if l.kind == LayerKind::Pointwise { pointwise } else { WeightRange::Full };
                let (qw, scales) = quantize_weights(&w, o, range);
                i8s.push((format!("{}.qweight", l.name), shape.to_vec(), qw));
                f32s.push((format!("{}.wscale", l.name), vec![o], scales));
                f32s.push((format!("{}.bias", l.name), vec![o], bias));
            }
            LayerKind::SqueezeExcite => {
                let (c, mid) = (l.in_channels, l.mid_channels);
                for (conv, shape) in [("conv1", [mid, c, 1, 1]), ("conv2", [c, mid, 1, 1])] {
                    let prefix = format!("{}.{conv}", l.name);
                    store_int8(ck, &mut f32s, &mut i8s, &prefix, &shape)?;
                    copy(ck, &mut f32s, format!("{prefix}.bias"), vec![shape[0]])?;
                }
            }
            LayerKind::HeadConv | LayerKind::Fc => unreachable!("not an observed layer"),
        }
    }
    // The head: its conv stored in int8 (a third of the f32 file at x1.0),
    // the rest as it is; shapes from the checkpoint.
    if let Some(shape) = ck.shape("last_conv.weight").map(<[usize]>::to_vec) {
        store_int8(ck, &mut f32s, &mut i8s, "last_conv", &shape)?;
    }
    // The fc ([features, classes], Paddle's Linear layout) per class: at
    // 1000 classes it is most of the file.
    if let Some(&[features, classes]) = ck.shape("fc.weight") {
        let w = ck.take("fc.weight", &[features, classes])?;
        let (q, scales) = quantize_weights(&transpose(&w, features, classes), classes, WeightRange::Full);
        i8s.push(("fc.qweight".into(), vec![features, classes], transpose(&q, classes, features)));
        f32s.push(("fc.wscale".into(), vec![classes], scales));
    }
    for name in ck.names().into_iter().map(str::to_string).collect::<Vec<_>>() {
        if name == "last_conv.bias" || name == "fc.bias" {
            let shape = ck.shape(&name).expect("listed").to_vec();
            copy(ck, &mut f32s, name, shape)?;
        }
    }
    ck.finish(info.name)?;
    let mut metadata = ck.metadata().clone();
    metadata.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
    metadata.insert(FORMAT_KEY.into(), FORMAT.into());
    metadata.insert("model".into(), info.name.into());
    let mut tensors: Vec<(&str, Vec<usize>, TensorData)> =
        f32s.iter().map(|(n, s, v)| (n.as_str(), s.clone(), TensorData::F32(v))).collect();
    tensors.extend(i8s.iter().map(|(n, s, v)| (n.as_str(), s.clone(), TensorData::I8(v))));
    to_bytes_with(&tensors, &metadata)
}

/// `{prefix}.weight` stored as `{prefix}.qweight` (int8, per output
/// channel) and `{prefix}.wscale`: weights that run in f32 (SE, the head's
/// conv) but need not take f32's room in the file.
fn store_int8(
    ck: &mut Checkpoint,
    f32s: &mut Vec<(String, Vec<usize>, Vec<f32>)>,
    i8s: &mut Vec<(String, Vec<usize>, Vec<i8>)>,
    prefix: &str,
    shape: &[usize],
) -> Result<()> {
    let w = ck.take(&format!("{prefix}.weight"), shape)?;
    let (q, scales) = quantize_weights(&w, shape[0], WeightRange::Full);
    i8s.push((format!("{prefix}.qweight"), shape.to_vec(), q));
    f32s.push((format!("{prefix}.wscale"), vec![shape[0]], scales));
    Ok(())
}

/// `rows x cols` values, row-major, as `cols x rows`.
fn transpose<T: Copy>(x: &[T], rows: usize, cols: usize) -> Vec<T> {
    (0..cols * rows).map(|i| x[(i % rows) * cols + i / rows]).collect()
}

/// [`store_int8`]'s weights back in f32.
fn take_dequantized(ck: &mut Checkpoint, prefix: &str, shape: &[usize]) -> Result<Vec<f32>> {
    let q = take_weights(ck, prefix, shape)?;
    let scales = ck.take(&format!("{prefix}.wscale"), &[shape[0]])?;
    let per = q.len() / shape[0].max(1);
    Ok(q.iter().enumerate().map(|(i, &q)| f32::from(q) * scales[i / per]).collect())
}

/// `{prefix}.qweight` of `shape`, every value in `WEIGHT_MIN..=WEIGHT_MAX`.
fn take_weights(ck: &mut Checkpoint, prefix: &str, shape: &[usize]) -> Result<Vec<i8>> {
    let name = format!("{prefix}.qweight");
    let qw = ck.take_i8(&name, shape)?;
    if let Some(i) = qw.iter().position(|w| !(WEIGHT_MIN..=WEIGHT_MAX).contains(w)) {
        return Err(Error::UnusableWeights {
            path: ck.path().to_path_buf(),
            name: name.clone(),
            reason: format!(
                "`{name}` holds {} at index {i}: int8 weights must be in {WEIGHT_MIN}..={WEIGHT_MAX}",
                qw[i]
            ),
        });
    }
    Ok(qw)
}

/// One int8 layer after the stem, with the quantisation of its output.
#[derive(Debug)]
enum Layer {
    Depthwise(Box<QDwWeights>, Vec<Quant>),
    Se(se::SeWeights, Vec<Quant>, Requantiser),
    Pointwise(QPwWeights, Vec<Quant>),
}

/// An int8 network: [`quantize`]'s checkpoint loaded for a variant.
#[derive(Debug)]
pub struct QuantNet {
    info: &'static VariantInfo,
    stem: stem::StemWeights,
    /// Per channel, and the quantiser that makes them.
    stem_out: (Vec<Quant>, Requantiser),
    layers: Vec<Layer>,
    /// Per layer: the stage it ends (`blocks2`, ...), if it is the last of one.
    stage_ends: Vec<Option<&'static str>>,
    head: QHeadWeights,
}

impl QuantNet {
    /// Loads an int8 checkpoint of `info` (every tensor must be used).
    pub fn load(ck: &mut Checkpoint, info: &'static VariantInfo) -> Result<QuantNet> {
        let act = info.activation;
        let mut stem_parts = None;
        let mut layers = Vec::new();
        // The quantisation of the current map's channels (the stem's may
        // differ per channel; every later one is per tensor).
        let mut input: Vec<Quant> = Vec::new();
        for l in observed_layers(info) {
            let (o, k) = (l.out_channels, l.kernel);
            if l.kind != LayerKind::Depthwise && input.windows(2).any(|q| q[0] != q[1]) {
                return Err(Error::UnusableWeights {
                    path: ck.path().to_path_buf(),
                    name: format!("{}.out_scale", l.name),
                    reason: format!("`{}` reads a map quantised per channel: only a depthwise layer can", l.name),
                });
            }
            let outs = read_quant(ck, l.name, o)?;
            let out = outs[0];
            match l.kind {
                LayerKind::Stem => {
                    let (w, b) = load_conv_bn(ck, l.name, [o, l.in_channels, k, k])?;
                    let weights = stem::StemWeights::pack(&w, b, l.in_channels, k, l.stride, act);
                    let quantiser = Requantiser::new(&Requant {
                        scale: outs.iter().map(|q| 1.0 / q.scale).collect(),
                        bias: outs.iter().map(|q| f32::from(q.zero)).collect(),
                        act: Activation::None,
                        out_scale: vec![1.0; o],
                        out_zero: vec![0; o],
                    });
                    stem_parts = Some((weights, (outs.clone(), quantiser)));
                    input = outs;
                    continue;
                }
                LayerKind::Depthwise => {
                    let (qw, rq) = read_int8(ck, l, [o, 1, k, k], &input, &outs, act)?;
                    let zeros: Vec<u8> = input.iter().map(|q| q.zero).collect();
                    layers.push(Layer::Depthwise(
                        Box::new(QDwWeights::pack(&qw, k, l.stride, &zeros, &rq)),
                        outs.clone(),
                    ));
                }
                LayerKind::Pointwise => {
                    let (qw, rq) = read_int8(ck, l, [o, l.in_channels, 1, 1], &input, &outs, act)?;
                    layers
                        .push(Layer::Pointwise(QPwWeights::pack(&qw, l.in_channels, input[0].zero, &rq), outs.clone()));
                }
                LayerKind::SqueezeExcite => {
                    let (c, mid) = (l.in_channels, l.mid_channels);
                    let weights = se::SeWeights::pack(
                        &take_dequantized(ck, &format!("{}.conv1", l.name), &[mid, c, 1, 1])?,
                        ck.take(&format!("{}.conv1.bias", l.name), &[mid])?,
                        &take_dequantized(ck, &format!("{}.conv2", l.name), &[c, mid, 1, 1])?,
                        ck.take(&format!("{}.conv2.bias", l.name), &[c])?,
                    );
                    if outs.windows(2).any(|q| q[0] != q[1]) {
                        return Err(Error::UnusableWeights {
                            path: ck.path().to_path_buf(),
                            name: format!("{}.out_scale", l.name),
                            reason: format!(
                                "`{}` is quantised per channel: SE outputs are quantised per tensor",
                                l.name
                            ),
                        });
                    }
                    layers.push(Layer::Se(weights, outs.clone(), plain_quantiser(c, out)));
                }
                LayerKind::HeadConv | LayerKind::Fc => unreachable!("not an observed layer"),
            }
            input = outs;
        }
        if input.windows(2).any(|q| q[0] != q[1]) {
            return Err(Error::UnusableWeights {
                path: ck.path().to_path_buf(),
                name: format!("{}.out_scale", observed_layers(info).last().map_or("stem", |l| l.name)),
                reason: "the head reads a map quantised per channel: the last layer's output must be per tensor"
                    .to_string(),
            });
        }
        let (stem, stem_out) = stem_parts.expect("every layer table starts with a stem");
        let head_info = info.layers.iter().find(|l| l.kind == LayerKind::HeadConv);
        let last = observed_layers(info).last().map_or(0, |l| l.out_channels);
        let hidden = head_info.map_or(0, |l| l.out_channels);
        let features = if hidden > 0 { hidden } else { last };
        let conv = if hidden > 0 {
            let q = take_weights(ck, "last_conv", &[hidden, last, 1, 1])?;
            let scale = ck.take("last_conv.wscale", &[hidden])?;
            // A bias the table does not ask for is still taken when present
            // (timm's `conv_head` has one), as the f32 head does.
            let bias = if info.head_bias || ck.shape("last_conv.bias").is_some() {
                ck.take("last_conv.bias", &[hidden])?
            } else {
                vec![0.0; hidden]
            };
            Some(QMatrix::new(&q, false, scale, bias))
        } else {
            None
        };
        let classes = fc_classes(ck, "fc.qweight", features)?;
        let fc_q = take_weights(ck, "fc", &[features, classes])?;
        let fc_scale = ck.take("fc.wscale", &[classes])?.iter().map(|s| s * info.dropout_scale).collect();
        let fc = QMatrix::new(&fc_q, true, fc_scale, ck.take("fc.bias", &[classes])?);
        let head = QHeadWeights { conv, act, fc };
        ck.finish(info.name)?;
        let stages: Vec<&str> =
            observed_layers(info).skip(1).map(|l| l.name.split('.').next().unwrap_or(l.name)).collect();
        let stage_ends =
            (0..stages.len()).map(|i| (stages.get(i + 1) != Some(&stages[i])).then_some(stages[i])).collect();
        Ok(QuantNet { info, stem, stem_out, layers, stage_ends, head })
    }
}

/// Quantises `channels` real values per pixel as they are (the stem's and
/// SE's outputs, their activation already applied).
fn plain_quantiser(channels: usize, out: Quant) -> Requantiser {
    Requantiser::new(&Requant {
        scale: vec![1.0; channels],
        bias: vec![0.0; channels],
        act: Activation::None,
        out_scale: vec![out.scale; channels],
        out_zero: vec![out.zero; channels],
    })
}

/// `{layer}.out_scale` and `{layer}.out_zero`, one each or `channels`
/// each: positive finite scales and integer zero points in `0..=255`. One
/// per channel, as many as the channels.
fn read_quant(ck: &mut Checkpoint, layer: &str, channels: usize) -> Result<Vec<Quant>> {
    let (scale_name, zero_name) = (format!("{layer}.out_scale"), format!("{layer}.out_zero"));
    let n = if ck.shape(&scale_name) == Some(&[channels][..]) { channels } else { 1 };
    let (scales, zeros) = (ck.take(&scale_name, &[n])?, ck.take(&zero_name, &[n])?);
    let mut quants = Vec::with_capacity(channels);
    for (&scale, &zero) in scales.iter().zip(&zeros) {
        let usable = scale.is_finite() && scale > 0.0 && (0.0..=255.0).contains(&zero) && zero.fract() == 0.0;
        if !usable {
            return Err(Error::UnusableWeights {
                path: ck.path().to_path_buf(),
                name: layer.to_string(),
                reason: format!(
                    "`{layer}` has output scale {scale} and zero point {zero}: expected a positive scale and a whole zero point in 0..=255"
                ),
            });
        }
        quants.push(Quant { scale, zero: zero as u8 });
    }
    quants.resize(channels, quants[0]);
    Ok(quants)
}

/// A depthwise or pointwise layer's int8 weights (checked to be in range),
/// and its requantisation from `input` to `out`.
fn read_int8(
    ck: &mut Checkpoint,
    l: &LayerInfo,
    shape: [usize; 4],
    input: &[Quant],
    outs: &[Quant],
    act: crate::kernels::Activation,
) -> Result<(Vec<i8>, Requant)> {
    let name = l.name;
    let qw = take_weights(ck, name, &shape)?;
    let wscale = ck.take(&format!("{name}.wscale"), &[shape[0]])?;
    let bias = ck.take(&format!("{name}.bias"), &[shape[0]])?;
    // Depthwise: output channel `o` reads input channel `o`; pointwise:
    // every channel, all of one quantisation.
    let scale = if l.kind == LayerKind::Depthwise {
        wscale.iter().zip(input).map(|(&s, q)| q.scale * s).collect()
    } else {
        wscale.iter().map(|&s| input[0].scale * s).collect()
    };
    let (out_scale, out_zero) = (outs.iter().map(|q| q.scale).collect(), outs.iter().map(|q| q.zero).collect());
    Ok((qw, Requant { scale, bias, act, out_scale, out_zero }))
}

impl Network for QuantNet {
    fn variant(&self) -> &'static VariantInfo {
        self.info
    }

    fn classes(&self) -> usize {
        self.head.classes()
    }

    fn forward(&self, input: ArrayView4<f32>, ws: &mut Workspace) -> Result<Array2<f32>> {
        let &[n, c, h, w] = input.shape() else { unreachable!("ArrayView4 has four axes") };
        if c != 3 || n == 0 || h == 0 || w == 0 {
            let expected = "[N, 3, H, W] with N, H, W >= 1 (NCHW)".into();
            return Err(Error::BadInput { expected, got: input.shape().to_vec() });
        }
        let input = input.as_standard_layout();
        let data = input.as_slice().expect("standard layout is contiguous");
        if let Some(i) = first_non_finite(data) {
            return Err(Error::NonFiniteInput { index: i, value: data[i] });
        }
        let groups = crate::kernels::threads::threads().min(n);
        if groups == 1 || ws.observing() {
            return self.run_images(data, n, [h, w], ws);
        }
        // Several images and threads: a contiguous group of images per
        // thread, each run alone with its own workspace, as the f32 network
        // does (one image's maps stay in the caches, a batch's do not).
        let per_group = n.div_ceil(groups);
        let image = 3 * h * w;
        let parts: Vec<Result<Array2<f32>>> = ws
            .children(groups)
            .par_iter_mut()
            .enumerate()
            .map(|(g, ws)| {
                let images = (g * per_group).min(n)..((g + 1) * per_group).min(n);
                if images.is_empty() {
                    return Ok(Array2::zeros((0, self.classes())));
                }
                let data = &data[images.start * image..images.end * image];
                crate::kernels::threads::serially(|| self.run_images(data, images.len(), [h, w], ws))
            })
            .collect();
        let parts = parts.into_iter().collect::<Result<Vec<_>>>()?;
        let views: Vec<_> = parts.iter().map(Array2::view).collect();
        Ok(ndarray::concatenate(ndarray::Axis(0), &views).expect("every part has the classes' columns"))
    }
}

impl QuantNet {
    /// The pass over `n` NCHW images of `h` x `w` in `data`, already checked.
    ///
    /// The integer kernels give the same bytes on every tier by construction;
    /// the f32 parts (stem, SE, head) run [`Isa::fused`](crate::Isa::fused),
    /// which sums in the same order with the same roundings on every tier,
    /// so the whole pass does too (`tests/int8_network.rs` checks it against a
    /// plain scalar implementation).
    fn run_images(&self, data: &[f32], n: usize, [h, w]: [usize; 2], ws: &mut Workspace) -> Result<Array2<f32>> {
        let (isa, f32_isa) = (isa(), isa().fused());
        // Buffers from the workspace: after the first pass, none is allocated.
        let (sh, sw) = self.stem.out_hw(h, w);
        let mut len = n * sh * sw * self.stem.out_channels;
        let mut real = ws.take(q_stem::scratch_len(&self.stem, n, h, w));
        let mut x = ws.take_bytes(len);
        q_stem::run_isa(f32_isa, &self.stem, &self.stem_out.1, data, n, [h, w], &mut x[..len], &mut real);
        let (mut h, mut w, mut q) = (sh, sw, &self.stem_out.0[..]);
        let stem_name = observed_layers(self.info).next().map_or("stem", |l| l.name);
        ws.mark_stage(stem_name);
        record(ws, stem_name, &x[..len], &self.stem_out.0, [n, h, w]);
        for (layer, stage_end) in self.layers.iter().zip(&self.stage_ends) {
            match layer {
                Layer::Depthwise(p, out) => {
                    let (oh, ow) = p.out_hw(h, w);
                    let out_len = n * oh * ow * p.channels();
                    let mut y = ws.take_bytes(out_len);
                    real.reuse(p.scratch_len(n, h, w));
                    q_dwconv::run_isa(isa, p, &x[..len], n, h, w, &mut y[..out_len], &mut real);
                    ws.give_bytes(std::mem::replace(&mut x, y));
                    (len, h, w, q) = (out_len, oh, ow, out);
                }
                Layer::Se(p, out, quantiser) => {
                    real.reuse(len);
                    dequantize(isa, &x[..len], q[0].zero, q[0].scale, &mut real);
                    let mut s = ws.take_scratch(n * p.scratch_per_image());
                    se::run_isa(f32_isa, p, &mut real, n, h * w, &mut s);
                    ws.give_scratch(s);
                    requantise(isa, quantiser, &real, &mut x[..len]);
                    q = out;
                }
                Layer::Pointwise(p, out) => {
                    let out_len = n * h * w * p.out_channels();
                    let mut y = ws.take_bytes(out_len);
                    q_pwconv::run_isa(isa, p, &x[..len], n * h * w, &mut y[..out_len]);
                    ws.give_bytes(std::mem::replace(&mut x, y));
                    (len, q) = (out_len, out);
                }
            }
            if let Some(stage) = stage_end {
                ws.mark_stage(stage);
                record(ws, stage, &x[..len], q, [n, h, w]);
            }
        }
        real.reuse(len);
        dequantize(isa, &x[..len], q[0].zero, q[0].scale, &mut real);
        ws.give_bytes(x);
        let mut logits = Array2::zeros((n, self.classes()));
        let mut s = ws.take_scratch(n * self.head.scratch_per_image());
        q_head::run_isa(
            f32_isa,
            &self.head,
            &real,
            n,
            &mut s,
            logits.as_slice_mut().expect("fresh array is contiguous"),
        );
        ws.give_scratch(s);
        ws.give(real);
        Ok(logits)
    }
}

/// Keeps `stage`'s output, `n` NHWC `u8` maps of `h` x `w` in `x`
/// quantised by `q` (one per channel, or one), as real NCHW values when
/// `ws` records stages (`lcnet infer --stages`).
fn record(ws: &mut Workspace, stage: &str, x: &[u8], q: &[Quant], [n, h, w]: [usize; 3]) {
    if !ws.recording() {
        return;
    }
    let c = x.len() / (n * h * w).max(1);
    let real = ndarray::Array4::from_shape_fn((n, c, h, w), |(i, ch, y, xx)| {
        let q = q[ch.min(q.len() - 1)];
        (f32::from(x[((i * h + y) * w + xx) * c + ch]) - f32::from(q.zero)) * q.scale
    });
    ws.record_nchw(stage, real);
}
