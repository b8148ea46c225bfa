//! The sliding window of the x86 int8 depthwise kernels: a ring of
//! prepared input rows (`dwconv_vnni`'s padded rows, `dwconv_pairs`'s pair
//! rows) that follows the output rows down, so that each is prepared once.

/// The `slots` prepared rows an output row reads, in order.
pub struct Window<'a, T> {
    ring: &'a [T],
    top: usize,
    slots: usize,
}

impl<'a, T> Window<'a, T> {
    /// The `q`-th of them.
    pub fn row(&self, q: usize) -> &'a [T] {
        let len = self.ring.len() / self.slots;
        &self.ring[(self.top + q) % self.slots * len..][..len]
    }
}

/// Runs `compute(oy, window, out_row)` on every output row of one part of
/// the batch (`out`, rows of `out_row` bytes, the first the batch's row
/// `first`, `oh` rows per image). Output row `oy` reads prepared rows
/// `top(oy) .. top(oy) + slots`; `ring` holds `slots` of them (its length
/// divided evenly), and `fill(img, index, slot)` prepares row `index` of
/// image `img` into a slot once, as the output rows move down.
#[allow(clippy::too_many_arguments)]
pub fn slide<T>(
    out: &mut [u8],
    out_row: usize,
    first: usize,
    oh: usize,
    ring: &mut [T],
    slots: usize,
    top: impl Fn(usize) -> usize,
    mut fill: impl FnMut(usize, usize, &mut [T]),
    mut compute: impl FnMut(usize, &Window<T>, &mut [u8]),
) {
    let len = ring.len() / slots;
    // Slot `index % slots` holds prepared row `index` of image `img` for
    // `index < next`.
    let mut filled: Option<(usize, usize)> = None;
    for (i, out_row) in out.chunks_exact_mut(out_row).enumerate() {
        let (img, oy) = ((first + i) / oh, (first + i) % oh);
        let top = top(oy);
        let from = match filled {
            Some((filled_img, next)) if filled_img == img => next.max(top),
            _ => top,
        };
        for index in from..top + slots {
            fill(img, index, &mut ring[index % slots * len..][..len]);
        }
        filled = Some((img, top + slots));
        compute(oy, &Window { ring: &ring[..slots * len], top, slots }, out_row);
    }
}
