//! Activations between layers: [`FeatureMap`] (NHWC, channel count in the type)
//! and the [`Workspace`] that recycles their buffers.

use ndarray::{Array2, Array4, ArrayView4};

use crate::aligned::AlignedVec;

/// A batch of feature maps in NHWC order with `C` channels.
///
/// The channel count is a const generic so that the generated forward pass is
/// checked by rustc: a `PwConv<64, 128>` only accepts a `FeatureMap<64>`.
/// Height, width and batch are runtime values (the network is fully
/// convolutional up to its global pooling).
#[derive(Debug)]
pub struct FeatureMap<const C: usize> {
    data: AlignedVec,
    batch: usize,
    height: usize,
    width: usize,
}

impl<const C: usize> FeatureMap<C> {
    /// Wraps an NHWC buffer whose first `batch * height * width * C` values
    /// are the map.
    pub fn from_nhwc(data: Vec<f32>, batch: usize, height: usize, width: usize) -> Self {
        Self::from_buffer(AlignedVec::from_vec(data), batch, height, width)
    }

    /// Wraps a (workspace) buffer whose first `batch * height * width * C`
    /// values are the map; a longer buffer keeps its spare tail, so that it
    /// can be reused for a larger map without refilling.
    pub fn from_buffer(data: AlignedVec, batch: usize, height: usize, width: usize) -> Self {
        assert!(data.len() >= batch * height * width * C, "NHWC buffer too small");
        FeatureMap { data, batch, height, width }
    }

    fn len(&self) -> usize {
        self.batch * self.height * self.width * C
    }

    /// Number of images.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Height in pixels.
    pub fn height(&self) -> usize {
        self.height
    }

    /// Width in pixels.
    pub fn width(&self) -> usize {
        self.width
    }

    /// The NHWC values.
    pub fn as_slice(&self) -> &[f32] {
        &self.data[..self.len()]
    }

    /// The NHWC values, mutable.
    pub fn as_mut_slice(&mut self) -> &mut [f32] {
        let len = self.len();
        &mut self.data[..len]
    }

    /// The NHWC values as a `Vec` (exactly the map's).
    pub fn into_vec(self) -> Vec<f32> {
        let len = self.len();
        let mut v = self.data.into_vec();
        v.truncate(len);
        v
    }

    /// Gives the whole buffer back, for the workspace to reuse.
    pub fn into_buffer(self) -> AlignedVec {
        self.data
    }

    /// A copy in NCHW order (PaddleClas / ONNX layout), for inspection and tests.
    pub fn to_nchw(&self) -> Array4<f32> {
        let nhwc = ArrayView4::from_shape((self.batch, self.height, self.width, C), self.as_slice())
            .expect("FeatureMap invariant: buffer matches its shape");
        nhwc.permuted_axes([0, 3, 1, 2]).as_standard_layout().into_owned()
    }
}

/// Reusable buffers for one forward pass at a time.
///
/// Layers take their output buffer from here and give their input buffer back,
/// so after one warm-up pass at a given batch and input size, a forward pass
/// allocates nothing but its returned logits. A workspace is cheap to create;
/// keep one per thread that runs forward passes.
#[derive(Debug, Default)]
pub struct Workspace {
    free: Vec<AlignedVec>,
    /// Byte buffers of int8 feature maps, the same way.
    free_bytes: Vec<Vec<u8>>,
    scratch: Vec<f32>,
    recorded: Option<Vec<(String, Array4<f32>)>>,
    timings: Option<Vec<(String, std::time::Instant)>>,
    /// Per layer output, in network order: the least and greatest value
    /// seen (see [`observe_ranges`](Self::observe_ranges)).
    ranges: Option<Ranges>,
    /// One workspace per concurrent image group but the first, which runs
    /// in this one (see [`forward_per_image`]).
    children: Vec<Workspace>,
}

impl Workspace {
    /// An empty workspace; buffers grow on first use.
    pub fn new() -> Self {
        Self::default()
    }

    /// A buffer of `len` values, 64-byte aligned (contents unspecified,
    /// callers overwrite them). The buffer underneath keeps its full size
    /// from layer to layer, so reusing it never refills memory.
    pub fn take(&mut self, len: usize) -> AlignedVec {
        // Prefer the largest free buffer: after warm-up it is large enough for any layer.
        let best = (0..self.free.len()).max_by_key(|&i| self.free[i].room());
        let mut buf = best.map(|i| self.free.swap_remove(i)).unwrap_or_default();
        buf.reuse(len);
        buf
    }

    /// Returns a buffer for later [`take`](Self::take) calls.
    pub fn give(&mut self, buf: AlignedVec) {
        self.free.push(buf);
    }

    /// [`take`](Self::take) for the bytes of an int8 feature map: at least
    /// `len` bytes (use the first `len`), contents unspecified. Buffers keep
    /// their size, so after a warm-up pass nothing is allocated or filled.
    pub fn take_bytes(&mut self, len: usize) -> Vec<u8> {
        let best = (0..self.free_bytes.len()).max_by_key(|&i| self.free_bytes[i].len());
        let mut buf = best.map(|i| self.free_bytes.swap_remove(i)).unwrap_or_default();
        if buf.len() < len {
            buf.resize(len, 0);
        }
        buf
    }

    /// Returns a buffer for later [`take_bytes`](Self::take_bytes) calls.
    pub fn give_bytes(&mut self, buf: Vec<u8>) {
        self.free_bytes.push(buf);
    }

    /// A small zeroed buffer of `len` values for per-layer temporaries (SE's
    /// pooled vectors, the head's hidden layer); hand it back with
    /// [`give_scratch`](Self::give_scratch). Kept apart from the feature-map
    /// buffers so that a small request never takes a large buffer.
    pub fn take_scratch(&mut self, len: usize) -> Vec<f32> {
        let mut buf = std::mem::take(&mut self.scratch);
        buf.clear();
        buf.resize(len, 0.0);
        buf
    }

    /// Returns the scratch buffer taken with [`take_scratch`](Self::take_scratch).
    pub fn give_scratch(&mut self, buf: Vec<f32>) {
        self.scratch = buf;
    }

    /// Total values held by the workspace's buffers: it stops growing after
    /// the first forward pass at a given batch and input size.
    pub fn capacity(&self) -> usize {
        let bytes = self.free_bytes.iter().map(|b| b.capacity().div_ceil(4)).sum::<usize>();
        let own = self.free.iter().map(AlignedVec::capacity).sum::<usize>() + self.scratch.capacity() + bytes;
        own + self.children.iter().map(Workspace::capacity).sum::<usize>()
    }

    /// Whether stage outputs or times are being noted (which needs the
    /// whole batch to go through each layer together).
    pub(crate) fn observing(&self) -> bool {
        self.recorded.is_some() || self.timings.is_some() || self.ranges.is_some()
    }

    /// `n` child workspaces, one per concurrent image group (made on first
    /// use, kept for the next pass), for networks built at run time.
    pub(crate) fn children(&mut self, n: usize) -> &mut [Workspace] {
        if self.children.len() < n {
            self.children.resize_with(n, Workspace::new);
        }
        &mut self.children[..n]
    }

    /// Starts noting the range of every layer's output (stem, depthwise,
    /// SE, pointwise; in network order), over every forward pass from now
    /// on: the calibration of int8 quantisation. `per_channel[i]`: the
    /// `i`-th observed layer's ranges are noted one per channel (see
    /// `quant::per_channel_outputs`), the others one per output.
    pub fn observe_ranges(&mut self, per_channel: Vec<bool>) {
        self.ranges = Some(Ranges { per_channel, ..Ranges::default() });
    }

    /// Called by the layers with their output; notes its range when
    /// [`observe_ranges`](Self::observe_ranges) was called.
    pub fn observe(&mut self, output: &[f32]) {
        self.observe_channels(output, 1);
    }

    /// [`observe`](Self::observe) for an NHWC output of `channels`
    /// channels, noted one range per channel when the layer is one of
    /// those [`observe_ranges`](Self::observe_ranges) was told.
    pub fn observe_channels(&mut self, output: &[f32], channels: usize) {
        if let Some(ranges) = &mut self.ranges {
            let split = if ranges.per_channel.get(ranges.layer).copied().unwrap_or(false) { channels } else { 1 };
            ranges.layer += 1;
            for ch in 0..split {
                let (lo, hi) = output
                    .iter()
                    .skip(ch)
                    .step_by(split)
                    .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)));
                match ranges.layers.get_mut(ranges.next) {
                    Some(range) => *range = (range.0.min(lo), range.1.max(hi)),
                    None => ranges.layers.push((lo, hi)),
                }
                ranges.next += 1;
            }
        }
    }

    /// The ranges noted so far, one `(least, greatest)` per layer output,
    /// and starts the next forward pass at the first layer again.
    pub fn ranges(&mut self) -> Vec<(f32, f32)> {
        self.ranges
            .as_mut()
            .map(|r| {
                (r.next, r.layer) = (0, 0);
                r.layers.clone()
            })
            .unwrap_or_default()
    }

    /// Starts keeping an NCHW copy of every stage output (see [`record`](Self::record)).
    pub fn record_stages(&mut self) {
        self.recorded = Some(Vec::new());
    }

    /// Called by generated code at the end of each stage; keeps a copy only when
    /// [`record_stages`](Self::record_stages) was called.
    pub fn record<const C: usize>(&mut self, stage: &str, x: &FeatureMap<C>) {
        if let Some(times) = &mut self.timings {
            times.push((stage.to_string(), std::time::Instant::now()));
        }
        if let Some(rec) = &mut self.recorded {
            rec.push((stage.to_string(), x.to_nchw()));
        }
    }

    /// Whether stage outputs are being recorded.
    pub(crate) fn recording(&self) -> bool {
        self.recorded.is_some()
    }

    /// [`record`](Self::record) for networks without typed feature maps:
    /// `x` is the stage's NCHW output.
    pub(crate) fn record_nchw(&mut self, stage: &str, x: Array4<f32>) {
        if let Some(rec) = &mut self.recorded {
            rec.push((stage.to_string(), x));
        }
    }

    /// Notes that `stage` ended now, when stage times are being noted (for
    /// networks without typed feature maps to [`record`](Self::record)).
    pub fn mark_stage(&mut self, stage: &str) {
        if let Some(times) = &mut self.timings {
            times.push((stage.to_string(), std::time::Instant::now()));
        }
    }

    /// Starts noting when each stage ends (see [`stage_times`](Self::stage_times)).
    pub fn time_stages(&mut self) {
        self.timings = Some(Vec::new());
    }

    /// Milliseconds spent in each stage since `start` (the forward pass's
    /// start), in network order; clears the notes.
    pub fn stage_times(&mut self, start: std::time::Instant) -> Vec<(String, f64)> {
        let mut prev = start;
        let mut out = Vec::new();
        for (stage, t) in self.timings.iter_mut().flat_map(|t| t.drain(..)) {
            out.push((stage, t.duration_since(prev).as_secs_f64() * 1e3));
            prev = t;
        }
        out
    }

    /// The recorded stage outputs, in network order, and stops recording.
    pub fn take_recorded(&mut self) -> Vec<(String, Array4<f32>)> {
        self.recorded.take().unwrap_or_default()
    }
}

/// Output ranges per layer, and the layer the next [`Workspace::observe`]
/// call is for.
#[derive(Debug, Default)]
struct Ranges {
    /// The ranges noted so far.
    layers: Vec<(f32, f32)>,
    /// Where the next one goes.
    next: usize,
    /// Per observed layer, whether its ranges are noted per channel.
    per_channel: Vec<bool>,
    /// The observed layer the next output comes from.
    layer: usize,
}

/// Runs a batch of several images through `features` one image at a time,
/// the images split into one contiguous group per rayon thread, each group
/// with a workspace of its own; then `head` once on all the images' last
/// feature maps together.
///
/// One image's activations fit in the caches where a batch's do not (x1.0
/// at 224x224: 1.6 MB for the largest map of one image, 13 MB for eight), so
/// this is faster than pushing the whole batch through each layer. The head
/// is the other way round: its weights (7.7 MB of x1.0's 11.8) are read from
/// memory once per call, so it runs once for the batch, not once per image.
/// The numbers are the same, image by image. Batches of one, and passes that
/// record stages, go straight through `features` then `head`. The pass runs
/// on a rayon worker thread, or, with a one-thread pool, on the calling
/// thread with every kernel serial (see the comments inside).
pub fn forward_per_image<const C: usize, F, H>(
    input: ArrayView4<f32>,
    ws: &mut Workspace,
    features: F,
    head: H,
) -> crate::Result<Array2<f32>>
where
    F: Fn(ArrayView4<f32>, &mut Workspace) -> crate::Result<FeatureMap<C>> + Sync,
    H: Fn(FeatureMap<C>, &mut Workspace) -> Array2<f32> + Sync,
{
    // Called from a thread outside rayon's pool (a program's main thread),
    // every parallel loop in every layer would hand its work over to the pool
    // and wake a worker: dozens of thread hand-offs per image, which cost
    // more than the smallest layers themselves. Entering the pool once per
    // forward pass lets the layers' loops start on a worker (at one thread,
    // they then run inline).
    if rayon::current_thread_index().is_none() {
        if rayon::current_num_threads() == 1 {
            // A one-thread pool would only run the pass beside this idle
            // thread: run it here, every kernel serially, with no hand-off.
            return crate::kernels::threads::serially(|| split_into_images(input, ws, &features, &head));
        }
        let (features, head) = (&features, &head);
        return rayon::scope(move |_| split_into_images(input, ws, features, head));
    }
    split_into_images(input, ws, &features, &head)
}

/// The last feature maps of one group of images, one after the other.
#[derive(Default)]
struct LastMaps {
    values: Vec<f32>,
    height: usize,
    width: usize,
}

/// The body of [`forward_per_image`], on a rayon worker (or, with one thread, the caller).
fn split_into_images<const C: usize, F, H>(
    input: ArrayView4<f32>,
    ws: &mut Workspace,
    features: &F,
    head: &H,
) -> crate::Result<Array2<f32>>
where
    F: Fn(ArrayView4<f32>, &mut Workspace) -> crate::Result<FeatureMap<C>> + Sync,
    H: Fn(FeatureMap<C>, &mut Workspace) -> Array2<f32> + Sync,
{
    use ndarray::{Axis, Slice};
    use rayon::prelude::*;

    let n = input.shape()[0];
    if n <= 1 || ws.observing() {
        return crate::kernels::threads::with_spinning_helpers(|| {
            let maps = features(input, ws)?;
            Ok(head(maps, ws))
        });
    }
    let groups = crate::kernels::threads::threads().min(n);
    let per_group = n.div_ceil(groups);
    let image = |i: usize| input.slice_axis(Axis(0), Slice::from(i..i + 1));
    // Each image's last map is copied out as soon as it is made and its
    // buffer goes straight back: kept until the batch is done, every image
    // would pin a buffer the size of the largest layer (1.6 MB at x1.0).
    let run_group = |g: usize, ws: &mut Workspace| -> crate::Result<LastMaps> {
        let mut last = LastMaps::default();
        for i in g * per_group..((g + 1) * per_group).min(n) {
            let map = features(image(i), ws)?;
            last.height = map.height();
            last.width = map.width();
            last.values.extend_from_slice(map.as_slice());
            ws.give(map.into_buffer());
        }
        Ok(last)
    };
    let groups: Vec<LastMaps> = if groups == 1 {
        // One thread: the images one after another, in the main workspace.
        vec![run_group(0, ws)?]
    } else {
        // The first group runs in the main workspace, the others each in a
        // child of their own, kept for the next pass.
        let mut children = std::mem::take(&mut ws.children);
        children.resize_with(groups - 1, Workspace::new);
        let mut all: Vec<&mut Workspace> = std::iter::once(&mut *ws).chain(children.iter_mut()).collect();
        let results: Vec<crate::Result<LastMaps>> = all
            .par_iter_mut()
            .enumerate()
            .map(|(g, ws)| crate::kernels::threads::serially(|| run_group(g, ws)))
            .collect();
        ws.children = children;
        results.into_iter().collect::<crate::Result<_>>()?
    };
    // One batch map for the head.
    let (h, w) = (groups[0].height, groups[0].width);
    let mut batch = ws.take(n * h * w * C);
    let mut filled = 0;
    for group in &groups {
        batch[filled..filled + group.values.len()].copy_from_slice(&group.values);
        filled += group.values.len();
    }
    debug_assert_eq!(filled, n * h * w * C, "every image's map in the batch");
    Ok(head(FeatureMap::from_buffer(batch, n, h, w), ws))
}
