"""ferrotorch: a hackable, PyTorch-compatible deep-learning library with a Rust core.

Write ``import ferrotorch as torch`` and code written for PyTorch's tensor API runs here:

>>> import ferrotorch as torch
>>> torch.manual_seed(123)  # doctest: +ELLIPSIS
<ferrotorch.Generator object at ...>
>>> x = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
>>> (x @ x.T).sum()
tensor(54.)
"""

import builtins as _builtins
import math as _math

from ferrotorch import (  # noqa: E402,F401,I001  (subpackages need the names above)
    _C,
    _tensor,  # noqa: F401  (attaches methods to Tensor)
    amp,
    autograd,
    backends,
    cuda,
    distributed,
    nn,
    optim,
    utils,
)
from ferrotorch._C import (  # noqa: F401  (re-exported API)
    Generator,
    Tensor,
    arange,
    bernoulli,
    bfloat16,
    cat,
    dtype,
    empty,
    empty_like,
    eye,
    float16,
    float32,
    float64,
    from_numpy,
    full,
    full_like,
    get_num_threads,
    int32,
    int64,
    linspace,
    multinomial,
    ones,
    ones_like,
    promote_types,
    rand,
    randn,
    randperm,
    set_num_threads,
    stack,
    tensor,
    uint8,
    where,
    zeros,
    zeros_like,
)
from ferrotorch._C import bool as bool  # noqa: F401,A004
from ferrotorch._device import device
from ferrotorch._size import Size
from ferrotorch._tensor_str import get_printoptions, set_printoptions  # noqa: F401
from ferrotorch.amp import (  # noqa: F401
    autocast,
    get_autocast_dtype,
    is_autocast_available,
    is_autocast_enabled,
)
from ferrotorch.autograd.grad_mode import (  # noqa: F401
    enable_grad,
    inference_mode,
    is_grad_enabled,
    no_grad,
    set_grad_enabled,
)
from ferrotorch.serialization import load, save  # noqa: F401

__version__ = "0.1.0"

# Constants torch re-exports (book code writes ``-torch.inf`` and ``torch.pi``).
e = _math.e
inf = _math.inf
nan = _math.nan
pi = _math.pi

# torch's dtype aliases.
float = float32  # noqa: A001
double = float64
half = float16
long = int64
int = int32  # noqa: A001
cfloat = None

default_generator = _C.default_generator_obj()


def manual_seed(seed):
    """Seeds the default CPU generator; the following random numbers equal torch's.

    >>> import ferrotorch as torch
    >>> _ = torch.manual_seed(0)
    >>> torch.rand(2)
    tensor([0.4963, 0.7682])
    """
    seed = _builtins.int(seed)
    if not -0x8000_0000_0000_0000 <= seed <= 0xFFFF_FFFF_FFFF_FFFF:
        raise ValueError(f"Overflow when unpacking long (seed {seed} does not fit in 64 bits)")
    return default_generator.manual_seed(seed % (1 << 64))


def seed():
    """Re-seeds the default generator non-deterministically and returns the seed."""
    return default_generator.seed()


def initial_seed():
    return default_generator.initial_seed()


def get_rng_state():
    """The default generator's state as a uint8 tensor (torch's byte layout)."""
    return default_generator.get_state()


def set_rng_state(new_state):
    default_generator.set_state(new_state)


def is_tensor(obj):
    return isinstance(obj, Tensor)


def is_floating_point(input):
    return input.is_floating_point()


def numel(input):
    return input.numel()


def get_default_dtype():
    return float32


def set_default_device(device):
    """Puts tensors made without ``device=`` on ``device`` (None: back to ``"cpu"``), like
    torch's; ``torch:cpu`` runs everything through the torch backend."""
    _C.set_default_device(device)


def get_default_device():
    """The device tensors made without ``device=`` go to."""
    return device(_C._default_device())


def result_type(tensor1, tensor2):
    """The dtype an op on the two operands produces (torch's promotion rules)."""
    return (_as_operand(tensor1) + _as_operand(tensor2)).dtype


def _as_operand(x):
    if isinstance(x, Tensor):
        return zeros_like(x, dtype=x.dtype).reshape(-1)[:1] if x.dim() else zeros((), dtype=x.dtype)
    return x


def can_cast(from_, to):
    """Whether an in-place op may write a result of dtype ``from_`` into ``to``."""
    if from_.is_floating_point and not to.is_floating_point:
        return False
    return not (from_ is not bool and to is bool)


# *** functions that are methods of the first argument ***

def _delegate(name):
    def fn(input, *args, **kwargs):
        if not isinstance(input, Tensor):
            raise TypeError(
                f"{name}(): argument 'input' (position 1) must be Tensor, "
                f"not {type(input).__name__}"
            )
        return getattr(input, name)(*args, **kwargs)

    fn.__name__ = name
    fn.__qualname__ = name
    fn.__doc__ = f"``torch.{name}(input, ...)`` is ``input.{name}(...)``."
    return fn


_METHOD_FUNCTIONS = [
    "abs", "neg", "negative", "exp", "log", "log1p", "sqrt", "rsqrt", "sin", "cos", "tanh",
    "sigmoid", "relu", "sign", "floor", "ceil", "round", "trunc", "reciprocal", "clamp", "clip",
    "add", "sub", "subtract", "mul", "multiply", "div", "divide", "true_divide", "floor_divide",
    "remainder", "pow", "maximum", "minimum", "eq", "ne", "lt", "le", "gt", "ge", "logical_and",
    "logical_or", "logical_xor", "logical_not", "bitwise_not", "masked_fill", "sum", "mean",
    "prod", "var", "std", "max", "min", "argmax", "argmin", "amax", "amin", "all", "any",
    "logsumexp", "softmax", "log_softmax", "cumsum", "norm", "gather", "scatter", "scatter_add",
    "index_select", "take_along_dim", "topk", "sort", "argsort", "tril", "triu", "nonzero",
    "matmul", "mm", "bmm", "outer", "dot", "reshape", "transpose", "swapaxes", "t", "permute",
    "unsqueeze", "squeeze", "flatten", "unflatten", "narrow", "select", "unbind", "split",
    "chunk", "as_strided", "clone", "detach", "movedim", "moveaxis", "masked_select",
    "broadcast_to", "silu", "erf", "erfinv", "lerp", "addcmul", "addcdiv",
]
for _name in _METHOD_FUNCTIONS:
    globals()[_name] = _delegate(_name)


def gelu(input, approximate="none"):
    return input.gelu(approximate=approximate)


def addmm(input, mat1, mat2, *, beta=1, alpha=1):
    """``beta * input + alpha * (mat1 @ mat2)``."""
    prod_ = mat1.mm(mat2)
    if alpha != 1:
        prod_ = prod_ * alpha
    if beta == 0:
        # torch ignores `input` entirely (NaN/inf in it do not propagate).
        return prod_ + zeros_like(input)
    return prod_ + (input if beta == 1 else input * beta)


def as_tensor(data, dtype=None, device=None):
    """Like ``tensor`` but shares memory when it can: a tensor of the right dtype is returned
    as is, a numpy array is wrapped without a copy."""
    if isinstance(data, Tensor):
        return data if dtype is None or data.dtype == dtype else data.to(dtype)
    if hasattr(data, "__array_interface__") and not isinstance(data, (list, tuple)):
        try:
            t = from_numpy(data)
        except (TypeError, ValueError):
            return tensor(data, dtype=dtype, device=device)
        return t if dtype is None or t.dtype == dtype else t.to(dtype)
    return tensor(data, dtype=dtype, device=device)


def rand_like(input, *, dtype=None, device=None, generator=None, requires_grad=False, **_):
    return rand(input.shape, dtype=dtype or input.dtype, generator=generator,
                device=device or input.device, requires_grad=requires_grad)


def randn_like(input, *, dtype=None, device=None, generator=None, requires_grad=False, **_):
    return randn(input.shape, dtype=dtype or input.dtype, generator=generator,
                 device=device or input.device, requires_grad=requires_grad)


def equal(input, other):
    """True when both tensors have the same shape and the same values.

    >>> import ferrotorch as torch
    >>> torch.equal(torch.tensor([1, 2]), torch.tensor([1, 2]))
    True
    """
    if tuple(input.shape) != tuple(other.shape):
        return False
    return _builtins.bool((input == other).all())


def randint(*args, low=None, high=None, size=None, **kwargs):
    """``randint(high, size)``, ``randint(low, high, size)``, or the same by keyword: integers
    drawn uniformly from [low, high) with torch's stream.

    >>> import ferrotorch as torch
    >>> _ = torch.manual_seed(0)
    >>> torch.randint(10, (3,)).shape
    torch.Size([3])
    """
    if low is not None or high is not None:
        if high is None:
            raise TypeError("randint() missing required argument 'high'")
        args = ((low,) if low is not None else ()) + (high,) + args
    if size is not None:
        args = args + (size,)
    return _C.randint(*args, **kwargs)


def randint_like(input, low=0, high=None, *, dtype=None, device=None, generator=None, **_):
    if high is None:
        low, high = 0, low
    return randint(low, high, input.shape, dtype=dtype or input.dtype, generator=generator,
                   device=device or input.device)


def normal(mean, std, size=None, *, generator=None, dtype=None, **_):
    """Samples from N(mean, std²): scalar mean/std with a ``size``, or tensors broadcast."""
    if isinstance(mean, Tensor) or isinstance(std, Tensor):
        m = mean if isinstance(mean, Tensor) else tensor(mean)
        s = std if isinstance(std, Tensor) else tensor(std)
        shape = (m + s).shape
        return randn(shape, dtype=(m + s).dtype, generator=generator) * s + m
    return empty(size, dtype=dtype).normal_(mean, std, generator=generator)


def broadcast_shapes(*shapes):
    """The shape the given shapes broadcast to (torch's rules), computed without tensors."""
    result = []
    for i, shape in enumerate(shapes):
        shape = (shape,) if isinstance(shape, _builtins.int) else tuple(shape)
        for d in shape:
            if not isinstance(d, _builtins.int) or d < 0:
                raise RuntimeError(f"broadcast_shapes: invalid size {d!r} in shape {shape}")
        padded = [1] * (len(shape) - len(result)) + result
        for k, d in enumerate(shape[::-1]):
            j = len(padded) - 1 - k
            if padded[j] == 1:
                padded[j] = d
            elif d not in (1, padded[j]):
                raise RuntimeError(
                    "Shape mismatch: objects cannot be broadcast to a single shape: "
                    f"shape {list(shape)} (arg {i}) does not broadcast to {padded} (size {d} "
                    f"against {padded[j]} in dimension {j})"
                )
        result = padded
    return Size(result)


def broadcast_tensors(*tensors):
    shape = broadcast_shapes(*(t.shape for t in tensors))
    return tuple(t.expand(shape) for t in tensors)


def einsum(equation, *operands):
    """Einstein summation for one or two operands (``"ij,jk->ik"``, ``"bhqd,bhkd->bhqk"``...),
    computed with permute/reshape and one batched matmul."""
    from ferrotorch._einsum import einsum as _einsum

    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    return _einsum(equation, *operands)


def numel_of(shape):
    return Size(shape).numel()


del numel_of


# *** torch interop and testing helpers ***
from ferrotorch import testing  # noqa: E402,F401
from ferrotorch._interop import dlpack as _dlpack  # noqa: E402
from ferrotorch._interop import dlpack_device as _dlpack_device  # noqa: E402
from ferrotorch._interop import from_dlpack, from_torch  # noqa: E402,F401
from ferrotorch._interop import to_torch as _to_torch  # noqa: E402

Tensor.to_torch = _to_torch
Tensor.__dlpack__ = _dlpack
Tensor.__dlpack_device__ = _dlpack_device
