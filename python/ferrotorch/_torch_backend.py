"""The torch backend: ferrotorch's primitives executed by torch ops.

Tensors on any device other than ``"cpu"`` (``"torch:cpu"``, ``"cuda:N"``, ``"mps"``) keep their
elements in a ``torch.Tensor`` on that device. The Rust core checks an op's arguments, records
it on ferrotorch's autograd tape and calls the function of the same name here with torch
tensors (strided views of the storages), Python numbers for wrapped scalars, and ferrotorch
tensors for native ones (0-d tensors and index tensors, which torch takes from the CPU). Each
function returns torch tensor(s); the core wraps them as storages on the op's device.

The backward formulas of the tape are ordinary ops, so they run here too; the fused kernels'
backward passes are torch's own (``*_backward`` below).
"""

import math
import operator

from ferrotorch._C import Tensor as _Tensor
from ferrotorch._interop import real_torch

torch = real_torch()
F = torch.nn.functional


def _t(x, device=None):
    """A torch tensor for an argument: ferrotorch tensors (native, so on the CPU) cross through
    numpy without a copy (then to ``device`` when given); torch tensors and numbers pass as they
    are."""
    if not isinstance(x, _Tensor):
        return x
    from ferrotorch._interop import to_torch

    x = to_torch(x.detach())
    return x if device is None else x.to(device)


_DTYPE_NAMES = {getattr(torch, n): n for n in ("float16", "bfloat16", "float32", "float64",
                                                "uint8", "int8", "int16", "int32", "int64",
                                                "bool", "complex64", "complex128")}


def _unpack(t):
    """(contiguous tensor, shape, dtype name, host address or 0, device address, device index
    or None, element count, storage offset): what the core needs to hold a torch result as a
    storage, in one call."""
    if not t.is_contiguous():
        t = t.contiguous()
    addr = t.data_ptr()
    device = t.device
    host = addr if device.type == "cpu" else 0
    dtype = _DTYPE_NAMES.get(t.dtype) or str(t.dtype).replace("torch.", "")
    return t, t.shape, dtype, host, addr, device.index, t.numel(), t.storage_offset()


def _device(name):
    return torch.device(name)


def _dtype(name):
    return getattr(torch, name)


def zeros_like(x):
    return torch.zeros_like(x, memory_format=torch.contiguous_format)


def full(shape, value, dtype, device):
    return torch.full(shape, value, dtype=_dtype(dtype), device=_device(device))


_GENERATORS = {}


def bernoulli(shape, p, dtype, seed, device):
    """A bernoulli(p) tensor drawn on ``device`` by torch's generator there, seeded with
    ``seed`` (a draw from ferrotorch's generator): dropout masks on a GPU."""
    gen = _GENERATORS.get(device)
    if gen is None:
        gen = _GENERATORS[device] = torch.Generator(device=device)
    gen.manual_seed(seed)
    return torch.empty(shape, dtype=_dtype(dtype), device=device).bernoulli_(p, generator=gen)


def to_device(x, device):
    """A copy of ``x`` on ``device`` (a torch device name)."""
    return _t(x).to(_device(device), copy=True)


# *** elementwise ***

_UNARY = {"silu": F.silu, "relu": torch.relu, "sigmoid": torch.sigmoid}


def unary(name, x, tanh_approx):
    if name == "gelu":
        return F.gelu(x, approximate="tanh" if tanh_approx else "none")
    fn = _UNARY.get(name) or getattr(torch, name)
    if name in ("floor", "ceil", "round", "trunc") and not x.is_floating_point():
        return x.clone()
    return fn(x)


# Ops whose Python operator handles a number on either side with torch's promotion rules.
_OPERATORS = {"add": operator.add, "sub": operator.sub, "mul": operator.mul,
              "div": operator.truediv, "floor_divide": operator.floordiv,
              "remainder": operator.mod, "pow": operator.pow, "eq": operator.eq,
              "ne": operator.ne, "lt": operator.lt, "le": operator.le, "gt": operator.gt,
              "ge": operator.ge, "bitwise_and": operator.and_, "bitwise_or": operator.or_,
              "bitwise_xor": operator.xor}


def _on_device(*xs):
    """The arguments with 0-d host tensors (wrapped scalars, results of ops on them) moved to
    the device of the others: torch takes them beside GPU tensors in arithmetic, but not in
    every op (``logical_and``, ``where``...), and backward formulas mix them freely."""
    for x in xs:
        if isinstance(x, torch.Tensor) and not x.is_cpu:
            dev = x.device
            break
    else:
        return xs
    return tuple(x.to(dev) if isinstance(x, torch.Tensor) and x.is_cpu and x.dim() == 0 else x
                 for x in xs)


def binary(name, a, b):
    a, b = _on_device(_t(a), _t(b))
    if name in _OPERATORS:
        return _OPERATORS[name](a, b)
    if name in ("maximum", "minimum"):
        if not isinstance(b, torch.Tensor):
            return torch.clamp(a, **{"min" if name == "maximum" else "max": b})
        if not isinstance(a, torch.Tensor):
            return torch.clamp(b, **{"min" if name == "maximum" else "max": a})
    dev = (a if isinstance(a, torch.Tensor) else b).device
    a = a if isinstance(a, torch.Tensor) else torch.tensor(a, device=dev)
    b = b if isinstance(b, torch.Tensor) else torch.tensor(b, device=dev)
    return getattr(torch, name)(a, b)


def where(cond, a, b):
    return torch.where(*_on_device(_t(cond), _t(a), _t(b)))


def gelu_backward(g, x, tanh_approx):
    return torch.ops.aten.gelu_backward(g, x, approximate="tanh" if tanh_approx else "none")


# *** copies and casts ***

def clone(x):
    return x.clone(memory_format=torch.contiguous_format)


def to_dtype(x, dtype):
    return x.to(_dtype(dtype))


def copy_(dst, src):
    dst.copy_(_t(src))


def view_scatter_disjoint(src, span, v_shape, v_stride, v_offset):
    """``src`` written through a view (``v_*``, no element seen twice) into a zeroed flat
    buffer of ``span`` elements: the gradient of a view that does not overlap itself."""
    buf = torch.zeros(span, dtype=src.dtype, device=src.device)
    buf.as_strided(v_shape, v_stride, v_offset).copy_(src)
    return buf


def view_scatter(src, x_shape, x_stride, x_offset, v_shape, v_stride, v_offset, n):
    """The gradient of a view: ``src`` (shaped like the view) summed onto the elements of a
    storage of ``n`` elements, read back through ``x``'s layout (an element that ``x`` sees
    more than once takes the sum once)."""
    dev = src.device
    ids = torch.arange(n, device=dev)
    buf = torch.zeros(n, dtype=src.dtype, device=dev)
    buf.index_add_(0, ids.as_strided(v_shape, v_stride, v_offset).reshape(-1), src.reshape(-1))
    xi = ids.as_strided(x_shape, x_stride, x_offset).reshape(-1)
    out = buf[xi]
    if xi.numel() and torch.unique(xi).numel() != xi.numel():
        first = torch.full((n,), xi.numel(), device=dev).scatter_reduce_(
            0, xi, torch.arange(xi.numel(), device=dev), "amin")
        keep = first[xi] == torch.arange(xi.numel(), device=dev)
        out = torch.where(keep, out, torch.zeros((), dtype=out.dtype, device=dev))
    return out.reshape(x_shape)


# *** indexing ***

def _index_tuple(x, dims, indices):
    idx = [slice(None)] * x.dim()
    for d, i in zip(dims, indices):
        idx[d] = _t(i).to(x.device)
    return tuple(idx)


def index(x, dims, indices):
    return x[_index_tuple(x, dims, indices)]


def index_put_(x, dims, indices, value, accumulate):
    idx = [None] * x.dim()
    for d, i in zip(dims, indices):
        idx[d] = _t(i).to(x.device)
    value = _t(value).to(x.device, x.dtype)
    torch.ops.aten.index_put_(x, idx, value, accumulate)


def nonzero(x):
    return torch.nonzero(x)


def gather(x, dim, index):
    return torch.gather(x, dim, _t(index).to(x.device))


def scatter_(x, dim, index, src, add):
    index = _t(index).to(x.device)
    src = _t(src).to(x.device)
    if add:
        x.scatter_add_(dim, index, src)
    else:
        x.scatter_(dim, index, src)


def tri(x, diagonal, upper):
    return torch.triu(x, diagonal) if upper else torch.tril(x, diagonal)


def one_hot(x, num_classes):
    return F.one_hot(x, num_classes)


def cat(xs, dim):
    return torch.cat([_t(x) for x in xs], dim)


# *** reductions ***

_REDUCE = {"sum": torch.sum, "mean": torch.mean, "max": torch.amax, "min": torch.amin,
           "all": torch.all, "any": torch.any, "logsumexp": torch.logsumexp}


def reduce(name, x, dims, keepdim, keep_dtype):
    """``keep_dtype``: the caller asked for x's dtype (sum and prod keep it instead of
    widening integers to int64)."""
    if x.dim() == 0:  # one element: reduce a 1-element view and drop its dim again
        return reduce(name, x.reshape(1), [0], False, keep_dtype)
    dims = tuple(dims) if dims else tuple(range(x.dim()))
    kw = {"dtype": x.dtype} if keep_dtype and name in ("sum", "prod") else {}
    if name == "prod":
        out = x
        for d in sorted((d % x.dim() for d in dims), reverse=True):
            out = torch.prod(out, d, keepdim=True, **kw)
        return out if keepdim else out.squeeze(dims)
    return _REDUCE[name](x, dims, keepdim=keepdim, **kw)


def var(x, dims, correction, keepdim, take_sqrt):
    fn = torch.std if take_sqrt else torch.var
    if x.dim() == 0:
        return fn(x.reshape(1), dim=0, correction=correction)
    return fn(x, dim=tuple(dims) or None, correction=correction, keepdim=keepdim)


def max_min_dim(x, dim, keepdim, want_max):
    r = (torch.max if want_max else torch.min)(x, dim, keepdim=keepdim)
    return r.values, r.indices


def argmax_min(x, dims, keepdim, want_max):
    fn = torch.argmax if want_max else torch.argmin
    return fn(x, dims[0], keepdim=keepdim) if dims else fn(x)


def softmax(x, dim, log):
    return (torch.log_softmax if log else torch.softmax)(x, dim)


def softmax_backward(out, g, dim, log):
    if log:
        return torch.ops.aten._log_softmax_backward_data(g, out, dim, out.dtype)
    return torch.ops.aten._softmax_backward_data(g, out, dim, out.dtype)


def cumsum(x, dim):
    return torch.cumsum(x, dim)


def sort(x, dim, descending):
    r = torch.sort(x, dim=dim, descending=descending, stable=True)
    return r.values, r.indices


def norm(x, p, dims, keepdim):
    if x.dim() == 0:
        return torch.linalg.vector_norm(x, ord=p)
    return torch.linalg.vector_norm(x, ord=p, dim=tuple(dims) or None, keepdim=keepdim)


# *** matrices ***

def matmul(a, b):
    return torch.matmul(a, b)


def linear(x, w, b):
    return F.linear(x, w, _t(b, x.device))


# *** fused ops: forward by torch, backward by torch's autograd over the same op ***

def _grads(outputs, inputs, g):
    wanted = [i for i in inputs if i is not None]
    got = iter(torch.autograd.grad(outputs, wanted, g, allow_unused=True))
    return tuple(next(got) if i is not None else None for i in inputs)


def _leaf(t):
    return None if t is None else t.detach().requires_grad_(True)


def layer_norm(x, shape, w, b, eps):
    return F.layer_norm(x, shape, _t(w, x.device), _t(b, x.device), eps)


def layer_norm_backward(g, x, w, b, shape, eps):
    w, b = _t(w, x.device), _t(b, x.device)
    with torch.enable_grad():
        xl, wl, bl = _leaf(x), _leaf(w), _leaf(b)
        y = F.layer_norm(xl, shape, wl, bl, eps)
        gx, gw, gb = _grads(y, [xl, wl, bl], g)
    zeros = torch.zeros(shape, dtype=x.dtype, device=x.device)
    return gx, gw if gw is not None else zeros, gb if gb is not None else zeros


_REDUCTIONS = {0: "none", 1: "sum", 2: "mean"}


def cross_entropy(x, target, weight, ignore_index, smoothing, reduction):
    return F.cross_entropy(x, _t(target, x.device), _t(weight, x.device), ignore_index=ignore_index,
                           reduction=_REDUCTIONS[reduction], label_smoothing=smoothing)


def cross_entropy_backward(g, x, target, weight, ignore_index, smoothing, reduction):
    with torch.enable_grad():
        xl = _leaf(x)
        loss = cross_entropy(xl, target, weight, ignore_index, smoothing, reduction)
        (gx,) = _grads(loss, [xl], g)
    return gx


def binary_cross_entropy(x, target, weight, reduction):
    return F.binary_cross_entropy(x, target, _t(weight, x.device), reduction=_REDUCTIONS[reduction])


def _attention(q, k, v, mask, causal, scale, keep):
    # The core hands the mask and dropout multipliers over in its compute dtype (float32 for
    # half types); torch's products want them in q's.
    mask, keep = (None if m is None else _t(m, q.device).to(q.dtype) for m in (mask, keep))
    if keep is None:
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal,
                                             scale=scale)
        if mask is not None:  # a row that may attend to nothing gives zeros, as ferrotorch's
            out = out.masked_fill((mask == -math.inf).all(-1, keepdim=True), 0.0)
        return out
    s = (q @ k.transpose(-2, -1)) * scale
    if mask is not None:
        s = s + mask
    if causal:
        lq, lk = s.shape[-2], s.shape[-1]  # top-left aligned, as torch's is_causal
        allowed = torch.ones(lq, lk, dtype=torch.bool, device=s.device).tril()
        s = s.masked_fill(~allowed, -math.inf)
    return (torch.softmax(s, -1) * keep) @ v


def attention(q, k, v, mask, causal, scale, keep):
    return _attention(q, k, v, mask, causal, scale, keep)


def attention_backward(g, q, k, v, mask, causal, scale, keep):
    with torch.enable_grad():
        ql, kl, vl = _leaf(q), _leaf(k), _leaf(v)
        out = _attention(ql, kl, vl, mask, causal, scale, keep)
        return _grads(out, [ql, kl, vl], g)


# *** optimizers: in place on the parameters and their state ***

def adam_step(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps, lr, beta1, beta2,
              eps, weight_decay, decoupled, amsgrad, maximize):
    """Adam(W) over all the parameters at once with torch's multi-tensor (``_foreach_``) ops:
    a handful of kernel launches per step instead of a handful per parameter."""
    if maximize:
        grads = torch._foreach_neg(grads)
    if weight_decay != 0:
        if decoupled:
            torch._foreach_mul_(params, 1 - lr * weight_decay)
        else:
            grads = torch._foreach_add(grads, params, alpha=weight_decay)
    torch._foreach_lerp_(exp_avgs, grads, 1 - beta1)
    torch._foreach_mul_(exp_avg_sqs, beta2)
    torch._foreach_addcmul_(exp_avg_sqs, grads, grads, value=1 - beta2)
    if amsgrad:
        torch._foreach_maximum_(max_exp_avg_sqs, exp_avg_sqs)
    denom = torch._foreach_sqrt(max_exp_avg_sqs if amsgrad else exp_avg_sqs)
    torch._foreach_div_(denom, [math.sqrt(1 - beta2 ** step) for step in steps])
    torch._foreach_add_(denom, eps)
    torch._foreach_addcdiv_(params, exp_avgs, denom, [-lr / (1 - beta1 ** step) for step in steps])


def sgd_step(params, grads, bufs, fresh, lr, momentum, dampening, weight_decay, nesterov,
             maximize):
    for i, p in enumerate(params):
        g = -grads[i] if maximize else grads[i]
        if weight_decay != 0:
            g = g.add(p, alpha=weight_decay)
        if momentum != 0:
            buf = bufs[i]
            if fresh[i]:
                buf.copy_(g)
            else:
                buf.mul_(momentum).add_(g, alpha=1 - dampening)
            g = g.add(buf, alpha=momentum) if nesterov else buf
        p.add_(g, alpha=-lr)
