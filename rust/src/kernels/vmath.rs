//! Branch-free f32 exponential that LLVM vectorises inside plain loops, for the fused kernels'
//! hot loops (softmax inside cross-entropy and attention, GELU). libm's `expf` is a call per
//! element; this is a few multiply-adds per lane, accurate to about one ulp.
//!
//! Method (Cody-Waite, as in Cephes): `exp(x) = 2^n · exp(r)` with `n = round(x / ln 2)` and
//! `r = x - n·ln 2` (ln 2 split in two so `r` stays exact), `exp(r)` by a degree-6 polynomial
//! on |r| ≤ ln 2 / 2, and `2^n` built from its exponent bits in two halves so that results
//! down to the subnormal range and up to overflow come out right.

/// `e^x` in f32: inf above 88.72, 0 below -103.97, NaN stays NaN.
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    const LOG2_E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let x = x.clamp(-104.0, 89.0);
    // Round to nearest by adding and removing 1.5·2^23 (plain SSE2 adds: `round` would be a
    // libm call on the baseline x86-64 target and stop the loop from vectorising).
    const ROUND: f32 = 12_582_912.0;
    let n = (x * LOG2_E + ROUND) - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4_f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    // n lies in [-150, 129]: 2^n = 2^h · 2^(n-h), each factor a normal float.
    let n = n as i32;
    let h = n / 2;
    let pow2 = |e: i32| f32::from_bits(((e + 127) as u32) << 23);
    y * pow2(h) * pow2(n - h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_libm_within_two_ulp() {
        let mut worst = 0u32;
        let mut x = -103.9f32;
        while x < 88.7 {
            let (ours, exact) = (exp_f32(x), (x as f64).exp() as f32);
            if exact.is_normal() {
                worst = worst.max(ours.to_bits().abs_diff(exact.to_bits()));
            } else {
                assert!(
                    (ours - exact).abs() <= f32::from_bits(2),
                    "{x}: {ours} vs {exact}"
                );
            }
            x += 0.000_731;
        }
        assert!(worst <= 2, "worst error {worst} ulp");
    }

    #[test]
    fn exp_edges() {
        assert_eq!(exp_f32(0.0), 1.0);
        assert_eq!(exp_f32(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_f32(f32::INFINITY), f32::INFINITY);
        assert_eq!(exp_f32(89.0), f32::INFINITY);
        assert!(exp_f32(f32::NAN).is_nan());
        assert!(exp_f32(88.72) < f32::INFINITY);
    }
}
