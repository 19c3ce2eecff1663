//! The `ferrotorch._C` extension module: thin bindings over the core.

pub mod autograd;
pub mod backend;
pub mod convert;
pub mod dtype;
pub mod errors;
pub mod io;
pub mod nn;
pub mod pytensor;
pub mod random;

use crate::device::Device;
use crate::dtype::DType;
use crate::tensor::math::Arg;
use crate::tensor::{Scalar, Tensor};
use convert::{as_scalar, sizes, tensor_from_data};
use pyo3::exceptions::{PyRuntimeError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyAny, PyTuple};
use pytensor::{dtype_arg, new_py, PyTensor};

/// Creation-op keyword arguments shared by every factory.
fn finish(py: Python<'_>, t: Tensor, requires_grad: bool) -> PyResult<Py<PyTensor>> {
    let p = PyTensor::wrap(t);
    if requires_grad {
        p.t.set_requires_grad(true)?;
    }
    Py::new(py, p)
}

/// The device a creation op was asked for (None: the default, the native CPU).
pub fn device_arg(device: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Device>> {
    match device {
        Some(d) if !d.is_none() => Ok(Some(pytensor::parse_device(d)?)),
        _ => Ok(Some(crate::device::default_device()).filter(|d| !d.is_native())),
    }
}

/// A `*_like` factory's device: the one given, else the input's.
fn like_device(device: Option<&Bound<'_, PyAny>>, input: &PyTensor) -> PyResult<Option<Device>> {
    match device {
        Some(d) if !d.is_none() => Ok(Some(pytensor::parse_device(d)?)),
        _ => Ok(Some(input.t.device())),
    }
}

/// `set_default_device(device)`: where factories without `device=` put their tensors.
#[pyfunction]
fn set_default_device(device: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
    let d = match device {
        Some(d) if !d.is_none() => pytensor::parse_device(d)?,
        _ => Device::Cpu,
    };
    crate::device::set_default_device(d);
    Ok(())
}

/// A tensor on the torch-backend device `device` holding the torch tensor `t`'s values (the
/// same memory when `t` is contiguous).
#[pyfunction]
fn _wrap_torch(py: Python<'_>, t: &Bound<'_, PyAny>, device: &str) -> PyResult<Py<PyTensor>> {
    let dev = Device::parse(device)
        .ok_or_else(|| PyRuntimeError::new_err(format!("unknown device {device}")))?;
    new_py(py, backend::from_torch_tensor(py, t, dev)?)
}

/// The name of the device factories use by default.
#[pyfunction]
fn _default_device() -> String {
    crate::device::default_device().name()
}

/// `finish` for a tensor made on the host and wanted on `device`.
fn finish_on(
    py: Python<'_>,
    device: Option<Device>,
    t: Tensor,
    requires_grad: bool,
) -> PyResult<Py<PyTensor>> {
    let t = match device {
        Some(d) if d != t.device() => t.to_device(d)?,
        _ => t,
    };
    finish(py, t, requires_grad)
}

fn autocast_kind(device_type: &str) -> PyResult<crate::autocast::Kind> {
    crate::autocast::Kind::parse(device_type).ok_or_else(|| {
        PyRuntimeError::new_err(format!(
            "User specified an unsupported autocast device_type '{device_type}'; autocast \
             supports cpu, cuda and mps"
        ))
    })
}

/// Turns autocast on (a dtype) or off (None) for `device_type` on this thread; returns the
/// previous dtype (None when it was off).
#[pyfunction]
#[pyo3(signature = (device_type, dtype=None))]
fn _autocast_set(
    py: Python<'_>,
    device_type: &str,
    dtype: Option<&Bound<'_, PyAny>>,
) -> PyResult<Option<Py<dtype::PyDType>>> {
    let old = crate::autocast::set(autocast_kind(device_type)?, dtype_arg(dtype)?);
    Ok(old.map(|d| dtype::py_dtype(py, d)))
}

/// The dtype autocast casts to on `device_type` on this thread, or None when it is off.
#[pyfunction]
fn _autocast_get(py: Python<'_>, device_type: &str) -> PyResult<Option<Py<dtype::PyDType>>> {
    Ok(crate::autocast::get(autocast_kind(device_type)?).map(|d| dtype::py_dtype(py, d)))
}

/// The dtype of the autocast region on `t`'s device type in this thread, or None: the one
/// check the Python layer's hooks make per call (no device object is built).
#[pyfunction]
fn _autocast_dtype_for(py: Python<'_>, t: PyRef<'_, PyTensor>) -> Option<Py<dtype::PyDType>> {
    crate::autocast::get(crate::autocast::Kind::of(t.t.device())).map(|d| dtype::py_dtype(py, d))
}

/// A filled tensor made on its device: a GPU tensor is filled there by torch, never built in
/// host memory and copied over.
fn filled(
    py: Python<'_>,
    device: Option<Device>,
    shape: &[usize],
    value: Scalar,
    dtype: DType,
    requires_grad: bool,
) -> PyResult<Py<PyTensor>> {
    let t = Tensor::full_on(shape, value, dtype, device.unwrap_or(Device::Cpu))?;
    finish(py, t, requires_grad)
}

#[pyfunction]
#[pyo3(signature = (data, *, dtype=None, device=None, requires_grad=false, pin_memory=false))]
fn tensor(
    py: Python<'_>,
    data: &Bound<'_, PyAny>,
    dtype: Option<&Bound<'_, PyAny>>,
    device: Option<&Bound<'_, PyAny>>,
    requires_grad: bool,
    pin_memory: bool,
) -> PyResult<Py<PyTensor>> {
    let _ = pin_memory;
    let dev = device_arg(device)?;
    let t = tensor_from_data(data, dtype_arg(dtype)?)?;
    finish_on(py, dev, t, requires_grad)
}

#[pyfunction]
fn from_numpy(py: Python<'_>, ndarray: &Bound<'_, PyAny>) -> PyResult<Py<PyTensor>> {
    let is_scalar = match py.import("numpy") {
        Ok(np) => ndarray.is_instance(&np.getattr("generic")?)?,
        Err(_) => false,
    };
    if is_scalar || !ndarray.hasattr("__array_interface__")? {
        return Err(PyTypeError::new_err(format!(
            "expected np.ndarray (got {})",
            ndarray.get_type().name()?
        )));
    }
    new_py(py, convert::from_numpy(ndarray)?)
}

fn default_float(dtype: Option<&Bound<'_, PyAny>>) -> PyResult<DType> {
    Ok(dtype_arg(dtype)?.unwrap_or(DType::F32))
}

#[pyfunction]
#[pyo3(signature = (*size, dtype=None, device=None, requires_grad=false, out=None, layout=None, pin_memory=false))]
#[allow(clippy::too_many_arguments)]
fn zeros(
    py: Python<'_>,
    size: &Bound<'_, PyTuple>,
    dtype: Option<&Bound<'_, PyAny>>,
    device: Option<&Bound<'_, PyAny>>,
    requires_grad: bool,
    out: Option<&Bound<'_, PyAny>>,
    layout: Option<&Bound<'_, PyAny>>,
    pin_memory: bool,
) -> PyResult<Py<PyTensor>> {
    let _ = (out, layout, pin_memory);
    let dev = device_arg(device)?;
    filled(
        py,
        dev,
        &sizes(size)?,
        Scalar::Int(0),
        default_float(dtype)?,
        requires_grad,
    )
}

#[pyfunction]
#[pyo3(signature = (*size, dtype=None, device=None, requires_grad=false, out=None, layout=None, pin_memory=false))]
#[allow(clippy::too_many_arguments)]
fn ones(
    py: Python<'_>,
    size: &Bound<'_, PyTuple>,
    dtype: Option<&Bound<'_, PyAny>>,
    device: Option<&Bound<'_, PyAny>>,
    requires_grad: bool,
    out: Option<&Bound<'_, PyAny>>,
    layout: Option<&Bound<'_, PyAny>>,
    pin_memory: bool,
) -> PyResult<Py<PyTensor>> {
    let _ = (out, layout, pin_memory);
    let dev = device_arg(device)?;
    filled(
        py,
        dev,
        &sizes(size)?,
        Scalar::Int(1),
        default_float(dtype)?,
        requires_grad,
    )
}

/// `empty` returns zeros: uninitialised memory would make runs irreproducible for no gain here.
#[pyfunction]
#[pyo3(signature = (*size, dtype=None, device=None, requires_grad=false, out=None, layout=None, pin_memory=false, memory_format=None))]
#[allow(clippy::too_many_arguments)]
fn empty(
    py: Python<'_>,
    size: &Bound<'_, PyTuple>,
    dtype: Option<&Bound<'_, PyAny>>,
    device: Option<&Bound<'_, PyAny>>,
    requires_grad: bool,
    out: Option<&Bound<'_, PyAny>>,
    layout: Option<&Bound<'_, PyAny>>,
    pin_memory: bool,
    memory_format: Option<&Bound<'_, PyAny>>,
) -> PyResult<Py<PyTensor>> {
    let _ = (out, layout, pin_memory, memory_format);
    let dev = device_arg(device)?;
    filled(
        py,
        dev,
        &sizes(size)?,
        Scalar::Int(0),
        default_float(dtype)?,
        requires_grad,
    )
}

#[pyfunction]
#[pyo3(signature = (size, fill_value, *, dtype=None, device=None, requires_grad=false))]
fn full(
    py: Python<'_>,
    size: &Bound<'_, PyAny>,
    fill_value: &Bound<'_, PyAny>,
    dtype: Option<&Bound<'_, PyAny>>,
    device: Option<&Bound<'_, PyAny>>,
    requires_grad: bool,
) -> PyResult<Py<PyTensor>> {
    let dev = device_arg(device)?;
    let v = scalar_arg(fill_value, "full", "fill_value")?;
    let dt = match dtype_arg(dtype)? {
        Some(d) => d,
        None => v.dtype(),
    };
    let shape = sizes(&PyTuple::new(py, [size])?)?;
    filled(py, dev, &shape, v, dt, requires_grad)
}

fn scalar_arg(o: &Bound<'_, PyAny>, op: &str, name: &str) -> PyResult<Scalar> {
    if let Ok(t) = o.cast::<PyTensor>() {
        let t = &t.borrow().t;
        if t.elem_count() == 1 {
            return Ok(if t.dtype().is_float() {
                Scalar::Float(t.item_f64()?)
            } else if t.dtype() == DType::Bool {
                Scalar::Bool(t.item_i64()? != 0)
            } else {
                Scalar::Int(t.item_i64()?)
            });
        }
    }
    as_scalar(o).ok_or_else(|| {
        PyTypeError::new_err(format!(
            "{op}(): argument '{name}' must be Number, not {}",
            o.get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_default()
        ))
    })
}

fn like_dtype(input: &PyTensor, dtype: Option<&Bound<'_, PyAny>>) -> PyResult<DType> {
    Ok(dtype_arg(dtype)?.unwrap_or(input.t.dtype()))
}

#[pyfunction]
#[pyo3(signature = (input, *, dtype=None, device=None, requires_grad=false, memory_format=None))]
fn zeros_like(
    py: Python<'_>,
    input: PyRef<'_, PyTensor>,
    dtype: Option<&Bound<'_, PyAny>>,
    device: Option<&Bound<'_, PyAny>>,
    requires_grad: bool,
    memory_format: Option<&Bound<'_, PyAny>>,
) -> PyResult<Py<PyTensor>> {
    let _ = memory_format;
    let dev = like_device(device, &input)?;
    filled(
        py,
        dev,
        input.t.shape(),
        Scalar::Int(0),
        like_dtype(&input, dtype)?,
        requires_grad,
    )
}

#[pyfunction]
#[pyo3(signature = (input, *, dtype=None, device=None, requires_grad=false, memory_format=None))]
fn ones_like(
    py: Python<'_>,
    input: PyRef<'_, PyTensor>,
    dtype: Option<&Bound<'_, PyAny>>,
    device: Option<&Bound<'_, PyAny>>,
    requires_grad: bool,
    memory_format: Option<&Bound<'_, PyAny>>,
) -> PyResult<Py<PyTensor>> {
    let _ = memory_format;
    let dev = like_device(device, &input)?;
    filled(
        py,
        dev,
        input.t.shape(),
        Scalar::Int(1),
        like_dtype(&input, dtype)?,
        requires_grad,
    )
}

#[pyfunction]
#[pyo3(signature = (input, *, dtype=None, device=None, requires_grad=false, memory_format=None))]
fn empty_like(
    py: Python<'_>,
    input: PyRef<'_, PyTensor>,
    dtype: Option<&Bound<'_, PyAny>>,
    device: Option<&Bound<'_, PyAny>>,
    requires_grad: bool,
    memory_format: Option<&Bound<'_, PyAny>>,
) -> PyResult<Py<PyTensor>> {
    zeros_like(py, input, dtype, device, requires_grad, memory_format)
}

#[pyfunction]
#[pyo3(signature = (input, fill_value, *, dtype=None, device=None, requires_grad=false, memory_format=None))]
#[allow(clippy::too_many_arguments)]
fn full_like(
    py: Python<'_>,
    input: PyRef<'_, PyTensor>,
    fill_value: &Bound<'_, PyAny>,
    dtype: Option<&Bound<'_, PyAny>>,
    device: Option<&Bound<'_, PyAny>>,
    requires_grad: bool,
    memory_format: Option<&Bound<'_, PyAny>>,
) -> PyResult<Py<PyTensor>> {
    let _ = memory_format;
    let dev = like_device(device, &input)?;
    let v = scalar_arg(fill_value, "full_like", "fill_value")?;
    filled(
        py,
        dev,
        input.t.shape(),
        v,
        like_dtype(&input, dtype)?,
        requires_grad,
    )
}

#[pyfunction]
#[pyo3(signature = (start, end=None, step=None, *, dtype=None, device=None, requires_grad=false, out=None))]
#[allow(clippy::too_many_arguments)]
fn arange(
    py: Python<'_>,
    start: &Bound<'_, PyAny>,
    end: Option<&Bound<'_, PyAny>>,
    step: Option<&Bound<'_, PyAny>>,
    dtype: Option<&Bound<'_, PyAny>>,
    device: Option<&Bound<'_, PyAny>>,
    requires_grad: bool,
    out: Option<&Bound<'_, PyAny>>,
) -> PyResult<Py<PyTensor>> {
    let _ = out;
    let dev = device_arg(device)?;
    let a = scalar_arg(start, "arange", "start")?;
    let (s, e) = match end {
        Some(e) if !e.is_none() => (a, scalar_arg(e, "arange", "end")?),
        _ => (Scalar::Int(0), a),
    };
    let st = match step {
        Some(x) if !x.is_none() => scalar_arg(x, "arange", "step")?,
        _ => Scalar::Int(1),
    };
    let any_float = [s, e, st].iter().any(|v| matches!(v, Scalar::Float(_)));
    let dt = dtype_arg(dtype)?.unwrap_or(if any_float { DType::F32 } else { DType::I64 });
    finish_on(py, dev, Tensor::arange(s, e, st, dt)?, requires_grad)
}

#[pyfunction]
#[pyo3(signature = (start, end, steps, *, dtype=None, device=None, requires_grad=false))]
fn linspace(
    py: Python<'_>,
    start: &Bound<'_, PyAny>,
    end: &Bound<'_, PyAny>,
    steps: i64,
    dtype: Option<&Bound<'_, PyAny>>,
    device: Option<&Bound<'_, PyAny>>,
    requires_grad: bool,
) -> PyResult<Py<PyTensor>> {
    let dev = device_arg(device)?;
    let s = scalar_arg(start, "linspace", "start")?.to_f64();
    let e = scalar_arg(end, "linspace", "end")?.to_f64();
    finish_on(
        py,
        dev,
        Tensor::linspace(s, e, steps, default_float(dtype)?)?,
        requires_grad,
    )
}

#[pyfunction]
#[pyo3(signature = (n, m=None, *, dtype=None, device=None, requires_grad=false))]
fn eye(
    py: Python<'_>,
    n: i64,
    m: Option<i64>,
    dtype: Option<&Bound<'_, PyAny>>,
    device: Option<&Bound<'_, PyAny>>,
    requires_grad: bool,
) -> PyResult<Py<PyTensor>> {
    let dev = device_arg(device)?;
    let m = m.unwrap_or(n);
    if n < 0 || m < 0 {
        return Err(PyRuntimeError::new_err(format!(
            "n and m must be non-negative, got n={n}, m={m}"
        )));
    }
    finish_on(
        py,
        dev,
        Tensor::eye(n as usize, m as usize, default_float(dtype)?)?,
        requires_grad,
    )
}

fn tensor_list(tensors: &Bound<'_, PyAny>, op: &str) -> PyResult<Vec<Tensor>> {
    let mut out = Vec::new();
    for item in tensors.try_iter().map_err(|_| {
        PyTypeError::new_err(format!(
            "{op}(): argument 'tensors' must be tuple of Tensors"
        ))
    })? {
        let item = item?;
        let t =
            item.cast::<PyTensor>().map_err(|_| {
                PyTypeError::new_err(format!(
                "{op}(): argument 'tensors' must be tuple of Tensors, but found element of type {}",
                item.get_type().name().map(|n| n.to_string()).unwrap_or_default()
            ))
            })?;
        out.push(t.borrow().t.clone());
    }
    Ok(out)
}

#[pyfunction]
#[pyo3(signature = (tensors, dim=0, *, out=None))]
fn cat(
    py: Python<'_>,
    tensors: &Bound<'_, PyAny>,
    dim: i64,
    out: Option<&Bound<'_, PyAny>>,
) -> PyResult<Py<PyTensor>> {
    let _ = out;
    let ts = tensor_list(tensors, "cat")?;
    new_py(py, py.detach(|| Tensor::cat(&ts, dim))?)
}

#[pyfunction]
#[pyo3(signature = (tensors, dim=0, *, out=None))]
fn stack(
    py: Python<'_>,
    tensors: &Bound<'_, PyAny>,
    dim: i64,
    out: Option<&Bound<'_, PyAny>>,
) -> PyResult<Py<PyTensor>> {
    let _ = out;
    let ts = tensor_list(tensors, "stack")?;
    new_py(py, py.detach(|| Tensor::stack(&ts, dim))?)
}

/// torch.where(condition, input, other); either value may be a Python number.
#[pyfunction]
#[pyo3(name = "where", signature = (condition, input=None, other=None))]
fn where_(
    py: Python<'_>,
    condition: PyRef<'_, PyTensor>,
    input: Option<&Bound<'_, PyAny>>,
    other: Option<&Bound<'_, PyAny>>,
) -> PyResult<Py<PyAny>> {
    let (Some(a), Some(b)) = (input, other) else {
        return condition.nonzero_tuple(py);
    };
    let wrap = |o: &Bound<'_, PyAny>| -> PyResult<(Tensor, bool)> {
        if let Ok(t) = o.cast::<PyTensor>() {
            return Ok((t.borrow().t.clone(), false));
        }
        let s = as_scalar(o)
            .ok_or_else(|| PyTypeError::new_err("where(): expected Tensor or Number"))?;
        Ok((crate::tensor::math::wrap_scalar(s), true))
    };
    let (ta, wa) = wrap(a)?;
    let (tb, wb) = wrap(b)?;
    let r = Tensor::where_(
        &condition.t,
        Arg {
            tensor: &ta,
            wrapped: wa,
        },
        Arg {
            tensor: &tb,
            wrapped: wb,
        },
    )?;
    Ok(new_py(py, r)?.into_any())
}

impl PyTensor {
    fn nonzero_tuple(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let nz = self.t.nonzero()?;
        let cols = (0..self.t.dims())
            .map(|j| new_py(py, nz.select(1, j as i64)?.contiguous()))
            .collect::<PyResult<Vec<_>>>()?;
        Ok(PyTuple::new(py, cols)?.into_any().unbind())
    }
}

/// One-hot rows of an int64 tensor (`nn.functional.one_hot`).
#[pyfunction]
#[pyo3(signature = (tensor, num_classes=-1))]
fn one_hot(
    py: Python<'_>,
    tensor: PyRef<'_, PyTensor>,
    num_classes: i64,
) -> PyResult<Py<PyTensor>> {
    new_py(py, tensor.t.one_hot(num_classes)?)
}

/// Out-of-place index_put (differentiable): `tensor` with `values` written (or added) at
/// `indices`.
#[pyfunction]
fn _index_put(
    py: Python<'_>,
    tensor: PyRef<'_, PyTensor>,
    indices: &Bound<'_, PyAny>,
    values: PyRef<'_, PyTensor>,
    accumulate: bool,
) -> PyResult<Py<PyTensor>> {
    let idx = convert::parse_index(indices)?;
    new_py(py, tensor.t.index_put(&idx, &values.t, accumulate)?)
}

/// torch.promote_types / result_type helpers used by the Python layer.
#[pyfunction]
fn promote_types(
    py: Python<'_>,
    a: &Bound<'_, PyAny>,
    b: &Bound<'_, PyAny>,
) -> PyResult<Py<dtype::PyDType>> {
    let (a, b) = (
        dtype_arg(Some(a))?.unwrap_or(DType::F32),
        dtype_arg(Some(b))?.unwrap_or(DType::F32),
    );
    Ok(dtype::py_dtype(py, a.promote(b)))
}

/// Threads the CPU kernels use (rayon's pool; `RAYON_NUM_THREADS` sets it at start-up).
#[pyfunction]
fn get_num_threads() -> usize {
    rayon::current_num_threads()
}

/// Sets the kernels' thread count. The pool starts with the first parallel kernel, so this
/// works before any computation (as at the top of a script); later it can only confirm the
/// running count.
#[pyfunction]
fn set_num_threads(n: i64) -> PyResult<()> {
    if n <= 0 {
        return Err(PyRuntimeError::new_err(format!(
            "set_num_threads expects a positive integer, got {n}"
        )));
    }
    let n = n as usize;
    if rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build_global()
        .is_ok()
        || rayon::current_num_threads() == n
    {
        return Ok(());
    }
    Err(PyRuntimeError::new_err(format!(
        "set_num_threads({n}): the kernels' thread pool already runs {} threads; call it before the first tensor operation or set RAYON_NUM_THREADS={n} in the environment",
        rayon::current_num_threads()
    )))
}

/// Measured fp32 GFLOP/s of an FMA-throughput loop (the benchmarks' peak yardstick).
#[pyfunction]
fn _fma_peak_gflops(py: Python<'_>, threads: usize, millis: u64) -> f64 {
    py.detach(|| crate::kernels::peak::fma_peak_gflops(threads, millis))
}

/// `(storages, bytes)` alive in the process: what the leak tests watch.
#[pyfunction]
fn _live_storages() -> (usize, usize) {
    crate::storage::live_stats()
}

/// Queues `callback()` to run when the backward pass now running on this thread ends
/// (torch's `Variable._execution_engine.queue_callback`).
#[pyfunction]
fn _queue_backward_callback(callback: Py<PyAny>) -> PyResult<()> {
    let cb: crate::backprop::FinalCallback = Box::new(move || {
        Python::attach(|py| callback.call0(py).map(|_| ()).map_err(autograd::py_err))
    });
    Ok(crate::backprop::queue_callback(cb)?)
}

#[pymodule]
fn _C(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    crate::alloc::keep_freed_memory();
    backend::register();
    m.add_class::<PyTensor>()?;
    m.add_class::<dtype::PyDType>()?;
    for d in DType::ALL {
        m.add(d.name(), dtype::py_dtype(py, d))?;
    }
    m.add_function(wrap_pyfunction!(tensor, m)?)?;
    m.add_function(wrap_pyfunction!(get_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(set_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(_fma_peak_gflops, m)?)?;
    m.add_function(wrap_pyfunction!(_live_storages, m)?)?;
    m.add_function(wrap_pyfunction!(_queue_backward_callback, m)?)?;
    m.add_function(wrap_pyfunction!(set_default_device, m)?)?;
    m.add_function(wrap_pyfunction!(_default_device, m)?)?;
    m.add_function(wrap_pyfunction!(_wrap_torch, m)?)?;
    m.add_function(wrap_pyfunction!(from_numpy, m)?)?;
    m.add_function(wrap_pyfunction!(zeros, m)?)?;
    m.add_function(wrap_pyfunction!(ones, m)?)?;
    m.add_function(wrap_pyfunction!(empty, m)?)?;
    m.add_function(wrap_pyfunction!(_autocast_set, m)?)?;
    m.add_function(wrap_pyfunction!(_autocast_get, m)?)?;
    m.add_function(wrap_pyfunction!(_autocast_dtype_for, m)?)?;
    m.add_function(wrap_pyfunction!(full, m)?)?;
    m.add_function(wrap_pyfunction!(zeros_like, m)?)?;
    m.add_function(wrap_pyfunction!(ones_like, m)?)?;
    m.add_function(wrap_pyfunction!(empty_like, m)?)?;
    m.add_function(wrap_pyfunction!(full_like, m)?)?;
    m.add_function(wrap_pyfunction!(arange, m)?)?;
    m.add_function(wrap_pyfunction!(linspace, m)?)?;
    m.add_function(wrap_pyfunction!(eye, m)?)?;
    m.add_function(wrap_pyfunction!(cat, m)?)?;
    m.add_function(wrap_pyfunction!(stack, m)?)?;
    m.add_function(wrap_pyfunction!(where_, m)?)?;
    m.add_function(wrap_pyfunction!(promote_types, m)?)?;
    m.add_function(wrap_pyfunction!(one_hot, m)?)?;
    m.add_function(wrap_pyfunction!(_index_put, m)?)?;
    random::register(m)?;
    autograd::register(m)?;
    io::register(m)?;
    nn::register(m)?;
    Ok(())
}
