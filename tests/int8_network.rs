//! The whole int8 network against a plain scalar int8 implementation
//! written here from the definitions (docs/int8.md, `lcnet_core::kernels::
//! int8::Requant`): integer sums, each requantised with the fused
//! multiply-adds the definition names, and the f32 stem, SE and head summed
//! one fused multiply-add at a time in input order. The logits must be equal
//! bit for bit on the tier this process runs: CI runs it on every x86 tier
//! (`LCNET_ISA`) and on `neon` and `scalar` under qemu.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use lcnet_zoo::lcnet_core::ndarray::ArrayView4;
use lcnet_zoo::lcnet_core::quant::{observed_layers, quantize, WeightRange};
use lcnet_zoo::lcnet_core::{isa, Checkpoint, LayerKind, VariantInfo, Workspace};
use lcnet_zoo::Classifier;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// An NHWC `u8` map and its quantisation: one scale and zero point per
/// channel, or one for all.
struct Map {
    h: usize,
    w: usize,
    c: usize,
    q: Vec<u8>,
    scale: Vec<f32>,
    zero: Vec<u8>,
}

impl Map {
    fn at(&self, y: usize, x: usize, ch: usize) -> u8 {
        self.q[(y * self.w + x) * self.c + ch]
    }
    fn scale(&self, ch: usize) -> f32 {
        self.scale[ch.min(self.scale.len() - 1)]
    }
    fn zero(&self, ch: usize) -> i32 {
        i32::from(self.zero[ch.min(self.zero.len() - 1)])
    }
    /// The real values, `(q - zero) * scale`.
    fn real(&self) -> Vec<f32> {
        (0..self.q.len())
            .map(|i| (i32::from(self.q[i]) - self.zero(i % self.c)) as f32 * self.scale(i % self.c))
            .collect()
    }
}

/// HardSwish as Paddle defines it, `x * relu6(x + 3) / 6`.
fn hard_swish(x: f32) -> f32 {
    x * (x + 3.0).clamp(0.0, 6.0) * (1.0 / 6.0)
}

/// A real value `v` to `u8` for output scale `scale`, zero point `zero`:
/// `round_ties_even(clamp(v / scale + zero))`, the division as a multiply by
/// `1 / scale` fused with the add.
fn to_u8(v: f32, scale: f32, zero: u8) -> u8 {
    v.mul_add(1.0 / scale, f32::from(zero)).clamp(0.0, 255.0).round_ties_even() as u8
}

/// An integer sum requantised: `y = sum * scale + bias` (fused), HardSwish
/// folded into the output's multiply-add: with `f = 1 / out_scale / 6`,
/// `y * clamp(y * f + 3f, 0, 6f) + out_zero` (both fused), rounded to
/// even, clamped.
fn requantise(sum: i32, scale: f32, bias: f32, out_scale: f32, out_zero: u8) -> u8 {
    let y = (sum as f32).mul_add(scale, bias);
    let f = 1.0 / out_scale / 6.0;
    let t = y.mul_add(f, 3.0 * f).clamp(0.0, 6.0 * f);
    y.mul_add(t, f32::from(out_zero)).clamp(0.0, 255.0).round_ties_even() as u8
}

/// `{name}.qweight` as `i8` and `{name}.wscale`.
fn int8(ck: &mut Checkpoint, name: &str, shape: &[usize]) -> (Vec<i8>, Vec<f32>) {
    (ck.take_i8(&format!("{name}.qweight"), shape).unwrap(), ck.take(&format!("{name}.wscale"), &shape[..1]).unwrap())
}

/// `{name}.qweight` back in f32: `q * wscale` of its output channel.
fn dequantized(ck: &mut Checkpoint, name: &str, shape: &[usize]) -> Vec<f32> {
    let (q, s) = int8(ck, name, shape);
    let per = q.len() / shape[0];
    q.iter().enumerate().map(|(i, &q)| f32::from(q) * s[i / per]).collect()
}

/// `layer`'s output quantisation: `[n]` scales and zero points, one per
/// channel or one for all (as the checkpoint holds them).
fn out_quant(ck: &mut Checkpoint, layer: &str) -> (Vec<f32>, Vec<u8>) {
    let n = ck.shape(&format!("{layer}.out_scale")).unwrap()[0];
    let scale = ck.take(&format!("{layer}.out_scale"), &[n]).unwrap();
    let zero = ck.take(&format!("{layer}.out_zero"), &[n]).unwrap().iter().map(|&z| z as u8).collect();
    (scale, zero)
}

/// Channel means of `pixels` pixels of `c` values: summed in pixel order,
/// times `1 / pixels`.
fn pool(real: &[f32], c: usize) -> Vec<f32> {
    let mut sums = vec![0.0f32; c];
    for pixel in real.chunks_exact(c) {
        sums.iter_mut().zip(pixel).for_each(|(s, &v)| *s += v);
    }
    let inv = 1.0 / (real.len() / c) as f32;
    sums.iter().map(|s| s * inv).collect()
}

/// `bias[o] + sum_j x[j] * w[o][j]`, one fused multiply-add per `j` in order
/// (`w` is `[outputs][x.len()]`, or `[x.len()][outputs]` when `input_major`).
fn matvec(x: &[f32], w: &[f32], bias: &[f32], input_major: bool) -> Vec<f32> {
    let (n, k) = (bias.len(), x.len());
    (0..n)
        .map(|o| (0..k).fold(bias[o], |acc, j| x[j].mul_add(w[if input_major { j * n + o } else { o * k + j }], acc)))
        .collect()
}

/// The int8 checkpoint `ck` of `info` on one NCHW image of `h` x `w`: the logits.
/// `per_channel_pointwise` counts the pointwise outputs quantised per channel.
fn reference(
    ck: &mut Checkpoint,
    info: &VariantInfo,
    image: &[f32],
    [h, w]: [usize; 2],
    per_channel_pointwise: &mut usize,
) -> Vec<f32> {
    let eps: f64 = ck.metadata().get("bn_eps").map_or(1e-5, |e| e.parse().unwrap());
    let mut map: Option<Map> = None;
    for l in observed_layers(info) {
        let (o, k, s) = (l.out_channels, l.kernel, l.stride);
        let pad = (k - 1) / 2;
        match l.kind {
            LayerKind::Stem => {
                // BatchNorm folded in f64: w * g / sqrt(v + eps), beta - mean * g / sqrt(v + eps).
                let cin = l.in_channels;
                let weight = ck.take(&format!("{}.conv.weight", l.name), &[o, cin, k, k]).unwrap();
                let bn = |ck: &mut Checkpoint, part: &str| ck.take(&format!("{}.bn.{part}", l.name), &[o]).unwrap();
                let (g, beta, mean, var) = (bn(ck, "weight"), bn(ck, "bias"), bn(ck, "_mean"), bn(ck, "_variance"));
                let gain: Vec<f64> = (0..o).map(|c| g[c] as f64 / (var[c] as f64 + eps).sqrt()).collect();
                let per = cin * k * k;
                let wf: Vec<f32> = (0..o * per).map(|i| (weight[i] as f64 * gain[i / per]) as f32).collect();
                let bias: Vec<f32> = (0..o).map(|c| (beta[c] as f64 - mean[c] as f64 * gain[c]) as f32).collect();
                let (scale, zero) = out_quant(ck, l.name);
                assert_eq!(scale.len(), o, "the stem's output is quantised per channel");
                let (oh, ow) = ((h - 1) / s[0] + 1, (w - 1) / s[1] + 1);
                let mut q = vec![0u8; oh * ow * o];
                for (oy, ox, c) in (0..oh).flat_map(|y| (0..ow).flat_map(move |x| (0..o).map(move |c| (y, x, c)))) {
                    let mut acc = bias[c];
                    for (ci, ky, kx) in
                        (0..cin).flat_map(|ci| (0..k).flat_map(move |ky| (0..k).map(move |kx| (ci, ky, kx))))
                    {
                        let (iy, ix) = ((oy * s[0] + ky).wrapping_sub(pad), (ox * s[1] + kx).wrapping_sub(pad));
                        if iy < h && ix < w {
                            acc = image[(ci * h + iy) * w + ix].mul_add(wf[((c * cin + ci) * k + ky) * k + kx], acc);
                        }
                    }
                    q[(oy * ow + ox) * o + c] = to_u8(hard_swish(acc), scale[c], zero[c]);
                }
                map = Some(Map { h: oh, w: ow, c: o, q, scale, zero });
            }
            LayerKind::Depthwise => {
                let x = map.take().unwrap();
                let (qw, ws) = int8(ck, l.name, &[o, 1, k, k]);
                let bias = ck.take(&format!("{}.bias", l.name), &[o]).unwrap();
                let (out_scale, out_zero) = out_quant(ck, l.name);
                assert_eq!(out_scale.len(), 1, "depthwise outputs are quantised per tensor");
                let (oh, ow) = ((x.h - 1) / s[0] + 1, (x.w - 1) / s[1] + 1);
                let mut q = vec![0u8; oh * ow * o];
                for (oy, ox, c) in (0..oh).flat_map(|y| (0..ow).flat_map(move |x| (0..o).map(move |c| (y, x, c)))) {
                    let mut sum = 0i32;
                    for (ky, kx) in (0..k).flat_map(|ky| (0..k).map(move |kx| (ky, kx))) {
                        let (iy, ix) = ((oy * s[0] + ky).wrapping_sub(pad), (ox * s[1] + kx).wrapping_sub(pad));
                        if iy < x.h && ix < x.w {
                            sum += i32::from(qw[(c * k + ky) * k + kx]) * (i32::from(x.at(iy, ix, c)) - x.zero(c));
                        }
                    }
                    q[(oy * ow + ox) * o + c] = requantise(sum, x.scale(c) * ws[c], bias[c], out_scale[0], out_zero[0]);
                }
                map = Some(Map { h: oh, w: ow, c: o, q, scale: out_scale, zero: out_zero });
            }
            LayerKind::Pointwise => {
                let x = map.take().unwrap();
                let cin = l.in_channels;
                let (qw, ws) = int8(ck, l.name, &[o, cin, 1, 1]);
                let bias = ck.take(&format!("{}.bias", l.name), &[o]).unwrap();
                // Per channel when a depthwise layer reads the output.
                let (out_scale, out_zero) = out_quant(ck, l.name);
                *per_channel_pointwise += usize::from(out_scale.len() == o && o > 1);
                let at = |c: usize| c.min(out_scale.len() - 1);
                let mut q = vec![0u8; x.h * x.w * o];
                for (p, c) in (0..x.h * x.w).flat_map(|p| (0..o).map(move |c| (p, c))) {
                    let pixel = &x.q[p * cin..][..cin];
                    let sum: i32 =
                        (0..cin).map(|j| i32::from(qw[c * cin + j]) * (i32::from(pixel[j]) - x.zero(j))).sum();
                    q[p * o + c] = requantise(sum, x.scale(0) * ws[c], bias[c], out_scale[at(c)], out_zero[at(c)]);
                }
                map = Some(Map { q, c: o, scale: out_scale, zero: out_zero, ..x });
            }
            LayerKind::SqueezeExcite => {
                let x = map.take().unwrap();
                let (c, mid) = (l.in_channels, l.mid_channels);
                let w1 = dequantized(ck, &format!("{}.conv1", l.name), &[mid, c, 1, 1]);
                let b1 = ck.take(&format!("{}.conv1.bias", l.name), &[mid]).unwrap();
                let w2 = dequantized(ck, &format!("{}.conv2", l.name), &[c, mid, 1, 1]);
                let b2 = ck.take(&format!("{}.conv2.bias", l.name), &[c]).unwrap();
                let (out_scale, out_zero) = out_quant(ck, l.name);
                let real = x.real();
                let hidden: Vec<f32> = matvec(&pool(&real, c), &w1, &b1, false).iter().map(|v| v.max(0.0)).collect();
                // Paddle's nn.Hardsigmoid: slope 0.1666667 (not 1/6), offset 0.5.
                let gates: Vec<f32> =
                    matvec(&hidden, &w2, &b2, false).iter().map(|v| (0.166_666_7 * v + 0.5).clamp(0.0, 1.0)).collect();
                let q: Vec<u8> =
                    real.iter().enumerate().map(|(i, v)| to_u8(v * gates[i % c], out_scale[0], out_zero[0])).collect();
                map = Some(Map { q, scale: out_scale, zero: out_zero, ..x });
            }
            LayerKind::HeadConv | LayerKind::Fc => unreachable!("not an observed layer"),
        }
    }
    // Head: mean, 1x1 conv (bias if any) and HardSwish, then the fc. Their
    // weights stay in 8 bits: each output's sum in weight units meets its
    // scale and bias in one more multiply-add; the fc's scales carry the
    // inference-time dropout factor.
    let x = map.unwrap();
    let mut features = pool(&x.real(), x.c);
    if let Some(conv) = info.layers.iter().find(|l| l.kind == LayerKind::HeadConv) {
        let hidden = conv.out_channels;
        let (q, scale) = int8(ck, "last_conv", &[hidden, x.c, 1, 1]);
        let bias = if info.head_bias { ck.take("last_conv.bias", &[hidden]).unwrap() } else { vec![0.0; hidden] };
        let sums = matvec(&features, &q.iter().map(|&q| f32::from(q)).collect::<Vec<_>>(), &vec![0.0; hidden], false);
        features = (0..hidden).map(|o| hard_swish(sums[o].mul_add(scale[o], bias[o]))).collect();
    }
    let classes = ck.shape("fc.qweight").unwrap()[1];
    let q = ck.take_i8("fc.qweight", &[features.len(), classes]).unwrap();
    let scale = ck.take("fc.wscale", &[classes]).unwrap();
    let bias = ck.take("fc.bias", &[classes]).unwrap();
    let sums = matvec(&features, &q.iter().map(|&q| f32::from(q)).collect::<Vec<_>>(), &vec![0.0; classes], true);
    (0..classes).map(|c| sums[c].mul_add(scale[c] * info.dropout_scale, bias[c])).collect()
}

#[test]
fn int8_network_equals_a_plain_scalar_int8_implementation_bit_for_bit() {
    // doc_ori quantised on three example pages, run on the fourth.
    let f32_net = Classifier::preset("doc_ori").unwrap();
    let info = f32_net.network().variant();
    let pages: Vec<PathBuf> = ["page_0.png", "page_90.png", "page_180.png", "page_270.png"]
        .iter()
        .map(|p| Path::new(ROOT).join("examples/pages").join(p))
        .collect();
    let ranges = f32_net.calibrate(&pages[..3], |_| ()).unwrap();
    let preset = lcnet_zoo::presets::find("doc_ori").unwrap();

    // The page at the model's size, and a 97 x 131 crop of it: odd sizes
    // round up at every stride-two layer and end blocks mid-row.
    let [_, h, w] = info.input;
    let page = f32_net.input_tensor(&pages[3]).unwrap();
    let (ch, cw) = (97, 131);
    let crop: Vec<f32> =
        (0..3 * ch * cw).map(|i| page[(i / (ch * cw) * h + i / cw % ch + 40) * w + i % cw + 50]).collect();
    // Reduced pointwise weights take `vpmaddubsw` on AVX2 and AVX-512BW,
    // full ones the wide step there.
    for (range, image, [h, w]) in [
        (WeightRange::Full, &page, [h, w]),
        (WeightRange::Full, &crop, [ch, cw]),
        (WeightRange::Reduced, &crop, [ch, cw]),
    ] {
        let mut source = Checkpoint::from_static("doc_ori", preset.weights.unwrap()).unwrap();
        let bytes = quantize(&mut source, info, &ranges, range, &BTreeMap::new()).unwrap();
        let int8_net =
            Classifier::from_checkpoint(&mut Checkpoint::from_vec("int8", bytes.clone()).unwrap(), Some("doc_ori"))
                .unwrap();
        let mut per_channel = 0;
        let mut ck = Checkpoint::from_vec("int8", bytes.clone()).unwrap();
        let want = reference(&mut ck, info, image, [h, w], &mut per_channel);
        // Every block's pointwise output but the last feeds a depthwise layer.
        assert_eq!(per_channel, 12, "pointwise outputs quantised per channel");
        // Twice in one batch: the threads' split of a batch changes nothing.
        let batch = [image.as_slice(), image.as_slice()].concat();
        let input = ArrayView4::from_shape((2, 3, h, w), &batch).unwrap();
        let got = int8_net.network().forward(input, &mut Workspace::new()).unwrap();
        for row in got.rows() {
            let bits = |v: &[f32]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(
                bits(row.as_slice().unwrap()),
                bits(&want),
                "{range:?} weights, {h}x{w} on {}: int8 network {row}, plain implementation {want:?}",
                isa().name()
            );
        }
    }
}
