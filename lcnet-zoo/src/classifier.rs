//! A network with its labels and preprocessing: from image files (or
//! pixels) to labelled probabilities, batched and threaded.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use image::{DynamicImage, RgbImage};
use lcnet_core::ndarray::{Array2, ArrayView4};
use lcnet_core::preprocess::Image8;
use lcnet_core::{Checkpoint, Network, Workspace};
use rayon::prelude::*;

use crate::error::{Error, ImageProblem, Result};
use crate::images::{self, Decoding};
use crate::presets::{self, Preprocess};

/// A loaded model ready for images: the network, its labels and the
/// preprocessing its checkpoint was trained with.
///
/// ```
/// # #[cfg(feature = "doc-ori")] {
/// use lcnet_zoo::image; // the `image` crate, re-exported
///
/// let classifier = lcnet_zoo::Classifier::preset("doc_ori")?;
/// let page = image::open("examples/pages/page_180.png").expect("a PNG file");
/// let prediction = classifier.classify_image(&page)?;
/// assert_eq!((prediction.label.as_str(), prediction.index), ("180", 2));
/// assert!(prediction.top(4).iter().map(|class| class.prob).sum::<f32>() > 0.999);
/// # }
/// # Ok::<(), lcnet_zoo::Error>(())
/// ```
///
/// A `Classifier` is `Sync`: one instance can serve many threads.
pub struct Classifier {
    net: Box<dyn Network>,
    labels: Arc<[String]>,
    preprocess: Preprocess,
    name: String,
    decoding: Decoding,
    batch_size: usize,
    /// Scratch memory of finished calls, reused by the next ones.
    workspaces: Mutex<Vec<Workspace>>,
}

impl std::fmt::Debug for Classifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Classifier")
            .field("name", &self.name)
            .field("model", &self.net.variant().name)
            .field("classes", &self.labels.len())
            .finish()
    }
}

/// An image resized and cropped to a classifier's input, still 8-bit (from
/// [`Classifier::size_image`]), waiting for [`Classifier::classify_sized`].
#[derive(Debug, Clone)]
pub struct SizedImage(Image8);

/// The answer for one image: the most probable class and every class's
/// probability.
#[derive(Clone)]
pub struct Prediction {
    /// Index of the most probable class.
    pub index: usize,
    /// Its label.
    pub label: String,
    /// Its softmax probability.
    pub prob: f32,
    /// The probability of every class, in label order.
    pub probs: Vec<f32>,
    labels: Arc<[String]>,
}

impl std::fmt::Debug for Prediction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prediction")
            .field("index", &self.index)
            .field("label", &self.label)
            .field("prob", &self.prob)
            .finish_non_exhaustive()
    }
}

/// One class and its probability (an entry of [`Prediction::top`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Class {
    /// Class index.
    pub index: usize,
    /// Class label.
    pub label: String,
    /// Softmax probability.
    pub prob: f32,
}

impl Prediction {
    fn new(probs: Vec<f32>, labels: Arc<[String]>) -> Self {
        let index = most_probable(&probs);
        Prediction { index, label: labels[index].clone(), prob: probs[index], probs, labels }
    }

    /// The `k` most probable classes, most probable first (ties by index).
    pub fn top(&self, k: usize) -> Vec<Class> {
        let mut order: Vec<usize> = (0..self.probs.len()).collect();
        order.sort_by(|&a, &b| self.probs[b].total_cmp(&self.probs[a]).then(a.cmp(&b)));
        order
            .into_iter()
            .take(k)
            .map(|index| Class { index, label: self.labels[index].clone(), prob: self.probs[index] })
            .collect()
    }
}

fn most_probable(probs: &[f32]) -> usize {
    (0..probs.len()).fold(0, |best, i| if probs[i] > probs[best] { i } else { best })
}

/// What [`Classifier::classify_batch`] takes: image files (`&str`, `Path`,
/// `PathBuf`) or decoded images (`DynamicImage`, `RgbImage`).
pub trait ImageInput: Sync {
    /// How errors name this image.
    fn name(&self) -> String;
    /// The image as 8-bit RGB.
    fn to_rgb(&self, decoding: &Decoding) -> Result<Image8>;
}

impl ImageInput for Path {
    fn name(&self) -> String {
        self.display().to_string()
    }

    fn to_rgb(&self, decoding: &Decoding) -> Result<Image8> {
        images::decode_rgb(self, decoding)
    }
}

impl ImageInput for PathBuf {
    fn name(&self) -> String {
        self.as_path().name()
    }

    fn to_rgb(&self, decoding: &Decoding) -> Result<Image8> {
        self.as_path().to_rgb(decoding)
    }
}

impl ImageInput for str {
    fn name(&self) -> String {
        self.to_string()
    }

    fn to_rgb(&self, decoding: &Decoding) -> Result<Image8> {
        Path::new(self).to_rgb(decoding)
    }
}

impl ImageInput for String {
    fn name(&self) -> String {
        self.clone()
    }

    fn to_rgb(&self, decoding: &Decoding) -> Result<Image8> {
        Path::new(self).to_rgb(decoding)
    }
}

impl ImageInput for DynamicImage {
    fn name(&self) -> String {
        "<image>".to_string()
    }

    fn to_rgb(&self, _: &Decoding) -> Result<Image8> {
        rgb_image(self.to_rgb8())
    }
}

impl ImageInput for RgbImage {
    fn name(&self) -> String {
        "<image>".to_string()
    }

    fn to_rgb(&self, _: &Decoding) -> Result<Image8> {
        rgb_image(self.clone())
    }
}

impl<T: ImageInput + ?Sized> ImageInput for &T {
    fn name(&self) -> String {
        (**self).name()
    }

    fn to_rgb(&self, decoding: &Decoding) -> Result<Image8> {
        (**self).to_rgb(decoding)
    }
}

fn rgb_image(rgb: RgbImage) -> Result<Image8> {
    let (width, height) = (rgb.width() as usize, rgb.height() as usize);
    if width == 0 || height == 0 {
        return Err(Error::image("<image>", ImageProblem::Empty { width, height }));
    }
    Ok(Image8 { data: rgb.into_raw(), width, height })
}

impl Classifier {
    /// The preset `name` (`doc_ori`, `textline_ori`, see [`presets::all`])
    /// with the weights embedded in this build (cargo features `doc-ori`,
    /// `textline-ori`).
    pub fn preset(name: &str) -> Result<Self> {
        let preset = presets::find(name)?;
        let bytes = preset.weights.ok_or_else(|| Error::NoEmbeddedWeights { preset: preset.name.to_string() })?;
        let mut ck = Checkpoint::from_static(&format!("<embedded {}>", preset.name), bytes)?;
        Self::from_checkpoint(&mut ck, Some(preset.name))
    }

    /// A checkpoint file in any format [`formats::open`](crate::formats::open)
    /// reads. Labels and preprocessing come from its metadata, else from the
    /// preset named by `preset`, else from the ImageNet preset of its
    /// architecture.
    pub fn from_weights(path: impl AsRef<Path>, preset: Option<&str>) -> Result<Self> {
        let mut ck = crate::formats::open(path.as_ref())?;
        Self::from_checkpoint(&mut ck, preset)
    }

    /// Loads `ck`; `preset` may name a preset or an architecture.
    pub fn from_checkpoint(ck: &mut Checkpoint, preset: Option<&str>) -> Result<Self> {
        let meta = ck.metadata().clone();
        let preset_name = preset.map(str::to_string).or_else(|| meta.get("preset").cloned());
        let named = match &preset_name {
            Some(name) => Some(presets::find(name)?),
            None => None,
        };
        let arch = match &named {
            Some(p) => Some(p.architecture_for(ck).to_string()),
            None => meta.get("model").cloned(),
        };
        let net = crate::load(ck, arch.as_deref())?;
        let chosen = match named {
            Some(p) => p,
            None => presets::for_model(net.variant().name)?,
        };
        let classes = net.classes();
        let bad_metadata =
            |key: &str, reason: String| Error::BadMetadata { path: ck.path().to_path_buf(), key: key.into(), reason };
        let labels: Vec<String> = match meta.get("labels") {
            Some(text) => serde_json::from_str(text).map_err(|e| bad_metadata("labels", e.to_string()))?,
            None if chosen.labels.len() == classes => chosen.labels.iter().map(|s| s.to_string()).collect(),
            None => (0..classes).map(|i| i.to_string()).collect(),
        };
        if labels.len() != classes {
            return Err(Error::LabelCount { path: ck.path().to_path_buf(), labels: labels.len(), classes });
        }
        let preprocess = match meta.get("preprocess") {
            Some(text) => Preprocess::from_json(text).map_err(|reason| bad_metadata("preprocess", reason))?,
            None => chosen.preprocess.clone(),
        };
        let name = if preset_name.is_some() { chosen.name.to_string() } else { net.variant().name.to_string() };
        Ok(Classifier {
            net,
            labels: labels.into(),
            preprocess,
            name,
            decoding: Decoding::default(),
            batch_size: 8,
            workspaces: Mutex::new(Vec::new()),
        })
    }

    /// Decodes files with these limits and EXIF handling (default:
    /// [`Decoding::default`]).
    pub fn with_decoding(mut self, decoding: Decoding) -> Self {
        self.decoding = decoding;
        self
    }

    /// Runs at most `n` images per forward pass in
    /// [`classify_batch`](Self::classify_batch) (default 8; at least 1).
    pub fn with_batch_size(mut self, n: usize) -> Self {
        self.batch_size = n.max(1);
        self
    }

    /// The preset's name, or the architecture's for a bare checkpoint.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// One label per class.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// How images become input tensors.
    pub fn preprocess(&self) -> &Preprocess {
        &self.preprocess
    }

    /// The network, for tensor-level use.
    pub fn network(&self) -> &dyn Network {
        self.net.as_ref()
    }

    /// How files are decoded.
    pub fn decoding(&self) -> &Decoding {
        &self.decoding
    }

    /// Classifies one image file (PNG or JPEG).
    pub fn classify_path(&self, path: impl AsRef<Path>) -> Result<Prediction> {
        self.classify_one(path.as_ref())
    }

    /// Classifies a decoded image.
    pub fn classify_image(&self, image: &DynamicImage) -> Result<Prediction> {
        self.classify_one(image)
    }

    /// Classifies `width` x `height` 8-bit RGB pixels, row by row.
    pub fn classify_rgb8(&self, rgb: &[u8], width: usize, height: usize) -> Result<Prediction> {
        if width == 0 || height == 0 {
            return Err(Error::image("<image>", ImageProblem::Empty { width, height }));
        }
        if Some(rgb.len()) != width.checked_mul(height).and_then(|n| n.checked_mul(3)) {
            return Err(Error::image("<image>", ImageProblem::RgbLength { len: rgb.len(), width, height }));
        }
        let image = Image8 { data: rgb.to_vec(), width, height };
        let tensor = self.tensor(&image, "<image>")?;
        Ok(self.run(&tensor, 1)?.pop().expect("one image in, one prediction out"))
    }

    fn classify_one<I: ImageInput + ?Sized>(&self, image: &I) -> Result<Prediction> {
        let rgb = image.to_rgb(&self.decoding)?;
        let tensor = self.tensor(&rgb, &image.name())?;
        Ok(self.run(&tensor, 1)?.pop().expect("one image in, one prediction out"))
    }

    /// Classifies many images, [`with_batch_size`](Self::with_batch_size) at
    /// a time: each group is decoded and preprocessed in parallel (rayon's
    /// pool), then runs as one batch. Returns one result per image, in
    /// order: an image that cannot be read does not stop the others. The
    /// outer error is a network failure (weights that overflow).
    pub fn classify_batch<I: ImageInput>(&self, images: &[I]) -> Result<Vec<Result<Prediction>>> {
        let mut results = Vec::with_capacity(images.len());
        for group in images.chunks(self.batch_size) {
            let tensors: Vec<Result<Vec<f32>>> =
                group.par_iter().map(|image| self.tensor(&image.to_rgb(&self.decoding)?, &image.name())).collect();
            let ready: Vec<&[f32]> = tensors.iter().filter_map(|t| t.as_deref().ok()).collect();
            let mut predictions = self.run(&ready.concat(), ready.len())?.into_iter();
            results.extend(tensors.into_iter().map(|t| t.map(|_| predictions.next().expect("one per tensor"))));
        }
        Ok(results)
    }

    /// One image decoded and preprocessed into its input tensor (`3 x H x W`
    /// floats, the model's input size): the first half of a classification,
    /// for callers who gather images from many sources into one batch (a
    /// server) and then call [`classify_tensors`](Self::classify_tensors).
    ///
    /// ```
    /// # #[cfg(feature = "doc-ori")] {
    /// let classifier = lcnet_zoo::Classifier::preset("doc_ori")?;
    /// let a = classifier.input_tensor("../examples/pages/page_90.png")?;
    /// let b = classifier.input_tensor("../examples/pages/page_0.png")?;
    /// let pages = classifier.classify_tensors(&[a, b].concat(), 2)?;
    /// assert_eq!((pages[0].label.as_str(), pages[1].label.as_str()), ("90", "0"));
    /// # }
    /// # Ok::<(), lcnet_zoo::Error>(())
    /// ```
    pub fn input_tensor<I: ImageInput + ?Sized>(&self, image: &I) -> Result<Vec<f32>> {
        self.tensor(&image.to_rgb(&self.decoding)?, &image.name())
    }

    /// One image decoded, resized and cropped to the model's input, still
    /// 8-bit: a quarter of the memory of its input tensor, for callers that
    /// queue many images before a batch runs (a server). Classify them with
    /// [`classify_sized`](Self::classify_sized).
    ///
    /// ```
    /// # #[cfg(feature = "doc-ori")] {
    /// let classifier = lcnet_zoo::Classifier::preset("doc_ori")?;
    /// let a = classifier.size_image("../examples/pages/page_270.png")?;
    /// let b = classifier.size_image("../examples/pages/page_180.png")?;
    /// let pages = classifier.classify_sized(&[a, b])?;
    /// assert_eq!((pages[0].label.as_str(), pages[1].label.as_str()), ("270", "180"));
    /// # }
    /// # Ok::<(), lcnet_zoo::Error>(())
    /// ```
    pub fn size_image<I: ImageInput + ?Sized>(&self, image: &I) -> Result<SizedImage> {
        self.sized(&image.to_rgb(&self.decoding)?, &image.name())
    }

    /// [`size_image`](Self::size_image) of an image the caller is done
    /// with: an 8-bit RGB image is used as it is, without the copy a
    /// borrowed one needs (a decoded page is megabytes).
    pub fn size_image_owned(&self, image: DynamicImage) -> Result<SizedImage> {
        let rgb = rgb_image(crate::images::into_rgb8(image))?;
        self.sized(&rgb, "<image>")
    }

    /// Classifies images from [`size_image`](Self::size_image) as one batch.
    /// An image sized by a classifier with another input size is refused.
    pub fn classify_sized(&self, images: &[SizedImage]) -> Result<Vec<Prediction>> {
        let (h, w) = self.preprocess.input_hw();
        let mut tensors = vec![0.0; images.len() * 3 * h * w];
        for (image, tensor) in images.iter().zip(tensors.chunks_exact_mut(3 * h * w)) {
            self.preprocess.normalize(&image.0, tensor)?;
        }
        self.run(&tensors, images.len())
    }

    /// Classifies `n` input tensors laid one after the other in `tensors`
    /// (each from [`input_tensor`](Self::input_tensor)) as one batch.
    pub fn classify_tensors(&self, tensors: &[f32], n: usize) -> Result<Vec<Prediction>> {
        let (h, w) = self.preprocess.input_hw();
        let expected = n.checked_mul(3 * h * w);
        if expected != Some(tensors.len()) {
            return Err(Error::TensorLength { len: tensors.len(), images: n, per_image: 3 * h * w });
        }
        self.run(tensors, n)
    }

    /// Preprocesses one image into its input tensor; a refusal names `name`.
    fn tensor(&self, image: &Image8, name: &str) -> Result<Vec<f32>> {
        let (h, w) = self.preprocess.input_hw();
        let mut tensor = vec![0.0; 3 * h * w];
        self.preprocess.apply(image, &mut tensor).map_err(|e| match e {
            Error::Image { problem, .. } => Error::image(name, problem),
            other => other,
        })?;
        Ok(tensor)
    }

    /// Resizes one image to the input size; a refusal names `name`.
    fn sized(&self, image: &Image8, name: &str) -> Result<SizedImage> {
        self.preprocess.size(image).map(SizedImage).map_err(|e| match e {
            Error::Image { problem, .. } => Error::image(name, problem),
            other => other,
        })
    }

    /// Runs `n` preprocessed images, one after the other in `batch`.
    fn run(&self, batch: &[f32], n: usize) -> Result<Vec<Prediction>> {
        if n == 0 {
            return Ok(Vec::new());
        }
        let (h, w) = self.preprocess.input_hw();
        let input = ArrayView4::from_shape((n, 3, h, w), batch).expect("tensors of the input size");
        let mut ws = self.workspaces.lock().map(|mut pool| pool.pop()).ok().flatten().unwrap_or_default();
        let probs = self.probabilities(input, &mut ws);
        if let Ok(mut pool) = self.workspaces.lock() {
            pool.push(ws);
        }
        Ok(probs?.rows().into_iter().map(|row| Prediction::new(row.to_vec(), self.labels.clone())).collect())
    }

    /// Runs `images` one by one through the network, noting the range of
    /// every quantised layer's output: the calibration
    /// [`lcnet_core::quant::quantize`] takes. An output quantised per tensor
    /// gets the mean over the images of each image's least and greatest
    /// value (as PyTorch's moving-average min/max observer), so that one
    /// outlying image does not widen the steps for all; one quantised per
    /// channel ([`lcnet_core::quant::per_channel_outputs`]) gets each
    /// channel's least and greatest value over all the images, as an
    /// outlier there widens one channel's steps only, and a mean clipped
    /// the channels that fire in few images (held-out text lines: mean
    /// |dprob| 0.0040 with means, 0.0017 with extremes). `done` is called
    /// with the count after each image.
    pub fn calibrate<I: ImageInput>(&self, images: &[I], done: impl Fn(usize)) -> Result<Vec<(f32, f32)>> {
        let (h, w) = self.preprocess.input_hw();
        let mut ws = Workspace::new();
        let mut sums: Vec<(f64, f64)> = Vec::new();
        let mut extremes: Vec<(f32, f32)> = Vec::new();
        let per_channel = lcnet_core::quant::per_channel_outputs(self.net.variant());
        for (i, image) in images.iter().enumerate() {
            let tensor = self.input_tensor(image)?;
            let input = ArrayView4::from_shape((1, 3, h, w), &tensor).expect("tensors of the input size");
            ws.observe_ranges(per_channel.clone());
            self.net.forward(input, &mut ws)?;
            let ranges = ws.ranges();
            sums.resize(ranges.len(), (0.0, 0.0));
            extremes.resize(ranges.len(), (f32::INFINITY, f32::NEG_INFINITY));
            for (e, &(lo, hi)) in extremes.iter_mut().zip(&ranges) {
                *e = (e.0.min(lo), e.1.max(hi));
            }
            for (sum, (lo, hi)) in sums.iter_mut().zip(ranges) {
                *sum = (sum.0 + f64::from(lo), sum.1 + f64::from(hi));
            }
            done(i + 1);
        }
        let n = images.len().max(1) as f64;
        let mean = sums.into_iter().map(|(lo, hi)| ((lo / n) as f32, (hi / n) as f32));
        // Per-channel entries: the extremes (see above).
        let layers = lcnet_core::quant::observed_layers(self.net.variant());
        let takes_extremes =
            layers.zip(&per_channel).flat_map(|(l, &pc)| std::iter::repeat_n(pc, if pc { l.out_channels } else { 1 }));
        Ok(mean.zip(extremes).zip(takes_extremes).map(|((mean, ext), pc)| if pc { ext } else { mean }).collect())
    }

    /// Runs a preprocessed NCHW batch; returns softmax probabilities
    /// `[n, classes]`. For callers who preprocess themselves.
    pub fn probabilities(&self, batch: ArrayView4<f32>, ws: &mut Workspace) -> Result<Array2<f32>> {
        let mut logits = self.net.forward(batch, ws)?;
        check_logits(self.net.as_ref(), batch, &logits)?;
        softmax_rows(&mut logits);
        Ok(logits)
    }
}

/// Fails when `logits` (of `net` on `input`) hold a NaN or infinity, naming
/// the first stage whose output does: the input is checked finite on the way
/// in, so the weights made them (BatchNorm folded from huge statistics, an
/// overflowing checkpoint).
pub fn check_logits(net: &dyn Network, input: ArrayView4<f32>, logits: &Array2<f32>) -> Result<()> {
    let Some(image) = logits.rows().into_iter().position(|row| row.iter().any(|v| !v.is_finite())) else {
        return Ok(());
    };
    let mut ws = Workspace::new();
    ws.record_stages();
    let one = input.slice(lcnet_core::ndarray::s![image..image + 1, .., .., ..]);
    net.forward(one, &mut ws)?;
    let stages = ws.take_recorded();
    let stage =
        stages.iter().find(|(_, x)| x.iter().any(|v| !v.is_finite())).map_or("the head (last_conv, fc)", |(s, _)| s);
    Err(Error::NonFiniteLogits { model: net.variant().name.to_string(), image, stage: stage.to_string() })
}

/// Softmax of every row of `[n, classes]` logits, in place (max-subtracted,
/// so large logits do not overflow).
pub fn softmax_rows(logits: &mut Array2<f32>) {
    for mut row in logits.rows_mut() {
        let max = row.fold(f32::NEG_INFINITY, |m, &v| m.max(v));
        row.mapv_inplace(|v| (v - max).exp());
        let sum = row.sum();
        row.mapv_inplace(|v| v / sum);
    }
}
