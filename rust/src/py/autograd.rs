//! Autograd bindings: grad_fn objects, hooks, `autograd.grad`, grad mode, and custom Python
//! `Function`s (their backward is called from the Rust tape).

use super::pytensor::{new_py, PyTensor};
use crate::backprop::{self, Sink};
use crate::error::{Error, Result};
use crate::op::{self, Node, Op};
use crate::tensor::{GradHook, Scalar, Tensor};
use pyo3::exceptions::{PyRuntimeError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};
use pyo3::IntoPyObjectExt;
use std::sync::Arc;

/// A tensor's `grad_fn`: the backward node that produced it.
#[pyclass(name = "Node", module = "ferrotorch.autograd", frozen)]
pub struct PyNode {
    pub node: Arc<Node>,
}

#[pymethods]
impl PyNode {
    fn name(&self) -> &'static str {
        self.node.name
    }
    fn __repr__(slf: &Bound<'_, Self>) -> String {
        format!(
            "<{} object at {:#x}>",
            slf.get().node.name,
            slf.as_ptr() as usize
        )
    }
    /// ((next grad_fn or None, 0), ...) for each input, like torch.
    #[getter]
    fn next_functions(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let items = self
            .node
            .edges()
            .iter()
            .map(|e| -> PyResult<Py<PyAny>> {
                let f: Py<PyAny> = match &e.node {
                    Some(n) => Py::new(py, PyNode { node: n.clone() })?.into_py_any(py)?,
                    None if e.tensor.requires_grad() => "AccumulateGrad".into_py_any(py)?,
                    None => py.None(),
                };
                (f, 0).into_py_any(py)
            })
            .collect::<PyResult<Vec<_>>>()?;
        Ok(PyTuple::new(py, items)?.into_any().unbind())
    }
}

/// A Python exception raised inside a callback, carried through the core unchanged (it is
/// raised again, with its type and traceback, when the error reaches Python).
pub(crate) fn py_err(e: PyErr) -> Error {
    let msg = Python::attach(|py| {
        let msg = e.value(py).str().map(|s| s.to_string()).unwrap_or_default();
        format!(
            "{}: {msg}",
            e.get_type(py)
                .name()
                .map(|n| n.to_string())
                .unwrap_or_default()
        )
    });
    Error::Foreign {
        msg,
        payload: Arc::new(e),
    }
}

/// Wraps a Python callable `hook(tensor)` run after a leaf's `.grad` is accumulated; what it
/// returns is ignored, as in torch.
pub fn py_post_accumulate_hook(hook: Py<PyAny>) -> GradHook {
    Arc::new(move |t: &Tensor| -> Result<Option<Tensor>> {
        Python::attach(|py| {
            let arg = new_py(py, t.clone()).map_err(py_err)?;
            hook.call1(py, (arg,)).map_err(py_err)?;
            Ok(None)
        })
    })
}

/// Wraps a Python callable `hook(grad) -> Tensor | None` for the core.
pub fn py_hook(hook: Py<PyAny>) -> GradHook {
    Arc::new(move |g: &Tensor| -> Result<Option<Tensor>> {
        Python::attach(|py| {
            let arg = new_py(py, g.clone()).map_err(py_err)?;
            let r = hook.call1(py, (arg,)).map_err(py_err)?;
            if r.is_none(py) {
                return Ok(None);
            }
            let name = || {
                hook.bind(py)
                    .getattr("__name__")
                    .map_or_else(|_| "hook".to_string(), |n| n.to_string())
            };
            let t = r.bind(py).cast::<PyTensor>().map_err(|_| {
                Error::Type(format!(
                    "hook '{}' must return a Tensor or None, got {}",
                    name(),
                    r.bind(py).get_type()
                ))
            })?;
            let new = t.borrow().t.clone();
            if new.shape() != g.shape() {
                return Err(Error::runtime(format!(
                    "hook '{}' has changed the size of value: the gradient has shape {:?}, the hook returned {:?}",
                    name(),
                    g.shape(),
                    new.shape()
                )));
            }
            Ok(Some(new))
        })
    })
}

/// The gradient a backward starts from: ones for a scalar, else the given one.
pub fn root_grad(t: &Tensor, gradient: Option<Tensor>) -> PyResult<Tensor> {
    if !t.requires_grad() {
        return Err(PyRuntimeError::new_err(
            "element 0 of tensors does not require grad and does not have a grad_fn",
        ));
    }
    match gradient {
        Some(g) => {
            if g.shape() != t.shape() {
                return Err(PyRuntimeError::new_err(format!(
                    "Mismatch in shape: grad_output[0] has a shape of {:?} and output[0] has a shape of {:?}.",
                    g.shape(),
                    t.shape()
                )));
            }
            Ok(g)
        }
        None => {
            if t.elem_count() != 1 {
                return Err(PyRuntimeError::new_err(format!(
                    "grad can be implicitly created only for scalar outputs (the output has shape {:?}; pass gradient=... to backward)",
                    t.shape()
                )));
            }
            Ok(Tensor::full_on(
                t.shape(),
                Scalar::Int(1),
                t.dtype(),
                t.device(),
            )?)
        }
    }
}

pub fn tensor_list(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Vec<Tensor>> {
    if let Ok(t) = obj.cast::<PyTensor>() {
        return Ok(vec![t.borrow().t.clone()]);
    }
    obj.try_iter()?
        .map(|o| {
            let o = o?;
            o.cast::<PyTensor>()
                .map(|t| t.borrow().t.clone())
                .map_err(|_| PyTypeError::new_err(format!("{what} must be Tensors")))
        })
        .collect()
}

/// torch.autograd.grad.
#[pyfunction]
#[pyo3(signature = (outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=false, allow_unused=None))]
fn grad(
    py: Python<'_>,
    outputs: &Bound<'_, PyAny>,
    inputs: &Bound<'_, PyAny>,
    grad_outputs: Option<&Bound<'_, PyAny>>,
    retain_graph: Option<bool>,
    create_graph: bool,
    allow_unused: Option<bool>,
) -> PyResult<Py<PyAny>> {
    let outs = tensor_list(outputs, "outputs")?;
    let ins = tensor_list(inputs, "inputs")?;
    for (i, t) in ins.iter().enumerate() {
        if !t.requires_grad() {
            return Err(PyRuntimeError::new_err(format!(
                "One of the differentiated Tensors (input {i}) does not require grad"
            )));
        }
    }
    let gos: Vec<Option<Tensor>> = match grad_outputs {
        None => vec![None; outs.len()],
        Some(g) if g.is_none() => vec![None; outs.len()],
        Some(g) => {
            if let Ok(t) = g.cast::<PyTensor>() {
                vec![Some(t.borrow().t.clone())]
            } else {
                g.try_iter()?
                    .map(|o| {
                        let o = o?;
                        Ok(if o.is_none() {
                            None
                        } else {
                            Some(o.cast::<PyTensor>()?.borrow().t.clone())
                        })
                    })
                    .collect::<PyResult<_>>()?
            }
        }
    };
    if gos.len() != outs.len() {
        return Err(PyRuntimeError::new_err(format!(
            "grad requires one gradient per output: got {} outputs and {} grad_outputs",
            outs.len(),
            gos.len()
        )));
    }
    let roots = outs
        .iter()
        .zip(gos)
        .map(|(o, g)| Ok((o.clone(), root_grad(o, g)?)))
        .collect::<PyResult<Vec<_>>>()?;
    let retain = retain_graph.unwrap_or(create_graph);
    let ins2 = ins.clone();
    let result =
        py.detach(move || backprop::backward(&roots, Sink::Inputs(&ins2), retain, create_graph))?;
    let mut items = Vec::with_capacity(result.len());
    for (i, g) in result.into_iter().enumerate() {
        match g {
            Some(g) => items.push(new_py(py, g)?.into_py_any(py)?),
            None => {
                if allow_unused != Some(true) {
                    return Err(PyRuntimeError::new_err(format!(
                        "One of the differentiated Tensors (input {i}) appears to not have been used in the graph. Set allow_unused=True if this is the desired behavior."
                    )));
                }
                items.push(py.None());
            }
        }
    }
    Ok(PyTuple::new(py, items)?.into_any().unbind())
}

#[pyfunction]
fn is_grad_enabled() -> bool {
    op::is_grad_enabled()
}

/// Sets grad mode for this thread; returns the previous mode.
#[pyfunction]
fn _set_grad_enabled(enabled: bool) -> bool {
    op::set_grad_enabled(enabled)
}

/// Attaches a Python `Function`'s backward to its outputs. `backward(*grads)` returns one
/// gradient (or None) per tensor in `inputs`. Several outputs each get a node calling backward
/// with zeros for the other outputs' gradients (backward is linear in them, so the sums agree).
#[pyfunction]
fn _attach_function(
    py: Python<'_>,
    outputs: &Bound<'_, PyList>,
    inputs: &Bound<'_, PyList>,
    backward: Py<PyAny>,
    name: String,
) -> PyResult<Py<PyAny>> {
    let ins: Vec<Tensor> = inputs
        .iter()
        .map(|o| Ok(o.cast::<PyTensor>()?.borrow().t.clone()))
        .collect::<PyResult<_>>()?;
    let outs: Vec<Tensor> = outputs
        .iter()
        .map(|o| Ok(o.cast::<PyTensor>()?.borrow().t.clone()))
        .collect::<PyResult<_>>()?;
    let shapes: Vec<(Vec<usize>, crate::DType, crate::device::Device)> = outs
        .iter()
        .map(|t| (t.shape().to_vec(), t.dtype(), t.device()))
        .collect();
    let n_in = ins.len();
    let backward = Arc::new(backward);
    let leaked: &'static str = Box::leak(name.into_boxed_str());
    let mut results = Vec::with_capacity(outs.len());
    for (k, out) in outs.iter().enumerate() {
        let bw = backward.clone();
        let shapes = shapes.clone();
        let f = Arc::new(move |grads: &[Tensor]| -> Result<Vec<Option<Tensor>>> {
            Python::attach(|py| {
                let mut args = Vec::with_capacity(shapes.len());
                for (j, (shape, dt, dev)) in shapes.iter().enumerate() {
                    let g = if j == k {
                        grads[0].clone()
                    } else {
                        Tensor::full_on(shape, Scalar::Int(0), *dt, *dev)?
                    };
                    args.push(new_py(py, g).map_err(py_err)?);
                }
                let r = bw
                    .call1(py, PyTuple::new(py, args).map_err(py_err)?)
                    .map_err(py_err)?;
                let r = r.bind(py);
                let items: Vec<Bound<'_, PyAny>> = if r.cast::<PyTuple>().is_ok() {
                    r.try_iter()
                        .map_err(py_err)?
                        .collect::<PyResult<_>>()
                        .map_err(py_err)?
                } else {
                    vec![r.clone()]
                };
                if items.len() != n_in {
                    return Err(Error::runtime(format!(
                        "function backward returned an incorrect number of gradients (expected {n_in}, got {})",
                        items.len()
                    )));
                }
                items
                    .into_iter()
                    .map(|o| {
                        if o.is_none() {
                            Ok(None)
                        } else {
                            Ok(Some(
                                o.cast::<PyTensor>()
                                    .map_err(|_| {
                                        Error::Type("backward must return Tensors or None".into())
                                    })?
                                    .borrow()
                                    .t
                                    .clone(),
                            ))
                        }
                    })
                    .collect()
            })
        });
        let node = Node::new(
            leaked,
            Op::External {
                inputs: ins.clone(),
                backward: f,
            },
        );
        results.push(new_py(py, out.detach().with_node(node))?);
    }
    Ok(PyList::new(py, results)?.into_any().unbind())
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyNode>()?;
    m.add_function(wrap_pyfunction!(grad, m)?)?;
    m.add_function(wrap_pyfunction!(is_grad_enabled, m)?)?;
    m.add_function(wrap_pyfunction!(_set_grad_enabled, m)?)?;
    m.add_function(wrap_pyfunction!(_attach_function, m)?)?;
    Ok(())
}
