//! Movement ops: metadata only, the result shares storage with the input.

use super::Tensor;
use crate::error::{Error, Result};
use crate::shape::{infer_shape, normalize_dim, normalize_dims};

impl Tensor {
    /// A view with a new shape; fails when the strides make that impossible without a copy.
    pub fn view(&self, shape: &[i64]) -> Result<Tensor> {
        let shape = infer_shape("view", shape, self.elem_count())?;
        match self.layout().view(&shape) {
            Some(l) => Ok(self.with_layout(l)),
            None => Err(Error::runtime(format!(
                "view size is not compatible with input tensor's size and stride (at least one dimension spans across two contiguous subspaces): input shape {:?}, stride {:?}, requested {:?}. Use .reshape(...) instead.",
                self.shape(),
                self.stride(),
                shape
            ))),
        }
    }

    /// Like `view`, but copies when the layout does not allow a view (as torch does).
    pub fn reshape(&self, shape: &[i64]) -> Result<Tensor> {
        let shape = infer_shape("reshape", shape, self.elem_count())?;
        match self.layout().view(&shape) {
            Some(l) => Ok(self.with_layout(l)),
            None => {
                crate::storage::check_alloc("reshape", &shape, self.dtype())?;
                let c = self.deep_copy();
                Ok(c.with_layout(crate::layout::Layout::contiguous(&shape)))
            }
        }
    }

    pub fn transpose(&self, d0: i64, d1: i64) -> Result<Tensor> {
        let n = self.dims();
        let (d0, d1) = (normalize_dim(d0, n)?, normalize_dim(d1, n)?);
        if n == 0 {
            return Ok(self.clone());
        }
        Ok(self.view_named(self.layout().transpose(d0, d1), "TransposeBackward0"))
    }

    /// `t()`: transpose of a matrix; vectors and scalars are returned as they are.
    pub fn t(&self) -> Result<Tensor> {
        if self.dims() > 2 {
            return Err(Error::runtime(format!(
                "t() expects a tensor with <= 2 dimensions, but self is {}D",
                self.dims()
            )));
        }
        if self.dims() < 2 {
            return Ok(self.clone());
        }
        Ok(self.view_named(self.layout().transpose(0, 1), "TBackward0"))
    }

    pub fn permute(&self, dims: &[i64]) -> Result<Tensor> {
        let n = self.dims();
        let perm = dims
            .iter()
            .map(|&d| normalize_dim(d, n))
            .collect::<Result<Vec<_>>>()?;
        Ok(self.view_named(self.layout().permute(&perm)?, "PermuteBackward0"))
    }

    /// Reverses all dims (`.T`).
    pub fn reverse_dims(&self) -> Tensor {
        let perm: Vec<usize> = (0..self.dims()).rev().collect();
        self.view_named(
            self.layout().permute(&perm).expect("valid permutation"),
            "PermuteBackward0",
        )
    }

    pub fn unsqueeze(&self, dim: i64) -> Result<Tensor> {
        let dim = normalize_dim(dim, self.dims() + 1)?;
        Ok(self.view_named(self.layout().unsqueeze(dim), "UnsqueezeBackward0"))
    }

    /// Removes the given dims where their size is 1 (all size-1 dims when `dims` is None).
    pub fn squeeze(&self, dims: Option<&[i64]>) -> Result<Tensor> {
        let dims = match dims {
            None => (0..self.dims()).collect(),
            Some(d) => normalize_dims(d, self.dims())?,
        };
        Ok(self.view_named(self.layout().squeeze_dims(&dims), "SqueezeBackward0"))
    }

    pub fn flatten(&self, start: i64, end: i64) -> Result<Tensor> {
        if self.dims() == 0 {
            self.dim(start)?;
            self.dim(end)?;
            return self.reshape(&[1]);
        }
        let (s, e) = (self.dim(start)?, self.dim(end)?);
        if s > e {
            return Err(Error::runtime(
                "flatten() has invalid args: start_dim cannot come after end_dim",
            ));
        }
        let sh = self.shape();
        let mut new: Vec<i64> = sh[..s].iter().map(|&d| d as i64).collect();
        new.push(sh[s..=e].iter().product::<usize>() as i64);
        new.extend(sh[e + 1..].iter().map(|&d| d as i64));
        self.reshape(&new)
    }

    pub fn unflatten(&self, dim: i64, sizes: &[i64]) -> Result<Tensor> {
        self.dim(dim)?;
        let d = self.dim_of_nd("unflatten", dim)?;
        let part = infer_shape("unflatten", sizes, self.shape()[d]).map_err(|_| {
            Error::runtime(format!(
                "unflatten: Provided sizes {sizes:?} don't multiply up to the size of dim {dim} ({}) in the input tensor",
                self.shape()[d]
            ))
        })?;
        let sh = self.shape();
        let mut new: Vec<i64> = sh[..d].iter().map(|&x| x as i64).collect();
        new.extend(part.iter().map(|&x| x as i64));
        new.extend(sh[d + 1..].iter().map(|&x| x as i64));
        self.view(&new)
    }

    /// `expand`: -1 keeps a size; new leading dims may be added.
    pub fn expand(&self, sizes: &[i64]) -> Result<Tensor> {
        let n = sizes.len();
        if n < self.dims() {
            return Err(Error::runtime(format!(
                "expand(torch.FloatTensor{{{:?}}}, size={sizes:?}): the number of sizes provided ({n}) must be greater or equal to the number of dimensions in the tensor ({})",
                self.shape(),
                self.dims()
            )));
        }
        let extra = n - self.dims();
        let mut shape = Vec::with_capacity(n);
        for (i, &s) in sizes.iter().enumerate() {
            if s == -1 {
                if i < extra {
                    return Err(Error::runtime(format!(
                        "The expanded size of the tensor (-1) isn't allowed in a leading, non-existing dimension {i}"
                    )));
                }
                shape.push(self.shape()[i - extra]);
            } else if s < 0 {
                return Err(Error::runtime(format!("invalid shape dimension {s}")));
            } else {
                shape.push(s as usize);
            }
        }
        self.broadcast_as(&shape)
    }

    pub fn broadcast_as(&self, shape: &[usize]) -> Result<Tensor> {
        if shape == self.shape() {
            return Ok(self.clone());
        }
        Ok(self.view_named(self.layout().broadcast_as(shape)?, "ExpandBackward0"))
    }

    pub fn narrow(&self, dim: i64, start: i64, len: i64) -> Result<Tensor> {
        let d = self.dim_of_nd("narrow", dim)?;
        let size = self.shape()[d] as i64;
        let start = if start < 0 { start + size } else { start };
        if start < 0 || start > size {
            return Err(Error::Index(format!(
                "start out of range (expected to be in range of [{}, {size}], but got {start})",
                -size
            )));
        }
        if len < 0 {
            return Err(Error::runtime("narrow(): length must be non-negative."));
        }
        Ok(self.view_named(
            self.layout().narrow(d, start as usize, len as usize)?,
            "SliceBackward0",
        ))
    }

    /// Python-style slice of one dim: negative and out-of-range bounds are clamped like
    /// torch does; the step must be positive.
    pub fn slice(
        &self,
        dim: usize,
        start: Option<i64>,
        stop: Option<i64>,
        step: i64,
    ) -> Result<Tensor> {
        if step <= 0 {
            return Err(Error::Value("step must be greater than zero".into()));
        }
        let size = self.shape()[dim] as i64;
        let clamp = |v: i64| -> usize {
            let v = if v < 0 { v + size } else { v };
            v.clamp(0, size) as usize
        };
        let s = start.map(clamp).unwrap_or(0);
        let e = stop.map(clamp).unwrap_or(size as usize);
        Ok(self.view_named(
            self.layout().slice(dim, s, e, step as usize),
            "SliceBackward0",
        ))
    }

    /// Picks one index of a dim, removing it.
    pub fn select(&self, dim: i64, index: i64) -> Result<Tensor> {
        let d = self.existing_dim(dim)?;
        let size = self.shape()[d];
        let i = if index < 0 {
            index + size as i64
        } else {
            index
        };
        if i < 0 || i >= size as i64 {
            return Err(Error::Index(format!(
                "index {index} is out of bounds for dimension {d} with size {size}"
            )));
        }
        Ok(self.view_named(self.layout().select(d, i as usize), "SelectBackward0"))
    }

    pub fn unbind(&self, dim: i64) -> Result<Vec<Tensor>> {
        let d = self.existing_dim(dim)?;
        (0..self.shape()[d])
            .map(|i| self.select(d as i64, i as i64))
            .collect()
    }

    /// Pieces of `size` along `dim` (the last may be smaller).
    pub fn split(&self, size: usize, dim: i64) -> Result<Vec<Tensor>> {
        let d = self.dim_of_nd("split", dim)?;
        let n = self.shape()[d];
        if size == 0 && n > 0 {
            return Err(Error::runtime(format!(
                "split_size can only be 0 if dimension size is 0, but got dimension size of {n}"
            )));
        }
        if n == 0 {
            return Ok(vec![self.clone()]);
        }
        (0..n)
            .step_by(size)
            .map(|s| self.narrow(d as i64, s as i64, size.min(n - s) as i64))
            .collect()
    }

    pub fn split_sizes(&self, sizes: &[usize], dim: i64) -> Result<Vec<Tensor>> {
        let d = self.dim_of_nd("split", dim)?;
        let n = self.shape()[d];
        if sizes.iter().sum::<usize>() != n {
            return Err(Error::runtime(format!(
                "split_with_sizes expects split_sizes to sum exactly to {n} (input tensor's size at dimension {d}), but got split_sizes={sizes:?}"
            )));
        }
        let mut start = 0;
        sizes
            .iter()
            .map(|&s| {
                let t = self.narrow(d as i64, start as i64, s as i64);
                start += s;
                t
            })
            .collect()
    }

    /// `chunks` pieces of equal size ceil(n/chunks) (fewer when n is small), like torch.
    pub fn chunk(&self, chunks: i64, dim: i64) -> Result<Vec<Tensor>> {
        if chunks <= 0 {
            return Err(Error::runtime(format!(
                "chunk expects `chunks` to be greater than 0, got: {chunks}"
            )));
        }
        let d = self.dim_of_nd("chunk", dim)?;
        let n = self.shape()[d];
        let size = n.div_ceil(chunks as usize).max(1);
        if n == 0 {
            return Ok((0..chunks).map(|_| self.clone()).collect());
        }
        self.split(size, dim)
    }

    pub fn as_strided(&self, size: &[usize], stride: &[usize], offset: usize) -> Result<Tensor> {
        let l = crate::layout::Layout::new(size.to_vec(), stride.to_vec(), offset);
        if l.storage_extent() > self.storage().len() {
            return Err(Error::runtime(format!(
                "setStorage: sizes {size:?}, strides {stride:?}, storage offset {offset} require a storage of {} elements, but it has {}",
                l.storage_extent(),
                self.storage().len()
            )));
        }
        Ok(self.view_named(l, "AsStridedBackward0"))
    }
}
