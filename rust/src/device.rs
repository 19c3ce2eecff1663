//! Where a tensor's elements live, and the switch between the two backends.
//!
//! `Cpu` is the native backend: our kernels on host memory. Every other device belongs to the
//! torch backend: the storage holds a `torch.Tensor` on that device and each op is executed by
//! the matching torch op. `torch:cpu` is torch's own CPU device, which runs the whole torch
//! backend on a machine without a GPU (and can be compared with the native backend).
//!
//! The core does not know Python: ops on torch-backed tensors go through the [`Backend`] trait,
//! which the Python bindings implement once (`py/backend.rs`) and register at import.

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use std::sync::OnceLock;

/// A torch device type the torch backend can hold tensors on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TorchKind {
    Cpu,
    Cuda,
    Mps,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Device {
    /// Host memory, ferrotorch's own kernels.
    Cpu,
    /// A torch device; ops run as torch ops.
    Torch {
        kind: TorchKind,
        index: Option<usize>,
    },
}

impl Device {
    pub fn is_native(self) -> bool {
        self == Device::Cpu
    }

    /// The name users write and see: "cpu", "torch:cpu", "cuda:0", "mps".
    pub fn name(self) -> String {
        self.spelled(true)
    }

    /// The name torch knows the device by: `torch:cpu` is torch's "cpu".
    pub fn torch_name(self) -> String {
        self.spelled(false)
    }

    fn spelled(self, ours: bool) -> String {
        let (base, index) = match self {
            Device::Cpu => ("cpu", None),
            Device::Torch { kind, index } => match kind {
                TorchKind::Cpu if ours => ("torch:cpu", index),
                TorchKind::Cpu => ("cpu", index),
                TorchKind::Cuda => ("cuda", index),
                TorchKind::Mps => ("mps", index),
            },
        };
        match index {
            Some(i) => format!("{base}:{i}"),
            None => base.into(),
        }
    }

    /// Parses a device name (see `name`); `None` when it names no device we know.
    pub fn parse(s: &str) -> Option<Device> {
        let s = s.trim();
        if s == "cpu" || s == "cpu:0" {
            return Some(Device::Cpu);
        }
        if s == "torch:cpu" || s == "torch:cpu:0" {
            return Some(Device::Torch {
                kind: TorchKind::Cpu,
                index: None,
            });
        }
        let (base, index) = match s.split_once(':') {
            Some((b, i)) => (b, Some(i.parse::<usize>().ok()?)),
            None => (s, None),
        };
        let kind = match base {
            "cuda" => TorchKind::Cuda,
            "mps" => TorchKind::Mps,
            _ => return None,
        };
        Some(Device::Torch { kind, index })
    }
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

/// An argument of a torch-backend op.
pub enum Value<'a> {
    Tensor(&'a Tensor),
    Tensors(Vec<Tensor>),
    OptTensor(Option<&'a Tensor>),
    Int(i64),
    Ints(Vec<i64>),
    Float(f64),
    Floats(Vec<f64>),
    OptFloat(Option<f64>),
    Bools(Vec<bool>),
    Bool(bool),
    Str(&'static str),
    DType(DType),
    /// A device, as the torch device name.
    Device(Device),
    /// A Python number standing for a wrapped scalar (torch's weak type).
    Scalar(crate::tensor::Scalar),
}

/// Executes ops on torch-backed tensors. Implemented by the Python bindings.
pub trait Backend: Send + Sync {
    /// Runs the torch backend's `op` on `args`; returns its result tensors.
    fn call(&self, op: &'static str, device: Device, args: &[Value]) -> Result<Vec<Tensor>>;
    /// The tensor's values on `device` (a copy; the same tensor when it is there already).
    fn to_device(&self, t: &Tensor, device: Device) -> Result<Tensor>;
}

static BACKEND: OnceLock<Box<dyn Backend>> = OnceLock::new();

/// Where factories put tensors when no device is given (torch's `set_default_device`).
static DEFAULT_DEVICE: std::sync::Mutex<Device> = std::sync::Mutex::new(Device::Cpu);

pub fn default_device() -> Device {
    *DEFAULT_DEVICE.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn set_default_device(d: Device) {
    *DEFAULT_DEVICE.lock().unwrap_or_else(|e| e.into_inner()) = d;
}

/// Registers the torch backend (once, at import of the Python module).
pub fn set_backend(b: Box<dyn Backend>) {
    let _ = BACKEND.set(b);
}

fn backend() -> Result<&'static dyn Backend> {
    BACKEND
        .get()
        .map(|b| b.as_ref())
        .ok_or_else(|| Error::runtime("the torch backend is not available in this process"))
}

/// The device an op on `inputs` runs on: `None` for the native backend, the torch device when
/// an input lives there. Tensors on two different devices raise torch's error; as in torch, a
/// native 0-d tensor may join an op on another device (it travels as a number).
pub fn op_device(op: &str, inputs: &[&Tensor]) -> Result<Option<Device>> {
    let mut found: Option<Device> = None;
    let mut native_nd = false;
    for t in inputs {
        let d = t.device();
        if d.is_native() {
            native_nd |= t.dims() > 0;
            continue;
        }
        match found {
            None => found = Some(d),
            Some(f) if f == d => {}
            Some(f) => return Err(mixed(op, f, d)),
        }
    }
    match found {
        Some(d) if native_nd => Err(mixed(op, d, Device::Cpu)),
        other => Ok(other),
    }
}

fn mixed(op: &str, a: Device, b: Device) -> Error {
    Error::runtime(format!(
        "Expected all tensors to be on the same device, but found at least two devices, {a} and {b}! (in {op})"
    ))
}

/// Runs `op` on the torch backend; its results live on `device`.
pub fn call(op: &'static str, device: Device, args: &[Value]) -> Result<Vec<Tensor>> {
    backend()?.call(op, device, args)
}

/// Runs `op` on the torch backend, which must return exactly `N` tensors.
pub fn call_n<const N: usize>(
    op: &'static str,
    device: Device,
    args: &[Value],
) -> Result<[Tensor; N]> {
    let out = call(op, device, args)?;
    let n = out.len();
    out.try_into().map_err(|_| {
        Error::runtime(format!(
            "torch backend: {op} returned {n} tensors, expected {N}"
        ))
    })
}

/// Runs a one-result `op` on the torch backend.
pub fn call1(op: &'static str, device: Device, args: &[Value]) -> Result<Tensor> {
    let [t] = call_n(op, device, args)?;
    Ok(t)
}

/// The tensor's values on `device` (see `Backend::to_device`).
pub fn to_device(t: &Tensor, device: Device) -> Result<Tensor> {
    if t.device() == device {
        return Ok(t.clone());
    }
    backend()?.to_device(t, device)
}
