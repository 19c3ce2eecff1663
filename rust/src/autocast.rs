//! Automatic mixed precision (torch's `autocast`): while a region is on for a device type, the
//! matrix products (matmul, mm, bmm, linear, attention) cast their floating inputs to a lower
//! precision dtype (bfloat16 or float16), and ops that need range run in float32. The casts are
//! ordinary recorded ops, so gradients flow back to the float32 parameters in float32.
//!
//! Which ops do what follows torch's lists. On every device type: the products in lower
//! precision. On GPUs (`cuda`, `mps`) layer norm and softmax also run in float32, as torch's
//! CUDA lists say; on the CPU they keep their input's dtype, as torch's CPU list says. The
//! losses (float32 everywhere) are cast in the Python layer, where they are defined.
//!
//! The state is per thread, like torch's. An op that autocast cast runs its body with autocast
//! off, so the ops it is built of are not cast again; backward always runs with it off (the
//! recorded casts already fix each gradient's dtype).

use crate::device::{Device, TorchKind};
use crate::dtype::DType;
use crate::error::Result;
use crate::tensor::Tensor;
use std::cell::Cell;

/// The device types autocast distinguishes: torch's "cpu" (the native backend and
/// `torch:cpu`), "cuda" and "mps".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Cpu = 0,
    Cuda = 1,
    Mps = 2,
}

impl Kind {
    pub fn of(device: Device) -> Kind {
        match device {
            Device::Cpu
            | Device::Torch {
                kind: TorchKind::Cpu,
                ..
            } => Kind::Cpu,
            Device::Torch {
                kind: TorchKind::Cuda,
                ..
            } => Kind::Cuda,
            Device::Torch {
                kind: TorchKind::Mps,
                ..
            } => Kind::Mps,
        }
    }

    /// Parses torch's `device_type` names.
    pub fn parse(s: &str) -> Option<Kind> {
        match s {
            "cpu" => Some(Kind::Cpu),
            "cuda" => Some(Kind::Cuda),
            "mps" => Some(Kind::Mps),
            _ => None,
        }
    }
}

thread_local! {
    /// The lower precision dtype of each device type while its region is on.
    static STATE: Cell<[Option<DType>; 3]> = const { Cell::new([None; 3]) };
}

/// The dtype autocast casts products to on `kind`, or `None` when it is off there.
pub fn get(kind: Kind) -> Option<DType> {
    STATE.with(|s| s.get()[kind as usize])
}

/// Turns autocast on (`Some(dtype)`) or off on `kind`; returns the previous setting.
pub fn set(kind: Kind, dtype: Option<DType>) -> Option<DType> {
    STATE.with(|s| {
        let mut all = s.get();
        let old = std::mem::replace(&mut all[kind as usize], dtype);
        s.set(all);
        old
    })
}

/// Runs `f` with autocast off on every device type, then restores the settings.
pub fn off<R>(f: impl FnOnce() -> R) -> R {
    let saved = STATE.with(|s| s.replace([None; 3]));
    struct Restore([Option<DType>; 3]);
    impl Drop for Restore {
        fn drop(&mut self) {
            STATE.with(|s| s.set(self.0));
        }
    }
    let _restore = Restore(saved);
    f()
}

/// Whether autocast is on anywhere (the fast check every hooked op makes first).
fn any_on() -> bool {
    STATE.with(|s| s.get().iter().any(Option::is_some))
}

/// A float32, float16 or bfloat16 tensor: what autocast casts (float64 and integers never).
fn eligible(t: &Tensor) -> bool {
    matches!(t.dtype(), DType::F32 | DType::F16 | DType::BF16)
}

/// The lower precision dtype for a product of `ts`, when autocast is on for their device and
/// some input is not in it yet.
pub fn lower_dtype(ts: &[&Tensor]) -> Option<DType> {
    if !any_on() {
        return None;
    }
    let dt = get(Kind::of(ts.first()?.device()))?;
    ts.iter()
        .any(|t| eligible(t) && t.dtype() != dt)
        .then_some(dt)
}

/// `t` in `dtype` when autocast casts it (a recorded cast), else `t` itself.
pub fn cast(t: &Tensor, dtype: DType) -> Tensor {
    if eligible(t) {
        t.to_dtype(dtype)
    } else {
        t.clone()
    }
}

/// Whether an op on the float32 list of GPUs (layer norm, softmax) must upcast `ts` (absent
/// optional arguments are `None`): autocast is on for their GPU and one of them is float16 or
/// bfloat16.
pub fn wants_f32_on_gpu(ts: &[Option<&Tensor>]) -> bool {
    if !any_on() {
        return false;
    }
    let Some(first) = ts.iter().flatten().next() else {
        return false;
    };
    let kind = Kind::of(first.device());
    kind != Kind::Cpu
        && get(kind).is_some()
        && ts
            .iter()
            .flatten()
            .any(|t| matches!(t.dtype(), DType::F16 | DType::BF16))
}

/// `t` as float32 when it is float16 or bfloat16 (a recorded cast), else `t` itself.
pub fn upcast(t: &Tensor) -> Tensor {
    if matches!(t.dtype(), DType::F16 | DType::BF16) {
        t.to_dtype(DType::F32)
    } else {
        t.clone()
    }
}

/// Casts `ts` for a product and runs `f` on them with autocast off; `None` when autocast
/// leaves the op alone.
pub fn product<const N: usize, R>(
    ts: [&Tensor; N],
    f: impl FnOnce([&Tensor; N]) -> Result<R>,
) -> Option<Result<R>> {
    let dt = lower_dtype(&ts)?;
    let cast: Vec<Tensor> = ts.iter().map(|t| cast(t, dt)).collect();
    let refs: [&Tensor; N] = std::array::from_fn(|i| &cast[i]);
    Some(off(|| f(refs)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_are_per_kind_and_off_restores() {
        assert_eq!(get(Kind::Cpu), None);
        assert_eq!(set(Kind::Cpu, Some(DType::BF16)), None);
        assert_eq!(get(Kind::Cpu), Some(DType::BF16));
        assert_eq!(get(Kind::Cuda), None);
        off(|| assert_eq!(get(Kind::Cpu), None));
        assert_eq!(get(Kind::Cpu), Some(DType::BF16));
        let a = Tensor::from_vec(vec![1.0f32, 2.0], &[1, 2]).unwrap();
        let b = Tensor::from_vec(vec![3.0f32, 4.0], &[2, 1]).unwrap();
        let out = a.matmul(&b).unwrap();
        assert_eq!(out.dtype(), DType::BF16);
        assert_eq!(out.to_vec_as::<f64>(), vec![11.0]);
        let wide = a
            .to_dtype(DType::F64)
            .matmul(&b.to_dtype(DType::F64))
            .unwrap();
        assert_eq!(wide.dtype(), DType::F64); // float64 is never cast
        assert_eq!(set(Kind::Cpu, None), Some(DType::BF16));
        assert_eq!(a.matmul(&b).unwrap().dtype(), DType::F32);
    }
}
