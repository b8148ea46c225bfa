//! The matrix-vector products of the head and of SE.

use super::dispatch::Fma;

/// `out += v[j] * w[j]` for every row `j` of `w` (`[v.len()][out.len()]`),
/// in order of `j`: a matrix-vector product with the matrix stored
/// input-major, so the inner loop runs along `out` and vectorises (a dot
/// product per output would be a sequential sum LLVM may not reorder).
/// One image's product; see [`accumulate_rows_batch`].
#[inline(always)]
pub(crate) fn accumulate_rows<F: Fma>(v: &[f32], w: &[f32], out: &mut [f32]) {
    accumulate_rows_batch::<F>(v, w, out, 1)
}

/// [`accumulate_rows`] for `images` vectors at once: `v` is `[images][k]`,
/// `out` is `[images][n]`, `w` is `[k][n]`.
///
/// These products are bound by reading the weights (7.7 MB for x1.0's head,
/// 4 MB for x2.5's SE modules), so four rows go per sweep over `out`: four
/// weight streams keep more memory reads in flight, and one load and store
/// of `out` serves four rows. Each group of four rows (16-20 KB) is applied
/// to every image while it is in L1, so a batch reads the weights once, not
/// once per image. The sum per output is taken in the same order whatever
/// the batch: one image's result does not depend on the others.
#[inline(always)]
pub(crate) fn accumulate_rows_batch<F: Fma>(v: &[f32], w: &[f32], out: &mut [f32], images: usize) {
    let n = out.len() / images.max(1);
    let k = v.len() / images.max(1);
    assert_eq!(v.len(), images * k, "matrix-vector input size");
    assert_eq!(out.len(), images * n, "matrix-vector output size");
    assert_eq!(w.len(), k * n, "matrix-vector weight size");
    if n == 0 || images == 0 {
        return;
    }
    let mut rows = w.chunks_exact(4 * n);
    let mut j = 0;
    for rows4 in &mut rows {
        let (r0, rest) = rows4.split_at(n);
        let (r1, rest) = rest.split_at(n);
        let (r2, r3) = rest.split_at(n);
        for (v, out) in v.chunks_exact(k).zip(out.chunks_exact_mut(n)) {
            // Scales as values, not reads through `v`: LLVM then has no
            // store to `out` to fear for them, and keeps the loop vectorised
            // (reading `v[j]` inside it left one instance scalar).
            let [s0, s1, s2, s3] = [v[j], v[j + 1], v[j + 2], v[j + 3]];
            for i in 0..n {
                let acc = F::mul_add(s0, r0[i], out[i]);
                let acc = F::mul_add(s1, r1[i], acc);
                let acc = F::mul_add(s2, r2[i], acc);
                out[i] = F::mul_add(s3, r3[i], acc);
            }
        }
        j += 4;
    }
    for (jj, row) in rows.remainder().chunks_exact(n).enumerate() {
        for (v, out) in v.chunks_exact(k).zip(out.chunks_exact_mut(n)) {
            let s = v[j + jj];
            for (o, &wt) in out.iter_mut().zip(row) {
                *o = F::mul_add(s, wt, *o);
            }
        }
    }
}

/// A PaddleClas `[outputs][inputs]` weight (a 1x1 conv's) in the
/// `[inputs][outputs]` layout [`accumulate_rows`] reads.
pub(crate) fn input_major(w: &[f32], outputs: usize, inputs: usize) -> Vec<f32> {
    assert_eq!(w.len(), outputs * inputs, "weight size");
    (0..inputs * outputs).map(|i| w[(i % outputs) * inputs + i / outputs]).collect()
}
