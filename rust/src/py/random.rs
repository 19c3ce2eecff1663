//! Random sampling bindings: `Generator` objects and the default generator, the factories
//! (`rand`, `randn`, `randint`, `randperm`) and the in-place samplers on tensors.

use super::convert::sizes;
use super::pytensor::{dtype_arg, new_py, PyTensor};
use crate::device::{self, Device, TorchKind, Value};
use crate::dtype::DType;
use crate::random::{default_generator, Generator};
use crate::tensor::Tensor;
use pyo3::exceptions::{PyNotImplementedError, PyRuntimeError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use std::sync::{Arc, Mutex};

/// `ferrotorch.Generator`: a handle on a generator state (the default one or a private one).
#[pyclass(name = "Generator", module = "ferrotorch", frozen)]
pub struct PyGenerator {
    inner: GenRef,
}

#[derive(Clone)]
enum GenRef {
    Default,
    Own(Arc<Mutex<Generator>>),
}

impl GenRef {
    fn with<R>(&self, f: impl FnOnce(&mut Generator) -> R) -> R {
        match self {
            GenRef::Default => f(&mut default_generator()
                .lock()
                .unwrap_or_else(|e| e.into_inner())),
            GenRef::Own(g) => f(&mut g.lock().unwrap_or_else(|e| e.into_inner())),
        }
    }
}

fn gen_of(g: Option<&Bound<'_, PyAny>>) -> PyResult<GenRef> {
    match g {
        None => Ok(GenRef::Default),
        Some(o) if o.is_none() => Ok(GenRef::Default),
        Some(o) => Ok(o
            .cast::<PyGenerator>()
            .map_err(|_| PyTypeError::new_err("generator must be a ferrotorch.Generator"))?
            .get()
            .inner
            .clone()),
    }
}

#[pymethods]
impl PyGenerator {
    #[new]
    #[pyo3(signature = (device="cpu"))]
    fn py_new(device: &str) -> PyResult<Self> {
        if device != "cpu" {
            return Err(PyRuntimeError::new_err(format!(
                "Generator: device '{device}' is not available"
            )));
        }
        Ok(PyGenerator {
            inner: GenRef::Own(Arc::new(Mutex::new(Generator::default()))),
        })
    }
    fn manual_seed(slf: Py<Self>, py: Python<'_>, seed: i128) -> Py<Self> {
        slf.get().inner.with(|g| g.manual_seed(seed as u64));
        let _ = py;
        slf
    }
    fn initial_seed(&self) -> u64 {
        self.inner.with(|g| g.initial_seed())
    }
    fn seed(&self) -> u64 {
        self.inner.with(|g| g.seed())
    }
    fn get_state(&self, py: Python<'_>) -> PyResult<Py<PyTensor>> {
        let bytes = self.inner.with(|g| g.get_state());
        let n = bytes.len();
        new_py(py, Tensor::from_vec(bytes, &[n])?)
    }
    fn set_state(slf: Py<Self>, state: PyRef<'_, PyTensor>) -> PyResult<Py<Self>> {
        if state.t.dtype() != DType::U8 {
            return Err(PyTypeError::new_err(format!(
                "expected a ByteTensor (uint8) state, got {}",
                state.t.dtype().name()
            )));
        }
        let bytes = state.t.to_vec::<u8>();
        slf.get()
            .inner
            .with(|g| g.set_state(&bytes))
            .map_err(PyRuntimeError::new_err)?;
        Ok(slf)
    }
    #[getter]
    fn device(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        Ok(py.import("ferrotorch._device")?.getattr("CPU")?.unbind())
    }
}

#[pyfunction]
pub fn default_generator_obj() -> PyGenerator {
    PyGenerator {
        inner: GenRef::Default,
    }
}

fn float_dtype(dtype: Option<&Bound<'_, PyAny>>, op: &str) -> PyResult<DType> {
    let d = dtype_arg(dtype)?.unwrap_or(DType::F32);
    if !d.is_float() {
        return Err(PyNotImplementedError::new_err(format!(
            "\"{op}\" not implemented for '{d}'"
        )));
    }
    Ok(d)
}

/// Fills a fresh tensor of `shape` with samples computed in f32 or f64 (half types round).
fn sample(
    shape: &[usize],
    dtype: DType,
    gen: &GenRef,
    f32s: impl FnOnce(&mut Generator, &mut [f32]),
    f64s: impl FnOnce(&mut Generator, &mut [f64]),
) -> PyResult<Tensor> {
    crate::storage::check_alloc("random", shape, DType::F64)?;
    let n: usize = shape.iter().product();
    Ok(match dtype {
        DType::F64 => {
            let mut v = vec![0f64; n];
            gen.with(|g| f64s(g, &mut v));
            Tensor::from_vec(v, shape)?
        }
        _ => {
            let mut v = vec![0f32; n];
            gen.with(|g| f32s(g, &mut v));
            Tensor::from_vec(v, shape)?.to_dtype(dtype)
        }
    })
}

/// Wraps a drawn tensor, moved to the requested device (numbers are drawn on the host from
/// ferrotorch's generator, so every device sees the same values for the same seed).
fn finish(
    py: Python<'_>,
    t: Tensor,
    device: Option<&Bound<'_, PyAny>>,
    requires_grad: bool,
) -> PyResult<Py<PyTensor>> {
    let t = match super::device_arg(device)? {
        Some(d) => t.to_device(d)?,
        None => t,
    };
    let p = PyTensor::wrap(t);
    p.t.set_requires_grad(requires_grad)?;
    Py::new(py, p)
}

#[pyfunction]
#[pyo3(signature = (*size, generator=None, dtype=None, device=None, requires_grad=false, out=None))]
#[allow(clippy::too_many_arguments)]
fn rand(
    py: Python<'_>,
    size: &Bound<'_, PyTuple>,
    generator: Option<&Bound<'_, PyAny>>,
    dtype: Option<&Bound<'_, PyAny>>,
    device: Option<&Bound<'_, PyAny>>,
    requires_grad: bool,
    out: Option<&Bound<'_, PyAny>>,
) -> PyResult<Py<PyTensor>> {
    let _ = out;
    let d = float_dtype(dtype, "check_uniform_bounds")?;
    let g = gen_of(generator)?;
    let t = sample(
        &sizes(size)?,
        d,
        &g,
        |g, v| g.fill_uniform_f32(v, 0.0, 1.0),
        |g, v| g.fill_uniform_f64(v, 0.0, 1.0),
    )?;
    finish(py, t, device, requires_grad)
}

#[pyfunction]
#[pyo3(signature = (*size, generator=None, dtype=None, device=None, requires_grad=false, out=None))]
#[allow(clippy::too_many_arguments)]
fn randn(
    py: Python<'_>,
    size: &Bound<'_, PyTuple>,
    generator: Option<&Bound<'_, PyAny>>,
    dtype: Option<&Bound<'_, PyAny>>,
    device: Option<&Bound<'_, PyAny>>,
    requires_grad: bool,
    out: Option<&Bound<'_, PyAny>>,
) -> PyResult<Py<PyTensor>> {
    let _ = out;
    let d = float_dtype(dtype, "normal_kernel_cpu")?;
    let g = gen_of(generator)?;
    let t = sample(
        &sizes(size)?,
        d,
        &g,
        |g, v| g.fill_normal_f32(v, 0.0, 1.0),
        |g, v| g.fill_normal_f64(v, 0.0, 1.0),
    )?;
    finish(py, t, device, requires_grad)
}

/// randint(high, size) or randint(low, high, size).
#[pyfunction]
#[pyo3(signature = (*args, size=None, generator=None, dtype=None, device=None, requires_grad=false))]
#[allow(clippy::too_many_arguments)]
fn randint(
    py: Python<'_>,
    args: &Bound<'_, PyTuple>,
    size: Option<&Bound<'_, PyAny>>,
    generator: Option<&Bound<'_, PyAny>>,
    dtype: Option<&Bound<'_, PyAny>>,
    device: Option<&Bound<'_, PyAny>>,
    requires_grad: bool,
) -> PyResult<Py<PyTensor>> {
    let mut ints: Vec<i64> = vec![];
    let mut shape_obj = size.cloned();
    for a in args.iter() {
        if let Ok(i) = a.extract::<i64>() {
            ints.push(i);
        } else if shape_obj.is_none() {
            shape_obj = Some(a);
        } else {
            return Err(PyTypeError::new_err("randint(): too many arguments"));
        }
    }
    let (low, high) = match ints.as_slice() {
        [h] => (0, *h),
        [l, h] => (*l, *h),
        _ => {
            return Err(PyTypeError::new_err(
                "randint() expects (high, size) or (low, high, size)",
            ))
        }
    };
    let shape_obj = shape_obj
        .ok_or_else(|| PyTypeError::new_err("randint() missing required argument 'size'"))?;
    let shape = sizes(&PyTuple::new(py, [shape_obj])?)?;
    if low >= high {
        return Err(PyRuntimeError::new_err(format!(
            "random_ expects 'from' to be less than 'to', but got from={low} >= to={high}"
        )));
    }
    let d = dtype_arg(dtype)?.unwrap_or(DType::I64);
    let g = gen_of(generator)?;
    crate::storage::check_alloc("randint", &shape, DType::I64)?;
    let n: usize = shape.iter().product();
    let mut v = vec![0i64; n];
    g.with(|g| g.fill_randint(&mut v, low, high));
    finish(
        py,
        Tensor::from_vec(v, &shape)?.to_dtype(d),
        device,
        requires_grad,
    )
}

#[pyfunction]
#[pyo3(signature = (n, *, generator=None, dtype=None, device=None, requires_grad=false))]
fn randperm(
    py: Python<'_>,
    n: i64,
    generator: Option<&Bound<'_, PyAny>>,
    dtype: Option<&Bound<'_, PyAny>>,
    device: Option<&Bound<'_, PyAny>>,
    requires_grad: bool,
) -> PyResult<Py<PyTensor>> {
    if n < 0 {
        return Err(PyRuntimeError::new_err(format!(
            "n must be non-negative, got{n}"
        )));
    }
    let g = gen_of(generator)?;
    crate::storage::check_alloc("randperm", &[n as usize], DType::I64)?;
    let v = g.with(|g| g.randperm(n as usize));
    let d = dtype_arg(dtype)?.unwrap_or(DType::I64);
    finish(
        py,
        Tensor::from_vec(v, &[n as usize])?.to_dtype(d),
        device,
        requires_grad,
    )
}

/// The view whose row-major order is the order torch fills a tensor in: memory order, also for
/// transposed and strided views.
fn fill_order(t: &Tensor) -> Tensor {
    t.permute(&fill_perm(t)).expect("valid permutation")
}

/// torch's iteration order (TensorIterator): dims sorted by stride, largest outermost, ties
/// in index order.
fn fill_perm(t: &Tensor) -> Vec<i64> {
    let mut perm: Vec<i64> = (0..t.dims() as i64).collect();
    perm.sort_by_key(|&d| std::cmp::Reverse(t.stride()[d as usize]));
    perm
}

/// Fills the float tensor `t` in place with samples computed in f32 or f64 (half types
/// round), in torch's fill order. A contiguous float32/float64 tensor in host memory (a
/// weight being initialised) is drawn into directly; any other is drawn into a fresh buffer
/// and written back.
fn draw_into(
    t: &Tensor,
    gen: &GenRef,
    f32s: impl FnOnce(&mut Generator, &mut [f32]),
    f64s: impl FnOnce(&mut Generator, &mut [f64]),
) -> PyResult<()> {
    let direct = matches!(t.dtype(), DType::F32 | DType::F64) && t.storage().is_host();
    let Some((start, end)) = t.layout().contiguous_offsets().filter(|_| direct) else {
        let v = sample(fill_order(t).shape(), t.dtype(), gen, f32s, f64s)?;
        return write_back(t, v);
    };
    Ok(t.write_guard(|| {
        // SAFETY: nothing else reads or writes this storage meanwhile: we hold the GIL, and
        // only a kernel that released it could (as with every in-place write).
        unsafe {
            match t.dtype() {
                DType::F32 => gen.with(|g| f32s(g, &mut t.storage().as_mut_slice()[start..end])),
                _ => gen.with(|g| f64s(g, &mut t.storage().as_mut_slice()[start..end])),
            }
        }
        Ok(())
    })?)
}

/// Writes `values` (in fill order) into the tensor in place.
fn write_back(t: &Tensor, values: Tensor) -> PyResult<()> {
    Ok(fill_order(t).copy_(&values)?)
}

fn check_float(t: &Tensor, op: &str) -> PyResult<()> {
    if !t.dtype().is_float() {
        return Err(PyNotImplementedError::new_err(format!(
            "\"{op}\" not implemented for '{}'",
            t.dtype()
        )));
    }
    Ok(())
}

#[pyfunction]
#[pyo3(signature = (t, mean=0.0, std=1.0, generator=None))]
fn normal_(
    t: PyRef<'_, PyTensor>,
    mean: f64,
    std: f64,
    generator: Option<&Bound<'_, PyAny>>,
) -> PyResult<()> {
    t.check_inplace("normal_")?;
    check_float(&t.t, "normal_kernel_cpu")?;
    if std < 0.0 {
        return Err(PyRuntimeError::new_err(format!(
            "normal expects std >= 0.0, but found std {std}"
        )));
    }
    let g = gen_of(generator)?;
    let contiguous = t.t.is_contiguous();
    draw_into(
        &t.t,
        &g,
        |g, v| {
            if contiguous {
                g.fill_normal_f32(v, mean, std)
            } else {
                g.fill_normal_scalar_f32(v, mean, std)
            }
        },
        |g, v| {
            if contiguous {
                g.fill_normal_f64(v, mean, std)
            } else {
                g.fill_normal_scalar_f64(v, mean, std)
            }
        },
    )
}

#[pyfunction]
#[pyo3(signature = (t, from_=0.0, to=1.0, generator=None))]
fn uniform_(
    t: PyRef<'_, PyTensor>,
    from_: f64,
    to: f64,
    generator: Option<&Bound<'_, PyAny>>,
) -> PyResult<()> {
    t.check_inplace("uniform_")?;
    check_float(&t.t, "check_uniform_bounds")?;
    if !from_.is_finite() || !to.is_finite() {
        return Err(PyRuntimeError::new_err(format!(
            "uniform_ expects finite bounds, but found from={from_} and to={to}"
        )));
    }
    if from_ > to {
        return Err(PyRuntimeError::new_err(format!(
            "uniform_ expects to return a [from, to) range, but found from={from_} > to={to}"
        )));
    }
    let g = gen_of(generator)?;
    draw_into(
        &t.t,
        &g,
        |g, v| g.fill_uniform_f32(v, from_, to),
        |g, v| g.fill_uniform_f64(v, from_, to),
    )
}

#[pyfunction]
#[pyo3(signature = (t, lambd=1.0, generator=None))]
fn exponential_(
    t: PyRef<'_, PyTensor>,
    lambd: f64,
    generator: Option<&Bound<'_, PyAny>>,
) -> PyResult<()> {
    t.check_inplace("exponential_")?;
    check_float(&t.t, "exponential_cpu")?;
    if lambd.is_nan() || lambd <= 0.0 {
        return Err(PyRuntimeError::new_err(format!(
            "exponential_ expects lambda > 0.0, but found lambda={lambd}"
        )));
    }
    let g = gen_of(generator)?;
    draw_into(
        &t.t,
        &g,
        |g, v| g.fill_exponential_f32(v, lambd),
        |g, v| g.fill_exponential_f64(v, lambd),
    )
}

/// `random_(from=0, to=None)`: integers in [from, to), or with neither bound torch's default
/// range for the dtype: [0, 2^digits] for floats (the integers they hold exactly), [0, max] for
/// integers. int64 and float64 take one 64-bit draw per element, the rest one 32-bit draw.
#[pyfunction]
#[pyo3(signature = (t, from_=None, to=None, generator=None))]
fn random_(
    t: PyRef<'_, PyTensor>,
    from_: Option<i64>,
    to: Option<i64>,
    generator: Option<&Bound<'_, PyAny>>,
) -> PyResult<()> {
    t.check_inplace("random_")?;
    let g = gen_of(generator)?;
    let target = fill_order(&t.t);
    let n = target.elem_count();
    let d = t.t.dtype();
    let mut v = vec![0i64; n];
    match (from_, to) {
        (low, Some(high)) => {
            let low = low.unwrap_or(0);
            if low >= high {
                return Err(PyRuntimeError::new_err(format!(
                    "random_ expects 'from' to be less than 'to', but got from={low} >= to={high}"
                )));
            }
            let (lo, hi): (i64, i64) = match d {
                DType::Bool => (0, 1),
                DType::U8 => (0, 255),
                DType::I32 => (i32::MIN as i64, i32::MAX as i64),
                DType::I64 => (i64::MIN, i64::MAX),
                DType::F16 => (-(1 << 11), 1 << 11),
                DType::BF16 => (-(1 << 8), 1 << 8),
                DType::F32 => (-(1 << 24), 1 << 24),
                DType::F64 => (-(1 << 53), 1 << 53),
            };
            if low < lo || low > hi {
                return Err(PyRuntimeError::new_err(format!(
                    "from is out of bounds for {}",
                    d.name()
                )));
            }
            if high - 1 < lo || high - 1 > hi {
                return Err(PyRuntimeError::new_err(format!(
                    "to - 1 is out of bounds for {}",
                    d.name()
                )));
            }
            g.with(|g| g.fill_randint(&mut v, low, high));
        }
        (Some(low), None) if low != 0 => {
            return Err(PyRuntimeError::new_err(format!(
                "random_(from={low}) without 'to' is not supported; pass random_(from, to)"
            )))
        }
        _ => {
            let wide = matches!(d, DType::F64 | DType::I64);
            let modulus: u64 = match d {
                DType::Bool => 2,
                DType::U8 => 1 << 8,
                DType::I32 => 1 << 31,
                DType::I64 => 1 << 63,
                DType::F16 => (1 << 11) + 1,
                DType::BF16 => (1 << 8) + 1,
                DType::F32 => (1 << 24) + 1,
                DType::F64 => (1 << 53) + 1,
            };
            g.with(|g| {
                for o in v.iter_mut() {
                    let r = if wide {
                        g.random_u64()
                    } else {
                        g.random_u32() as u64
                    };
                    *o = (r % modulus) as i64;
                }
            });
        }
    }
    let values = Tensor::from_vec(v, target.shape())?.to_dtype(d);
    write_back(&t.t, values)
}

/// bernoulli_(p) with a float p, or with a tensor of probabilities broadcast to the shape.
#[pyfunction]
#[pyo3(signature = (t, p=None, generator=None))]
fn bernoulli_(
    t: PyRef<'_, PyTensor>,
    p: Option<&Bound<'_, PyAny>>,
    generator: Option<&Bound<'_, PyAny>>,
) -> PyResult<()> {
    t.check_inplace("bernoulli_")?;
    let g = gen_of(generator)?;
    let target = fill_order(&t.t);
    let shape = target.shape().to_vec();
    let values = match p {
        Some(pt) if pt.cast::<PyTensor>().is_ok() => {
            let probs = pt
                .cast::<PyTensor>()?
                .borrow()
                .t
                .broadcast_as(t.t.shape())?;
            // The probabilities follow the target into its fill order.
            let probs = probs.permute(&fill_perm(&t.t))?;
            bernoulli_probs(&probs, &g)?
        }
        other => {
            let p: f64 = match other {
                Some(v) if !v.is_none() => v.extract()?,
                _ => 0.5,
            };
            if !(0.0..=1.0).contains(&p) {
                return Err(PyRuntimeError::new_err(format!(
                    "bernoulli_ expects p to be in [0, 1], but got p={p}"
                )));
            }
            if let Some(values) = bernoulli_on_gpu(&t.t, &shape, p, &g)? {
                return write_back(&t.t, values);
            }
            return draw_into(
                &t.t,
                &g,
                |g, v| g.fill_bernoulli_scalar_f32(v, p),
                |g, v| g.fill_bernoulli_scalar_f64(v, p),
            );
        }
    };
    write_back(&t.t, values)
}

/// A GPU tensor's bernoulli(p) mask drawn on the GPU by torch's generator there, seeded with
/// a draw from `g`: dropout masks never cross from the host, and `ferrotorch.manual_seed`
/// still makes them reproducible (they differ from the CPU's, as torch's do). `None` on the
/// host and on `torch:cpu`, which draw from `g` itself (the same values as the native backend).
/// `shape` is the target's in fill order (see `fill_order`).
fn bernoulli_on_gpu(t: &Tensor, shape: &[usize], p: f64, g: &GenRef) -> PyResult<Option<Tensor>> {
    let dev = t.device();
    let on_gpu = matches!(
        dev,
        Device::Torch {
            kind: TorchKind::Cuda | TorchKind::Mps,
            ..
        }
    );
    if !on_gpu {
        return Ok(None);
    }
    let seed = g.with(|g| g.random_u64()) >> 1; // a non-negative i64
    let args = [
        Value::Ints(shape.iter().map(|&d| d as i64).collect()),
        Value::Float(p),
        Value::DType(t.dtype()),
        Value::Int(seed as i64),
        Value::Device(dev),
    ];
    Ok(Some(device::call1("bernoulli", dev, &args)?))
}

fn bernoulli_probs(probs: &Tensor, g: &GenRef) -> PyResult<Tensor> {
    let check = |v: &[f64]| -> PyResult<()> {
        if v.iter().any(|&x| !(0.0..=1.0).contains(&x)) {
            return Err(PyRuntimeError::new_err(
                "Expected p_in >= 0 && p_in <= 1 to be true, but got false.",
            ));
        }
        Ok(())
    };
    let shape = probs.shape().to_vec();
    Ok(if probs.dtype() == DType::F64 {
        let p = probs.to_vec::<f64>();
        check(&p)?;
        Tensor::from_vec(g.with(|g| g.bernoulli_tensor_f64(&p)), &shape)?
    } else {
        let p = probs.to_vec_as::<f32>();
        check(&p.iter().map(|&x| x as f64).collect::<Vec<_>>())?;
        Tensor::from_vec(g.with(|g| g.bernoulli_tensor_f32(&p)), &shape)?.to_dtype(probs.dtype())
    })
}

/// torch.bernoulli(probs): a new tensor of 0/1 draws with the probabilities' dtype.
#[pyfunction]
#[pyo3(signature = (input, *, generator=None))]
fn bernoulli(
    py: Python<'_>,
    input: PyRef<'_, PyTensor>,
    generator: Option<&Bound<'_, PyAny>>,
) -> PyResult<Py<PyTensor>> {
    check_float(&input.t, "bernoulli_tensor_cpu_p_")?;
    let g = gen_of(generator)?;
    // Drawn on the host from ferrotorch's generator, then put where the probabilities are.
    new_py(
        py,
        bernoulli_probs(&input.t, &g)?.to_device(input.t.device())?,
    )
}

#[pyfunction]
#[pyo3(signature = (input, num_samples, replacement=false, *, generator=None))]
fn multinomial(
    py: Python<'_>,
    input: PyRef<'_, PyTensor>,
    num_samples: i64,
    replacement: bool,
    generator: Option<&Bound<'_, PyAny>>,
) -> PyResult<Py<PyTensor>> {
    let t = &input.t;
    check_float(t, "multinomial")?;
    if t.dims() == 0 || t.dims() > 2 {
        return Err(PyRuntimeError::new_err(format!(
            "prob_dist must be 1 or 2 dim (got shape {:?})",
            t.shape()
        )));
    }
    if num_samples <= 0 {
        return Err(PyRuntimeError::new_err(format!(
            "cannot sample n_sample <= 0 samples (got {num_samples})"
        )));
    }
    let (rows, cats) = if t.dims() == 1 {
        (1, t.shape()[0])
    } else {
        (t.shape()[0], t.shape()[1])
    };
    let g = gen_of(generator)?;
    let n = num_samples as usize;
    let out = if t.dtype() == DType::F64 {
        let p = t.to_vec::<f64>();
        g.with(|g| g.multinomial_f64(&p, rows, cats, n, replacement))
    } else {
        let p = t.to_vec_as::<f32>();
        g.with(|g| g.multinomial_f32(&p, rows, cats, n, replacement))
    }
    .map_err(PyRuntimeError::new_err)?;
    let shape: Vec<usize> = if t.dims() == 1 {
        vec![n]
    } else {
        vec![rows, n]
    };
    new_py(py, Tensor::from_vec(out, &shape)?.to_device(t.device())?)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyGenerator>()?;
    m.add_function(wrap_pyfunction!(default_generator_obj, m)?)?;
    m.add_function(wrap_pyfunction!(rand, m)?)?;
    m.add_function(wrap_pyfunction!(randn, m)?)?;
    m.add_function(wrap_pyfunction!(randint, m)?)?;
    m.add_function(wrap_pyfunction!(randperm, m)?)?;
    m.add_function(wrap_pyfunction!(normal_, m)?)?;
    m.add_function(wrap_pyfunction!(uniform_, m)?)?;
    m.add_function(wrap_pyfunction!(exponential_, m)?)?;
    m.add_function(wrap_pyfunction!(random_, m)?)?;
    m.add_function(wrap_pyfunction!(bernoulli_, m)?)?;
    m.add_function(wrap_pyfunction!(bernoulli, m)?)?;
    m.add_function(wrap_pyfunction!(multinomial, m)?)?;
    Ok(())
}
