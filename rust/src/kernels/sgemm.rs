//! Single-precision GEMM of our own for x86-64 CPUs with AVX-512, for the products a GPT spends
//! its time in: operands with contiguous rows or columns (activations, `x @ W.T` for every
//! `nn.Linear`, `dY.T @ x` for its weight gradient), up to a few MiB of left operand.
//!
//! The scheme is Goto's. Each thread packs the rows of the left operand it needs once, in
//! blocks of `MR` rows laid out depth-major; the right operand is packed `KC` deep and `NR`
//! wide into a panel, and a microkernel sweeps the packed row blocks
//! over it, keeping an `MR x NR` block of the result in registers (24 of the 32 vector
//! registers) and reading both packed operands in order. Columns go `nc` at a time, so the
//! block of the result that every depth block adds to stays in the L2 cache. Transposed
//! operands are packed with vector transposes, so `x @ W.T` costs what `x @ W` does (the gemm
//! crate gathers such an operand one element at a time).
//!
//! Both cores take a share of the result's column panels (or of its rows, when it is taller
//! than wide), each packing what it reads: the threads share nothing they write.
//!
//! Each output element is a sum over `k` in order, from +0.0, in `KC`-long stretches added to
//! the result; so no result is ever -0.0, as with torch's BLAS.

use super::matmul::{GemmFloat, Mat, TransposeFn};

/// Rows of the result per microkernel call, each broadcast from the packed left operand.
const MR: usize = 8;
/// Columns per microkernel call: three 16-lane registers (`MR x 3` accumulators).
const NR: usize = 48;
/// Depth of a packed panel (72 KiB, read from L2 at a fraction of its bandwidth): a longer
/// stretch adds to the result fewer times. 384 measured best among 128..768 on Zen 4.
const KC: usize = 384;
/// The largest left operand taken (each thread packs all of its rows at once): GPT-2's
/// products with 512 rows; the LM head's gradients (50257 rows or columns) go to the gemm
/// crate, which packs in blocks.
const PACKED_LHS_BYTES: usize = 8 << 20;
/// Bytes of the result one thread updates per sweep over the depth (half a 1 MiB L2 cache).
const C_BLOCK_BYTES: usize = 512 << 10;

/// Whether this CPU runs the kernels here.
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether `lhs @ rhs` (`m x k` by `k x n`) takes this path: a left operand with contiguous
/// rows, a right operand with contiguous rows or columns, and enough work for both cores.
pub fn applies(m: usize, n: usize, k: usize, l: Mat, r: Mat) -> bool {
    (l.cs == 1 || l.rs == 1)
        && (r.cs == 1 || r.rs == 1)
        && m >= 4
        && m * n * k >= 64 * 64 * 64
        && m * k * 4 <= PACKED_LHS_BYTES
        && available()
}

thread_local! {
    /// Each thread's packing buffers, kept between products: a fresh zeroed buffer per product
    /// (MiBs for GPT-2's) cost more time in memset than its transposes. At most
    /// `PACKED_LHS_BYTES` plus a panel per thread.
    static SCRATCH: std::cell::Cell<Vec<f32>> = const { std::cell::Cell::new(Vec::new()) };
}

/// A raw pointer the threads may share: each writes its own part of the result.
#[derive(Clone, Copy)]
struct SharedOut(*mut f32);
// SAFETY: the tasks below write disjoint blocks of the result.
unsafe impl Send for SharedOut {}
unsafe impl Sync for SharedOut {}

/// dst[m x n] (row-major, contiguous) = lhs @ rhs, or dst + lhs @ rhs when `accumulate`, and
/// true; false (nothing done) where these kernels do not apply (see `applies`).
#[allow(clippy::too_many_arguments)]
pub fn sgemm(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    accumulate: bool,
    lhs: &[f32],
    l: Mat,
    rhs: &[f32],
    r: Mat,
) -> bool {
    use rayon::prelude::*;
    if !applies(m, n, k, l, r) {
        return false;
    }
    assert!(dst.len() >= m * n);
    // Every element the views address lies inside the operands (checked when the views were
    // made); these asserts keep the unsafe code below honest about it.
    assert!(lhs.len() > l.offset + (m - 1) * l.rs + (k - 1) * l.cs);
    assert!(rhs.len() > r.offset + (k - 1) * r.rs + (n - 1) * r.cs);
    let out = SharedOut(dst.as_mut_ptr());
    let panels = n.div_ceil(NR);
    let threads = rayon::current_num_threads().max(1);
    let job = Job {
        n,
        k,
        accumulate,
        lhs,
        l,
        rhs,
        r,
        transpose: f32::transpose_fn(),
    };
    if n >= m && panels >= 2 * threads || m < 2 * MR * threads {
        // Split the column panels.
        let per = panels.div_ceil(threads);
        (0..panels.div_ceil(per)).into_par_iter().for_each(|t| {
            let cols = t * per * NR..((t + 1) * per * NR).min(n);
            // SAFETY: task t writes columns `cols` of every row, no other task does.
            unsafe { job.run(out, 0..m, cols) }
        });
    } else {
        // Split the rows, in whole microkernel blocks.
        let per = m.div_ceil(threads).div_ceil(MR) * MR;
        (0..m.div_ceil(per)).into_par_iter().for_each(|t| {
            let rows = t * per..((t + 1) * per).min(m);
            // SAFETY: task t writes rows `rows`, no other task does.
            unsafe { job.run(out, rows, 0..n) }
        });
    }
    true
}

/// One product's operands, shared by its tasks.
struct Job<'a> {
    n: usize,
    k: usize,
    accumulate: bool,
    lhs: &'a [f32],
    l: Mat,
    rhs: &'a [f32],
    r: Mat,
    transpose: TransposeFn<f32>,
}

impl Job<'_> {
    /// Computes the block `rows x cols` of the result.
    ///
    /// # Safety
    /// `out` holds the `m x n` result; no other thread touches this block meanwhile.
    unsafe fn run(
        &self,
        out: SharedOut,
        rows: std::ops::Range<usize>,
        cols: std::ops::Range<usize>,
    ) {
        let blocks = rows.len().div_ceil(MR);
        // The left operand, packed once: depth block p0.. starts at blocks * MR * p0.
        let mut scratch = SCRATCH.take();
        let len = blocks * MR * self.k + KC * NR;
        if scratch.len() < len {
            scratch.resize(len, 0.0);
        }
        let (packed_a, panel) = scratch.split_at_mut(blocks * MR * self.k);
        for p0 in (0..self.k).step_by(KC) {
            let kc = KC.min(self.k - p0);
            let a = &mut packed_a[blocks * MR * p0..][..blocks * MR * kc];
            self.pack_lhs(a, rows.clone(), p0, kc);
        }
        // Columns per sweep over the depth: the block of the result they span stays in the
        // L2 cache while every depth block adds to it.
        let nc = (C_BLOCK_BYTES / (4 * rows.len()) / NR).max(1) * NR;
        for jc in cols.clone().step_by(nc) {
            let jc_end = (jc + nc).min(cols.end);
            for p0 in (0..self.k).step_by(KC) {
                let kc = KC.min(self.k - p0);
                let a = &packed_a[blocks * MR * p0..][..blocks * MR * kc];
                let first = p0 == 0 && !self.accumulate;
                for j0 in (jc..jc_end).step_by(NR) {
                    let nw = NR.min(jc_end - j0);
                    self.pack_rhs(panel, p0, kc, j0, nw);
                    for (b, a) in a.chunks_exact(MR * kc).enumerate() {
                        let i = rows.start + b * MR;
                        let mr = MR.min(rows.end - i);
                        let c = out.0.add(i * self.n + j0);
                        KERNELS[mr - 1](kc, a.as_ptr(), panel.as_ptr(), c, self.n, nw, first);
                    }
                }
            }
        }
        SCRATCH.set(scratch);
    }

    /// Packs columns `p0..p0 + kc` of the left operand's `rows`, `MR` rows at a time, each
    /// block `kc x MR` (row-major): the microkernel then reads it in order.
    fn pack_lhs(&self, packed: &mut [f32], rows: std::ops::Range<usize>, p0: usize, kc: usize) {
        let (lhs, l) = (self.lhs, self.l);
        for (b, block) in packed.chunks_exact_mut(MR * kc).enumerate() {
            let i = rows.start + b * MR;
            let mr = MR.min(rows.end - i);
            if l.cs == 1 {
                // Row-major: each row is a contiguous run of the source.
                (self.transpose)(&lhs[l.offset + i * l.rs + p0..], l.rs, block, MR, kc, mr);
            } else {
                // A transposed view (a weight gradient's `dY.T`): each column is.
                for (p, dst) in block.chunks_exact_mut(MR).enumerate() {
                    let s = l.offset + (p0 + p) * l.cs + i;
                    dst[..mr].copy_from_slice(&lhs[s..s + mr]);
                }
            }
        }
    }

    /// Packs rows `p0..p0 + kc`, columns `j0..j0 + nw` of the right operand into `panel`
    /// (`kc x NR`, row-major), zero beyond column `nw`.
    fn pack_rhs(&self, panel: &mut [f32], p0: usize, kc: usize, j0: usize, nw: usize) {
        let (rhs, r) = (self.rhs, self.r);
        let panel = &mut panel[..kc * NR];
        if nw < NR {
            panel.iter_mut().for_each(|v| *v = 0.0);
        }
        if r.cs == 1 {
            for (p, row) in panel.chunks_exact_mut(NR).enumerate() {
                let s = r.offset + (p0 + p) * r.rs + j0;
                row[..nw].copy_from_slice(&rhs[s..s + nw]);
            }
        } else {
            // A transposed view: column j of the operand is a contiguous run of the source.
            (self.transpose)(&rhs[r.offset + j0 * r.cs + p0..], r.cs, panel, NR, kc, nw);
        }
    }
}

/// A microkernel: `c[0..R, 0..nw] (+)= a[0..R, 0..kc] @ b[0..kc, 0..NR]` for its `R` rows
/// (arguments `kc, a, b, c, ldc, nw, first`): `a` a packed block (`kc x MR`), `b` a packed
/// panel (`kc x NR`), `c`'s rows `ldc` apart; `first` overwrites `c`, otherwise adds to it.
///
/// # Safety
/// The pointers address the blocks described; AVX-512F is available (see `available`).
type Kernel = unsafe fn(usize, *const f32, *const f32, *mut f32, usize, usize, bool);

/// The microkernels for 1..=MR rows (index `rows - 1`).
#[cfg(target_arch = "x86_64")]
const KERNELS: [Kernel; MR] = {
    use avx512::kernel;
    [
        kernel::<1>,
        kernel::<2>,
        kernel::<3>,
        kernel::<4>,
        kernel::<5>,
        kernel::<6>,
        kernel::<7>,
        kernel::<8>,
    ]
};
#[cfg(not(target_arch = "x86_64"))]
const KERNELS: [Kernel; MR] = {
    unsafe fn never(
        _: usize,
        _: *const f32,
        _: *const f32,
        _: *mut f32,
        _: usize,
        _: usize,
        _: bool,
    ) {
        unreachable!("sgemm::available() is false off x86-64")
    }
    [never; MR]
};

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{MR, NR};
    use std::arch::x86_64::*;

    /// 16-lane vectors per row of a panel.
    const V: usize = NR / 16;

    /// The microkernel for `R` rows (see `super::Kernel`).
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn kernel<const R: usize>(
        kc: usize,
        a: *const f32,
        b: *const f32,
        c: *mut f32,
        ldc: usize,
        nw: usize,
        first: bool,
    ) {
        let mut acc = [[_mm512_setzero_ps(); V]; R];
        for p in 0..kc {
            let bp = b.add(p * NR);
            let bv: [__m512; V] = std::array::from_fn(|v| _mm512_loadu_ps(bp.add(16 * v)));
            let ap = a.add(p * MR);
            for (i, acc) in acc.iter_mut().enumerate() {
                let ai = _mm512_set1_ps(*ap.add(i));
                for v in 0..V {
                    acc[v] = _mm512_fmadd_ps(ai, bv[v], acc[v]);
                }
            }
        }
        // Masked-off lanes are neither read nor written (and cannot fault), so a vector's
        // address may lie past a short row's end.
        let masks: [__mmask16; V] = std::array::from_fn(|v| {
            let w = nw.saturating_sub(16 * v);
            if w >= 16 {
                0xffff
            } else {
                (1u16 << w) - 1
            }
        });
        for (i, acc) in acc.iter().enumerate() {
            let ci = c.add(i * ldc);
            for v in 0..V {
                let cv = ci.wrapping_add(16 * v);
                let mut x = acc[v];
                if !first {
                    x = _mm512_add_ps(_mm512_maskz_loadu_ps(masks[v], cv), x);
                }
                _mm512_mask_storeu_ps(cv, masks[v], x);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both layouts of each operand, ragged against every block size, against sums in f64
    /// (on a CPU without AVX-512 the kernels never run, and neither does this check).
    #[test]
    fn matches_a_plain_triple_loop() {
        if !available() {
            return;
        }
        for &(m, k, n) in &[(13, 300, 101), (70, 129, 49), (9, 1000, 200)] {
            let a: Vec<f32> = (0..m * k)
                .map(|i| ((i * 7919) % 1013) as f32 / 1013.0 - 0.5)
                .collect();
            let b: Vec<f32> = (0..k * n)
                .map(|i| ((i * 104_729) % 997) as f32 / 997.0 - 0.5)
                .collect();
            let want: Vec<f64> = (0..m * n)
                .map(|ij| {
                    let (i, j) = (ij / n, ij % n);
                    (0..k)
                        .map(|p| a[i * k + p] as f64 * b[p * n + j] as f64)
                        .sum()
                })
                .collect();
            // The same values stored transposed: a as k x m, b as n x k.
            let at: Vec<f32> = (0..k * m).map(|pi| a[(pi % m) * k + pi / m]).collect();
            let bt: Vec<f32> = (0..n * k).map(|jp| b[(jp % k) * n + jp / k]).collect();
            let row = |rs| Mat {
                offset: 0,
                rs,
                cs: 1,
            };
            let col = |cs| Mat {
                offset: 0,
                rs: 1,
                cs,
            };
            for (lhs, l) in [(&a, row(k)), (&at, col(m))] {
                for (rhs, r) in [(&b, row(n)), (&bt, col(k))] {
                    let mut got = vec![1.0f32; m * n];
                    assert!(sgemm(m, n, k, &mut got, true, lhs, l, rhs, r));
                    for (g, w) in got.iter().zip(&want) {
                        assert!(
                            (*g as f64 - 1.0 - w).abs() < 1e-4 * (1.0 + w.abs()),
                            "{g} vs {w}"
                        );
                    }
                }
            }
        }
    }
}
