//! Row reductions: the tensor op moves reduced dims last and makes them contiguous, so every
//! kernel here works on rows of a flat slice; rows are split over rayon when the work is big.

use crate::dtype::Elem;
use rayon::prelude::*;

use super::elementwise::PAR_THRESHOLD;

/// Applies `f` to each row of length `r` (a zero-length row when `r == 0`).
pub fn rows<T: Elem, O: Send>(
    data: &[T],
    n_rows: usize,
    r: usize,
    f: impl Fn(&[T]) -> O + Sync + Send,
) -> Vec<O> {
    if r == 0 {
        return (0..n_rows).map(|_| f(&[])).collect();
    }
    if n_rows > 1 && n_rows * r >= PAR_THRESHOLD {
        data.par_chunks(r).map(&f).collect()
    } else {
        data.chunks(r).map(f).collect()
    }
}

/// Same as `rows` but each row writes a row of the same length into the output.
pub fn rows_inplace<T: Elem, O: Elem>(
    data: &[T],
    r: usize,
    f: impl Fn(&[T], &mut [O]) + Sync + Send,
) -> Vec<O> {
    let mut out = vec![O::default(); data.len()];
    if r == 0 {
        return out;
    }
    if data.len() >= PAR_THRESHOLD && data.len() > r {
        out.par_chunks_mut(r)
            .zip(data.par_chunks(r))
            .for_each(|(o, i)| f(i, o));
    } else {
        out.chunks_mut(r)
            .zip(data.chunks(r))
            .for_each(|(o, i)| f(i, o));
    }
    out
}

/// Sum in f64 with 8 independent accumulators (accurate for f32, fast enough for f64).
#[inline]
pub fn sum_f64<T: Elem>(row: &[T]) -> f64 {
    let mut acc = [0f64; 8];
    let chunks = row.chunks_exact(8);
    let rem = chunks.remainder();
    for c in chunks {
        for i in 0..8 {
            acc[i] += c[i].to_f64();
        }
    }
    let mut s: f64 = rem.iter().map(|x| x.to_f64()).sum();
    s += acc.iter().sum::<f64>();
    s
}

/// The largest value of a row, with 8 independent running maxima so the loop vectorises
/// (NaN is skipped: callers see it through the sums they compute next).
#[inline]
pub fn max_f64<T: Elem>(row: &[T]) -> f64 {
    let mut acc = [f64::NEG_INFINITY; 8];
    let chunks = row.chunks_exact(8);
    let rem = chunks.remainder();
    for c in chunks {
        for i in 0..8 {
            let v = c[i].to_f64();
            acc[i] = if v > acc[i] { v } else { acc[i] };
        }
    }
    let tail = rem.iter().fold(f64::NEG_INFINITY, |m, x| m.max(x.to_f64()));
    acc.iter().fold(tail, |m, &v| m.max(v))
}

/// Index and value of the max (or min) of a row; NaN wins and the first occurrence is kept.
pub fn arg_extreme<T: Elem>(row: &[T], want_max: bool) -> (usize, T) {
    let mut best = 0;
    let mut bv = row[0];
    for (i, &v) in row.iter().enumerate().skip(1) {
        #[allow(clippy::eq_op)]
        let v_nan = v != v;
        #[allow(clippy::eq_op)]
        let b_nan = bv != bv;
        if b_nan {
            break;
        }
        let better = v_nan || if want_max { v > bv } else { v < bv };
        if better {
            best = i;
            bv = v;
        }
    }
    (best, bv)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lane_sums_and_max() {
        let v: Vec<f32> = (0..37).map(|i| i as f32 * 0.5 - 3.0).collect();
        let s: f64 = v.iter().map(|&x| x as f64).sum();
        assert_eq!(sum_f64(&v), s);
        assert_eq!(max_f64(&v), 15.0);
    }
}
