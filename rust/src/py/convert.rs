//! Python values to core values and back: nested sequences, numpy arrays (through the array
//! interface, zero-copy where torch shares memory), numbers, shapes, subscripts.

use super::pytensor::PyTensor;
use crate::dtype::{DType, Elem};
use crate::error::Error;
use crate::layout::Layout;
use crate::storage::Storage;
use crate::tensor::{Scalar, Tensor, TensorIndex};
use crate::with_dtype;
use pyo3::exceptions::{PyIndexError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{
    PyBool, PyDict, PyEllipsis, PyFloat, PyInt, PyList, PySequence, PySlice, PyTuple,
};

/// A Python number, or None when `obj` is not one (bool is checked before int).
pub fn as_scalar(obj: &Bound<'_, PyAny>) -> Option<Scalar> {
    if obj.is_instance_of::<PyBool>() {
        return obj.extract::<bool>().ok().map(Scalar::Bool);
    }
    if obj.is_instance_of::<PyInt>() {
        return obj.extract::<i64>().ok().map(Scalar::Int);
    }
    if obj.is_instance_of::<PyFloat>() {
        return obj.extract::<f64>().ok().map(Scalar::Float);
    }
    // numpy scalars: np.bool_, integers (through __index__), floating.
    let ty = obj.get_type();
    let module = ty.module().ok()?;
    if module != "numpy" {
        return None;
    }
    let name = ty.name().ok()?.to_string();
    if name == "bool" || name == "bool_" {
        return obj
            .call_method0("__bool__")
            .ok()?
            .extract::<bool>()
            .ok()
            .map(Scalar::Bool);
    }
    if name.starts_with("int") || name.starts_with("uint") {
        return obj.extract::<i64>().ok().map(Scalar::Int);
    }
    if name.starts_with("float") {
        return obj.extract::<f64>().ok().map(Scalar::Float);
    }
    None
}

/// Shapes given as varargs (`view(2, 3)`) or as one sequence (`view((2, 3))`).
pub fn shape_args(args: &Bound<'_, PyTuple>) -> PyResult<Vec<i64>> {
    if args.len() == 1 {
        let first = args.get_item(0)?;
        if !first.is_instance_of::<PyInt>() {
            if let Ok(seq) = first.cast::<PySequence>() {
                return seq_ints(seq);
            }
            if let Ok(v) = first.extract::<i64>() {
                return Ok(vec![v]);
            }
            return Err(PyTypeError::new_err(format!(
                "expected a sequence of integers or integers as the size, but got {}",
                first.get_type().name()?
            )));
        }
    }
    seq_ints(args.cast::<PySequence>()?)
}

fn seq_ints(seq: &Bound<'_, PySequence>) -> PyResult<Vec<i64>> {
    let mut out = Vec::with_capacity(seq.len()?);
    for item in seq.try_iter()? {
        let item = item?;
        if item.is_instance_of::<PyFloat>() || item.is_instance_of::<PyBool>() {
            return Err(PyTypeError::new_err(format!(
                "sizes must be integers, but got an element of type {}",
                item.get_type().name()?
            )));
        }
        out.push(item.extract::<i64>().map_err(|_| {
            PyTypeError::new_err(format!(
                "sizes must be integers, but got an element of type {}",
                item.get_type()
                    .name()
                    .map(|n| n.to_string())
                    .unwrap_or_default()
            ))
        })?);
    }
    Ok(out)
}

/// Non-negative sizes for creation ops.
pub fn sizes(args: &Bound<'_, PyTuple>) -> PyResult<Vec<usize>> {
    shape_args(args)?
        .into_iter()
        .map(|d| {
            if d < 0 {
                Err(PyRuntimeError::new_err(format!(
                    "Trying to create tensor with negative dimension {d}: {:?}",
                    shape_args(args).unwrap_or_default()
                )))
            } else {
                Ok(d as usize)
            }
        })
        .collect()
}

// *** building tensors from Python data ***

/// torch's limit on the rank of a tensor built from nested sequences.
const MAX_NESTED_DIMS: usize = 128;

/// Flattened values of a nested sequence with its inferred shape and dtype.
struct Nested {
    shape: Vec<usize>,
    values: Vec<Scalar>,
    /// The promoted dtype of the items so far: a Python number counts as torch's default for
    /// its kind (bool, int64, float32), a 0-d tensor or numpy scalar/array as its own dtype.
    dtype: Option<DType>,
    /// A Python int beyond int64 was kept as a float: only a floating dtype can hold it.
    big_int: Option<String>,
}

impl Nested {
    fn push(&mut self, depth: usize, value: Scalar, dtype: DType) -> PyResult<()> {
        if depth != self.shape.len() {
            return Err(PyTypeError::new_err(format!(
                "expected sequence of length {} at dim {depth} (got a number)",
                self.shape.get(depth).copied().unwrap_or(0)
            )));
        }
        self.dtype = Some(self.dtype.map_or(dtype, |d| d.promote(dtype)));
        self.values.push(value);
        Ok(())
    }

    /// Enters a sequence of length `n` at `depth`: it fixes or must match that dim's size.
    fn enter(&mut self, depth: usize, n: usize) -> PyResult<()> {
        if depth >= MAX_NESTED_DIMS {
            return Err(PyValueError::new_err(format!(
                "too many dimensions: nested sequences deeper than {MAX_NESTED_DIMS} levels"
            )));
        }
        if depth == self.shape.len() {
            if !self.values.is_empty() {
                return Err(PyTypeError::new_err(format!(
                    "expected a number at dim {depth} but got a sequence of length {n}"
                )));
            }
            self.shape.push(n);
        } else if self.shape[depth] != n {
            return Err(PyValueError::new_err(format!(
                "expected sequence of length {} at dim {depth} (got {n})",
                self.shape[depth]
            )));
        }
        Ok(())
    }

    /// A tensor's elements as items of its dtype (0-d tensors, numpy scalars and arrays
    /// inside a list): its dims continue the nesting at `depth`.
    fn push_tensor(&mut self, t: &Tensor, depth: usize) -> PyResult<()> {
        for (d, &n) in t.shape().iter().enumerate() {
            self.enter(depth + d, n)?;
        }
        let depth = depth + t.dims();
        let d = t.dtype();
        // An empty array still decides the dtype.
        self.dtype = Some(self.dtype.map_or(d, |x| x.promote(d)));
        if d.is_float() {
            for f in t.to_vec_as::<f64>() {
                self.push(depth, Scalar::Float(f), d)?;
            }
        } else {
            for i in t.to_vec_as::<i64>() {
                let value = if d == DType::Bool {
                    Scalar::Bool(i != 0)
                } else {
                    Scalar::Int(i)
                };
                self.push(depth, value, d)?;
            }
        }
        Ok(())
    }
}

fn walk(obj: &Bound<'_, PyAny>, depth: usize, out: &mut Nested) -> PyResult<()> {
    if obj.is_none() {
        return Err(PyRuntimeError::new_err("Could not infer dtype of NoneType"));
    }
    // numpy scalars and arrays carry a dtype (np.float64 stays float64), like tensors.
    if is_numpy(obj) {
        return out.push_tensor(&array_values(obj)?, depth);
    }
    if obj.is_instance_of::<PyInt>()
        && !obj.is_instance_of::<PyBool>()
        && obj.extract::<i64>().is_err()
    {
        // Kept as a float; an integer result dtype rejects it at the end, as torch does.
        out.big_int.get_or_insert_with(|| obj.to_string());
        let f = obj.extract::<f64>()?;
        return out.push(depth, Scalar::Float(f), DType::I64);
    }
    if let Some(s) = as_scalar(obj) {
        return out.push(depth, s, s.dtype());
    }
    if let Ok(t) = obj.cast::<PyTensor>() {
        let t = t.borrow().t.clone();
        if t.dims() != 0 {
            return Err(PyValueError::new_err(
                "only one element tensors can be converted to Python scalars (use torch.stack to join tensors)",
            ));
        }
        return out.push_tensor(&t, depth);
    }
    for name in ["str", "bytes"] {
        if obj.get_type().name().is_ok_and(|n| n == name) {
            return Err(PyTypeError::new_err(format!(
                "new(): invalid data type '{name}'"
            )));
        }
    }
    let seq = obj.cast::<PySequence>().map_err(|_| {
        PyTypeError::new_err(format!(
            "Could not infer dtype of {}",
            obj.get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_default()
        ))
    })?;
    out.enter(depth, seq.len()?)?;
    for item in seq.try_iter()? {
        walk(&item?, depth + 1, out)?;
    }
    Ok(())
}

/// A Python number written into a tensor of `dtype` (setitem, fill): torch's checked
/// conversion, which also refuses finite values beyond float32's range.
pub fn check_scalar_fits(value: Scalar, dtype: DType) -> PyResult<()> {
    let beyond_f32 = |f: f64| f.is_finite() && f.abs() > f32::MAX as f64;
    let ok = match (value, dtype) {
        (Scalar::Float(f), DType::F32) => !beyond_f32(f),
        _ => fits(value, dtype),
    };
    if ok {
        return Ok(());
    }
    Err(overflow(value, dtype))
}

fn overflow(value: Scalar, dtype: DType) -> PyErr {
    let shown = match value {
        Scalar::Float(f) => format!("{f:?}"),
        other => other.to_i64().to_string(),
    };
    PyRuntimeError::new_err(format!(
        "value cannot be converted to type {} without overflow: {shown}",
        dtype.name()
    ))
}

/// A value fits an integer dtype the way torch's `checked_convert` allows: integers within
/// the type's range (negative ones down to -max for unsigned types, which wrap), floats within
/// [lowest, max] (so NaN and infinities never fit).
fn fits(value: Scalar, dtype: DType) -> bool {
    let (lo, hi) = match dtype {
        DType::U8 => (0.0, 255.0),
        DType::I32 => (i32::MIN as f64, i32::MAX as f64),
        DType::I64 => (i64::MIN as f64, i64::MAX as f64),
        _ => return true,
    };
    match value {
        Scalar::Bool(_) => true,
        Scalar::Int(i) if dtype == DType::U8 => (-255..=255).contains(&i),
        Scalar::Int(i) => (lo..=hi).contains(&(i as f64)),
        // i64::MAX rounds up to 2^63 as a float, which is already out of range.
        Scalar::Float(f) if dtype == DType::I64 => (lo..hi).contains(&f),
        Scalar::Float(f) => (lo..=hi).contains(&f),
    }
}

/// A numpy scalar or array (anything of numpy's with the array interface).
fn is_numpy(obj: &Bound<'_, PyAny>) -> bool {
    let ty = obj.get_type();
    ty.module().is_ok_and(|m| m == "numpy") && obj.hasattr("__array_interface__").unwrap_or(false)
}

fn has_array_interface(obj: &Bound<'_, PyAny>) -> bool {
    obj.hasattr("__array_interface__").unwrap_or(false) && obj.cast::<PyTensor>().is_err()
}

/// `ferrotorch.tensor(data)`: always a copy.
pub fn tensor_from_data(obj: &Bound<'_, PyAny>, dtype: Option<DType>) -> PyResult<Tensor> {
    if let Ok(t) = obj.cast::<PyTensor>() {
        let t = t.borrow().t.deep_copy();
        return Ok(match dtype {
            Some(d) => t.to_dtype(d),
            None => t,
        });
    }
    // numpy scalars take the path of Python numbers below, with its range checks.
    if has_array_interface(obj) && !is_numpy_scalar(obj)? {
        let t = array_values(obj)?.deep_copy();
        return Ok(match dtype {
            Some(d) => t.to_dtype(d),
            None => t,
        });
    }
    let mut n = Nested {
        shape: vec![],
        values: vec![],
        dtype: None,
        big_int: None,
    };
    walk(obj, 0, &mut n)?;
    if n.values.is_empty() && n.shape.is_empty() {
        return Err(PyTypeError::new_err("Could not infer dtype"));
    }
    // An empty list is float32, like torch's default dtype.
    let dt = dtype.unwrap_or(n.dtype.unwrap_or(DType::F32));
    if let Some(big) = &n.big_int {
        if !dt.is_float() && dt != DType::Bool {
            return Err(PyValueError::new_err(format!(
                "Overflow when unpacking long: {big} does not fit in {}",
                if dtype.is_some() { dt.name() } else { "int64" }
            )));
        }
    }
    if let Some(&bad) = n.values.iter().find(|&&v| !fits(v, dt)) {
        return Err(overflow(bad, dt));
    }
    with_dtype!(dt, T, {
        let v: Vec<T> = n.values.iter().map(|s| s.to_elem::<T>()).collect();
        Ok(Tensor::from_vec(v, &n.shape)?)
    })
}

fn typestr_dtype(ts: &str) -> Option<DType> {
    Some(match &ts[1..] {
        "b1" => DType::Bool,
        "u1" => DType::U8,
        "i4" => DType::I32,
        "i8" => DType::I64,
        "f2" => DType::F16,
        "f4" => DType::F32,
        "f8" => DType::F64,
        _ => return None,
    })
}

pub fn typestr(dtype: DType) -> PyResult<&'static str> {
    Ok(match dtype {
        DType::Bool => "|b1",
        DType::U8 => "|u1",
        DType::I32 => "<i4",
        DType::I64 => "<i8",
        DType::F16 => "<f2",
        DType::F32 => "<f4",
        DType::F64 => "<f8",
        DType::BF16 => {
            return Err(PyTypeError::new_err(
                "Got unsupported ScalarType BFloat16 (numpy has no bfloat16; use .float() first)",
            ))
        }
    })
}

/// Wraps a numpy array's memory without copying (torch.from_numpy semantics).
pub fn from_numpy(arr: &Bound<'_, PyAny>) -> PyResult<Tensor> {
    // A numpy scalar's interface points into a temporary array that is gone once the
    // attribute is read: take an owning 0-d array instead.
    if let Ok(np) = arr.py().import("numpy") {
        if arr.is_instance(&np.getattr("generic")?)? {
            return from_numpy(&np.call_method1("asarray", (arr,))?);
        }
    }
    let iface = arr.getattr("__array_interface__")?;
    let iface = iface.cast::<PyDict>()?;
    let ts: String = iface
        .get_item("typestr")?
        .ok_or_else(|| PyTypeError::new_err("bad __array_interface__"))?
        .extract()?;
    if ts.starts_with('>') {
        return Err(PyValueError::new_err(format!(
            "given numpy array has byte order different from the native byte order ({ts}): from_numpy shares memory and cannot convert it; use torch.tensor(array) for a converted copy"
        )));
    }
    let dtype = typestr_dtype(&ts).ok_or_else(|| {
        PyTypeError::new_err(format!(
            "can't convert np.ndarray of type {}. The only supported types are: float64, float32, float16, int64, int32, uint8, and bool.",
            arr.getattr("dtype").map(|d| d.to_string()).unwrap_or(ts.clone())
        ))
    })?;
    let (ptr, _ro): (usize, bool) = iface
        .get_item("data")?
        .ok_or_else(|| PyTypeError::new_err("bad __array_interface__"))?
        .extract()?;
    let shape: Vec<usize> = iface
        .get_item("shape")?
        .ok_or_else(|| PyTypeError::new_err("bad __array_interface__"))?
        .extract()?;
    let item = dtype.size_in_bytes() as i64;
    let strides: Option<Vec<i64>> = match iface.get_item("strides")? {
        Some(s) if !s.is_none() => Some(s.extract()?),
        _ => None,
    };
    let stride: Vec<usize> = match strides {
        None => crate::shape::contiguous_strides(&shape).to_vec(),
        Some(s) => {
            let mut out = Vec::with_capacity(s.len());
            for &b in &s {
                if b < 0 {
                    return Err(PyValueError::new_err(
                        "At least one stride in the given numpy array is negative, and tensors with negative strides are not currently supported. (You can probably work around this by making a copy of your array  with array.copy().) ",
                    ));
                }
                if b % item != 0 {
                    return Err(PyValueError::new_err(format!(
                        "given numpy array strides not a multiple of the element byte size ({s:?} for itemsize {item}). Copy the numpy array to reallocate the memory."
                    )));
                }
                out.push((b / item) as usize);
            }
            out
        }
    };
    if ptr % item as usize != 0 && shape.iter().product::<usize>() > 0 {
        return Err(PyValueError::new_err(
            "the numpy array's data is not aligned for its dtype; copy it first",
        ));
    }
    let layout = Layout::new(shape, stride, 0);
    let len = layout.storage_extent();
    let owner: Py<PyAny> = arr.clone().unbind();
    let ptr = if len == 0 {
        std::ptr::NonNull::<u64>::dangling().as_ptr() as usize
    } else {
        ptr
    };
    // SAFETY: the array interface promises `len` elements of `dtype` at `ptr`; holding the
    // array object keeps that memory alive.
    let storage = unsafe { Storage::from_external(ptr as *mut u8, len, dtype, Box::new(owner)) };
    Ok(Tensor::from_storage(storage, layout))
}

/// The values of a numpy array as a tensor: shared when `from_numpy` can share them, else
/// (another byte order, unaligned data) an aligned native copy. Negative strides stay an
/// error, as in torch.
pub fn array_values(arr: &Bound<'_, PyAny>) -> PyResult<Tensor> {
    let dtype = arr.getattr("dtype")?;
    let swapped = dtype.getattr("byteorder")?.extract::<String>()? == ">";
    let aligned = arr
        .getattr("flags")?
        .getattr("aligned")?
        .extract::<bool>()?;
    if swapped || !aligned {
        let np = arr.py().import("numpy")?;
        let native = dtype.call_method1("newbyteorder", ("=",))?;
        return from_numpy(&np.call_method1("require", (arr, native, "A"))?);
    }
    from_numpy(arr)
}

fn is_numpy_scalar(obj: &Bound<'_, PyAny>) -> PyResult<bool> {
    match obj.py().import("numpy") {
        Ok(np) => obj.is_instance(&np.getattr("generic")?),
        Err(_) => Ok(false),
    }
}

/// Nested Python lists of the elements (`tolist`).
pub fn to_pylist(py: Python<'_>, t: &Tensor) -> PyResult<Py<PyAny>> {
    fn build<'py, T: Elem>(
        py: Python<'py>,
        v: &[T],
        shape: &[usize],
        dtype: DType,
    ) -> PyResult<Bound<'py, PyAny>> {
        if shape.is_empty() {
            let x = v[0];
            return Ok(if dtype.is_float() {
                x.to_f64().into_pyobject(py)?.into_any()
            } else if dtype == DType::Bool {
                PyBool::new(py, x.is_nonzero()).to_owned().into_any()
            } else {
                x.to_i64().into_pyobject(py)?.into_any()
            });
        }
        let step: usize = shape[1..].iter().product();
        let items = (0..shape[0])
            .map(|i| build(py, &v[i * step..(i + 1) * step], &shape[1..], dtype))
            .collect::<PyResult<Vec<_>>>()?;
        Ok(PyList::new(py, items)?.into_any())
    }
    with_dtype!(t.dtype(), T, {
        let v = t.to_vec::<T>();
        Ok(build(py, &v, t.shape(), t.dtype())?.unbind())
    })
}

// *** subscripts ***

pub fn parse_index(key: &Bound<'_, PyAny>) -> PyResult<Vec<TensorIndex>> {
    if let Ok(tup) = key.cast::<PyTuple>() {
        return tup.iter().map(|k| one_index(&k)).collect();
    }
    Ok(vec![one_index(key)?])
}

fn one_index(k: &Bound<'_, PyAny>) -> PyResult<TensorIndex> {
    if k.is_none() {
        return Ok(TensorIndex::NewAxis);
    }
    if k.is_instance_of::<PyEllipsis>() {
        return Ok(TensorIndex::Ellipsis);
    }
    if k.is_instance_of::<PyBool>() {
        return Ok(TensorIndex::Tensor(Tensor::scalar(
            Scalar::Bool(k.extract()?),
            DType::Bool,
        )));
    }
    if k.is_instance_of::<PyInt>() {
        return Ok(TensorIndex::Int(k.extract()?));
    }
    if let Ok(s) = k.cast::<PySlice>() {
        let get = |name: &str| -> PyResult<Option<i64>> {
            let v = s.getattr(name)?;
            if v.is_none() {
                Ok(None)
            } else {
                Ok(Some(v.extract::<i64>().map_err(|_| {
                    PyTypeError::new_err(
                        "slice indices must be integers or None or have an __index__ method",
                    )
                })?))
            }
        };
        return Ok(TensorIndex::Slice(
            get("start")?,
            get("stop")?,
            get("step")?.unwrap_or(1),
        ));
    }
    if let Ok(t) = k.cast::<PyTensor>() {
        let t = t.borrow().t.clone();
        if t.dims() == 0 && t.dtype().is_int() {
            return Ok(TensorIndex::Int(t.item_i64()?));
        }
        return Ok(TensorIndex::Tensor(t));
    }
    if k.is_instance_of::<PyList>() || has_array_interface(k) {
        return Ok(TensorIndex::Tensor(tensor_from_data(k, None)?));
    }
    if let Ok(i) = k.extract::<i64>() {
        return Ok(TensorIndex::Int(i));
    }
    Err(PyIndexError::new_err(format!(
        "only integers, slices (`:`), ellipsis (`...`), None and long or byte Variables are valid indices (got {})",
        k.get_type().name()?
    )))
}

pub fn err(e: Error) -> PyErr {
    e.into()
}
