//! Kernel tests against obvious reference loops (the Python suite compares with torch).

use super::*;
use crate::tensor::math::{BinaryOp, UnaryOp};
use crate::tensor::reduce::ReduceOp;

fn t(v: Vec<f64>, shape: &[usize]) -> Tensor {
    Tensor::from_vec(v, shape).unwrap()
}

fn ramp(n: usize) -> Vec<f64> {
    (0..n).map(|i| ((i * 37) % 11) as f64 - 5.0).collect()
}

#[test]
fn broadcast_add_matches_loops() {
    let a = t(ramp(6), &[2, 3, 1]);
    let b = t(ramp(4), &[4]);
    let c = a.binary_t(BinaryOp::Add, &b).unwrap();
    assert_eq!(c.shape(), &[2, 3, 4]);
    let (va, vb, vc) = (a.to_vec::<f64>(), b.to_vec::<f64>(), c.to_vec::<f64>());
    for i in 0..6 {
        for j in 0..4 {
            assert_eq!(vc[i * 4 + j], va[i] + vb[j]);
        }
    }
}

#[test]
fn matmul_of_transposed_views_matches_triple_loop() {
    let (m, k, n) = (5, 7, 3);
    // Stored as [k, m] and transposed: a non-contiguous left operand.
    let a = t(ramp(m * k), &[k, m]).t().unwrap();
    let b = t(ramp(k * n).into_iter().rev().collect(), &[k, n]);
    let c = a.matmul(&b).unwrap();
    let (va, vb, vc) = (a.to_vec::<f64>(), b.to_vec::<f64>(), c.to_vec::<f64>());
    for i in 0..m {
        for j in 0..n {
            let want: f64 = (0..k).map(|p| va[i * k + p] * vb[p * n + j]).sum();
            assert!((vc[i * n + j] - want).abs() < 1e-12);
        }
    }
}

#[test]
fn batched_matmul_broadcasts_batch_dims() {
    let a = t(ramp(2 * 3 * 4), &[2, 1, 3, 4]);
    let b = t(ramp(5 * 4 * 2), &[5, 4, 2]);
    let c = a.matmul(&b).unwrap();
    assert_eq!(c.shape(), &[2, 5, 3, 2]);
    let one = a
        .select(0, 1)
        .unwrap()
        .select(0, 0)
        .unwrap()
        .matmul(&b.select(0, 3).unwrap())
        .unwrap();
    let picked = c.select(0, 1).unwrap().select(0, 3).unwrap();
    assert_eq!(one.to_vec::<f64>(), picked.to_vec::<f64>());
}

#[test]
fn reductions_over_dims() {
    let x = t(ramp(24), &[2, 3, 4]);
    let s = x.reduce(ReduceOp::Sum, &[0, 2], false, None).unwrap();
    let v = x.to_vec::<f64>();
    for j in 0..3 {
        let want: f64 = (0..2)
            .flat_map(|i| (0..4).map(move |k| (i, k)))
            .map(|(i, k)| v[i * 12 + j * 4 + k])
            .sum();
        assert_eq!(s.to_vec::<f64>()[j], want);
    }
    let (vals, idx) = x.max_min_dim(-1, true, true).unwrap();
    assert_eq!(vals.shape(), &[2, 3, 1]);
    for r in 0..6 {
        let row = &v[r * 4..r * 4 + 4];
        let m = row.iter().cloned().fold(f64::MIN, f64::max);
        assert_eq!(vals.to_vec::<f64>()[r], m);
        assert_eq!(row[idx.to_vec::<i64>()[r] as usize], m);
    }
}

#[test]
fn softmax_rows_sum_to_one() {
    let x = t(ramp(12), &[3, 4]).t().unwrap();
    let p = x.softmax(0, false).unwrap();
    let sums = p.reduce(ReduceOp::Sum, &[0], false, None).unwrap();
    assert!(sums.to_vec::<f64>().iter().all(|s| (s - 1.0).abs() < 1e-12));
}

#[test]
fn gelu_and_sigmoid_values() {
    let x = t(vec![-1.0, 0.0, 2.0], &[3]);
    let s = x.unary(UnaryOp::Sigmoid).unwrap().to_vec::<f64>();
    for (v, &a) in s.iter().zip(&[-1.0f64, 0.0, 2.0]) {
        assert!((v - 1.0 / (1.0 + (-a).exp())).abs() < 1e-15);
    }
    let g = x.unary(UnaryOp::Gelu).unwrap().to_vec::<f64>();
    assert!((g[2] - 2.0 * 0.5 * (1.0 + libm::erf(2.0 / 2f64.sqrt()))).abs() < 1e-15);
}

#[test]
fn in_place_write_through_a_view_reaches_the_base() {
    let base = Tensor::zeros(&[3, 4], DType::F32).unwrap();
    let col = base.select(1, 2).unwrap();
    col.copy_(&Tensor::scalar(Scalar::Float(7.0), DType::F32))
        .unwrap();
    let v = base.to_vec::<f32>();
    assert_eq!(v.iter().filter(|&&x| x == 7.0).count(), 3);
    assert_eq!(v[2], 7.0);
    assert!(base.storage().version() > 0);
}

#[test]
fn advanced_index_places_dims_like_numpy() {
    let x = t(ramp(60), &[3, 4, 5]);
    let i = Tensor::from_vec(vec![0i64, 2], &[2]).unwrap();
    // Adjacent advanced indices stay in place; separated ones move to the front.
    let a = x
        .index(&[
            TensorIndex::Slice(None, None, 1),
            TensorIndex::Tensor(i.clone()),
        ])
        .unwrap();
    assert_eq!(a.shape(), &[3, 2, 5]);
    let b = x
        .index(&[
            TensorIndex::Tensor(i.clone()),
            TensorIndex::Slice(None, None, 1),
            TensorIndex::Tensor(i),
        ])
        .unwrap();
    assert_eq!(b.shape(), &[2, 4]);
}

#[test]
fn huge_allocations_fail_cleanly() {
    let big = Tensor::zeros(&[1, 1], DType::F32)
        .unwrap()
        .broadcast_as(&[1 << 40, 1 << 20])
        .unwrap();
    assert!(matches!(
        big.unary(UnaryOp::Exp),
        Err(Error::OutOfMemory { .. })
    ));
    assert!(Tensor::zeros(&[1 << 62, 4], DType::F64).is_err());
}
