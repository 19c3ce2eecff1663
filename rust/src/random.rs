//! Bit-exact re-implementation of PyTorch's CPU random number generation.
//!
//! The target is the behaviour of the PyPI x86-64 build of torch 2.15.
//! Every sampler below consumes the underlying Mersenne Twister in exactly the
//! same order as torch's CPU kernels and performs the same floating point
//! operations (including where the torch build fuses a multiply and an add
//! into a single FMA), so that after `manual_seed(s)` the values produced here
//! are identical, bit for bit, to the values torch produces.  By default the
//! AVX2 kernels are reproduced (what torch runs on any AVX2/AVX-512 CPU);
//! [`CpuCapability::Default`] reproduces torch's generic kernels instead.
//! Wherever this text says `fma(a, b, c)` the generic build computes
//! `a * b + c` with two roundings.  On a CPU with AVX2 and FMA the float32 normal
//! transform runs eight lanes at a time in AVX2, as torch's does, and the fused
//! steps are FMA instructions; elsewhere the same operations run lane by lane
//! (with libm's `fma`), giving the same bits.  Float64 normals and the scalar normal path
//! call the C library's `log`, `log1p`, `sin` and `cos`, exactly like torch,
//! so they match torch running against the same libm (glibc here).
//!
//! # Engine
//!
//! The engine is the classic 32-bit MT19937 (624 words of state), seeded with
//! the low 32 bits of the 64-bit seed through the standard `init_genrand`
//! recurrence.  The full 64-bit seed is remembered for [`Generator::initial_seed`].
//! Two raw draws are exposed:
//!
//! * `random_u32`: one tempered MT output.
//! * `random_u64`: two consecutive outputs, the *first* one forming the high
//!   32 bits and the second one the low 32 bits.
//!
//! # Conversion rules (how raw draws become numbers)
//!
//! * **float32 uniform** – one 32-bit draw; its low 24 bits are converted to
//!   `f32` and scaled by 2^-24, giving a value in `[0, 1)`.  The bounds are
//!   rounded to `f32` first, the span `to - from` is computed in `f32`, and the
//!   result is `fma(x, to - from, from)` evaluated in `f32` (single rounding).
//!   Should that rounding land exactly on `to`, `from` is returned instead.
//! * **float64 uniform** – one 64-bit draw; its low 53 bits scaled by 2^-53,
//!   then `fma(x, to - from, from)` in `f64`, with the same `to -> from` rule.
//! * **normal, fewer than 16 elements** (torch also takes this path for
//!   non-contiguous tensors) – a scalar Box–Muller in `f64` for both
//!   dtypes: `u1`, `u2` are 53-bit uniforms (drawn in that order),
//!   `r = sqrt(-2 * log1p(-u2))`, `theta = 2*pi*u1`.  The value returned is
//!   `fma(r*cos(theta), std, mean)` and `r*sin(theta)` is cached in the
//!   generator; the *next* scalar normal request consumes the cached value
//!   (as `fma(cached, std, mean)`, with that call's `mean`/`std`) without
//!   touching the engine.  Results are rounded to the output dtype at the end.
//! * **normal, 16 elements or more** – first every output slot is filled with a
//!   uniform of the output's precision (24-bit for `f32`, 53-bit for `f64`);
//!   then each full block of 16 is transformed in place: for `j < 8`,
//!   `u1 = 1 - d[j]`, `u2 = d[j+8]`, `r = sqrt(-2*ln(u1))`, `theta = 2*pi*u2`,
//!   `d[j] = fma(r*cos(theta), std, mean)`, `d[j+8] = fma(r*sin(theta), std, mean)`
//!   (these two are fused in every build).
//!   When the length is not a multiple of 16, 16 *fresh* uniforms are drawn
//!   into the last 16 slots and that block is transformed again (overwriting
//!   values already produced).  `f64` uses libm `log`/`sin`/`cos`;
//!   `f32` (AVX2 build) reproduces torch's polynomial approximations
//!   (Cephes-style `log` and `sincos`) lane by lane, including the FMAs the
//!   compiler emitted; the generic build uses `f32` libm functions with
//!   `theta` computed in `f64` and rounded to `f32`.
//!   The cache used by the scalar path is neither read nor written here.
//! * **randint(low, high)** – `range = high - low`; if `range >= 2^28` a 64-bit
//!   draw is used, otherwise a 32-bit draw; the value is `low + draw % range`.
//! * **randperm(n)** – for `n < 214748364` (= `u32::MAX / 20`): start from the
//!   identity and for `i` in `0..n-1` swap slot `i` with slot
//!   `i + random_u32() % (n - i)`.  For larger `n` an "inside-out" shuffle with
//!   64-bit draws: for `i` in `0..n`, `z = random_u64() % (i + 1)`,
//!   `p[i] = p[z]`, `p[z] = i`.
//! * **bernoulli_(p) with scalar `p`** – one 53-bit uniform per element,
//!   result `u < p` (in `f64`) for every dtype.  (torch 2.15 no longer uses an
//!   MKL stream for this; the default kernel is used on every CPU vendor.)
//! * **bernoulli with a tensor of probabilities** – `f64` probabilities: 53-bit
//!   uniform compared in `f64`; `f32` probabilities: 24-bit uniform compared in
//!   `f32`.
//! * **exponential(lambda)** – 53-bit uniform `u`, value `(-1/lambda) * log1p(-u)`
//!   in `f64`, rounded to the output dtype.
//! * **multinomial** – without replacement, or with exactly one sample:
//!   `q ~ Exp(1)` for every element (row-major, in the input dtype),
//!   `q = p / q` in the input dtype, then `argmax` (one sample) or a sorted
//!   `topk` (largest first) per row.  Ties in `topk` are resolved exactly like
//!   torch, whose CPU topk runs libstdc++'s `partial_sort` / `nth_element` +
//!   `sort`; those algorithms are re-implemented here with the same
//!   comparison order.  With replacement and more than one sample: per row
//!   an inclusive cumulative sum in the input dtype, divided by the total,
//!   last bucket forced to 1, then per sample a 53-bit uniform and a lower-bound
//!   binary search (`cum < u` moves right).

use std::sync::{Mutex, OnceLock};

/// torch's `default_rng_seed_val`.
pub const DEFAULT_SEED: u64 = 67_280_421_310_721;

/// Size in bytes of torch's serialized CPU generator state
/// (`torch.get_rng_state()`).
pub const STATE_SIZE: usize = 5056;

const MT_N: usize = 624;
const MT_M: usize = 397;
const MATRIX_A: u32 = 0x9908_b0df;
const UPPER_MASK: u32 = 0x8000_0000;
const LOWER_MASK: u32 = 0x7fff_ffff;

/// `n` at and above which `randperm` switches to 64-bit draws
/// (torch compares against `u32::MAX / 20`).
const RANDPERM_64BIT_THRESHOLD: usize = (u32::MAX / 20) as usize;

/// Ranges at and above this use a 64-bit draw in `randint`.
const RANDINT_64BIT_RANGE: u64 = 1 << 28;

/// Largest number of categories multinomial accepts (2^24).
const MULTINOMIAL_MAX_CATEGORIES: usize = 1 << 24;

// Byte offsets of torch's `CPUGeneratorImplState` (x86-64 layout).
const OFF_SEED: usize = 0;
const OFF_LEFT: usize = 8;
const OFF_SEEDED: usize = 12;
const OFF_NEXT: usize = 16;
const OFF_STATE: usize = 24;
const OFF_NORMAL_Y: usize = OFF_STATE + 8 * MT_N + 8; // after normal_x
const OFF_NORMAL_VALID: usize = OFF_NORMAL_Y + 16; // after normal_rho
const OFF_FLOAT_NORMAL: usize = OFF_NORMAL_VALID + 8; // int + 4 bytes padding
const OFF_FLOAT_NORMAL_VALID: usize = OFF_FLOAT_NORMAL + 4;

/// 2*pi as the `f64` constant torch uses in both Box–Muller variants.
const TWO_PI_F64: f64 = 2.0 * std::f64::consts::PI;

/// Which of torch's x86-64 kernel builds to reproduce.
///
/// torch compiles its distribution kernels several times and picks one at
/// start-up (`torch.backends.cpu.get_cpu_capability()`).  The builds differ
/// in floating point details only:
///
/// * `Avx2` (the default here; what x86-64 torch runs on any AVX2 or AVX-512
///   CPU): `a * b + c` in the uniform and scalar-normal transforms is fused
///   into one FMA, and the float32 normal block kernel uses 8-lane polynomial
///   `log`/`sincos`.
/// * `Default` (`ATEN_CPU_CAPABILITY=default`, CPUs without AVX2): those
///   multiply-adds are rounded twice, and the float32 normal block kernel
///   uses libm `logf`/`sinf`/`cosf`.
///
/// Everything else (engine, integer samplers, bernoulli, exponential,
/// multinomial, float64 normal blocks) is identical in both.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum CpuCapability {
    /// torch's AVX2 kernels.
    #[default]
    Avx2,
    /// torch's generic (`DEFAULT`) kernels.
    Default,
}

/// A PyTorch-compatible CPU random number generator (MT19937 plus the cached
/// Box–Muller sample torch keeps next to it).
#[derive(Clone)]
pub struct Generator {
    state: [u32; MT_N],
    /// Countdown until the next twist; kept exactly like torch so the
    /// serialized state matches.
    left: i32,
    /// Index of the next state word to temper.
    next: u32,
    seeded: bool,
    seed: u64,
    next_double_normal: Option<f64>,
    next_float_normal: Option<f32>,
    capability: CpuCapability,
}

impl std::fmt::Debug for Generator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Generator")
            .field("seed", &self.seed)
            .field("left", &self.left)
            .field("next", &self.next)
            .field("next_double_normal", &self.next_double_normal)
            .field("next_float_normal", &self.next_float_normal)
            .finish_non_exhaustive()
    }
}

impl Default for Generator {
    fn default() -> Self {
        Self::new(DEFAULT_SEED)
    }
}

impl Generator {
    /// A generator seeded like `torch.Generator().manual_seed(seed)`.
    pub fn new(seed: u64) -> Self {
        let mut g = Generator {
            state: [0; MT_N],
            left: 1,
            next: 0,
            seeded: false,
            seed: 0,
            next_double_normal: None,
            next_float_normal: None,
            capability: CpuCapability::Avx2,
        };
        g.manual_seed(seed);
        g
    }

    /// A generator seeded non-deterministically (what torch does for its own
    /// default generator at start-up).
    pub fn new_nondeterministic() -> Self {
        Self::new(nondeterministic_seed())
    }

    /// Selects which torch kernel build to reproduce (see [`CpuCapability`]).
    /// Not part of the serialized state.
    pub fn set_cpu_capability(&mut self, capability: CpuCapability) {
        self.capability = capability;
    }

    /// The kernel build being reproduced.
    pub fn cpu_capability(&self) -> CpuCapability {
        self.capability
    }

    /// Re-seeds the engine and forgets any cached normal sample.
    pub fn manual_seed(&mut self, seed: u64) {
        self.seed = seed;
        self.seeded = true;
        self.state[0] = seed as u32;
        for j in 1..MT_N {
            let prev = self.state[j - 1];
            self.state[j] = 1_812_433_253u32
                .wrapping_mul(prev ^ (prev >> 30))
                .wrapping_add(j as u32);
        }
        self.left = 1;
        self.next = 0;
        self.next_double_normal = None;
        self.next_float_normal = None;
    }

    /// The seed last given to [`Generator::manual_seed`] (or [`Generator::seed`]).
    pub fn initial_seed(&self) -> u64 {
        self.seed
    }

    /// Re-seeds from a non-deterministic source (`/dev/urandom`, falling back
    /// to the clock) and returns the seed used.
    pub fn seed(&mut self) -> u64 {
        let s = nondeterministic_seed();
        self.manual_seed(s);
        s
    }

    /// Serializes the generator in torch's 5056-byte `CPUGeneratorImplState`
    /// layout (so the bytes equal `torch.get_rng_state()` for the same state).
    pub fn get_state(&self) -> Vec<u8> {
        let mut out = vec![0u8; STATE_SIZE];
        out[OFF_SEED..OFF_SEED + 8].copy_from_slice(&self.seed.to_le_bytes());
        out[OFF_LEFT..OFF_LEFT + 4].copy_from_slice(&self.left.to_le_bytes());
        out[OFF_SEEDED..OFF_SEEDED + 4].copy_from_slice(&i32::from(self.seeded).to_le_bytes());
        out[OFF_NEXT..OFF_NEXT + 8].copy_from_slice(&u64::from(self.next).to_le_bytes());
        for (i, w) in self.state.iter().enumerate() {
            let o = OFF_STATE + 8 * i;
            out[o..o + 8].copy_from_slice(&u64::from(*w).to_le_bytes());
        }
        if let Some(v) = self.next_double_normal {
            out[OFF_NORMAL_Y..OFF_NORMAL_Y + 8].copy_from_slice(&v.to_le_bytes());
            out[OFF_NORMAL_VALID..OFF_NORMAL_VALID + 4].copy_from_slice(&1i32.to_le_bytes());
        }
        if let Some(v) = self.next_float_normal {
            out[OFF_FLOAT_NORMAL..OFF_FLOAT_NORMAL + 4].copy_from_slice(&v.to_le_bytes());
            out[OFF_FLOAT_NORMAL_VALID] = 1;
        }
        out
    }

    /// Restores a state produced by [`Generator::get_state`] or by
    /// `torch.get_rng_state()`.  On error the generator is left unchanged.
    pub fn set_state(&mut self, state: &[u8]) -> Result<(), String> {
        if state.len() != STATE_SIZE {
            return Err(format!(
                "Expected a CPUGeneratorImplState of size {} but found the input RNG state size to be {}",
                STATE_SIZE,
                state.len()
            ));
        }
        let u64_at = |o: usize| u64::from_le_bytes(state[o..o + 8].try_into().unwrap());
        let i32_at = |o: usize| i32::from_le_bytes(state[o..o + 4].try_into().unwrap());
        let left = i32_at(OFF_LEFT);
        let seeded = i32_at(OFF_SEEDED) != 0;
        // torch narrows the stored 64-bit values to 32 bits.
        let next = u64_at(OFF_NEXT) as u32;
        if !(seeded && left > 0 && left <= MT_N as i32 && next <= MT_N as u32) {
            return Err("Invalid mt19937 state".to_string());
        }
        for (i, w) in self.state.iter_mut().enumerate() {
            *w = u64_at(OFF_STATE + 8 * i) as u32;
        }
        self.seed = u64_at(OFF_SEED);
        self.left = left;
        self.seeded = seeded;
        self.next = next;
        self.next_double_normal = if i32_at(OFF_NORMAL_VALID) != 0 {
            Some(f64::from_bits(u64_at(OFF_NORMAL_Y)))
        } else {
            None
        };
        self.next_float_normal = if state[OFF_FLOAT_NORMAL_VALID] != 0 {
            let b: [u8; 4] = state[OFF_FLOAT_NORMAL..OFF_FLOAT_NORMAL + 4]
                .try_into()
                .unwrap();
            Some(f32::from_le_bytes(b))
        } else {
            None
        };
        Ok(())
    }

    #[inline(never)]
    fn twist(&mut self) {
        self.twist_inline()
    }

    #[inline(always)]
    fn twist_inline(&mut self) {
        let mix = |u: u32, v: u32| -> u32 {
            let y = (u & UPPER_MASK) | (v & LOWER_MASK);
            (y >> 1) ^ if v & 1 != 0 { MATRIX_A } else { 0 }
        };
        let s = &mut self.state;
        // Word k mixes words k and k + 1 with word k + M (indices mod N), in three runs
        // that need no modulo: k + M in range, k + M wrapped, and the last word.
        for k in 0..MT_N - MT_M {
            s[k] = s[k + MT_M] ^ mix(s[k], s[k + 1]);
        }
        for k in MT_N - MT_M..MT_N - 1 {
            s[k] = s[k + MT_M - MT_N] ^ mix(s[k], s[k + 1]);
        }
        s[MT_N - 1] = s[MT_M - 1] ^ mix(s[MT_N - 1], s[0]);
        self.left = MT_N as i32;
        self.next = 0;
    }

    /// One 32-bit engine output (torch's `CPUGeneratorImpl::random`).
    #[inline(always)]
    pub fn random_u32(&mut self) -> u32 {
        self.left -= 1;
        if self.left == 0 {
            self.twist();
        }
        let y = self.state[self.next as usize];
        self.next += 1;
        temper(y)
    }

    /// The next `out.len()` engine outputs, in order: what as many calls of
    /// [`Generator::random_u32`] return, tempered a block of state at a time.
    #[inline(always)]
    fn fill_u32(&mut self, out: &mut [u32]) {
        let mut done = 0;
        while done < out.len() {
            if self.left == 1 {
                // The call that twists: it reads word 0 of the new state, `left` stays full.
                self.twist_inline();
                out[done] = temper(self.state[0]);
                self.next = 1;
                done += 1;
                continue;
            }
            // Calls that do not twist: each takes the next word and counts `left` down.
            let take = (self.left as usize - 1).min(out.len() - done);
            let from = self.next as usize;
            for (o, &w) in out[done..done + take]
                .iter_mut()
                .zip(&self.state[from..from + take])
            {
                *o = temper(w);
            }
            self.next += take as u32;
            self.left -= take as i32;
            done += take;
        }
    }

    /// Two 32-bit outputs, first one in the high half (torch's `random64`).
    #[inline(always)]
    pub fn random_u64(&mut self) -> u64 {
        let hi = self.random_u32();
        let lo = self.random_u32();
        (u64::from(hi) << 32) | u64::from(lo)
    }

    /// Uniform in `[0, 1)` from one 32-bit draw ([`unit_f32_of`]).
    #[inline(always)]
    fn unit_f32(&mut self) -> f32 {
        unit_f32_of(self.random_u32())
    }

    /// Uniform in `[0, 1)` from one 64-bit draw ([`unit_f64_of`]).
    #[inline(always)]
    fn unit_f64(&mut self) -> f64 {
        unit_f64_of(self.random_u64())
    }

    /// `Tensor.uniform_(from, to)` / `torch.rand` for float32 (see module docs).
    pub fn fill_uniform_f32(&mut self, out: &mut [f32], from: f64, to: f64) {
        with_simd(|| self.uniform_f32(out, from, to))
    }

    #[inline(always)]
    fn uniform_f32(&mut self, out: &mut [f32], from: f64, to: f64) {
        let from = from as f32;
        let to = to as f32;
        let span = to - from;
        let cap = self.capability;
        self.map_u32(out, |w| {
            let v = mul_add_f32(cap, unit_f32_of(w), span, from);
            if v == to {
                from
            } else {
                v
            }
        });
    }

    /// `Tensor.uniform_(from, to)` / `torch.rand` for float64 (see module docs).
    pub fn fill_uniform_f64(&mut self, out: &mut [f64], from: f64, to: f64) {
        with_simd(|| self.uniform_f64(out, from, to))
    }

    #[inline(always)]
    fn uniform_f64(&mut self, out: &mut [f64], from: f64, to: f64) {
        let span = to - from;
        let cap = self.capability;
        self.map_u64(out, |w| {
            let v = mul_add_f64(cap, unit_f64_of(w), span, from);
            if v == to {
                from
            } else {
                v
            }
        });
    }

    /// One scalar-path normal sample in `f64` (uses / refills the cache).
    fn scalar_normal(&mut self, mean: f64, std: f64) -> f64 {
        if let Some(cached) = self.next_double_normal.take() {
            return mul_add_f64(self.capability, cached, std, mean);
        }
        let u1 = self.unit_f64();
        let u2 = self.unit_f64();
        let r = (-2.0 * (-u2).ln_1p()).sqrt();
        let theta = TWO_PI_F64 * u1;
        let (s, c) = theta.sin_cos();
        self.next_double_normal = Some(r * s);
        mul_add_f64(self.capability, r * c, std, mean)
    }

    /// torch's scalar normal path for float32 (used by torch for fewer than 16
    /// elements or for non-contiguous tensors, in iteration order).
    pub fn fill_normal_scalar_f32(&mut self, out: &mut [f32], mean: f64, std: f64) {
        for o in out.iter_mut() {
            *o = self.scalar_normal(mean, std) as f32;
        }
    }

    /// torch's scalar normal path for float64 (see [`Generator::fill_normal_scalar_f32`]).
    pub fn fill_normal_scalar_f64(&mut self, out: &mut [f64], mean: f64, std: f64) {
        for o in out.iter_mut() {
            *o = self.scalar_normal(mean, std);
        }
    }

    /// `Tensor.normal_(mean, std)` / `torch.randn` for a contiguous float32
    /// tensor (see module docs for the two code paths, and [`CpuCapability`]
    /// for the block kernel used).
    pub fn fill_normal_f32(&mut self, out: &mut [f32], mean: f64, std: f64) {
        let n = out.len();
        if n < 16 {
            self.fill_normal_scalar_f32(out, mean, std);
            return;
        }
        let (mean, std) = (mean as f32, std as f32);
        match self.capability {
            CpuCapability::Avx2 => {
                #[cfg(target_arch = "x86_64")]
                if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                    // SAFETY: both features were detected on this CPU.
                    return unsafe { self.normal_f32_avx2(out, mean, std) };
                }
                self.normal_f32(out, mean, std, box_muller16_f32_avx2)
            }
            CpuCapability::Default => self.normal_f32(out, mean, std, box_muller16_f32_generic),
        }
    }

    /// [`Generator::normal_f32`] with torch's AVX2 transform in AVX2 itself.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn normal_f32_avx2(&mut self, out: &mut [f32], mean: f32, std: f32) {
        self.normal_f32(out, mean, std, |d, mean, std| {
            // SAFETY: this function runs only where AVX2 and FMA were detected.
            unsafe { avx2::box_muller16(d, mean, std) }
        })
    }

    /// The block path of [`Generator::fill_normal_f32`] with the transform `block`.
    #[inline(always)]
    fn normal_f32(
        &mut self,
        out: &mut [f32],
        mean: f32,
        std: f32,
        block: impl Fn(&mut [f32; 16], f32, f32),
    ) {
        let n = out.len();
        self.map_u32(out, unit_f32_of);
        for chunk in out.chunks_exact_mut(16) {
            block(chunk.try_into().unwrap(), mean, std);
        }
        if !n.is_multiple_of(16) {
            let tail: &mut [f32; 16] = (&mut out[n - 16..]).try_into().unwrap();
            for o in tail.iter_mut() {
                *o = self.unit_f32();
            }
            block(tail, mean, std);
        }
    }

    /// `Tensor.normal_(mean, std)` / `torch.randn` for a contiguous float64
    /// tensor (see module docs for the two code paths).
    pub fn fill_normal_f64(&mut self, out: &mut [f64], mean: f64, std: f64) {
        let n = out.len();
        if n < 16 {
            self.fill_normal_scalar_f64(out, mean, std);
            return;
        }
        with_simd(|| self.normal_f64(out, mean, std))
    }

    /// The block path of [`Generator::fill_normal_f64`].
    #[inline(always)]
    fn normal_f64(&mut self, out: &mut [f64], mean: f64, std: f64) {
        let n = out.len();
        self.map_u64(out, unit_f64_of);
        for block in out.chunks_exact_mut(16) {
            box_muller16_f64(block.try_into().unwrap(), mean, std);
        }
        if !n.is_multiple_of(16) {
            let tail: &mut [f64; 16] = (&mut out[n - 16..]).try_into().unwrap();
            for o in tail.iter_mut() {
                *o = self.unit_f64();
            }
            box_muller16_f64(tail, mean, std);
        }
    }

    /// `torch.randint(low, high)` / `Tensor.random_(low, high)` for int64:
    /// values in `[low, high)`.  Requires `low < high` (torch rejects other
    /// ranges before drawing).
    pub fn fill_randint(&mut self, out: &mut [i64], low: i64, high: i64) {
        assert!(
            low < high,
            "random_ expects 'from' to be less than 'to', but got from={low} >= to={high}"
        );
        let range = high.wrapping_sub(low) as u64;
        for o in out.iter_mut() {
            let r = if range >= RANDINT_64BIT_RANGE {
                self.random_u64() % range
            } else {
                u64::from(self.random_u32()) % range
            };
            *o = r.wrapping_add(low as u64) as i64;
        }
    }

    /// `Tensor.random_()` over the full int64 range
    /// (`random_(from=i64::MIN, to=None)`): one 64-bit draw per element.
    pub fn fill_random_full_range_i64(&mut self, out: &mut [i64]) {
        for o in out.iter_mut() {
            *o = self.random_u64() as i64;
        }
    }

    /// `torch.randperm(n)` (int64 result).
    pub fn randperm(&mut self, n: usize) -> Vec<i64> {
        if n < RANDPERM_64BIT_THRESHOLD {
            let mut p: Vec<i64> = (0..n as i64).collect();
            for i in 0..n.saturating_sub(1) {
                let z = (u64::from(self.random_u32()) % (n - i) as u64) as usize;
                p.swap(i, i + z);
            }
            p
        } else {
            let mut p = vec![0i64; n];
            for i in 0..n {
                let z = (self.random_u64() % (i as u64 + 1)) as usize;
                p[i] = p[z];
                p[z] = i as i64;
            }
            p
        }
    }

    /// `Tensor.bernoulli_(p)` with a Python-float `p` on a float32 tensor.
    /// `p` must lie in `[0, 1]` (torch raises otherwise).
    pub fn fill_bernoulli_scalar_f32(&mut self, out: &mut [f32], p: f64) {
        with_simd(|| self.bernoulli_scalar(out, p, 1.0, 0.0))
    }

    /// `Tensor.bernoulli_(p)` with a Python-float `p` on a float64 tensor.
    pub fn fill_bernoulli_scalar_f64(&mut self, out: &mut [f64], p: f64) {
        with_simd(|| self.bernoulli_scalar(out, p, 1.0, 0.0))
    }

    /// `out[i] = if unit_f64() < p { one } else { zero }`, drawn in bulk. The uniform is a
    /// 53-bit integer `x` over 2^53, so `x / 2^53 < p` exactly when `x < ceil(p * 2^53)`
    /// (`p * 2^53` is exact): an integer comparison.
    #[inline(always)]
    fn bernoulli_scalar<T: Copy>(&mut self, out: &mut [T], p: f64, one: T, zero: T) {
        let limit = (p * TWO_POW_53).ceil() as u64;
        self.map_u64(out, |w| if low53(w) < limit { one } else { zero });
    }

    /// `out[i] = f(random_u32())` for every element, drawn in bulk.
    #[inline(always)]
    fn map_u32<T>(&mut self, out: &mut [T], mut f: impl FnMut(u32) -> T) {
        let mut words = [0u32; BULK];
        for chunk in out.chunks_mut(BULK) {
            let words = &mut words[..chunk.len()];
            self.fill_u32(words);
            for (o, &w) in chunk.iter_mut().zip(words.iter()) {
                *o = f(w);
            }
        }
    }

    /// `out[i] = f(random_u64())` for every element, drawn in bulk.
    #[inline(always)]
    fn map_u64<T>(&mut self, out: &mut [T], mut f: impl FnMut(u64) -> T) {
        let mut words = [0u32; BULK];
        for chunk in out.chunks_mut(BULK / 2) {
            let words = &mut words[..2 * chunk.len()];
            self.fill_u32(words);
            for (o, w) in chunk.iter_mut().zip(words.chunks_exact(2)) {
                // The first output in the high half, as `random_u64` puts it.
                *o = f((u64::from(w[0]) << 32) | u64::from(w[1]));
            }
        }
    }

    /// `torch.bernoulli(probs)` / `out.bernoulli_(probs)` for float32
    /// probabilities (contiguous, same shape as the output).  Each
    /// probability must lie in `[0, 1]`.
    pub fn bernoulli_tensor_f32(&mut self, probs: &[f32]) -> Vec<f32> {
        probs
            .iter()
            .map(|&p| if self.unit_f32() < p { 1.0 } else { 0.0 })
            .collect()
    }

    /// `torch.bernoulli(probs)` for float64 probabilities.
    pub fn bernoulli_tensor_f64(&mut self, probs: &[f64]) -> Vec<f64> {
        probs
            .iter()
            .map(|&p| if self.unit_f64() < p { 1.0 } else { 0.0 })
            .collect()
    }

    fn exponential_f64_value(&mut self, lambda: f64) -> f64 {
        let u = self.unit_f64();
        (-1.0 / lambda) * (-u).ln_1p()
    }

    /// `Tensor.exponential_(lambda)` for float32.
    pub fn fill_exponential_f32(&mut self, out: &mut [f32], lambda: f64) {
        for o in out.iter_mut() {
            *o = self.exponential_f64_value(lambda) as f32;
        }
    }

    /// `Tensor.exponential_(lambda)` for float64.
    pub fn fill_exponential_f64(&mut self, out: &mut [f64], lambda: f64) {
        for o in out.iter_mut() {
            *o = self.exponential_f64_value(lambda);
        }
    }

    /// `torch.multinomial` entry point taking an `f64` copy of the input.
    ///
    /// `probs` is row-major `[n_rows, n_cats]` (use `n_rows = 1` for a 1-D
    /// input); the result is row-major `[n_rows, num_samples]`.  When
    /// `input_is_f32` is true the values must be exactly representable in
    /// `f32` (an `f64` copy of a float32 tensor) and torch's float32
    /// arithmetic is reproduced.  Equivalent to [`Generator::multinomial_f32`] /
    /// [`Generator::multinomial_f64`].
    pub fn multinomial(
        &mut self,
        probs: &[f64],
        n_rows: usize,
        n_cats: usize,
        num_samples: usize,
        replacement: bool,
        input_is_f32: bool,
    ) -> Result<Vec<i64>, String> {
        if input_is_f32 {
            let p: Vec<f32> = probs.iter().map(|&v| v as f32).collect();
            self.multinomial_f32(&p, n_rows, n_cats, num_samples, replacement)
        } else {
            self.multinomial_f64(probs, n_rows, n_cats, num_samples, replacement)
        }
    }

    /// `torch.multinomial` for a contiguous float32 input.
    pub fn multinomial_f32(
        &mut self,
        probs: &[f32],
        n_rows: usize,
        n_cats: usize,
        num_samples: usize,
        replacement: bool,
    ) -> Result<Vec<i64>, String> {
        multinomial_impl(self, probs, n_rows, n_cats, num_samples, replacement)
    }

    /// `torch.multinomial` for a contiguous float64 input.
    pub fn multinomial_f64(
        &mut self,
        probs: &[f64],
        n_rows: usize,
        n_cats: usize,
        num_samples: usize,
        replacement: bool,
    ) -> Result<Vec<i64>, String> {
        multinomial_impl(self, probs, n_rows, n_cats, num_samples, replacement)
    }
}

/// The process-wide default CPU generator, seeded with [`DEFAULT_SEED`] when
/// first used.  (Real torch seeds its default generator non-deterministically
/// at start-up; call `manual_seed` for reproducible streams.)
pub fn default_generator() -> &'static Mutex<Generator> {
    static GEN: OnceLock<Mutex<Generator>> = OnceLock::new();
    GEN.get_or_init(|| Mutex::new(Generator::new(DEFAULT_SEED)))
}

fn nondeterministic_seed() -> u64 {
    use std::io::Read;
    let mut buf = [0u8; 8];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        if f.read_exact(&mut buf).is_ok() {
            return u64::from_le_bytes(buf);
        }
    }
    use std::hash::{BuildHasher, Hasher};
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(nanos);
    h.write_u32(std::process::id());
    h.finish()
}

/// `a * b + c` as torch's `capability` build evaluates it.
#[inline(always)]
fn mul_add_f32(capability: CpuCapability, a: f32, b: f32, c: f32) -> f32 {
    match capability {
        CpuCapability::Avx2 => a.mul_add(b, c),
        CpuCapability::Default => a * b + c,
    }
}

/// `a * b + c` as torch's `capability` build evaluates it.
#[inline(always)]
fn mul_add_f64(capability: CpuCapability, a: f64, b: f64, c: f64) -> f64 {
    match capability {
        CpuCapability::Avx2 => a.mul_add(b, c),
        CpuCapability::Default => a * b + c,
    }
}

/// Engine outputs drawn at once by the bulk samplers (on the stack).
const BULK: usize = 1024;

/// Uniform in `[0, 1)` from the low 24 bits of a 32-bit draw.
#[inline(always)]
fn unit_f32_of(w: u32) -> f32 {
    (w & 0x00ff_ffff) as f32 * (1.0 / 16_777_216.0)
}

const TWO_POW_53: f64 = 9_007_199_254_740_992.0;

/// The low 53 bits of a 64-bit draw: a float64 uniform's integer.
#[inline(always)]
fn low53(w: u64) -> u64 {
    w & ((1 << 53) - 1)
}

/// Uniform in `[0, 1)` from the low 53 bits of a 64-bit draw.
#[inline(always)]
fn unit_f64_of(w: u64) -> f64 {
    low53(w) as f64 * (1.0 / TWO_POW_53)
}

/// MT19937's output tempering of one state word.
#[inline(always)]
fn temper(mut y: u32) -> u32 {
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c_5680;
    y ^= (y << 15) & 0xefc6_0000;
    y ^= y >> 18;
    y
}

/// Runs `f` built for AVX2 and FMA where the CPU has both: the bulk draws vectorise 256 bits
/// wide (the baseline x86-64 target stops at 128), and the fused steps (`mul_add`) are one
/// instruction instead of a call into libm's `fma`. The results are the same bits either way
/// (the same operations, each rounding once). `f` and what it calls must be inlined
/// (`#[inline(always)]`) to be built so.
#[inline(always)]
fn with_simd<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        #[target_feature(enable = "avx2,fma")]
        unsafe fn simd_build<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        // SAFETY: both features were detected on this CPU.
        return unsafe { simd_build(f) };
    }
    f()
}

// ---------------------------------------------------------------------------
// Box–Muller on blocks of 16
// ---------------------------------------------------------------------------

/// Double-precision block transform (scalar code in torch, libm functions).
#[inline(always)]
fn box_muller16_f64(d: &mut [f64; 16], mean: f64, std: f64) {
    for j in 0..8 {
        let u1 = 1.0 - d[j];
        let u2 = d[j + 8];
        let radius = (-2.0 * u1.ln()).sqrt();
        let theta = TWO_PI_F64 * u2;
        let (s, c) = theta.sin_cos();
        d[j] = (radius * c).mul_add(std, mean);
        d[j + 8] = (radius * s).mul_add(std, mean);
    }
}

/// Single-precision block transform of torch's generic kernel: `f32` libm
/// functions; `theta` is formed in `f64` (`2*pi` is a double constant) and
/// rounded to `f32` before `sin`/`cos`.
#[inline(always)]
fn box_muller16_f32_generic(d: &mut [f32; 16], mean: f32, std: f32) {
    for j in 0..8 {
        let u1 = 1.0 - d[j];
        let u2 = d[j + 8];
        let radius = (-2.0 * u1.ln()).sqrt();
        let theta = (TWO_PI_F64 * f64::from(u2)) as f32;
        d[j] = (radius * theta.cos()).mul_add(std, mean);
        d[j + 8] = (radius * theta.sin()).mul_add(std, mean);
    }
}

/// Single-precision block transform.  torch's AVX2 build evaluates this with
/// 8-lane polynomial approximations; [`avx_log`] and [`avx_sincos`] replay one
/// lane exactly, so the result does not depend on this machine's SIMD support.
#[inline(always)]
fn box_muller16_f32_avx2(d: &mut [f32; 16], mean: f32, std: f32) {
    let two_pi = f32::from_bits(cephes::TWO_PI);
    for j in 0..8 {
        let u1 = 1.0 - d[j];
        let u2 = d[j + 8];
        let radius = (avx_log(u1) * -2.0).sqrt();
        let theta = two_pi * u2;
        let (s, c) = avx_sincos(theta);
        d[j] = (radius * c).mul_add(std, mean);
        d[j + 8] = (radius * s).mul_add(std, mean);
    }
}

/// [`box_muller16_f32_avx2`] in AVX2, the way torch's AVX2 build computes it: the same
/// operations, eight lanes at a time, so the same bits (a test compares them).
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::cephes;
    use std::arch::x86_64::*;

    #[inline(always)]
    unsafe fn splat(bits: u32) -> __m256 {
        _mm256_castsi256_ps(_mm256_set1_epi32(bits as i32))
    }

    /// [`super::avx_log`] on eight lanes.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn log(x_in: __m256) -> __m256 {
        let one = _mm256_set1_ps(1.0);
        let invalid = _mm256_cmp_ps::<_CMP_LE_OS>(x_in, _mm256_setzero_ps());
        let x = _mm256_max_ps(x_in, splat(cephes::MIN_NORM));
        let exp_bits = _mm256_srli_epi32::<23>(_mm256_castps_si256(x));
        let x = _mm256_and_ps(x, splat(!0x7f80_0000));
        let mut x = _mm256_or_ps(x, _mm256_set1_ps(0.5));
        let exp_bits = _mm256_sub_epi32(exp_bits, _mm256_set1_epi32(0x7f));
        let mut e = _mm256_add_ps(_mm256_cvtepi32_ps(exp_bits), one);
        let below = _mm256_cmp_ps::<_CMP_LT_OS>(x, splat(cephes::SQRT_HALF));
        let tmp = _mm256_and_ps(x, below);
        x = _mm256_add_ps(x, _mm256_set1_ps(-1.0));
        e = _mm256_sub_ps(e, _mm256_and_ps(one, below));
        x = _mm256_add_ps(x, tmp);
        let z = _mm256_mul_ps(x, x);
        let mut y = splat(cephes::LOG_P[0]);
        for &c in &cephes::LOG_P[1..] {
            y = _mm256_fmadd_ps(y, x, splat(c));
        }
        let t = _mm256_mul_ps(e, splat(cephes::LOG_Q1));
        y = _mm256_mul_ps(y, x);
        y = _mm256_fmadd_ps(y, z, t);
        y = _mm256_fnmadd_ps(z, _mm256_set1_ps(0.5), y);
        x = _mm256_add_ps(x, y);
        let r = _mm256_fmadd_ps(e, splat(cephes::LOG_Q2), x);
        _mm256_or_ps(r, invalid)
    }

    /// [`super::avx_sincos`] on eight lanes: `(sin, cos)`.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn sincos(x_in: __m256) -> (__m256, __m256) {
        let sign_bit = _mm256_set1_epi32(i32::MIN);
        let bits = _mm256_castps_si256(x_in);
        let mut sign_sin = _mm256_and_si256(bits, sign_bit);
        let mut x = _mm256_castsi256_ps(_mm256_andnot_si256(sign_bit, bits));
        let yq = _mm256_mul_ps(x, splat(cephes::FOUR_OVER_PI));
        let trunc = _mm256_cvttps_epi32(yq);
        let j = _mm256_and_si256(
            _mm256_add_epi32(trunc, _mm256_set1_epi32(1)),
            _mm256_set1_epi32(!1),
        );
        let yf = _mm256_cvtepi32_ps(j);
        let four = _mm256_set1_epi32(4);
        let swap_sin = _mm256_slli_epi32::<29>(_mm256_and_si256(j, four));
        let poly_mask = _mm256_castsi256_ps(_mm256_cmpeq_epi32(
            _mm256_and_si256(j, _mm256_set1_epi32(2)),
            _mm256_setzero_si256(),
        ));
        x = _mm256_fmadd_ps(yf, splat(cephes::DP[0]), x);
        x = _mm256_fmadd_ps(splat(cephes::DP[1]), yf, x);
        x = _mm256_fmadd_ps(yf, splat(cephes::DP[2]), x);
        let sign_cos = _mm256_slli_epi32::<29>(_mm256_andnot_si256(
            _mm256_sub_epi32(j, _mm256_set1_epi32(2)),
            four,
        ));
        sign_sin = _mm256_xor_si256(sign_sin, swap_sin);
        let z = _mm256_mul_ps(x, x);
        let half_z = _mm256_mul_ps(z, _mm256_set1_ps(0.5));
        let mut yc = _mm256_fmadd_ps(splat(cephes::COS_P[0]), z, splat(cephes::COS_P[1]));
        yc = _mm256_fmadd_ps(yc, z, splat(cephes::COS_P[2]));
        yc = _mm256_mul_ps(yc, z);
        yc = _mm256_fmadd_ps(z, yc, _mm256_xor_ps(half_z, splat(0x8000_0000)));
        yc = _mm256_add_ps(yc, _mm256_set1_ps(1.0));
        let mut ys = _mm256_fmadd_ps(splat(cephes::SIN_P[0]), z, splat(cephes::SIN_P[1]));
        ys = _mm256_fmadd_ps(ys, z, splat(cephes::SIN_P[2]));
        ys = _mm256_mul_ps(ys, z);
        ys = _mm256_fmadd_ps(x, ys, x);
        let ysin2 = _mm256_and_ps(poly_mask, ys);
        let ysin1 = _mm256_andnot_ps(poly_mask, yc);
        let s = _mm256_add_ps(ysin1, ysin2);
        let c = _mm256_add_ps(_mm256_sub_ps(ys, ysin2), _mm256_sub_ps(yc, ysin1));
        (
            _mm256_xor_ps(s, _mm256_castsi256_ps(sign_sin)),
            _mm256_xor_ps(c, _mm256_castsi256_ps(sign_cos)),
        )
    }

    /// [`super::box_muller16_f32_avx2`] on the two halves of `d` at once.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn box_muller16(d: &mut [f32; 16], mean: f32, std: f32) {
        let p = d.as_mut_ptr();
        let u1 = _mm256_sub_ps(_mm256_set1_ps(1.0), _mm256_loadu_ps(p));
        let u2 = _mm256_loadu_ps(p.add(8));
        let radius = _mm256_sqrt_ps(_mm256_mul_ps(log(u1), _mm256_set1_ps(-2.0)));
        let theta = _mm256_mul_ps(splat(cephes::TWO_PI), u2);
        let (s, c) = sincos(theta);
        let (mean, std) = (_mm256_set1_ps(mean), _mm256_set1_ps(std));
        _mm256_storeu_ps(p, _mm256_fmadd_ps(_mm256_mul_ps(radius, c), std, mean));
        _mm256_storeu_ps(
            p.add(8),
            _mm256_fmadd_ps(_mm256_mul_ps(radius, s), std, mean),
        );
    }
}

/// The single-precision constants of torch's AVX2 `log` and `sincos` (Cephes-derived), as
/// bits, shared by the lane-by-lane replay and the AVX2 version.
mod cephes {
    pub const TWO_PI: u32 = 0x40c9_0fdb;
    pub const MIN_NORM: u32 = 0x0080_0000;
    pub const SQRT_HALF: u32 = 0x3f35_04f3;
    /// `log`'s polynomial, highest degree first.
    pub const LOG_P: [u32; 9] = [
        0x3d90_21bb,
        0xbdeb_d1b8,
        0x3def_251a,
        0xbdfe_5d4f,
        0x3e11_e9bf,
        0xbe2a_ae50,
        0x3e4c_ceac,
        0xbe7f_fffc,
        0x3eaa_aaaa,
    ];
    /// ln 2 in two parts, the small one first.
    pub const LOG_Q1: u32 = 0xb95e_8083;
    pub const LOG_Q2: u32 = 0x3f31_8000;
    pub const FOUR_OVER_PI: u32 = 0x3fa2_f983;
    /// -pi/4 in three parts (Cody–Waite).
    pub const DP: [u32; 3] = [0xbf49_0000, 0xb97d_a000, 0xb322_2169];
    pub const COS_P: [u32; 3] = [0x37cc_f5ce, 0xbab6_061a, 0x3d2a_aaa5];
    pub const SIN_P: [u32; 3] = [0xb94c_a1f9, 0x3c08_839e, 0xbe2a_aaa3];
}

/// Selects `v` when `mask` holds, otherwise +0.0 (a bitwise AND with a lane mask).
#[inline(always)]
fn mask_f32(mask: bool, v: f32) -> f32 {
    if mask {
        v
    } else {
        0.0
    }
}

/// One lane of the Cephes-derived `log` torch uses in its AVX2 normal kernel:
/// split into exponent and a mantissa in `[sqrt(1/2), sqrt(2))`, a degree-8
/// polynomial in Horner form (each step one FMA), and the exponent added back
/// in two parts.  Non-positive inputs give NaN.
#[inline(always)]
fn avx_log(x_in: f32) -> f32 {
    let q1 = f32::from_bits(cephes::LOG_Q1);
    let q2 = f32::from_bits(cephes::LOG_Q2);
    let sqrt_half = f32::from_bits(cephes::SQRT_HALF);

    let invalid = x_in <= 0.0;
    let min_norm = f32::from_bits(cephes::MIN_NORM);
    let x = if x_in > min_norm { x_in } else { min_norm };
    let exp_bits = (x.to_bits() >> 23) as i32;
    let mut x = f32::from_bits((x.to_bits() & !0x7f80_0000) | 0.5f32.to_bits());
    let mut e = exp_bits.wrapping_sub(0x7f) as f32 + 1.0;
    let below = x < sqrt_half;
    let tmp = mask_f32(below, x);
    x += -1.0;
    e -= mask_f32(below, 1.0);
    x += tmp;
    let z = x * x;
    let mut y = f32::from_bits(cephes::LOG_P[0]);
    for &c in &cephes::LOG_P[1..] {
        y = y.mul_add(x, f32::from_bits(c));
    }
    let t = e * q1;
    y *= x;
    y = y.mul_add(z, t);
    y = (-z).mul_add(0.5, y);
    x += y;
    let r = e.mul_add(q2, x);
    if invalid {
        f32::from_bits(r.to_bits() | 0xffff_ffff)
    } else {
        r
    }
}

/// One lane of the Cephes-derived `sincos` torch uses in its AVX2 normal
/// kernel: octant reduction with a three-part Cody–Waite subtraction of
/// multiples of pi/4 (FMAs), then the cosine and sine polynomials, selected
/// and sign-corrected per octant.  Returns `(sin, cos)`.
#[inline(always)]
fn avx_sincos(x_in: f32) -> (f32, f32) {
    let fopi = f32::from_bits(cephes::FOUR_OVER_PI);
    let dp1 = f32::from_bits(cephes::DP[0]);
    let dp2 = f32::from_bits(cephes::DP[1]);
    let dp3 = f32::from_bits(cephes::DP[2]);
    let cos_p0 = f32::from_bits(cephes::COS_P[0]);
    let cos_p1 = f32::from_bits(cephes::COS_P[1]);
    let cos_p2 = f32::from_bits(cephes::COS_P[2]);
    let sin_p0 = f32::from_bits(cephes::SIN_P[0]);
    let sin_p1 = f32::from_bits(cephes::SIN_P[1]);
    let sin_p2 = f32::from_bits(cephes::SIN_P[2]);

    let mut sign_sin = x_in.to_bits() & 0x8000_0000;
    let mut x = f32::from_bits(x_in.to_bits() & 0x7fff_ffff);
    // cvttps2dq: truncation, 0x80000000 for NaN / out of range.
    let yq = x * fopi;
    let trunc = if yq.is_nan() || yq.abs() >= 2_147_483_648.0 {
        i32::MIN
    } else {
        yq as i32
    };
    let j = trunc.wrapping_add(1) & !1;
    let yf = j as f32;
    let swap_sin = ((j & 4) as u32) << 29;
    let poly_mask = (j & 2) == 0;
    x = yf.mul_add(dp1, x);
    x = dp2.mul_add(yf, x);
    x = yf.mul_add(dp3, x);
    let sign_cos = ((!(j.wrapping_sub(2)) & 4) as u32) << 29;
    sign_sin ^= swap_sin;

    let z = x * x;
    let half_z = z * 0.5;
    let mut yc = cos_p0.mul_add(z, cos_p1);
    yc = yc.mul_add(z, cos_p2);
    yc *= z;
    yc = z.mul_add(yc, -half_z);
    yc += 1.0;
    let mut ys = sin_p0.mul_add(z, sin_p1);
    ys = ys.mul_add(z, sin_p2);
    ys *= z;
    ys = x.mul_add(ys, x);

    let ysin2 = mask_f32(poly_mask, ys);
    let ysin1 = mask_f32(!poly_mask, yc);
    let ys_rest = ys - ysin2;
    let yc_rest = yc - ysin1;
    let s = ysin1 + ysin2;
    let c = ys_rest + yc_rest;
    (
        f32::from_bits(s.to_bits() ^ sign_sin),
        f32::from_bits(c.to_bits() ^ sign_cos),
    )
}

// ---------------------------------------------------------------------------
// multinomial
// ---------------------------------------------------------------------------

/// The float types multinomial runs in (its arithmetic happens in the input
/// dtype).
trait ProbFloat:
    Copy + PartialOrd + std::ops::Add<Output = Self> + std::ops::Div<Output = Self>
{
    const ZERO: Self;
    const ONE: Self;
    fn from_f64(v: f64) -> Self;
    fn to_f64(self) -> f64;
    fn is_nan(self) -> bool;
    fn is_finite(self) -> bool;
}

impl ProbFloat for f32 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    fn from_f64(v: f64) -> Self {
        v as f32
    }
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
    fn is_nan(self) -> bool {
        f32::is_nan(self)
    }
    fn is_finite(self) -> bool {
        f32::is_finite(self)
    }
}

impl ProbFloat for f64 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    fn from_f64(v: f64) -> Self {
        v
    }
    fn to_f64(self) -> f64 {
        self
    }
    fn is_nan(self) -> bool {
        f64::is_nan(self)
    }
    fn is_finite(self) -> bool {
        f64::is_finite(self)
    }
}

fn multinomial_impl<T: ProbFloat>(
    gen: &mut Generator,
    probs: &[T],
    n_rows: usize,
    n_cats: usize,
    num_samples: usize,
    replacement: bool,
) -> Result<Vec<i64>, String> {
    if probs.len() != n_rows * n_cats {
        return Err(format!(
            "multinomial: expected {} probabilities for shape [{n_rows}, {n_cats}], got {}",
            n_rows * n_cats,
            probs.len()
        ));
    }
    if num_samples == 0 {
        return Err("cannot sample n_sample <= 0 samples".to_string());
    }
    if !replacement && num_samples > n_cats {
        return Err(
            "cannot sample n_sample > prob_dist.size(-1) samples without replacement".to_string(),
        );
    }
    if n_cats > MULTINOMIAL_MAX_CATEGORIES {
        return Err("number of categories cannot exceed 2^24".to_string());
    }
    if n_rows == 0 {
        return Ok(Vec::new());
    }
    if n_cats == 0 {
        return Err("invalid multinomial distribution (sum of probabilities <= 0)".to_string());
    }

    if !replacement || num_samples == 1 {
        // Validity is checked on the whole tensor before anything is drawn.
        let bad = probs
            .iter()
            .any(|&v| v.is_nan() || !v.is_finite() || v < T::ZERO);
        if bad {
            return Err(
                "probability tensor contains either `inf`, `nan` or element < 0".to_string(),
            );
        }
        if probs
            .chunks_exact(n_cats)
            .any(|row| row.iter().all(|&v| v == T::ZERO))
        {
            return Err("invalid multinomial distribution (sum of probabilities <= 0)".to_string());
        }
        // Exponential race: argmax / top-k of p / q with q ~ Exp(1).
        let q: Vec<T> = probs
            .iter()
            .map(|&p| p / T::from_f64(gen.exponential_f64_value(1.0)))
            .collect();
        let mut out = Vec::with_capacity(n_rows * num_samples);
        for row in q.chunks_exact(n_cats) {
            if num_samples == 1 {
                out.push(argmax(row) as i64);
            } else {
                out.extend(topk_largest_indices(row, num_samples));
            }
        }
        return Ok(out);
    }

    // With replacement: inverse-CDF sampling against the normalized
    // cumulative distribution.
    let mut out = Vec::with_capacity(n_rows * num_samples);
    let mut cum = vec![T::ZERO; n_cats];
    for row in probs.chunks_exact(n_cats) {
        let mut sum = T::ZERO;
        for (c, &v) in cum.iter_mut().zip(row) {
            if v.is_nan() || v < T::ZERO {
                return Err(
                    "invalid multinomial distribution (encountering probability entry < 0)"
                        .to_string(),
                );
            }
            if !v.is_finite() {
                return Err(
                    "invalid multinomial distribution (encountering probability entry = infinity or NaN)"
                        .to_string(),
                );
            }
            sum = sum + v;
            *c = sum;
        }
        if sum.is_nan() || sum <= T::ZERO {
            return Err("invalid multinomial distribution (sum of probabilities <= 0)".to_string());
        }
        for c in cum.iter_mut() {
            *c = *c / sum;
        }
        cum[n_cats - 1] = T::ONE;
        for _ in 0..num_samples {
            let u = gen.unit_f64();
            let (mut lo, mut hi) = (0usize, n_cats);
            while hi > lo {
                let mid = lo + (hi - lo) / 2;
                if cum[mid].to_f64() < u {
                    lo = mid + 1;
                } else {
                    hi = mid;
                }
            }
            out.push(lo as i64);
        }
    }
    Ok(out)
}

/// Index of the maximum, NaN counting as the largest value and ties going to
/// the lowest index (torch's `argmax` semantics).
fn argmax<T: ProbFloat>(row: &[T]) -> usize {
    let mut best = 0;
    for i in 1..row.len() {
        let (b, c) = (row[best], row[i]);
        if b.is_nan() {
            break;
        }
        if c.is_nan() || c > b {
            best = i;
        }
    }
    best
}

/// Indices of `topk(row, k, largest=True, sorted=True)` exactly as torch's CPU
/// kernel orders them (including among equal values).
fn topk_largest_indices<T: ProbFloat>(row: &[T], k: usize) -> Vec<i64> {
    let n = row.len();
    let mut queue: Vec<(T, i64)> = row
        .iter()
        .enumerate()
        .map(|(i, &v)| (v, i as i64))
        .collect();
    let greater = |a: &(T, i64), b: &(T, i64)| (a.0.is_nan() && !b.0.is_nan()) || a.0 > b.0;
    if k * 64 <= n {
        stl::partial_sort(&mut queue, k, &greater);
    } else {
        stl::nth_element(&mut queue, k - 1, &greater);
        stl::sort(&mut queue[..k - 1], &greater);
    }
    queue[..k].iter().map(|e| e.1).collect()
}

/// Re-implementations of the libstdc++ (GCC 13) sorting algorithms that
/// torch's CPU `topk` calls.  Only the order in which elements are compared
/// and moved matters here: it decides how equal keys end up ordered.
mod stl {
    /// Introsort switches to insertion sort below this many elements.
    const THRESHOLD: usize = 16;

    fn floor_log2(n: usize) -> usize {
        (usize::BITS - 1 - n.leading_zeros()) as usize
    }

    /// `std::sort`.
    pub fn sort<T: Copy, F: Fn(&T, &T) -> bool>(v: &mut [T], less: &F) {
        if v.is_empty() {
            return;
        }
        introsort_loop(v, 2 * floor_log2(v.len()), less);
        final_insertion_sort(v, less);
    }

    /// `std::partial_sort(first, first + middle, last)`.
    pub fn partial_sort<T: Copy, F: Fn(&T, &T) -> bool>(v: &mut [T], middle: usize, less: &F) {
        heap_select(v, middle, less);
        sort_heap(&mut v[..middle], less);
    }

    /// `std::nth_element(first, first + nth, last)`.
    pub fn nth_element<T: Copy, F: Fn(&T, &T) -> bool>(v: &mut [T], nth: usize, less: &F) {
        if v.is_empty() || nth == v.len() {
            return;
        }
        let mut depth = 2 * floor_log2(v.len());
        let (mut first, mut last) = (0usize, v.len());
        while last - first > 3 {
            if depth == 0 {
                let s = &mut v[first..last];
                heap_select(s, nth - first + 1, less);
                s.swap(0, nth - first);
                return;
            }
            depth -= 1;
            let cut = first + partition_pivot(&mut v[first..last], less);
            if cut <= nth {
                first = cut;
            } else {
                last = cut;
            }
        }
        insertion_sort(&mut v[first..last], less);
    }

    fn introsort_loop<T: Copy, F: Fn(&T, &T) -> bool>(v: &mut [T], mut depth: usize, less: &F) {
        let mut len = v.len();
        while len > THRESHOLD {
            if depth == 0 {
                partial_sort(&mut v[..len], len, less);
                return;
            }
            depth -= 1;
            let cut = partition_pivot(&mut v[..len], less);
            introsort_loop(&mut v[cut..len], depth, less);
            len = cut;
        }
    }

    /// Median of (v[1], v[mid], v[last]) moved to v[0], then a Hoare partition
    /// of v[1..] around it; returns the split point.
    fn partition_pivot<T: Copy, F: Fn(&T, &T) -> bool>(v: &mut [T], less: &F) -> usize {
        let len = v.len();
        let mid = len / 2;
        move_median_to_first(v, 1, mid, len - 1, less);
        let (mut first, mut last) = (1usize, len);
        loop {
            while less(&v[first], &v[0]) {
                first += 1;
            }
            last -= 1;
            while less(&v[0], &v[last]) {
                last -= 1;
            }
            if first >= last {
                return first;
            }
            v.swap(first, last);
            first += 1;
        }
    }

    fn move_median_to_first<T: Copy, F: Fn(&T, &T) -> bool>(
        v: &mut [T],
        a: usize,
        b: usize,
        c: usize,
        less: &F,
    ) {
        let pick = if less(&v[a], &v[b]) {
            if less(&v[b], &v[c]) {
                b
            } else if less(&v[a], &v[c]) {
                c
            } else {
                a
            }
        } else if less(&v[a], &v[c]) {
            a
        } else if less(&v[b], &v[c]) {
            c
        } else {
            b
        };
        v.swap(0, pick);
    }

    fn final_insertion_sort<T: Copy, F: Fn(&T, &T) -> bool>(v: &mut [T], less: &F) {
        if v.len() > THRESHOLD {
            insertion_sort(&mut v[..THRESHOLD], less);
            for i in THRESHOLD..v.len() {
                unguarded_linear_insert(v, i, less);
            }
        } else {
            insertion_sort(v, less);
        }
    }

    fn insertion_sort<T: Copy, F: Fn(&T, &T) -> bool>(v: &mut [T], less: &F) {
        for i in 1..v.len() {
            if less(&v[i], &v[0]) {
                let val = v[i];
                v.copy_within(0..i, 1);
                v[0] = val;
            } else {
                unguarded_linear_insert(v, i, less);
            }
        }
    }

    fn unguarded_linear_insert<T: Copy, F: Fn(&T, &T) -> bool>(
        v: &mut [T],
        mut last: usize,
        less: &F,
    ) {
        let val = v[last];
        while less(&val, &v[last - 1]) {
            v[last] = v[last - 1];
            last -= 1;
        }
        v[last] = val;
    }

    fn heap_select<T: Copy, F: Fn(&T, &T) -> bool>(v: &mut [T], middle: usize, less: &F) {
        make_heap(&mut v[..middle], less);
        for i in middle..v.len() {
            if less(&v[i], &v[0]) {
                // pop_heap(first, middle, i)
                let val = v[i];
                v[i] = v[0];
                adjust_heap(&mut v[..middle], 0, val, less);
            }
        }
    }

    fn make_heap<T: Copy, F: Fn(&T, &T) -> bool>(v: &mut [T], less: &F) {
        let len = v.len();
        if len < 2 {
            return;
        }
        let mut parent = (len - 2) / 2;
        loop {
            let val = v[parent];
            adjust_heap(v, parent, val, less);
            if parent == 0 {
                return;
            }
            parent -= 1;
        }
    }

    fn sort_heap<T: Copy, F: Fn(&T, &T) -> bool>(v: &mut [T], less: &F) {
        let mut last = v.len();
        while last > 1 {
            last -= 1;
            let val = v[last];
            v[last] = v[0];
            adjust_heap(&mut v[..last], 0, val, less);
        }
    }

    /// Sift the hole at `hole` down to a leaf (always taking the larger child),
    /// then sift `val` back up from there (`__adjust_heap` + `__push_heap`).
    fn adjust_heap<T: Copy, F: Fn(&T, &T) -> bool>(v: &mut [T], mut hole: usize, val: T, less: &F) {
        let len = v.len();
        let top = hole;
        let mut child = hole;
        while child < len.saturating_sub(1) / 2 {
            child = 2 * (child + 1);
            if less(&v[child], &v[child - 1]) {
                child -= 1;
            }
            v[hole] = v[child];
            hole = child;
        }
        if len.is_multiple_of(2) && len >= 2 && child == (len - 2) / 2 {
            child = 2 * (child + 1);
            v[hole] = v[child - 1];
            hole = child - 1;
        }
        while hole > top {
            let parent = (hole - 1) / 2;
            if !less(&v[parent], &val) {
                break;
            }
            v[hole] = v[parent];
            hole = parent;
        }
        v[hole] = val;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bulk draws continue the engine exactly where single draws leave it, across twists,
    /// whatever the starting position and length.
    #[test]
    fn bulk_draws_match_single_draws() {
        for (skip, len) in [
            (0, 1),
            (0, 623),
            (0, 624),
            (0, 625),
            (1, 1247),
            (623, 2),
            (700, 5000),
        ] {
            let (mut a, mut b) = (Generator::new(11), Generator::new(11));
            for _ in 0..skip {
                a.random_u32();
                b.random_u32();
            }
            let mut bulk = vec![0u32; len];
            a.fill_u32(&mut bulk);
            let single: Vec<u32> = (0..len).map(|_| b.random_u32()).collect();
            assert_eq!(bulk, single, "skip {skip}, len {len}");
            assert_eq!(a.random_u32(), b.random_u32());
        }
        // bernoulli's integer comparison against the uniform it stands for.
        for p in [0.0, 1e-300, 0.1, 0.5, 1.0 / 3.0, 0.9, 1.0 - 1e-16, 1.0] {
            let (mut a, mut b) = (Generator::new(5), Generator::new(5));
            let mut bulk = vec![0f64; 3000];
            a.fill_bernoulli_scalar_f64(&mut bulk, p);
            for got in bulk {
                assert_eq!(got, if b.unit_f64() < p { 1.0 } else { 0.0 }, "p = {p}");
            }
        }
    }

    /// The AVX2 block transform gives the bits of the lane-by-lane one (NaNs as NaNs), on
    /// uniforms as drawn, on the edges of their range, and on arbitrary bit patterns.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx2_box_muller_matches_the_lane_by_lane_transform() {
        if !(is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")) {
            return;
        }
        let mut g = Generator::new(3);
        let edges = [
            0.0,
            1.0 / 16_777_216.0,
            0.5,
            0.125,
            0.25,
            0.75,
            1.0 - 1.0 / 16_777_216.0,
        ];
        for round in 0..20_000 {
            let mut d = [0f32; 16];
            for (i, x) in d.iter_mut().enumerate() {
                *x = match round % 3 {
                    0 => g.unit_f32(),
                    1 => edges[(i + round) % edges.len()],
                    _ => f32::from_bits(g.random_u32()),
                };
            }
            let (mean, std) = if round % 2 == 0 {
                (0.0, 1.0)
            } else {
                (-0.5, 0.02)
            };
            let mut want = d;
            box_muller16_f32_avx2(&mut want, mean, std);
            // SAFETY: both features were detected above.
            unsafe { avx2::box_muller16(&mut d, mean, std) };
            for (got, want) in d.iter().zip(&want) {
                assert!(
                    got.to_bits() == want.to_bits() || got.is_nan() && want.is_nan(),
                    "{got:e} vs {want:e}"
                );
            }
        }
    }

    #[test]
    fn mt19937_reference_10000th_output() {
        // Published property of MT19937: seeded with 5489, the 10000th
        // output is 4123659995.
        let mut g = Generator::new(5489);
        let mut v = 0;
        for _ in 0..10_000 {
            v = g.random_u32();
        }
        assert_eq!(v, 4_123_659_995);
    }

    #[test]
    fn mt19937_reference_first_outputs() {
        // First outputs of init_genrand(5489) (std::mt19937 default seed).
        let mut g = Generator::new(5489);
        assert_eq!(g.random_u32(), 3_499_211_612);
        assert_eq!(g.random_u32(), 581_869_302);
        assert_eq!(g.random_u32(), 3_890_346_734);
    }

    #[test]
    fn seed_uses_low_32_bits_but_remembers_full_seed() {
        let mut a = Generator::new(7);
        let mut b = Generator::new(7 + (1 << 40));
        assert_eq!(b.initial_seed(), 7 + (1 << 40));
        for _ in 0..100 {
            assert_eq!(a.random_u32(), b.random_u32());
        }
    }

    #[test]
    fn random_u64_is_two_u32_high_first() {
        let mut a = Generator::new(99);
        let mut b = Generator::new(99);
        let hi = u64::from(b.random_u32());
        let lo = u64::from(b.random_u32());
        assert_eq!(a.random_u64(), (hi << 32) | lo);
    }

    #[test]
    fn determinism_and_reseed() {
        let mut a = Generator::new(123);
        let mut x = vec![0f32; 100];
        a.fill_normal_f32(&mut x, 0.0, 1.0);
        a.manual_seed(123);
        let mut y = vec![0f32; 100];
        a.fill_normal_f32(&mut y, 0.0, 1.0);
        assert_eq!(
            x.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            y.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
    }

    #[test]
    fn uniform_ranges() {
        let mut g = Generator::new(1);
        let mut a = vec![0f32; 10_000];
        g.fill_uniform_f32(&mut a, -2.0, 3.0);
        assert!(a.iter().all(|&v| (-2.0..3.0).contains(&v)));
        let mut b = vec![0f64; 10_000];
        g.fill_uniform_f64(&mut b, 0.0, 1.0);
        assert!(b.iter().all(|&v| (0.0..1.0).contains(&v)));
        let mean = b.iter().sum::<f64>() / b.len() as f64;
        assert!((mean - 0.5).abs() < 0.02);
    }

    #[test]
    fn float_uniform_uses_24_bits() {
        let mut g = Generator::new(3);
        let mut a = vec![0f32; 1000];
        g.fill_uniform_f32(&mut a, 0.0, 1.0);
        assert!(a.iter().all(|&v| (v * 16_777_216.0).fract() == 0.0));
    }

    #[test]
    fn normal_moments_and_sizes() {
        let mut g = Generator::new(5);
        for n in [0usize, 1, 2, 7, 15, 16, 17, 33, 1000] {
            let mut a = vec![0f64; n];
            g.fill_normal_f64(&mut a, 1.5, 0.2);
            assert!(a.iter().all(|v| v.is_finite()));
            let mut b = vec![0f32; n];
            g.fill_normal_f32(&mut b, 1.5, 0.2);
            assert!(b.iter().all(|v| v.is_finite()));
        }
        let mut a = vec![0f32; 100_000];
        g.fill_normal_f32(&mut a, 0.0, 1.0);
        let mean = a.iter().map(|&v| f64::from(v)).sum::<f64>() / a.len() as f64;
        let var = a
            .iter()
            .map(|&v| (f64::from(v) - mean).powi(2))
            .sum::<f64>()
            / a.len() as f64;
        assert!(
            mean.abs() < 0.02 && (var - 1.0).abs() < 0.02,
            "{mean} {var}"
        );
    }

    #[test]
    fn scalar_normal_caches_second_value() {
        let mut g = Generator::new(11);
        let mut a = [0f64; 1];
        g.fill_normal_f64(&mut a, 0.0, 1.0);
        let s = g.get_state();
        let mut b = [0f64; 1];
        g.fill_normal_f64(&mut b, 0.0, 1.0);
        // The second value came from the cache: the engine did not move.
        assert_eq!(&g.get_state()[..OFF_NORMAL_Y], &s[..OFF_NORMAL_Y]);
        assert!(g.next_double_normal.is_none());
    }

    #[test]
    fn avx_log_and_sincos_are_accurate() {
        let mut x = 1e-7f32;
        while x <= 1.0 {
            let l = avx_log(x);
            assert!(
                (f64::from(l) - f64::from(x).ln()).abs() <= 1e-6 * (1.0 + f64::from(x).ln().abs())
            );
            x *= 1.37;
        }
        assert!(avx_log(0.0).is_nan());
        let mut t = 0.0f32;
        while t < 6.3 {
            let (s, c) = avx_sincos(t);
            assert!((f64::from(s) - f64::from(t).sin()).abs() < 1e-6);
            assert!((f64::from(c) - f64::from(t).cos()).abs() < 1e-6);
            t += 0.013;
        }
    }

    #[test]
    fn randint_bounds() {
        let mut g = Generator::new(2);
        let mut a = vec![0i64; 5000];
        g.fill_randint(&mut a, -5, 7);
        assert!(a.iter().all(|&v| (-5..7).contains(&v)));
        assert!((-5..7).all(|v| a.contains(&v)));
        g.fill_randint(&mut a, 0, 1 << 40);
        assert!(a.iter().all(|&v| (0..1 << 40).contains(&v)));
        g.fill_randint(&mut a, i64::MIN, i64::MAX);
        assert!(a.iter().all(|&v| v < i64::MAX));
    }

    #[test]
    fn randint_draw_width() {
        // Small ranges use one 32-bit draw, ranges >= 2^28 use a 64-bit draw.
        let mut g = Generator::new(4);
        let mut r = Generator::new(4);
        let mut a = [0i64; 3];
        g.fill_randint(&mut a, 0, 1 << 27);
        for v in a {
            assert_eq!(v as u64, u64::from(r.random_u32()) % (1 << 27));
        }
        g.fill_randint(&mut a, 10, 10 + (1 << 28));
        for v in a {
            assert_eq!(v as u64, 10 + r.random_u64() % (1 << 28));
        }
    }

    #[test]
    fn randperm_is_permutation() {
        let mut g = Generator::new(9);
        for n in [0usize, 1, 2, 3, 100, 1000] {
            let mut p = g.randperm(n);
            p.sort_unstable();
            assert_eq!(p, (0..n as i64).collect::<Vec<_>>());
        }
    }

    #[test]
    fn bernoulli_extremes_and_rate() {
        let mut g = Generator::new(8);
        let mut a = vec![0f32; 4000];
        g.fill_bernoulli_scalar_f32(&mut a, 0.0);
        assert!(a.iter().all(|&v| v == 0.0));
        g.fill_bernoulli_scalar_f32(&mut a, 1.0);
        assert!(a.iter().all(|&v| v == 1.0));
        let mut b = vec![0f64; 20_000];
        g.fill_bernoulli_scalar_f64(&mut b, 0.3);
        let rate = b.iter().sum::<f64>() / b.len() as f64;
        assert!((rate - 0.3).abs() < 0.02);
        let p = vec![0.25f32; 20_000];
        let r = g.bernoulli_tensor_f32(&p);
        let rate = r.iter().map(|&v| f64::from(v)).sum::<f64>() / r.len() as f64;
        assert!((rate - 0.25).abs() < 0.02);
        let p = vec![0.0f64, 1.0, 0.0, 1.0];
        assert_eq!(g.bernoulli_tensor_f64(&p), vec![0.0, 1.0, 0.0, 1.0]);
    }

    #[test]
    fn state_round_trip() {
        let mut g = Generator::new(2024);
        let mut a = [0f64; 3];
        g.fill_normal_f64(&mut a, 0.0, 1.0); // leaves a cached normal
        let s = g.get_state();
        assert_eq!(s.len(), STATE_SIZE);
        let mut x = vec![0f64; 50];
        g.fill_normal_f64(&mut x[..5], 0.0, 1.0);
        g.fill_uniform_f64(&mut x[5..], 0.0, 1.0);
        let mut h = Generator::new(0);
        h.set_state(&s).unwrap();
        assert_eq!(h.get_state(), s);
        let mut y = vec![0f64; 50];
        h.fill_normal_f64(&mut y[..5], 0.0, 1.0);
        h.fill_uniform_f64(&mut y[5..], 0.0, 1.0);
        assert_eq!(x, y);
        assert_eq!(h.initial_seed(), 2024);
    }

    #[test]
    fn set_state_errors() {
        let mut g = Generator::new(1);
        let err = g.set_state(&[0u8; 10]).unwrap_err();
        assert!(err.contains("5056") && err.contains("10"), "{err}");
        let mut s = g.get_state();
        s[OFF_LEFT..OFF_LEFT + 4].copy_from_slice(&0i32.to_le_bytes());
        assert_eq!(g.set_state(&s).unwrap_err(), "Invalid mt19937 state");
    }

    #[test]
    fn multinomial_properties() {
        let mut g = Generator::new(6);
        let probs = [0.0, 1.0, 2.0, 0.0, 3.0, 0.5, 0.0, 0.0];
        let out = g.multinomial(&probs, 2, 4, 2, false, false).unwrap();
        assert_eq!(out.len(), 4);
        assert!([1, 2].contains(&out[0]) && [1, 2].contains(&out[1]) && out[0] != out[1]);
        assert!(out[2] == 0 || out[2] == 1);
        let out = g.multinomial(&probs, 2, 4, 50, true, true).unwrap();
        for (i, &v) in out.iter().enumerate() {
            let row = i / 50;
            assert!(probs[row * 4 + v as usize] > 0.0);
        }
        assert!(g.multinomial(&probs, 2, 4, 5, false, false).is_err());
        assert!(g
            .multinomial(&[1.0, f64::NAN], 1, 2, 1, false, false)
            .is_err());
        assert!(g.multinomial(&[0.0, 0.0], 1, 2, 1, false, false).is_err());
        assert!(g.multinomial(&[1.0, -1.0], 1, 2, 3, true, false).is_err());
        assert!(g.multinomial(&[1.0], 1, 1, 0, true, false).is_err());
    }

    #[test]
    fn stl_sort_algorithms_sort() {
        let mut g = Generator::new(77);
        let less = |a: &(i64, i64), b: &(i64, i64)| a.0 < b.0;
        for n in [0usize, 1, 2, 5, 16, 17, 40, 300, 2000] {
            let base: Vec<(i64, i64)> = (0..n)
                .map(|i| (i64::from(g.random_u32() % 50), i as i64))
                .collect();
            let mut v = base.clone();
            stl::sort(&mut v, &less);
            assert!(v.windows(2).all(|w| w[0].0 <= w[1].0));
            if n > 0 {
                for k in [1, n / 2 + 1, n] {
                    let mut v = base.clone();
                    stl::partial_sort(&mut v, k, &less);
                    let mut s: Vec<i64> = base.iter().map(|e| e.0).collect();
                    s.sort_unstable();
                    assert_eq!(
                        v[..k].iter().map(|e| e.0).collect::<Vec<_>>(),
                        s[..k].to_vec()
                    );
                    let mut v = base.clone();
                    stl::nth_element(&mut v, k - 1, &less);
                    assert_eq!(v[k - 1].0, s[k - 1]);
                    assert!(v[..k].iter().all(|e| e.0 <= s[k - 1]));
                    assert!(v[k..].iter().all(|e| e.0 >= s[k - 1]));
                }
            }
        }
    }

    #[test]
    fn capability_only_changes_rounding() {
        let mut a = Generator::new(31);
        let mut b = Generator::new(31);
        b.set_cpu_capability(CpuCapability::Default);
        assert_eq!(b.cpu_capability(), CpuCapability::Default);
        // Unit-range uniforms are exact in both builds.
        let (mut x, mut y) = (vec![0f32; 300], vec![0f32; 300]);
        a.fill_uniform_f32(&mut x, 0.0, 1.0);
        b.fill_uniform_f32(&mut y, 0.0, 1.0);
        assert_eq!(x, y);
        // Other ranges agree to within one rounding.
        a.fill_uniform_f32(&mut x, -2.0, 3.0);
        b.fill_uniform_f32(&mut y, -2.0, 3.0);
        assert!(x
            .iter()
            .zip(&y)
            .all(|(p, q)| (p - q).abs() <= 4.0 * f32::EPSILON));
        // Block normals agree closely and consume the same draws.
        let (mut x, mut y) = (vec![0f32; 64], vec![0f32; 64]);
        a.fill_normal_f32(&mut x, 0.0, 1.0);
        b.fill_normal_f32(&mut y, 0.0, 1.0);
        assert!(x.iter().zip(&y).all(|(p, q)| (p - q).abs() < 1e-5));
        assert_eq!(a.get_state(), b.get_state());
    }

    #[test]
    fn full_range_random_uses_64_bit_draws() {
        let mut a = Generator::new(12);
        let mut b = Generator::new(12);
        let mut x = [0i64; 4];
        a.fill_random_full_range_i64(&mut x);
        for v in x {
            assert_eq!(v, b.random_u64() as i64);
        }
    }

    #[test]
    fn default_generator_is_shared() {
        let s = default_generator().lock().unwrap().initial_seed();
        let _ = s;
        let mut g = default_generator().lock().unwrap();
        g.manual_seed(42);
        assert_eq!(g.initial_seed(), 42);
    }
}
