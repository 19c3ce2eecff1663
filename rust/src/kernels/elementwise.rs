//! Elementwise maps over one, two or three strided operands of the same shape, with a contiguous
//! fast path that splits the work over rayon above a size threshold.

use crate::dtype::Elem;
use crate::layout::Layout;
use crate::strided_index::{coalesce, for_each_row};
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// Below this many elements a single thread is faster than waking the pool.
pub const PAR_THRESHOLD: usize = 1 << 15;
/// Elements per rayon task above the threshold.
pub const PAR_CHUNK: usize = 1 << 13;

/// A new Vec of `n` elements written chunk by chunk on rayon's threads, without zero-filling
/// it first: `fill(start, chunk)` must write every slot of the chunk that begins at `start`.
fn par_build<O: Elem>(n: usize, fill: impl Fn(usize, &mut [MaybeUninit<O>]) + Sync) -> Vec<O> {
    let mut out: Vec<O> = Vec::with_capacity(n);
    out.spare_capacity_mut()[..n]
        .par_chunks_mut(PAR_CHUNK)
        .enumerate()
        .for_each(|(c, o)| fill(c * PAR_CHUNK, o));
    // SAFETY: the chunks cover the first n slots and `fill` wrote each of them.
    unsafe { out.set_len(n) };
    out
}

/// `o[i] = f(src[i])` for every slot of `o`.
#[inline(always)]
fn fill1<A: Elem, O: Elem>(o: &mut [MaybeUninit<O>], src: &[A], f: &impl Fn(A) -> O) {
    for (o, &x) in o.iter_mut().zip(src) {
        o.write(f(x));
    }
}

/// `o[i] = f(a[i], b[i])` for every slot of `o`.
#[inline(always)]
fn fill2<A: Elem, B: Elem, O: Elem>(
    o: &mut [MaybeUninit<O>],
    a: &[A],
    b: &[B],
    f: &impl Fn(A, B) -> O,
) {
    for ((o, &x), &y) in o.iter_mut().zip(a).zip(b) {
        o.write(f(x, y));
    }
}

/// The contiguous loops compiled for AVX2 (used where the CPU has it; the check is a cached
/// atomic load): the baseline x86-64 target has 128-bit vectors; these have 256-bit ones. The arithmetic is the same (Rust never fuses a multiply and an
/// add on its own), so both builds give the same bits.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::*;

    #[target_feature(enable = "avx2")]
    pub unsafe fn fill1<A: Elem, O: Elem>(
        o: &mut [MaybeUninit<O>],
        src: &[A],
        f: &impl Fn(A) -> O,
    ) {
        super::fill1(o, src, f)
    }

    #[target_feature(enable = "avx2")]
    pub unsafe fn fill2<A: Elem, B: Elem, O: Elem>(
        o: &mut [MaybeUninit<O>],
        a: &[A],
        b: &[B],
        f: &impl Fn(A, B) -> O,
    ) {
        super::fill2(o, a, b, f)
    }
}

pub fn map1<A: Elem, O: Elem>(a: (&[A], &Layout), f: impl Fn(A) -> O + Sync) -> Vec<O> {
    let (da, la) = a;
    if let Some((s, e)) = la.contiguous_offsets() {
        let src = &da[s..e];
        let fill = |o: &mut [MaybeUninit<O>], src: &[A]| {
            #[cfg(target_arch = "x86_64")]
            if is_x86_feature_detected!("avx2") {
                // SAFETY: AVX2 was detected on this CPU.
                return unsafe { avx2::fill1(o, src, &f) };
            }
            fill1(o, src, &f)
        };
        if src.len() >= PAR_THRESHOLD {
            return par_build(src.len(), |start, o| fill(o, &src[start..]));
        }
        let mut out = Vec::with_capacity(src.len());
        fill(&mut out.spare_capacity_mut()[..src.len()], src);
        // SAFETY: fill wrote every one of the first src.len() slots.
        unsafe { out.set_len(src.len()) };
        return out;
    }
    let mut out = Vec::with_capacity(la.elem_count());
    let (shape, [l]) = coalesce(la.shape(), [la]);
    for_each_row(&shape, [&l], |[o], [s], n| {
        out.extend((0..n).map(|i| f(da[o + i * s])));
    });
    out
}

pub fn map2<A: Elem, B: Elem, O: Elem>(
    a: (&[A], &Layout),
    b: (&[B], &Layout),
    f: impl Fn(A, B) -> O + Sync,
) -> Vec<O> {
    let ((da, la), (db, lb)) = (a, b);
    debug_assert_eq!(la.shape(), lb.shape());
    let n = la.elem_count();
    if let (Some((sa, ea)), Some((sb, eb))) = (la.contiguous_offsets(), lb.contiguous_offsets()) {
        let (xa, xb) = (&da[sa..ea], &db[sb..eb]);
        let fill = |o: &mut [MaybeUninit<O>], xa: &[A], xb: &[B]| {
            #[cfg(target_arch = "x86_64")]
            if is_x86_feature_detected!("avx2") {
                // SAFETY: AVX2 was detected on this CPU.
                return unsafe { avx2::fill2(o, xa, xb, &f) };
            }
            fill2(o, xa, xb, &f)
        };
        if n >= PAR_THRESHOLD {
            return par_build(n, |start, o| fill(o, &xa[start..], &xb[start..]));
        }
        let mut out = Vec::with_capacity(n);
        fill(&mut out.spare_capacity_mut()[..n], xa, xb);
        // SAFETY: fill wrote every one of the first n slots.
        unsafe { out.set_len(n) };
        return out;
    }
    let mut out = vec![O::default(); n];
    let (shape, [la, lb]) = coalesce(la.shape(), [la, lb]);
    let rows = |out: &mut [O], la: &Layout, lb: &Layout, shape: &[usize]| {
        let mut pos = 0;
        for_each_row(shape, [la, lb], |[oa, ob], [sa, sb], n| {
            let dst = &mut out[pos..pos + n];
            match (sa, sb) {
                (1, 1) => dst
                    .iter_mut()
                    .zip(&da[oa..oa + n])
                    .zip(&db[ob..ob + n])
                    .for_each(|((o, &x), &y)| *o = f(x, y)),
                (1, 0) => {
                    let y = db[ob];
                    dst.iter_mut()
                        .zip(&da[oa..oa + n])
                        .for_each(|(o, &x)| *o = f(x, y));
                }
                (0, 1) => {
                    let x = da[oa];
                    dst.iter_mut()
                        .zip(&db[ob..ob + n])
                        .for_each(|(o, &y)| *o = f(x, y));
                }
                _ => {
                    for (i, o) in dst.iter_mut().enumerate() {
                        *o = f(da[oa + i * sa], db[ob + i * sb]);
                    }
                }
            }
            pos += n;
        });
    };
    // Split big broadcast ops over the outermost dim.
    if n >= PAR_THRESHOLD && shape.len() > 1 && shape[0] > 1 {
        let inner: usize = shape[1..].iter().product();
        out.par_chunks_mut(inner)
            .enumerate()
            .for_each(|(i, chunk)| {
                let sub = |l: &Layout| {
                    Layout::new(
                        shape[1..].to_vec(),
                        l.stride()[1..].to_vec(),
                        l.offset() + i * l.stride()[0],
                    )
                };
                rows(chunk, &sub(&la), &sub(&lb), &shape[1..]);
            });
    } else {
        rows(&mut out, &la, &lb, &shape);
    }
    out
}

pub fn map3<A: Elem, B: Elem, C: Elem, O: Elem>(
    a: (&[A], &Layout),
    b: (&[B], &Layout),
    c: (&[C], &Layout),
    f: impl Fn(A, B, C) -> O,
) -> Vec<O> {
    let mut out = Vec::with_capacity(a.1.elem_count());
    let (shape, [la, lb, lc]) = coalesce(a.1.shape(), [a.1, b.1, c.1]);
    for_each_row(&shape, [&la, &lb, &lc], |[oa, ob, oc], [sa, sb, sc], n| {
        out.extend((0..n).map(|i| f(a.0[oa + i * sa], b.0[ob + i * sb], c.0[oc + i * sc])));
    });
    out
}

/// Arithmetic with torch's semantics per element type.
pub trait Arith: Elem {
    fn add(self, o: Self) -> Self;
    fn sub(self, o: Self) -> Self;
    fn mul(self, o: Self) -> Self;
    fn div(self, o: Self) -> Self;
    /// Python's floor division.
    fn floor_div(self, o: Self) -> Self;
    /// Python's modulo: the result takes the sign of the divisor.
    fn rem(self, o: Self) -> Self;
    fn pow(self, o: Self) -> Self;
    /// NaN-propagating max/min (torch.maximum / torch.minimum).
    fn maximum(self, o: Self) -> Self;
    fn minimum(self, o: Self) -> Self;
    fn neg(self) -> Self;
    fn abs(self) -> Self;
    fn sign(self) -> Self;
}

macro_rules! float_arith {
    ($t:ty) => {
        impl Arith for $t {
            #[inline(always)]
            fn add(self, o: Self) -> Self {
                self + o
            }
            #[inline(always)]
            fn sub(self, o: Self) -> Self {
                self - o
            }
            #[inline(always)]
            fn mul(self, o: Self) -> Self {
                self * o
            }
            #[inline(always)]
            fn div(self, o: Self) -> Self {
                self / o
            }
            fn floor_div(self, o: Self) -> Self {
                if o == 0.0 {
                    return self / o;
                }
                // Like torch's div_floor: floor of the quotient computed from fmod so that the
                // result is consistent with `rem`.
                let m = self % o;
                let mut div = (self - m) / o;
                if m != 0.0 && ((o < 0.0) != (m < 0.0)) {
                    div -= 1.0;
                }
                if div == 0.0 {
                    return (0.0 as $t).copysign(self / o);
                }
                let floor = div.floor();
                if div - floor > 0.5 {
                    floor + 1.0
                } else {
                    floor
                }
            }
            fn rem(self, o: Self) -> Self {
                let mut m = self % o;
                if m != 0.0 && ((o < 0.0) != (m < 0.0)) {
                    m += o;
                }
                m
            }
            fn pow(self, o: Self) -> Self {
                self.powf(o)
            }
            #[inline(always)]
            fn maximum(self, o: Self) -> Self {
                if self.is_nan() || o.is_nan() {
                    <$t>::NAN
                } else if self > o {
                    self
                } else {
                    o
                }
            }
            #[inline(always)]
            fn minimum(self, o: Self) -> Self {
                if self.is_nan() || o.is_nan() {
                    <$t>::NAN
                } else if self < o {
                    self
                } else {
                    o
                }
            }
            #[inline(always)]
            fn neg(self) -> Self {
                -self
            }
            #[inline(always)]
            fn abs(self) -> Self {
                self.abs()
            }
            fn sign(self) -> Self {
                if self > 0.0 {
                    1.0
                } else if self < 0.0 {
                    -1.0
                } else if self == 0.0 {
                    // 0 keeps its sign.
                    self
                } else {
                    // torch maps NaN to 0.
                    0.0
                }
            }
        }
    };
}
float_arith!(f32);
float_arith!(f64);

macro_rules! int_arith {
    ($t:ty) => {
        impl Arith for $t {
            #[inline(always)]
            fn add(self, o: Self) -> Self {
                self.wrapping_add(o)
            }
            #[inline(always)]
            fn sub(self, o: Self) -> Self {
                self.wrapping_sub(o)
            }
            #[inline(always)]
            fn mul(self, o: Self) -> Self {
                self.wrapping_mul(o)
            }
            fn div(self, o: Self) -> Self {
                // Only reached for truncating division; callers check for zero first.
                self.wrapping_div(o)
            }
            #[allow(unused_comparisons)]
            fn floor_div(self, o: Self) -> Self {
                let q = self.wrapping_div(o);
                if (self % o != 0) && ((self < 0) != (o < 0)) {
                    q - 1
                } else {
                    q
                }
            }
            #[allow(unused_comparisons)]
            fn rem(self, o: Self) -> Self {
                let m = self.wrapping_rem(o);
                if m != 0 && ((o < 0) != (m < 0)) {
                    m.wrapping_add(o)
                } else {
                    m
                }
            }
            #[allow(unused_comparisons)]
            fn pow(self, o: Self) -> Self {
                if o < 0 {
                    // torch: integral base to a negative power gives 0 unless the base is +-1.
                    return match self as i64 {
                        1 => 1 as $t,
                        -1 => {
                            if (o as i64) % 2 == 0 {
                                1 as $t
                            } else {
                                self
                            }
                        }
                        _ => 0 as $t,
                    };
                }
                self.wrapping_pow(o as u32)
            }
            #[inline(always)]
            fn maximum(self, o: Self) -> Self {
                self.max(o)
            }
            #[inline(always)]
            fn minimum(self, o: Self) -> Self {
                self.min(o)
            }
            #[inline(always)]
            fn neg(self) -> Self {
                (0 as $t).wrapping_sub(self)
            }
            #[allow(unused_comparisons)]
            fn abs(self) -> Self {
                if self < 0 {
                    self.neg()
                } else {
                    self
                }
            }
            #[allow(unused_comparisons)]
            fn sign(self) -> Self {
                if self > 0 {
                    1
                } else if self < 0 {
                    (0 as $t).wrapping_sub(1)
                } else {
                    0
                }
            }
        }
    };
}
int_arith!(i64);
int_arith!(i32);
int_arith!(u8);

/// Float math for the unary ops (f32 and f64; half types compute through f32).
pub trait FloatMath: Arith + num_like::Float {}
impl FloatMath for f32 {}
impl FloatMath for f64 {}

pub mod num_like {
    /// The transcendental functions kernels need, implemented by f32 and f64.
    pub trait Float: Copy {
        fn exp(self) -> Self;
        fn ln(self) -> Self;
        fn ln_1p(self) -> Self;
        fn sqrt(self) -> Self;
        fn sin(self) -> Self;
        fn cos(self) -> Self;
        fn tanh(self) -> Self;
        fn erf(self) -> Self;
        fn floor(self) -> Self;
        fn ceil(self) -> Self;
        fn round_even(self) -> Self;
        fn trunc(self) -> Self;
        fn from_f64c(v: f64) -> Self;
        fn to_f64c(self) -> f64;
        fn is_nan_(self) -> bool;
        /// `exp` for the fused kernels' inner loops: a vectorisable polynomial in f32
        /// (about one ulp), libm in f64.
        fn exp_fast(self) -> Self;
    }
    macro_rules! impl_float {
        ($t:ty, $erf:path, $exp_fast:path) => {
            impl Float for $t {
                #[inline(always)]
                fn exp_fast(self) -> Self {
                    $exp_fast(self)
                }
                #[inline(always)]
                fn exp(self) -> Self {
                    <$t>::exp(self)
                }
                #[inline(always)]
                fn ln(self) -> Self {
                    <$t>::ln(self)
                }
                #[inline(always)]
                fn ln_1p(self) -> Self {
                    <$t>::ln_1p(self)
                }
                #[inline(always)]
                fn sqrt(self) -> Self {
                    <$t>::sqrt(self)
                }
                #[inline(always)]
                fn sin(self) -> Self {
                    <$t>::sin(self)
                }
                #[inline(always)]
                fn cos(self) -> Self {
                    <$t>::cos(self)
                }
                #[inline(always)]
                fn tanh(self) -> Self {
                    <$t>::tanh(self)
                }
                #[inline(always)]
                fn erf(self) -> Self {
                    $erf(self)
                }
                #[inline(always)]
                fn floor(self) -> Self {
                    <$t>::floor(self)
                }
                #[inline(always)]
                fn ceil(self) -> Self {
                    <$t>::ceil(self)
                }
                #[inline(always)]
                fn round_even(self) -> Self {
                    <$t>::round_ties_even(self)
                }
                #[inline(always)]
                fn trunc(self) -> Self {
                    <$t>::trunc(self)
                }
                #[inline(always)]
                fn from_f64c(v: f64) -> Self {
                    v as $t
                }
                #[inline(always)]
                fn to_f64c(self) -> f64 {
                    self as f64
                }
                #[inline(always)]
                fn is_nan_(self) -> bool {
                    self.is_nan()
                }
            }
        };
    }
    impl_float!(f32, libm::erff, crate::kernels::vmath::exp_f32);
    impl_float!(f64, libm::erf, f64::exp);
}

/// The inverse error function as torch computes it: a rational first guess (central and tail
/// branches) polished by two Newton steps on erf(x) - y.
pub fn erfinv<T: Arith + num_like::Float>(y: T) -> T {
    let c = |v: f64| T::from_f64c(v);
    const A: [f64; 4] = [0.886226899, -1.645349621, 0.914624893, -0.140543331];
    const B: [f64; 4] = [-2.118377725, 1.442710462, -0.329097515, 0.012229801];
    const C: [f64; 4] = [-1.970840454, -1.624906493, 3.429567803, 1.641345311];
    const D: [f64; 2] = [3.543889200, 1.637067800];
    let y_abs = Arith::abs(y);
    if y_abs > c(1.0) || y.is_nan_() {
        return c(f64::NAN);
    }
    if y_abs == c(1.0) {
        return if y > c(0.0) {
            c(f64::INFINITY)
        } else {
            c(f64::NEG_INFINITY)
        };
    }
    let mut x = if y_abs <= c(0.7) {
        let z = y.mul(y);
        let num = c(A[3])
            .mul(z)
            .add(c(A[2]))
            .mul(z)
            .add(c(A[1]))
            .mul(z)
            .add(c(A[0]));
        let dem = c(B[3])
            .mul(z)
            .add(c(B[2]))
            .mul(z)
            .add(c(B[1]))
            .mul(z)
            .add(c(B[0]))
            .mul(z)
            .add(c(1.0));
        y.mul(num).div(dem)
    } else {
        let z = c(1.0).sub(y_abs).div(c(2.0)).ln().neg().sqrt();
        let num = c(C[3])
            .mul(z)
            .add(c(C[2]))
            .mul(z)
            .add(c(C[1]))
            .mul(z)
            .add(c(C[0]));
        let dem = c(D[1]).mul(z).add(c(D[0])).mul(z).add(c(1.0));
        let signed = if y < c(0.0) { num.neg() } else { num };
        signed.div(dem)
    };
    let k = c(2.0 / std::f64::consts::PI.sqrt());
    for _ in 0..2 {
        x = x.sub(x.erf().sub(y).div(k.mul(x.mul(x).neg().exp())));
    }
    x
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;
    use crate::kernels::vmath::exp_f32;

    #[test]
    fn the_avx2_loops_give_the_baseline_bits() {
        if !is_x86_feature_detected!("avx2") {
            return;
        }
        // Values across exp's range (and its clamps), with tanh-GELU's arithmetic and a
        // two-operand mix of division, square root and products.
        let xs: Vec<f32> = (0..10_007).map(|i| (i as f32 - 5000.0) * 0.0213).collect();
        let ys: Vec<f32> = xs.iter().map(|x| x * 0.7 + 1.3).collect();
        let gelu = |a: f32| a / (1.0 + exp_f32(-1.595_769 * (a + 0.044_715 * a * a * a)));
        let mix = |a: f32, b: f32| (a * b + a / b) * b.abs().sqrt() - a;
        let n = xs.len();
        let (mut base, mut wide) = (Vec::with_capacity(n), Vec::with_capacity(n));
        fill1(&mut base.spare_capacity_mut()[..n], &xs, &gelu);
        // SAFETY: AVX2 was detected above.
        unsafe { avx2::fill1(&mut wide.spare_capacity_mut()[..n], &xs, &gelu) };
        // SAFETY: both fills wrote all n slots.
        unsafe { (base.set_len(n), wide.set_len(n)) };
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&base), bits(&wide));
        let (mut base, mut wide) = (Vec::with_capacity(n), Vec::with_capacity(n));
        fill2(&mut base.spare_capacity_mut()[..n], &xs, &ys, &mix);
        // SAFETY: as above.
        unsafe { avx2::fill2(&mut wide.spare_capacity_mut()[..n], &xs, &ys, &mix) };
        // SAFETY: as above.
        unsafe { (base.set_len(n), wide.set_len(n)) };
        assert_eq!(bits(&base), bits(&wide));
    }
}
