//! The matrix-vector products of the head and of SE.

use super::dispatch::Fma;
use crate::aligned::AlignedVec;

/// `out += v[j] * w[j]` for every row `j` of `w` (`[v.len()][out.len()]`),
/// in order of `j`: a matrix-vector product with the matrix stored
/// input-major, so the inner loop runs along `out` and vectorises (a dot
/// product per output would be a sequential sum LLVM may not reorder).
/// One image's whole product; see [`accumulate_columns`].
#[inline(always)]
pub(crate) fn accumulate_rows<F: Fma, W: Copy>(v: &[f32], w: &[W], out: &mut [f32])
where
    f32: From<W>,
{
    accumulate_columns::<F, W>(v, w, out.len(), 0, out, 1)
}

/// Weight rows per sweep over the outputs: 8 streamed x2.5's head 5-8 %
/// faster than 4 from a cold cache (whole passes 1-2 %).
const ROWS: usize = 8;

/// [`accumulate_rows`] for the outputs `col0 .. col0 + n` of a `[k][ldw]`
/// matrix and `images` vectors at once: `v` is `[images][k]`, `out` is
/// `[images][n]`. A batch uses every column; one thread's share of a single
/// image's outputs uses a range.
///
/// These products are bound by reading the weights (7.7 MB for x1.0's head,
/// 4 MB for x2.5's SE modules), so [`ROWS`] rows go per sweep over `out`:
/// eight weight streams keep more memory reads in flight, and one load and
/// store of `out` serves eight rows. Each group of rows (32-40 KB) is
/// applied to every image before the next, so a batch reads the weights
/// once, not once per image. The sum per output is taken in the same order
/// whatever the batch, the columns or the rows per sweep (one multiply-add
/// per input, in order): one image's result does not depend on the others.
///
/// The weights are `f32`, or `i8` (the int8 head's, taken as `f32` in
/// registers: a quarter of the bytes to read).
#[inline(always)]
pub(crate) fn accumulate_columns<F: Fma, W: Copy>(
    v: &[f32],
    w: &[W],
    ldw: usize,
    col0: usize,
    out: &mut [f32],
    images: usize,
) where
    f32: From<W>,
{
    let n = out.len() / images.max(1);
    let k = v.len() / images.max(1);
    assert_eq!(v.len(), images * k, "matrix-vector input size");
    assert_eq!(out.len(), images * n, "matrix-vector output size");
    assert_eq!(w.len(), k * ldw, "matrix-vector weight size");
    assert!(col0 + n <= ldw, "matrix-vector columns {col0}..{} of {ldw}", col0 + n);
    if n == 0 || images == 0 {
        return;
    }
    let row = |j: usize| &w[j * ldw + col0..][..n];
    let whole = k / ROWS * ROWS;
    for j in (0..whole).step_by(ROWS) {
        let rows: [&[W]; ROWS] = std::array::from_fn(|q| row(j + q));
        for (v, out) in v.chunks_exact(k).zip(out.chunks_exact_mut(n)) {
            // Scales as values, not reads through `v`: LLVM then has no
            // store to `out` to fear for them, and keeps the loop vectorised
            // (reading `v[j]` inside it left one instance scalar).
            let scales: [f32; ROWS] = std::array::from_fn(|q| v[j + q]);
            for i in 0..n {
                let mut acc = out[i];
                for q in 0..ROWS {
                    acc = F::mul_add(scales[q], f32::from(rows[q][i]), acc);
                }
                out[i] = acc;
            }
        }
    }
    for j in whole..k {
        let r = row(j);
        for (v, out) in v.chunks_exact(k).zip(out.chunks_exact_mut(n)) {
            let s = v[j];
            for (o, &wt) in out.iter_mut().zip(r) {
                *o = F::mul_add(s, f32::from(wt), *o);
            }
        }
    }
}

/// A PaddleClas `[outputs][inputs]` weight (a 1x1 conv's) in the
/// `[inputs][outputs]` layout [`accumulate_rows`] reads.
pub(crate) fn input_major(w: &[f32], outputs: usize, inputs: usize) -> AlignedVec {
    assert_eq!(w.len(), outputs * inputs, "weight size");
    let mut out = AlignedVec::zeroed(inputs * outputs);
    for (i, o) in out.iter_mut().enumerate() {
        *o = w[(i % outputs) * inputs + i / outputs];
    }
    out
}
