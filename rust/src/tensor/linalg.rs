//! matmul with torch's rules (1-D, 2-D, batched with broadcasting), mm, bmm, addmm, outer,
//! and two-operand einsum.

use super::Tensor;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::kernels::matmul::{gemm_f, gemm_int, Mat};
use crate::shape::broadcast_shapes;

impl Tensor {
    /// torch.matmul.
    pub fn matmul(&self, rhs: &Tensor) -> Result<Tensor> {
        if let Some(r) = crate::autocast::product([self, rhs], |[a, b]| a.matmul(b)) {
            return r;
        }
        let (a, b) = (self, rhs);
        if a.dims() == 0 || b.dims() == 0 {
            return Err(Error::runtime(format!(
                "both arguments to matmul need to be at least 1D, but they are {}D and {}D",
                a.dims(),
                b.dims()
            )));
        }
        match (a.dims(), b.dims()) {
            (1, 1) => {
                if a.shape()[0] != b.shape()[0] {
                    return Err(Error::runtime(format!(
                        "inconsistent tensor size, expected tensor [{}] and src [{}] to have the same number of elements, but got {} and {} elements respectively",
                        a.shape()[0], b.shape()[0], a.shape()[0], b.shape()[0]
                    )));
                }
                a.unsqueeze(0)?.mm(&b.unsqueeze(1)?)?.reshape(&[])
            }
            (2, 1) => a.mm(&b.unsqueeze(1)?)?.squeeze(Some(&[-1])),
            (1, 2) => a.unsqueeze(0)?.mm(b)?.squeeze(Some(&[0])),
            (2, 2) => a.mm(b),
            (_, 2) if a.dims() > 2 => {
                // (..., m, k) @ (k, n): the batch dims fold into one GEMM's rows, as in torch.
                let k = a.shape()[a.dims() - 1];
                let rows: usize = a.shape()[..a.dims() - 1].iter().product();
                let mut shape: Vec<i64> = a.shape().iter().map(|&d| d as i64).collect();
                *shape.last_mut().expect("at least 3-D") = b.shape()[1] as i64;
                // Explicit sizes: with k == 0 a -1 could not be inferred.
                a.reshape(&[rows as i64, k as i64])?.mm(b)?.reshape(&shape)
            }
            _ => {
                // Batched: promote vectors to matrices, broadcast batch dims, squeeze back.
                let a2 = if a.dims() == 1 {
                    a.unsqueeze(0)?
                } else {
                    a.clone()
                };
                let b2 = if b.dims() == 1 {
                    b.unsqueeze(1)?
                } else {
                    b.clone()
                };
                let out = a2.batched_matmul(&b2)?;
                let out = if a.dims() == 1 {
                    out.squeeze(Some(&[-2]))?
                } else {
                    out
                };
                if b.dims() == 1 {
                    out.squeeze(Some(&[-1]))
                } else {
                    Ok(out)
                }
            }
        }
    }

    pub fn mm(&self, rhs: &Tensor) -> Result<Tensor> {
        if let Some(r) = crate::autocast::product([self, rhs], |[a, b]| a.mm(b)) {
            return r;
        }
        if self.dims() != 2 || rhs.dims() != 2 {
            return Err(Error::runtime(format!(
                "mm: expected 2D tensors, got {}D and {}D (shapes {:?} and {:?})",
                self.dims(),
                rhs.dims(),
                self.shape(),
                rhs.shape()
            )));
        }
        // Computed as a batch of one, recorded as the 2-D product (torch's MmBackward0).
        let out = crate::op::no_grad(|| {
            if let Some(dev) = crate::device::op_device("mm", &[self, rhs])? {
                if self.shape()[1] == rhs.shape()[0] && self.dtype() == rhs.dtype() {
                    use crate::device::Value;
                    let args = [Value::Tensor(self), Value::Tensor(rhs)];
                    return crate::device::call1("matmul", dev, &args);
                }
            }
            self.unsqueeze(0)?
                .batched_matmul(&rhs.unsqueeze(0)?)?
                .squeeze(Some(&[0]))
        })?;
        Ok(out.record(&[self, rhs], || crate::op::Op::Matmul {
            a: self.clone(),
            b: rhs.clone(),
        }))
    }

    pub fn bmm(&self, rhs: &Tensor) -> Result<Tensor> {
        if let Some(r) = crate::autocast::product([self, rhs], |[a, b]| a.bmm(b)) {
            return r;
        }
        if self.dims() != 3 || rhs.dims() != 3 {
            return Err(Error::runtime(format!(
                "batch1 must be a 3D tensor (bmm got shapes {:?} and {:?})",
                self.shape(),
                rhs.shape()
            )));
        }
        if self.shape()[0] != rhs.shape()[0] {
            return Err(Error::runtime(format!(
                "Expected size for first two dimensions of batch2 tensor to be: [{}, {}] but got: [{}, {}].",
                self.shape()[0],
                self.shape()[2],
                rhs.shape()[0],
                rhs.shape()[1]
            )));
        }
        self.batched_matmul(rhs)
    }

    /// [..., m, k] @ [..., k, n] with broadcast batch dims; both at least 2-D.
    fn batched_matmul(&self, rhs: &Tensor) -> Result<Tensor> {
        let out = crate::op::no_grad(|| self.batched_matmul_impl(rhs))?;
        Ok(out.record(&[self, rhs], || crate::op::Op::Matmul {
            a: self.clone(),
            b: rhs.clone(),
        }))
    }

    fn batched_matmul_impl(&self, rhs: &Tensor) -> Result<Tensor> {
        let (a, b) = (self, rhs);
        let dev = crate::device::op_device("matmul", &[a, b])?;
        let (na, nb) = (a.dims(), b.dims());
        let (m, k) = (a.shape()[na - 2], a.shape()[na - 1]);
        let (k2, n) = (b.shape()[nb - 2], b.shape()[nb - 1]);
        if k != k2 {
            return Err(Error::runtime(format!(
                "mat1 and mat2 shapes cannot be multiplied ({}x{} and {}x{})",
                m, k, k2, n
            )));
        }
        if a.dtype() != b.dtype() {
            return Err(Error::runtime(format!(
                "expected m1 and m2 to have the same dtype, but got: {} != {}",
                a.dtype().name(),
                b.dtype().name()
            )));
        }
        if let Some(dev) = dev {
            use crate::device::Value;
            return crate::device::call1("matmul", dev, &[Value::Tensor(a), Value::Tensor(b)]);
        }
        let batch = broadcast_shapes("matmul", &a.shape()[..na - 2], &b.shape()[..nb - 2])?;
        let with = |t: &Tensor, r: usize, c: usize| -> Result<Tensor> {
            let mut s = batch.clone();
            s.extend([r, c]);
            t.broadcast_as(&s)
        };
        let (a, b) = (with(a, m, k)?, with(b, k, n)?);
        let nbatch: usize = batch.iter().product();
        let mut out_shape = batch.clone();
        out_shape.extend([m, n]);
        let dt = a.dtype();
        // Offsets of each batch's matrix (batch dims may be strided or broadcast).
        let boffs = |t: &Tensor| -> Vec<usize> {
            let nd = t.dims();
            let l = crate::layout::Layout::new(
                batch.clone(),
                t.stride()[..nd - 2].to_vec(),
                t.layout().offset(),
            );
            l.offsets().collect()
        };
        let (oa, ob) = (boffs(&a), boffs(&b));
        let mat = |t: &Tensor, off: usize| {
            let nd = t.dims();
            Mat {
                offset: off,
                rs: t.stride()[nd - 2],
                cs: t.stride()[nd - 1],
            }
        };
        let out = match dt {
            DType::F32 => float_batches::<f32>(&a, &b, &oa, &ob, (m, n, k), &out_shape)?,
            DType::F64 => float_batches::<f64>(&a, &b, &oa, &ob, (m, n, k), &out_shape)?,
            DType::F16 | DType::BF16 => {
                return Ok(a
                    .to_dtype(DType::F32)
                    .batched_matmul(&b.to_dtype(DType::F32))?
                    .to_dtype(dt));
            }
            DType::Bool => {
                return Err(Error::UnsupportedDType {
                    op: "addmm_impl_cpu_",
                    dtype: dt,
                });
            }
            _ => {
                let (a64, b64) = (a.to_dtype(DType::I64), b.to_dtype(DType::I64));
                let (sa, sb) = (
                    a64.storage().as_slice::<i64>(),
                    b64.storage().as_slice::<i64>(),
                );
                let mut out = vec![0i64; nbatch * m * n];
                if m * n > 0 {
                    for (i, dst) in out.chunks_mut(m * n).enumerate() {
                        gemm_int(
                            m,
                            n,
                            k,
                            dst,
                            sa,
                            mat(&a64, boffs(&a64)[i]),
                            sb,
                            mat(&b64, boffs(&b64)[i]),
                        );
                    }
                }
                Tensor::from_vec(out, &out_shape)?.to_dtype(dt)
            }
        };
        Ok(out)
    }

    pub fn outer(&self, rhs: &Tensor) -> Result<Tensor> {
        if self.dims() != 1 || rhs.dims() != 1 {
            return Err(Error::runtime(format!(
                "outer: expected 1D tensors, got shapes {:?} and {:?}",
                self.shape(),
                rhs.shape()
            )));
        }
        self.unsqueeze(1)?
            .binary_t(super::math::BinaryOp::Mul, &rhs.unsqueeze(0)?)
    }
}

/// One GEMM per batch entry; `oa`/`ob` are the offsets of each batch's matrices.
fn float_batches<T: crate::dtype::Elem + crate::kernels::matmul::GemmFloat>(
    a: &Tensor,
    b: &Tensor,
    oa: &[usize],
    ob: &[usize],
    (m, n, k): (usize, usize, usize),
    out_shape: &[usize],
) -> Result<Tensor> {
    let (sa, sb) = (a.storage().as_slice::<T>(), b.storage().as_slice::<T>());
    let mut out = crate::storage::try_vec::<T>("matmul", out_shape, T::zero())?;
    let mat = |t: &Tensor, off: usize| {
        let nd = t.dims();
        Mat {
            offset: off,
            rs: t.stride()[nd - 2],
            cs: t.stride()[nd - 1],
        }
    };
    if m * n > 0 {
        for (i, dst) in out.chunks_mut(m * n).enumerate() {
            gemm_f(m, n, k, dst, sa, mat(a, oa[i]), sb, mat(b, ob[i]));
        }
    }
    Tensor::from_vec(out, out_shape)
}
