//! Fused kernels for the hot paths of a transformer: layer norm and cross-entropy, forward and
//! backward, each one pass over a row with the row's statistics kept in registers. Rows are
//! spread over rayon's threads; sums accumulate in f64.

use crate::dtype::Elem;
use rayon::prelude::*;

use super::elementwise::num_like::Float;
use super::elementwise::{FloatMath, PAR_CHUNK, PAR_THRESHOLD};
use super::reduce;

/// Rows per rayon task: enough work per task to amortise scheduling on small rows.
fn rows_per_task(row_len: usize) -> usize {
    (16384 / row_len.max(1)).max(1)
}

// *** layer norm ***

/// `y = (x - mean) * rstd * w + b` over rows of length `n`; writes the per-row mean and
/// 1/sqrt(var + eps) (biased variance) that backward reuses.
#[allow(clippy::too_many_arguments)]
pub fn layer_norm_fwd<T: Float + Send + Sync>(
    x: &[T],
    w: Option<&[T]>,
    b: Option<&[T]>,
    n: usize,
    eps: f64,
    y: &mut [T],
    mean: &mut [T],
    rstd: &mut [T],
) {
    if n == 0 {
        return;
    }
    let k = rows_per_task(n);
    y.par_chunks_mut(n * k)
        .zip(mean.par_chunks_mut(k))
        .zip(rstd.par_chunks_mut(k))
        .enumerate()
        .for_each(|(task, ((yc, mc), rc))| {
            for (r, (yr, (m_out, r_out))) in yc
                .chunks_mut(n)
                .zip(mc.iter_mut().zip(rc.iter_mut()))
                .enumerate()
            {
                let row = (task * k + r) * n;
                let xr = &x[row..row + n];
                let m = xr.iter().map(|v| v.to_f64c()).sum::<f64>() / n as f64;
                let var = xr
                    .iter()
                    .map(|v| {
                        let d = v.to_f64c() - m;
                        d * d
                    })
                    .sum::<f64>()
                    / n as f64;
                let rs = 1.0 / (var + eps).sqrt();
                for j in 0..n {
                    let mut v = (xr[j].to_f64c() - m) * rs;
                    if let Some(w) = w {
                        v *= w[j].to_f64c();
                    }
                    if let Some(b) = b {
                        v += b[j].to_f64c();
                    }
                    yr[j] = T::from_f64c(v);
                }
                *m_out = T::from_f64c(m);
                *r_out = T::from_f64c(rs);
            }
        });
}

/// Gradients of layer norm: `gx` (rows of `n`), and the column sums `gw = Σ g·x̂`, `gb = Σ g`.
#[allow(clippy::too_many_arguments)]
pub fn layer_norm_bwd<T: Float + Send + Sync>(
    g: &[T],
    x: &[T],
    w: Option<&[T]>,
    mean: &[T],
    rstd: &[T],
    n: usize,
    gx: &mut [T],
) -> (Vec<f64>, Vec<f64>) {
    if n == 0 {
        return (vec![], vec![]);
    }
    let k = rows_per_task(n);
    let partials: Vec<(Vec<f64>, Vec<f64>)> = gx
        .par_chunks_mut(n * k)
        .enumerate()
        .map(|(task, gxc)| {
            let mut gw = vec![0f64; n];
            let mut gb = vec![0f64; n];
            let mut gxh = vec![0f64; n];
            for (r, gxr) in gxc.chunks_mut(n).enumerate() {
                let i = task * k + r;
                let row = i * n;
                let (m, rs) = (mean[i].to_f64c(), rstd[i].to_f64c());
                let (mut sum_a, mut sum_b) = (0f64, 0f64);
                for j in 0..n {
                    let gj = g[row + j].to_f64c();
                    let xh = (x[row + j].to_f64c() - m) * rs;
                    gw[j] += gj * xh;
                    gb[j] += gj;
                    let d = w.map_or(gj, |w| gj * w[j].to_f64c());
                    gxh[j] = d;
                    sum_a += d;
                    sum_b += d * xh;
                }
                let (mean_a, mean_b) = (sum_a / n as f64, sum_b / n as f64);
                for j in 0..n {
                    let xh = (x[row + j].to_f64c() - m) * rs;
                    gxr[j] = T::from_f64c(rs * (gxh[j] - mean_a - xh * mean_b));
                }
            }
            (gw, gb)
        })
        .collect();
    let mut gw = vec![0f64; n];
    let mut gb = vec![0f64; n];
    for (pw, pb) in partials {
        for j in 0..n {
            gw[j] += pw[j];
            gb[j] += pb[j];
        }
    }
    (gw, gb)
}

// *** cross-entropy ***

/// What one cross-entropy call computes: class-index targets, optional class weights,
/// `ignore_index` and label smoothing `eps` (torch's definition).
pub struct CrossEntropySpec<'a> {
    pub target: &'a [i64],
    pub weight: Option<&'a [f64]>,
    pub ignore_index: i64,
    pub smoothing: f64,
}

impl CrossEntropySpec<'_> {
    fn w(&self, c: usize) -> f64 {
        self.weight.map_or(1.0, |w| w[c])
    }
    fn w_sum(&self) -> f64 {
        self.weight.map_or(0.0, |w| w.iter().sum())
    }
}

/// Per-row losses (0 for ignored rows), the rows' logsumexp, and the total weight of the
/// counted rows (mean reduction's denominator). `Err(t)` names an out-of-range target.
pub fn cross_entropy_fwd<T: Elem + Float + Send + Sync>(
    x: &[T],
    c: usize,
    spec: &CrossEntropySpec<'_>,
    loss: &mut [f64],
    lse: &mut [f64],
) -> Result<f64, i64> {
    if let Some(&bad) = spec
        .target
        .iter()
        .find(|&&t| t != spec.ignore_index && (t < 0 || t as usize >= c))
    {
        return Err(bad);
    }
    let eps = spec.smoothing;
    let w_all = if spec.weight.is_some() {
        spec.w_sum()
    } else {
        c as f64
    };
    let k = rows_per_task(c);
    loss.par_chunks_mut(k)
        .zip(lse.par_chunks_mut(k))
        .enumerate()
        .for_each(|(task, (lc, sc))| {
            let mut exps = Vec::with_capacity(c);
            for (r, (l, s)) in lc.iter_mut().zip(sc.iter_mut()).enumerate() {
                let i = task * k + r;
                let row = &x[i * c..(i + 1) * c];
                let mx = reduce::max_f64(row);
                let shift = if mx.is_finite() { mx } else { 0.0 };
                exps.clear();
                exps.extend(
                    row.iter()
                        .map(|v| T::from_f64c(v.to_f64c() - shift).exp_fast()),
                );
                let se = reduce::sum_f64(&exps);
                let lse_i = se.ln() + shift;
                *s = lse_i;
                let t = spec.target[i];
                if t == spec.ignore_index {
                    *l = 0.0;
                    continue;
                }
                let t = t as usize;
                let nll = spec.w(t) * (lse_i - row[t].to_f64c());
                let mut v = (1.0 - eps) * nll;
                if eps > 0.0 {
                    // Σ_c w_c·(lse - x_c) = lse·Σw - Σ w_c·x_c
                    let wx: f64 = (0..c).map(|j| spec.w(j) * row[j].to_f64c()).sum();
                    v += eps / c as f64 * (lse_i * w_all - wx);
                }
                *l = v;
            }
        });
    Ok(spec
        .target
        .iter()
        .filter(|&&t| t != spec.ignore_index)
        .map(|&t| spec.w(t as usize))
        .sum())
}

/// d loss_i / d x_ic scaled by `scale[i]` (the incoming gradient, already divided by the mean's
/// denominator): `scale·(coef·p_ic − (1−ε)·w_t·[c = t] − ε/C·w_c)` with `coef = (1−ε)·w_t + ε/C·Σw`.
pub fn cross_entropy_bwd<T: Float + Send + Sync>(
    x: &[T],
    c: usize,
    spec: &CrossEntropySpec<'_>,
    lse: &[f64],
    scale: &[f64],
    gx: &mut [T],
) {
    let eps = spec.smoothing;
    let w_all = if spec.weight.is_some() {
        spec.w_sum()
    } else {
        c as f64
    };
    gx.par_chunks_mut(c).enumerate().for_each(|(i, gr)| {
        let t = spec.target[i];
        if t == spec.ignore_index {
            gr.iter_mut().for_each(|v| *v = T::from_f64c(0.0));
            return;
        }
        let t = t as usize;
        let s = scale[i];
        let wt = spec.w(t);
        let coef = (1.0 - eps) * wt + eps / c as f64 * w_all;
        let row = &x[i * c..(i + 1) * c];
        let (l, smooth) = (lse[i], eps / c as f64);
        let p = |x: T| T::from_f64c(x.to_f64c() - l).exp_fast().to_f64c();
        match spec.weight {
            None => gr.iter_mut().zip(row).for_each(|(g, &x)| {
                *g = T::from_f64c(s * (coef * p(x) - smooth));
            }),
            Some(w) => gr.iter_mut().zip(row).zip(w).for_each(|((g, &x), &wj)| {
                *g = T::from_f64c(s * (coef * p(x) - smooth * wj));
            }),
        }
        gr[t] = T::from_f64c(s * (coef * p(row[t]) - smooth * wt - (1.0 - eps) * wt));
    });
}

// *** binary cross-entropy ***

/// The operand of a binary cross-entropy that held a value outside [0, 1] (or NaN).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BceRange {
    Input,
    Target,
}

/// Splits `n` elements into chunks for rayon, or into one chunk below the threshold (which
/// rayon runs on the calling thread: waking the pool would cost more than it saves).
fn elem_chunk(n: usize) -> usize {
    if n >= PAR_THRESHOLD {
        PAR_CHUNK
    } else {
        n.max(1)
    }
}

/// Unreduced binary cross-entropy, computed in `T` the way torch's CPU kernel does:
/// `(t − 1)·max(ln(1 − x), −100) − t·max(ln x, −100)`, then times `w`. Every input and target
/// must lie in [0, 1].
pub fn bce_fwd<T: FloatMath + PartialOrd + Send + Sync>(
    x: &[T],
    t: &[T],
    w: Option<&[T]>,
    out: &mut [T],
) -> Result<(), BceRange> {
    let (zero, one, floor) = (T::from_f64c(0.0), T::from_f64c(1.0), T::from_f64c(-100.0));
    let clamp = |v: T| if v < floor { floor } else { v };
    let k = elem_chunk(out.len());
    let run = |c: usize, o: &mut [T]| -> Result<(), BceRange> {
        let base = c * k;
        for (i, o) in o.iter_mut().enumerate() {
            let (xv, tv) = (x[base + i], t[base + i]);
            if !(xv >= zero && xv <= one) {
                return Err(BceRange::Input);
            }
            if !(tv >= zero && tv <= one) {
                return Err(BceRange::Target);
            }
            let l = tv
                .sub(one)
                .mul(clamp(xv.neg().ln_1p()))
                .sub(tv.mul(clamp(xv.ln())));
            *o = match w {
                Some(w) => l.mul(w[base + i]),
                None => l,
            };
        }
        Ok(())
    };
    out.par_chunks_mut(k)
        .enumerate()
        .try_for_each(|(c, o)| run(c, o))
}

/// The gradients of binary cross-entropy, in torch's order of operations: for the input
/// `g·(x − t) / max((1 − x)·x, 1e-12)`, for the target `−ln(x / (1 − x))·g`, each then times
/// `w` and divided by `div` (the element count, for a mean). `g` holds one value per element,
/// or a single value for a reduced loss.
#[allow(clippy::too_many_arguments)]
pub fn bce_bwd<T: FloatMath + PartialOrd + Send + Sync>(
    x: &[T],
    t: &[T],
    w: Option<&[T]>,
    g: &[T],
    div: Option<T>,
    gx: &mut [T],
    gt: Option<&mut [T]>,
) {
    let one = T::from_f64c(1.0);
    let eps = T::from_f64c(1e-12);
    let gi = |i: usize| if g.len() == 1 { g[0] } else { g[i] };
    let finish = |v: T, i: usize| {
        let v = match w {
            Some(w) => v.mul(w[i]),
            None => v,
        };
        match div {
            Some(d) => v.div(d),
            None => v,
        }
    };
    let k = elem_chunk(x.len());
    gx.par_chunks_mut(k).enumerate().for_each(|(c, o)| {
        for (j, o) in o.iter_mut().enumerate() {
            let i = c * k + j;
            let xv = x[i];
            let d = one.sub(xv).mul(xv);
            let d = if d < eps { eps } else { d };
            *o = finish(gi(i).mul(xv.sub(t[i])).div(d), i);
        }
    });
    if let Some(gt) = gt {
        gt.par_chunks_mut(k).enumerate().for_each(|(c, o)| {
            for (j, o) in o.iter_mut().enumerate() {
                let i = c * k + j;
                let xv = x[i];
                *o = finish(xv.div(one.sub(xv)).ln().neg().mul(gi(i)), i);
            }
        });
    }
}

// *** GELU ***

/// `g · gelu'(x)` in one pass, for the exact (erf) form or torch's tanh approximation.
pub fn gelu_bwd<T: Float + Send + Sync>(g: &[T], x: &[T], tanh: bool, out: &mut [T]) {
    use std::f64::consts::{FRAC_1_SQRT_2, PI};
    let beta = (2.0 / PI).sqrt();
    const KAPPA: f64 = 0.044715;
    out.par_chunks_mut(1 << 14).enumerate().for_each(|(c, o)| {
        let base = c << 14;
        for (i, o) in o.iter_mut().enumerate() {
            let (gv, xv) = (g[base + i].to_f64c(), x[base + i].to_f64c());
            let d = if tanh {
                // With s = (1 + tanh(u)) / 2 = 1 / (1 + e^(-2u)), 1 - tanh(u)^2 = 4 s (1 - s).
                let inner = beta * (xv + KAPPA * xv * xv * xv);
                let s = 1.0 / (1.0 + T::from_f64c(-2.0 * inner).exp_fast().to_f64c());
                s + 2.0 * xv * s * (1.0 - s) * beta * (1.0 + 3.0 * KAPPA * xv * xv)
            } else {
                let cdf = 0.5 * (1.0 + libm::erf(xv * FRAC_1_SQRT_2));
                let pdf = (-0.5 * xv * xv).exp() / (2.0 * PI).sqrt();
                cdf + xv * pdf
            };
            *o = T::from_f64c(gv * d);
        }
    });
}
