"""``ferrotorch.amp``: automatic mixed precision, torch's ``autocast``.

Inside ``with torch.autocast("cuda", dtype=torch.bfloat16):`` (or ``"cpu"``), matrix products
(``matmul``, ``@``, ``mm``, ``bmm``, ``F.linear``, ``scaled_dot_product_attention``, ``einsum``)
cast their float32 inputs to the lower precision dtype and compute there; the losses
(``cross_entropy``, ``nll_loss``, ``mse_loss``, ``l1_loss``,
``binary_cross_entropy_with_logits``) compute in float32; on GPUs ``layer_norm`` and
``softmax``/``log_softmax`` do too, as in torch's CUDA lists (on the CPU they keep their input's
dtype, as in torch's CPU list). The casts are recorded like any op, so ``backward()`` (outside
the region, as torch recommends) brings float32 gradients to float32 parameters. float64 and
integer tensors are never cast. The state is per thread and per device type. Unlike torch,
casts of the same weight are not cached within a region.

>>> import ferrotorch as torch
>>> x, w = torch.randn(2, 3), torch.randn(4, 3, requires_grad=True)
>>> with torch.autocast("cpu", dtype=torch.bfloat16):
...     y = torch.nn.functional.linear(x, w)
>>> y.dtype, torch.is_autocast_enabled("cpu")
(torch.bfloat16, False)
>>> y.float().sum().backward()
>>> w.grad.dtype
torch.float32
"""

import contextlib
import functools
import warnings

from ferrotorch import _C

__all__ = ["autocast", "is_autocast_enabled", "get_autocast_dtype", "is_autocast_available"]

_KINDS = ("cpu", "cuda", "mps")
_DEFAULT_DTYPE = {"cpu": _C.bfloat16, "cuda": _C.float16, "mps": _C.float16}
_LOWER = (_C.bfloat16, _C.float16)


def _kind(device_type):
    """torch's autocast device type of a device name ("torch:cpu" is a CPU)."""
    return "cpu" if device_type == "torch:cpu" else device_type


def is_autocast_available(device_type):
    """Whether autocast can be turned on for ``device_type``."""
    return _kind(device_type) in _KINDS


def is_autocast_enabled(device_type="cuda"):
    """Whether an autocast region is on for ``device_type`` in this thread."""
    return _C._autocast_get(_kind(device_type)) is not None


def get_autocast_dtype(device_type):
    """The dtype an autocast region for ``device_type`` casts to by default (or the current
    region's)."""
    kind = _kind(device_type)
    if kind not in _KINDS:
        raise RuntimeError(f"unsupported autocast device_type '{device_type}'")
    current = _C._autocast_get(kind)
    return _DEFAULT_DTYPE[kind] if current is None else current


class autocast:
    """A region (``with`` block, or a decorated function) where ops on ``device_type`` run in
    mixed precision: see the module's docstring for which ops do what.

    ``dtype`` is bfloat16 or float16 (default: bfloat16 on the CPU, float16 on GPUs, as
    torch's); any other dtype warns and leaves autocast off, as torch does. ``enabled=False``
    turns it off inside an enclosing region. ``cache_enabled`` is accepted for torch scripts.
    """

    def __init__(self, device_type, dtype=None, enabled=True, cache_enabled=None):
        if not isinstance(device_type, str):
            raise ValueError(f"Expected `device_type` of type `str`, got: `{type(device_type)}`")
        kind = _kind(device_type)
        if kind not in _KINDS:
            raise RuntimeError(
                f"User specified an unsupported autocast device_type '{device_type}'; autocast "
                "supports cpu, cuda and mps")
        self.device = kind
        self.fast_dtype = _DEFAULT_DTYPE[kind] if dtype is None else dtype
        self._enabled = bool(enabled)
        if self._enabled and self.fast_dtype not in _LOWER:
            warnings.warn(
                f"In {kind.upper()} autocast, but the target dtype {self.fast_dtype} is not "
                "supported (bfloat16 and float16 are). Disabling autocast.", stacklevel=2)
            self._enabled = False
        self._saved = []

    def __enter__(self):
        self._saved.append(_C._autocast_set(self.device, self.fast_dtype if self._enabled
                                            else None))
        return self

    def __exit__(self, *exc):
        _C._autocast_set(self.device, self._saved.pop())
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with autocast(self.device, self.fast_dtype, self._enabled):
                return fn(*args, **kwargs)
        return wrapper


@contextlib.contextmanager
def _off():
    """Autocast off on every device type (the body of an op that autocast already cast)."""
    saved = [_C._autocast_set(kind, None) for kind in _KINDS]
    try:
        yield
    finally:
        for kind, dtype in zip(_KINDS, saved):
            _C._autocast_set(kind, dtype)


def _product_args(*ts):
    """(``ts`` cast for a matrix product, True) when a region is on for the device of the
    first (None passes through; float64, integers and bools are never cast); else (``ts``,
    False)."""
    first = ts[0]
    dt = _C._autocast_dtype_for(first) if isinstance(first, _C.Tensor) else None
    if dt is None or not all(t is None or isinstance(t, _C.Tensor) for t in ts):
        return ts, False
    eligible = (_C.float32, _C.float16, _C.bfloat16)
    return tuple(t.to(dt) if t is not None and t.dtype in eligible and t.dtype != dt else t
                 for t in ts), True


def _float32_args(*ts):
    """``ts`` with float16/bfloat16 tensors cast to float32 when a region is on for the device
    of the first, the loss's input (the losses on torch's float32 list)."""
    first = ts[0]
    if not isinstance(first, _C.Tensor) or _C._autocast_dtype_for(first) is None:
        return ts
    return tuple(t.float() if isinstance(t, _C.Tensor) and t.dtype in _LOWER else t
                 for t in ts)


def _on_gpu_region(t):
    """Whether ``t`` is on a GPU with an autocast region on."""
    return _C._autocast_dtype_for(t) is not None and _kind(t.device.type) != "cpu"
