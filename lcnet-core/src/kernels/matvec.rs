//! The matrix-vector products of the head and of SE at batch 1.

use super::dispatch::Fma;

/// `out += v[j] * w[j]` for every row `j` of `w` (`[v.len()][out.len()]`),
/// in order of `j`: a matrix-vector product with the matrix stored
/// input-major, so the inner loop runs along `out` and vectorises (a dot
/// product per output would be a sequential sum LLVM may not reorder).
/// At batch 1 these products are bound by reading the weights (7.7 MB for
/// x1.0's head, 4 MB for x2.5's SE modules), so four rows go per sweep over `out`:
/// four weight streams keep more memory reads in flight, and one load and
/// store of `out` serves four rows. The sum per output is taken in the same
/// order as one row at a time.
#[inline(always)]
pub(crate) fn accumulate_rows<F: Fma>(v: &[f32], w: &[f32], out: &mut [f32]) {
    let n = out.len();
    assert_eq!(w.len(), v.len() * n, "matrix-vector product size");
    if n == 0 {
        return;
    }
    let mut rows = w.chunks_exact(4 * n);
    let mut scales = v.chunks_exact(4);
    for (rows4, s) in (&mut rows).zip(&mut scales) {
        let (r0, rest) = rows4.split_at(n);
        let (r1, rest) = rest.split_at(n);
        let (r2, r3) = rest.split_at(n);
        for i in 0..n {
            let acc = F::mul_add(s[0], r0[i], out[i]);
            let acc = F::mul_add(s[1], r1[i], acc);
            let acc = F::mul_add(s[2], r2[i], acc);
            out[i] = F::mul_add(s[3], r3[i], acc);
        }
    }
    for (row, &s) in rows.remainder().chunks_exact(n).zip(scales.remainder()) {
        for (o, &wt) in out.iter_mut().zip(row) {
            *o = F::mul_add(s, wt, *o);
        }
    }
}

/// A PaddleClas `[outputs][inputs]` weight (a 1x1 conv's) in the
/// `[inputs][outputs]` layout [`accumulate_rows`] reads.
pub(crate) fn input_major(w: &[f32], outputs: usize, inputs: usize) -> Vec<f32> {
    assert_eq!(w.len(), outputs * inputs, "weight size");
    (0..inputs * outputs).map(|i| w[(i % outputs) * inputs + i / outputs]).collect()
}
