//! Fused scaled dot-product attention, forward and backward, one (batch·head) slice per rayon
//! task: scores through the GEMM, masking and a stable softmax in place, and only the rows'
//! logsumexp kept for backward, which recomputes the probabilities instead of storing them.
//! A causal row's work (scaling, exponentials, the score gradient) covers only the keys it
//! sees; the row kernels are built for AVX2 where the CPU has it.

use rayon::prelude::*;

use super::elementwise::{num_like::Float, Arith};
use super::matmul::{gemm_f, GemmFloat, Mat};
use crate::dtype::Elem;

/// Sizes of one attention call: `n` slices, queries `lq`, keys `lk`, head size `e`, value
/// size `ev`.
#[derive(Clone, Copy)]
pub struct AttnDims {
    pub n: usize,
    pub lq: usize,
    pub lk: usize,
    pub e: usize,
    pub ev: usize,
}

impl AttnDims {
    /// How many keys query row `i` sees: all of them, or under `causal` keys `0..=i`
    /// (torch's top-left aligned mask). The others weigh nothing and take no gradient.
    fn seen(&self, causal: bool, i: usize) -> usize {
        if causal {
            (i + 1).min(self.lk)
        } else {
            self.lk
        }
    }
}

/// An additive mask seen as (n, lq, lk) through strides (broadcast dims have stride 0).
#[derive(Clone, Copy)]
pub struct MaskView<'a, T> {
    pub data: &'a [T],
    pub offset: usize,
    pub stride: [usize; 3],
}

impl<T: Copy> MaskView<'_, T> {
    #[inline(always)]
    fn at(&self, n: usize, i: usize, j: usize) -> T {
        self.data[self.offset + n * self.stride[0] + i * self.stride[1] + j * self.stride[2]]
    }
}

pub trait AttnFloat: Elem + GemmFloat + Float + Arith + Send + Sync {}
impl AttnFloat for f32 {}
impl AttnFloat for f64 {}

#[allow(clippy::too_many_arguments)]
/// `scale·q·kᵀ + mask` for slice `n` into `s` (lq × lk). Under `causal` a row's positions
/// past its own (j > i) are left as they are: the softmax and backward's probabilities never
/// read them (they set them to 0).
fn scores<T: AttnFloat>(
    d: AttnDims,
    n: usize,
    q: &[T],
    k: &[T],
    mask: Option<MaskView<'_, T>>,
    causal: bool,
    scale: f64,
    rows: &RowKernels<T>,
    s: &mut [T],
) {
    let qm = Mat {
        offset: n * d.lq * d.e,
        rs: d.e,
        cs: 1,
    };
    let kt = Mat {
        offset: n * d.lk * d.e,
        rs: 1,
        cs: d.e,
    };
    gemm_f(d.lq, d.lk, d.e, s, q, qm, k, kt);
    let sc = T::from_f64c(scale);
    for (i, row) in s.chunks_exact_mut(d.lk).enumerate() {
        let row = &mut row[..d.seen(causal, i)];
        match mask {
            Some(m) => row
                .iter_mut()
                .enumerate()
                .for_each(|(j, x)| *x = x.mul(sc).add(m.at(n, i, j))),
            None => (rows.scale)(row, sc),
        }
    }
}

/// `row *= sc`.
#[inline(always)]
fn scale_row<T: AttnFloat>(row: &mut [T], sc: T) {
    row.iter_mut().for_each(|x| *x = x.mul(sc));
}

/// The softmax of a row of scores in place, of which only the first `seen` count (the rest
/// become 0); returns the row's logsumexp. A row with nothing to attend to (all -inf) becomes
/// zeros, with logsumexp -inf, like torch's CPU kernel.
#[inline(always)]
fn softmax_row<T: AttnFloat>(row: &mut [T], seen: usize) -> f64 {
    let (live, unseen) = row.split_at_mut(seen);
    unseen.iter_mut().for_each(|x| *x = T::zero());
    let mx = super::reduce::max_f64(live);
    if mx == f64::NEG_INFINITY {
        live.iter_mut().for_each(|x| *x = T::zero());
        return f64::NEG_INFINITY;
    }
    for x in live.iter_mut() {
        *x = T::from_f64c(x.to_f64c() - mx).exp_fast();
    }
    let sum = super::reduce::sum_f64(live);
    for x in live.iter_mut() {
        *x = T::from_f64c(x.to_f64c() / sum);
    }
    mx + sum.ln()
}

/// Backward's probabilities for a row of scores in place, from the row's logsumexp `lse`:
/// `exp(s - lse)` over the first `seen` keys, 0 beyond (keys a causal row does not see).
#[inline(always)]
fn probs_row<T: AttnFloat>(row: &mut [T], seen: usize, lse: f64) {
    let (live, unseen) = row.split_at_mut(seen);
    unseen.iter_mut().for_each(|x| *x = T::zero());
    if lse == f64::NEG_INFINITY {
        live.iter_mut().for_each(|x| *x = T::zero());
        return;
    }
    for x in live.iter_mut() {
        *x = T::from_f64c(x.to_f64c() - lse).exp_fast();
    }
}

/// The score gradient of a row in place of its probability gradient `dp`:
/// `p * (dp - delta) * scale` over the first `seen` keys, 0 beyond (where `p` is 0).
#[inline(always)]
fn score_grad_row<T: AttnFloat>(p: &[T], dp: &mut [T], seen: usize, delta: f64, scale: f64) {
    let (live, unseen) = dp.split_at_mut(seen);
    unseen.iter_mut().for_each(|x| *x = T::zero());
    for (d, &p) in live.iter_mut().zip(&p[..seen]) {
        *d = T::from_f64c(p.to_f64c() * (d.to_f64c() - delta) * scale);
    }
}

/// The row kernels, built for AVX2 where the CPU has it (the baseline x86-64 target
/// vectorises 128 bits wide); the same arithmetic, so the same bits.
struct RowKernels<T> {
    scale: fn(&mut [T], T),
    softmax: fn(&mut [T], usize) -> f64,
    probs: fn(&mut [T], usize, f64),
    score_grad: fn(&[T], &mut [T], usize, f64, f64),
}

impl<T: AttnFloat> RowKernels<T> {
    fn pick() -> Self {
        #[cfg(target_arch = "x86_64")]
        if is_x86_feature_detected!("avx2") {
            // SAFETY (of each call below): AVX2 was detected on this CPU.
            return RowKernels {
                scale: |row, sc| unsafe { avx2::scale_row(row, sc) },
                softmax: |row, seen| unsafe { avx2::softmax_row(row, seen) },
                probs: |row, seen, lse| unsafe { avx2::probs_row(row, seen, lse) },
                score_grad: |p, dp, seen, delta, scale| unsafe {
                    avx2::score_grad_row(p, dp, seen, delta, scale)
                },
            };
        }
        RowKernels {
            scale: scale_row,
            softmax: softmax_row,
            probs: probs_row,
            score_grad: score_grad_row,
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::AttnFloat;

    /// [`super::scale_row`] built for AVX2.
    #[target_feature(enable = "avx2")]
    pub unsafe fn scale_row<T: AttnFloat>(row: &mut [T], sc: T) {
        super::scale_row(row, sc)
    }

    /// [`super::softmax_row`] built for AVX2.
    #[target_feature(enable = "avx2")]
    pub unsafe fn softmax_row<T: AttnFloat>(row: &mut [T], seen: usize) -> f64 {
        super::softmax_row(row, seen)
    }

    /// [`super::probs_row`] built for AVX2.
    #[target_feature(enable = "avx2")]
    pub unsafe fn probs_row<T: AttnFloat>(row: &mut [T], seen: usize, lse: f64) {
        super::probs_row(row, seen, lse)
    }

    /// [`super::score_grad_row`] built for AVX2.
    #[target_feature(enable = "avx2")]
    pub unsafe fn score_grad_row<T: AttnFloat>(
        p: &[T],
        dp: &mut [T],
        seen: usize,
        delta: f64,
        scale: f64,
    ) {
        super::score_grad_row(p, dp, seen, delta, scale)
    }
}

/// Forward: `out` (n, lq, ev) and each row's logsumexp `lse` (n, lq).
#[allow(clippy::too_many_arguments)]
pub fn attention_fwd<T: AttnFloat>(
    d: AttnDims,
    q: &[T],
    k: &[T],
    v: &[T],
    mask: Option<MaskView<'_, T>>,
    causal: bool,
    scale: f64,
    keep: Option<&[T]>,
    out: &mut [T],
    lse: &mut [T],
) {
    if d.lq == 0 || d.ev == 0 {
        return;
    }
    let rows = RowKernels::<T>::pick();
    out.par_chunks_mut(d.lq * d.ev)
        .zip(lse.par_chunks_mut(d.lq))
        .enumerate()
        .for_each(|(n, (o, l))| {
            let mut s = vec![T::zero(); d.lq * d.lk];
            scores(d, n, q, k, mask, causal, scale, &rows, &mut s);
            for (i, (row, l)) in s.chunks_exact_mut(d.lk).zip(l.iter_mut()).enumerate() {
                *l = T::from_f64c((rows.softmax)(row, d.seen(causal, i)));
            }
            if let Some(keep) = keep {
                // Dropout on the attention weights: keep holds 0 or 1/(1-p) per weight.
                let kn = &keep[n * d.lq * d.lk..(n + 1) * d.lq * d.lk];
                s.iter_mut().zip(kn).for_each(|(x, &k)| *x = x.mul(k));
            }
            let pm = Mat {
                offset: 0,
                rs: d.lk,
                cs: 1,
            };
            let vm = Mat {
                offset: n * d.lk * d.ev,
                rs: d.ev,
                cs: 1,
            };
            gemm_f(d.lq, d.ev, d.lk, o, &s, pm, v, vm);
        });
}

/// The inputs backward reads.
pub struct AttnSaved<'a, T> {
    pub q: &'a [T],
    pub k: &'a [T],
    pub v: &'a [T],
    pub out: &'a [T],
    pub lse: &'a [T],
    pub mask: Option<MaskView<'a, T>>,
    pub causal: bool,
    pub scale: f64,
    /// The dropout multipliers (0 or 1/(1-p)) applied to the weights, (n, lq, lk).
    pub keep: Option<&'a [T]>,
}

/// Backward: from the output gradient `g` (n, lq, ev), the gradients of q, k and v.
pub fn attention_bwd<T: AttnFloat>(
    d: AttnDims,
    s: &AttnSaved<'_, T>,
    g: &[T],
    gq: &mut [T],
    gk: &mut [T],
    gv: &mut [T],
) {
    if d.n == 0 || d.lq == 0 || d.lk == 0 {
        return;
    }
    let rows = RowKernels::<T>::pick();
    gq.par_chunks_mut((d.lq * d.e).max(1))
        .zip(gk.par_chunks_mut((d.lk * d.e).max(1)))
        .zip(gv.par_chunks_mut((d.lk * d.ev).max(1)))
        .enumerate()
        .for_each(|(n, ((gq, gk), gv))| {
            let mut p = vec![T::zero(); d.lq * d.lk];
            scores(d, n, s.q, s.k, s.mask, s.causal, s.scale, &rows, &mut p);
            for (i, row) in p.chunks_exact_mut(d.lk).enumerate() {
                (rows.probs)(row, d.seen(s.causal, i), s.lse[n * d.lq + i].to_f64c());
            }
            let gm = Mat {
                offset: n * d.lq * d.ev,
                rs: d.ev,
                cs: 1,
            };
            let kn = s.keep.map(|k| &k[n * d.lq * d.lk..(n + 1) * d.lq * d.lk]);
            // dV = (P∘keep)ᵀ·dO
            let pk: Vec<T> = match kn {
                Some(kn) => p.iter().zip(kn).map(|(x, &k)| x.mul(k)).collect(),
                None => Vec::new(),
            };
            gemm_f(
                d.lk,
                d.ev,
                d.lq,
                gv,
                if kn.is_some() { &pk } else { &p },
                Mat {
                    offset: 0,
                    rs: 1,
                    cs: d.lk,
                },
                g,
                gm,
            );
            // dP = dO·Vᵀ
            let mut dp = vec![T::zero(); d.lq * d.lk];
            let vt = Mat {
                offset: n * d.lk * d.ev,
                rs: 1,
                cs: d.ev,
            };
            gemm_f(d.lq, d.lk, d.ev, &mut dp, g, gm, s.v, vt);
            if let Some(kn) = kn {
                // through the dropout: dP = (dO·Vᵀ)∘keep
                dp.iter_mut().zip(kn).for_each(|(x, &k)| *x = x.mul(k));
            }
            // dS = P ∘ (dP − rowsum(dO ∘ O)) · scale
            for (i, (p, dp)) in p
                .chunks_exact(d.lk)
                .zip(dp.chunks_exact_mut(d.lk))
                .enumerate()
            {
                let base = n * d.lq * d.ev + i * d.ev;
                let delta: f64 = (0..d.ev)
                    .map(|c| g[base + c].to_f64c() * s.out[base + c].to_f64c())
                    .sum();
                (rows.score_grad)(p, dp, d.seen(s.causal, i), delta, s.scale);
            }
            // dQ = dS·K, dK = dSᵀ·Q
            let km = Mat {
                offset: n * d.lk * d.e,
                rs: d.e,
                cs: 1,
            };
            gemm_f(
                d.lq,
                d.e,
                d.lk,
                gq,
                &dp,
                Mat {
                    offset: 0,
                    rs: d.lk,
                    cs: 1,
                },
                s.k,
                km,
            );
            let qm = Mat {
                offset: n * d.lq * d.e,
                rs: d.e,
                cs: 1,
            };
            gemm_f(
                d.lk,
                d.e,
                d.lq,
                gk,
                &dp,
                Mat {
                    offset: 0,
                    rs: 1,
                    cs: d.lk,
                },
                s.q,
                qm,
            );
        });
}
