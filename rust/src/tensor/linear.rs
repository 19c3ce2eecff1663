//! `linear`: `x @ w.T + b` as one recorded op. The batch dims of `x` fold into the GEMM's rows,
//! the bias is written first and accumulated into, and backward computes each gradient with
//! one GEMM in the layout it is stored in: `gx = g @ w`, `gw = g.T @ x` (already `w`'s shape,
//! no transposed copy), `gb` = column sums of `g`.

use crate::dtype::{DType, Elem};
use crate::error::{Error, Result};
use crate::kernels::matmul::{gemm_into, gemv_rows, Mat, GEMV_ROWS};
use crate::op::{self, Op};
use crate::storage::try_vec;
use crate::tensor::reduce::ReduceOp as R;
use crate::tensor::Tensor;
use crate::with_f32_or_f64;

impl Tensor {
    /// torch's `F.linear(self, w, b)`: `self` (..., in), `w` (out, in), `b` (out,).
    pub fn linear(&self, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
        let autocast = match b {
            Some(b) => crate::autocast::product([self, w, b], |[x, w, b]| x.linear(w, Some(b))),
            None => crate::autocast::product([self, w], |[x, w]| x.linear(w, None)),
        };
        if let Some(r) = autocast {
            return r;
        }
        let fused = matches!(self.dtype(), DType::F32 | DType::F64)
            && self.dims() >= 2
            && w.dims() == 2
            && self.dtype() == w.dtype()
            && b.is_none_or(|b| b.dtype() == w.dtype() && b.shape() == [w.shape()[0]]);
        if !fused {
            // Other dtypes, vector inputs and broadcast biases: the composite definition.
            let out = self.matmul(&w.t()?)?;
            return match b {
                Some(b) => out.binary_t(crate::tensor::math::BinaryOp::Add, b),
                None => Ok(out),
            };
        }
        let (m, k) = rows(self);
        let (n, k2) = (w.shape()[0], w.shape()[1]);
        if k != k2 {
            let op = if b.is_some() { "addmm" } else { "mm" };
            return Err(Error::runtime(format!(
                "{op}: mat1 and mat2 shapes cannot be multiplied ({m}x{k} and {k2}x{n})"
            )));
        }
        let out = op::no_grad(|| -> Result<Tensor> {
            if let Some(dev) = crate::device::op_device("linear", &[self, w])? {
                use crate::device::Value;
                let args = [Value::Tensor(self), Value::Tensor(w), Value::OptTensor(b)];
                return crate::device::call1("linear", dev, &args);
            }
            let x2 = as_matrix(self)?;
            let mut shape = self.shape().to_vec();
            *shape.last_mut().expect("at least 2-D") = n;
            with_f32_or_f64!(self.dtype(), T, {
                let mut dst = try_vec::<T>("linear", &[m, n], T::zero())?;
                if let Some(b) = b {
                    let b = b.contiguous();
                    let bias = b.as_contiguous_slice::<T>().expect("contiguous");
                    dst.chunks_mut(n).for_each(|row| row.copy_from_slice(bias));
                }
                let (xm, wm) = (mat(&x2), mat_t(w));
                if m <= GEMV_ROWS && xm.cs == 1 && wm.rs == 1 {
                    gemv_rows(m, n, k, &mut dst, slice::<T>(&x2), xm, slice::<T>(w), wm);
                } else {
                    gemm_into(
                        m,
                        n,
                        k,
                        &mut dst,
                        b.is_some(),
                        slice::<T>(&x2),
                        xm,
                        slice::<T>(w),
                        wm,
                    );
                }
                Tensor::from_vec(dst, &shape)
            })
        })?;
        let mut inputs = vec![self, w];
        inputs.extend(b);
        Ok(out.record(&inputs, || Op::Linear {
            x: self.clone(),
            w: w.clone(),
            b: b.cloned(),
        }))
    }
}

/// Gradients of `linear` for `x`, `w` and `b` (each only when that input needs one). Under
/// `create_graph` they are built from recorded ops so they can be differentiated again.
pub fn linear_backward(
    g: &Tensor,
    x: &Tensor,
    w: &Tensor,
    has_bias: bool,
) -> Result<Vec<Option<Tensor>>> {
    let n = w.shape()[0];
    let g2 = g.reshape(&[-1, n as i64])?;
    let mut out = Vec::with_capacity(3);
    // Recorded ops under create_graph, and on the torch backend (which runs them as torch ops).
    if op::is_grad_enabled() || !g.device().is_native() {
        let x2 = x.reshape(&[-1, w.shape()[1] as i64])?;
        let shape: Vec<i64> = x.shape().iter().map(|&d| d as i64).collect();
        out.push(
            x.requires_grad()
                .then(|| g2.mm(w)?.reshape(&shape))
                .transpose()?,
        );
        out.push(w.requires_grad().then(|| g2.t()?.mm(&x2)).transpose()?);
        if has_bias {
            out.push(Some(g2.reduce(R::Sum, &[0], false, None)?));
        }
        return Ok(out);
    }
    let g2 = g2.contiguous();
    let (m, k) = rows(x);
    with_f32_or_f64!(g.dtype(), T, {
        let gs = slice::<T>(&g2);
        let gx = if x.requires_grad() {
            let mut dst = try_vec::<T>("linear backward", &[m, k], T::zero())?;
            gemm_into(
                m,
                k,
                n,
                &mut dst,
                false,
                gs,
                mat(&g2),
                slice::<T>(w),
                mat(w),
            );
            Some(Tensor::from_vec(dst, x.shape())?)
        } else {
            None
        };
        out.push(gx);
        let gw = if w.requires_grad() {
            let x2 = as_matrix(x)?;
            let mut dst = try_vec::<T>("linear backward", &[n, k], T::zero())?;
            gemm_into(
                n,
                k,
                m,
                &mut dst,
                false,
                gs,
                mat_t(&g2),
                slice::<T>(&x2),
                mat(&x2),
            );
            Some(Tensor::from_vec(dst, &[n, k])?)
        } else {
            None
        };
        out.push(gw);
        if has_bias {
            let rows = g2.as_contiguous_slice::<T>().expect("contiguous");
            out.push(Some(Tensor::from_vec(column_sums(rows, n), &[n])?));
        }
    });
    Ok(out)
}

/// Rows and columns of `x` seen as a matrix: (product of the leading dims, last dim).
fn rows(x: &Tensor) -> (usize, usize) {
    let k = *x.shape().last().expect("at least 1-D");
    (x.shape()[..x.dims() - 1].iter().product(), k)
}

/// `x` as a (rows, last dim) matrix: a view when its layout allows, else a contiguous copy.
fn as_matrix(x: &Tensor) -> Result<Tensor> {
    let (m, k) = rows(x);
    if x.dims() == 2 {
        return Ok(x.clone());
    }
    op::no_grad(|| match x.layout().view(&[m, k]) {
        Some(l) => Ok(Tensor::from_storage(x.storage().clone(), l)),
        None => x.contiguous().reshape(&[m as i64, k as i64]),
    })
}

fn slice<T: Elem>(t: &Tensor) -> &[T] {
    t.storage().as_slice::<T>()
}

/// A 2-D tensor as a GEMM operand.
fn mat(t: &Tensor) -> Mat {
    Mat {
        offset: t.layout().offset(),
        rs: t.stride()[0],
        cs: t.stride()[1],
    }
}

/// The transpose of a 2-D tensor as a GEMM operand (no copy: the strides swap).
fn mat_t(t: &Tensor) -> Mat {
    Mat {
        offset: t.layout().offset(),
        rs: t.stride()[1],
        cs: t.stride()[0],
    }
}

/// Sums of each column of a contiguous (rows, n) matrix, accumulated in f64.
fn column_sums<T: Elem>(g: &[T], n: usize) -> Vec<T> {
    let mut acc = vec![0f64; n];
    for row in g.chunks_exact(n) {
        acc.iter_mut().zip(row).for_each(|(a, v)| *a += v.to_f64());
    }
    acc.into_iter().map(T::from_f64).collect()
}
