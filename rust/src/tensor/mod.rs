//! The tensor: shared storage + layout. Cloning a `Tensor` is cheap (an `Arc`); every movement op
//! returns a new `Tensor` on the same storage.

mod create;
mod index;
mod linalg;
pub mod math;
pub mod reduce;
mod view;

#[cfg(test)]
mod tests;

pub use create::Scalar;
pub use index::TensorIndex;

use crate::dtype::{DType, Elem};
use crate::error::{Error, Result};
use crate::kernels::copy;
use crate::layout::Layout;
use crate::storage::Storage;
use crate::with_dtype;
use std::sync::Arc;

pub struct TensorInner {
    storage: Arc<Storage>,
    layout: Layout,
}

#[derive(Clone)]
pub struct Tensor(Arc<TensorInner>);

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tensor[{:?}, {}]", self.shape(), self.dtype())
    }
}

impl Tensor {
    pub fn from_storage(storage: Arc<Storage>, layout: Layout) -> Tensor {
        Tensor(Arc::new(TensorInner { storage, layout }))
    }

    /// A contiguous tensor owning `data`.
    pub fn from_vec<T: Elem>(data: Vec<T>, shape: &[usize]) -> Result<Tensor> {
        let n = crate::shape::elem_count(shape);
        if data.len() != n {
            return Err(Error::shape(
                "tensor",
                format!("{} elements cannot have shape {shape:?}", data.len()),
            ));
        }
        Ok(Tensor::from_storage(
            Storage::from_vec(data),
            Layout::contiguous(shape),
        ))
    }

    /// The same storage seen through another layout (all movement ops end here).
    pub fn with_layout(&self, layout: Layout) -> Tensor {
        Tensor::from_storage(self.0.storage.clone(), layout)
    }

    pub fn storage(&self) -> &Arc<Storage> {
        &self.0.storage
    }
    pub fn layout(&self) -> &Layout {
        &self.0.layout
    }
    pub fn dtype(&self) -> DType {
        self.0.storage.dtype()
    }
    pub fn shape(&self) -> &[usize] {
        self.0.layout.shape()
    }
    pub fn stride(&self) -> &[usize] {
        self.0.layout.stride()
    }
    pub fn dims(&self) -> usize {
        self.0.layout.dims()
    }
    pub fn elem_count(&self) -> usize {
        self.0.layout.elem_count()
    }
    pub fn is_contiguous(&self) -> bool {
        self.0.layout.is_contiguous()
    }
    pub fn same_storage(&self, other: &Tensor) -> bool {
        Arc::ptr_eq(&self.0.storage, &other.0.storage)
    }
    pub fn dim(&self, dim: i64) -> Result<usize> {
        self.0.layout.dim(dim)
    }

    /// The elements in row-major order as a `Vec<T>`; `T` must be the tensor's dtype.
    pub fn to_vec<T: Elem>(&self) -> Vec<T> {
        copy::gather(self.0.storage.as_slice::<T>(), &self.0.layout)
    }

    /// A contiguous slice when the layout allows it (no copy), else `None`.
    pub fn as_contiguous_slice<T: Elem>(&self) -> Option<&[T]> {
        let (s, e) = self.0.layout.contiguous_offsets()?;
        Some(&self.0.storage.as_slice::<T>()[s..e])
    }

    /// Elements as a Vec<T>, converting from the tensor's dtype when needed.
    pub fn to_vec_as<T: Elem>(&self) -> Vec<T> {
        with_dtype!(self.dtype(), S, {
            let v = self.to_vec::<S>();
            copy::cast::<S, T>(&v)
        })
    }

    /// The tensor itself when contiguous, else a contiguous copy.
    pub fn contiguous(&self) -> Tensor {
        if self.is_contiguous() {
            return self.clone();
        }
        self.deep_copy()
    }

    /// A fresh contiguous copy (`clone()` in torch terms).
    pub fn deep_copy(&self) -> Tensor {
        with_dtype!(self.dtype(), T, {
            Tensor::from_vec(self.to_vec::<T>(), self.shape()).expect("same size")
        })
    }

    /// `clone()` as torch does it: a dense, non-overlapping layout (e.g. a transpose) keeps its
    /// strides; anything else becomes contiguous.
    pub fn clone_preserving_strides(&self) -> Tensor {
        let n = self.dims();
        let mut perm: Vec<usize> = (0..n).collect();
        perm.sort_by_key(|&d| std::cmp::Reverse(self.stride()[d]));
        let outer_first =
            self.with_layout(self.layout().permute(&perm).expect("valid permutation"));
        if !outer_first.is_contiguous() || perm.iter().enumerate().all(|(i, &p)| i == p) {
            return self.deep_copy();
        }
        let copy = outer_first.deep_copy();
        let mut inverse = vec![0; n];
        for (i, &p) in perm.iter().enumerate() {
            inverse[p] = i;
        }
        copy.with_layout(copy.layout().permute(&inverse).expect("valid permutation"))
    }

    /// Converts to another dtype (a copy unless the dtype is already right).
    pub fn to_dtype(&self, dtype: DType) -> Tensor {
        if dtype == self.dtype() {
            return self.clone();
        }
        with_dtype!(self.dtype(), S, {
            let v = self.to_vec::<S>();
            with_dtype!(dtype, D, {
                Tensor::from_vec(copy::cast::<S, D>(&v), self.shape()).expect("same size")
            })
        })
    }

    /// The single element as f64 (for `.item()` of floats and as a generic accessor).
    pub fn item_f64(&self) -> Result<f64> {
        self.check_single("item")?;
        Ok(with_dtype!(self.dtype(), T, {
            self.0.storage.as_slice::<T>()[self.0.layout.offset()].to_f64()
        }))
    }

    pub fn item_i64(&self) -> Result<i64> {
        self.check_single("item")?;
        Ok(with_dtype!(self.dtype(), T, {
            self.0.storage.as_slice::<T>()[self.0.layout.offset()].to_i64()
        }))
    }

    fn check_single(&self, op: &str) -> Result<()> {
        if self.elem_count() != 1 {
            return Err(Error::runtime(format!(
                "a Tensor with {} elements cannot be converted to Scalar ({op} needs exactly one element; shape {:?})",
                self.elem_count(),
                self.shape()
            )));
        }
        Ok(())
    }

    /// Copies `src` (broadcast to our shape, cast to our dtype) into our elements in place.
    pub fn copy_(&self, src: &Tensor) -> Result<()> {
        let l = self.layout();
        if l.shape()
            .iter()
            .zip(l.stride())
            .any(|(&d, &s)| d > 1 && s == 0)
        {
            return Err(Error::runtime(format!(
                "unsupported operation: more than one element of the written-to tensor refers to a single memory location (shape {:?}, stride {:?}). Please clone() the tensor before performing the operation.",
                l.shape(),
                l.stride()
            )));
        }
        let src = src.broadcast_as(self.shape()).map_err(|_| {
            Error::runtime(format!(
                "The size of tensor a ({:?}) must match the size of tensor b ({:?}): copy_ broadcasts the source to the destination's shape",
                self.shape(),
                src.shape()
            ))
        })?;
        let src = src.to_dtype(self.dtype());
        with_dtype!(self.dtype(), T, {
            let values = src.to_vec::<T>();
            copy::scatter_into(&self.0.storage, &self.0.layout, &values);
        });
        Ok(())
    }

    /// Writes an already computed result (same shape, any dtype castable to ours) into self.
    /// torch refuses to write a float result into an integer tensor in place.
    pub fn assign_result(&self, op: &str, result: &Tensor) -> Result<()> {
        let (from, to) = (result.dtype(), self.dtype());
        // torch's canCast: no float -> integer, no number -> bool; widths may shrink.
        let ok = (to.is_float() || !from.is_float()) && (to != DType::Bool || from == DType::Bool);
        if !ok {
            return Err(Error::runtime(format!(
                "result type {} can't be cast to the desired output type {} (in-place {op})",
                from, to
            )));
        }
        self.copy_(result)
    }
}
