"""Moving tensors between ferrotorch and PyTorch: ``from_torch`` and ``Tensor.to_torch``.

Both go through numpy's array interface, so CPU tensors of a dtype both libraries share are
wrapped without a copy (strides and storage offset kept) and writes through one are seen by the
other. numpy has no bfloat16: those tensors travel as float32, which holds every bfloat16 value
exactly, and so are copied. torch stays an optional dependency: it is imported on first use.
"""

import sys

import numpy as np

from ferrotorch import _C
from ferrotorch._C import Tensor

# dtypes that numpy can carry between the two libraries without a copy.
_SHARED_DTYPES = ("float64", "float32", "float16", "int64", "int32", "uint8", "bool")


def real_torch():
    """The PyTorch module, imported on demand.

    Raises ImportError when torch is not installed, or when the ferrotorch drop-in
    (``ferrotorch.compat``) has taken over the name ``torch`` in this process.
    """
    mod = sys.modules.get("torch")
    if mod is not None and getattr(mod, "__name__", None) != "torch":
        raise ImportError(
            "the real torch is not available: `import torch` resolves to ferrotorch because the "
            "drop-in (ferrotorch.compat.install()) is active; call ferrotorch.compat.uninstall() "
            "before converting to or from PyTorch"
        )
    if mod is None:
        try:
            import torch as mod
        except ImportError as e:
            raise ImportError(
                "this needs PyTorch, which is not installed: `pip install torch` "
                "(the CPU build is enough)"
            ) from e
    return mod


def loaded_torch():
    """The real torch module if this process has already imported it, else None (never
    imports it: a value cannot be a torch tensor unless torch is loaded)."""
    mod = sys.modules.get("torch")
    return mod if mod is not None and getattr(mod, "__name__", None) == "torch" else None


def _dtype_name(dtype):
    return str(dtype).replace("torch.", "")


def from_torch(t):
    """A ferrotorch tensor with the values, dtype, shape and strides of the torch tensor ``t``.

    CPU tensors of a dtype both libraries have share memory with ``t`` (bfloat16 is copied).
    If ``t`` requires grad, the result is a new leaf that requires grad (no history is carried).

    >>> import torch, ferrotorch
    >>> x = ferrotorch.from_torch(torch.arange(6.0).reshape(2, 3).t())
    >>> x.shape, x.stride()
    (torch.Size([3, 2]), (1, 3))
    """
    torch = real_torch()
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"from_torch(): expected a torch.Tensor, got {type(t).__name__}")
    if t.layout != torch.strided:
        raise TypeError(f"from_torch(): only strided tensors are supported, got {t.layout}")
    src = t.detach().resolve_conj().resolve_neg()
    if src.device.type != "cpu":
        # A GPU tensor stays where it is: a ferrotorch tensor of the torch backend on that
        # device, sharing its memory when contiguous.
        out = _C._wrap_torch(src, str(src.device))
        if t.requires_grad:
            out.requires_grad_(True)
        return out
    name = _dtype_name(src.dtype)
    if name == "bfloat16":
        out = _C.from_numpy(src.float().numpy()).to(_C.bfloat16)
    elif name in _SHARED_DTYPES:
        out = _C.from_numpy(src.numpy())
    else:
        raise TypeError(
            f"from_torch(): ferrotorch has no dtype {t.dtype}; convert the tensor first, e.g. "
            f"t.to(torch.float32) or t.to(torch.int64)"
        )
    if t.requires_grad:
        out.requires_grad_(True)
    return out


def to_torch(self):
    """A torch tensor with this tensor's values, dtype, shape and strides.

    Shares memory with this tensor (writes through one are seen by the other), except for
    bfloat16, which is copied. If this tensor requires grad, the result is a new torch leaf that
    requires grad.

    >>> import ferrotorch
    >>> ferrotorch.tensor([1.0, 2.0]).to_torch()
    tensor([1., 2.])
    """
    torch = real_torch()
    if not isinstance(self, Tensor):
        raise TypeError(f"to_torch(): expected a ferrotorch Tensor, got {type(self).__name__}")
    src = self.detach()
    view = src._torch_view()
    if view is not None:  # a torch-backend device: the torch tensor itself (shared memory)
        out = view.detach()
    elif src.dtype == _C.bfloat16:
        # The float32 copy holds the bfloat16 bits in its upper half; moving the bits (instead
        # of torch's float->bfloat16 cast, which rewrites NaN payloads) keeps every value.
        # (np.asarray keeps a 0-d result an array: numpy turns 0-d arithmetic into scalars)
        bits = np.asarray(np.asarray(src.float()).view(np.uint32) >> np.uint32(16))
        out = torch.from_numpy(bits.astype(np.uint16).view(np.int16)).view(torch.bfloat16)
    else:
        out = torch.from_numpy(np.asarray(src))
    if self.requires_grad:
        out.requires_grad_(True)
    return out


# *** DLPack ***

_DL_CPU = 1  # kDLCPU in DLPack's DLDeviceType


def dlpack(self, *, stream=None, max_version=None, dl_device=None, copy=None):
    """``Tensor.__dlpack__``: this tensor as a DLPack capsule, sharing memory (the array API
    protocol). ``copy=True`` exports a copy; bfloat16, which numpy lacks, goes through torch.
    """
    if self.requires_grad:
        raise RuntimeError(
            "Can't export tensors that require gradient, use tensor.detach() "
            f"(tensor of shape {tuple(self.shape)}, dtype {self.dtype})")
    kwargs = {} if max_version is None else {"max_version": max_version}
    view = self._torch_view()
    if view is not None:  # a torch-backend device: torch exports its own tensor
        if dl_device is not None:
            kwargs["dl_device"] = dl_device
        if copy is not None:
            kwargs["copy"] = copy
        if stream is not None:
            kwargs["stream"] = stream
        return view.__dlpack__(**kwargs)
    if dl_device is not None and tuple(dl_device) != (_DL_CPU, 0):
        raise BufferError(f"__dlpack__: cannot export a CPU tensor to device {tuple(dl_device)}")
    if self.dtype == _C.bfloat16:
        if copy is False:
            raise BufferError(
                "__dlpack__: bfloat16 tensors are exported through torch with a copy; "
                "copy=False cannot be honoured")
        return to_torch(self).__dlpack__(**kwargs)
    arr = np.asarray(self)
    if copy:
        arr = arr.copy()
    return arr.__dlpack__(**kwargs)


def dlpack_device(self):
    """``Tensor.__dlpack_device__``: ``(kDLCPU, 0)`` for the native CPU, else the device of the
    torch tensor that holds the elements."""
    view = self._torch_view()
    return (_DL_CPU, 0) if view is None else tuple(view.__dlpack_device__())


class _Capsule:
    """Gives a bare DLPack capsule the protocol methods numpy's ``from_dlpack`` asks for."""

    def __init__(self, capsule):
        self._capsule = capsule

    def __dlpack__(self, **_):
        capsule, self._capsule = self._capsule, None
        if capsule is None:
            raise BufferError("from_dlpack(): a DLPack capsule can be consumed only once")
        return capsule

    def __dlpack_device__(self):
        return (_DL_CPU, 0)


def from_dlpack(ext_tensor):
    """A tensor sharing memory with ``ext_tensor``: any object with ``__dlpack__`` (numpy
    arrays, torch tensors, JAX/CuPy CPU arrays...) or a DLPack capsule.

    >>> import numpy as np, ferrotorch
    >>> a = np.arange(3.0)
    >>> t = ferrotorch.from_dlpack(a); t[0] = 7.0; a
    array([7., 1., 2.])
    """
    torch = loaded_torch()
    if torch is not None and isinstance(ext_tensor, torch.Tensor):
        if ext_tensor.requires_grad:
            raise RuntimeError(
                "Can't export tensors that require gradient, use tensor.detach() "
                f"(torch tensor of shape {tuple(ext_tensor.shape)})")
        return from_torch(ext_tensor)  # GPU tensors stay on their device
    if type(ext_tensor).__name__ == "PyCapsule":
        if torch is not None:  # torch reads every dtype, bfloat16 included
            return from_torch(torch.from_dlpack(ext_tensor))
        ext_tensor = _Capsule(ext_tensor)
    elif not hasattr(ext_tensor, "__dlpack__"):
        raise TypeError(
            f"from_dlpack(): expected an object with __dlpack__ or a DLPack capsule, got "
            f"{type(ext_tensor).__name__}")
    if isinstance(ext_tensor, Tensor):
        return ext_tensor.detach()
    device = tuple(ext_tensor.__dlpack_device__())
    if device[0] != _DL_CPU and torch is not None:  # a GPU array (CuPy, JAX...): through torch
        return from_torch(torch.from_dlpack(ext_tensor))
    if device[0] != _DL_CPU:
        raise RuntimeError(
            f"from_dlpack(): the data is on DLPack device {device} (type {device[0]}); ferrotorch "
            "tensors live on the CPU (device type 1): copy the data to the host first")
    try:
        arr = np.from_dlpack(ext_tensor)
    except (BufferError, TypeError, RuntimeError) as e:
        if torch is not None and not isinstance(ext_tensor, _Capsule):
            return from_torch(torch.from_dlpack(ext_tensor))  # e.g. bfloat16, which numpy lacks
        raise TypeError(f"from_dlpack(): {e}") from e
    return _C.from_numpy(arr)
