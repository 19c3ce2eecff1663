//! The Python `Tensor` class: the Rust tensor itself, with thin methods that parse arguments and
//! call the core. Conveniences that are not hot live in `python/ferrotorch/_tensor.py`.

use super::convert::{as_scalar, parse_index, shape_args, to_pylist, typestr};
use super::dtype::{py_dtype, PyDType};
use crate::device::{Device, TorchKind};
use crate::dtype::DType;
use crate::op::{Node, Op};
use crate::tensor::math::{wrap_scalar, Arg, BinaryOp, UnaryOp};
use crate::tensor::reduce::ReduceOp;
use crate::tensor::{Scalar, Tensor};
use pyo3::exceptions::{PyRuntimeError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};
use pyo3::IntoPyObjectExt;

#[pyclass(name = "Tensor", module = "ferrotorch", subclass, dict, weakref)]
pub struct PyTensor {
    pub t: Tensor,
    pub requires_grad: bool,
}

impl PyTensor {
    pub fn wrap(t: Tensor) -> PyTensor {
        PyTensor {
            t,
            requires_grad: false,
        }
    }
}

/// Elements above which an op releases the GIL while it runs.
const DETACH_THRESHOLD: usize = 1 << 14;

/// Runs `f` without the GIL when the tensor is big enough for that to pay off.
fn heavy<T: Send>(py: Python<'_>, n: usize, f: impl FnOnce() -> T + Send) -> T {
    if n >= DETACH_THRESHOLD {
        py.detach(f)
    } else {
        f()
    }
}

pub fn new_py(py: Python<'_>, t: Tensor) -> PyResult<Py<PyTensor>> {
    Py::new(py, PyTensor::wrap(t))
}

/// The other operand of a binary op: a tensor or a Python number (wrapped), else None.
enum Other {
    T(Tensor),
    S(Tensor),
}

impl Other {
    fn parse(obj: &Bound<'_, PyAny>) -> Option<Other> {
        if let Ok(t) = obj.cast::<PyTensor>() {
            return Some(Other::T(t.borrow().t.clone()));
        }
        as_scalar(obj).map(|s| Other::S(wrap_scalar(s)))
    }
    fn arg(&self) -> Arg<'_> {
        match self {
            Other::T(t) => Arg::tensor(t),
            Other::S(t) => Arg {
                tensor: t,
                wrapped: true,
            },
        }
    }
}

fn parse_other(obj: &Bound<'_, PyAny>, op: &str) -> PyResult<Other> {
    Other::parse(obj).ok_or_else(|| {
        PyTypeError::new_err(format!(
            "{op}(): argument 'other' must be Tensor or Number, not {}",
            obj.get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_default()
        ))
    })
}

pub fn dtype_arg(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Option<DType>> {
    match obj {
        None => Ok(None),
        Some(o) if o.is_none() => Ok(None),
        Some(o) => {
            if let Ok(d) = o.cast::<PyDType>() {
                return Ok(Some(d.get().dtype));
            }
            // Python's own types as torch accepts them.
            let py = o.py();
            if o.is(py.get_type::<pyo3::types::PyFloat>()) {
                return Ok(Some(DType::F64));
            }
            if o.is(py.get_type::<pyo3::types::PyInt>()) {
                return Ok(Some(DType::I64));
            }
            if o.is(py.get_type::<pyo3::types::PyBool>()) {
                return Ok(Some(DType::Bool));
            }
            Err(PyTypeError::new_err(format!(
                "dtype must be a ferrotorch dtype (e.g. ferrotorch.float32), not {}",
                o.repr()?
            )))
        }
    }
}

/// dims given as None, an int, or a sequence of ints.
fn dims_arg(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Vec<i64>> {
    match obj {
        None => Ok(vec![]),
        Some(o) if o.is_none() => Ok(vec![]),
        Some(o) => {
            if let Ok(d) = o.extract::<i64>() {
                Ok(vec![d])
            } else {
                o.extract::<Vec<i64>>()
                    .map_err(|_| PyTypeError::new_err("dim must be an int or a tuple of ints"))
            }
        }
    }
}

fn return_type(py: Python<'_>, name: &str, a: Tensor, b: Tensor) -> PyResult<Py<PyAny>> {
    let m = py.import("ferrotorch.return_types")?;
    let a = new_py(py, a)?;
    let b = new_py(py, b)?;
    Ok(m.getattr(name)?.call1((a, b))?.unbind())
}

fn tensors_to_list(py: Python<'_>, ts: Vec<Tensor>) -> PyResult<Py<PyAny>> {
    let items = ts
        .into_iter()
        .map(|t| new_py(py, t))
        .collect::<PyResult<Vec<_>>>()?;
    Ok(PyTuple::new(py, items)?.into_any().unbind())
}

impl PyTensor {
    fn bin(
        &self,
        py: Python<'_>,
        other: &Bound<'_, PyAny>,
        op: BinaryOp,
        reflected: bool,
    ) -> PyResult<Py<PyAny>> {
        let Some(o) = Other::parse(other) else {
            return Ok(py.NotImplemented());
        };
        let me = Arg::tensor(&self.t);
        let n = self.t.elem_count();
        let r = heavy(py, n, || {
            if reflected {
                Tensor::binary(op, o.arg(), me)
            } else {
                Tensor::binary(op, me, o.arg())
            }
        })?;
        new_py(py, r)?.into_py_any(py)
    }

    fn bin_strict(
        &self,
        py: Python<'_>,
        other: &Bound<'_, PyAny>,
        op: BinaryOp,
    ) -> PyResult<Py<PyTensor>> {
        let o = parse_other(other, op.name())?;
        let me = Arg::tensor(&self.t);
        let r = heavy(py, self.t.elem_count(), || Tensor::binary(op, me, o.arg()))?;
        new_py(py, r)
    }

    fn un(&self, py: Python<'_>, op: UnaryOp) -> PyResult<Py<PyTensor>> {
        let r = heavy(py, self.t.elem_count(), || self.t.unary(op))?;
        new_py(py, r)
    }
}

#[pymethods]
impl PyTensor {
    /// `Tensor(data)`: a tensor sharing `data`'s storage when it is a tensor (what nn.Parameter
    /// needs), else float32 data like torch.Tensor([...]).
    #[new]
    #[pyo3(signature = (data=None, requires_grad=false))]
    fn py_new(data: Option<&Bound<'_, PyAny>>, requires_grad: bool) -> PyResult<Self> {
        let t = match data {
            None => Tensor::zeros(&[0], DType::F32)?,
            Some(d) => {
                if let Ok(t) = d.cast::<PyTensor>() {
                    t.borrow().t.clone()
                } else {
                    super::convert::tensor_from_data(d, None)?.to_dtype(DType::F32)
                }
            }
        };
        let p = PyTensor::wrap(t.detach());
        p.t.set_requires_grad(requires_grad)?;
        Ok(p)
    }

    // *** properties ***

    #[getter]
    fn shape(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        make_size(py, self.t.shape())
    }
    #[pyo3(signature = (dim=None))]
    fn size(&self, py: Python<'_>, dim: Option<i64>) -> PyResult<Py<PyAny>> {
        match dim {
            None => make_size(py, self.t.shape()),
            Some(d) => {
                let d = self.t.existing_dim(d)?;
                self.t.shape()[d].into_py_any(py)
            }
        }
    }
    #[getter]
    fn dtype(&self, py: Python<'_>) -> Py<PyDType> {
        py_dtype(py, self.t.dtype())
    }
    #[getter]
    fn device(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let m = py.import("ferrotorch._device")?;
        match self.t.device() {
            Device::Cpu => Ok(m.getattr("CPU")?.unbind()),
            d => Ok(m.getattr("device")?.call1((d.name(),))?.unbind()),
        }
    }
    #[getter]
    fn is_cuda(&self) -> bool {
        matches!(
            self.t.device(),
            Device::Torch {
                kind: TorchKind::Cuda,
                ..
            }
        )
    }
    #[getter]
    fn ndim(&self) -> usize {
        self.t.dims()
    }
    fn dim(&self) -> usize {
        self.t.dims()
    }
    fn ndimension(&self) -> usize {
        self.t.dims()
    }
    fn numel(&self) -> usize {
        self.t.elem_count()
    }
    fn nelement(&self) -> usize {
        self.t.elem_count()
    }
    fn element_size(&self) -> usize {
        self.t.dtype().size_in_bytes()
    }
    #[getter]
    fn itemsize(&self) -> usize {
        self.t.dtype().size_in_bytes()
    }
    #[getter]
    fn nbytes(&self) -> usize {
        self.t.dtype().size_in_bytes() * self.t.elem_count()
    }
    #[pyo3(signature = (dim=None))]
    fn stride(&self, py: Python<'_>, dim: Option<i64>) -> PyResult<Py<PyAny>> {
        match dim {
            None => PyTuple::new(py, self.t.stride())?.into_py_any(py),
            Some(d) => {
                let d = self.t.dim(d)?;
                self.t.stride()[d].into_py_any(py)
            }
        }
    }
    fn storage_offset(&self) -> usize {
        self.t.layout().offset()
    }
    fn is_contiguous(&self) -> bool {
        self.t.is_contiguous()
    }
    fn is_floating_point(&self) -> bool {
        self.t.dtype().is_float()
    }
    /// Address of the first element (like torch's data_ptr).
    fn data_ptr(&self) -> usize {
        self.t.storage().data_ptr() + self.t.layout().offset() * self.t.dtype().size_in_bytes()
    }
    /// Address of the storage's start: equal for tensors that share memory.
    fn _storage_ptr(&self) -> usize {
        self.t.storage().data_ptr()
    }
    /// The storage's version counter (bumped by every in-place write).
    #[getter]
    fn _version(&self) -> u64 {
        self.t.storage().version()
    }
    #[getter]
    fn get_requires_grad(&self) -> bool {
        self.t.requires_grad()
    }
    #[setter(requires_grad)]
    fn set_requires_grad(&self, value: bool) -> PyResult<()> {
        Ok(self.t.set_requires_grad(value)?)
    }
    #[getter]
    fn is_leaf(&self) -> bool {
        self.t.is_leaf()
    }
    #[getter]
    fn grad_fn(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        match self.t.node() {
            None => Ok(py.None()),
            Some(n) => Py::new(py, super::autograd::PyNode { node: n.clone() })?.into_py_any(py),
        }
    }
    #[getter]
    fn get_grad(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        match self.t.grad() {
            None => Ok(py.None()),
            Some(g) => new_py(py, g)?.into_py_any(py),
        }
    }
    #[setter(grad)]
    fn set_grad(&self, value: Option<PyRef<'_, PyTensor>>) -> PyResult<()> {
        if let Some(v) = &value {
            if v.t.shape() != self.t.shape() {
                return Err(PyRuntimeError::new_err(format!(
                    "assigned grad has data of a different size: tensor shape {:?}, grad shape {:?}",
                    self.t.shape(),
                    v.t.shape()
                )));
            }
            if v.t.dtype() != self.t.dtype() {
                return Err(PyRuntimeError::new_err(format!(
                    "attempting to assign a gradient with dtype {} to a tensor with dtype {}: a gradient must have its tensor's dtype",
                    v.t.dtype().name(),
                    self.t.dtype().name()
                )));
            }
        }
        self.t.set_grad(value.map(|v| v.t.clone()));
        Ok(())
    }
    fn retain_grad(&self) -> PyResult<()> {
        if !self.t.requires_grad() {
            return Err(PyRuntimeError::new_err(
                "can't retain_grad on Tensor that has requires_grad=False",
            ));
        }
        self.t.retain_grad();
        Ok(())
    }
    fn _remove_hook(&self, id: usize) {
        self.t.remove_hook(id);
    }
    fn _remove_post_accumulate_grad_hook(&self, id: usize) {
        self.t.remove_post_accumulate_hook(id);
    }
    /// Registers `hook(tensor)`, called with this leaf once backward has accumulated its
    /// `.grad`; returns its id for `_remove_post_accumulate_grad_hook`.
    fn _register_post_accumulate_grad_hook(&self, hook: Py<PyAny>) -> PyResult<usize> {
        if !self.t.requires_grad() {
            return Err(PyRuntimeError::new_err(
                "cannot register a hook on a tensor that doesn't require gradient",
            ));
        }
        if !self.t.is_leaf() {
            return Err(PyRuntimeError::new_err(format!(
                "post accumulate grad hooks cannot be registered on non-leaf tensors (this tensor of shape {:?} was made by {})",
                self.t.shape(),
                self.t.node().map_or("an op", |n| n.name)
            )));
        }
        Ok(self
            .t
            .register_post_accumulate_hook(super::autograd::py_post_accumulate_hook(hook)))
    }
    /// The torch tensor holding this tensor's elements on a torch-backend device (a view of
    /// the same memory); None on the native CPU.
    fn _torch_view(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        if self.t.device() == Device::Cpu {
            return Ok(py.None());
        }
        Ok(super::backend::torch_view(py, &self.t)?.unbind())
    }
    /// Marks the storage as written from outside (a collective writing through shared
    /// memory), so autograd's in-place check sees the change.
    fn _bump_version(&self) {
        self.t.storage().bump_version();
    }
    #[getter]
    fn retains_grad(&self) -> bool {
        self.t.retains_grad()
    }
    /// Registers `hook(grad) -> Tensor | None`, called with this tensor's gradient in backward;
    /// returns its id for `_remove_hook` (Python wraps it in a handle with `.remove()`).
    fn _register_hook(&self, hook: Py<PyAny>) -> PyResult<usize> {
        if !self.t.requires_grad() {
            return Err(PyRuntimeError::new_err(
                "cannot register a hook on a tensor that doesn't require gradient",
            ));
        }
        Ok(self.t.register_hook(super::autograd::py_hook(hook)))
    }
    #[pyo3(signature = (gradient=None, retain_graph=None, create_graph=false, inputs=None))]
    fn backward(
        &self,
        py: Python<'_>,
        gradient: Option<PyRef<'_, PyTensor>>,
        retain_graph: Option<bool>,
        create_graph: bool,
        inputs: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let only: Option<Vec<Tensor>> = match inputs {
            None => None,
            Some(i) if i.is_none() => None,
            Some(i) => Some(super::autograd::tensor_list(i, "inputs")?),
        };
        let g = super::autograd::root_grad(&self.t, gradient.map(|g| g.t.clone()))?;
        let root = self.t.clone();
        let retain = retain_graph.unwrap_or(create_graph);
        py.detach(move || {
            let sink = match &only {
                None => crate::backprop::Sink::Leaves,
                Some(ts) => crate::backprop::Sink::LeavesIn(ts),
            };
            crate::backprop::backward(&[(root, g)], sink, retain, create_graph)
        })?;
        Ok(())
    }
    #[getter]
    #[allow(non_snake_case)]
    fn T(&self) -> PyResult<Self> {
        if self.t.dims() > 2 {
            // torch deprecates .T on >2-D; it still reverses all dims.
        }
        Ok(PyTensor::wrap(self.t.reverse_dims()))
    }
    #[getter]
    #[allow(non_snake_case)]
    fn mT(&self) -> PyResult<Self> {
        if self.t.dims() < 2 {
            return Err(PyRuntimeError::new_err(format!(
                "tensor.mT is only supported on matrices or batches of matrices. Got {}-D tensor.",
                self.t.dims()
            )));
        }
        Ok(PyTensor::wrap(self.t.transpose(-2, -1)?))
    }
    #[getter]
    fn get_data(&self) -> Self {
        PyTensor::wrap(self.t.data_alias())
    }
    /// `t.data = other`: t now holds other's values (its autograd flags stay).
    #[setter(data)]
    fn set_data(&mut self, value: PyRef<'_, PyTensor>) -> PyResult<()> {
        let requires_grad = self.t.requires_grad() && self.t.is_leaf();
        self.t = value.t.detach();
        self.t.set_requires_grad(requires_grad)?;
        Ok(())
    }

    // *** conversion ***

    #[pyo3(signature = (*args, **kwargs))]
    fn to(
        slf: PyRef<'_, Self>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        let mut dtype = None;
        let mut device = None;
        let mut copy = false;
        let mut consider = |o: &Bound<'_, PyAny>| -> PyResult<()> {
            if let Ok(t) = o.cast::<PyTensor>() {
                dtype = Some(t.borrow().t.dtype());
                device = Some(t.borrow().t.device());
            } else if o.cast::<PyDType>().is_ok() {
                dtype = dtype_arg(Some(o))?;
            } else {
                device = Some(parse_device(o)?);
            }
            Ok(())
        };
        for a in args.iter() {
            if a.is_none() {
                continue;
            }
            consider(&a)?;
        }
        if let Some(kw) = kwargs {
            for (k, v) in kw.iter() {
                let k: String = k.extract()?;
                match k.as_str() {
                    "dtype" => dtype = dtype_arg(Some(&v))?,
                    "device" => {
                        if !v.is_none() {
                            device = Some(parse_device(&v)?)
                        }
                    }
                    "copy" => copy = v.extract()?,
                    "non_blocking" | "memory_format" => {}
                    other => {
                        return Err(PyTypeError::new_err(format!(
                            "to() got an unexpected keyword argument '{other}'"
                        )))
                    }
                }
            }
        }
        let target = dtype.unwrap_or(slf.t.dtype());
        let place = device.unwrap_or(slf.t.device());
        if target == slf.t.dtype() && place == slf.t.device() && !copy {
            return slf.into_py_any(py);
        }
        crate::storage::check_alloc("to", slf.t.shape(), target)?;
        let moved = slf.t.to_device(place)?;
        let t = if target != moved.dtype() {
            moved.to_dtype(target)
        } else if place == slf.t.device() {
            moved.deep_copy()
        } else {
            moved
        };
        new_py(py, t)?.into_py_any(py)
    }
    fn float(slf: PyRef<'_, Self>) -> PyResult<Py<PyAny>> {
        cast_method(slf, DType::F32)
    }
    fn double(slf: PyRef<'_, Self>) -> PyResult<Py<PyAny>> {
        cast_method(slf, DType::F64)
    }
    fn half(slf: PyRef<'_, Self>) -> PyResult<Py<PyAny>> {
        cast_method(slf, DType::F16)
    }
    fn bfloat16(slf: PyRef<'_, Self>) -> PyResult<Py<PyAny>> {
        cast_method(slf, DType::BF16)
    }
    fn long(slf: PyRef<'_, Self>) -> PyResult<Py<PyAny>> {
        cast_method(slf, DType::I64)
    }
    fn int(slf: PyRef<'_, Self>) -> PyResult<Py<PyAny>> {
        cast_method(slf, DType::I32)
    }
    fn byte(slf: PyRef<'_, Self>) -> PyResult<Py<PyAny>> {
        cast_method(slf, DType::U8)
    }
    fn bool(slf: PyRef<'_, Self>) -> PyResult<Py<PyAny>> {
        cast_method(slf, DType::Bool)
    }
    /// This tensor on the native CPU backend (itself when it is there).
    fn cpu(slf: PyRef<'_, Self>) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        if slf.t.device() == Device::Cpu {
            return slf.into_py_any(py);
        }
        new_py(py, slf.t.to_device(Device::Cpu)?)?.into_py_any(py)
    }
    fn item(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let d = self.t.dtype();
        if d.is_float() {
            self.t.item_f64()?.into_py_any(py)
        } else if d == DType::Bool {
            (self.t.item_i64()? != 0).into_py_any(py)
        } else {
            self.t.item_i64()?.into_py_any(py)
        }
    }
    fn tolist(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        to_pylist(py, &self.t)
    }
    /// The numpy array interface: lets `numpy.asarray(t)` view our memory without a copy.
    #[getter]
    fn __array_interface__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        host_only(&self.t)?;
        let d = PyDict::new(py);
        let item = self.t.dtype().size_in_bytes();
        d.set_item("shape", PyTuple::new(py, self.t.shape())?)?;
        d.set_item("typestr", typestr(self.t.dtype())?)?;
        d.set_item("data", (self.data_ptr(), false))?;
        let strides: Vec<usize> = self.t.stride().iter().map(|s| s * item).collect();
        d.set_item("strides", PyTuple::new(py, strides)?)?;
        d.set_item("version", 3)?;
        Ok(d)
    }
    fn numpy(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        if slf.borrow().t.requires_grad() {
            return Err(PyRuntimeError::new_err(
                "Can't call numpy() on Tensor that requires grad. Use tensor.detach().numpy() instead.",
            ));
        }
        host_only(&slf.borrow().t)?;
        let np = py.import("numpy")?;
        Ok(np.call_method1("asarray", (slf,))?.unbind())
    }
    #[pyo3(signature = (dtype=None, copy=None))]
    fn __array__(
        slf: &Bound<'_, Self>,
        dtype: Option<&Bound<'_, PyAny>>,
        copy: Option<bool>,
    ) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        host_only(&slf.borrow().t)?;
        let np = py.import("numpy")?;
        let arr = if slf.borrow().t.dtype() == DType::BF16 {
            let f = new_py(py, slf.borrow().t.to_dtype(DType::F32))?;
            np.call_method1("asarray", (f,))?
        } else {
            np.call_method1("asarray", (slf,))?
        };
        let arr = match dtype {
            Some(d) if !d.is_none() => arr.call_method1("astype", (d,))?,
            _ => arr,
        };
        let arr = if copy == Some(true) {
            arr.call_method0("copy")?
        } else {
            arr
        };
        Ok(arr.unbind())
    }

    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        let py = slf.py();
        let this = slf.borrow();
        // The values come to the host for printing (a copy for the torch backend's devices).
        let host = this.t.detach().to_device(Device::Cpu)?;
        let arr = if host.dtype() == DType::BF16 || host.dtype() == DType::F16 {
            let f = new_py(py, host.to_dtype(DType::F32))?;
            py.import("numpy")?.call_method1("asarray", (f,))?
        } else if this.t.device() == Device::Cpu {
            py.import("numpy")?.call_method1("asarray", (slf,))?
        } else {
            py.import("numpy")?
                .call_method1("asarray", (new_py(py, host)?,))?
        };
        let kw = PyDict::new(py);
        if this.t.device() != Device::Cpu {
            kw.set_item("device", this.t.device().name())?;
        }
        kw.set_item("requires_grad", this.t.requires_grad())?;
        if let Some(n) = this.t.node() {
            kw.set_item("grad_fn", n.name)?;
        }
        let is_param = slf.get_type().name()? == "Parameter";
        kw.set_item("is_param", is_param)?;
        py.import("ferrotorch._tensor_str")?
            .getattr("format_tensor")?
            .call((arr, this.t.dtype().name()), Some(&kw))?
            .extract()
    }
    fn __format__(slf: &Bound<'_, Self>, spec: &str) -> PyResult<String> {
        let py = slf.py();
        let builtins = py.import("builtins")?;
        if slf.borrow().t.dims() == 0 {
            let v = slf.borrow().item(py)?;
            return builtins.getattr("format")?.call1((v, spec))?.extract();
        }
        let r = Self::__repr__(slf)?;
        builtins.getattr("format")?.call1((r, spec))?.extract()
    }
    fn __len__(&self) -> PyResult<usize> {
        if self.t.dims() == 0 {
            return Err(PyTypeError::new_err("len() of a 0-d tensor"));
        }
        Ok(self.t.shape()[0])
    }
    fn __iter__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        if self.t.dims() == 0 {
            return Err(PyTypeError::new_err("iteration over a 0-d tensor"));
        }
        let items = self
            .t
            .unbind(0)?
            .into_iter()
            .map(|t| new_py(py, t))
            .collect::<PyResult<Vec<_>>>()?;
        Ok(PyList::new(py, items)?.call_method0("__iter__")?.unbind())
    }
    fn __bool__(&self) -> PyResult<bool> {
        if self.t.elem_count() != 1 {
            return Err(PyRuntimeError::new_err(format!(
                "Boolean value of Tensor with more than one value is ambiguous (shape {:?}); use .any() or .all()",
                self.t.shape()
            )));
        }
        Ok(self.t.item_f64()? != 0.0)
    }
    fn __float__(&self) -> PyResult<f64> {
        self.check_one()?;
        Ok(self.t.item_f64()?)
    }
    fn __int__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.check_one()?;
        if self.t.dtype().is_float() {
            // Python's own rules: NaN -> ValueError, inf -> OverflowError, else truncation.
            return Ok(self
                .t
                .item_f64()?
                .into_pyobject(py)?
                .call_method0("__int__")?
                .unbind());
        }
        self.t.item_i64()?.into_py_any(py)
    }
    fn __index__(&self) -> PyResult<i64> {
        if !self.t.dtype().is_int() || self.t.elem_count() != 1 {
            return Err(PyTypeError::new_err(
                "only integer tensors of a single element can be converted to an index",
            ));
        }
        Ok(self.t.item_i64()?)
    }
    fn __hash__(slf: &Bound<'_, Self>) -> isize {
        slf.as_ptr() as isize
    }

    // *** views ***

    #[pyo3(signature = (*shape))]
    fn view(&self, shape: &Bound<'_, PyTuple>) -> PyResult<Self> {
        if shape.len() == 1 {
            if let Ok(Some(d)) = dtype_arg(Some(&shape.get_item(0)?)) {
                return Err(PyRuntimeError::new_err(format!(
                    "view(dtype) (reinterpreting {} as {}) is not supported; use .to(dtype) to convert",
                    self.t.dtype().name(),
                    d.name()
                )));
            }
        }
        Ok(PyTensor::wrap(self.t.view(&shape_args(shape)?)?))
    }
    fn view_as(&self, other: PyRef<'_, PyTensor>) -> PyResult<Self> {
        let s: Vec<i64> = other.t.shape().iter().map(|&d| d as i64).collect();
        Ok(PyTensor::wrap(self.t.view(&s)?))
    }
    #[pyo3(signature = (*shape))]
    fn reshape(&self, shape: &Bound<'_, PyTuple>) -> PyResult<Self> {
        Ok(PyTensor::wrap(self.t.reshape(&shape_args(shape)?)?))
    }
    fn reshape_as(&self, other: PyRef<'_, PyTensor>) -> PyResult<Self> {
        let s: Vec<i64> = other.t.shape().iter().map(|&d| d as i64).collect();
        Ok(PyTensor::wrap(self.t.reshape(&s)?))
    }
    fn transpose(&self, dim0: i64, dim1: i64) -> PyResult<Self> {
        Ok(PyTensor::wrap(self.t.transpose(dim0, dim1)?))
    }
    fn swapaxes(&self, dim0: i64, dim1: i64) -> PyResult<Self> {
        self.transpose(dim0, dim1)
    }
    fn t(&self) -> PyResult<Self> {
        Ok(PyTensor::wrap(self.t.t()?))
    }
    #[pyo3(signature = (*dims))]
    fn permute(&self, dims: &Bound<'_, PyTuple>) -> PyResult<Self> {
        Ok(PyTensor::wrap(self.t.permute(&shape_args(dims)?)?))
    }
    fn unsqueeze(&self, dim: i64) -> PyResult<Self> {
        Ok(PyTensor::wrap(self.t.unsqueeze(dim)?))
    }
    #[pyo3(signature = (dim=None))]
    fn squeeze(&self, dim: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let dims = dims_arg(dim)?;
        let d = if dim.is_none_or(|d| d.is_none()) {
            None
        } else {
            Some(dims.as_slice())
        };
        Ok(PyTensor::wrap(self.t.squeeze(d)?))
    }
    #[pyo3(signature = (start_dim=0, end_dim=-1))]
    fn flatten(&self, start_dim: i64, end_dim: i64) -> PyResult<Self> {
        Ok(PyTensor::wrap(self.t.flatten(start_dim, end_dim)?))
    }
    fn unflatten(&self, dim: i64, sizes: Vec<i64>) -> PyResult<Self> {
        Ok(PyTensor::wrap(self.t.unflatten(dim, &sizes)?))
    }
    #[pyo3(signature = (*sizes))]
    fn expand(&self, sizes: &Bound<'_, PyTuple>) -> PyResult<Self> {
        Ok(PyTensor::wrap(self.t.expand(&shape_args(sizes)?)?))
    }
    fn expand_as(&self, other: PyRef<'_, PyTensor>) -> PyResult<Self> {
        Ok(PyTensor::wrap(self.t.broadcast_as(other.t.shape())?))
    }
    /// Sums this tensor down to `size`, which must broadcast to this tensor's shape (the
    /// adjoint of `expand`).
    #[pyo3(signature = (*size))]
    fn sum_to_size(&self, size: &Bound<'_, PyTuple>) -> PyResult<Self> {
        let size = super::convert::sizes(size)?;
        let expandable = size.len() <= self.t.dims()
            && crate::shape::broadcast_shapes("sum_to_size", &size, self.t.shape())
                .is_ok_and(|s| s == self.t.shape());
        if !expandable {
            return Err(PyRuntimeError::new_err(format!(
                "size {size:?} is not expandable to size {:?}",
                self.t.shape()
            )));
        }
        Ok(PyTensor::wrap(crate::backprop::sum_to(&self.t, &size)?))
    }
    fn broadcast_to(&self, shape: Vec<i64>) -> PyResult<Self> {
        Ok(PyTensor::wrap(self.t.expand(&shape)?))
    }
    fn narrow(&self, dim: i64, start: i64, length: i64) -> PyResult<Self> {
        Ok(PyTensor::wrap(self.t.narrow(dim, start, length)?))
    }
    fn select(&self, dim: i64, index: i64) -> PyResult<Self> {
        Ok(PyTensor::wrap(self.t.select(dim, index)?))
    }
    #[pyo3(signature = (dim=0))]
    fn unbind(&self, py: Python<'_>, dim: i64) -> PyResult<Py<PyAny>> {
        tensors_to_list(py, self.t.unbind(dim)?)
    }
    #[pyo3(signature = (split_size_or_sections, dim=0))]
    fn split(
        &self,
        py: Python<'_>,
        split_size_or_sections: &Bound<'_, PyAny>,
        dim: i64,
    ) -> PyResult<Py<PyAny>> {
        let parts = if let Ok(n) = split_size_or_sections.extract::<i64>() {
            if n < 0 {
                return Err(PyRuntimeError::new_err(format!(
                    "split expects split_size be non-negative, but got split_size={n}"
                )));
            }
            self.t.split(n as usize, dim)?
        } else {
            let sizes: Vec<i64> = split_size_or_sections.extract()?;
            if sizes.iter().any(|&s| s < 0) {
                return Err(PyRuntimeError::new_err(format!(
                    "split_with_sizes expects split_sizes have only non-negative entries, but got split_sizes={sizes:?}"
                )));
            }
            let sizes: Vec<usize> = sizes.into_iter().map(|s| s as usize).collect();
            self.t.split_sizes(&sizes, dim)?
        };
        tensors_to_list(py, parts)
    }
    #[pyo3(signature = (chunks, dim=0))]
    fn chunk(&self, py: Python<'_>, chunks: i64, dim: i64) -> PyResult<Py<PyAny>> {
        tensors_to_list(py, self.t.chunk(chunks, dim)?)
    }
    #[pyo3(signature = (size, stride, storage_offset=None))]
    fn as_strided(
        &self,
        size: Vec<usize>,
        stride: Vec<usize>,
        storage_offset: Option<usize>,
    ) -> PyResult<Self> {
        let off = storage_offset.unwrap_or(self.t.layout().offset());
        Ok(PyTensor::wrap(self.t.as_strided(&size, &stride, off)?))
    }
    #[pyo3(signature = (memory_format=None))]
    fn contiguous(
        slf: PyRef<'_, Self>,
        memory_format: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let _ = memory_format;
        let py = slf.py();
        if slf.t.is_contiguous() {
            return slf.into_py_any(py);
        }
        crate::storage::check_alloc("contiguous", slf.t.shape(), slf.t.dtype())?;
        new_py(py, slf.t.contiguous())?.into_py_any(py)
    }
    #[pyo3(signature = (memory_format=None))]
    fn clone(&self, memory_format: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let _ = memory_format;
        crate::storage::check_alloc("clone", self.t.shape(), self.t.dtype())?;
        Ok(PyTensor::wrap(self.t.clone_preserving_strides()))
    }
    fn detach(&self) -> Self {
        PyTensor::wrap(self.t.detach())
    }
    fn detach_(mut slf: PyRefMut<'_, Self>) -> PyRefMut<'_, Self> {
        slf.t = slf.t.detach();
        slf
    }
    fn __getitem__(&self, key: &Bound<'_, PyAny>) -> PyResult<Self> {
        let idx = parse_index(key)?;
        Ok(PyTensor::wrap(self.t.index(&idx)?))
    }
    fn __setitem__(&mut self, key: &Bound<'_, PyAny>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let idx = parse_index(key)?;
        if let Some(s) = super::convert::as_scalar(value) {
            super::convert::check_scalar_fits(s, self.t.dtype())?;
        }
        let v = match Other::parse(value) {
            Some(Other::T(t)) => t,
            Some(Other::S(t)) => t,
            None => super::convert::tensor_from_data(value, Some(self.t.dtype()))?,
        };
        if crate::op::is_grad_enabled() && (self.t.requires_grad() || v.requires_grad()) {
            // Recorded as an out-of-place index_put whose history self takes over.
            let result = self.t.index_put(&idx, &v, false)?;
            return self.write_result("__setitem__", &result);
        }
        Ok(self.t.index_put_(&idx, &v, false)?)
    }
    #[pyo3(signature = (indices, values, accumulate=false))]
    fn index_put_<'py>(
        slf: PyRef<'py, Self>,
        indices: &Bound<'py, PyAny>,
        values: PyRef<'py, PyTensor>,
        accumulate: bool,
    ) -> PyResult<PyRef<'py, Self>> {
        let idx = parse_index(indices)?;
        slf.t.index_put_(&idx, &values.t, accumulate)?;
        Ok(slf)
    }

    // *** elementwise ***

    fn __add__(&self, py: Python<'_>, o: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.bin(py, o, BinaryOp::Add, false)
    }
    fn __radd__(&self, py: Python<'_>, o: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.bin(py, o, BinaryOp::Add, true)
    }
    fn __sub__(&self, py: Python<'_>, o: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.bin(py, o, BinaryOp::Sub, false)
    }
    fn __rsub__(&self, py: Python<'_>, o: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.bin(py, o, BinaryOp::Sub, true)
    }
    fn __mul__(&self, py: Python<'_>, o: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.bin(py, o, BinaryOp::Mul, false)
    }
    fn __rmul__(&self, py: Python<'_>, o: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.bin(py, o, BinaryOp::Mul, true)
    }
    fn __truediv__(&self, py: Python<'_>, o: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.bin(py, o, BinaryOp::Div, false)
    }
    fn __rtruediv__(&self, py: Python<'_>, o: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.bin(py, o, BinaryOp::Div, true)
    }
    fn __floordiv__(&self, py: Python<'_>, o: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.bin(py, o, BinaryOp::FloorDiv, false)
    }
    fn __rfloordiv__(&self, py: Python<'_>, o: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.bin(py, o, BinaryOp::FloorDiv, true)
    }
    fn __mod__(&self, py: Python<'_>, o: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.bin(py, o, BinaryOp::Rem, false)
    }
    fn __rmod__(&self, py: Python<'_>, o: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.bin(py, o, BinaryOp::Rem, true)
    }
    fn __pow__(
        &self,
        py: Python<'_>,
        o: &Bound<'_, PyAny>,
        _modulo: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        self.bin(py, o, BinaryOp::Pow, false)
    }
    fn __rpow__(
        &self,
        py: Python<'_>,
        o: &Bound<'_, PyAny>,
        _modulo: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        self.bin(py, o, BinaryOp::Pow, true)
    }
    fn __and__(&self, py: Python<'_>, o: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.bin(py, o, BinaryOp::BitAnd, false)
    }
    fn __rand__(&self, py: Python<'_>, o: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.bin(py, o, BinaryOp::BitAnd, true)
    }
    fn __or__(&self, py: Python<'_>, o: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.bin(py, o, BinaryOp::BitOr, false)
    }
    fn __ror__(&self, py: Python<'_>, o: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.bin(py, o, BinaryOp::BitOr, true)
    }
    fn __xor__(&self, py: Python<'_>, o: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.bin(py, o, BinaryOp::BitXor, false)
    }
    fn __rxor__(&self, py: Python<'_>, o: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.bin(py, o, BinaryOp::BitXor, true)
    }
    fn __eq__(&self, py: Python<'_>, o: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.bin(py, o, BinaryOp::Eq, false)
    }
    fn __ne__(&self, py: Python<'_>, o: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.bin(py, o, BinaryOp::Ne, false)
    }
    fn __lt__(&self, py: Python<'_>, o: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.bin(py, o, BinaryOp::Lt, false)
    }
    fn __le__(&self, py: Python<'_>, o: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.bin(py, o, BinaryOp::Le, false)
    }
    fn __gt__(&self, py: Python<'_>, o: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.bin(py, o, BinaryOp::Gt, false)
    }
    fn __ge__(&self, py: Python<'_>, o: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.bin(py, o, BinaryOp::Ge, false)
    }
    fn __matmul__(&self, py: Python<'_>, o: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        match o.cast::<PyTensor>() {
            Ok(t) => self.matmul(py, t.borrow())?.into_py_any(py),
            Err(_) => Ok(py.NotImplemented()),
        }
    }
    fn __rmatmul__(&self, py: Python<'_>, o: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        match o.cast::<PyTensor>() {
            Ok(t) => new_py(py, t.borrow().t.matmul(&self.t)?)?.into_py_any(py),
            Err(_) => Ok(py.NotImplemented()),
        }
    }
    fn __neg__(&self, py: Python<'_>) -> PyResult<Py<PyTensor>> {
        self.un(py, UnaryOp::Neg)
    }
    fn __pos__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }
    fn __abs__(&self, py: Python<'_>) -> PyResult<Py<PyTensor>> {
        self.un(py, UnaryOp::Abs)
    }
    fn __invert__(&self, py: Python<'_>) -> PyResult<Py<PyTensor>> {
        if self.t.dtype().is_float() {
            return Err(PyTypeError::new_err(format!(
                "~ (bitwise_not) is only supported for integer and boolean tensors, got {}",
                self.t.dtype().name()
            )));
        }
        self.un(py, UnaryOp::BitNot)
    }

    #[pyo3(signature = (other, *, alpha=None))]
    fn add(
        &self,
        py: Python<'_>,
        other: &Bound<'_, PyAny>,
        alpha: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyTensor>> {
        self.with_alpha(py, other, alpha, BinaryOp::Add)
    }
    #[pyo3(signature = (other, *, alpha=None))]
    fn sub(
        &self,
        py: Python<'_>,
        other: &Bound<'_, PyAny>,
        alpha: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyTensor>> {
        self.with_alpha(py, other, alpha, BinaryOp::Sub)
    }
    #[pyo3(signature = (other, *, alpha=None))]
    fn subtract(
        &self,
        py: Python<'_>,
        other: &Bound<'_, PyAny>,
        alpha: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyTensor>> {
        self.with_alpha(py, other, alpha, BinaryOp::Sub)
    }
    fn mul(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyTensor>> {
        self.bin_strict(py, other, BinaryOp::Mul)
    }
    fn multiply(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyTensor>> {
        self.bin_strict(py, other, BinaryOp::Mul)
    }
    #[pyo3(signature = (other, *, rounding_mode=None))]
    fn div(
        &self,
        py: Python<'_>,
        other: &Bound<'_, PyAny>,
        rounding_mode: Option<&str>,
    ) -> PyResult<Py<PyTensor>> {
        match rounding_mode {
            None => self.bin_strict(py, other, BinaryOp::Div),
            Some("floor") => self.bin_strict(py, other, BinaryOp::FloorDiv),
            Some("trunc") => {
                let o = parse_other(other, "div")?;
                let q = Tensor::binary(BinaryOp::Div, Arg::tensor(&self.t), o.arg())?;
                let promoted =
                    crate::dtype::result_type(&[Arg::tensor(&self.t).operand(), o.arg().operand()]);
                if !promoted.is_float() {
                    if o.arg().tensor.to_vec_as::<f64>().contains(&0.0) {
                        return Err(PyRuntimeError::new_err("ZeroDivisionError"));
                    }
                    let q = Tensor::binary(
                        BinaryOp::Div,
                        Arg::tensor(&self.t.to_dtype(DType::F64)),
                        o.arg(),
                    )?;
                    return new_py(py, q.unary(UnaryOp::Trunc)?.to_dtype(promoted));
                }
                new_py(py, q.unary(UnaryOp::Trunc)?)
            }
            Some(m) => Err(PyRuntimeError::new_err(format!(
                "div expected rounding_mode to be one of None, 'trunc', or 'floor' but found '{m}'"
            ))),
        }
    }
    #[pyo3(signature = (other, *, rounding_mode=None))]
    fn divide(
        &self,
        py: Python<'_>,
        other: &Bound<'_, PyAny>,
        rounding_mode: Option<&str>,
    ) -> PyResult<Py<PyTensor>> {
        self.div(py, other, rounding_mode)
    }
    fn true_divide(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyTensor>> {
        self.bin_strict(py, other, BinaryOp::Div)
    }
    fn floor_divide(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyTensor>> {
        self.bin_strict(py, other, BinaryOp::FloorDiv)
    }
    fn remainder(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyTensor>> {
        self.bin_strict(py, other, BinaryOp::Rem)
    }
    fn pow(&self, py: Python<'_>, exponent: &Bound<'_, PyAny>) -> PyResult<Py<PyTensor>> {
        if let (Some(Scalar::Int(e)), false) = (as_scalar(exponent), self.t.dtype().is_float()) {
            if e < 0 {
                return Err(PyRuntimeError::new_err(
                    "Integers to negative integer powers are not allowed.",
                ));
            }
        }
        self.bin_strict(py, exponent, BinaryOp::Pow)
    }
    fn maximum(&self, py: Python<'_>, other: PyRef<'_, PyTensor>) -> PyResult<Py<PyTensor>> {
        new_py(py, self.t.binary_t(BinaryOp::Maximum, &other.t)?)
    }
    fn minimum(&self, py: Python<'_>, other: PyRef<'_, PyTensor>) -> PyResult<Py<PyTensor>> {
        new_py(py, self.t.binary_t(BinaryOp::Minimum, &other.t)?)
    }
    fn eq(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyTensor>> {
        self.bin_strict(py, other, BinaryOp::Eq)
    }
    fn ne(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyTensor>> {
        self.bin_strict(py, other, BinaryOp::Ne)
    }
    fn lt(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyTensor>> {
        self.bin_strict(py, other, BinaryOp::Lt)
    }
    fn le(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyTensor>> {
        self.bin_strict(py, other, BinaryOp::Le)
    }
    fn gt(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyTensor>> {
        self.bin_strict(py, other, BinaryOp::Gt)
    }
    fn ge(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyTensor>> {
        self.bin_strict(py, other, BinaryOp::Ge)
    }
    fn logical_and(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyTensor>> {
        self.bin_strict(py, other, BinaryOp::LogicalAnd)
    }
    fn logical_or(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyTensor>> {
        self.bin_strict(py, other, BinaryOp::LogicalOr)
    }
    fn logical_xor(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyTensor>> {
        self.bin_strict(py, other, BinaryOp::LogicalXor)
    }
    fn logical_not(&self, py: Python<'_>) -> PyResult<Py<PyTensor>> {
        self.un(py, UnaryOp::LogicalNot)
    }
    fn bitwise_not(&self, py: Python<'_>) -> PyResult<Py<PyTensor>> {
        self.un(py, UnaryOp::BitNot)
    }
    fn neg(&self, py: Python<'_>) -> PyResult<Py<PyTensor>> {
        self.un(py, UnaryOp::Neg)
    }
    fn negative(&self, py: Python<'_>) -> PyResult<Py<PyTensor>> {
        self.un(py, UnaryOp::Neg)
    }
    fn abs(&self, py: Python<'_>) -> PyResult<Py<PyTensor>> {
        self.un(py, UnaryOp::Abs)
    }
    fn sign(&self, py: Python<'_>) -> PyResult<Py<PyTensor>> {
        self.un(py, UnaryOp::Sign)
    }
    fn exp(&self, py: Python<'_>) -> PyResult<Py<PyTensor>> {
        self.un(py, UnaryOp::Exp)
    }
    fn log(&self, py: Python<'_>) -> PyResult<Py<PyTensor>> {
        self.un(py, UnaryOp::Log)
    }
    fn log1p(&self, py: Python<'_>) -> PyResult<Py<PyTensor>> {
        self.un(py, UnaryOp::Log1p)
    }
    fn sqrt(&self, py: Python<'_>) -> PyResult<Py<PyTensor>> {
        self.un(py, UnaryOp::Sqrt)
    }
    fn rsqrt(&self, py: Python<'_>) -> PyResult<Py<PyTensor>> {
        self.un(py, UnaryOp::Rsqrt)
    }
    fn sin(&self, py: Python<'_>) -> PyResult<Py<PyTensor>> {
        self.un(py, UnaryOp::Sin)
    }
    fn cos(&self, py: Python<'_>) -> PyResult<Py<PyTensor>> {
        self.un(py, UnaryOp::Cos)
    }
    fn tanh(&self, py: Python<'_>) -> PyResult<Py<PyTensor>> {
        self.un(py, UnaryOp::Tanh)
    }
    fn erf(&self, py: Python<'_>) -> PyResult<Py<PyTensor>> {
        self.un(py, UnaryOp::Erf)
    }
    fn erfinv(&self, py: Python<'_>) -> PyResult<Py<PyTensor>> {
        self.un(py, UnaryOp::Erfinv)
    }
    fn sigmoid(&self, py: Python<'_>) -> PyResult<Py<PyTensor>> {
        self.un(py, UnaryOp::Sigmoid)
    }
    fn relu(&self, py: Python<'_>) -> PyResult<Py<PyTensor>> {
        self.un(py, UnaryOp::Relu)
    }
    #[pyo3(signature = (approximate="none"))]
    fn gelu(&self, py: Python<'_>, approximate: &str) -> PyResult<Py<PyTensor>> {
        match approximate {
            "none" => self.un(py, UnaryOp::Gelu),
            "tanh" => self.un(py, UnaryOp::GeluTanh),
            other => Err(PyRuntimeError::new_err(format!(
                "approximate argument must be either none or tanh (got '{other}')"
            ))),
        }
    }
    fn silu(&self, py: Python<'_>) -> PyResult<Py<PyTensor>> {
        self.un(py, UnaryOp::Silu)
    }
    fn floor(&self, py: Python<'_>) -> PyResult<Py<PyTensor>> {
        self.un(py, UnaryOp::Floor)
    }
    fn ceil(&self, py: Python<'_>) -> PyResult<Py<PyTensor>> {
        self.un(py, UnaryOp::Ceil)
    }
    #[pyo3(signature = (*, decimals=0))]
    fn round(&self, py: Python<'_>, decimals: i64) -> PyResult<Py<PyTensor>> {
        if decimals == 0 {
            return self.un(py, UnaryOp::Round);
        }
        let scale = 10f64.powi(decimals as i32);
        let x = self.t.binary_s(BinaryOp::Mul, Scalar::Float(scale))?;
        new_py(
            py,
            x.unary(UnaryOp::Round)?
                .binary_s(BinaryOp::Div, Scalar::Float(scale))?,
        )
    }
    fn trunc(&self, py: Python<'_>) -> PyResult<Py<PyTensor>> {
        self.un(py, UnaryOp::Trunc)
    }
    fn reciprocal(&self, py: Python<'_>) -> PyResult<Py<PyTensor>> {
        self.un(py, UnaryOp::Reciprocal)
    }
    #[pyo3(signature = (min=None, max=None))]
    fn clamp(
        &self,
        py: Python<'_>,
        min: Option<&Bound<'_, PyAny>>,
        max: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyTensor>> {
        let lo = opt_other(min, "clamp")?;
        let hi = opt_other(max, "clamp")?;
        new_py(
            py,
            self.t
                .clamp(lo.as_ref().map(|o| o.arg()), hi.as_ref().map(|o| o.arg()))?,
        )
    }
    #[pyo3(signature = (min=None, max=None))]
    fn clip(
        &self,
        py: Python<'_>,
        min: Option<&Bound<'_, PyAny>>,
        max: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyTensor>> {
        self.clamp(py, min, max)
    }
    fn masked_fill(
        &self,
        py: Python<'_>,
        mask: PyRef<'_, PyTensor>,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<Py<PyTensor>> {
        let v = parse_other(value, "masked_fill")?;
        new_py(py, self.t.masked_fill(&mask.t, v.arg())?)
    }
    #[pyo3(name = "where")]
    fn where_(
        &self,
        py: Python<'_>,
        condition: PyRef<'_, PyTensor>,
        other: &Bound<'_, PyAny>,
    ) -> PyResult<Py<PyTensor>> {
        let o = parse_other(other, "where")?;
        new_py(
            py,
            Tensor::where_(&condition.t, Arg::tensor(&self.t), o.arg())?,
        )
    }

    /// Writes an out-of-place result into self (the engine of the `op_` in-place methods).
    fn _assign_<'py>(
        mut slf: PyRefMut<'py, Self>,
        result: PyRef<'py, PyTensor>,
        op: &str,
    ) -> PyResult<PyRefMut<'py, Self>> {
        slf.write_result(op, &result.t)?;
        Ok(slf)
    }
    fn copy_<'py>(slf: PyRef<'py, Self>, src: &Bound<'py, PyAny>) -> PyResult<PyRef<'py, Self>> {
        slf.check_inplace("copy_")?;
        let s = match Other::parse(src) {
            Some(Other::T(t)) | Some(Other::S(t)) => t,
            None => {
                return Err(PyTypeError::new_err(
                    "copy_(): argument 'src' must be Tensor",
                ))
            }
        };
        slf.t.copy_(&s)?;
        Ok(slf)
    }
    fn fill_<'py>(slf: PyRef<'py, Self>, value: &Bound<'py, PyAny>) -> PyResult<PyRef<'py, Self>> {
        slf.check_inplace("fill_")?;
        let v = parse_other(value, "fill_")?;
        let t = match &v {
            Other::T(t) | Other::S(t) => t,
        };
        if t.dims() != 0 {
            return Err(PyRuntimeError::new_err(format!(
                "fill_ only supports 0-dimension value tensor but got tensor with {} dimensions.",
                t.dims()
            )));
        }
        slf.t.copy_(t)?;
        Ok(slf)
    }
    fn zero_(slf: PyRef<'_, Self>) -> PyResult<PyRef<'_, Self>> {
        slf.check_inplace("zero_")?;
        slf.t
            .copy_(&Tensor::scalar(Scalar::Int(0), slf.t.dtype()))?;
        Ok(slf)
    }

    // *** reductions ***

    #[pyo3(signature = (dim=None, keepdim=false, *, dtype=None))]
    fn sum(
        &self,
        py: Python<'_>,
        dim: Option<&Bound<'_, PyAny>>,
        keepdim: bool,
        dtype: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyTensor>> {
        self.reduce(py, ReduceOp::Sum, dim, keepdim, dtype)
    }
    #[pyo3(signature = (dim=None, keepdim=false, *, dtype=None))]
    fn mean(
        &self,
        py: Python<'_>,
        dim: Option<&Bound<'_, PyAny>>,
        keepdim: bool,
        dtype: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyTensor>> {
        self.reduce(py, ReduceOp::Mean, dim, keepdim, dtype)
    }
    #[pyo3(signature = (dim=None, keepdim=false, *, dtype=None))]
    fn prod(
        &self,
        py: Python<'_>,
        dim: Option<&Bound<'_, PyAny>>,
        keepdim: bool,
        dtype: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyTensor>> {
        self.reduce(py, ReduceOp::Prod, dim, keepdim, dtype)
    }
    #[pyo3(signature = (dim=None, keepdim=false))]
    fn amax(
        &self,
        py: Python<'_>,
        dim: Option<&Bound<'_, PyAny>>,
        keepdim: bool,
    ) -> PyResult<Py<PyTensor>> {
        self.reduce(py, ReduceOp::Max, dim, keepdim, None)
    }
    #[pyo3(signature = (dim=None, keepdim=false))]
    fn amin(
        &self,
        py: Python<'_>,
        dim: Option<&Bound<'_, PyAny>>,
        keepdim: bool,
    ) -> PyResult<Py<PyTensor>> {
        self.reduce(py, ReduceOp::Min, dim, keepdim, None)
    }
    #[pyo3(signature = (dim=None, keepdim=false))]
    fn all(
        &self,
        py: Python<'_>,
        dim: Option<&Bound<'_, PyAny>>,
        keepdim: bool,
    ) -> PyResult<Py<PyTensor>> {
        self.reduce(py, ReduceOp::All, dim, keepdim, None)
    }
    #[pyo3(signature = (dim=None, keepdim=false))]
    fn any(
        &self,
        py: Python<'_>,
        dim: Option<&Bound<'_, PyAny>>,
        keepdim: bool,
    ) -> PyResult<Py<PyTensor>> {
        self.reduce(py, ReduceOp::Any, dim, keepdim, None)
    }
    #[pyo3(signature = (dim, keepdim=false))]
    fn logsumexp(
        &self,
        py: Python<'_>,
        dim: &Bound<'_, PyAny>,
        keepdim: bool,
    ) -> PyResult<Py<PyTensor>> {
        if dim.is_none() {
            return Err(PyTypeError::new_err(
                "logsumexp(): argument 'dim' must be tuple of ints, not NoneType",
            ));
        }
        self.reduce(py, ReduceOp::LogSumExp, Some(dim), keepdim, None)
    }
    #[pyo3(signature = (dim=None, unbiased=None, keepdim=false, *, correction=None))]
    fn var(
        &self,
        py: Python<'_>,
        dim: Option<&Bound<'_, PyAny>>,
        unbiased: Option<bool>,
        keepdim: bool,
        correction: Option<f64>,
    ) -> PyResult<Py<PyTensor>> {
        self.var_std(py, dim, correction, keepdim, unbiased, false)
    }
    #[pyo3(signature = (dim=None, unbiased=None, keepdim=false, *, correction=None))]
    fn std(
        &self,
        py: Python<'_>,
        dim: Option<&Bound<'_, PyAny>>,
        unbiased: Option<bool>,
        keepdim: bool,
        correction: Option<f64>,
    ) -> PyResult<Py<PyTensor>> {
        self.var_std(py, dim, correction, keepdim, unbiased, true)
    }
    #[pyo3(signature = (dim=None, keepdim=false))]
    fn max(
        &self,
        py: Python<'_>,
        dim: Option<&Bound<'_, PyAny>>,
        keepdim: bool,
    ) -> PyResult<Py<PyAny>> {
        self.max_min(py, dim, keepdim, true)
    }
    #[pyo3(signature = (dim=None, keepdim=false))]
    fn min(
        &self,
        py: Python<'_>,
        dim: Option<&Bound<'_, PyAny>>,
        keepdim: bool,
    ) -> PyResult<Py<PyAny>> {
        self.max_min(py, dim, keepdim, false)
    }
    #[pyo3(signature = (dim=None, keepdim=false))]
    fn argmax(&self, py: Python<'_>, dim: Option<i64>, keepdim: bool) -> PyResult<Py<PyTensor>> {
        new_py(
            py,
            heavy(py, self.t.elem_count(), || {
                self.t.argmax_min(dim, keepdim, true)
            })?,
        )
    }
    #[pyo3(signature = (dim=None, keepdim=false))]
    fn argmin(&self, py: Python<'_>, dim: Option<i64>, keepdim: bool) -> PyResult<Py<PyTensor>> {
        new_py(
            py,
            heavy(py, self.t.elem_count(), || {
                self.t.argmax_min(dim, keepdim, false)
            })?,
        )
    }
    #[pyo3(signature = (dim, dtype=None))]
    fn softmax(
        &self,
        py: Python<'_>,
        dim: i64,
        dtype: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyTensor>> {
        let x = self.cast_opt(dtype)?;
        new_py(py, heavy(py, x.elem_count(), || x.softmax(dim, false))?)
    }
    #[pyo3(signature = (dim, dtype=None))]
    fn log_softmax(
        &self,
        py: Python<'_>,
        dim: i64,
        dtype: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyTensor>> {
        let x = self.cast_opt(dtype)?;
        new_py(py, heavy(py, x.elem_count(), || x.softmax(dim, true))?)
    }
    #[pyo3(signature = (dim, *, dtype=None))]
    fn cumsum(
        &self,
        py: Python<'_>,
        dim: i64,
        dtype: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyTensor>> {
        let d = dtype_arg(dtype)?;
        new_py(py, self.t.cumsum(dim, d)?)
    }
    #[pyo3(signature = (p=None, dim=None, keepdim=false, dtype=None))]
    fn norm(
        &self,
        py: Python<'_>,
        p: Option<&Bound<'_, PyAny>>,
        dim: Option<&Bound<'_, PyAny>>,
        keepdim: bool,
        dtype: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyTensor>> {
        let p = match p {
            None => 2.0,
            Some(p) if p.is_none() => 2.0,
            Some(p) => {
                if let Ok(s) = p.extract::<String>() {
                    match s.as_str() {
                        "fro" => 2.0,
                        "nuc" => {
                            return Err(PyRuntimeError::new_err("nuclear norm is not supported"))
                        }
                        _ => {
                            return Err(PyRuntimeError::new_err(format!(
                                "unsupported norm type {s}"
                            )))
                        }
                    }
                } else {
                    p.extract::<f64>()?
                }
            }
        };
        let x = self.cast_opt(dtype)?;
        let dims = dims_arg(dim)?;
        new_py(py, x.norm(p, &dims, keepdim)?)
    }

    // *** joining and gathering ***

    fn gather(
        &self,
        py: Python<'_>,
        dim: i64,
        index: PyRef<'_, PyTensor>,
    ) -> PyResult<Py<PyTensor>> {
        new_py(py, self.t.gather(dim, &index.t)?)
    }
    #[pyo3(signature = (indices, dim=None))]
    fn take_along_dim(
        &self,
        py: Python<'_>,
        indices: PyRef<'_, PyTensor>,
        dim: Option<i64>,
    ) -> PyResult<Py<PyTensor>> {
        match dim {
            None => new_py(
                py,
                self.t
                    .reshape(&[-1])?
                    .gather(0, &indices.t.reshape(&[-1])?)?,
            ),
            Some(d) => {
                // Broadcast all dims except `d` like torch.
                let dd = self.t.dim(d)?;
                let mut si = self.t.shape().to_vec();
                let mut ii = indices.t.shape().to_vec();
                si[dd] = 1;
                ii[dd] = 1;
                let b = crate::shape::broadcast_shapes("take_along_dim", &si, &ii)?;
                let mut s_shape = b.clone();
                s_shape[dd] = self.t.shape()[dd];
                let mut i_shape = b;
                i_shape[dd] = indices.t.shape()[dd];
                let src = self.t.broadcast_as(&s_shape)?;
                let idx = indices.t.broadcast_as(&i_shape)?.contiguous();
                new_py(py, src.gather(d, &idx)?)
            }
        }
    }
    fn index_select(
        &self,
        py: Python<'_>,
        dim: i64,
        index: PyRef<'_, PyTensor>,
    ) -> PyResult<Py<PyTensor>> {
        new_py(py, self.t.index_select(dim, &index.t)?)
    }
    fn scatter_add_<'py>(
        slf: PyRef<'py, Self>,
        dim: i64,
        index: PyRef<'py, PyTensor>,
        src: PyRef<'py, PyTensor>,
    ) -> PyResult<PyRef<'py, Self>> {
        slf.t.scatter_(dim, &index.t, &src.t, true)?;
        Ok(slf)
    }
    fn scatter_add(
        &self,
        py: Python<'_>,
        dim: i64,
        index: PyRef<'_, PyTensor>,
        src: PyRef<'_, PyTensor>,
    ) -> PyResult<Py<PyTensor>> {
        new_py(py, self.t.scatter_add(dim, &index.t, &src.t)?)
    }
    #[pyo3(signature = (dim, index, src=None, *, value=None))]
    fn scatter_<'py>(
        slf: PyRef<'py, Self>,
        dim: i64,
        index: PyRef<'py, PyTensor>,
        src: Option<&Bound<'py, PyAny>>,
        value: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<PyRef<'py, Self>> {
        let s = scatter_src(&slf.t, &index.t, src, value)?;
        slf.t.scatter_(dim, &index.t, &s, false)?;
        Ok(slf)
    }
    #[pyo3(signature = (dim, index, src=None, *, value=None))]
    fn scatter(
        &self,
        py: Python<'_>,
        dim: i64,
        index: PyRef<'_, PyTensor>,
        src: Option<&Bound<'_, PyAny>>,
        value: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyTensor>> {
        let s = scatter_src(&self.t, &index.t, src, value)?;
        let out = self.t.deep_copy();
        out.scatter_(dim, &index.t, &s, false)?;
        new_py(py, out)
    }
    #[pyo3(signature = (k, dim=-1, largest=true, sorted=true))]
    fn topk(
        &self,
        py: Python<'_>,
        k: i64,
        dim: i64,
        largest: bool,
        sorted: bool,
    ) -> PyResult<Py<PyAny>> {
        let _ = sorted;
        let (v, i) = heavy(py, self.t.elem_count(), || self.t.topk(k, dim, largest))?;
        return_type(py, "topk", v, i)
    }
    #[pyo3(signature = (dim=-1, descending=false, *, stable=false))]
    fn sort(
        &self,
        py: Python<'_>,
        dim: i64,
        descending: bool,
        stable: bool,
    ) -> PyResult<Py<PyAny>> {
        let _ = stable;
        let (v, i) = heavy(py, self.t.elem_count(), || self.t.sort(dim, descending))?;
        return_type(py, "sort", v, i)
    }
    #[pyo3(signature = (dim=-1, descending=false, *, stable=false))]
    fn argsort(
        &self,
        py: Python<'_>,
        dim: i64,
        descending: bool,
        stable: bool,
    ) -> PyResult<Py<PyTensor>> {
        let _ = stable;
        new_py(py, self.t.sort(dim, descending)?.1)
    }
    #[pyo3(signature = (diagonal=0))]
    fn tril(&self, py: Python<'_>, diagonal: i64) -> PyResult<Py<PyTensor>> {
        new_py(py, self.t.tri(diagonal, false)?)
    }
    #[pyo3(signature = (diagonal=0))]
    fn triu(&self, py: Python<'_>, diagonal: i64) -> PyResult<Py<PyTensor>> {
        new_py(py, self.t.tri(diagonal, true)?)
    }
    #[pyo3(signature = (*, as_tuple=false))]
    fn nonzero(&self, py: Python<'_>, as_tuple: bool) -> PyResult<Py<PyAny>> {
        let nz = self.t.nonzero()?;
        if as_tuple {
            let cols = (0..self.t.dims().max(1))
                .map(|j| {
                    if self.t.dims() == 0 {
                        Ok(nz.reshape(&[-1])?)
                    } else {
                        Ok(nz.select(1, j as i64)?.contiguous())
                    }
                })
                .collect::<crate::Result<Vec<_>>>()?;
            return tensors_to_list(py, cols);
        }
        new_py(py, nz)?.into_py_any(py)
    }

    // *** matmul ***

    fn matmul(&self, py: Python<'_>, other: PyRef<'_, PyTensor>) -> PyResult<Py<PyTensor>> {
        let (a, b) = (self.t.clone(), other.t.clone());
        new_py(py, py.detach(move || a.matmul(&b))?)
    }
    fn mm(&self, py: Python<'_>, mat2: PyRef<'_, PyTensor>) -> PyResult<Py<PyTensor>> {
        let (a, b) = (self.t.clone(), mat2.t.clone());
        new_py(py, py.detach(move || a.mm(&b))?)
    }
    fn bmm(&self, py: Python<'_>, mat2: PyRef<'_, PyTensor>) -> PyResult<Py<PyTensor>> {
        let (a, b) = (self.t.clone(), mat2.t.clone());
        new_py(py, py.detach(move || a.bmm(&b))?)
    }
    fn outer(&self, py: Python<'_>, vec2: PyRef<'_, PyTensor>) -> PyResult<Py<PyTensor>> {
        new_py(py, self.t.outer(&vec2.t)?)
    }
    fn dot(&self, py: Python<'_>, other: PyRef<'_, PyTensor>) -> PyResult<Py<PyTensor>> {
        if self.t.dims() != 1 || other.t.dims() != 1 {
            return Err(PyRuntimeError::new_err(format!(
                "1D tensors expected, but got {}D and {}D tensors",
                self.t.dims(),
                other.t.dims()
            )));
        }
        new_py(py, self.t.matmul(&other.t)?)
    }
}

/// The tensor a (chain of) recorded view(s) looks into, or None when `t` is not a view.
fn view_root(t: &Tensor) -> Option<Tensor> {
    t.node()?.view_root()
}

fn opt_other(o: Option<&Bound<'_, PyAny>>, op: &str) -> PyResult<Option<Other>> {
    match o {
        None => Ok(None),
        Some(v) if v.is_none() => Ok(None),
        Some(v) => Ok(Some(parse_other(v, op)?)),
    }
}

fn scatter_src(
    t: &Tensor,
    index: &Tensor,
    src: Option<&Bound<'_, PyAny>>,
    value: Option<&Bound<'_, PyAny>>,
) -> PyResult<Tensor> {
    let given = src
        .filter(|s| !s.is_none())
        .or(value.filter(|v| !v.is_none()));
    let Some(g) = given else {
        return Err(PyTypeError::new_err(
            "scatter(): expected a 'src' tensor or a 'value'",
        ));
    };
    if let Ok(s) = g.cast::<PyTensor>() {
        return Ok(s.borrow().t.clone());
    }
    let s =
        as_scalar(g).ok_or_else(|| PyTypeError::new_err("scatter(): 'value' must be a number"))?;
    Ok(Tensor::scalar(s, t.dtype()).broadcast_as(index.shape())?)
}

/// numpy sees host memory of the native backend only (torch's rule for device tensors).
fn host_only(t: &Tensor) -> PyResult<()> {
    if t.device() == Device::Cpu {
        return Ok(());
    }
    Err(PyTypeError::new_err(format!(
        "can't convert {} device type tensor to numpy. Use Tensor.cpu() to copy the tensor to host memory first.",
        t.device()
    )))
}

/// A device argument: a name ("cpu", "torch:cpu", "cuda", "cuda:1", "mps"), a
/// `ferrotorch.device` or `torch.device`, or an int (a CUDA index, as in torch).
pub fn parse_device(o: &Bound<'_, PyAny>) -> PyResult<Device> {
    if let Ok(i) = o.extract::<i64>() {
        if o.is_instance_of::<pyo3::types::PyBool>() || i < 0 {
            return Err(PyRuntimeError::new_err(format!(
                "Device index must not be negative (got {i})"
            )));
        }
        return Ok(Device::Torch {
            kind: TorchKind::Cuda,
            index: Some(i as usize),
        });
    }
    let s = match o.getattr("type") {
        // device objects: torch's repr is device(type='cuda', index=0); str() gives "cuda:0"
        Ok(_) => o.str()?.to_string(),
        Err(_) => o.extract::<String>().map_err(|_| {
            PyTypeError::new_err(format!(
                "expected a device (a string such as 'cpu', 'torch:cpu' or 'cuda:0', a device object or an int), got {}",
                o.get_type()
            ))
        })?,
    };
    Device::parse(&s).ok_or_else(|| {
        PyRuntimeError::new_err(format!(
            "Expected one of cpu, torch:cpu, cuda, mps device type at start of device string: {s}"
        ))
    })
}

fn cast_method(slf: PyRef<'_, PyTensor>, d: DType) -> PyResult<Py<PyAny>> {
    let py = slf.py();
    if slf.t.dtype() == d {
        return slf.into_py_any(py);
    }
    new_py(py, slf.t.to_dtype(d))?.into_py_any(py)
}

pub fn make_size(py: Python<'_>, shape: &[usize]) -> PyResult<Py<PyAny>> {
    static SIZE: pyo3::sync::PyOnceLock<Py<PyAny>> = pyo3::sync::PyOnceLock::new();
    let cls = SIZE.get_or_try_init(py, || -> PyResult<Py<PyAny>> {
        Ok(py.import("ferrotorch._size")?.getattr("Size")?.unbind())
    })?;
    Ok(cls.bind(py).call1((PyTuple::new(py, shape)?,))?.unbind())
}

impl PyTensor {
    /// An in-place op: `result` was computed out of place from self; its values go into self's
    /// memory and its history becomes self's (torch's rebase of an in-place op).
    pub fn write_result(&mut self, op: &str, result: &Tensor) -> PyResult<()> {
        self.check_inplace(op)?;
        crate::op::no_grad(|| self.t.assign_result(op, result))?;
        let Some(node) = result.node() else {
            return Ok(());
        };
        if result.dtype() != self.t.dtype() {
            return Ok(());
        }
        // self now stands for the op's result (the op's node recorded self's old history).
        match view_root(&self.t) {
            Some(base) if crate::op::is_grad_enabled() => {
                // Through a view, the base changed too: its new history takes the old base
                // outside the view and the result inside it (torch's CopySlices), and the view
                // becomes a view of that new base.
                let layout = self.t.layout().clone();
                let copy = Op::CopySlices {
                    base: base.clone(),
                    src: result.clone(),
                    base_layout: base.layout().clone(),
                    view_layout: layout.clone(),
                    storage_len: base.storage().len(),
                };
                base.set_node(Node::new("CopySlices", copy));
                let name = "AsStridedBackward0";
                let view = Op::View {
                    x: base.clone(),
                    layout,
                    name,
                };
                self.t.set_node(Node::new(name, view));
            }
            _ => self.t.set_node(node),
        }
        Ok(())
    }

    /// torch refuses in-place writes to a leaf that requires grad (or a view of one) while
    /// recording.
    pub fn check_inplace(&self, op: &str) -> PyResult<()> {
        if !crate::op::is_grad_enabled() {
            return Ok(());
        }
        if self.t.is_leaf() && self.t.requires_grad() {
            return Err(PyRuntimeError::new_err(format!(
                "a leaf Variable that requires grad is being used in an in-place operation ({op}). Use torch.no_grad() around it, or work on a clone."
            )));
        }
        if let Some(base) = view_root(&self.t) {
            if base.is_leaf() && base.requires_grad() {
                return Err(PyRuntimeError::new_err(format!(
                    "a view of a leaf Variable that requires grad is being used in an in-place operation ({op}). Use torch.no_grad() around it, or work on a clone."
                )));
            }
        }
        Ok(())
    }

    fn check_one(&self) -> PyResult<()> {
        if self.t.elem_count() != 1 {
            return Err(pyo3::exceptions::PyValueError::new_err(format!(
                "only one element tensors can be converted to Python scalars (got shape {:?})",
                self.t.shape()
            )));
        }
        Ok(())
    }

    fn with_alpha(
        &self,
        py: Python<'_>,
        other: &Bound<'_, PyAny>,
        alpha: Option<&Bound<'_, PyAny>>,
        op: BinaryOp,
    ) -> PyResult<Py<PyTensor>> {
        let o = parse_other(other, op.name())?;
        let scaled;
        let arg = match alpha.and_then(as_scalar) {
            Some(a) if a != Scalar::Int(1) => {
                let w = wrap_scalar(a);
                scaled = Tensor::binary(
                    BinaryOp::Mul,
                    o.arg(),
                    Arg {
                        tensor: &w,
                        wrapped: true,
                    },
                )?;
                Arg {
                    tensor: &scaled,
                    wrapped: o.arg().wrapped,
                }
            }
            _ => o.arg(),
        };
        new_py(
            py,
            heavy(py, self.t.elem_count(), || {
                Tensor::binary(op, Arg::tensor(&self.t), arg)
            })?,
        )
    }

    fn reduce(
        &self,
        py: Python<'_>,
        op: ReduceOp,
        dim: Option<&Bound<'_, PyAny>>,
        keepdim: bool,
        dtype: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyTensor>> {
        let dims = dims_arg(dim)?;
        let dt = dtype_arg(dtype)?;
        new_py(
            py,
            heavy(py, self.t.elem_count(), || {
                self.t.reduce(op, &dims, keepdim, dt)
            })?,
        )
    }

    fn var_std(
        &self,
        py: Python<'_>,
        dim: Option<&Bound<'_, PyAny>>,
        correction: Option<f64>,
        keepdim: bool,
        unbiased: Option<bool>,
        sqrt: bool,
    ) -> PyResult<Py<PyTensor>> {
        // torch's legacy positional form: std(True) means unbiased=True.
        let (dim, unbiased) = match dim {
            Some(d) if d.is_instance_of::<pyo3::types::PyBool>() => {
                (None, Some(d.extract::<bool>()?))
            }
            _ => (dim, unbiased),
        };
        let c = correction.unwrap_or(match unbiased {
            Some(false) => 0.0,
            _ => 1.0,
        });
        let dims = dims_arg(dim)?;
        new_py(py, self.t.var(&dims, c, keepdim, sqrt)?)
    }

    fn max_min(
        &self,
        py: Python<'_>,
        dim: Option<&Bound<'_, PyAny>>,
        keepdim: bool,
        want_max: bool,
    ) -> PyResult<Py<PyAny>> {
        match dim {
            Some(d) if !d.is_none() => {
                if let Ok(t) = d.cast::<PyTensor>() {
                    // max(other): elementwise maximum.
                    let op = if want_max {
                        BinaryOp::Maximum
                    } else {
                        BinaryOp::Minimum
                    };
                    return new_py(py, self.t.binary_t(op, &t.borrow().t)?)?.into_py_any(py);
                }
                let d: i64 = d.extract()?;
                let (v, i) = heavy(py, self.t.elem_count(), || {
                    self.t.max_min_dim(d, keepdim, want_max)
                })?;
                return_type(py, if want_max { "max" } else { "min" }, v, i)
            }
            _ => {
                if self.t.elem_count() == 0 {
                    return Err(PyRuntimeError::new_err(format!(
                        "{}(): Expected reduction dim to be specified for input.numel() == 0. Specify the reduction dim with the 'dim' argument.",
                        if want_max { "max" } else { "min" }
                    )));
                }
                let op = if want_max {
                    ReduceOp::Max
                } else {
                    ReduceOp::Min
                };
                new_py(
                    py,
                    heavy(py, self.t.elem_count(), || {
                        self.t.reduce(op, &[], false, None)
                    })?,
                )?
                .into_py_any(py)
            }
        }
    }

    fn cast_opt(&self, dtype: Option<&Bound<'_, PyAny>>) -> PyResult<Tensor> {
        Ok(match dtype_arg(dtype)? {
            Some(d) => self.t.to_dtype(d),
            None => self.t.clone(),
        })
    }
}
