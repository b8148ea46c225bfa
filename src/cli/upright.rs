//! `lcnet run --upright DIR`: acting on an orientation model's answer by
//! writing each image turned upright.
//!
//! The labels of the orientation models are the angle the image is turned
//! clockwise (`doc_ori`: `0`, `90`, `180`, `270`; `textline_ori`: `0_degree`,
//! `180_degree`), so the upright image is the input turned back by that angle,
//! as PaddleX's document preprocessor does (exact quarter turns here, not an
//! interpolating warp). The output keeps the file name, folder layout and
//! format; it never replaces an input, and replaces an existing regular file
//! only with `--force`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use image::{DynamicImage, ImageFormat};
use lcnet_zoo::lcnet_core::files::{self, Overwrite};

use lcnet_zoo::Decoding;

use super::images::ImageFile;

/// JPEG quality of rotated JPEG outputs (the input's own is not recorded in the file).
const JPEG_QUALITY: u8 = 95;

/// Where and how upright copies are written.
#[derive(Debug)]
pub struct Upright {
    dir: PathBuf,
    /// The clockwise angle each class label names.
    angles: Vec<u16>,
    min_prob: f32,
    force: bool,
    decoding: Decoding,
    /// The inputs, resolved, which must never be written.
    inputs: Vec<PathBuf>,
}

/// What was written for one image.
#[derive(Debug, Clone, PartialEq)]
pub struct Written {
    /// The output file.
    pub path: PathBuf,
    /// The clockwise angle the input was turned back by (0 when left as it is).
    pub turned_back: u16,
    /// Whether the image was rotated (false: angle 0, or below `--min-prob`).
    pub rotated: bool,
}

/// The clockwise angle a label names (`90`, `180_degree`), if it is one of 0, 90, 180, 270.
pub(super) fn label_angle(label: &str) -> Option<u16> {
    let digits: String = label.chars().take_while(char::is_ascii_digit).collect();
    let rest = &label[digits.len()..];
    let angle: u16 = digits.parse().ok()?;
    (matches!(angle, 0 | 90 | 180 | 270) && (rest.is_empty() || rest == "_degree" || rest == "deg")).then_some(angle)
}

impl Upright {
    /// Checks that the model answers with angles and that `dir` is a folder
    /// (or can be made one) that is none of the `inputs`. `(min_prob, force)`
    /// are the flags; `decoding` how images are decoded.
    pub fn new(
        dir: &Path,
        labels: &[String],
        inputs: &[PathBuf],
        (min_prob, force): (f32, bool),
        decoding: Decoding,
    ) -> anyhow::Result<Self> {
        let angles: Option<Vec<u16>> = labels.iter().map(|l| label_angle(l)).collect();
        let Some(angles) = angles else {
            bail!(
                "--upright needs an orientation model whose labels are angles (doc_ori, textline_ori); \
                 this one's labels are {}",
                labels.iter().take(4).cloned().collect::<Vec<_>>().join(", ")
            );
        };
        if !(0.0..=1.0).contains(&min_prob) {
            bail!("--min-prob must be between 0 and 1, got {min_prob}");
        }
        // A folder, or a link to one.
        if dir.exists() && !dir.is_dir() {
            bail!("{}: --upright needs a folder, and this is not one", dir.display());
        }
        std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create", dir.display()))?;
        let resolved = dir.canonicalize().with_context(|| format!("{}: cannot resolve", dir.display()))?;
        let inputs: Vec<PathBuf> = inputs.iter().filter_map(|p| p.canonicalize().ok()).collect();
        if inputs.contains(&resolved) {
            bail!("{}: --upright folder is one of the inputs; name another folder", dir.display());
        }
        Ok(Upright { dir: dir.to_path_buf(), angles, min_prob, force, decoding, inputs })
    }

    /// Writes `file` turned upright for class `class` at probability `prob`.
    pub fn write(&self, file: &ImageFile, class: usize, prob: f32) -> anyhow::Result<Written> {
        let out = self.dir.join(&file.name);
        let confident = prob >= self.min_prob;
        let angle = if confident { self.angles[class] } else { 0 };
        self.check_destination(&file.path, &out)?;
        let (image, format) = lcnet_zoo::decode(&file.path, &self.decoding)?;
        let upright = turn_back(image, angle);
        let bytes = encode(&upright, format)?;
        if let Some(parent) = out.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("{}: cannot create", parent.display()))?;
        }
        files::write_atomically(&out, &bytes, self.overwrite())?;
        Ok(Written { path: out, turned_back: angle, rotated: angle != 0 })
    }

    /// Refuses to write over an input, or over anything but a regular file
    /// (and that only with `--force`). A link to an input is refused as an
    /// input, a link to anything else as a link.
    fn check_destination(&self, input: &Path, out: &Path) -> anyhow::Result<()> {
        if std::fs::symlink_metadata(out).is_err() {
            return Ok(());
        }
        let same = out.canonicalize().ok().zip(input.canonicalize().ok()).is_some_and(|(a, b)| a == b);
        if same || self.inputs.iter().any(|i| out.canonicalize().is_ok_and(|o| o == *i)) {
            bail!("{}: is an input; --upright never overwrites an input", out.display());
        }
        Ok(files::check_output(out, self.overwrite())?)
    }

    fn overwrite(&self) -> Overwrite {
        if self.force {
            Overwrite::RegularFile
        } else {
            Overwrite::Never
        }
    }
}

/// `image` turned counter-clockwise by `angle` (it was turned clockwise by it).
pub(super) fn turn_back(image: DynamicImage, angle: u16) -> DynamicImage {
    match angle {
        90 => image.rotate270(),
        180 => image.rotate180(),
        270 => image.rotate90(),
        _ => image,
    }
}

fn encode(image: &DynamicImage, format: ImageFormat) -> anyhow::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    match format {
        ImageFormat::Jpeg => {
            // JPEG holds 8-bit grey or RGB only.
            let image = match image {
                DynamicImage::ImageLuma8(_) => image.clone(),
                other => DynamicImage::ImageRgb8(other.to_rgb8()),
            };
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, JPEG_QUALITY)
                .encode_image(&image)
                .context("cannot encode JPEG")?;
        }
        _ => image.write_to(&mut std::io::Cursor::new(&mut bytes), ImageFormat::Png).context("cannot encode PNG")?,
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_name_clockwise_angles() {
        assert_eq!(["0", "90", "180", "270"].map(label_angle), [Some(0), Some(90), Some(180), Some(270)]);
        assert_eq!(["0_degree", "180_degree"].map(label_angle), [Some(0), Some(180)]);
        assert_eq!(["45", "wired_table", "", "90x"].map(label_angle), [None; 4]);
    }

    #[test]
    fn turning_back_undoes_a_clockwise_turn() {
        // 2x1: a red pixel left of a blue one.
        let upright = DynamicImage::ImageRgb8(image::RgbImage::from_raw(2, 1, vec![255, 0, 0, 0, 0, 255]).unwrap());
        for (angle, turned) in [(90, upright.rotate90()), (180, upright.rotate180()), (270, upright.rotate270())] {
            assert_eq!(turn_back(turned, angle).to_rgb8(), upright.to_rgb8(), "{angle}");
        }
    }
}
