//! The torch backend's bridge: runs ops on torch-backed tensors by calling the functions of
//! `ferrotorch/_torch_backend.py` (one per core primitive), and turns torch tensors into
//! storages and back. Registered with the core (`device::set_backend`) at import.

use super::autograd::py_err;
use super::pytensor::new_py;
use crate::device::{Backend, Device, Value};
use crate::dtype::DType;
use crate::error::Result;
use crate::layout::Layout;
use crate::storage::Storage;
use crate::tensor::{Scalar, Tensor};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyList, PyTuple};
use pyo3::IntoPyObjectExt;

/// What a torch-backed storage owns: a contiguous torch tensor whose elements, in order, are
/// the storage's, and the storage offset (in torch's storage) of its first element.
pub struct TorchBuffer {
    pub tensor: Py<PyAny>,
    pub base: usize,
    /// The tensor's shape: a tensor seeing the whole buffer in this shape is the tensor itself.
    pub shape: crate::shape::Dims,
}

static MODULE: PyOnceLock<Py<PyModule>> = PyOnceLock::new();

fn module(py: Python<'_>) -> PyResult<&Bound<'_, PyModule>> {
    Ok(MODULE
        .get_or_try_init(py, || {
            py.import("ferrotorch._torch_backend").map(|m| m.unbind())
        })?
        .bind(py))
}

/// The torch view of a torch-backed tensor (a strided view of its storage's buffer).
pub fn torch_view<'py>(py: Python<'py>, t: &Tensor) -> PyResult<Bound<'py, PyAny>> {
    let buf = t
        .storage()
        .owner()
        .and_then(|o| o.downcast_ref::<TorchBuffer>())
        .expect("a torch-backed storage owns a TorchBuffer");
    let l = t.layout();
    if l.offset() == 0 && l.shape() == &buf.shape[..] && l.is_contiguous() {
        return Ok(buf.tensor.bind(py).clone()); // as the op produced it: no view to build
    }
    buf.tensor.bind(py).call_method1(
        "as_strided",
        (
            l.shape().to_vec(),
            l.stride().to_vec(),
            buf.base + l.offset(),
        ),
    )
}

/// A torch tensor's values as a tensor on `device` (sharing the torch tensor's memory).
pub fn from_torch_tensor(
    py: Python<'_>,
    obj: &Bound<'_, PyAny>,
    device: Device,
) -> PyResult<Tensor> {
    let m = module(py)?;
    // (contiguous tensor, shape, dtype name, host address or 0, device address, device index
    // or None, element count, storage offset)
    #[allow(clippy::type_complexity)]
    let (flat, shape, dtype, host, addr, index, len, base): (
        Bound<'_, PyAny>,
        Vec<usize>,
        String,
        usize,
        usize,
        Option<usize>,
        usize,
        usize,
    ) = m.call_method1("_unpack", (obj,))?.extract()?;
    // "cuda" means the current GPU: the tensor reports the one it is on ("cuda:0"), as torch's.
    let device = match device {
        Device::Torch { kind, index: None } if index.is_some() => Device::Torch { kind, index },
        d => d,
    };
    let dtype = DType::from_name(&dtype).ok_or_else(|| {
        pyo3::exceptions::PyTypeError::new_err(format!(
            "the torch backend produced a tensor of dtype {dtype}, which ferrotorch does not have"
        ))
    })?;
    let owner = TorchBuffer {
        tensor: flat.unbind(),
        base,
        shape: shape.as_slice().into(),
    };
    let host_ptr = if len == 0 && host == 0 {
        std::ptr::NonNull::<u64>::dangling().as_ptr() as *mut u8
    } else {
        host as *mut u8
    };
    let storage = if device.is_native() {
        // SAFETY: `host` is the address of the `len` elements of the CPU tensor that `owner`
        // keeps alive.
        unsafe { Storage::from_external(host_ptr, len, dtype, Box::new(owner)) }
    } else {
        // SAFETY: as above when the tensor is in host memory; null (never read) otherwise.
        unsafe { Storage::from_device(host_ptr, len, dtype, Box::new(owner), device, addr) }
    };
    Ok(Tensor::from_storage(storage, Layout::contiguous(&shape)))
}

fn scalar_obj(py: Python<'_>, s: Scalar) -> PyResult<Py<PyAny>> {
    match s {
        Scalar::Bool(b) => b.into_py_any(py),
        Scalar::Int(i) => i.into_py_any(py),
        Scalar::Float(f) => f.into_py_any(py),
    }
}

fn tensor_obj(py: Python<'_>, t: &Tensor) -> PyResult<Py<PyAny>> {
    if t.device().is_native() {
        // The Python side carries native tensors to torch (numbers for 0-d ones).
        return new_py(py, t.clone())?.into_py_any(py);
    }
    Ok(torch_view(py, t)?.unbind())
}

fn value_obj(py: Python<'_>, v: &Value) -> PyResult<Py<PyAny>> {
    match v {
        Value::Tensor(t) => tensor_obj(py, t),
        Value::OptTensor(None) => Ok(py.None()),
        Value::OptTensor(Some(t)) => tensor_obj(py, t),
        Value::Tensors(ts) => {
            let items = ts
                .iter()
                .map(|t| tensor_obj(py, t))
                .collect::<PyResult<Vec<_>>>()?;
            PyList::new(py, items)?.into_py_any(py)
        }
        Value::Int(i) => i.into_py_any(py),
        Value::Ints(v) => v.clone().into_py_any(py),
        Value::Float(f) => f.into_py_any(py),
        Value::OptFloat(f) => f.into_py_any(py),
        Value::Floats(v) => v.clone().into_py_any(py),
        Value::Bools(v) => v.clone().into_py_any(py),
        Value::Bool(b) => b.into_py_any(py),
        Value::Str(s) => s.into_py_any(py),
        Value::DType(d) => d.name().into_py_any(py),
        Value::Device(d) => d.torch_name().into_py_any(py),
        Value::Scalar(s) => scalar_obj(py, *s),
    }
}

struct TorchBackend;

impl TorchBackend {
    fn results(py: Python<'_>, r: &Bound<'_, PyAny>, device: Device) -> PyResult<Vec<Tensor>> {
        if let Ok(tuple) = r.cast::<PyTuple>() {
            return tuple
                .iter()
                .map(|o| from_torch_tensor(py, &o, device))
                .collect();
        }
        if r.is_none() {
            return Ok(vec![]);
        }
        Ok(vec![from_torch_tensor(py, r, device)?])
    }
}

impl Backend for TorchBackend {
    fn call(&self, op: &'static str, device: Device, args: &[Value]) -> Result<Vec<Tensor>> {
        Python::attach(|py| -> PyResult<Vec<Tensor>> {
            let objs = args
                .iter()
                .map(|v| value_obj(py, v))
                .collect::<PyResult<Vec<_>>>()?;
            let r = module(py)?.getattr(op)?.call1(PyTuple::new(py, objs)?)?;
            Self::results(py, &r, device)
        })
        .map_err(py_err)
    }

    fn to_device(&self, t: &Tensor, device: Device) -> Result<Tensor> {
        Python::attach(|py| -> PyResult<Tensor> {
            let src = tensor_obj(py, t)?;
            let r = module(py)?.call_method1("to_device", (src, device.torch_name()))?;
            from_torch_tensor(py, &r, device)
        })
        .map_err(py_err)
    }
}

/// Registers the torch backend with the core.
pub fn register() {
    crate::device::set_backend(Box::new(TorchBackend));
}
