//! Random but well-scaled weights for any compiled variant, for benchmarks
//! and smoke tests when no checkpoint is at hand.

use std::collections::BTreeMap;

use lcnet_core::{Checkpoint, LayerKind, Result, VariantInfo};

/// A checkpoint for `variant` with `classes` outputs: He-initialised convs,
/// identity BatchNorm, small biases; deterministic for a given `seed`.
pub fn random_checkpoint(variant: &VariantInfo, classes: usize, seed: u64) -> Result<Checkpoint> {
    let mut rng = SplitMix(seed);
    let mut tensors: Vec<(String, Vec<usize>, Vec<f32>)> = Vec::new();
    let mut normal = |shape: &[usize], std: f32| -> Vec<f32> {
        (0..shape.iter().product::<usize>()).map(|_| rng.normal() * std).collect()
    };
    for l in variant.layers {
        let c = l.out_channels;
        match l.kind {
            LayerKind::Stem | LayerKind::Depthwise | LayerKind::Pointwise => {
                let shape = match l.kind {
                    LayerKind::Depthwise => vec![c, 1, l.kernel, l.kernel],
                    _ => vec![c, l.in_channels, l.kernel, l.kernel],
                };
                let fan_in = shape[1..].iter().product::<usize>() as f32;
                tensors.push((format!("{}.conv.weight", l.name), shape.clone(), normal(&shape, (2.0 / fan_in).sqrt())));
                tensors.push((format!("{}.bn.weight", l.name), vec![c], vec![1.0; c]));
                tensors.push((format!("{}.bn.bias", l.name), vec![c], vec![0.0; c]));
                tensors.push((format!("{}.bn._mean", l.name), vec![c], vec![0.0; c]));
                tensors.push((format!("{}.bn._variance", l.name), vec![c], vec![1.0; c]));
            }
            LayerKind::SqueezeExcite => {
                let (c, m) = (l.in_channels, l.mid_channels);
                let (w1, w2) = (normal(&[m, c], (2.0 / c as f32).sqrt()), normal(&[c, m], (1.0 / m as f32).sqrt()));
                tensors.push((format!("{}.conv1.weight", l.name), vec![m, c, 1, 1], w1));
                tensors.push((format!("{}.conv1.bias", l.name), vec![m], normal(&[m], 0.1)));
                tensors.push((format!("{}.conv2.weight", l.name), vec![c, m, 1, 1], w2));
                tensors.push((format!("{}.conv2.bias", l.name), vec![c], normal(&[c], 0.1)));
            }
            LayerKind::HeadConv => {
                let shape = vec![c, l.in_channels, 1, 1];
                tensors.push((
                    format!("{}.weight", l.name),
                    shape.clone(),
                    normal(&shape, (2.0 / l.in_channels as f32).sqrt()),
                ));
            }
            LayerKind::Fc => {
                let shape = vec![l.in_channels, classes];
                tensors.push((
                    format!("{}.weight", l.name),
                    shape.clone(),
                    normal(&shape, (1.0 / l.in_channels as f32).sqrt()),
                ));
                tensors.push((format!("{}.bias", l.name), vec![classes], vec![0.0; classes]));
            }
        }
    }
    let views: Vec<(&str, Vec<usize>, &[f32])> =
        tensors.iter().map(|(n, s, d)| (n.as_str(), s.clone(), d.as_slice())).collect();
    let meta = BTreeMap::from([("model".to_string(), variant.name.to_string())]);
    Checkpoint::from_vec(
        &format!("<random {} weights, seed {seed}>", variant.name),
        lcnet_core::weights::to_bytes(&views, &meta)?,
    )
}

/// SplitMix64 with a Box-Muller normal: small, deterministic, good enough for weights.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn uniform(&mut self) -> f32 {
        ((self.next() >> 40) as f32 + 0.5) / (1u64 << 24) as f32
    }

    fn normal(&mut self) -> f32 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
    }
}
