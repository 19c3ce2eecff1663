//! Shape helpers: dim normalisation, broadcasting, element counts.

use crate::error::{Error, Result};
use smallvec::SmallVec;

/// A list of sizes or strides, inline up to 6 dims (what nearly every tensor has), so a tensor's
/// layout costs no allocation of its own.
pub type Dims = SmallVec<[usize; 6]>;

/// Turns a possibly negative dim into an index in `[0, ndim)`; a rank-0 tensor accepts -1 and 0
/// like torch does.
pub fn normalize_dim(dim: i64, ndim: usize) -> Result<usize> {
    let n = ndim.max(1) as i64;
    if dim < -n || dim >= n {
        return Err(Error::DimOutOfRange {
            dim,
            min: -n,
            max: n - 1,
        });
    }
    Ok(if dim < 0 {
        (dim + n) as usize
    } else {
        dim as usize
    })
}

/// Normalises a list of dims; an empty list means all dims. Duplicates are an error.
pub fn normalize_dims(dims: &[i64], ndim: usize) -> Result<Vec<usize>> {
    let mut out = Vec::with_capacity(dims.len());
    for &d in dims {
        let d = normalize_dim(d, ndim)?;
        if out.contains(&d) {
            return Err(Error::runtime(format!(
                "dim {d} appears multiple times in the list of dims"
            )));
        }
        out.push(d);
    }
    out.sort_unstable();
    Ok(out)
}

pub fn elem_count(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// Elements of a shape with overflow checking (for allocations from user-given sizes).
pub fn checked_elem_count(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}

/// The shape two operands broadcast to, numpy/torch rules.
pub fn broadcast_shapes(op: &'static str, lhs: &[usize], rhs: &[usize]) -> Result<Vec<usize>> {
    let n = lhs.len().max(rhs.len());
    let mut out = vec![0; n];
    for i in 0..n {
        let a = if i + lhs.len() >= n {
            lhs[i + lhs.len() - n]
        } else {
            1
        };
        let b = if i + rhs.len() >= n {
            rhs[i + rhs.len() - n]
        } else {
            1
        };
        out[i] = if a == b || b == 1 {
            a
        } else if a == 1 {
            b
        } else {
            return Err(Error::Broadcast {
                op,
                lhs: lhs.to_vec(),
                rhs: rhs.to_vec(),
                dim: i,
                a,
                b,
            });
        };
    }
    Ok(out)
}

/// Contiguous (row-major) strides of a shape. They saturate instead of overflowing: only a
/// zero-size tensor can have such a shape (see `strides_fit`), and it never uses them.
pub fn contiguous_strides(shape: &[usize]) -> Dims {
    let mut stride: Dims = smallvec::smallvec![0; shape.len()];
    let mut acc = 1usize;
    for i in (0..shape.len()).rev() {
        stride[i] = acc;
        acc = acc.saturating_mul(shape[i].max(1));
    }
    stride
}

/// Whether a shape's row-major strides fit in a `usize`; torch refuses shapes whose strides
/// overflow even when a zero dim leaves them without elements.
pub fn strides_fit(shape: &[usize]) -> bool {
    shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d.max(1)))
        .is_some()
}

/// Infers one `-1` entry of a requested shape from the element count.
pub fn infer_shape(op: &'static str, requested: &[i64], numel: usize) -> Result<Vec<usize>> {
    let mut infer = None;
    let mut known = 1usize;
    for (i, &d) in requested.iter().enumerate() {
        if d == -1 {
            if infer.is_some() {
                return Err(Error::runtime("only one dimension can be inferred"));
            }
            infer = Some(i);
        } else if d < 0 {
            return Err(Error::runtime(format!("invalid shape dimension {d}")));
        } else {
            known = known.saturating_mul(d as usize);
        }
    }
    let mut out: Vec<usize> = requested.iter().map(|&d| d.max(0) as usize).collect();
    let bad = || {
        Error::shape(
            op,
            format!("shape '{requested:?}' is invalid for input of size {numel}"),
        )
    };
    match infer {
        Some(i) => {
            if known == 0 || !numel.is_multiple_of(known) {
                return Err(bad());
            }
            out[i] = numel / known;
        }
        None => {
            if known != numel {
                return Err(bad());
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasting() {
        assert_eq!(broadcast_shapes("t", &[3, 1], &[4]).unwrap(), vec![3, 4]);
        assert_eq!(broadcast_shapes("t", &[], &[2, 2]).unwrap(), vec![2, 2]);
        assert_eq!(broadcast_shapes("t", &[0, 1], &[1, 5]).unwrap(), vec![0, 5]);
        assert!(broadcast_shapes("t", &[3], &[4]).is_err());
    }

    #[test]
    fn dims() {
        assert_eq!(normalize_dim(-1, 3).unwrap(), 2);
        assert_eq!(normalize_dim(0, 0).unwrap(), 0);
        assert!(normalize_dim(3, 3).is_err());
        assert!(normalize_dims(&[0, -2], 2).is_err());
    }

    #[test]
    fn infer() {
        assert_eq!(infer_shape("view", &[-1, 3], 6).unwrap(), vec![2, 3]);
        assert!(infer_shape("view", &[-1, 4], 6).is_err());
        assert!(infer_shape("view", &[-1, -1], 6).is_err());
    }
}
