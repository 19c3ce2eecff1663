//! Matrix multiply through the `gemm` crate (packed panels, rayon threads). Strided operands are
//! passed with their row/column strides, so transposed views need no copy.

use crate::dtype::Elem;
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
pub trait GemmFloat: 'static {}
impl GemmFloat for f32 {}
impl GemmFloat for f64 {}

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
