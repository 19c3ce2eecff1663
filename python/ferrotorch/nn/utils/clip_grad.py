"""Gradient clipping: ``clip_grad_norm_`` and ``clip_grad_value_``."""

import math
import types
import warnings

import ferrotorch as _ft
from ferrotorch._C import Tensor

__all__ = ["clip_grad_norm_", "clip_grad_value_", "get_total_norm"]


def _vector_norm(t, norm_type):
    if norm_type == float("inf"):
        return t.abs().amax() if t.numel() else _ft.zeros((), dtype=t.dtype)
    if norm_type == float("-inf"):
        return t.abs().amin()
    if norm_type == 0:
        return (t != 0).sum().to(t.dtype)
    return t.norm(norm_type)


def get_total_norm(tensors, norm_type=2.0, error_if_nonfinite=False, foreach=None):
    """The ``norm_type``-norm of all ``tensors`` together (the norm of their norms)."""
    tensors = [tensors] if isinstance(tensors, Tensor) else list(tensors)
    norm_type = float(norm_type)
    if not tensors:
        return _ft.tensor(0.0)
    with _ft.no_grad():
        norms = [_vector_norm(t.detach(), norm_type) for t in tensors]
        dtype = norms[0].dtype
        for n in norms[1:]:
            dtype = _ft.promote_types(dtype, n.dtype)
        total = _vector_norm(_ft.stack([n.to(dtype) for n in norms]), norm_type)
    if error_if_nonfinite and not math.isfinite(total.item()):
        raise RuntimeError(
            f"The total norm of order {norm_type} for gradients from `parameters` is "
            "non-finite, so it cannot be clipped. To disable this error and scale the "
            "gradients by the non-finite norm anyway, set `error_if_nonfinite=False`"
        )
    return total


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False,
                    foreach=None):
    """Scales the gradients of ``parameters`` in place so that their total norm is at most
    ``max_norm``; returns the total norm before clipping.

    >>> import ferrotorch as torch
    >>> p = torch.nn.Parameter(torch.ones(4))
    >>> (p * 3).sum().backward()
    >>> torch.nn.utils.clip_grad_norm_([p], 1.0)
    tensor(6.)
    """
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    else:
        is_generator = isinstance(parameters, types.GeneratorType)
        parameters = list(parameters)
        if is_generator and not parameters:
            warnings.warn("`parameters` is an empty generator, no gradient clipping will occur.",
                          stacklevel=2)
    grads = [p.grad for p in parameters if p.grad is not None]
    total_norm = get_total_norm(grads, norm_type, error_if_nonfinite, foreach)
    if grads:
        with _ft.no_grad():
            coef = (float(max_norm) / (total_norm + 1e-6)).clamp(max=1.0)
            for g in grads:
                g.mul_(coef.to(g.dtype))
    return total_norm


def clip_grad_value_(parameters, clip_value, foreach=None):
    """Clamps every gradient of ``parameters`` in place to ``[-clip_value, clip_value]``."""
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    clip_value = float(clip_value)
    with _ft.no_grad():
        for p in parameters:
            if p.grad is not None:
                p.grad.clamp_(min=-clip_value, max=clip_value)
