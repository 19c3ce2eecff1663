//! Kernel benchmarks: `cargo bench`. Compare with torch through `benches/compare_torch.py`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use _C::tensor::math::{BinaryOp, UnaryOp};
use _C::Tensor;

fn ramp(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
        .collect()
}

fn sgemm(c: &mut Criterion) {
    let mut g = c.benchmark_group("sgemm");
    g.sample_size(10);
    for n in [256usize, 512, 1024] {
        let a = Tensor::from_vec(ramp(n * n), &[n, n]).unwrap();
        let b = Tensor::from_vec(ramp(n * n), &[n, n]).unwrap();
        g.throughput(Throughput::Elements((2 * n * n * n) as u64));
        g.bench_with_input(BenchmarkId::new("square", n), &n, |bench, _| {
            bench.iter(|| a.matmul(&b).unwrap())
        });
    }
    // A GPT-2 124M projection: (B*T = 512) x 768 @ 768 x 3072.
    let (m, k, n) = (512, 768, 3072);
    let a = Tensor::from_vec(ramp(m * k), &[m, k]).unwrap();
    let b = Tensor::from_vec(ramp(k * n), &[k, n]).unwrap();
    g.throughput(Throughput::Elements((2 * m * n * k) as u64));
    g.bench_function("gpt2_mlp_512x768x3072", |bench| {
        bench.iter(|| a.matmul(&b).unwrap())
    });
    g.finish();
}

fn elementwise(c: &mut Criterion) {
    let mut g = c.benchmark_group("elementwise");
    let n = 1 << 20;
    let a = Tensor::from_vec(ramp(n), &[n]).unwrap();
    let b = Tensor::from_vec(ramp(n), &[n]).unwrap();
    g.throughput(Throughput::Bytes((3 * 4 * n) as u64));
    g.bench_function("add_1M", |bench| {
        bench.iter(|| a.binary_t(BinaryOp::Add, &b).unwrap())
    });
    g.bench_function("mul_1M", |bench| {
        bench.iter(|| a.binary_t(BinaryOp::Mul, &b).unwrap())
    });
    g.throughput(Throughput::Bytes((2 * 4 * n) as u64));
    g.bench_function("gelu_tanh_1M", |bench| {
        bench.iter(|| a.unary(UnaryOp::GeluTanh).unwrap())
    });
    let m = Tensor::from_vec(ramp(n), &[1024, 1024]).unwrap();
    g.bench_function("softmax_1024x1024", |bench| {
        bench.iter(|| m.softmax(-1, false).unwrap())
    });
    g.finish();
}

criterion_group!(benches, sgemm, elementwise);
criterion_main!(benches);
