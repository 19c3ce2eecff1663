//! Creation ops: constants, ranges, identity.

use super::Tensor;
use crate::dtype::{DType, Elem};
use crate::error::{Error, Result};
use crate::storage::try_vec;
use crate::with_dtype;

/// A Python number as an op argument.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Scalar {
    Bool(bool),
    Int(i64),
    Float(f64),
}

impl Scalar {
    /// The dtype torch gives a Python number in type promotion.
    pub fn dtype(self) -> DType {
        match self {
            Scalar::Bool(_) => DType::Bool,
            Scalar::Int(_) => DType::I64,
            Scalar::Float(_) => DType::F32,
        }
    }
    pub fn to_f64(self) -> f64 {
        match self {
            Scalar::Bool(b) => b as u8 as f64,
            Scalar::Int(i) => i as f64,
            Scalar::Float(f) => f,
        }
    }
    pub fn to_i64(self) -> i64 {
        match self {
            Scalar::Bool(b) => b as i64,
            Scalar::Int(i) => i,
            Scalar::Float(f) => f as i64,
        }
    }
    /// The value as an element of type T (ints stay exact for integer dtypes).
    pub fn to_elem<T: Elem>(self) -> T {
        match self {
            Scalar::Float(f) => T::from_f64(f),
            _ => T::from_i64(self.to_i64()),
        }
    }
}

impl Tensor {
    pub fn full(shape: &[usize], value: Scalar, dtype: DType) -> Result<Tensor> {
        with_dtype!(dtype, T, {
            let v = try_vec::<T>("full", shape, value.to_elem::<T>())?;
            Tensor::from_vec(v, shape)
        })
    }

    /// `full` on `device` (made there by torch for the torch backend).
    pub fn full_on(
        shape: &[usize],
        value: Scalar,
        dtype: DType,
        device: crate::device::Device,
    ) -> Result<Tensor> {
        use crate::device::Value;
        if device.is_native() {
            return Tensor::full(shape, value, dtype);
        }
        let args = [
            Value::Ints(shape.iter().map(|&d| d as i64).collect()),
            Value::Scalar(value),
            Value::DType(dtype),
            Value::Device(device),
        ];
        crate::device::call1("full", device, &args)
    }

    pub fn zeros(shape: &[usize], dtype: DType) -> Result<Tensor> {
        Tensor::full(shape, Scalar::Int(0), dtype)
    }

    /// A rank-0 tensor holding one number.
    pub fn scalar(value: Scalar, dtype: DType) -> Tensor {
        Tensor::full(&[], value, dtype).expect("one element")
    }

    /// `start, start+step, ...` below `end` (torch's size rule: ceil((end-start)/step)).
    pub fn arange(start: Scalar, end: Scalar, step: Scalar, dtype: DType) -> Result<Tensor> {
        let (s, e, st) = (start.to_f64(), end.to_f64(), step.to_f64());
        if st == 0.0 {
            return Err(Error::runtime("step must be nonzero"));
        }
        if !(s.is_finite() && e.is_finite()) {
            return Err(Error::runtime(format!("unsupported range: {s} -> {e}")));
        }
        if (st > 0.0 && e < s) || (st < 0.0 && e > s) {
            return Err(Error::runtime(
                "upper bound and larger bound inconsistent with step sign",
            ));
        }
        let all_int = [start, end, step]
            .iter()
            .all(|v| !matches!(v, Scalar::Float(_)));
        let n = if all_int {
            let (s, e, st) = (start.to_i64(), end.to_i64(), step.to_i64());
            ((e - s) as f64 / st as f64).ceil() as usize
        } else {
            ((e - s) / st).ceil() as usize
        };
        crate::storage::check_alloc("arange", &[n], dtype)?;
        with_dtype!(dtype, T, {
            let v: Vec<T> = if dtype.is_float() {
                (0..n).map(|i| T::from_f64(s + i as f64 * st)).collect()
            } else {
                let (s, st) = (start.to_i64(), step.to_i64());
                (0..n).map(|i| T::from_i64(s + i as i64 * st)).collect()
            };
            Tensor::from_vec(v, &[n])
        })
    }

    /// `steps` points from `start` to `end` inclusive. Like torch, the first half is computed
    /// forward from `start` and the second half backward from `end`, so both ends are exact.
    pub fn linspace(start: f64, end: f64, steps: i64, dtype: DType) -> Result<Tensor> {
        if steps < 0 {
            return Err(Error::runtime("number of steps must be non-negative"));
        }
        let n = steps as usize;
        let step = if n > 1 {
            (end - start) / (n - 1) as f64
        } else {
            0.0
        };
        // One point is `start` (torch's rule), not `end`.
        let half = if n == 1 { 1 } else { n / 2 };
        with_dtype!(dtype, T, {
            let v: Vec<T> = (0..n)
                .map(|i| {
                    let x = if i < half {
                        start + step * i as f64
                    } else {
                        end - step * (n - 1 - i) as f64
                    };
                    T::from_f64(x)
                })
                .collect();
            Tensor::from_vec(v, &[n])
        })
    }

    pub fn eye(n: usize, m: usize, dtype: DType) -> Result<Tensor> {
        with_dtype!(dtype, T, {
            let mut v = try_vec::<T>("eye", &[n, m], T::zero())?;
            for i in 0..n.min(m) {
                v[i * m + i] = T::one();
            }
            Tensor::from_vec(v, &[n, m])
        })
    }
}
