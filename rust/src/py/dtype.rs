//! `ferrotorch.dtype` objects: one singleton per dtype, printed like torch's (`torch.float32`)
//! so that output matches what books print.

use crate::dtype::DType;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

#[pyclass(name = "dtype", module = "ferrotorch", frozen, eq, hash)]
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PyDType {
    pub dtype: DType,
}

#[pymethods]
impl PyDType {
    fn __repr__(&self) -> String {
        format!("torch.{}", self.dtype.name())
    }
    #[getter]
    fn is_floating_point(&self) -> bool {
        self.dtype.is_float()
    }
    #[getter]
    fn is_signed(&self) -> bool {
        self.dtype.is_signed()
    }
    #[getter]
    fn is_complex(&self) -> bool {
        false
    }
    #[getter]
    fn itemsize(&self) -> usize {
        self.dtype.size_in_bytes()
    }
    fn __reduce__(&self) -> (String,) {
        (self.dtype.name().to_string(),)
    }
}

static SINGLETONS: PyOnceLock<Vec<Py<PyDType>>> = PyOnceLock::new();

/// The unique Python object for a dtype (so `t.dtype is ferrotorch.float32` holds).
pub fn py_dtype(py: Python<'_>, dtype: DType) -> Py<PyDType> {
    let all = SINGLETONS.get_or_init(py, || {
        DType::ALL
            .iter()
            .map(|&d| Py::new(py, PyDType { dtype: d }).expect("dtype object"))
            .collect()
    });
    let i = DType::ALL
        .iter()
        .position(|&d| d == dtype)
        .expect("known dtype");
    all[i].clone_ref(py)
}
