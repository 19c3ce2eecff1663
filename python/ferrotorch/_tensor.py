"""Conveniences attached to the Rust ``Tensor`` class: in-place variants, random fills and a few
composed methods. Hot paths (operators, kernels) live in Rust; these are glue."""

import struct

from ferrotorch import _C
from ferrotorch._C import Tensor

# In-place methods compute the out-of-place result in Rust and write it back through the view
# (so views of the same storage see the change and the version counter moves).
_INPLACE = [
    "add", "sub", "mul", "div", "pow", "remainder", "floor_divide", "clamp", "clip", "neg", "abs",
    "exp", "log", "log1p", "sqrt", "rsqrt", "sin", "cos", "tanh", "sigmoid", "relu", "floor",
    "ceil", "round", "trunc", "reciprocal", "sign", "masked_fill", "maximum", "minimum",
    "logical_not", "logical_and", "logical_or", "tril", "triu", "silu", "gelu", "true_divide",
    "subtract", "multiply", "divide", "eq", "ne", "lt", "le", "gt", "ge", "erf", "erfinv",
]


def _source(self):
    # A recorded in-place op computes from a copy of self: the node must not save the memory
    # the op is about to overwrite (that would trip the version check at backward).
    return self.clone() if self.requires_grad and _C.is_grad_enabled() else self


def _make_inplace(name):
    out_of_place = getattr(Tensor, name)

    def method(self, *args, **kwargs):
        return self._assign_(out_of_place(_source(self), *args, **kwargs), name + "_")

    method.__name__ = name + "_"
    method.__doc__ = f"In-place version of :meth:`Tensor.{name}`."
    return method


for _name in _INPLACE:
    setattr(Tensor, _name + "_", _make_inplace(_name))

_DUNDER_INPLACE = {
    "__iadd__": "__add__", "__isub__": "__sub__", "__imul__": "__mul__",
    "__itruediv__": "__truediv__", "__ifloordiv__": "__floordiv__", "__imod__": "__mod__",
    "__ipow__": "__pow__", "__iand__": "__and__", "__ior__": "__or__", "__ixor__": "__xor__",
}


def _make_dunder_inplace(name, op):
    out_of_place = getattr(Tensor, op)

    def method(self, other):
        result = out_of_place(_source(self), other)
        if result is NotImplemented:
            return NotImplemented
        return self._assign_(result, name)

    method.__name__ = name
    return method


for _name, _op in _DUNDER_INPLACE.items():
    setattr(Tensor, _name, _make_dunder_inplace(_name, _op))


# In-place writes implemented directly in Rust: while the graph is recorded and a tensor involved
# requires grad, they go through the differentiable out-of-place op instead, whose history the
# tensor takes over (as torch records them).


def _recording(*tensors):
    return _C.is_grad_enabled() and any(isinstance(t, Tensor) and t.requires_grad for t in tensors)


def _recorded_inplace(name, functional):
    direct = getattr(Tensor, name)

    def method(self, *args, **kwargs):
        if _recording(self, *args, *kwargs.values()):
            return self._assign_(functional(self, *args, **kwargs), name)
        return direct(self, *args, **kwargs)

    method.__name__ = name
    method.__doc__ = direct.__doc__
    return method


def _copy_result(self, src, non_blocking=False):
    src = src if isinstance(src, Tensor) else _C.tensor(src)
    return src.to(self.dtype) + self.detach() * 0


def _fill_result(self, value):
    return _source(self) * 0 + value


def _scatter_function():
    from ferrotorch.autograd.function import Function

    class Scatter(Function):
        """scatter with torch's gradient: the overwritten positions get none from self,
        src gets the gradient at the positions it was written to."""

        @staticmethod
        def forward(ctx, self, dim, index, src):
            ctx.dim, ctx.index = dim, index
            ctx.hit = _scatter_direct(_C.zeros_like(self, dtype=_C.bool), dim, index, value=True)
            return _scatter_direct(self, dim, index, src)

        @staticmethod
        def backward(ctx, g):
            g_src = g.gather(ctx.dim, ctx.index)
            return g.masked_fill(ctx.hit, 0.0), None, None, g_src

    return Scatter


_scatter_direct = Tensor.scatter


def _scatter(self, dim, index, src=None, *, value=None):
    if src is not None and not isinstance(src, Tensor):
        src, value = None, src
    if isinstance(src, Tensor) and _recording(self, src):
        return _scatter_function().apply(self, dim, index, src)
    if value is not None and _recording(self):
        hit = _scatter_direct(_C.zeros_like(self, dtype=_C.bool), dim, index, value=True)
        return self.masked_fill(hit, value)
    return _scatter_direct(self, dim, index, src, value=value)


Tensor.scatter = _scatter
Tensor.index_put = lambda self, indices, values, accumulate=False: _C._index_put(
    self, indices if isinstance(indices, tuple) else tuple(indices), values, accumulate
)
for _name, _fn in {
    "copy_": _copy_result,
    "fill_": _fill_result,
    "zero_": lambda self: _source(self) * 0,
    "scatter_add_": lambda self, dim, index, src: self.scatter_add(dim, index, src),
    "scatter_": lambda self, dim, index, src=None, *, value=None: self.scatter(
        dim, index, src, value=value
    ),
    "index_put_": lambda self, indices, values, accumulate=False: self.index_put(
        indices, values, accumulate
    ),
}.items():
    setattr(Tensor, _name, _recorded_inplace(_name, _fn))


# *** random fills (torch's CPU generator, reproduced exactly) ***

def _normal_(self, mean=0.0, std=1.0, *, generator=None):
    _C.normal_(self, float(mean), float(std), generator)
    return self


def _uniform_(self, a=0.0, b=1.0, *, generator=None):
    _C.uniform_(self, float(a), float(b), generator)
    return self


def _bernoulli_(self, p=0.5, *, generator=None):
    _C.bernoulli_(self, p, generator)
    return self


def _exponential_(self, lambd=1.0, *, generator=None):
    _C.exponential_(self, float(lambd), generator)
    return self


def _random_(self, *args, generator=None, **kwargs):
    """``random_(to)``, ``random_(from, to)`` or ``random_()`` (the dtype's default range), drawn
    from torch's stream."""
    if "from" in kwargs:
        args = (kwargs.pop("from"),) + args
    if "to" in kwargs:
        args = args + (kwargs.pop("to"),)
    if kwargs:
        raise TypeError(f"random_() got unexpected keyword arguments {sorted(kwargs)}")
    if len(args) == 1:
        _C.random_(self, 0, int(args[0]), generator)
    elif len(args) == 2:
        low, high = args
        _C.random_(self, int(low), None if high is None else int(high), generator)
    elif not args:
        _C.random_(self, None, None, generator)
    else:
        raise TypeError(f"random_() takes at most 2 positional arguments ({len(args)} given)")
    return self


def _bernoulli(self, p=None, *, generator=None):
    if p is None:
        return _C.bernoulli(self, generator=generator)
    return self.new_zeros(self.shape).bernoulli_(p, generator=generator)


def _multinomial(self, num_samples, replacement=False, *, generator=None):
    return _C.multinomial(self, num_samples, replacement, generator=generator)


Tensor.normal_ = _normal_
Tensor.uniform_ = _uniform_
Tensor.bernoulli_ = _bernoulli_
Tensor.exponential_ = _exponential_
Tensor.bernoulli = _bernoulli
Tensor.random_ = _random_
Tensor.multinomial = _multinomial


# *** copying and pickling ***

def _deepcopy(self, memo):
    if not self.is_leaf:
        raise RuntimeError(
            "Only Tensors created explicitly by the user (graph leaves) support the deepcopy "
            "protocol at the moment. If you were attempting to deepcopy a module, this may be "
            "because of a torch.nn.utils.weight_norm usage, see "
            "https://github.com/pytorch/pytorch/pull/103001")
    if id(self) in memo:
        return memo[id(self)]
    out = self.detach().clone().requires_grad_(self.requires_grad)
    if self.grad is not None:
        out.grad = self.grad.detach().clone()
    memo[id(self)] = out
    return out


def _rebuild_tensor(values, dtype_name, shape, requires_grad):
    t = _C.tensor(values, dtype=getattr(_C, dtype_name)).reshape(shape)
    return t.requires_grad_(requires_grad) if requires_grad else t


def _reduce_ex(self, proto):
    # Values travel as a (widened) nested list: no raw pointers, same bits back for every dtype
    # (bfloat16/float16 widen exactly to float32).
    x = self.detach()
    if x.dtype in (_C.bfloat16, _C.float16):
        x = x.float()
    return (_rebuild_tensor, (x.reshape(-1).tolist(), self.dtype.__repr__().split(".")[-1],
                              tuple(self.shape), self.requires_grad))


Tensor.__deepcopy__ = _deepcopy
Tensor.__reduce_ex__ = _reduce_ex


# *** composed methods ***

def _lerp(self, end, weight):
    """``self + weight * (end - self)``, evaluated from the nearer end like torch for accuracy."""
    diff = end - self
    if not isinstance(weight, Tensor):
        if self.dtype != _C.float64:
            # torch rounds a number weight to the tensor's compute type (float) first.
            weight = struct.unpack("f", struct.pack("f", weight))[0]
        if abs(weight) < 0.5:
            return self + weight * diff
        return end - diff * (1 - weight)
    return _C.where(weight.abs() < 0.5, self + weight * diff, end - diff * (1 - weight))


def _addcmul(self, tensor1, tensor2, *, value=1):
    """``self + value * tensor1 * tensor2``."""
    return self + value * tensor1 * tensor2


def _addcdiv(self, tensor1, tensor2, *, value=1):
    """``self + value * tensor1 / tensor2``."""
    return self + value * tensor1 / tensor2


Tensor.lerp = _lerp
Tensor.addcmul = _addcmul
Tensor.addcdiv = _addcdiv
for _name in ("lerp", "addcmul", "addcdiv"):
    setattr(Tensor, _name + "_", _make_inplace(_name))

class _RemovableHandle:
    """What ``register_hook`` returns: ``handle.remove()`` unregisters the hook."""

    def __init__(self, tensor, hook_id, remover="_remove_hook"):
        import weakref

        self._tensor = weakref.ref(tensor)
        self._id = hook_id
        self._remover = remover

    def remove(self):
        t = self._tensor()
        if t is not None:
            getattr(t, self._remover)(self._id)


def _register_hook(self, hook):
    """Calls ``hook(grad)`` when this tensor's gradient is computed; a returned tensor
    replaces the gradient. Returns a handle with ``.remove()``."""
    return _RemovableHandle(self, self._register_hook(hook))


def _register_post_accumulate_grad_hook(self, hook):
    """Calls ``hook(tensor)`` once backward has accumulated this leaf's ``.grad`` (its return
    value is ignored). Returns a handle with ``.remove()``."""
    hook_id = self._register_post_accumulate_grad_hook(hook)
    return _RemovableHandle(self, hook_id, "_remove_post_accumulate_grad_hook")


def _requires_grad_(self, requires_grad=True):
    self.requires_grad = requires_grad
    return self


def _type_as(self, other):
    return self.to(other.dtype)


def _new_zeros(self, *size, dtype=None, device=None, requires_grad=False, **_):
    return _C.zeros(*size, dtype=dtype or self.dtype, device=device or self.device,
                    requires_grad=requires_grad)


def _new_ones(self, *size, dtype=None, device=None, requires_grad=False, **_):
    return _C.ones(*size, dtype=dtype or self.dtype, device=device or self.device,
                   requires_grad=requires_grad)


def _new_full(self, size, fill_value, *, dtype=None, device=None, requires_grad=False, **_):
    return _C.full(size, fill_value, dtype=dtype or self.dtype, device=device or self.device,
                   requires_grad=requires_grad)


def _new_empty(self, *size, dtype=None, device=None, requires_grad=False, **_):
    return _new_zeros(self, *size, dtype=dtype, device=device, requires_grad=requires_grad)


def _new_tensor(self, data, *, dtype=None, device=None, requires_grad=False, **_):
    return _C.tensor(data, dtype=dtype or self.dtype, device=device or self.device,
                     requires_grad=requires_grad)


def _cuda(self, device=None, non_blocking=False, **_):
    """This tensor on a CUDA device (the current one when ``device`` is None)."""
    if device is None:
        return self.to("cuda")
    return self.to(f"cuda:{device}" if isinstance(device, int) else device)


def _repeat(self, *sizes):
    """Tiles the tensor: ``x.repeat(2, 1)`` stacks two copies along dim 0."""
    if len(sizes) == 1 and not isinstance(sizes[0], int):
        sizes = tuple(sizes[0])
    if len(sizes) < self.dim():
        raise RuntimeError(
            "Number of dimensions of repeat dims can not be smaller than number of dimensions of "
            f"tensor (repeat dims {list(sizes)}, tensor shape {list(self.shape)})"
        )
    x = self.reshape((1,) * (len(sizes) - self.dim()) + tuple(self.shape))
    inter, expanded, final = [], [], []
    for r, s in zip(sizes, x.shape):
        inter += [1, s]
        expanded += [r, s]
        final.append(r * s)
    return x.reshape(inter).expand(expanded).reshape(final)


def _movedim(self, source, destination):
    src = [source] if isinstance(source, int) else list(source)
    dst = [destination] if isinstance(destination, int) else list(destination)
    if len(src) != len(dst):
        raise RuntimeError(
            "movedim: Invalid source or destination dims: source "
            f"({src} dims) should contain the same number of dims as destination ({dst} dims)"
        )
    n = self.dim()

    def norm(d):
        m = max(n, 1)
        if not -m <= d < m:
            raise IndexError(
                f"Dimension out of range (expected to be in range of [{-m}, {m - 1}], but got {d})"
            )
        return d % m

    src = [norm(s) for s in src]
    dst = [norm(d) for d in dst]
    if len(set(src)) != len(src) or len(set(dst)) != len(dst):
        raise RuntimeError(f"movedim: repeated dim in source ({src}) or destination ({dst})")
    if n == 0:  # dims 0 and -1 name a 0-d tensor's only "dim"; there is nothing to move
        return self.permute(())
    order = [d for d in range(n) if d not in src]
    perm = [None] * n
    for s, d in zip(src, dst):
        perm[d] = s
    rest = iter(order)
    perm = [p if p is not None else next(rest) for p in perm]
    return self.permute(perm)


def _masked_select(self, mask):
    """The elements where ``mask`` is true, as a 1-D tensor (input and mask broadcast)."""
    from ferrotorch import broadcast_tensors

    values, mask = broadcast_tensors(self, mask)
    return values.reshape(-1)[mask.reshape(-1)]


def _untyped_storage(self):
    return _Storage(self)


class _Storage:
    """Identity of the memory behind a tensor (`t.untyped_storage().data_ptr()`)."""

    def __init__(self, t):
        self._ptr = t._storage_ptr()

    def data_ptr(self):
        return self._ptr



Tensor.requires_grad_ = _requires_grad_
Tensor.register_hook = _register_hook
Tensor.register_post_accumulate_grad_hook = _register_post_accumulate_grad_hook
Tensor.type_as = _type_as
Tensor.new_zeros = _new_zeros
Tensor.cuda = _cuda
Tensor.new_ones = _new_ones
Tensor.new_full = _new_full
Tensor.new_empty = _new_empty
Tensor.new_tensor = _new_tensor
Tensor.repeat = _repeat
Tensor.movedim = _movedim
Tensor.moveaxis = _movedim
Tensor.masked_select = _masked_select
Tensor.untyped_storage = _untyped_storage
Tensor.__array_priority__ = 1000
