//! Image preprocessing on interleaved 8-bit RGB buffers: the operations of
//! PaddleX's classification pipeline, written to match OpenCV's semantics.

/// An 8-bit image, interleaved channels, row-major.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image8 {
    /// `height * width * 3` bytes.
    pub data: Vec<u8>,
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
}

/// `round(n * target / short)` for both sides, as PaddleX's `ResizeByShort`
/// (`round(h * scale)` with `scale = target / min(h, w)`, Python's
/// round-half-to-even on the float product).
pub fn resize_short_size(width: usize, height: usize, target: usize) -> (usize, usize) {
    let scale = target as f64 / width.min(height) as f64;
    let round = |v: f64| {
        let r = v.round();
        // Python rounds halves to even.
        if (v - v.trunc()).abs() == 0.5 && r % 2.0 != 0.0 {
            r - v.signum()
        } else {
            r
        }
    };
    ((round(width as f64 * scale) as usize).max(1), (round(height as f64 * scale) as usize).max(1))
}

/// Bilinear resize with OpenCV `INTER_LINEAR` geometry: source coordinate
/// `(x + 0.5) * in / out - 0.5`, clamped at the borders, 2x2 taps (no
/// antialiasing when shrinking), rounded back to 8 bits. OpenCV's fixed-point
/// arithmetic can differ from this by one level on some pixels.
pub fn resize_bilinear(src: &Image8, width: usize, height: usize) -> Image8 {
    resize_bilinear_window(src, (width, height), (0, 0), (width, height))
}

/// The `w` x `h` window at `(x0, y0)` of `src` resized to `size` (width,
/// height) by [`resize_bilinear`], computed without the rest: the same
/// pixels, bit for bit, in memory bounded by the window whatever `size` is
/// (a 1x5000 strip resized to 256x1280000 for a 224 crop).
pub fn resize_bilinear_window(
    src: &Image8,
    size: (usize, usize),
    (x0, y0): (usize, usize),
    (w, h): (usize, usize),
) -> Image8 {
    let taps = |range: std::ops::Range<usize>, out: usize, inp: usize| -> Vec<(usize, usize, f32)> {
        let scale = inp as f64 / out as f64;
        range
            .map(|o| {
                let f = (o as f64 + 0.5) * scale - 0.5;
                let mut i0 = f.floor() as isize;
                let mut frac = (f - i0 as f64) as f32;
                if i0 < 0 {
                    i0 = 0;
                    frac = 0.0;
                }
                if i0 as usize >= inp - 1 {
                    i0 = inp as isize - 1;
                    frac = 0.0;
                }
                let i0 = i0 as usize;
                (i0, (i0 + 1).min(inp - 1), frac)
            })
            .collect()
    };
    let (xs, ys) = (taps(x0..x0 + w, size.0, src.width), taps(y0..y0 + h, size.1, src.height));
    let mut data = vec![0u8; w * h * 3];
    let px = |x: usize, y: usize, c: usize| src.data[(y * src.width + x) * 3 + c] as f32;
    for (oy, &(y0, y1, fy)) in ys.iter().enumerate() {
        for (ox, &(x0, x1, fx)) in xs.iter().enumerate() {
            for c in 0..3 {
                let top = px(x0, y0, c) * (1.0 - fx) + px(x1, y0, c) * fx;
                let bottom = px(x0, y1, c) * (1.0 - fx) + px(x1, y1, c) * fx;
                let v = top * (1.0 - fy) + bottom * fy;
                data[(oy * w + ox) * 3 + c] = v.round().clamp(0.0, 255.0) as u8;
            }
        }
    }
    Image8 { data, width: w, height: h }
}

/// The centred `size` x `size` window, as PaddleX's `Crop(mode="C")`: starts at
/// `((w - size) / 2, (h - size) / 2)`. `None` when the image is smaller.
pub fn center_crop(src: &Image8, size: usize) -> Option<Image8> {
    if src.width < size || src.height < size {
        return None;
    }
    let (x0, y0) = ((src.width - size) / 2, (src.height - size) / 2);
    let mut data = Vec::with_capacity(size * size * 3);
    for y in y0..y0 + size {
        let row = &src.data[(y * src.width + x0) * 3..][..size * 3];
        data.extend_from_slice(row);
    }
    Some(Image8 { data, width: size, height: size })
}

/// Writes `(v * scale - mean[c]) / std[c]` as CHW f32 into `out`
/// (`3 * h * w` values). `swap_rb` feeds BGR instead of RGB (mean and std are
/// given in the fed order).
pub fn normalize_chw(src: &Image8, scale: f32, mean: [f32; 3], std: [f32; 3], swap_rb: bool, out: &mut [f32]) {
    let plane = src.width * src.height;
    debug_assert_eq!(out.len(), 3 * plane);
    for (i, px) in src.data.chunks_exact(3).enumerate() {
        for c in 0..3 {
            let v = px[if swap_rb { 2 - c } else { c }] as f32;
            out[c * plane + i] = (v * scale - mean[c]) / std[c];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_side_sizes_round_like_python() {
        assert_eq!(resize_short_size(640, 480, 256), (341, 256)); // 341.33
        assert_eq!(resize_short_size(480, 640, 256), (256, 341));
        assert_eq!(resize_short_size(200, 100, 256), (512, 256));
        assert_eq!(resize_short_size(2480, 3508, 256), (256, 362)); // 362.1
                                                                    // 300 * 256 / 200 = 384 exactly; 301 * 1.28 = 385.28.
        assert_eq!(resize_short_size(301, 200, 256), (385, 256));
    }

    #[test]
    fn bilinear_matches_opencv_geometry() {
        // A 4x1 ramp shrunk to 2x1: centres at source x = 0.5 and 2.5.
        let src = Image8 { data: [0u8, 100, 200, 250].iter().flat_map(|&v| [v, v, v]).collect(), width: 4, height: 1 };
        let out = resize_bilinear(&src, 2, 1);
        assert_eq!(out.data, vec![50, 50, 50, 225, 225, 225]);
        // Enlarging 2x1 -> 4x1: x = -0.25 clamps to 0, 0.25, 0.75, 1.25 clamps to 1.
        let src = Image8 { data: vec![0, 0, 0, 200, 200, 200], width: 2, height: 1 };
        let out = resize_bilinear(&src, 4, 1);
        assert_eq!(out.data.chunks(3).map(|p| p[0]).collect::<Vec<_>>(), vec![0, 50, 150, 200]);
    }

    #[test]
    fn a_resized_window_is_the_crop_of_the_full_resize_bit_for_bit() {
        // Pseudo-random pixels; sizes that shrink, enlarge and keep each axis.
        let mut seed = 12345u32;
        for (w, h, target, crop) in [(640, 480, 256, 224), (97, 301, 256, 224), (3, 700, 64, 50), (300, 300, 300, 300)]
        {
            let data = (0..w * h * 3)
                .map(|_| {
                    seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    (seed >> 24) as u8
                })
                .collect();
            let src = Image8 { data, width: w, height: h };
            let (rw, rh) = resize_short_size(w, h, target);
            let full = center_crop(&resize_bilinear(&src, rw, rh), crop).unwrap();
            let origin = ((rw - crop) / 2, (rh - crop) / 2);
            let window = resize_bilinear_window(&src, (rw, rh), origin, (crop, crop));
            assert_eq!(window, full, "{w}x{h} -> {rw}x{rh}, crop {crop}");
        }
    }

    #[test]
    fn crop_and_normalize() {
        let src = Image8 { data: (0..5 * 4 * 3).map(|v| v as u8).collect(), width: 5, height: 4 };
        let crop = center_crop(&src, 2).unwrap();
        // Starts at x = 1, y = 1: pixel index 6, bytes 18..
        assert_eq!(&crop.data[..3], &[18, 19, 20]);
        assert!(center_crop(&src, 5).is_none());
        let mut out = vec![0.0; 12];
        normalize_chw(&crop, 1.0, [1.0, 2.0, 3.0], [2.0, 2.0, 2.0], false, &mut out);
        assert_eq!(out[0], (18.0 - 1.0) / 2.0);
        assert_eq!(out[4], (19.0 - 2.0) / 2.0);
        normalize_chw(&crop, 1.0, [0.0; 3], [1.0; 3], true, &mut out);
        assert_eq!(out[0], 20.0);
    }
}
