//! Matrix multiply through the `gemm` crate (packed panels, rayon threads). Strided operands are
//! passed with their row/column strides, so transposed views need no copy.

use crate::dtype::Elem;
use crate::kernels::elementwise::Arith;
use crate::kernels::sgemm;
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
    if T::own_gemm().is_some_and(|own| own(m, n, k, dst, accumulate, lhs, l, rhs, r)) {
        // Sums from +0.0 throughout: no -0.0 to fix.
        return;
    }
    if r.rs == 1 && r.cs != 1 && copy_transposed_rhs::<T>(m, n, k) {
        gemm_transposed_rhs(m, n, k, dst, accumulate, lhs, l, rhs, r);
    } else {
        // SAFETY: every index the GEMM reads is inside the operands (the tensor layouts were
        // checked when the views were made), and dst holds m x n elements.
        unsafe { gemm_raw(m, n, k, dst, n, accumulate, lhs, l, rhs, r) }
    }
    positive_zeros(&mut dst[..m * n]);
}

/// The gemm crate call: dst (row-major, rows `ldd` apart) = lhs @ rhs (+ dst).
///
/// # Safety
/// Every element the views address must lie inside `lhs` / `rhs`, and `dst` must hold rows
/// `0..m` of `ldd` elements with at least `n` of them used.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_raw<T: Elem + GemmFloat>(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [T],
    ldd: usize,
    accumulate: bool,
    lhs: &[T],
    l: Mat,
    rhs: &[T],
    r: Mat,
) {
    debug_assert!(m == 0 || dst.len() >= (m - 1) * ldd + n);
    gemm::gemm(
        m,
        n,
        k,
        dst.as_mut_ptr(),
        1,
        ldd as isize,
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

/// Bytes of row-major copy of a transposed right operand per GEMM call (fewer, larger GEMM
/// calls keep both threads busy).
const TRANSPOSED_RHS_CHUNK_BYTES: usize = 16 << 20;
/// A transposed right operand up to this size is always copied.
const TRANSPOSED_RHS_CACHED_BYTES: usize = 4 << 20;

/// Whether a right operand stored transposed (`x @ W.T`, every Linear forward) is better
/// copied row-major before the GEMM than packed by the gemm crate, which gathers it one
/// element at a time: for a weight matrix (not an attention head) in a product of more than
/// a few rows, when its rows are long (the gather then strides a page or more per element:
/// GPT-2's MLP down-projection ran at a third of the machine's speed) or when the whole copy
/// fits in cache. Measured on GPT-2's shapes; a short-rowed wide operand (the LM head) packs
/// as fast in place.
fn copy_transposed_rhs<T>(m: usize, n: usize, k: usize) -> bool {
    let bytes = k * n * std::mem::size_of::<T>();
    m >= 16 && bytes >= 256 << 10 && (k >= 1024 || bytes <= TRANSPOSED_RHS_CACHED_BYTES)
}

/// `lhs @ rhs` where `rhs` is a transposed view (its rows are contiguous in memory, `r.rs ==
/// 1`). The gemm crate packs such an operand one scattered element at a time, which cost a
/// third of a GPT-2 forward (its MLP down-projection ran at a third of the machine's speed);
/// here column blocks of `rhs` are transposed into a row-major scratch with vector
/// transposes, on every thread, and each block goes through the GEMM's fast path. The
/// arithmetic per output element is the same GEMM's.
#[allow(clippy::too_many_arguments)]
fn gemm_transposed_rhs<T: Elem + GemmFloat>(
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
    use rayon::prelude::*;
    // Rows of the scratch per task: enough tasks for both cores, each a few KiB of the
    // source's rows wide.
    const BAND: usize = 64;
    let per_chunk = (TRANSPOSED_RHS_CHUNK_BYTES / std::mem::size_of::<T>() / k).max(BAND);
    let chunk = (per_chunk / BAND * BAND).min(n);
    let mut scratch = vec![T::zero(); k * chunk];
    let transpose = T::transpose_fn();
    let mut j0 = 0;
    while j0 < n {
        let nc = chunk.min(n - j0);
        let block = &mut scratch[..k * nc];
        // block[p, jj] = rhs[p, j0 + jj], which lies at offset + (j0 + jj) * cs + p.
        block
            .par_chunks_mut(BAND * nc)
            .enumerate()
            .for_each(|(t, rows)| {
                let p0 = t * BAND;
                let src = &rhs[r.offset + j0 * r.cs + p0..];
                transpose(src, r.cs, rows, nc, rows.len() / nc, nc);
            });
        let rm = Mat {
            offset: 0,
            rs: nc,
            cs: 1,
        };
        // SAFETY: lhs as checked by the caller; the block is k x nc row-major; dst rows are
        // n apart and this call writes columns j0..j0 + nc of each.
        unsafe { gemm_raw(m, nc, k, &mut dst[j0..], n, accumulate, lhs, l, block, rm) }
        j0 += nc;
    }
}

/// `gemm_into` on our own kernels: false (nothing done) where they do not apply.
pub type OwnGemmFn<T> = fn(usize, usize, usize, &mut [T], bool, &[T], Mat, &[T], Mat) -> bool;

/// A transpose: `dst[p * ldd + j] = src[j * lds + p]` for `p < np`, `j < nj`.
pub type TransposeFn<T> = fn(&[T], usize, &mut [T], usize, usize, usize);

/// The portable transpose, in square tiles so both sides stay in cache.
fn transpose_tiled<T: Copy>(
    src: &[T],
    lds: usize,
    dst: &mut [T],
    ldd: usize,
    np: usize,
    nj: usize,
) {
    const TILE: usize = 16;
    for jt in (0..nj).step_by(TILE) {
        for pt in (0..np).step_by(TILE) {
            for j in jt..(jt + TILE).min(nj) {
                let row = &src[j * lds + pt..][..TILE.min(np - pt)];
                for (dp, &v) in row.iter().enumerate() {
                    dst[(pt + dp) * ldd + j] = v;
                }
            }
        }
    }
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

pub trait GemmFloat: 'static + Sized + Copy {
    /// The AVX2 dot product for this type (call it only where AVX2 was detected).
    #[cfg(target_arch = "x86_64")]
    fn dot_avx2() -> DotFn<Self>;
    /// The fastest transpose on this CPU.
    fn transpose_fn() -> TransposeFn<Self> {
        transpose_tiled
    }
    /// Our own kernels for this type (`sgemm.rs`), where there are any: they compute
    /// `gemm_into`'s product and say true, or say false where they do not apply (this CPU,
    /// these layouts, these sizes).
    fn own_gemm() -> Option<OwnGemmFn<Self>> {
        None
    }
}
impl GemmFloat for f32 {
    fn own_gemm() -> Option<OwnGemmFn<f32>> {
        Some(sgemm::sgemm)
    }
    #[cfg(target_arch = "x86_64")]
    fn dot_avx2() -> DotFn<f32> {
        // SAFETY: callers ask only once AVX2 was detected on this CPU.
        |a, b| unsafe { avx2::dot_f32(a, b) }
    }
    fn transpose_fn() -> TransposeFn<f32> {
        #[cfg(target_arch = "x86_64")]
        if is_x86_feature_detected!("avx2") {
            // SAFETY: AVX2 was just detected.
            return |s, lds, d, ldd, np, nj| unsafe { avx2::transpose_f32(s, lds, d, ldd, np, nj) };
        }
        transpose_tiled
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

    /// [`super::transpose_tiled`] for f32 in 8 x 8 register blocks (eight row loads, three
    /// rounds of shuffles, eight row stores); the ragged edges go element by element.
    #[target_feature(enable = "avx2")]
    pub unsafe fn transpose_f32(
        src: &[f32],
        lds: usize,
        dst: &mut [f32],
        ldd: usize,
        np: usize,
        nj: usize,
    ) {
        if np == 0 || nj == 0 {
            return;
        }
        assert!(src.len() > (nj - 1) * lds + np - 1 && dst.len() > (np - 1) * ldd + nj - 1);
        let (s, d) = (src.as_ptr(), dst.as_mut_ptr());
        let (np8, nj8) = (np / 8 * 8, nj / 8 * 8);
        for j in (0..nj8).step_by(8) {
            for p in (0..np8).step_by(8) {
                let r: [__m256; 8] =
                    std::array::from_fn(|i| _mm256_loadu_ps(s.add((j + i) * lds + p)));
                let t0 = _mm256_unpacklo_ps(r[0], r[1]);
                let t1 = _mm256_unpackhi_ps(r[0], r[1]);
                let t2 = _mm256_unpacklo_ps(r[2], r[3]);
                let t3 = _mm256_unpackhi_ps(r[2], r[3]);
                let t4 = _mm256_unpacklo_ps(r[4], r[5]);
                let t5 = _mm256_unpackhi_ps(r[4], r[5]);
                let t6 = _mm256_unpacklo_ps(r[6], r[7]);
                let t7 = _mm256_unpackhi_ps(r[6], r[7]);
                let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
                let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
                let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
                let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
                let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
                let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
                let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
                let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
                let out = [
                    _mm256_permute2f128_ps::<0x20>(u0, u4),
                    _mm256_permute2f128_ps::<0x20>(u1, u5),
                    _mm256_permute2f128_ps::<0x20>(u2, u6),
                    _mm256_permute2f128_ps::<0x20>(u3, u7),
                    _mm256_permute2f128_ps::<0x31>(u0, u4),
                    _mm256_permute2f128_ps::<0x31>(u1, u5),
                    _mm256_permute2f128_ps::<0x31>(u2, u6),
                    _mm256_permute2f128_ps::<0x31>(u3, u7),
                ];
                for (i, v) in out.into_iter().enumerate() {
                    _mm256_storeu_ps(d.add((p + i) * ldd + j), v);
                }
            }
            for jj in j..j + 8 {
                for p in np8..np {
                    *d.add(p * ldd + jj) = *s.add(jj * lds + p);
                }
            }
        }
        for jj in nj8..nj {
            for p in 0..np {
                *d.add(p * ldd + jj) = *s.add(jj * lds + p);
            }
        }
    }

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
    fn transposes_match_the_definition() {
        for (np, nj, lds, ldd) in [
            (1, 1, 1, 1),
            (8, 8, 8, 8),
            (13, 21, 30, 25),
            (64, 40, 70, 40),
        ] {
            let src = values::<f32>(nj * lds, 5);
            for transpose in [f32::transpose_fn(), transpose_tiled::<f32>] {
                let mut dst = vec![f32::NAN; np * ldd];
                transpose(&src, lds, &mut dst, ldd, np, nj);
                for p in 0..np {
                    for j in 0..nj {
                        assert_eq!(
                            dst[p * ldd + j],
                            src[j * lds + p],
                            "({p}, {j}) of {np} x {nj}"
                        );
                    }
                }
            }
        }
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
