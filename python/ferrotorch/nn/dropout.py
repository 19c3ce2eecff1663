"""``Dropout``: zeroes elements with probability ``p`` in training mode, scaling the rest."""

from ferrotorch.nn import functional as F
from ferrotorch.nn.module import Module

__all__ = ["Dropout"]


class Dropout(Module):
    """In training mode zeroes each element with probability ``p`` and scales the others by
    ``1 / (1 - p)``; the identity in eval mode.

    >>> import ferrotorch as torch
    >>> torch.nn.Dropout(0.5).eval()(torch.ones(3))
    tensor([1., 1., 1.])
    """

    def __init__(self, p=0.5, inplace=False):
        super().__init__()
        if p < 0 or p > 1:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
        self.p = p
        self.inplace = inplace

    def forward(self, input):
        return F.dropout(input, self.p, self.training, self.inplace)

    def extra_repr(self):
        return f"p={self.p}, inplace={self.inplace}"
