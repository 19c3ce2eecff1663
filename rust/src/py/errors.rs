//! Rust errors to torch's Python exception types.

use crate::error::Error;
use pyo3::exceptions::{
    PyIndexError, PyNotImplementedError, PyRuntimeError, PyTypeError, PyValueError,
};
use pyo3::PyErr;

impl From<Error> for PyErr {
    fn from(e: Error) -> PyErr {
        let msg = e.to_string();
        match e {
            Error::Foreign { payload, .. } => match payload.downcast_ref::<PyErr>() {
                Some(original) => pyo3::Python::attach(|py| original.clone_ref(py)),
                None => PyRuntimeError::new_err(msg),
            },
            Error::DimOutOfRange { .. } | Error::IndexOutOfRange { .. } | Error::Index(_) => {
                PyIndexError::new_err(msg)
            }
            Error::Type(_) => PyTypeError::new_err(msg),
            Error::NotImplemented(_) | Error::UnsupportedDType { .. } => {
                PyNotImplementedError::new_err(msg)
            }
            Error::Value(_) => PyValueError::new_err(msg),
            _ => PyRuntimeError::new_err(msg),
        }
    }
}
