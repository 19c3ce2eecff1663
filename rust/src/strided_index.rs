//! Walking several layouts of the same shape together, row by row. The innermost dimension is a
//! tight loop with fixed strides, which is where kernels spend their time; contiguous operands
//! take the slice fast paths in the kernels before reaching this.

use crate::layout::Layout;
use crate::shape::Dims;

/// Calls `f(offsets, inner_strides, len)` once per row (all dims but the last fixed), where
/// `offsets[i]` is operand i's storage offset of the row's first element and `inner_strides[i]`
/// its stride along the last dim. A rank-0 shape is one row of length 1.
pub fn for_each_row<const N: usize>(
    shape: &[usize],
    layouts: [&Layout; N],
    mut f: impl FnMut([usize; N], [usize; N], usize),
) {
    if shape.contains(&0) {
        return;
    }
    let nd = shape.len();
    if nd == 0 {
        f(layouts.map(|l| l.offset()), [0; N], 1);
        return;
    }
    let inner = shape[nd - 1];
    let inner_strides = layouts.map(|l| l.stride()[nd - 1]);
    let mut index = vec![0usize; nd - 1];
    let mut offs = layouts.map(|l| l.offset());
    loop {
        f(offs, inner_strides, inner);
        // Advance the outer index like an odometer, keeping the offsets in step.
        let mut d = nd - 1;
        loop {
            if d == 0 {
                return;
            }
            d -= 1;
            index[d] += 1;
            if index[d] < shape[d] {
                for (o, l) in offs.iter_mut().zip(layouts.iter()) {
                    *o += l.stride()[d];
                }
                break;
            }
            index[d] = 0;
            for (o, l) in offs.iter_mut().zip(layouts.iter()) {
                *o -= (shape[d] - 1) * l.stride()[d];
            }
        }
    }
}

/// Merges adjacent dims that are contiguous with each other in every layout, so that the
/// row walk above gets long inner rows (e.g. a [64, 3, 768] add collapses to one row).
pub fn coalesce<const N: usize>(shape: &[usize], layouts: [&Layout; N]) -> (Dims, [Layout; N]) {
    let mut sh = Dims::new();
    let mut st: [Dims; N] = std::array::from_fn(|_| Dims::new());
    for (d, &size) in shape.iter().enumerate() {
        if size == 1 {
            continue;
        }
        let can_merge = !sh.is_empty()
            && (0..N).all(|i| st[i].last().copied() == Some(layouts[i].stride()[d] * size));
        if can_merge {
            let last = sh.len() - 1;
            sh[last] *= size;
            for i in 0..N {
                let l = st[i].len() - 1;
                st[i][l] = layouts[i].stride()[d];
            }
        } else {
            sh.push(size);
            for i in 0..N {
                st[i].push(layouts[i].stride()[d]);
            }
        }
    }
    let out = std::array::from_fn(|i| Layout::new(sh.clone(), st[i].clone(), layouts[i].offset()));
    (sh, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_of_a_transpose() {
        let a = Layout::contiguous(&[2, 3]).transpose(0, 1);
        let mut rows = vec![];
        for_each_row(a.shape(), [&a], |o, s, n| rows.push((o[0], s[0], n)));
        assert_eq!(rows, vec![(0, 3, 2), (1, 3, 2), (2, 3, 2)]);
    }

    #[test]
    fn coalesce_merges_contiguous_dims() {
        let a = Layout::contiguous(&[4, 3, 5]);
        let b = Layout::contiguous(&[1, 3, 5])
            .broadcast_as(&[4, 3, 5])
            .unwrap();
        let (sh, [la, lb]) = coalesce(&[4, 3, 5], [&a, &b]);
        assert_eq!(sh[..], [4, 15]);
        assert_eq!(la.stride(), &[15, 1]);
        assert_eq!(lb.stride(), &[0, 1]);
    }
}
