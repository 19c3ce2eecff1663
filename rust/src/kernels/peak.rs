//! The machine's measured fp32 FMA throughput, the yardstick for GEMM efficiency in the
//! benchmarks: each thread runs independent fused multiply-add chains long enough to hide
//! the FMA latency, so the loop is bound by the FMA units alone.

use rayon::prelude::*;
use std::time::Instant;

/// Independent accumulators per thread: latency (4 cycles) × FMA ports (2) plus headroom.
const CHAINS: usize = 12;
const ITERS: usize = 1 << 16;

/// Measured fp32 GFLOP/s of FMA chains on `threads` threads running for about `millis` ms.
pub fn fma_peak_gflops(threads: usize, millis: u64) -> f64 {
    let threads = threads.max(1);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("a thread pool");
    let (lanes, run): (usize, fn(usize) -> f32) = simd_loop();
    let per_call = (ITERS * CHAINS * lanes * 2) as f64;
    // Calibrate on one call, then run enough calls on every thread at once.
    let t = Instant::now();
    std::hint::black_box(run(1));
    let calls = ((millis as f64 / 1e3) / t.elapsed().as_secs_f64().max(1e-6)).ceil() as usize;
    let calls = calls.max(1);
    let start = Instant::now();
    pool.install(|| {
        (0..threads).into_par_iter().for_each(|_| {
            std::hint::black_box(run(calls));
        })
    });
    per_call * (calls * threads) as f64 / start.elapsed().as_secs_f64() / 1e9
}

#[cfg(target_arch = "x86_64")]
fn simd_loop() -> (usize, fn(usize) -> f32) {
    if is_x86_feature_detected!("avx512f") {
        // SAFETY: detected on this CPU just now.
        (16, |calls| unsafe { fma_avx512(calls) })
    } else if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        // SAFETY: both features were just detected on this CPU.
        (8, |calls| unsafe { fma_avx2(calls) })
    } else {
        (1, fma_scalar)
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn simd_loop() -> (usize, fn(usize) -> f32) {
    (1, fma_scalar)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn fma_avx2(calls: usize) -> f32 {
    use std::arch::x86_64::*;
    let mul = _mm256_set1_ps(0.999_999);
    let add = _mm256_set1_ps(1e-7);
    let mut acc = [_mm256_set1_ps(1.0); CHAINS];
    for _ in 0..calls * ITERS {
        for a in acc.iter_mut() {
            *a = _mm256_fmadd_ps(*a, mul, add);
        }
    }
    let mut total = _mm256_setzero_ps();
    for a in acc {
        total = _mm256_add_ps(total, a);
    }
    let mut lanes = [0f32; 8];
    _mm256_storeu_ps(lanes.as_mut_ptr(), total);
    lanes.iter().sum()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn fma_avx512(calls: usize) -> f32 {
    use std::arch::x86_64::*;
    let mul = _mm512_set1_ps(0.999_999);
    let add = _mm512_set1_ps(1e-7);
    let mut acc = [_mm512_set1_ps(1.0); CHAINS];
    for _ in 0..calls * ITERS {
        for a in acc.iter_mut() {
            *a = _mm512_fmadd_ps(*a, mul, add);
        }
    }
    let mut total = _mm512_setzero_ps();
    for a in acc {
        total = _mm512_add_ps(total, a);
    }
    _mm512_reduce_add_ps(total)
}

fn fma_scalar(calls: usize) -> f32 {
    let mut acc = [1.0f32; CHAINS];
    for _ in 0..calls * ITERS {
        for a in acc.iter_mut() {
            *a = a.mul_add(0.999_999, 1e-7);
        }
    }
    acc.iter().sum()
}
