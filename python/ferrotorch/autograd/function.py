"""Custom differentiable functions: ``class F(Function)`` with static ``forward(ctx, ...)`` and
``backward(ctx, *grads)``; the Rust tape calls ``backward`` when gradients flow through."""

from ferrotorch import _C
from ferrotorch._C import Tensor
from ferrotorch.autograd.grad_mode import no_grad


class FunctionCtx:
    """The ``ctx`` object: ``save_for_backward``, ``saved_tensors``, ``needs_input_grad``."""

    def __init__(self, needs_input_grad):
        self.needs_input_grad = needs_input_grad
        self._saved = ()

    def save_for_backward(self, *tensors):
        self._saved = tuple(tensors)

    @property
    def saved_tensors(self):
        return self._saved

    def mark_non_differentiable(self, *tensors):
        self._non_diff = tensors


class Function:
    """Subclass with ``forward(ctx, *args)`` and ``backward(ctx, *grad_outputs)``; call
    ``YourFunction.apply(*args)``.

    >>> import ferrotorch as torch
    >>> class Square(torch.autograd.Function):
    ...     @staticmethod
    ...     def forward(ctx, x):
    ...         ctx.save_for_backward(x)
    ...         return x * x
    ...     @staticmethod
    ...     def backward(ctx, g):
    ...         (x,) = ctx.saved_tensors
    ...         return 2 * x * g
    >>> x = torch.tensor([3.0], requires_grad=True)
    >>> Square.apply(x).backward()
    >>> x.grad
    tensor([6.])
    """

    @staticmethod
    def forward(ctx, *args, **kwargs):
        raise NotImplementedError(
            "You must implement the forward function for custom autograd.Function."
        )

    @staticmethod
    def backward(ctx, *grad_outputs):
        raise NotImplementedError(
            "You must implement the backward function for custom autograd.Function."
        )

    @classmethod
    def apply(cls, *args):
        needs = tuple(isinstance(a, Tensor) and a.requires_grad for a in args)
        ctx = FunctionCtx(needs)
        with no_grad():
            out = cls.forward(ctx, *args)
        if not (_C.is_grad_enabled() and any(needs)):
            return out
        single = isinstance(out, Tensor)
        outs = [out] if single else list(out)
        positions = [i for i, a in enumerate(args) if isinstance(a, Tensor)]
        inputs = [args[i] for i in positions]

        def backward(*grads):
            result = cls.backward(ctx, *grads)
            if not isinstance(result, tuple):
                result = (result,)
            if len(result) != len(args):
                raise RuntimeError(
                    f"function {cls.__name__}Backward returned an incorrect number of gradients "
                    f"(expected {len(args)}, got {len(result)})"
                )
            return tuple(_fit_gradient(cls, i, result[i], args[i]) for i in positions)

        tracked = _C._attach_function(
            [o for o in outs if isinstance(o, Tensor)], inputs, backward, f"{cls.__name__}Backward"
        )
        it = iter(tracked)
        outs = [next(it) if isinstance(o, Tensor) else o for o in outs]
        return outs[0] if single else tuple(outs)


def _fit_gradient(cls, index, grad, input):
    """torch's check of a custom backward's result: a gradient must have its input's shape, or
    one the input broadcasts to (then it is summed back to the input's shape)."""
    if not isinstance(grad, Tensor) or grad.shape == input.shape:
        return grad
    try:
        return grad.sum_to_size(input.shape)
    except RuntimeError:
        raise RuntimeError(
            f"Function {cls.__name__}Backward returned an invalid gradient at index {index} - "
            f"got {list(grad.shape)} but expected shape compatible with {list(input.shape)}"
        ) from None
