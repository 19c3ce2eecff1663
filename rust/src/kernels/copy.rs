//! Gathering a strided view into a contiguous buffer, casting, and writing into a strided view.

use crate::dtype::Elem;
use crate::layout::Layout;
use crate::storage::Storage;
use crate::strided_index::{coalesce, for_each_row};

/// The elements of `layout` in row-major order.
pub fn gather<T: Elem>(data: &[T], layout: &Layout) -> Vec<T> {
    if let Some((start, end)) = layout.contiguous_offsets() {
        return data[start..end].to_vec();
    }
    let mut out = Vec::with_capacity(layout.elem_count());
    let (shape, [l]) = coalesce(layout.shape(), [layout]);
    for_each_row(&shape, [&l], |[o], [s], n| {
        if s == 1 {
            out.extend_from_slice(&data[o..o + n]);
        } else {
            out.extend((0..n).map(|i| data[o + i * s]));
        }
    });
    out
}

/// Converts elements like a C cast (what torch's `.to(dtype)` does): integers travel through
/// i64 exactly, floats through f64.
pub fn cast<S: Elem, D: Elem>(src: &[S]) -> Vec<D> {
    if S::DTYPE.is_float() {
        src.iter().map(|&s| D::from_f64(s.to_f64())).collect()
    } else {
        src.iter().map(|&s| D::from_i64(s.to_i64())).collect()
    }
}

/// Writes `values` (row-major, `layout.elem_count()` of them) into the positions of `layout`.
pub fn scatter_into<T: Elem>(storage: &Storage, layout: &Layout, values: &[T]) {
    storage.write_layout(layout, values);
}

/// Copies the elements of `src` seen through `src_layout` to the positions of `dst_layout` in
/// `dst` (both layouts have the same shape; `dst_layout` must not overlap itself).
pub fn copy_strided<T: Elem>(src: &[T], src_layout: &Layout, dst: &mut [T], dst_layout: &Layout) {
    debug_assert_eq!(src_layout.shape(), dst_layout.shape());
    let (shape, [ls, ld]) = coalesce(src_layout.shape(), [src_layout, dst_layout]);
    for_each_row(&shape, [&ls, &ld], |[os, od], [ss, sd], n| {
        if ss == 1 && sd == 1 {
            dst[od..od + n].copy_from_slice(&src[os..os + n]);
        } else {
            for i in 0..n {
                dst[od + i * sd] = src[os + i * ss];
            }
        }
    });
}
