//! The arithmetic PaddleClas uses to size a network: channel rounding,
//! conv output sizes and the width names. Shared by validation (SE
//! divisibility) and planning.

/// PaddleClas `make_divisible`: round `v` to the nearest multiple of
/// `divisor` (at least `divisor`), adding one more `divisor` if rounding lost
/// more than 10%.
pub fn make_divisible(v: f64, divisor: usize) -> usize {
    let d = divisor as f64;
    let mut new_v = d.max(((v + d / 2.0) as i64 / divisor as i64 * divisor as i64) as f64);
    if new_v < 0.9 * v {
        new_v += d;
    }
    new_v as usize
}

/// Output length of a conv with symmetric padding `(k - 1) / 2` (PaddleClas).
pub fn conv_out(n: usize, kernel: usize, stride: usize) -> usize {
    (n + 2 * ((kernel - 1) / 2) - kernel) / stride + 1
}

/// `0.25 -> x0_25`, `1.0 -> x1_0`, `2.5 -> x2_5` (PaddleClas's names).
pub fn feature_name(width: f64) -> String {
    let mut s = format!("{width}");
    if !s.contains('.') {
        s.push_str(".0");
    }
    format!("x{}", s.replace('.', "_"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn make_divisible_matches_paddleclas() {
        // PaddleClas channel table (tools/ref/params_macs.md).
        assert_eq!(make_divisible(16.0 * 0.25, 8), 8);
        assert_eq!(make_divisible(32.0 * 0.35, 8), 16);
        assert_eq!(make_divisible(64.0 * 0.35, 8), 24);
        assert_eq!(make_divisible(256.0 * 0.35, 8), 88);
        assert_eq!(make_divisible(512.0 * 0.35, 8), 176);
        assert_eq!(make_divisible(16.0 * 0.75, 8), 16);
        assert_eq!(make_divisible(16.0 * 2.5, 8), 40);
    }

    #[test]
    fn feature_names_follow_paddleclas() {
        let names: Vec<String> = [0.25, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5].map(feature_name).to_vec();
        assert_eq!(names, ["x0_25", "x0_35", "x0_5", "x0_75", "x1_0", "x1_5", "x2_0", "x2_5"]);
    }

    #[test]
    fn conv_out_rounds_up_like_paddle() {
        assert_eq!(conv_out(97, 3, 2), 49);
        assert_eq!(conv_out(7, 5, 2), 4);
        assert_eq!(conv_out(224, 3, 1), 224);
    }
}
