//! Indexing: basic (ints, slices, None, ...) as views, advanced (integer / boolean tensors) as
//! gathers, and their writing forms; plus gather/scatter/index_select.

use super::Tensor;
use crate::device::{self, Value};
use crate::dtype::{DType, Elem};
use crate::error::{Error, Result};
use crate::layout::Layout;
use crate::op::Op;
use crate::shape::{broadcast_shapes, Dims};
use crate::with_dtype;

/// One entry of a Python subscript.
#[derive(Clone, Debug)]
pub enum TensorIndex {
    Int(i64),
    Slice(Option<i64>, Option<i64>, i64),
    NewAxis,
    Ellipsis,
    /// An integer (int64/int32/uint8-as-int) or boolean tensor.
    Tensor(Tensor),
}

/// The result of applying the basic part of an index: a view plus the advanced indices, each
/// with the view dim it indexes.
struct Split {
    view: Tensor,
    adv: Vec<(usize, Tensor)>,
}

impl Tensor {
    fn split_index(&self, index: &[TensorIndex]) -> Result<Split> {
        // How many tensor dims the subscript consumes, to expand the ellipsis.
        let consumed: usize = index
            .iter()
            .map(|i| match i {
                TensorIndex::Int(_) | TensorIndex::Slice(..) => 1,
                TensorIndex::Tensor(t) if t.dtype() == DType::Bool => t.dims(),
                TensorIndex::Tensor(_) => 1,
                _ => 0,
            })
            .sum();
        let n_ellipsis = index
            .iter()
            .filter(|i| matches!(i, TensorIndex::Ellipsis))
            .count();
        if n_ellipsis > 1 {
            return Err(Error::Index(
                "an index can only have a single ellipsis ('...')".into(),
            ));
        }
        if consumed > self.dims() {
            return Err(Error::Index(format!(
                "too many indices for tensor of dimension {} (got {consumed})",
                self.dims()
            )));
        }
        let mut view = self.clone();
        let mut adv = Vec::new();
        let mut d = 0usize; // current dim in the view
        let mut src = 0usize; // the dim of `self` this entry indexes (for messages)
        for item in index {
            match item {
                TensorIndex::Int(i) => {
                    let size = view.shape()[d] as i64;
                    if *i < -size || *i >= size {
                        return Err(Error::Index(format!(
                            "index {i} is out of bounds for dimension {src} with size {size}"
                        )));
                    }
                    view = view.select(d as i64, *i)?;
                    src += 1;
                }
                TensorIndex::Slice(start, stop, step) => {
                    view = view.slice(d, *start, *stop, *step)?;
                    d += 1;
                    src += 1;
                }
                TensorIndex::NewAxis => {
                    view = view.unsqueeze(d as i64)?;
                    d += 1;
                }
                TensorIndex::Ellipsis => {
                    d += self.dims() - consumed;
                    src += self.dims() - consumed;
                }
                TensorIndex::Tensor(t) if t.dtype() == DType::Bool => {
                    // A boolean mask over k dims is the k index tensors of its true positions.
                    let k = t.dims();
                    let vshape = &view.shape()[d..d + k];
                    if t.shape() != vshape {
                        return Err(Error::Index(format!(
                            "The shape of the mask {:?} at index {d} does not match the shape of the indexed tensor {:?}",
                            t.shape(),
                            view.shape()
                        )));
                    }
                    if k == 0 {
                        // A scalar bool: True adds a dim of size 1, False a dim of size 0.
                        view = view.unsqueeze(d as i64)?;
                        let keep = t.item_i64()? != 0;
                        adv.push((
                            d,
                            Tensor::from_vec(
                                if keep { vec![0i64] } else { vec![] },
                                &[keep as usize],
                            )?,
                        ));
                        d += 1;
                        continue;
                    }
                    for (j, idx) in t.nonzero_columns()?.into_iter().enumerate() {
                        adv.push((d + j, idx));
                    }
                    d += k;
                    src += k;
                }
                TensorIndex::Tensor(t) => {
                    if t.dtype().is_float() {
                        return Err(Error::Index(
                            "tensors used as indices must be long, int, byte or bool tensors"
                                .into(),
                        ));
                    }
                    adv.push((d, t.to_dtype(DType::I64)));
                    d += 1;
                    src += 1;
                }
            }
        }
        Ok(Split { view, adv })
    }

    /// `self[index]`.
    pub fn index(&self, index: &[TensorIndex]) -> Result<Tensor> {
        // Index tensors are read into memory: an expanded one may be too big for that.
        for i in index {
            if let TensorIndex::Tensor(t) = i {
                crate::storage::check_alloc("index", t.shape(), DType::I64)?;
            }
        }
        let Split { view, adv } = crate::op::no_grad(|| self.split_index(index))?;
        if adv.is_empty() {
            // Basic indexing is a view: recorded as one, named like torch's last step.
            let name = if index.iter().any(|i| matches!(i, TensorIndex::Int(_))) {
                "SelectBackward0"
            } else if index
                .iter()
                .all(|i| matches!(i, TensorIndex::NewAxis | TensorIndex::Ellipsis))
            {
                "UnsqueezeBackward0"
            } else {
                "SliceBackward0"
            };
            return Ok(self.view_named(view.layout().clone(), name));
        }
        let out = crate::op::no_grad(|| Tensor::gather_advanced(&view, &adv))?;
        Ok(out.record(&[self], || Op::Index {
            x: self.clone(),
            index: index.to_vec(),
        }))
    }

    fn gather_advanced(view: &Tensor, adv: &[(usize, Tensor)]) -> Result<Tensor> {
        if let Some(dev) = device::op_device("index", &[view])? {
            let (dims, idx) = adv_values(adv);
            return device::call1("index", dev, &[Value::Tensor(view), dims, idx]);
        }
        let plan = AdvPlan::new(view, adv)?;
        crate::storage::check_alloc("index", &plan.out_shape, view.dtype())?;
        with_dtype!(view.dtype(), T, {
            let src = view.storage().as_slice::<T>();
            let mut out = Vec::with_capacity(plan.numel());
            plan.for_each_offset(|o| out.push(src[o]));
            Tensor::from_vec::<T>(out, &plan.out_shape)
        })
    }

    /// `self[index] = value` (value broadcast to the indexed shape); with `accumulate`, adds
    /// (index_put_ with accumulate=True, duplicates summed).
    pub fn index_put_(
        &self,
        index: &[TensorIndex],
        value: &Tensor,
        accumulate: bool,
    ) -> Result<()> {
        self.write_guard(|| self.index_put_impl(index, value, accumulate))
    }

    fn index_put_impl(
        &self,
        index: &[TensorIndex],
        value: &Tensor,
        accumulate: bool,
    ) -> Result<()> {
        let Split { view, adv } = self.split_index(index)?;
        if adv.is_empty() && !accumulate {
            return view.copy_(value);
        }
        if let Some(dev) = device::op_device("index_put_", &[self])? {
            let (dims, idx) = adv_values(&adv);
            let args = [
                Value::Tensor(&view),
                dims,
                idx,
                Value::Tensor(value),
                Value::Bool(accumulate),
            ];
            device::call("index_put_", dev, &args)?;
            self.storage().bump_version();
            return Ok(());
        }
        let plan = AdvPlan::new(&view, &adv)?;
        let value = value.broadcast_as(&plan.out_shape).map_err(|_| {
            Error::runtime(format!(
                "shape mismatch: value tensor of shape {:?} cannot be broadcast to indexing result of shape {:?}",
                value.shape(),
                plan.out_shape
            ))
        })?;
        let value = value.to_dtype(self.dtype());
        with_dtype!(self.dtype(), T, {
            let vals = value.to_vec::<T>();
            let mut offsets = Vec::with_capacity(vals.len());
            plan.for_each_offset(|o| offsets.push(o));
            if accumulate {
                // In index order and rounded to the dtype at each step, as torch's CPU kernel
                // adds (an embedding's gradient is this with one row index per token).
                // SAFETY: `vals` is an owned copy and nothing else reads this storage while
                // the op holds the write guard.
                let buf = unsafe { self.storage().as_mut_slice::<T>() };
                for (&o, v) in offsets.iter().zip(&vals) {
                    buf[o] = T::from_f64(buf[o].to_f64() + v.to_f64());
                }
            } else {
                self.storage().write(offsets.into_iter(), &vals);
            }
        });
        Ok(())
    }

    /// One int64 vector per dim with the coordinates of the non-zero elements.
    fn nonzero_columns(&self) -> Result<Vec<Tensor>> {
        let nz = self.nonzero()?;
        let k = self.dims();
        (0..k)
            .map(|j| Ok(nz.select(1, j as i64)?.contiguous()))
            .collect()
    }

    /// Coordinates of non-zero elements, shape [n, ndim].
    pub fn nonzero(&self) -> Result<Tensor> {
        if let Some(dev) = device::op_device("nonzero", &[self])? {
            return device::call1("nonzero", dev, &[Value::Tensor(self)]);
        }
        let flags: Vec<bool> = with_dtype!(self.dtype(), T, {
            self.to_vec::<T>()
                .into_iter()
                .map(|x| x.is_nonzero())
                .collect()
        });
        let shape = self.shape();
        let strides = crate::shape::contiguous_strides(shape);
        let mut out = Vec::new();
        let mut n = 0;
        for (i, f) in flags.into_iter().enumerate() {
            if f {
                n += 1;
                for (d, &s) in strides.iter().enumerate() {
                    out.push(((i / s) % shape[d].max(1)) as i64);
                }
            }
        }
        Tensor::from_vec(out, &[n, shape.len()])
    }

    pub fn index_select(&self, dim: i64, index: &Tensor) -> Result<Tensor> {
        if index.dims() > 1 {
            return Err(Error::Index(format!(
                "index_select(): Index is supposed to be a vector, got shape {:?}",
                index.shape()
            )));
        }
        if index.dtype().is_float() || index.dtype() == DType::Bool {
            return Err(Error::runtime(format!(
                "index_select(): Expected dtype int32/int64 for index, got {}",
                index.dtype()
            )));
        }
        crate::storage::check_alloc("index_select", index.shape(), DType::I64)?;
        let d = self.dim(dim)?;
        let size = if self.dims() == 0 { 1 } else { self.shape()[d] };
        if let Some(bad) = index
            .to_vec_as::<i64>()
            .into_iter()
            .find(|&i| i < 0 || i as usize >= size)
        {
            return Err(Error::Index(format!(
                "index out of range in self (index_select: index {bad} for dimension {d} of size {size})"
            )));
        }
        let mut idx: Vec<TensorIndex> = (0..d).map(|_| TensorIndex::Slice(None, None, 1)).collect();
        idx.push(TensorIndex::Tensor(index.reshape(&[-1])?));
        let out = self.index(&idx)?;
        if self.dims() == 0 {
            return out.reshape(&[]);
        }
        Ok(out)
    }

    /// `gather(dim, index)`: out[i][j] = self[index[i][j]][j] (for dim 0), index may be smaller
    /// than self in the other dims.
    pub fn gather(&self, dim: i64, index: &Tensor) -> Result<Tensor> {
        let out = crate::op::no_grad(|| self.gather_impl(dim, index))?;
        Ok(out.record(&[self], || Op::Gather {
            x: self.clone(),
            dim,
            index: index.clone(),
        }))
    }

    /// Out-of-place scatter_add: self with `src` added at `index` along `dim`.
    pub fn scatter_add(&self, dim: i64, index: &Tensor, src: &Tensor) -> Result<Tensor> {
        let out = crate::op::no_grad(|| -> Result<Tensor> {
            let out = self.contiguous_copy();
            out.scatter_(dim, index, &src.to_dtype(self.dtype()), true)?;
            Ok(out)
        })?;
        Ok(out.record(&[self, src], || Op::ScatterAdd {
            base: self.clone(),
            dim,
            index: index.clone(),
            src: src.clone(),
        }))
    }

    /// Out-of-place index_put: self with `values` written (or added) at `index`.
    pub fn index_put(
        &self,
        index: &[TensorIndex],
        values: &Tensor,
        accumulate: bool,
    ) -> Result<Tensor> {
        let out = crate::op::no_grad(|| -> Result<Tensor> {
            let out = self.contiguous_copy();
            out.index_put_(index, values, accumulate)?;
            Ok(out)
        })?;
        Ok(out.record(&[self, values], || Op::IndexPut {
            base: self.clone(),
            index: index.to_vec(),
            values: values.clone(),
            accumulate,
        }))
    }

    fn gather_impl(&self, dim: i64, index: &Tensor) -> Result<Tensor> {
        let d = self.dim(dim)?;
        self.check_scatter_gather("gather", d, index, None)?;
        if let Some(dev) = device::op_device("gather", &[self])? {
            let args = [
                Value::Tensor(self),
                Value::Int(d as i64),
                Value::Tensor(index),
            ];
            return device::call1("gather", dev, &args);
        }
        let idx = index.to_vec_as::<i64>();
        let size = if self.dims() == 0 { 1 } else { self.shape()[d] };
        let il = Layout::contiguous(index.shape());
        let stride_d = if self.dims() == 0 {
            0
        } else {
            self.stride()[d]
        };
        with_dtype!(self.dtype(), T, {
            let src = self.storage().as_slice::<T>();
            let mut out = Vec::with_capacity(idx.len());
            // Walk self restricted to the index's shape; swap the offset along `d`.
            let sub = Layout::new(
                index.shape().to_vec(),
                self.layout().stride().to_vec(),
                self.layout().offset(),
            );
            for ((o, &i), pos) in sub.offsets().zip(&idx).zip(coords(&il, d)) {
                let i = check_index(i, size, d)?;
                out.push(src[o - pos * stride_d + i * stride_d]);
            }
            Tensor::from_vec::<T>(out, index.shape())
        })
    }

    fn check_scatter_gather(
        &self,
        op: &str,
        d: usize,
        index: &Tensor,
        src: Option<&Tensor>,
    ) -> Result<()> {
        if index.dtype() != DType::I64 {
            return Err(Error::runtime(format!(
                "{op}(): Expected dtype int64 for index, got {}",
                index.dtype()
            )));
        }
        if index.dims() != self.dims() && !(index.dims() <= 1 && self.dims() <= 1) {
            return Err(Error::runtime(format!(
                "Index tensor must have the same number of dimensions as input tensor ({op}: index shape {:?}, input shape {:?})",
                index.shape(),
                self.shape()
            )));
        }
        for i in 0..index.dims() {
            if i != d && index.shape()[i] > self.shape()[i] {
                return Err(Error::runtime(format!(
                    "Size does not match at dimension {i} expected index {:?} to be smaller than self {:?} apart from dimension {d}",
                    index.shape(),
                    self.shape()
                )));
            }
            if let Some(s) = src {
                if index.shape()[i] > s.shape()[i] {
                    return Err(Error::runtime(format!(
                        "Size does not match at dimension {i} expected index {:?} to be smaller than src {:?}",
                        index.shape(),
                        s.shape()
                    )));
                }
            }
        }
        Ok(())
    }

    /// In-place scatter: self[index[i][j]][j] (+)= src[i][j] (dim 0 shown).
    pub fn scatter_(&self, dim: i64, index: &Tensor, src: &Tensor, add: bool) -> Result<()> {
        self.write_guard(|| self.scatter_impl(dim, index, src, add))
    }

    fn scatter_impl(&self, dim: i64, index: &Tensor, src: &Tensor, add: bool) -> Result<()> {
        let d = self.dim(dim)?;
        self.check_scatter_gather(
            if add { "scatter_add_" } else { "scatter_" },
            d,
            index,
            Some(src),
        )?;
        let idx = index.to_vec_as::<i64>();
        let size = if self.dims() == 0 { 1 } else { self.shape()[d] };
        let il = Layout::contiguous(index.shape());
        let stride_d = if self.dims() == 0 {
            0
        } else {
            self.stride()[d]
        };
        if src.dtype() != self.dtype() {
            return Err(Error::runtime(format!(
                "scatter(): Expected self.dtype to be equal to src.dtype (got {} and {})",
                self.dtype().name(),
                src.dtype().name()
            )));
        }
        if let Some(dev) = device::op_device("scatter_", &[self])? {
            let args = [
                Value::Tensor(self),
                Value::Int(d as i64),
                Value::Tensor(index),
                Value::Tensor(src),
                Value::Bool(add),
            ];
            device::call("scatter_", dev, &args)?;
            self.storage().bump_version();
            return Ok(());
        }
        with_dtype!(self.dtype(), T, {
            let s = src.storage().as_slice::<T>();
            let src_sub = Layout::new(
                index.shape().to_vec(),
                src.stride().to_vec(),
                src.layout().offset(),
            );
            let vals: Vec<T> = src_sub.offsets().map(|o| s[o]).collect();
            let sub = Layout::new(
                index.shape().to_vec(),
                self.layout().stride().to_vec(),
                self.layout().offset(),
            );
            let mut offs = Vec::with_capacity(idx.len());
            for ((o, &i), pos) in sub.offsets().zip(&idx).zip(coords(&il, d)) {
                let i = check_index(i, size, d)?;
                offs.push(o - pos * stride_d + i * stride_d);
            }
            if add {
                let cur = self.storage().as_slice::<T>();
                let mut acc: std::collections::BTreeMap<usize, f64> = Default::default();
                for (&o, v) in offs.iter().zip(&vals) {
                    *acc.entry(o).or_insert(cur[o].to_f64()) += v.to_f64();
                }
                let (o, v): (Vec<usize>, Vec<T>) =
                    acc.into_iter().map(|(o, s)| (o, T::from_f64(s))).unzip();
                self.storage().write(o.into_iter(), &v);
            } else {
                self.storage().write(offs.into_iter(), &vals);
            }
        });
        Ok(())
    }

    /// Lower (`upper == false`) or upper triangle of the last two dims.
    pub fn tri(&self, diagonal: i64, upper: bool) -> Result<Tensor> {
        if crate::op::is_grad_enabled() && self.requires_grad() && self.dims() >= 2 {
            // Differentiable form: keep the triangle through `where` with a constant mask.
            let ones = Tensor::full(self.shape(), crate::tensor::Scalar::Bool(true), DType::Bool)?;
            let mask = ones.tri_impl(diagonal, upper)?.to_device(self.device())?;
            let zero = Tensor::scalar(crate::tensor::Scalar::Int(0), self.dtype());
            return Tensor::where_(
                &mask,
                crate::tensor::math::Arg::tensor(self),
                crate::tensor::math::Arg::tensor(&zero),
            );
        }
        self.tri_impl(diagonal, upper)
    }

    fn tri_impl(&self, diagonal: i64, upper: bool) -> Result<Tensor> {
        if self.dims() < 2 {
            return Err(Error::runtime(format!(
                "{}: input tensor must have at least 2 dimensions (got shape {:?})",
                if upper { "triu" } else { "tril" },
                self.shape()
            )));
        }
        if let Some(dev) = device::op_device("tril", &[self])? {
            let args = [
                Value::Tensor(self),
                Value::Int(diagonal),
                Value::Bool(upper),
            ];
            return device::call1("tri", dev, &args);
        }
        let nd = self.dims();
        let (r, c) = (self.shape()[nd - 2], self.shape()[nd - 1]);
        crate::storage::check_alloc(
            if upper { "triu" } else { "tril" },
            self.shape(),
            self.dtype(),
        )?;
        let t = self.contiguous();
        with_dtype!(self.dtype(), T, {
            let mut v = t.to_vec::<T>();
            for (k, x) in v.iter_mut().enumerate() {
                let (i, j) = (((k / c.max(1)) % r.max(1)) as i64, (k % c.max(1)) as i64);
                let keep = if upper {
                    j - i >= diagonal
                } else {
                    j - i <= diagonal
                };
                if !keep {
                    *x = T::zero();
                }
            }
            Tensor::from_vec(v, self.shape())
        })
    }

    /// One-hot encoding of an int64 tensor (num_classes = max + 1 when negative).
    pub fn one_hot(&self, num_classes: i64) -> Result<Tensor> {
        if self.dtype() != DType::I64 {
            return Err(Error::runtime(
                "one_hot is only applicable to index tensor of type LongTensor.",
            ));
        }
        if let Some(dev) = device::op_device("one_hot", &[self])? {
            let args = [Value::Tensor(self), Value::Int(num_classes)];
            return device::call1("one_hot", dev, &args);
        }
        let v = self.to_vec::<i64>();
        if let Some(&m) = v.iter().min() {
            if m < 0 {
                return Err(Error::runtime("Class values must be non-negative."));
            }
        }
        let n = if num_classes < 0 {
            if v.is_empty() {
                return Err(Error::runtime(
                    "Can not infer total number of classes from empty tensor.",
                ));
            }
            v.iter().max().copied().unwrap_or(0) + 1
        } else {
            num_classes
        } as usize;
        if let Some(&m) = v.iter().max() {
            if m as usize >= n {
                return Err(Error::runtime(format!(
                    "Class values must be smaller than num_classes (got class {m}, num_classes {n})."
                )));
            }
        }
        let mut shape = self.shape().to_vec();
        shape.push(n);
        let mut out = crate::storage::try_vec("one_hot", &shape, 0i64)?;
        for (i, &c) in v.iter().enumerate() {
            out[i * n + c as usize] = 1;
        }
        Tensor::from_vec(out, &shape)
    }

    /// Joins tensors along an existing dim (dtypes promoted like torch.cat).
    pub fn cat(tensors: &[Tensor], dim: i64) -> Result<Tensor> {
        let out = crate::op::no_grad(|| Tensor::cat_impl(tensors, dim))?;
        let inputs: Vec<&Tensor> = tensors.iter().collect();
        let d = if out.dims() == 0 {
            0
        } else {
            crate::shape::normalize_dim(dim, out.dims())?
        };
        Ok(out.record(&inputs, || Op::Cat {
            xs: tensors.to_vec(),
            dim: d,
        }))
    }

    fn cat_impl(tensors: &[Tensor], dim: i64) -> Result<Tensor> {
        if tensors.is_empty() {
            return Err(Error::Value(
                "torch.cat(): expected a non-empty list of Tensors".into(),
            ));
        }
        // torch skips 1-D empty tensors for legacy reasons.
        let parts: Vec<&Tensor> = tensors
            .iter()
            .filter(|t| !(t.dims() == 1 && t.elem_count() == 0))
            .collect();
        let dt = tensors
            .iter()
            .skip(1)
            .fold(tensors[0].dtype(), |a, t| a.promote(t.dtype()));
        if parts.is_empty() {
            return Tensor::zeros(&[0], dt);
        }
        let first = parts[0];
        if first.dims() == 0 {
            return Err(Error::runtime(
                "zero-dimensional tensor (at position 0) cannot be concatenated",
            ));
        }
        let d = first.dim(dim)?;
        let mut total = 0;
        for (i, t) in parts.iter().enumerate() {
            if t.dims() != first.dims() {
                return Err(Error::runtime(format!(
                    "Tensors must have same number of dimensions: got {} and {}",
                    first.dims(),
                    t.dims()
                )));
            }
            for k in 0..t.dims() {
                if k != d && t.shape()[k] != first.shape()[k] {
                    return Err(Error::runtime(format!(
                        "Sizes of tensors must match except in dimension {d}. Expected size {} but got size {} for tensor number {i} in the list.",
                        first.shape()[k],
                        t.shape()[k]
                    )));
                }
            }
            total += t.shape()[d];
        }
        if let Some(dev) = device::op_device("cat", &parts)? {
            let all: Vec<Tensor> = parts.iter().map(|&t| t.clone()).collect();
            return device::call1("cat", dev, &[Value::Tensors(all), Value::Int(d as i64)]);
        }
        let mut shape = first.shape().to_vec();
        shape[d] = total;
        let out = Tensor::zeros(&shape, dt)?;
        let mut start = 0;
        for t in parts {
            let n = t.shape()[d];
            out.narrow(d as i64, start as i64, n as i64)?.copy_(t)?;
            start += n;
        }
        Ok(out)
    }

    pub fn stack(tensors: &[Tensor], dim: i64) -> Result<Tensor> {
        if tensors.is_empty() {
            return Err(Error::runtime("stack expects a non-empty TensorList"));
        }
        for (i, t) in tensors.iter().enumerate() {
            if t.shape() != tensors[0].shape() {
                return Err(Error::runtime(format!(
                    "stack expects each tensor to be equal size, but got {:?} at entry 0 and {:?} at entry {i}",
                    tensors[0].shape(),
                    t.shape()
                )));
            }
        }
        let d = crate::shape::normalize_dim(dim, tensors[0].dims() + 1)? as i64;
        let parts = tensors
            .iter()
            .map(|t| t.unsqueeze(d))
            .collect::<Result<Vec<_>>>()?;
        Tensor::cat(&parts, d)
    }
}

/// The coordinate along `dim` of each element of a contiguous layout, in order.
fn coords(l: &Layout, dim: usize) -> impl Iterator<Item = usize> + '_ {
    let n = l.elem_count();
    let (size, stride) = if l.dims() == 0 {
        (1, 1)
    } else {
        (l.shape()[dim], l.stride()[dim])
    };
    (0..n).map(move |k| (k / stride.max(1)) % size.max(1))
}

/// gather/scatter indices: no negative wrapping, RuntimeError like torch.
fn check_index(i: i64, size: usize, dim: usize) -> Result<usize> {
    if i < 0 || i >= size as i64 {
        return Err(Error::runtime(format!(
            "index {i} is out of bounds for dimension {dim} with size {size}"
        )));
    }
    Ok(i as usize)
}

fn wrap_index(i: i64, size: usize, dim: usize) -> Result<usize> {
    let s = size as i64;
    if i < -s || i >= s {
        return Err(Error::Index(format!(
            "index {i} is out of bounds for dimension {dim} with size {size}"
        )));
    }
    Ok(if i < 0 { (i + s) as usize } else { i as usize })
}

/// Where each element of an advanced-indexing result comes from.
struct AdvPlan {
    out_shape: Vec<usize>,
    before: Layout,
    adv_offsets: Vec<usize>,
    after: Layout,
}

impl AdvPlan {
    fn new(view: &Tensor, adv: &[(usize, Tensor)]) -> Result<AdvPlan> {
        let mut bshape: Vec<usize> = adv[0].1.shape().to_vec();
        for (_, t) in &adv[1..] {
            bshape = broadcast_shapes("index", &bshape, t.shape()).map_err(|_| {
                Error::Index(format!(
                    "shape mismatch: indexing tensors could not be broadcast together with shapes {}",
                    adv.iter().map(|(_, t)| format!("{:?}", t.shape())).collect::<Vec<_>>().join(", ")
                ))
            })?;
        }
        let nb: usize = bshape.iter().product();
        let mut adv_offsets = vec![0usize; nb];
        for (d, t) in adv {
            let size = view.shape()[*d];
            let b = t.broadcast_as(&bshape)?;
            for (o, i) in adv_offsets.iter_mut().zip(b.to_vec::<i64>()) {
                *o += wrap_index(i, size, *d)? * view.stride()[*d];
            }
        }
        let dims: Vec<usize> = adv.iter().map(|(d, _)| *d).collect();
        let consecutive = dims.windows(2).all(|w| w[1] == w[0] + 1);
        let rest: Vec<usize> = (0..view.dims()).filter(|d| !dims.contains(d)).collect();
        let split = if consecutive {
            rest.iter().filter(|&&d| d < dims[0]).count()
        } else {
            0
        };
        let sub = |ds: &[usize], off: usize| {
            Layout::new(
                ds.iter().map(|&d| view.shape()[d]).collect::<Dims>(),
                ds.iter().map(|&d| view.stride()[d]).collect::<Dims>(),
                off,
            )
        };
        let before = sub(&rest[..split], view.layout().offset());
        let after = sub(&rest[split..], 0);
        let mut out_shape = before.shape().to_vec();
        out_shape.extend(&bshape);
        out_shape.extend(after.shape());
        Ok(AdvPlan {
            out_shape,
            before,
            adv_offsets,
            after,
        })
    }

    fn numel(&self) -> usize {
        self.out_shape.iter().product()
    }

    fn for_each_offset(&self, mut f: impl FnMut(usize)) {
        let after: Vec<usize> = self.after.offsets().collect();
        for b in self.before.offsets() {
            for &a in &self.adv_offsets {
                for &c in &after {
                    f(b + a + c);
                }
            }
        }
    }
}

/// The advanced indices of an index op as torch-backend arguments: their dims and tensors.
fn adv_values(adv: &[(usize, Tensor)]) -> (Value<'static>, Value<'static>) {
    (
        Value::Ints(adv.iter().map(|(d, _)| *d as i64).collect()),
        Value::Tensors(adv.iter().map(|(_, t)| t.clone()).collect()),
    )
}
