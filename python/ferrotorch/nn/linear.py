"""``Linear`` (``y = x Wᵀ + b``) and ``Identity``."""

import math

import ferrotorch as _ft
from ferrotorch.nn import functional as F
from ferrotorch.nn import init
from ferrotorch.nn.module import Module
from ferrotorch.nn.parameter import Parameter

__all__ = ["Identity", "Linear"]


class Identity(Module):
    """Returns its input; accepts and ignores any constructor arguments."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, input):
        return input


class Linear(Module):
    """``y = x @ weight.T + bias`` with ``weight`` of shape (out_features, in_features),
    initialised like torch's (Kaiming-uniform weight, U(±1/sqrt(in)) bias).

    >>> import ferrotorch as torch
    >>> _ = torch.manual_seed(0)
    >>> torch.nn.Linear(4, 2)(torch.ones(3, 4)).shape
    torch.Size([3, 2])
    """

    def __init__(self, in_features, out_features, bias=True, device=None, dtype=None):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.weight = Parameter(_ft.empty((out_features, in_features), dtype=dtype,
                                          device=device))
        if bias:
            self.bias = Parameter(_ft.empty(out_features, dtype=dtype, device=device))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        """Redraws weight and bias the way ``__init__`` does."""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in, _ = init._calculate_fan_in_and_fan_out(self.weight)
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
            init.uniform_(self.bias, -bound, bound)

    def forward(self, input):
        return F.linear(input, self.weight, self.bias)

    def extra_repr(self):
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class NonDynamicallyQuantizableLinear(Linear):
    """``MultiheadAttention.out_proj``'s class in torch (its name shows in the repr)."""
