"""``Parameter``: a tensor that a ``Module`` registers as one of its learnable weights."""

import ferrotorch as _ft
from ferrotorch._C import Tensor


class Parameter(Tensor):
    """A ``Tensor`` that is registered in ``Module._parameters`` when assigned to a module
    attribute. It shares ``data``'s storage and requires grad by default; results of ops on it
    are plain tensors.

    >>> import ferrotorch as torch
    >>> p = torch.nn.Parameter(torch.zeros(2))
    >>> p.requires_grad, isinstance(p, torch.Tensor)
    (True, True)
    """

    def __new__(cls, data=None, requires_grad=True):
        if data is None:
            data = _ft.empty(0)
        if not isinstance(data, Tensor):
            raise TypeError(
                f"Parameter(): data must be a Tensor, not {type(data).__name__}"
            )
        return super().__new__(cls, data.detach(), requires_grad)

    def __init__(self, data=None, requires_grad=True):
        pass

    def __deepcopy__(self, memo):
        if id(self) in memo:
            return memo[id(self)]
        result = type(self)(self.detach().clone(), self.requires_grad)
        memo[id(self)] = result
        return result

    def __reduce_ex__(self, proto):
        return (_rebuild_parameter, (self.detach().clone(), self.requires_grad))


def _rebuild_parameter(data, requires_grad):
    return Parameter(data, requires_grad)


class Buffer:
    """Marks a tensor as a buffer when assigned to a module attribute
    (``self.mask = nn.Buffer(t, persistent=False)``); the module stores the tensor itself."""

    def __init__(self, data, *, persistent=True):
        if not isinstance(data, Tensor):
            raise TypeError(f"Buffer(): data must be a Tensor, not {type(data).__name__}")
        self.data = data
        self.persistent = persistent
