//! Reductions over dims (sum, mean, prod, var/std, max/min, argmax, all/any, logsumexp, norm),
//! the row-wise ops that share their plumbing (softmax, log_softmax, cumsum, sort, topk).

use super::Tensor;
use crate::device::{self, Value};
use crate::dtype::{DType, Elem};
use crate::error::{Error, Result};
use crate::kernels::reduce::{arg_extreme, rows, rows_inplace, sum_f64};
use crate::op::Op;
use crate::shape::normalize_dims;
use crate::with_dtype;

/// A tensor rearranged as contiguous rows: reduced dims last.
struct Rows {
    t: Tensor,
    n_rows: usize,
    r: usize,
    keep_shape: Vec<usize>,
    drop_shape: Vec<usize>,
}

impl Rows {
    fn out_shape(&self, keepdim: bool) -> &[usize] {
        if keepdim {
            &self.keep_shape
        } else {
            &self.drop_shape
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReduceOp {
    Sum,
    Mean,
    Prod,
    Max,
    Min,
    All,
    Any,
    LogSumExp,
}

impl Tensor {
    /// The dims a reduction over `dims` covers (all when empty), checked. A 0-d tensor accepts
    /// 0 and -1 and has none: it reduces over its one (virtual) element.
    fn reduced_dims(&self, dims: &[i64]) -> Result<Vec<usize>> {
        let nd = self.dims();
        if nd == 0 {
            for &d in dims {
                normalize_dims(&[d], 0)?;
            }
            return Ok(vec![]);
        }
        if dims.is_empty() {
            Ok((0..nd).collect())
        } else {
            normalize_dims(dims, nd)
        }
    }

    /// `(elements per row, rows)` of a reduction over `dims`, without staging anything.
    fn reduction_sizes(&self, dims: &[i64]) -> Result<(usize, usize)> {
        let reduced = self.reduced_dims(dims)?;
        let (mut r, mut n_rows) = (1, 1);
        for (d, &size) in self.shape().iter().enumerate() {
            if reduced.contains(&d) {
                r *= size;
            } else {
                n_rows *= size;
            }
        }
        Ok((r, n_rows))
    }

    /// Permutes the given dims (empty = all) to the end and makes the tensor contiguous.
    fn as_rows(&self, dims: &[i64]) -> Result<Rows> {
        let nd = self.dims();
        let dims = self.reduced_dims(dims)?;
        if nd == 0 {
            return Ok(Rows {
                t: self.clone(),
                n_rows: 1,
                r: 1,
                keep_shape: vec![],
                drop_shape: vec![],
            });
        }
        let kept: Vec<usize> = (0..nd).filter(|d| !dims.contains(d)).collect();
        let perm: Vec<i64> = kept.iter().chain(dims.iter()).map(|&d| d as i64).collect();
        // The rows are staged contiguously (and in f64): an expanded view far larger than its
        // storage may not fit, which must be an error rather than an abort.
        crate::storage::check_alloc("reduction", self.shape(), DType::F64)?;
        let t = self.permute(&perm)?.contiguous();
        let r: usize = dims.iter().map(|&d| self.shape()[d]).product();
        let n_rows: usize = kept.iter().map(|&d| self.shape()[d]).product();
        let keep_shape = (0..nd)
            .map(|d| {
                if dims.contains(&d) {
                    1
                } else {
                    self.shape()[d]
                }
            })
            .collect();
        let drop_shape = kept.iter().map(|&d| self.shape()[d]).collect();
        Ok(Rows {
            t,
            n_rows,
            r,
            keep_shape,
            drop_shape,
        })
    }

    pub fn reduce(
        &self,
        op: ReduceOp,
        dims: &[i64],
        keepdim: bool,
        dtype: Option<DType>,
    ) -> Result<Tensor> {
        let x = match dtype {
            Some(d) if d != self.dtype() && d != DType::Bool => self.to_dtype(d),
            _ => self.clone(),
        };
        // `x` is already in the requested dtype: the kernel's own cast is then a no-op.
        let out = crate::op::no_grad(|| x.reduce_impl(op, dims, keepdim, dtype))?;
        if matches!(op, ReduceOp::All | ReduceOp::Any) {
            return Ok(out);
        }
        let saved = out.detach();
        Ok(out.record(&[&x], || Op::Reduce {
            op,
            x: x.clone(),
            dims: dims.to_vec(),
            keepdim,
            out: saved,
        }))
    }

    fn reduce_impl(
        &self,
        op: ReduceOp,
        dims: &[i64],
        keepdim: bool,
        dtype: Option<DType>,
    ) -> Result<Tensor> {
        use ReduceOp::*;
        let src = match dtype {
            Some(d) => self.to_dtype(d),
            None => self.clone(),
        };
        let dt = src.dtype();
        // torch refuses an integer mean before it looks at the dims.
        if op == Mean && !dt.is_float() {
            return Err(Error::NotImplemented(format!(
                "mean(): could not infer output dtype. Input dtype must be either a floating point or complex dtype. Got: {dt}"
            )));
        }
        if let Some(dev) = device::op_device("reduce", &[&src])? {
            src.reduced_dims(dims)?;
            let name = match op {
                Sum => "sum",
                Mean => "mean",
                Prod => "prod",
                Max => "max",
                Min => "min",
                All => "all",
                Any => "any",
                LogSumExp => "logsumexp",
            };
            let args = [
                Value::Str(name),
                Value::Tensor(&src),
                Value::Ints(dims.to_vec()),
                Value::Bool(keepdim),
                Value::Bool(dtype.is_some_and(|d| d != DType::Bool)),
            ];
            return device::call1("reduce", dev, &args);
        }
        let rows_ = src.as_rows(dims)?;
        let shape = rows_.out_shape(keepdim).to_vec();
        let (n, r) = (rows_.n_rows, rows_.r);
        match op {
            Sum | Prod => {
                let out_dt = match dtype {
                    Some(d) if d != DType::Bool => d,
                    _ if dt.is_float() => dt,
                    _ => DType::I64,
                };
                if out_dt.is_float() {
                    let v: Vec<f64> = with_dtype!(dt, T, {
                        let data = rows_.t.to_vec::<T>();
                        if op == Sum {
                            rows(&data, n, r, sum_f64::<T>)
                        } else {
                            rows(&data, n, r, |row: &[T]| {
                                row.iter().map(|x| x.to_f64()).product()
                            })
                        }
                    });
                    Ok(Tensor::from_vec(v, &shape)?.to_dtype(out_dt))
                } else {
                    let data = rows_.t.to_vec_as::<i64>();
                    let v: Vec<i64> = if op == Sum {
                        rows(&data, n, r, |row: &[i64]| {
                            row.iter().fold(0i64, |a, &b| a.wrapping_add(b))
                        })
                    } else {
                        rows(&data, n, r, |row: &[i64]| {
                            row.iter().fold(1i64, |a, &b| a.wrapping_mul(b))
                        })
                    };
                    Ok(Tensor::from_vec(v, &shape)?.to_dtype(out_dt))
                }
            }
            Mean => {
                if !dt.is_float() {
                    return Err(Error::NotImplemented(format!(
                        "mean(): could not infer output dtype. Input dtype must be either a floating point or complex dtype. Got: {dt}"
                    )));
                }
                let v: Vec<f64> = with_dtype!(dt, T, {
                    let data = rows_.t.to_vec::<T>();
                    rows(&data, n, r, |row: &[T]| sum_f64(row) / r as f64)
                });
                Ok(Tensor::from_vec(v, &shape)?.to_dtype(dt))
            }
            Max | Min => {
                if r == 0 {
                    let name = if op == Max { "amax" } else { "amin" };
                    if dims.is_empty() {
                        return Err(Error::runtime(format!(
                            "{name}(): Expected reduction dim to be specified for input.numel() == 0. Specify the reduction dim with the 'dim' argument (input shape {:?}).",
                            self.shape()
                        )));
                    }
                    return Err(Error::Index(format!(
                        "{name}(): Expected reduction dim {dims:?} to have non-zero size (input shape {:?}).",
                        self.shape()
                    )));
                }
                with_dtype!(dt, T, {
                    let data = rows_.t.to_vec::<T>();
                    let v: Vec<T> = rows(&data, n, r, |row: &[T]| arg_extreme(row, op == Max).1);
                    Tensor::from_vec(v, &shape)
                })
            }
            All | Any => {
                let v: Vec<bool> = with_dtype!(dt, T, {
                    let data = rows_.t.to_vec::<T>();
                    if op == All {
                        rows(&data, n, r, |row: &[T]| row.iter().all(|x| x.is_nonzero()))
                    } else {
                        rows(&data, n, r, |row: &[T]| row.iter().any(|x| x.is_nonzero()))
                    }
                });
                // torch keeps uint8 for all/any of uint8 inputs.
                let out = Tensor::from_vec(v, &shape)?;
                Ok(if dt == DType::U8 {
                    out.to_dtype(DType::U8)
                } else {
                    out
                })
            }
            LogSumExp => {
                let fdt = if dt.is_float() { dt } else { DType::F32 };
                let data = rows_.t.to_vec_as::<f64>();
                let v: Vec<f64> = rows(&data, n, r, |row: &[f64]| logsumexp_row(row));
                Ok(Tensor::from_vec(v, &shape)?.to_dtype(fdt))
            }
        }
    }

    /// Variance (`std` = its square root) with Bessel-style `correction`.
    pub fn var(
        &self,
        dims: &[i64],
        correction: f64,
        keepdim: bool,
        take_sqrt: bool,
    ) -> Result<Tensor> {
        let out = crate::op::no_grad(|| self.var_impl(dims, correction, keepdim, take_sqrt))?;
        let saved = out.detach();
        Ok(out.record(&[self], || Op::Var {
            x: self.clone(),
            dims: dims.to_vec(),
            correction,
            keepdim,
            sqrt: take_sqrt,
            out: saved,
        }))
    }

    fn var_impl(
        &self,
        dims: &[i64],
        correction: f64,
        keepdim: bool,
        take_sqrt: bool,
    ) -> Result<Tensor> {
        let dt = self.dtype();
        if !dt.is_float() {
            return Err(Error::NotImplemented(format!(
                "std and var only support floating point and complex dtypes, got {dt}"
            )));
        }
        if let Some(dev) = device::op_device("var", &[self])? {
            self.reduced_dims(dims)?;
            let args = [
                Value::Tensor(self),
                Value::Ints(dims.to_vec()),
                Value::Float(correction),
                Value::Bool(keepdim),
                Value::Bool(take_sqrt),
            ];
            return device::call1("var", dev, &args);
        }
        let rows_ = self.as_rows(dims)?;
        let r = rows_.r;
        let data = rows_.t.to_vec_as::<f64>();
        let v: Vec<f64> = rows(&data, rows_.n_rows, r, |row: &[f64]| {
            let mean = row.iter().sum::<f64>() / r as f64;
            let ss: f64 = row.iter().map(|x| (x - mean) * (x - mean)).sum();
            let var = ss / (r as f64 - correction).max(0.0);
            if take_sqrt {
                var.sqrt()
            } else {
                var
            }
        });
        Ok(Tensor::from_vec(v, rows_.out_shape(keepdim))?.to_dtype(dt))
    }

    /// Values and indices of the max/min along one dim.
    pub fn max_min_dim(&self, dim: i64, keepdim: bool, want_max: bool) -> Result<(Tensor, Tensor)> {
        let (v, i) = crate::op::no_grad(|| self.max_min_dim_impl(dim, keepdim, want_max))?;
        let d = self.dim(dim)?;
        let saved = i.clone();
        let v = v.record(&[self], || Op::MaxDim {
            x: self.clone(),
            dim: d,
            keepdim,
            indices: saved,
        });
        Ok((v, i))
    }

    fn max_min_dim_impl(
        &self,
        dim: i64,
        keepdim: bool,
        want_max: bool,
    ) -> Result<(Tensor, Tensor)> {
        let d = self.dim(dim)?;
        let rows_ = self.as_rows(&[dim])?;
        if rows_.r == 0 {
            return Err(Error::Index(format!(
                "{}(): Expected reduction dim {d} to have non-zero size.",
                if want_max { "max" } else { "min" }
            )));
        }
        if let Some(dev) = device::op_device("max", &[self])? {
            let args = [
                Value::Tensor(self),
                Value::Int(d as i64),
                Value::Bool(keepdim),
                Value::Bool(want_max),
            ];
            let [v, i] = device::call_n("max_min_dim", dev, &args)?;
            return Ok((v, i));
        }
        let shape = rows_.out_shape(keepdim).to_vec();
        with_dtype!(self.dtype(), T, {
            let data = rows_.t.to_vec::<T>();
            let pairs: Vec<(usize, T)> = rows(&data, rows_.n_rows, rows_.r, |row: &[T]| {
                arg_extreme(row, want_max)
            });
            let vals: Vec<T> = pairs.iter().map(|p| p.1).collect();
            let idx: Vec<i64> = pairs.iter().map(|p| p.0 as i64).collect();
            Ok((
                Tensor::from_vec(vals, &shape)?,
                Tensor::from_vec(idx, &shape)?,
            ))
        })
    }

    /// argmax/argmin; without a dim, over the flattened tensor.
    pub fn argmax_min(&self, dim: Option<i64>, keepdim: bool, want_max: bool) -> Result<Tensor> {
        let name = if want_max { "argmax" } else { "argmin" };
        if self.dtype() == DType::Bool {
            return Err(Error::NotImplemented(format!(
                "{name}(): does not support bool input"
            )));
        }
        match dim {
            Some(d) => {
                let d_ = self.dim(d)?;
                if self.dims() > 0 && self.shape()[d_] == 0 {
                    return Err(Error::Index(format!(
                        "{name}(): Expected reduction dim {d_} to have non-zero size."
                    )));
                }
                Ok(self.max_min_dim(d, keepdim, want_max)?.1)
            }
            None => {
                if self.elem_count() == 0 {
                    return Err(Error::Index(format!(
                        "{name}(): Expected reduction dim to be specified for input.numel() == 0."
                    )));
                }
                let flat = self.reshape(&[-1])?;
                let idx = flat.max_min_dim(0, false, want_max)?.1;
                if keepdim {
                    idx.reshape(&vec![1; self.dims()])
                } else {
                    Ok(idx)
                }
            }
        }
    }

    /// Applies a row function along `dim` and puts the dim back where it was.
    fn along_dim<O: Elem>(
        &self,
        dim: i64,
        f: impl Fn(&[f64], &mut [O]) + Sync + Send,
    ) -> Result<Tensor> {
        let d = self.dim(dim)?;
        let rows_ = self.as_rows(&[dim])?;
        let data = rows_.t.to_vec_as::<f64>();
        let out = rows_inplace(&data, rows_.r, f);
        self.unrow(out, d, rows_.r)
    }

    /// Turns row-major rows (dim `d` moved last, length `r`) back into our shape.
    fn unrow<O: Elem>(&self, out: Vec<O>, d: usize, r: usize) -> Result<Tensor> {
        let nd = self.dims();
        if nd == 0 {
            return Tensor::from_vec(out, &[]);
        }
        let mut moved: Vec<usize> = (0..nd)
            .filter(|&i| i != d)
            .map(|i| self.shape()[i])
            .collect();
        moved.push(r);
        let t = Tensor::from_vec(out, &moved)?;
        // Inverse of moving d to the end.
        let mut perm: Vec<i64> = (0..nd as i64 - 1).collect();
        perm.insert(d, nd as i64 - 1);
        Ok(t.permute(&perm)?.contiguous())
    }

    /// The fused gradient of (log-)softmax along `dim` from its output `self` and the
    /// incoming gradient `g`: `y·(g − Σ g·y)` or `g − exp(y)·Σ g`, one pass per row.
    pub fn softmax_backward(&self, g: &Tensor, dim: i64, log: bool) -> Result<Tensor> {
        let d = self.dim(dim)?;
        let g = g.broadcast_as(self.shape())?;
        if let Some(dev) = device::op_device("softmax_backward", &[self, &g])? {
            let g = g.to_dtype(self.dtype());
            let args = [
                Value::Tensor(self),
                Value::Tensor(&g),
                Value::Int(d as i64),
                Value::Bool(log),
            ];
            return device::call1("softmax_backward", dev, &args);
        }
        let (yo, go) = (self.as_rows(&[dim])?, g.as_rows(&[dim])?);
        let r = yo.r;
        let (yv, gv) = (yo.t.to_vec_as::<f64>(), go.t.to_vec_as::<f64>());
        let mut res = vec![0f64; yv.len()];
        if r > 0 {
            use rayon::prelude::*;
            res.par_chunks_mut(r)
                .zip(yv.par_chunks(r).zip(gv.par_chunks(r)))
                .for_each(|(o, (y, g))| {
                    if log {
                        let s: f64 = g.iter().sum();
                        for j in 0..r {
                            o[j] = g[j] - y[j].exp() * s;
                        }
                    } else {
                        let s: f64 = g.iter().zip(y).map(|(a, b)| a * b).sum();
                        for j in 0..r {
                            o[j] = y[j] * (g[j] - s);
                        }
                    }
                });
        }
        Ok(self.unrow(res, d, r)?.to_dtype(self.dtype()))
    }

    pub fn softmax(&self, dim: i64, log: bool) -> Result<Tensor> {
        if crate::autocast::wants_f32_on_gpu(&[Some(self)]) {
            let x = crate::autocast::upcast(self);
            return crate::autocast::off(|| x.softmax(dim, log));
        }
        let out = crate::op::no_grad(|| self.softmax_impl(dim, log))?;
        let saved = out.detach();
        Ok(out.record(&[self], || Op::Softmax {
            x: self.clone(),
            out: saved,
            dim,
            log,
        }))
    }

    fn softmax_impl(&self, dim: i64, log: bool) -> Result<Tensor> {
        self.dim(dim)?;
        if self.elem_count() == 0 {
            // Nothing to compute: torch hands back an empty tensor of the input's dtype.
            return Ok(self.deep_copy());
        }
        let dt = if self.dtype().is_float() {
            self.dtype()
        } else {
            DType::F32
        };
        if !self.dtype().is_float() {
            return Err(Error::NotImplemented(format!(
                "\"{}_lastdim_kernel_impl\" not implemented for '{}'",
                if log { "log_softmax" } else { "softmax" },
                self.dtype()
            )));
        }
        if let Some(dev) = device::op_device("softmax", &[self])? {
            let args = [Value::Tensor(self), Value::Int(dim), Value::Bool(log)];
            return device::call1("softmax", dev, &args);
        }
        let out = self.along_dim(dim, |row: &[f64], o: &mut [f64]| {
            // Shift by the max for stability; an all -inf row stays NaN like torch's (0/0).
            let m = nan_max(row);
            let m = if m == f64::NEG_INFINITY { 0.0 } else { m };
            let s: f64 = row.iter().map(|x| (x - m).exp()).sum();
            if log {
                let ls = s.ln();
                for (o, x) in o.iter_mut().zip(row) {
                    *o = x - m - ls;
                }
            } else {
                for (o, x) in o.iter_mut().zip(row) {
                    *o = (x - m).exp() / s;
                }
            }
        })?;
        Ok(out.to_dtype(dt))
    }

    pub fn cumsum(&self, dim: i64, dtype: Option<DType>) -> Result<Tensor> {
        let x = match dtype {
            Some(d) if d != self.dtype() => self.to_dtype(d),
            _ => self.clone(),
        };
        let out = crate::op::no_grad(|| x.cumsum_impl(dim, None))?;
        Ok(out.record(&[&x], || Op::Cumsum { x: x.clone(), dim }))
    }

    fn cumsum_impl(&self, dim: i64, dtype: Option<DType>) -> Result<Tensor> {
        let src = match dtype {
            Some(d) => self.to_dtype(d),
            None => self.clone(),
        };
        let dt = src.dtype();
        if let Some(dev) = device::op_device("cumsum", &[&src])? {
            src.dim(dim)?;
            return device::call1("cumsum", dev, &[Value::Tensor(&src), Value::Int(dim)]);
        }
        if dt.is_float() {
            let out = src.along_dim(dim, |row: &[f64], o: &mut [f64]| {
                let mut acc = 0.0;
                for (o, x) in o.iter_mut().zip(row) {
                    acc += x;
                    *o = acc;
                }
            })?;
            return Ok(out.to_dtype(dt));
        }
        let d = src.dim(dim)?;
        let rows_ = src.as_rows(&[dim])?;
        let data = rows_.t.to_vec_as::<i64>();
        let out = rows_inplace(&data, rows_.r, |row: &[i64], o: &mut [i64]| {
            let mut acc = 0i64;
            for (o, x) in o.iter_mut().zip(row) {
                acc = acc.wrapping_add(*x);
                *o = acc;
            }
        });
        src.unrow(out, d, rows_.r)
    }

    /// Sorted values and their original indices along `dim` (stable; NaN sorts as largest).
    pub fn sort(&self, dim: i64, descending: bool) -> Result<(Tensor, Tensor)> {
        let (v, i) = crate::op::no_grad(|| self.sort_impl(dim, descending))?;
        if crate::op::is_grad_enabled() && self.requires_grad() && self.dims() > 0 {
            // The values are a gather of the input: differentiable through that.
            return Ok((self.gather(dim, &i)?, i));
        }
        Ok((v, i))
    }

    fn sort_impl(&self, dim: i64, descending: bool) -> Result<(Tensor, Tensor)> {
        let d = self.dim(dim)?;
        if let Some(dev) = device::op_device("sort", &[self])? {
            let args = [
                Value::Tensor(self),
                Value::Int(d as i64),
                Value::Bool(descending),
            ];
            let [v, i] = device::call_n("sort", dev, &args)?;
            return Ok((v, i));
        }
        let rows_ = self.as_rows(&[dim])?;
        let r = rows_.r;
        with_dtype!(self.dtype(), T, {
            let data = rows_.t.to_vec::<T>();
            let idx: Vec<i64> = rows_inplace(&data, r, |row: &[T], o: &mut [i64]| {
                let mut order: Vec<usize> = (0..row.len()).collect();
                order.sort_by(|&a, &b| {
                    let c = total_cmp(row[a], row[b]);
                    if descending {
                        c.reverse()
                    } else {
                        c
                    }
                });
                for (o, i) in o.iter_mut().zip(order) {
                    *o = i as i64;
                }
            });
            let vals: Vec<T> = data
                .chunks(r.max(1))
                .zip(idx.chunks(r.max(1)))
                .flat_map(|(row, ix)| ix.iter().map(move |&i| row[i as usize]))
                .collect();
            Ok((self.unrow(vals, d, r)?, self.unrow(idx, d, r)?))
        })
    }

    /// The k largest (or smallest) along `dim`, sorted.
    pub fn topk(&self, k: i64, dim: i64, largest: bool) -> Result<(Tensor, Tensor)> {
        let d = self.dim(dim)?;
        let size = if self.dims() == 0 { 1 } else { self.shape()[d] };
        if k < 0 || k as usize > size {
            return Err(Error::runtime(format!(
                "selected index k out of range (k = {k}, size of dim {d} = {size})"
            )));
        }
        let (v, i) = self.sort(dim, largest)?;
        if self.dims() == 0 {
            return Ok((v, i));
        }
        Ok((
            v.narrow(d as i64, 0, k)?.contiguous(),
            i.narrow(d as i64, 0, k)?.contiguous(),
        ))
    }

    /// p-norm over dims (all when empty). p = inf / -inf give max/min of |x|. When the graph
    /// is recorded it is composed from differentiable ops (the fused kernel otherwise).
    pub fn norm(&self, p: f64, dims: &[i64], keepdim: bool) -> Result<Tensor> {
        use crate::tensor::math::{BinaryOp as B, UnaryOp as U};
        use crate::tensor::Scalar;
        let dt = self.dtype();
        if !dt.is_float() {
            return Err(Error::NotImplemented(format!(
                "linalg.vector_norm: Expected a floating point or complex tensor as input. Got {dt}"
            )));
        }
        let (r, n_rows) = self.reduction_sizes(dims)?;
        if p.is_infinite() && r == 0 {
            return Err(Error::runtime(format!(
                "linalg.vector_norm cannot compute the {p} norm over dims {dims:?} of shape {:?}: they are empty and the operation has no identity",
                self.shape()
            )));
        }
        if crate::op::is_grad_enabled() && self.requires_grad() {
            let a = self.unary(U::Abs)?;
            return if n_rows == 0 {
                // No output element: any reduction of |x| gives the shape (and a zero gradient).
                a.reduce(ReduceOp::Sum, dims, keepdim, None)
            } else if p == f64::INFINITY {
                a.reduce(ReduceOp::Max, dims, keepdim, None)
            } else if p == f64::NEG_INFINITY {
                a.reduce(ReduceOp::Min, dims, keepdim, None)
            } else if p == 1.0 {
                a.reduce(ReduceOp::Sum, dims, keepdim, None)
            } else if p == 2.0 {
                let s = self
                    .binary_t(B::Mul, self)?
                    .reduce(ReduceOp::Sum, dims, keepdim, None)?;
                root_or_zero(&s, |s| s.unary(U::Sqrt))
            } else {
                let s = a.binary_s(B::Pow, Scalar::Float(p))?.reduce(
                    ReduceOp::Sum,
                    dims,
                    keepdim,
                    None,
                )?;
                root_or_zero(&s, |s| s.binary_s(B::Pow, Scalar::Float(1.0 / p)))
            };
        }
        self.norm_impl(p, dims, keepdim)
    }

    fn norm_impl(&self, p: f64, dims: &[i64], keepdim: bool) -> Result<Tensor> {
        if let Some(dev) = device::op_device("norm", &[self])? {
            let args = [
                Value::Tensor(self),
                Value::Float(p),
                Value::Ints(dims.to_vec()),
                Value::Bool(keepdim),
            ];
            return device::call1("norm", dev, &args);
        }
        let rows_ = self.as_rows(dims)?;
        let data = rows_.t.to_vec_as::<f64>();
        let v: Vec<f64> = rows(&data, rows_.n_rows, rows_.r, |row: &[f64]| {
            let a = row.iter().map(|x| x.abs());
            if p == f64::INFINITY {
                a.fold(0.0, f64::max)
            } else if p == f64::NEG_INFINITY {
                a.fold(f64::INFINITY, f64::min)
            } else if p == 0.0 {
                a.filter(|&x| x != 0.0).count() as f64
            } else if p == 1.0 {
                a.sum()
            } else if p == 2.0 {
                a.map(|x| x * x).sum::<f64>().sqrt()
            } else {
                a.map(|x| x.powf(p)).sum::<f64>().powf(1.0 / p)
            }
        });
        Ok(Tensor::from_vec(v, rows_.out_shape(keepdim))?.to_dtype(self.dtype()))
    }
}

/// `root(s)` whose gradient is 0 where `s` is 0 (torch masks a zero norm's infinite slope):
/// the root is taken of 1 there and the result replaced by 0, so no inf * 0 reaches the input.
fn root_or_zero(s: &Tensor, root: impl Fn(&Tensor) -> Result<Tensor>) -> Result<Tensor> {
    use crate::tensor::math::{Arg, BinaryOp as B};
    use crate::tensor::Scalar;
    let zero = s.binary_s(B::Eq, Scalar::Int(0))?;
    let one = Tensor::full(&[], Scalar::Int(1), s.dtype())?;
    let safe = Tensor::where_(&zero, Arg::tensor(&one), Arg::tensor(s))?;
    let z = Tensor::full(&[], Scalar::Int(0), s.dtype())?;
    Tensor::where_(&zero, Arg::tensor(&z), Arg::tensor(&root(&safe)?))
}

/// Max of a row where NaN wins (f64::max would skip it).
fn nan_max(row: &[f64]) -> f64 {
    row.iter().fold(f64::NEG_INFINITY, |m, &x| {
        if x.is_nan() || m.is_nan() {
            f64::NAN
        } else {
            m.max(x)
        }
    })
}

fn logsumexp_row(row: &[f64]) -> f64 {
    let m = nan_max(row);
    if m.is_nan() {
        return m;
    }
    if m.is_infinite() {
        // All -inf (or empty) gives -inf; any +inf gives +inf.
        return m;
    }
    m + row.iter().map(|x| (x - m).exp()).sum::<f64>().ln()
}

/// Ordering with NaN above everything (torch's sort order).
fn total_cmp<T: Elem>(a: T, b: T) -> std::cmp::Ordering {
    #[allow(clippy::eq_op)]
    match (a != a, b != b) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Greater,
        (false, true) => std::cmp::Ordering::Less,
        _ => a.partial_cmp(&b).unwrap_or(std::cmp::Ordering::Equal),
    }
}
