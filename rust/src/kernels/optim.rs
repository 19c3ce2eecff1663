//! Fused optimizer updates: one pass over each parameter's elements doing everything torch's
//! single-tensor Adam/AdamW/SGD do in several passes, with the same arithmetic in the same order
//! and precision, so the numbers match torch's.

use rayon::prelude::*;

use super::elementwise::{num_like::Float, Arith};

/// Elements per rayon task.
const CHUNK: usize = 1 << 15;

/// Hyper-parameters of one Adam/AdamW step for one parameter.
#[derive(Clone, Copy)]
pub struct AdamHyper {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    pub maximize: bool,
    /// AdamW: decay the parameter itself instead of adding `wd·p` to the gradient.
    pub decoupled: bool,
    /// The step number after this step's increment (1 for the first step).
    pub step: f64,
}

/// torch's lerp: interpolate from the nearer end for accuracy.
#[inline(always)]
fn lerp<T: Arith + Float>(a: T, b: T, w: T) -> T {
    let c = T::from_f64c;
    if Arith::abs(w) < c(0.5) {
        a.add(w.mul(b.sub(a)))
    } else {
        b.sub(b.sub(a).mul(c(1.0).sub(w)))
    }
}

/// One Adam/AdamW step over a parameter `p` with gradient `g`, first and second moments `m`, `v`
/// and, for amsgrad, the running maximum `vmax`. All slices have the same length.
pub fn adam_step<T: Arith + Float + Send + Sync>(
    p: &mut [T],
    g: &[T],
    m: &mut [T],
    v: &mut [T],
    vmax: Option<&mut [T]>,
    h: AdamHyper,
) {
    let c = T::from_f64c;
    let bias_correction1 = 1.0 - h.beta1.powf(h.step);
    let bias_correction2 = 1.0 - h.beta2.powf(h.step);
    let step_size = c(-(h.lr / bias_correction1));
    let bc2_sqrt = c(bias_correction2.sqrt());
    let (w1, beta2, one_m_beta2) = (c(1.0 - h.beta1), c(h.beta2), c(1.0 - h.beta2));
    let (eps, wd, decay) = (c(h.eps), c(h.weight_decay), c(1.0 - h.lr * h.weight_decay));
    let update = |p: &mut T, g: T, m: &mut T, v: &mut T, vmax: Option<&mut T>| {
        let mut grad = if h.maximize { g.neg() } else { g };
        if h.weight_decay != 0.0 {
            if h.decoupled {
                *p = p.mul(decay);
            } else {
                grad = grad.add(wd.mul(*p));
            }
        }
        *m = lerp(*m, grad, w1);
        *v = v.mul(beta2).add(one_m_beta2.mul(grad).mul(grad));
        let second = match vmax {
            Some(mx) => {
                if *v > *mx || v.is_nan_() {
                    *mx = *v;
                }
                *mx
            }
            None => *v,
        };
        let denom = second.sqrt().div(bc2_sqrt).add(eps);
        *p = p.add(step_size.mul(*m).div(denom));
    };
    match vmax {
        Some(vmax) => p
            .par_chunks_mut(CHUNK)
            .zip(g.par_chunks(CHUNK))
            .zip(m.par_chunks_mut(CHUNK))
            .zip(v.par_chunks_mut(CHUNK))
            .zip(vmax.par_chunks_mut(CHUNK))
            .for_each(|((((p, g), m), v), mx)| {
                for i in 0..p.len() {
                    update(&mut p[i], g[i], &mut m[i], &mut v[i], Some(&mut mx[i]));
                }
            }),
        None => p
            .par_chunks_mut(CHUNK)
            .zip(g.par_chunks(CHUNK))
            .zip(m.par_chunks_mut(CHUNK))
            .zip(v.par_chunks_mut(CHUNK))
            .for_each(|(((p, g), m), v)| {
                for i in 0..p.len() {
                    update(&mut p[i], g[i], &mut m[i], &mut v[i], None);
                }
            }),
    }
}

/// Hyper-parameters of one SGD step.
#[derive(Clone, Copy)]
pub struct SgdHyper {
    pub lr: f64,
    pub momentum: f64,
    pub dampening: f64,
    pub weight_decay: f64,
    pub nesterov: bool,
    pub maximize: bool,
}

/// One SGD step. `buf` is the momentum buffer (when momentum ≠ 0); `fresh` says it was just
/// created and must take the gradient as is (torch's first step).
pub fn sgd_step<T: Arith + Float + Send + Sync>(
    p: &mut [T],
    g: &[T],
    buf: Option<&mut [T]>,
    fresh: bool,
    h: SgdHyper,
) {
    let c = T::from_f64c;
    let (wd, mom, damp, neg_lr) = (
        c(h.weight_decay),
        c(h.momentum),
        c(1.0 - h.dampening),
        c(-h.lr),
    );
    let direction = |p: T, g: T| {
        let grad = if h.maximize { g.neg() } else { g };
        if h.weight_decay != 0.0 {
            grad.add(wd.mul(p))
        } else {
            grad
        }
    };
    match buf {
        Some(buf) => p
            .par_chunks_mut(CHUNK)
            .zip(g.par_chunks(CHUNK))
            .zip(buf.par_chunks_mut(CHUNK))
            .for_each(|((p, g), b)| {
                for i in 0..p.len() {
                    let grad = direction(p[i], g[i]);
                    b[i] = if fresh {
                        grad
                    } else {
                        b[i].mul(mom).add(damp.mul(grad))
                    };
                    let step = if h.nesterov {
                        grad.add(mom.mul(b[i]))
                    } else {
                        b[i]
                    };
                    p[i] = p[i].add(neg_lr.mul(step));
                }
            }),
        None => p
            .par_chunks_mut(CHUNK)
            .zip(g.par_chunks(CHUNK))
            .for_each(|(p, g)| {
                for i in 0..p.len() {
                    let grad = direction(p[i], g[i]);
                    p[i] = p[i].add(neg_lr.mul(grad));
                }
            }),
    }
}
