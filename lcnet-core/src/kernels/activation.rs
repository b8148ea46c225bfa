//! Pointwise activations, applied in the epilogue of every conv kernel.

/// Paddle's `nn.Hardsigmoid` slope (the f32 nearest 0.1666667, not 1/6):
/// PaddleClas's SE module uses it and paddle2onnx exports it as `alpha`.
pub const HARD_SIGMOID_SLOPE: f32 = 0.166_666_7;

/// The activation fused into a kernel's epilogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// Identity.
    None,
    /// `max(x, 0)`.
    Relu,
    /// `min(max(x, 0), 6)`.
    Relu6,
    /// `x * relu6(x + 3) / 6`.
    HardSwish,
}

impl Activation {
    /// Applies the activation to one value.
    #[inline(always)]
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Activation::None => x,
            Activation::Relu => x.max(0.0),
            Activation::Relu6 => x.clamp(0.0, 6.0),
            Activation::HardSwish => hard_swish(x),
        }
    }

    /// Applies the activation to every value of `xs` in place.
    #[inline]
    pub fn apply_slice(self, xs: &mut [f32]) {
        match self {
            Activation::None => {}
            Activation::Relu => xs.iter_mut().for_each(|x| *x = x.max(0.0)),
            Activation::Relu6 => xs.iter_mut().for_each(|x| *x = x.clamp(0.0, 6.0)),
            Activation::HardSwish => xs.iter_mut().for_each(|x| *x = hard_swish(*x)),
        }
    }
}

/// HardSwish, `x * relu6(x + 3) / 6` (Paddle `nn.Hardswish`).
#[inline(always)]
pub fn hard_swish(x: f32) -> f32 {
    x * (x + 3.0).clamp(0.0, 6.0) * (1.0 / 6.0)
}

/// HardSigmoid, `clip(slope * x + 0.5, 0, 1)` with Paddle's slope
/// [`HARD_SIGMOID_SLOPE`].
#[inline(always)]
pub fn hard_sigmoid(x: f32) -> f32 {
    (HARD_SIGMOID_SLOPE * x + 0.5).clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hard_swish_matches_its_definition() {
        // Values worked out by hand from x * min(max(x + 3, 0), 6) / 6.
        assert_eq!(hard_swish(-4.0), 0.0);
        assert_eq!(hard_swish(-3.0), 0.0);
        assert!((hard_swish(-1.5) - (-1.5 * 1.5 / 6.0)).abs() < 1e-7);
        assert_eq!(hard_swish(0.0), 0.0);
        assert!((hard_swish(1.0) - 4.0 / 6.0).abs() < 1e-7);
        assert_eq!(hard_swish(3.0), 3.0);
        assert_eq!(hard_swish(10.0), 10.0);
    }

    #[test]
    fn hard_sigmoid_uses_paddles_slope_and_clips() {
        assert_eq!(hard_sigmoid(-10.0), 0.0);
        assert_eq!(hard_sigmoid(0.0), 0.5);
        assert_eq!(hard_sigmoid(10.0), 1.0);
        assert!((hard_sigmoid(1.0) - (0.1666667 + 0.5)).abs() < 1e-7);
    }

    #[test]
    fn relu_and_identity() {
        let mut v = [-1.0, 0.5];
        Activation::Relu.apply_slice(&mut v);
        assert_eq!(v, [0.0, 0.5]);
        Activation::None.apply_slice(&mut v);
        assert_eq!(v, [0.0, 0.5]);
        let mut v = [-1.0, 3.0, 7.5];
        Activation::Relu6.apply_slice(&mut v);
        assert_eq!(v, [0.0, 3.0, 6.0]);
    }
}
