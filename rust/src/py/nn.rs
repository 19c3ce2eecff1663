//! Bindings for the fused nn ops and optimizer steps (`crate::tensor::nn`).

use pyo3::prelude::*;

use super::pytensor::{new_py, PyTensor};
use crate::dtype::DType;
use crate::kernels::optim::{AdamHyper, SgdHyper};
use crate::tensor::nn::{self, Reduction};
use crate::tensor::Tensor;

fn ts(v: &[PyRef<'_, PyTensor>]) -> Vec<Tensor> {
    v.iter().map(|t| t.t.clone()).collect()
}

/// `input @ weight.T + bias` as one op (batch dims folded into one GEMM).
#[pyfunction]
#[pyo3(signature = (input, weight, bias=None))]
fn linear(
    py: Python<'_>,
    input: PyRef<'_, PyTensor>,
    weight: PyRef<'_, PyTensor>,
    bias: Option<PyRef<'_, PyTensor>>,
) -> PyResult<Py<PyTensor>> {
    let (x, w, b) = (input.t.clone(), weight.t.clone(), bias.map(|b| b.t.clone()));
    let out = py.detach(|| x.linear(&w, b.as_ref()))?;
    new_py(py, out)
}

/// Fused layer norm over the trailing dims `normalized_shape`.
#[pyfunction]
#[pyo3(signature = (input, normalized_shape, weight=None, bias=None, eps=1e-5))]
fn layer_norm(
    py: Python<'_>,
    input: PyRef<'_, PyTensor>,
    normalized_shape: Vec<usize>,
    weight: Option<PyRef<'_, PyTensor>>,
    bias: Option<PyRef<'_, PyTensor>>,
    eps: f64,
) -> PyResult<Py<PyTensor>> {
    let (x, w, b) = (
        input.t.clone(),
        weight.map(|w| w.t.clone()),
        bias.map(|b| b.t.clone()),
    );
    let out = py.detach(|| x.layer_norm(&normalized_shape, w.as_ref(), b.as_ref(), eps))?;
    new_py(py, out)
}

/// A loss's input, target and optional weight as core tensors.
fn loss_operands(
    input: &PyTensor,
    target: &PyTensor,
    weight: Option<PyRef<'_, PyTensor>>,
) -> (Tensor, Tensor, Option<Tensor>) {
    (
        input.t.clone(),
        target.t.clone(),
        weight.map(|w| w.t.clone()),
    )
}

/// Fused cross-entropy of logits (N, C) against int64 class indices (N,).
#[pyfunction]
#[pyo3(signature = (input, target, weight=None, ignore_index=-100, label_smoothing=0.0, reduction="mean"))]
fn cross_entropy(
    py: Python<'_>,
    input: PyRef<'_, PyTensor>,
    target: PyRef<'_, PyTensor>,
    weight: Option<PyRef<'_, PyTensor>>,
    ignore_index: i64,
    label_smoothing: f64,
    reduction: &str,
) -> PyResult<Py<PyTensor>> {
    let r = Reduction::parse(reduction)?;
    let (x, t, w) = loss_operands(&input, &target, weight);
    let out = py.detach(|| x.cross_entropy(&t, w.as_ref(), ignore_index, label_smoothing, r))?;
    new_py(py, out)
}

/// Fused binary cross-entropy of probabilities against targets of the same shape.
#[pyfunction]
#[pyo3(signature = (input, target, weight=None, reduction="mean"))]
fn binary_cross_entropy(
    py: Python<'_>,
    input: PyRef<'_, PyTensor>,
    target: PyRef<'_, PyTensor>,
    weight: Option<PyRef<'_, PyTensor>>,
    reduction: &str,
) -> PyResult<Py<PyTensor>> {
    let r = Reduction::parse(reduction)?;
    let (x, t, w) = loss_operands(&input, &target, weight);
    let out = py.detach(|| x.binary_cross_entropy(&t, w.as_ref(), r))?;
    new_py(py, out)
}

/// Fused scaled dot-product attention over (N, L, E) slices with an optional additive mask.
#[pyfunction]
#[pyo3(signature = (query, key, value, mask=None, is_causal=false, scale=1.0, keep=None))]
#[allow(clippy::too_many_arguments)]
fn _attention(
    py: Python<'_>,
    query: PyRef<'_, PyTensor>,
    key: PyRef<'_, PyTensor>,
    value: PyRef<'_, PyTensor>,
    mask: Option<PyRef<'_, PyTensor>>,
    is_causal: bool,
    scale: f64,
    keep: Option<PyRef<'_, PyTensor>>,
) -> PyResult<Py<PyTensor>> {
    let (q, k, v) = (query.t.clone(), key.t.clone(), value.t.clone());
    let (m, kp) = (mask.map(|m| m.t.clone()), keep.map(|kp| kp.t.clone()));
    let out =
        py.detach(|| Tensor::attention(&q, &k, &v, m.as_ref(), is_causal, scale, kp.as_ref()))?;
    new_py(py, out)
}

/// One fused Adam/AdamW step over all parameters (in place).
#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn _adam_step(
    py: Python<'_>,
    params: Vec<PyRef<'_, PyTensor>>,
    grads: Vec<PyRef<'_, PyTensor>>,
    exp_avgs: Vec<PyRef<'_, PyTensor>>,
    exp_avg_sqs: Vec<PyRef<'_, PyTensor>>,
    max_exp_avg_sqs: Option<Vec<PyRef<'_, PyTensor>>>,
    steps: Vec<f64>,
    lr: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
    weight_decay: f64,
    maximize: bool,
    decoupled: bool,
) -> PyResult<()> {
    let n = params.len();
    let lens = [grads.len(), exp_avgs.len(), exp_avg_sqs.len(), steps.len()];
    if lens.iter().any(|&l| l != n) || max_exp_avg_sqs.as_ref().is_some_and(|m| m.len() != n) {
        return Err(pyo3::exceptions::PyValueError::new_err(format!(
            "_adam_step: {n} parameters but {lens:?} gradients/exp_avgs/exp_avg_sqs/steps"
        )));
    }
    let (p, g, m, v) = (ts(&params), ts(&grads), ts(&exp_avgs), ts(&exp_avg_sqs));
    let mx = max_exp_avg_sqs.map(|m| ts(&m));
    let hyper = AdamHyper {
        lr,
        beta1,
        beta2,
        eps,
        weight_decay,
        maximize,
        decoupled,
        step: 0.0,
    };
    py.detach(|| nn::adam_step(&p, &g, &m, &v, mx.as_deref(), &steps, hyper))?;
    Ok(())
}

/// One fused SGD step over all parameters (in place); returns the momentum buffers, created
/// where they were None.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn _sgd_step(
    py: Python<'_>,
    params: Vec<PyRef<'_, PyTensor>>,
    grads: Vec<PyRef<'_, PyTensor>>,
    momentum_buffers: Vec<Option<PyRef<'_, PyTensor>>>,
    lr: f64,
    momentum: f64,
    dampening: f64,
    weight_decay: f64,
    nesterov: bool,
    maximize: bool,
) -> PyResult<Vec<Option<Py<PyTensor>>>> {
    let n = params.len();
    if grads.len() != n || momentum_buffers.len() != n {
        return Err(pyo3::exceptions::PyValueError::new_err(format!(
            "_sgd_step: {n} parameters but {} gradients and {} momentum buffers",
            grads.len(),
            momentum_buffers.len()
        )));
    }
    let (p, g) = (ts(&params), ts(&grads));
    let bufs: Vec<Option<Tensor>> = momentum_buffers
        .iter()
        .map(|b| b.as_ref().map(|b| b.t.clone()))
        .collect();
    let hyper = SgdHyper {
        lr,
        momentum,
        dampening,
        weight_decay,
        nesterov,
        maximize,
    };
    let out = py.detach(|| nn::sgd_step(&p, &g, &bufs, hyper))?;
    out.into_iter()
        .map(|b| b.map(|b| new_py(py, b)).transpose())
        .collect()
}

/// Whether the fused optimizer steps take these lists of tensors (None entries are skipped):
/// every tensor contiguous float32/float64.
#[pyfunction]
#[pyo3(signature = (*lists))]
fn _fusable(lists: Vec<Vec<Option<PyRef<'_, PyTensor>>>>) -> bool {
    lists
        .iter()
        .flatten()
        .flatten()
        .all(|t| matches!(t.t.dtype(), DType::F32 | DType::F64) && t.t.is_contiguous())
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(_fusable, m)?)?;
    m.add_function(wrap_pyfunction!(linear, m)?)?;
    m.add_function(wrap_pyfunction!(layer_norm, m)?)?;
    m.add_function(wrap_pyfunction!(cross_entropy, m)?)?;
    m.add_function(wrap_pyfunction!(binary_cross_entropy, m)?)?;
    m.add_function(wrap_pyfunction!(_attention, m)?)?;
    m.add_function(wrap_pyfunction!(_adam_step, m)?)?;
    m.add_function(wrap_pyfunction!(_sgd_step, m)?)?;
    Ok(())
}
