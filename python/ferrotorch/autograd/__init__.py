"""``ferrotorch.autograd``: reverse-mode differentiation on the Rust tape."""

from ferrotorch._C import grad
from ferrotorch.autograd.function import Function, FunctionCtx
from ferrotorch.autograd.grad_mode import (
    enable_grad,
    inference_mode,
    is_grad_enabled,
    no_grad,
    set_grad_enabled,
)
from ferrotorch.autograd.gradcheck import gradcheck, gradgradcheck

__all__ = [
    "Function",
    "FunctionCtx",
    "backward",
    "enable_grad",
    "grad",
    "gradcheck",
    "gradgradcheck",
    "inference_mode",
    "is_grad_enabled",
    "no_grad",
    "set_grad_enabled",
]


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False, inputs=None):
    """``autograd.backward``: backward from several outputs at once."""
    from ferrotorch._C import Tensor

    if isinstance(tensors, Tensor):
        tensors = (tensors,)
    if grad_tensors is None or isinstance(grad_tensors, Tensor):
        grad_tensors = (grad_tensors,) * len(tensors) if grad_tensors is None else (grad_tensors,)
    tensors, grad_tensors = tuple(tensors), tuple(grad_tensors)
    if len(tensors) != len(grad_tensors):
        raise RuntimeError(
            f"got {len(tensors)} tensors and {len(grad_tensors)} gradients: "
            "autograd.backward needs one gradient (or None) per tensor"
        )
    for t, g in zip(tensors, grad_tensors):
        t.backward(g, retain_graph=True if retain_graph is None else retain_graph,
                   create_graph=create_graph)
