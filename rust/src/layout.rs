//! Layout = shape + strides (in elements) + offset into the storage. Every movement op is a
//! function from Layout to Layout: no data moves.

use crate::error::{Error, Result};
use crate::shape::{contiguous_strides, elem_count, normalize_dim, Dims};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    shape: Dims,
    stride: Dims,
    offset: usize,
}

impl Layout {
    pub fn contiguous(shape: &[usize]) -> Self {
        Layout {
            shape: shape.into(),
            stride: contiguous_strides(shape),
            offset: 0,
        }
    }

    pub fn new(shape: impl Into<Dims>, stride: impl Into<Dims>, offset: usize) -> Self {
        let (shape, stride) = (shape.into(), stride.into());
        debug_assert_eq!(shape.len(), stride.len());
        Layout {
            shape,
            stride,
            offset,
        }
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }
    pub fn stride(&self) -> &[usize] {
        &self.stride
    }
    pub fn offset(&self) -> usize {
        self.offset
    }
    pub fn dims(&self) -> usize {
        self.shape.len()
    }
    pub fn elem_count(&self) -> usize {
        elem_count(&self.shape)
    }

    /// torch's definition: strides equal the row-major ones, ignoring dims of size 1.
    pub fn is_contiguous(&self) -> bool {
        let mut expected = 1;
        for i in (0..self.shape.len()).rev() {
            if self.shape[i] != 1 {
                if self.stride[i] != expected {
                    return self.elem_count() == 0;
                }
                expected *= self.shape[i];
            }
        }
        true
    }

    /// The largest storage index this layout touches plus one (0 for an empty tensor).
    pub fn storage_extent(&self) -> usize {
        if self.elem_count() == 0 {
            return 0;
        }
        self.offset
            + self
                .shape
                .iter()
                .zip(&self.stride)
                .map(|(&d, &s)| (d - 1) * s)
                .sum::<usize>()
            + 1
    }

    /// True when no two indices reach the same storage element (no expanded or overlapping
    /// dims): dims sorted by stride must each step past everything the smaller ones reach.
    pub fn is_non_overlapping(&self) -> bool {
        if self.elem_count() == 0 {
            return true;
        }
        let mut dims: Vec<(usize, usize)> = self
            .shape
            .iter()
            .zip(&self.stride)
            .filter(|(&d, _)| d > 1)
            .map(|(&d, &s)| (s, d))
            .collect();
        dims.sort_unstable();
        let mut reach = 1;
        for (s, d) in dims {
            if s < reach {
                return false;
            }
            reach += s * (d - 1);
        }
        true
    }

    /// The same shape and strides starting at another storage offset.
    pub fn with_offset(&self, offset: usize) -> Layout {
        Layout {
            shape: self.shape.clone(),
            stride: self.stride.clone(),
            offset,
        }
    }

    /// Offset range `[start, start+n)` when the layout is one contiguous block.
    pub fn contiguous_offsets(&self) -> Option<(usize, usize)> {
        if self.elem_count() == 0 {
            return Some((0, 0));
        }
        if self.is_contiguous() {
            Some((self.offset, self.offset + self.elem_count()))
        } else {
            None
        }
    }

    pub fn transpose(&self, d0: usize, d1: usize) -> Layout {
        let mut l = self.clone();
        l.shape.swap(d0, d1);
        l.stride.swap(d0, d1);
        l
    }

    pub fn permute(&self, perm: &[usize]) -> Result<Layout> {
        let n = self.dims();
        let mut seen = vec![false; n];
        if perm.len() != n {
            return Err(Error::runtime(format!(
                "permute(sparse_coo): number of dimensions in the tensor input does not match the length of the desired ordering of dimensions i.e. input.dim() = {n} is not equal to len(dims) = {}",
                perm.len()
            )));
        }
        for &p in perm {
            if p >= n || seen[p] {
                return Err(Error::runtime("permute(): duplicate dims are not allowed."));
            }
            seen[p] = true;
        }
        Ok(Layout {
            shape: perm.iter().map(|&p| self.shape[p]).collect(),
            stride: perm.iter().map(|&p| self.stride[p]).collect(),
            offset: self.offset,
        })
    }

    /// Elements `start, start+step, ...` below `stop` of one dim (stop clamped, step >= 1).
    pub fn slice(&self, dim: usize, start: usize, stop: usize, step: usize) -> Layout {
        let size = self.shape[dim];
        let start = start.min(size);
        let stop = stop.clamp(start, size);
        let len = (stop - start).div_ceil(step);
        let mut l = self.clone();
        // torch advances the offset even for an empty slice (start is already clamped).
        l.offset += start * self.stride[dim];
        l.shape[dim] = len;
        l.stride[dim] *= step;
        l
    }

    pub fn narrow(&self, dim: usize, start: usize, len: usize) -> Result<Layout> {
        let size = self.shape[dim];
        if start + len > size {
            return Err(Error::runtime(format!(
                "start ({start}) + length ({len}) exceeds dimension size ({size})."
            )));
        }
        Ok(self.slice(dim, start, start + len, 1))
    }

    /// Removes `dim`, picking element `index` (already in range).
    pub fn select(&self, dim: usize, index: usize) -> Layout {
        let mut l = self.clone();
        l.offset += index * self.stride[dim];
        l.shape.remove(dim);
        l.stride.remove(dim);
        l
    }

    pub fn unsqueeze(&self, dim: usize) -> Layout {
        let mut l = self.clone();
        let stride = if dim < self.dims() {
            self.stride[dim] * self.shape[dim]
        } else {
            1
        };
        l.shape.insert(dim, 1);
        l.stride.insert(dim, stride.max(1));
        l
    }

    pub fn squeeze_dims(&self, dims: &[usize]) -> Layout {
        let mut l = Layout {
            shape: Dims::new(),
            stride: Dims::new(),
            offset: self.offset,
        };
        for i in 0..self.dims() {
            if !(dims.contains(&i) && self.shape[i] == 1) {
                l.shape.push(self.shape[i]);
                l.stride.push(self.stride[i]);
            }
        }
        l
    }

    /// Broadcast view to `shape` (new dims in front, size-1 dims stretched with stride 0).
    pub fn broadcast_as(&self, shape: &[usize]) -> Result<Layout> {
        let n = shape.len();
        if n < self.dims() {
            return Err(Error::runtime(format!(
                "expand: the number of sizes provided ({n}) must be greater or equal to the number of dimensions in the tensor ({})",
                self.dims()
            )));
        }
        let extra = n - self.dims();
        let mut stride: Dims = smallvec::smallvec![0; n];
        for i in (0..n).rev() {
            if i < extra {
                // A new leading dim: stride as if contiguous over the dims after it (torch's
                // choice), 0 when it is stretched.
                stride[i] = if shape[i] == 1 {
                    if i + 1 < n {
                        shape[i + 1] * stride[i + 1]
                    } else {
                        1
                    }
                } else {
                    0
                };
                continue;
            }
            let (d, s) = (self.shape[i - extra], self.stride[i - extra]);
            if d == shape[i] {
                stride[i] = s;
            } else if d == 1 {
                stride[i] = 0;
            } else {
                return Err(Error::runtime(format!(
                    "The expanded size of the tensor ({}) must match the existing size ({d}) at non-singleton dimension {i}.  Target sizes: {shape:?}.  Tensor sizes: {:?}",
                    shape[i], self.shape
                )));
            }
        }
        Ok(Layout {
            shape: shape.into(),
            stride,
            offset: self.offset,
        })
    }

    /// A view with a new shape without copying, when the strides allow it (torch's
    /// `computeStride`): each group of old dims that merges into new dims must be contiguous
    /// within itself.
    pub fn view(&self, new_shape: &[usize]) -> Option<Layout> {
        let numel = self.elem_count();
        if numel == 0 || self.is_contiguous() {
            return Some(Layout {
                shape: new_shape.into(),
                stride: contiguous_strides(new_shape),
                offset: self.offset,
            });
        }
        let mut new_stride: Dims = smallvec::smallvec![0; new_shape.len()];
        let old_n = self.dims();
        let mut view_d = new_shape.len() as isize - 1;
        let mut chunk_base_stride = *self.stride.last().unwrap_or(&1);
        let mut tensor_numel = 1usize;
        let mut view_numel = 1usize;
        for tensor_d in (0..old_n).rev() {
            tensor_numel *= self.shape[tensor_d];
            let chunk_ends = tensor_d == 0
                || (self.shape[tensor_d - 1] != 1
                    && self.stride[tensor_d - 1] != tensor_numel * chunk_base_stride);
            if chunk_ends {
                while view_d >= 0 && (view_numel < tensor_numel || new_shape[view_d as usize] == 1)
                {
                    new_stride[view_d as usize] = view_numel * chunk_base_stride;
                    view_numel *= new_shape[view_d as usize];
                    view_d -= 1;
                }
                if view_numel != tensor_numel {
                    return None;
                }
                if tensor_d > 0 {
                    chunk_base_stride = self.stride[tensor_d - 1];
                    tensor_numel = 1;
                    view_numel = 1;
                }
            }
        }
        if view_d != -1 {
            return None;
        }
        Some(Layout {
            shape: new_shape.into(),
            stride: new_stride,
            offset: self.offset,
        })
    }

    pub fn dim(&self, dim: i64) -> Result<usize> {
        normalize_dim(dim, self.dims())
    }

    /// Iterator over the storage offsets of every element in row-major order.
    pub fn offsets(&self) -> StridedIndex<'_> {
        StridedIndex::new(self)
    }
}

/// Row-major walk over the storage offsets of a layout; each step is one add in the common case.
pub struct StridedIndex<'a> {
    next: Option<usize>,
    index: Vec<usize>,
    layout: &'a Layout,
}

impl<'a> StridedIndex<'a> {
    fn new(layout: &'a Layout) -> Self {
        let next = if layout.elem_count() == 0 {
            None
        } else {
            Some(layout.offset)
        };
        StridedIndex {
            next,
            index: vec![0; layout.dims()],
            layout,
        }
    }
}

impl Iterator for StridedIndex<'_> {
    type Item = usize;
    #[inline]
    fn next(&mut self) -> Option<usize> {
        let current = self.next?;
        let mut next = current;
        let mut done = true;
        for d in (0..self.index.len()).rev() {
            let i = self.index[d] + 1;
            if i < self.layout.shape[d] {
                self.index[d] = i;
                next += self.layout.stride[d];
                done = false;
                break;
            }
            self.index[d] = 0;
            next -= (i - 1) * self.layout.stride[d];
        }
        self.next = if done { None } else { Some(next) };
        Some(current)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transpose_is_metadata() {
        let l = Layout::contiguous(&[2, 3]);
        let t = l.transpose(0, 1);
        assert_eq!(t.shape(), &[3, 2]);
        assert_eq!(t.stride(), &[1, 3]);
        assert!(!t.is_contiguous());
        assert_eq!(t.offsets().collect::<Vec<_>>(), vec![0, 3, 1, 4, 2, 5]);
    }

    #[test]
    fn slice_with_step() {
        let l = Layout::contiguous(&[10]);
        let s = l.slice(0, 1, 10, 3);
        assert_eq!(s.shape(), &[3]);
        assert_eq!(s.offsets().collect::<Vec<_>>(), vec![1, 4, 7]);
    }

    #[test]
    fn broadcast_uses_zero_strides() {
        let l = Layout::contiguous(&[3, 1]);
        let b = l.broadcast_as(&[2, 3, 4]).unwrap();
        assert_eq!(b.stride(), &[0, 1, 0]);
        assert_eq!(b.offsets().count(), 24);
        assert!(l.broadcast_as(&[3, 2, 4]).is_err());
    }

    #[test]
    fn view_of_non_contiguous() {
        // A transposed matrix cannot be flattened without a copy ...
        let t = Layout::contiguous(&[2, 3]).transpose(0, 1);
        assert!(t.view(&[6]).is_none());
        // ... but splitting one of its dims is fine.
        let v = t.view(&[3, 2, 1]).unwrap();
        assert_eq!(v.stride()[..2], [1, 3]);
        // Merging dims that are contiguous with each other inside a sliced tensor works.
        let s = Layout::contiguous(&[4, 2, 3]).slice(0, 0, 4, 2);
        let v = s.view(&[2, 6]).unwrap();
        assert_eq!(v.stride(), &[12, 1]);
    }

    #[test]
    fn empty_and_scalar() {
        let e = Layout::contiguous(&[0, 3]);
        assert_eq!(e.offsets().count(), 0);
        let s = Layout::contiguous(&[]);
        assert_eq!(s.offsets().collect::<Vec<_>>(), vec![0]);
        assert!(s.is_contiguous());
    }
}

#[cfg(test)]
mod proptests;
