//! Kernel benchmarks, called through the crate's public API.
//!
//! Run them all with `cargo bench`, or one group with a filter: `cargo bench -- attention`.
//! `benches/compare_torch.py` times the same ops and shapes in torch for a side-by-side view.
//!
//! Throughput is FLOPs (as elements) for the matrix products and bytes moved for the
//! memory-bound ops. Timings are set once for all groups (see `config`) so that the command
//! line's `--warm-up-time` and `--measurement-time` still override them.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use _C::kernels::attention::{attention_bwd, attention_fwd, AttnDims, AttnSaved};
use _C::kernels::fused::{
    cross_entropy_bwd, cross_entropy_fwd, gelu_bwd, layer_norm_bwd, layer_norm_fwd,
    CrossEntropySpec,
};
use _C::tensor::math::{BinaryOp, UnaryOp};
use _C::Tensor;

const F32: usize = std::mem::size_of::<f32>();

/// Deterministic values in [-1, 1): a scrambled ramp with period 1000.
fn ramp(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
        .collect()
}

/// Deterministic class indices in [0, classes), from a 64-bit LCG.
fn targets(n: usize, classes: usize) -> Vec<i64> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((state >> 33) % classes as u64) as i64
        })
        .collect()
}

fn tensor(shape: &[usize]) -> Tensor {
    Tensor::from_vec(ramp(shape.iter().product()), shape).unwrap()
}

/// A shape as a benchmark parameter: `512x768`.
fn dims(shape: &[usize]) -> String {
    shape
        .iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("x")
}

fn bytes(n: usize) -> Throughput {
    Throughput::Bytes(n as u64)
}

// *** matrix products ***

fn sgemm(c: &mut Criterion) {
    let mut g = c.benchmark_group("sgemm");
    g.sample_size(10);
    let mut run = |id: BenchmarkId, (m, k, n): (usize, usize, usize)| {
        let (a, b) = (tensor(&[m, k]), tensor(&[k, n]));
        g.throughput(Throughput::Elements((2 * m * k * n) as u64));
        g.bench_function(id, |bench| bench.iter(|| a.matmul(&b).unwrap()));
    };
    for n in [256, 512, 1024, 2048] {
        run(BenchmarkId::new("square", n), (n, n, n));
    }
    // GPT-2 124M with B·T = 512: attention output, qkv, MLP up, MLP down, LM head.
    for mkn in [
        (512, 768, 768),
        (512, 768, 2304),
        (512, 768, 3072),
        (512, 3072, 768),
        (512, 768, 50257),
    ] {
        run(BenchmarkId::new("gpt2", dims(&[mkn.0, mkn.1, mkn.2])), mkn);
    }
    g.finish();
}

// *** elementwise ***

fn elementwise(c: &mut Criterion) {
    let mut g = c.benchmark_group("elementwise");
    for (label, n) in [("1M", 1 << 20), ("16M", 1 << 24)] {
        let (a, b) = (tensor(&[n]), tensor(&[n]));
        g.throughput(bytes(3 * F32 * n));
        for (name, op) in [("add", BinaryOp::Add), ("mul", BinaryOp::Mul)] {
            g.bench_function(BenchmarkId::new(name, label), |bench| {
                bench.iter(|| a.binary_t(op, &b).unwrap())
            });
        }
    }
    let n = 1 << 20;
    let x = tensor(&[n]);
    g.throughput(bytes(2 * F32 * n));
    g.bench_function(BenchmarkId::new("gelu_tanh", "1M"), |bench| {
        bench.iter(|| x.unary(UnaryOp::GeluTanh).unwrap())
    });
    let (xs, gs) = (ramp(n), ramp(n));
    let mut out = vec![0f32; n];
    g.throughput(bytes(3 * F32 * n));
    g.bench_function(BenchmarkId::new("gelu_tanh_bwd", "1M"), |bench| {
        bench.iter(|| gelu_bwd(&gs, &xs, true, &mut out))
    });
    g.finish();
}

// *** row-wise ***

fn softmax(c: &mut Criterion) {
    let mut g = c.benchmark_group("softmax");
    // A square matrix, and attention's (B·H·T, T) scores for B = 4, H = 12, T = 128.
    for shape in [[1024, 1024], [4 * 12 * 128, 128]] {
        let n = shape[0] * shape[1];
        let x = tensor(&shape);
        let y = x.softmax(-1, false).unwrap();
        let dy = tensor(&shape);
        g.throughput(bytes(2 * F32 * n));
        g.bench_function(BenchmarkId::new("fwd", dims(&shape)), |bench| {
            bench.iter(|| x.softmax(-1, false).unwrap())
        });
        g.throughput(bytes(3 * F32 * n));
        g.bench_function(BenchmarkId::new("bwd", dims(&shape)), |bench| {
            bench.iter(|| y.softmax_backward(&dy, -1, false).unwrap())
        });
    }
    g.finish();
}

fn layer_norm(c: &mut Criterion) {
    let mut g = c.benchmark_group("layer_norm");
    let (rows, n) = (512, 768);
    let id = dims(&[rows, n]);
    let (x, weight, bias) = (ramp(rows * n), ramp(n), ramp(n));
    let (w, b) = (Some(&weight[..]), Some(&bias[..]));
    let mut y = vec![0f32; rows * n];
    let (mut mean, mut rstd) = (vec![0f32; rows], vec![0f32; rows]);
    g.throughput(bytes(2 * F32 * rows * n));
    g.bench_function(BenchmarkId::new("fwd", &id), |bench| {
        bench.iter(|| layer_norm_fwd(&x, w, b, n, 1e-5, &mut y, &mut mean, &mut rstd))
    });
    let dy = ramp(rows * n);
    let mut dx = vec![0f32; rows * n];
    g.throughput(bytes(3 * F32 * rows * n));
    g.bench_function(BenchmarkId::new("bwd", &id), |bench| {
        bench.iter(|| layer_norm_bwd(&dy, &x, w, &mean, &rstd, n, &mut dx))
    });
    g.finish();
}

fn cross_entropy(c: &mut Criterion) {
    let mut g = c.benchmark_group("cross_entropy");
    g.sample_size(10);
    // GPT-2's LM loss: B·T = 512 rows over the 50257-token vocabulary.
    let (rows, classes) = (512, 50257);
    let id = dims(&[rows, classes]);
    let logits = ramp(rows * classes);
    let target = targets(rows, classes);
    let spec = CrossEntropySpec {
        target: &target,
        weight: None,
        ignore_index: -100,
        smoothing: 0.0,
    };
    let (mut loss, mut lse) = (vec![0f64; rows], vec![0f64; rows]);
    g.throughput(bytes(F32 * rows * classes));
    g.bench_function(BenchmarkId::new("fwd", &id), |bench| {
        bench.iter(|| cross_entropy_fwd(&logits, classes, &spec, &mut loss, &mut lse).unwrap())
    });
    // The mean reduction's gradient: each row scaled by 1/rows.
    let scale = vec![1.0 / rows as f64; rows];
    let mut dlogits = vec![0f32; rows * classes];
    g.throughput(bytes(2 * F32 * rows * classes));
    g.bench_function(BenchmarkId::new("bwd", &id), |bench| {
        bench.iter(|| cross_entropy_bwd(&logits, classes, &spec, &lse, &scale, &mut dlogits))
    });
    g.finish();
}

// *** attention ***

fn attention(c: &mut Criterion) {
    let mut g = c.benchmark_group("attention");
    g.sample_size(10);
    for [b, h, t, e] in [[4, 12, 128, 64], [1, 12, 512, 64]] {
        let id = dims(&[b, h, t, e]);
        let d = AttnDims {
            n: b * h,
            lq: t,
            lk: t,
            e,
            ev: e,
        };
        let scale = 1.0 / (e as f64).sqrt();
        let len = d.n * t * e;
        let (q, k, v) = (ramp(len), ramp(len), ramp(len));
        let mut out = vec![0f32; len];
        let mut lse = vec![0f32; d.n * t];
        // One product is 2·n·T²·E FLOPs, counted in full although the causal mask halves the
        // useful work: two forward, five backward (recomputing the scores).
        let product = (2 * d.n * t * t * e) as u64;
        g.throughput(Throughput::Elements(2 * product));
        g.bench_function(BenchmarkId::new("causal_fwd", &id), |bench| {
            bench.iter(|| attention_fwd(d, &q, &k, &v, None, true, scale, None, &mut out, &mut lse))
        });
        let saved = AttnSaved {
            q: &q,
            k: &k,
            v: &v,
            out: &out,
            lse: &lse,
            mask: None,
            causal: true,
            scale,
            keep: None,
        };
        let dout = ramp(len);
        let (mut dq, mut dk, mut dv) = (vec![0f32; len], vec![0f32; len], vec![0f32; len]);
        g.throughput(Throughput::Elements(5 * product));
        g.bench_function(BenchmarkId::new("causal_bwd", &id), |bench| {
            bench.iter(|| attention_bwd(d, &saved, &dout, &mut dq, &mut dk, &mut dv))
        });
    }
    g.finish();
}

/// Short timings for every group: the whole suite runs in a few minutes on two cores.
fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = config();
    targets = sgemm, elementwise, softmax, layer_norm, cross_entropy, attention
}
criterion_main!(benches);
