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
    if vmax.is_none() && !h.maximize && (h.decoupled || h.weight_decay == 0.0) && h.beta1 > 0.5 {
        // The common case (Adam without decay, AdamW) as one branch-free, vectorised loop.
        let k = AdamPlain {
            decay: if h.weight_decay != 0.0 { decay } else { c(1.0) },
            w1,
            beta2,
            one_m_beta2,
            bc2_sqrt,
            eps,
            step_size,
        };
        let chunk = adam_plain_fn::<T>();
        p.par_chunks_mut(CHUNK)
            .zip(g.par_chunks(CHUNK))
            .zip(m.par_chunks_mut(CHUNK))
            .zip(v.par_chunks_mut(CHUNK))
            .for_each(|(((p, g), m), v)| chunk(p, g, m, v, &k));
        return;
    }
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

/// The constants of [`adam_plain`].
pub struct AdamPlain<T> {
    decay: T,
    w1: T,
    beta2: T,
    one_m_beta2: T,
    bc2_sqrt: T,
    eps: T,
    step_size: T,
}

/// An Adam/AdamW step over one chunk when nothing is maximised, decay (if any) is decoupled
/// and `beta1 > 0.5`: the same operations in the same order as `adam_step`'s general loop
/// (with `p * 1` for no decay, which is `p`, and lerp's near-end branch fixed), without its
/// per-element branches, so the compiler vectorises it.
#[inline(always)]
fn adam_plain<T: Arith + Float>(p: &mut [T], g: &[T], m: &mut [T], v: &mut [T], k: &AdamPlain<T>) {
    let n = p.len();
    let (g, m, v) = (&g[..n], &mut m[..n], &mut v[..n]);
    for i in 0..n {
        let grad = g[i];
        let pd = p[i].mul(k.decay);
        let mi = m[i].add(k.w1.mul(grad.sub(m[i])));
        let vi = v[i].mul(k.beta2).add(k.one_m_beta2.mul(grad).mul(grad));
        let denom = vi.sqrt().div(k.bc2_sqrt).add(k.eps);
        p[i] = pd.add(k.step_size.mul(mi).div(denom));
        m[i] = mi;
        v[i] = vi;
    }
}

type AdamPlainFn<T> = fn(&mut [T], &[T], &mut [T], &mut [T], &AdamPlain<T>);

/// [`adam_plain`] compiled for AVX2 where the CPU has it (wider vectors, the same
/// arithmetic: no fused multiply-adds are formed).
fn adam_plain_fn<T: Arith + Float>() -> AdamPlainFn<T> {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") {
        #[target_feature(enable = "avx2")]
        unsafe fn wide<T: Arith + Float>(
            p: &mut [T],
            g: &[T],
            m: &mut [T],
            v: &mut [T],
            k: &AdamPlain<T>,
        ) {
            adam_plain(p, g, m, v, k)
        }
        // SAFETY: AVX2 was just detected.
        return |p, g, m, v, k| unsafe { wide(p, g, m, v, k) };
    }
    adam_plain
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The branch-free loop against the general one: amsgrad with a zero running maximum does
    /// the same arithmetic (`max(v, 0) = v`) through the general loop.
    #[test]
    fn the_plain_adam_loop_gives_the_general_loops_bits() {
        let n = 70_001;
        let vals = |seed: u32| -> Vec<f32> {
            (0..n)
                .map(|i| ((i as u32).wrapping_mul(2_654_435_761) ^ seed) as f32 / 4e9 - 0.5)
                .collect()
        };
        let g = vals(1);
        for (decoupled, weight_decay) in [(true, 0.1), (false, 0.0)] {
            let h = AdamHyper {
                lr: 4e-2,
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                weight_decay,
                maximize: false,
                decoupled,
                step: 3.0,
            };
            let (mut p1, mut m1, mut v1) = (vals(2), vals(3), vals(4));
            v1.iter_mut().for_each(|x| *x = x.abs());
            let (mut p2, mut m2, mut v2) = (p1.clone(), m1.clone(), v1.clone());
            let mut vmax = vec![0f32; n];
            adam_step(&mut p1, &g, &mut m1, &mut v1, None, h);
            adam_step(&mut p2, &g, &mut m2, &mut v2, Some(&mut vmax), h);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&p1), bits(&p2));
            assert_eq!(bits(&m1), bits(&m2));
            assert_eq!(bits(&v1), bits(&v2));
        }
    }
}
