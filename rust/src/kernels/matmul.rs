//! Matrix multiply through the `gemm` crate (packed panels, rayon threads). Strided operands are
//! passed with their row/column strides, so transposed views need no copy.

use crate::dtype::Elem;
use crate::kernels::elementwise::Arith;
use gemm::Parallelism;

/// Threads for one GEMM: all of rayon's pool for big products, one thread for small ones
/// (where waking threads costs more than it saves).
fn parallelism(m: usize, n: usize, k: usize) -> Parallelism {
    if m * n * k >= 64 * 64 * 64 {
        Parallelism::Rayon(rayon::current_num_threads())
    } else {
        Parallelism::None
    }
}

/// A strided matrix view into a slice: element (i, j) is at `offset + i*rs + j*cs`.
#[derive(Clone, Copy)]
pub struct Mat {
    pub offset: usize,
    pub rs: usize,
    pub cs: usize,
}

#[allow(clippy::too_many_arguments)]
/// dst[m x n] (contiguous, row-major, overwritten) = lhs[m x k] @ rhs[k x n].
pub fn gemm_f<T: Elem + GemmFloat>(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [T],
    lhs: &[T],
    l: Mat,
    rhs: &[T],
    r: Mat,
) {
    gemm_into(m, n, k, dst, false, lhs, l, rhs, r)
}

#[allow(clippy::too_many_arguments)]
/// dst[m x n] (contiguous, row-major) = lhs @ rhs, or `dst + lhs @ rhs` when `accumulate`
/// (a bias already in dst: torch's addmm).
pub fn gemm_into<T: Elem + GemmFloat>(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [T],
    accumulate: bool,
    lhs: &[T],
    l: Mat,
    rhs: &[T],
    r: Mat,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst.iter_mut().for_each(|x| *x = T::zero());
        }
        return;
    }
    assert!(dst.len() >= m * n);
    // Match the sign of torch's zeros: its BLAS sums start from +0.0 (so never end at -0.0),
    // except a k = 1 product of matrices, which stores the lone product (-0.0 = 0 * -x).
    if k == 1 {
        // An outer product: each element is one product (exact in f64, then rounded once,
        // which is the float product itself).
        for i in 0..m {
            let a = lhs[l.offset + i * l.rs].to_f64();
            for j in 0..n {
                let p = T::from_f64(a * rhs[r.offset + j * r.cs].to_f64());
                let d = &mut dst[i * n + j];
                *d = if accumulate {
                    T::from_f64(d.to_f64() + p.to_f64())
                } else {
                    p
                };
            }
        }
        if m == 1 || n == 1 {
            positive_zeros(&mut dst[..m * n]);
        }
        return;
    }
    // SAFETY: every index the GEMM reads is inside the operands (the tensor layouts were
    // checked when the views were made), and dst is a fresh m x n buffer.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            lhs.as_ptr().add(l.offset),
            l.cs as isize,
            l.rs as isize,
            rhs.as_ptr().add(r.offset),
            r.cs as isize,
            r.rs as isize,
            if accumulate { T::one() } else { T::zero() },
            T::one(),
            false,
            false,
            false,
            parallelism(m, n, k),
        )
    }
    positive_zeros(&mut dst[..m * n]);
}

/// Turns -0.0 into +0.0 (a sum started from +0.0).
fn positive_zeros<T: Elem>(xs: &mut [T]) {
    for x in xs.iter_mut() {
        if *x == T::zero() {
            *x = T::zero();
        }
    }
}

/// Marker for the float types the GEMM crate handles.
/// A dot product of two equally long slices.
pub type DotFn<T> = fn(&[T], &[T]) -> T;

pub trait GemmFloat: 'static + Sized {
    /// The AVX2 dot product for this type (call it only where AVX2 was detected).
    #[cfg(target_arch = "x86_64")]
    fn dot_avx2() -> DotFn<Self>;
}
impl GemmFloat for f32 {
    #[cfg(target_arch = "x86_64")]
    fn dot_avx2() -> DotFn<f32> {
        // SAFETY: callers ask only once AVX2 was detected on this CPU.
        |a, b| unsafe { avx2::dot_f32(a, b) }
    }
}
impl GemmFloat for f64 {
    #[cfg(target_arch = "x86_64")]
    fn dot_avx2() -> DotFn<f64> {
        // SAFETY: as for f32.
        |a, b| unsafe { avx2::dot_f64(a, b) }
    }
}

#[allow(clippy::too_many_arguments)]
/// Integer matmul (torch supports it on CPU); a plain loop with i-k-j order, wrapping like C.
pub fn gemm_int(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [i64],
    lhs: &[i64],
    l: Mat,
    rhs: &[i64],
    r: Mat,
) {
    for i in 0..m {
        for p in 0..k {
            let a = lhs[l.offset + i * l.rs + p * l.cs];
            for j in 0..n {
                let b = rhs[r.offset + p * r.rs + j * r.cs];
                dst[i * n + j] = dst[i * n + j].wrapping_add(a.wrapping_mul(b));
            }
        }
    }
}

// *** matrix-vector products ***

/// Up to this many input rows (decoding one token per sequence), `linear` streams the weight
/// once through dot products instead of packing it for a GEMM: the product is bound by
/// reading the weight, and packing would read and write it once more.
pub const GEMV_ROWS: usize = 4;

/// `dst[i, j] += x[i, :] · w[j, :]` for a few rows `i`; `x` rows and `w` rows (the transposed
/// operand's columns, `wm.cs` apart) are contiguous. Output columns are split over threads in
/// blocks small enough that both cores get an even share even of a 768-column product.
#[allow(clippy::too_many_arguments)]
pub fn gemv_rows<T: GemmFloat + Arith + Send + Sync>(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [T],
    x: &[T],
    xm: Mat,
    w: &[T],
    wm: Mat,
) {
    use rayon::prelude::*;
    if m == 0 || n == 0 {
        return;
    }
    let dot = dot_for::<T>();
    let rows: Vec<&[T]> = (0..m).map(|i| &x[xm.offset + i * xm.rs..][..k]).collect();
    // Enough blocks to balance the threads, each at least ~64 KiB of weight to stream.
    let tasks = rayon::current_num_threads() * 8;
    let cols = n.div_ceil(tasks).max((1 << 14) / k.max(1)).max(1);
    let mut out = vec![T::zero(); m * n];
    // Column-major scratch (n x m) so each task owns a contiguous block of output columns.
    out.par_chunks_mut(m * cols)
        .enumerate()
        .for_each(|(c, block)| {
            for (jj, cell) in block.chunks_mut(m).enumerate() {
                let j = c * cols + jj;
                let wrow = &w[wm.offset + j * wm.cs..][..k];
                for (o, xr) in cell.iter_mut().zip(&rows) {
                    *o = dot(xr, wrow);
                }
            }
        });
    for i in 0..m {
        for j in 0..n {
            let d = &mut dst[i * n + j];
            *d = d.add(out[j * m + i]);
        }
    }
}

/// The dot product for this CPU: AVX2 where present, with the same arithmetic in the same
/// order as [`dot`] (so both give the same bits), eight f32 lanes to a register.
fn dot_for<T: GemmFloat + Arith>() -> DotFn<T> {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") {
        return T::dot_avx2();
    }
    dot
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    /// [`super::dot`] for f32: 32 lanes in four registers, summed pairwise (16, 8, 4, 2, 1).
    #[target_feature(enable = "avx2")]
    pub unsafe fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let body = n / 32 * 32;
        let mut tail = 0f32;
        for i in body..n {
            tail += a[i] * b[i];
        }
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc = [_mm256_setzero_ps(); 4];
        for i in (0..body).step_by(32) {
            for (r, acc) in acc.iter_mut().enumerate() {
                let x = _mm256_loadu_ps(pa.add(i + 8 * r));
                let y = _mm256_loadu_ps(pb.add(i + 8 * r));
                *acc = _mm256_add_ps(*acc, _mm256_mul_ps(x, y));
            }
        }
        let v = _mm256_add_ps(_mm256_add_ps(acc[0], acc[2]), _mm256_add_ps(acc[1], acc[3]));
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
        _mm_cvtss_f32(s) + tail
    }

    /// [`super::dot`] for f64: 32 lanes in eight registers, summed pairwise.
    #[target_feature(enable = "avx2")]
    pub unsafe fn dot_f64(a: &[f64], b: &[f64]) -> f64 {
        let n = a.len().min(b.len());
        let body = n / 32 * 32;
        let mut tail = 0f64;
        for i in body..n {
            tail += a[i] * b[i];
        }
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc = [_mm256_setzero_pd(); 8];
        for i in (0..body).step_by(32) {
            for (r, acc) in acc.iter_mut().enumerate() {
                let x = _mm256_loadu_pd(pa.add(i + 4 * r));
                let y = _mm256_loadu_pd(pb.add(i + 4 * r));
                *acc = _mm256_add_pd(*acc, _mm256_mul_pd(x, y));
            }
        }
        for w in [4, 2, 1] {
            for r in 0..w {
                acc[r] = _mm256_add_pd(acc[r], acc[r + w]);
            }
        }
        let v = acc[0];
        let s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
        let s = _mm_add_sd(s, _mm_unpackhi_pd(s, s));
        _mm_cvtsd_f64(s) + tail
    }
}

/// A dot product in the dtype with 32 independent accumulators (lane `l` sums the products
/// at positions `l`, `l + 32`, ...), summed pairwise at the end, plus the sequential sum of
/// the tail; sums start at +0.0.
fn dot<T: Arith>(a: &[T], b: &[T]) -> T {
    const L: usize = 32;
    let mut acc = [T::zero(); L];
    let (ca, cb) = (a.chunks_exact(L), b.chunks_exact(L));
    let mut tail = T::zero();
    for (&x, &y) in ca.remainder().iter().zip(cb.remainder()) {
        tail = tail.add(x.mul(y));
    }
    for (x, y) in ca.zip(cb) {
        for l in 0..L {
            acc[l] = acc[l].add(x[l].mul(y[l]));
        }
    }
    let mut width = L;
    while width > 1 {
        width /= 2;
        for l in 0..width {
            acc[l] = acc[l].add(acc[l + width]);
        }
    }
    acc[0].add(tail)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values with many significant bits, so that any change of summation order shows.
    fn values<T: Elem>(n: usize, seed: u64) -> Vec<T> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                T::from_f64((s >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0)
            })
            .collect()
    }

    fn same_bits<T: GemmFloat + Arith + PartialEq + std::fmt::Debug>() {
        for n in [0, 1, 7, 31, 32, 33, 100, 768, 3072 + 5] {
            let (a, b) = (values::<T>(n, 1), values::<T>(n, 2));
            assert_eq!(dot_for::<T>()(&a, &b), dot(&a, &b), "length {n}");
        }
    }

    #[test]
    fn vector_dot_products_match_the_portable_one_bit_for_bit() {
        same_bits::<f32>();
        same_bits::<f64>();
    }

    #[test]
    fn gemv_matches_a_naive_product() {
        let (m, n, k) = (3, 37, 70);
        let x = values::<f64>(m * k, 3);
        let w = values::<f64>(n * k, 4);
        let mut dst = vec![1.0; m * n];
        let xm = Mat {
            offset: 0,
            rs: k,
            cs: 1,
        };
        let wm = Mat {
            offset: 0,
            rs: 1,
            cs: k,
        };
        gemv_rows(m, n, k, &mut dst, &x, xm, &w, wm);
        for i in 0..m {
            for j in 0..n {
                let want: f64 = 1.0 + (0..k).map(|p| x[i * k + p] * w[j * k + p]).sum::<f64>();
                assert!((dst[i * n + j] - want).abs() < 1e-12, "({i}, {j})");
            }
        }
    }
}
