//! Bindings for the safetensors reader/writer in `crate::io`.

use std::collections::HashMap;
use std::path::PathBuf;

use pyo3::prelude::*;

use super::pytensor::{new_py, PyTensor};
use crate::tensor::Tensor;

/// Writes `(name, tensor)` pairs and string metadata to `path` atomically.
#[pyfunction]
fn _safetensors_save(
    py: Python<'_>,
    path: PathBuf,
    tensors: Vec<(String, PyRef<'_, PyTensor>)>,
    metadata: HashMap<String, String>,
) -> PyResult<()> {
    let tensors: Vec<(String, Tensor)> =
        tensors.into_iter().map(|(n, t)| (n, t.t.clone())).collect();
    py.detach(|| crate::io::save(&path, &tensors, metadata))?;
    Ok(())
}

/// Reads every tensor (file order) and the string metadata of a safetensors file, validated.
#[pyfunction]
#[allow(clippy::type_complexity)]
fn _safetensors_load(
    py: Python<'_>,
    path: PathBuf,
) -> PyResult<(Vec<(String, Py<PyTensor>)>, HashMap<String, String>)> {
    let (tensors, meta) = py.detach(|| crate::io::load(&path))?;
    let tensors = tensors
        .into_iter()
        .map(|(n, t)| Ok((n, new_py(py, t)?)))
        .collect::<PyResult<Vec<_>>>()?;
    Ok((tensors, meta))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(_safetensors_save, m)?)?;
    m.add_function(wrap_pyfunction!(_safetensors_load, m)?)?;
    Ok(())
}
