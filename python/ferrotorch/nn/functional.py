"""``ferrotorch.nn.functional``: stateless functions on tensors, named and defaulted like torch's.

Everything is composed from differentiable tensor ops, so autograd (and ``create_graph``) works
through every function. The hot functions (layer_norm, gelu, softmax, log_softmax,
cross_entropy, scaled_dot_product_attention) keep their argument checks in the public function and
their arithmetic in a private ``_*_math`` function, so a fused kernel can replace the math alone.

>>> import ferrotorch as torch
>>> import ferrotorch.nn.functional as F
>>> F.cross_entropy(torch.tensor([[2.0, 0.0]]), torch.tensor([0]))
tensor(0.1269)
"""

import math
import operator
import warnings

from ferrotorch import _C
from ferrotorch import amp as _amp
from ferrotorch._C import Tensor
from ferrotorch.autograd.function import Function
from ferrotorch.autograd.grad_mode import no_grad

# torch's names for dtypes in kernel messages ("not implemented for 'Long'").
_KERNEL_NAMES = {
    "torch.float32": "Float", "torch.float64": "Double", "torch.float16": "Half",
    "torch.bfloat16": "BFloat16", "torch.int64": "Long", "torch.int32": "Int",
    "torch.uint8": "Byte", "torch.bool": "Bool",
}


# ... and the C++ type names that other messages print ("attn_mask.dtype: long int").
_CPP_NAMES = {
    "torch.float32": "float", "torch.float64": "double", "torch.float16": "c10::Half",
    "torch.bfloat16": "c10::BFloat16", "torch.int64": "long int", "torch.int32": "int",
    "torch.uint8": "unsigned char", "torch.bool": "bool",
}


def _cname(dtype):
    return _CPP_NAMES.get(str(dtype), str(dtype))


def _kname(dtype):
    return _KERNEL_NAMES.get(str(dtype), str(dtype))


def _check_tensor(fn, name, x, pos):
    if not isinstance(x, Tensor):
        raise TypeError(
            f"{fn}(): argument '{name}' (position {pos}) must be Tensor, not {type(x).__name__}"
        )


def _check_floating(fn, x):
    if not x.is_floating_point():
        raise NotImplementedError(
            f'"{fn}" not implemented for \'{_kname(x.dtype)}\': it needs a floating point '
            "input; convert it first, e.g. input.float()"
        )


def _broadcast_shape(a, b):
    a, b = list(a), list(b)
    n = max(len(a), len(b))
    a, b = [1] * (n - len(a)) + a, [1] * (n - len(b)) + b
    out = []
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y and 1 not in (x, y):
            raise RuntimeError(
                f"The size of tensor a ({x}) must match the size of tensor b ({y}) at "
                f"non-singleton dimension {i}"
            )
        out.append(y if x == 1 else x)
    return out


# *** reductions ***

_REDUCTIONS = ("none", "mean", "sum")


def _reduction(size_average, reduce, reduction):
    """The reduction name after torch's legacy ``size_average``/``reduce`` arguments."""
    if size_average is not None or reduce is not None:
        size_average = True if size_average is None else size_average
        reduce = True if reduce is None else reduce
        reduction = "mean" if size_average and reduce else "sum" if reduce else "none"
        warnings.warn(
            "size_average and reduce args will be deprecated, please use "
            f"reduction='{reduction}' instead.",
            stacklevel=3,
        )
    if reduction == "elementwise_mean":
        warnings.warn(
            "reduction='elementwise_mean' is deprecated. Please use reduction='mean' instead.",
            stacklevel=3,
        )
        return "mean"
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(f"{reduction} is not a valid value for reduction")
    return reduction


def _reduce(loss, reduction):
    if reduction == "none":
        return loss
    return loss.sum() if reduction == "sum" else loss.mean()


# *** activations ***

def relu(input, inplace=False):
    """max(x, 0) elementwise."""
    _check_tensor("relu", "input", input, 1)
    return input.relu_() if inplace else input.relu()


def _gelu_math(x, approximate):
    return x.gelu(approximate=approximate)


def gelu(input, approximate="none"):
    """Gaussian error linear unit; ``approximate='tanh'`` gives the tanh approximation.

    >>> import ferrotorch as torch
    >>> torch.nn.functional.gelu(torch.tensor([1.0]))
    tensor([0.8413])
    """
    _check_tensor("gelu", "input", input, 1)
    if approximate not in ("none", "tanh"):
        raise RuntimeError(
            f"approximate argument must be either none or tanh, got {approximate!r}")
    return _gelu_math(input, approximate)


def silu(input, inplace=False):
    """x * sigmoid(x) elementwise."""
    _check_tensor("silu", "input", input, 1)
    return input.silu_() if inplace else input.silu()


def sigmoid(input):
    """1 / (1 + exp(-x)) elementwise."""
    _check_tensor("sigmoid", "input", input, 1)
    return input.sigmoid()


def tanh(input):
    """Hyperbolic tangent elementwise."""
    _check_tensor("tanh", "input", input, 1)
    return input.tanh()


def softplus(input, beta=1.0, threshold=20.0):
    """``log(1 + exp(beta * x)) / beta`` elementwise, and ``x`` itself where
    ``beta * x > threshold`` (where the two agree to within rounding).

    >>> import ferrotorch as torch
    >>> torch.nn.functional.softplus(torch.tensor([0.0, 30.0]))
    tensor([ 0.6931, 30.0000])
    """
    _check_tensor("softplus", "input", input, 1)
    _check_floating("softplus_cpu", input)
    z = input * beta
    linear = z > threshold
    # exp overflows where the linear branch is taken; feeding 0 there keeps the unused
    # branch's gradient finite (inf * 0 would turn it into NaN through where's backward).
    curved = _C.where(linear, 0.0, z).exp().log1p() / beta
    return _C.where(linear, input, curved)


def _get_softmax_dim(name, ndim, stacklevel):
    warnings.warn(
        f"Implicit dimension choice for {name} has been deprecated. "
        "Change the call to include dim=X as an argument.",
        stacklevel=stacklevel,
    )
    return 0 if ndim in (0, 1, 3) else 1


def _softmax_math(x, dim):
    return x.softmax(dim)


def _log_softmax_math(x, dim):
    return x.log_softmax(dim)


def softmax(input, dim=None, _stacklevel=3, dtype=None):
    """exp(x) / sum(exp(x)) along ``dim`` (cast to ``dtype`` first when given).

    >>> import ferrotorch as torch
    >>> torch.nn.functional.softmax(torch.tensor([0.0, 0.0]), dim=0)
    tensor([0.5000, 0.5000])
    """
    _check_tensor("softmax", "input", input, 1)
    if dim is None:
        dim = _get_softmax_dim("softmax", input.dim(), _stacklevel)
    if dtype is not None:
        input = input.to(dtype)
    return _softmax_math(input, dim)


def log_softmax(input, dim=None, _stacklevel=3, dtype=None):
    """log(softmax(x)) along ``dim``, computed stably."""
    _check_tensor("log_softmax", "input", input, 1)
    if dim is None:
        dim = _get_softmax_dim("log_softmax", input.dim(), _stacklevel)
    if dtype is not None:
        input = input.to(dtype)
    return _log_softmax_math(input, dim)


# *** linear, embedding, dropout ***

def linear(input, weight, bias=None):
    """``input @ weight.T + bias``.

    >>> import ferrotorch as torch
    >>> torch.nn.functional.linear(torch.ones(1, 2), torch.ones(3, 2), torch.zeros(3))
    tensor([[2., 2., 2.]])
    """
    _check_tensor("linear", "input", input, 1)
    _check_tensor("linear", "weight", weight, 2)
    if bias is not None and not isinstance(bias, Tensor):
        return input.matmul(weight.t()) + bias
    return _C.linear(input, weight, bias)


class _ScaleGrad(Function):
    """Identity forward; multiplies the incoming gradient by a constant factor."""

    @staticmethod
    def forward(ctx, x, factor):
        ctx.factor = factor
        return x.clone()

    @staticmethod
    def backward(ctx, g):
        return g * ctx.factor, None


def _embedding_renorm_(weight, indices, max_norm, norm_type):
    # torch rescales, in place and untracked, each looked-up row whose norm exceeds max_norm.
    with no_grad():
        for row in sorted(set(indices.reshape(-1).tolist())):
            norm = weight[row].norm(norm_type).item()
            if norm > max_norm:
                weight[row] = weight[row] * (max_norm / (norm + 1e-7))


def embedding(input, weight, padding_idx=None, max_norm=None, norm_type=2.0,
              scale_grad_by_freq=False, sparse=False):
    """Rows of ``weight`` picked by the integer tensor ``input``: shape ``input.shape + (D,)``.
    The ``padding_idx`` row gets no gradient.

    >>> import ferrotorch as torch
    >>> w = torch.tensor([[0.0, 1.0], [2.0, 3.0]])
    >>> torch.nn.functional.embedding(torch.tensor([1, 0]), w)
    tensor([[2., 3.],
            [0., 1.]])
    """
    _check_tensor("embedding", "input", input, 1)
    _check_tensor("embedding", "weight", weight, 2)
    if weight.dim() != 2:
        raise RuntimeError(f"'weight' must be 2-D, but got a weight of shape {list(weight.shape)}")
    if input.dtype not in (_C.int64, _C.int32):
        raise RuntimeError(
            "Expected tensor for argument #1 'indices' to have one of the following scalar "
            f"types: Long, Int; but got {input.dtype} instead (while checking arguments for "
            "embedding); convert the indices with input.long()"
        )
    n = weight.size(0)
    if padding_idx is not None:
        if not -n <= padding_idx < n:
            raise AssertionError(
                f"Padding_idx must be within num_embeddings: got padding_idx={padding_idx} for "
                f"a weight of {n} rows")
        padding_idx %= n
    if sparse:
        raise NotImplementedError(
            "embedding(sparse=True): ferrotorch has no sparse gradients; use sparse=False "
            "(the gradient of weight is then dense, with the same values)"
        )
    flat = input.reshape(-1)
    # index_select of the core wraps negative indices around; torch's embedding rejects them
    if flat.numel() and flat.min().item() < 0:
        raise IndexError(
            f"index out of range in self: index {flat.min().item()} is negative (embedding "
            f"indices must be in [0, {n - 1}])"
        )
    if max_norm is not None:
        _embedding_renorm_(weight, input, max_norm, norm_type)
    out = weight.index_select(0, flat).reshape(*input.shape, weight.size(1))
    if not (weight.requires_grad and _C.is_grad_enabled()):
        return out
    if scale_grad_by_freq:
        counts = _C.zeros(n, dtype=weight.dtype, device=weight.device).scatter_add(
            0, flat.long(), _C.ones(flat.shape, dtype=weight.dtype, device=weight.device))
        factor = counts.index_select(0, flat).reciprocal().reshape(*input.shape, 1)
        out = _ScaleGrad.apply(out, factor)
    if padding_idx is not None:
        # Same values; the padding rows' copies are cut from the graph.
        pad = (input == padding_idx).unsqueeze(-1)
        out = _C.where(pad, out.detach(), out)
    return out


def _empty_like_preserving(x):
    """An uninitialized tensor shaped like ``x`` with torch's ``empty_like`` strides: the same
    memory order as ``x`` when ``x`` is dense (a transposed view), else row-major. Random fills
    run in memory order, so this decides which element gets which random number."""
    if x.is_contiguous():
        return _C.empty(x.shape, dtype=x.dtype, device=x.device)
    sizes, strides = list(x.shape), list(x.stride())
    perm = sorted(range(x.dim()), key=lambda d: -strides[d])
    expected = 1
    for d in reversed(perm):
        if sizes[d] != 1 and strides[d] != expected:
            return _C.empty(x.shape, dtype=x.dtype, device=x.device)
        expected *= sizes[d]
    inverse = [perm.index(d) for d in range(x.dim())]
    return _C.empty([sizes[d] for d in perm], dtype=x.dtype, device=x.device).permute(*inverse)


def dropout(input, p=0.5, training=True, inplace=False):
    """Zeroes each element with probability ``p`` and scales the rest by ``1/(1-p)``; the
    identity when ``training`` is False. Draws the same mask as torch under the same seed.

    >>> import ferrotorch as torch
    >>> x = torch.ones(4)
    >>> torch.nn.functional.dropout(x, 0.5, training=False) is x
    True
    """
    _check_tensor("dropout", "input", input, 1)
    if p < 0.0 or p > 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if p == 0 or not training or input.numel() == 0:
        return input
    if p == 1:
        zero = _C.zeros((), dtype=input.dtype)
        return input.mul_(zero) if inplace else input * zero
    # torch's CPU dropout: a bernoulli(1-p) mask like the input, divided by 1-p, times input.
    noise = _empty_like_preserving(input).bernoulli_(1 - p)
    noise = noise.div_(1 - p)
    return input.mul_(noise) if inplace else input * noise


# *** normalization ***

def _layer_norm_math(x, shape, weight, bias, eps):
    if shape and all(p is None or p.dtype == x.dtype for p in (weight, bias)):
        # The fused Rust kernel: one pass forward, one pass backward.
        return _C.layer_norm(x, list(shape), weight, bias, float(eps))
    dims = tuple(range(-len(shape), 0))
    if dims:
        mean = x.mean(dims, keepdim=True)
        centered = x - mean
        var = (centered * centered).mean(dims, keepdim=True)
    else:
        centered = x - x
        var = _C.zeros((), dtype=x.dtype)
    y = centered * (var + eps).rsqrt()
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    """Normalizes over the last ``len(normalized_shape)`` dims (biased variance), then scales
    by ``weight`` and shifts by ``bias``.

    >>> import ferrotorch as torch
    >>> torch.nn.functional.layer_norm(torch.tensor([[1.0, 3.0]]), (2,))
    tensor([[-1.0000,  1.0000]])
    """
    _check_tensor("layer_norm", "input", input, 1)
    if isinstance(normalized_shape, int):
        raise TypeError(
            "layer_norm(): argument 'normalized_shape' (position 2) must be tuple of ints, "
            "not int; pass (n,) for the last dimension"
        )
    shape = [int(s) for s in normalized_shape]
    k = len(shape)
    if input.dim() < k or list(input.shape)[input.dim() - k:] != shape:
        raise RuntimeError(
            f"Given normalized_shape={shape}, expected input with shape [*, "
            f"{', '.join(map(str, shape))}], but got input of size{list(input.shape)}"
        )
    for name, p in (("weight", weight), ("bias", bias)):
        if p is not None and list(p.shape) != shape:
            raise RuntimeError(
                f"Expected {name} to be of same shape as normalized_shape, but got {name} of "
                f"shape {list(p.shape)} and normalized_shape = {shape}"
            )
    _check_floating("LayerNormKernelImpl", input)
    return _layer_norm_math(input, shape, weight, bias, eps)


# *** regression losses ***

def _check_pointwise_loss(fn, input, target):
    _check_tensor(fn, "input", input, 1)
    _check_tensor(fn, "target", target, 2)
    if target.size() != input.size():
        warnings.warn(
            f"Using a target size ({target.size()}) that is different to the input size "
            f"({input.size()}). This will likely lead to incorrect results due to "
            "broadcasting. Please ensure they have the same size.",
            stacklevel=3,
        )
    for x in (input, target):
        _check_floating(fn, x)


def _weighted_reduce(loss, weight, input, reduction):
    if weight is None:
        return _reduce(loss, reduction)
    if weight.size() != input.size():
        raise ValueError("Weights and input must have the same size.")
    loss = loss * weight
    if reduction == "mean":
        return loss.sum() / weight.sum()
    return _reduce(loss, reduction)


def mse_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    """Mean squared error ``(input - target)**2`` with the given reduction.

    >>> import ferrotorch as torch
    >>> torch.nn.functional.mse_loss(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 4.0]))
    tensor(2.)
    """
    input, target, weight = _amp._float32_args(input, target, weight)
    _check_pointwise_loss("mse_loss", input, target)
    reduction = _reduction(size_average, reduce, reduction)
    diff = input - target
    return _weighted_reduce(diff * diff, weight, input, reduction)


def l1_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    """Mean absolute error ``|input - target|`` with the given reduction."""
    input, target, weight = _amp._float32_args(input, target, weight)
    _check_pointwise_loss("l1_loss", input, target)
    reduction = _reduction(size_average, reduce, reduction)
    return _weighted_reduce((input - target).abs(), weight, input, reduction)


# *** binary classification losses ***

def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None,
                         reduction="mean"):
    """``-w * (t * log(x) + (1 - t) * log(1 - x))`` for probabilities ``x``; target and input
    must have the same size.

    >>> import ferrotorch as torch
    >>> torch.nn.functional.binary_cross_entropy(torch.tensor([0.5]), torch.tensor([1.0]))
    tensor(0.6931)
    """
    if isinstance(input, Tensor) and _amp._on_gpu_region(input):
        raise RuntimeError(
            "torch.nn.functional.binary_cross_entropy and torch.nn.BCELoss are unsafe to "
            "autocast: combine the sigmoid before it with the loss, as "
            "binary_cross_entropy_with_logits (or BCEWithLogitsLoss), which is safe to autocast")
    input, target, weight = _amp._float32_args(input, target, weight)
    _check_tensor("binary_cross_entropy", "input", input, 1)
    _check_tensor("binary_cross_entropy", "target", target, 2)
    if size_average is not None or reduce is not None or reduction not in _REDUCTIONS:
        reduction = _reduction(size_average, reduce, reduction)
    if weight is not None:
        weight = weight.expand(_broadcast_shape(target.shape, weight.shape))
    # One fused op: the size, dtype and [0, 1] checks, the loss and its backward.
    return _C.binary_cross_entropy(input, target, weight, reduction)


def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None, reduce=None,
                                     reduction="mean", pos_weight=None):
    """BCE on logits, computed stably as ``(1 - t) * x - log_sigmoid(x) * (1 + (pw - 1) * t)``.

    >>> import ferrotorch as torch
    >>> F = torch.nn.functional
    >>> F.binary_cross_entropy_with_logits(torch.tensor([0.0]), torch.tensor([1.0]))
    tensor(0.6931)
    """
    input, target, weight, pos_weight = _amp._float32_args(input, target, weight, pos_weight)
    _check_tensor("binary_cross_entropy_with_logits", "input", input, 1)
    _check_tensor("binary_cross_entropy_with_logits", "target", target, 2)
    reduction = _reduction(size_average, reduce, reduction)
    if target.size() != input.size():
        raise ValueError(
            f"Target size ({target.size()}) must be the same as input size ({input.size()})"
        )
    _check_floating("binary_cross_entropy_with_logits", input)
    if not target.is_floating_point():
        raise RuntimeError(
            f"result type {_kname(input.dtype)} can't be cast to the desired output type "
            f"{_kname(target.dtype)}: the target must be floating point; use target.float()"
        )
    x = input
    # min(x, 0) written as (x - |x|) / 2: exact, and its gradient at 0 is torch's 1/2.
    log_sig = (x - x.abs()) * 0.5 - x.abs().neg().exp().log1p()
    if pos_weight is not None:
        log_sig = log_sig * ((pos_weight - 1) * target + 1)
    loss = (1 - target) * x - log_sig
    if weight is not None:
        loss = loss * weight
    if loss.dtype != target.dtype:
        # torch accumulates this loss in the target's dtype.
        loss = loss.to(target.dtype)
    return _reduce(loss, reduction)


# *** classification losses ***

def _class_dim(x):
    return 0 if x.dim() == 1 else 1


def _weight_view(weight, x):
    """``weight`` (C,) shaped to broadcast along ``x``'s class dim."""
    if x.dim() <= 1:
        return weight
    shape = [1] * x.dim()
    shape[1] = weight.numel()
    return weight.reshape(shape)


def _check_class_weight(weight, n_classes, input, prefix=""):
    if weight is None:
        return
    if weight.dim() != 1 or weight.numel() != n_classes:
        raise RuntimeError(
            f"{prefix}weight tensor should be defined either for all {n_classes} classes or no "
            f"classes but got weight tensor of shape: {list(weight.shape)}"
        )
    if weight.dtype != input.dtype:
        raise RuntimeError(
            f"expected scalar type {_kname(input.dtype)} but found {_kname(weight.dtype)} "
            "(the class weight must have the input's dtype; use weight.to(input.dtype))"
        )


def _check_class_targets(input, target, weight, ignore_index):
    """torch's nll_loss_nd checks: shapes, target dtype, weight, and every target in range."""
    if input.dim() < 1:
        raise ValueError(f"Expected 1 or more dimensions (got {input.dim()})")
    n_batch = target.size(0) if target.dim() > 0 else None
    if input.dim() != 1 and input.size(0) != n_batch:
        raise ValueError(
            f"Expected input batch_size ({input.size(0)}) to match target batch_size "
            f"({n_batch if n_batch is not None else 'none: the target is 0-d'})."
        )
    if input.dim() == 1 and target.dim() == 1 and target.size(0) != 1:
        raise ValueError(
            f"For 1D input, 1D target must have size 1, but got target size: {target.size(0)}"
        )
    if input.dim() <= 2 and target.dim() > 1:
        raise RuntimeError(
            "0D or 1D target tensor expected, multi-target not supported (input "
            f"{list(input.shape)}, target {list(target.shape)}; a target of class "
            "probabilities has the input's shape)"
        )
    if input.dim() > 2:
        expected = [input.size(0)] + list(input.shape)[2:]
        if list(target.shape) != expected:
            raise RuntimeError(f"Expected target size {expected}, got {list(target.shape)}")
    if target.dtype not in (_C.int64, _C.uint8):
        raise RuntimeError(
            f"expected target dtype to be Long or Byte, but got {_kname(target.dtype)}; class "
            "indices must be int64 (target.long()), or give class probabilities with the "
            "input's shape"
        )
    n_classes = input.size(_class_dim(input))
    _check_class_weight(weight, n_classes, input)
    if target.numel():
        bad = ((target < 0) | (target >= n_classes)) & (target != ignore_index)
        if bad.any().item():
            first = target.masked_select(bad).reshape(-1)[0].item()
            raise IndexError(
                f"Target {first} is out of bounds. (input has {n_classes} classes, so a "
                f"target must be in [0, {n_classes - 1}] or equal ignore_index={ignore_index})"
            )


def _nll_math(logp, target, weight, ignore_index, reduction):
    """-logp[target] per element, weighted; mean divides by the total weight of kept targets."""
    if logp.dim() == 1 and target.dim() == 1:
        target = target.reshape(())
    dim = _class_dim(logp)
    ignored = target == ignore_index
    safe = target.masked_fill(ignored, 0).long()
    picked = logp.gather(dim, safe.unsqueeze(dim)).squeeze(dim)
    if weight is None:
        w = (~ignored).to(logp.dtype)
    else:
        w = weight.index_select(0, safe.reshape(-1)).reshape(safe.shape).masked_fill(ignored, 0)
    loss = -picked * w
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    return loss.sum() / w.sum()


def nll_loss(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
             reduction="mean"):
    """Negative log likelihood: ``-input[n, target[n]]`` (times the class weight), for
    inputs (C), (N, C) or (N, C, d1, ...) of log-probabilities."""
    input, weight = _amp._float32_args(input, weight)
    _check_tensor("nll_loss", "input", input, 1)
    _check_tensor("nll_loss", "target", target, 2)
    reduction = _reduction(size_average, reduce, reduction)
    _check_class_targets(input, target, weight, ignore_index)
    return _nll_math(input, target, weight, ignore_index, reduction)


def _cross_entropy_fused(input, target, weight, ignore_index, reduction, label_smoothing):
    """Class-index cross-entropy through the fused Rust kernel: (C), (N, C) and
    (N, C, d1, ...) inputs are brought to (rows, C)."""
    if input.dim() == 1:
        loss = _C.cross_entropy(input.unsqueeze(0), target.reshape(1), weight, ignore_index,
                                label_smoothing, reduction)
        return loss.reshape(()) if reduction == "none" else loss
    if input.dim() == 2:
        return _C.cross_entropy(input, target, weight, ignore_index, label_smoothing, reduction)
    c = input.size(1)
    rows = input.movedim(1, -1).reshape(-1, c)
    loss = _C.cross_entropy(rows, target.reshape(-1), weight, ignore_index, label_smoothing,
                            reduction)
    return loss.reshape(target.shape) if reduction == "none" else loss


def _cross_entropy_math(input, target, weight, ignore_index, reduction, label_smoothing):
    if input.shape != target.shape and target.dtype == _C.int64 and input.dim() >= 1:
        return _cross_entropy_fused(input, target, weight, ignore_index, reduction,
                                    label_smoothing)
    dim = _class_dim(input)
    n_classes = input.size(dim)
    logp = input.log_softmax(dim)
    if input.shape == target.shape:  # class probabilities
        if label_smoothing > 0:
            target = target * (1 - label_smoothing) + label_smoothing / n_classes
        prod = logp * target
        if weight is not None:
            prod = prod * _weight_view(weight, input)
        if reduction == "none":
            return -prod.sum(dim)
        if reduction == "sum":
            return -prod.sum()
        if input.numel() == 0:
            return -prod.sum() * math.nan
        return -prod.sum() / (input.numel() // n_classes)
    nll = _nll_math(logp, target, weight, ignore_index, reduction)
    if label_smoothing <= 0:
        return nll
    if logp.dim() == 1 and target.dim() == 1:
        target = target.reshape(())
    ignored = target == ignore_index
    if weight is not None:
        smooth = -(logp * _weight_view(weight, input)).sum(dim)
    else:
        smooth = -logp.sum(dim)
    smooth = smooth.masked_fill(ignored, 0.0)
    if reduction == "mean":
        if weight is not None:
            safe = target.masked_fill(ignored, 0).long().reshape(-1)
            total = weight.index_select(0, safe).masked_fill(ignored.reshape(-1), 0).sum()
        else:
            total = (~ignored).sum()
        smooth = smooth.sum() / total
    elif reduction == "sum":
        smooth = smooth.sum()
    return (1 - label_smoothing) * nll + smooth * (label_smoothing / n_classes)


def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
                  reduction="mean", label_smoothing=0.0):
    """Cross entropy between logits ``input`` (C), (N, C) or (N, C, d1, ...) and a target of
    class indices (shape without C) or of class probabilities (input's shape).

    >>> import ferrotorch as torch
    >>> logits = torch.tensor([[1.0, 2.0, 3.0]])
    >>> torch.nn.functional.cross_entropy(logits, torch.tensor([2]))
    tensor(0.4076)
    """
    input, target, weight = _amp._float32_args(input, target, weight)
    _check_tensor("cross_entropy", "input", input, 1)
    _check_tensor("cross_entropy", "target", target, 2)
    reduction = _reduction(size_average, reduce, reduction)
    _check_floating("log_softmax", input)
    if input.shape == target.shape:
        if not target.is_floating_point():
            raise RuntimeError(
                "Expected floating point type for target with class probabilities, got "
                f"{_kname(target.dtype)}"
            )
        if ignore_index >= 0:
            raise RuntimeError("ignore_index is not supported for floating point target")
        n_classes = input.size(_class_dim(input)) if input.dim() else 1
        _check_class_weight(weight, n_classes, input, "cross_entropy: ")
    else:
        _check_class_targets(input, target, weight, ignore_index)
    if label_smoothing > 1.0:
        raise RuntimeError(
            f"label_smoothing must be between 0.0 and 1.0. Got: {label_smoothing}"
        )
    return _cross_entropy_math(input, target, weight, ignore_index, reduction, label_smoothing)


# *** padding ***

_PAD_MODES = ("constant", "reflect", "replicate", "circular")


def _pad_indices(mode, n, left, right, dim, shape):
    """Source positions along one dim for the output positions -left .. n+right-1."""
    if mode == "reflect" and (left >= n or right >= n):
        raise RuntimeError(
            "Argument #4: Padding size should be less than the corresponding input dimension, "
            f"but got: padding ({left}, {right}) at dimension {dim} of input {list(shape)}"
        )
    if mode == "circular" and (left > n or right > n):
        raise RuntimeError(
            "Padding value causes wrapping around more than once. (padding "
            f"({left}, {right}) at dimension {dim} of size {n}; circular padding may be at "
            "most the dimension's size)"
        )
    if mode == "circular":
        # torch crops first, then wraps around what is left.
        start, stop = max(-left, 0), n - max(-right, 0)
        m = stop - start
        if m <= 0:
            raise RuntimeError(
                f"circular padding ({left}, {right}) crops all {n} elements of dimension {dim}: "
                "nothing is left to wrap around"
            )
        return [start + i % m for i in range(-max(left, 0), m + max(right, 0))]
    out = []
    for i in range(-left, n + right):
        if mode == "replicate":
            j = min(max(i, 0), n - 1)
        else:
            j = -i if i < 0 else 2 * (n - 1) - i if i >= n else i
        out.append(j)
    return out


def _pad_constant(x, pads, value):
    for k in range(len(pads) // 2):
        d = x.dim() - 1 - k
        left, right = pads[2 * k], pads[2 * k + 1]
        n = x.size(d)
        if n + left + right < 0:
            raise RuntimeError(
                f"pad(): padding ({left}, {right}) of dimension {d} (size {n}) gives a "
                f"negative output size {n + left + right}; negative padding may crop at most "
                "the dimension's size"
            )
        start, stop = max(-left, 0), n - max(-right, 0)
        if start or stop != n:
            x = x.narrow(d, start, max(stop - start, 0))
        parts = []
        for amount in (left, right):
            shape = list(x.shape)
            shape[d] = max(amount, 0)
            parts.append(_C.full(shape, value, dtype=x.dtype, device=x.device)
                         if amount > 0 else None)
        if parts[0] is not None or parts[1] is not None:
            x = _C.cat([p for p in (parts[0], x, parts[1]) if p is not None], d)
    return x


def pad(input, pad, mode="constant", value=None):
    """Pads the last ``len(pad) // 2`` dims: ``pad = (left_last, right_last, left_2nd_last,
    ...)``; negative amounts crop. Modes: constant (any number of dims), reflect, replicate
    and circular (the last 1-3 dims of a batched input, like torch).

    >>> import ferrotorch as torch
    >>> torch.nn.functional.pad(torch.tensor([1.0, 2.0]), (1, 2))
    tensor([0., 1., 2., 0., 0.])
    """
    _check_tensor("pad", "input", input, 1)
    pads = list(pad)
    for i, p in enumerate(pads):
        try:
            pads[i] = operator.index(p)  # ints, numpy ints; not floats
        except TypeError:
            raise TypeError(
                "pad(): argument 'pad' (position 2) must be tuple of ints, but found element of "
                f"type {type(p).__name__} at pos {i}"
            ) from None
    if len(pads) % 2:
        raise RuntimeError("Padding length must be divisible by 2")
    if len(pads) // 2 > input.dim():
        raise RuntimeError(
            "Padding length should be less than or equal to two times the input dimension but "
            f"got padding length {len(pads)} and input of dimension {input.dim()}"
        )
    if mode not in _PAD_MODES:
        raise NotImplementedError(
            f"Unrecognised padding mode {mode} (expected one of {', '.join(_PAD_MODES)})"
        )
    if mode == "constant":
        return _pad_constant(input, pads, 0 if value is None else value)
    if value is not None:
        raise RuntimeError(f'Padding mode "{mode}" doesn\'t take in value argument')
    k = len(pads) // 2
    if k not in (1, 2, 3) or input.dim() not in (k + 1, k + 2):
        raise NotImplementedError(
            f"Padding size {len(pads)} is not supported for {input.dim()}D input tensor.\n"
            "Supported combinations for non-constant padding:\n"
            "  - 2D or 3D input: padding size = 2 (pads last dimension)\n"
            "  - 3D or 4D input: padding size = 4 (pads last 2 dimensions)\n"
            "  - 4D or 5D input: padding size = 6 (pads last 3 dimensions)"
        )
    if mode == "replicate" and any(input.size(d) == 0 for d in range(1, input.dim())):
        raise RuntimeError(
            f"Expected {k + 1}D or {k + 2}D (batch mode) tensor with possibly 0 batch size and "
            f"other non-zero dimensions for input, but got: {list(input.shape)}"
        )
    x = input
    for j in range(k):
        d = x.dim() - 1 - j
        idx = _pad_indices(mode, x.size(d), pads[2 * j], pads[2 * j + 1], d, input.shape)
        x = x.index_select(d, _C.tensor(idx, dtype=_C.int64))
    return x


# *** attention ***

def _safe_softmax(x, dim):
    """softmax that gives zeros (and zero gradients) for slices that are entirely -inf."""
    empty = (x == -math.inf).all(dim=dim, keepdim=True)
    out = x.masked_fill(empty, 0.0).softmax(dim)
    return out.masked_fill(empty, 0.0)


def _repeat_heads(x, groups):
    """repeat_interleave of the head dim (-3) by ``groups``."""
    if groups == 1:
        return x
    shape = list(x.shape)
    expanded = x.unsqueeze(-3).expand(*shape[:-2], groups, *shape[-2:])
    return expanded.reshape(*shape[:-3], shape[-3] * groups, *shape[-2:])


def _sdpa_fused(query, key, value, attn_mask, is_causal, scale, dropout_p=0.0):
    """Attention through the fused Rust kernel, or None when the inputs need the general path
    (batch dims that broadcast, a mask that requires grad). Dropout draws torch's mask: a
    bernoulli(1-p) tensor shaped like the attention weights, divided by 1-p."""
    batch = tuple(query.shape[:-2])
    if tuple(key.shape[:-2]) != batch or tuple(value.shape[:-2]) != batch:
        return None
    if attn_mask is not None and attn_mask.requires_grad:
        return None
    L, E = query.shape[-2:]
    S, Ev = key.size(-2), value.size(-1)
    n = 1
    for d in batch:
        n *= d
    mask = None
    if attn_mask is not None:
        if attn_mask.dtype == _C.bool:
            attn_mask = _C.zeros(attn_mask.shape, dtype=query.dtype,
                                 device=query.device).masked_fill(~attn_mask, -math.inf)
        mask = attn_mask.expand(*batch, L, S).reshape(n, L, S)
    s = 1.0 / math.sqrt(E) if scale is None else scale
    keep = None
    if dropout_p > 0.0:
        keep = _C.empty((n, L, S), dtype=query.dtype, device=query.device).bernoulli_(1 - dropout_p)
        keep = keep.div_(1 - dropout_p)
    out = _C._attention(query.reshape(n, L, E), key.reshape(n, S, E), value.reshape(n, S, Ev),
                        mask, bool(is_causal), float(s), keep)
    return out.reshape(*batch, L, Ev)


def _sdpa_math(query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa):
    if enable_gqa and query.dim() >= 3:
        key = _repeat_heads(key, query.size(-3) // key.size(-3))
        value = _repeat_heads(value, query.size(-3) // value.size(-3))
        enable_gqa = False
    if dropout_p < 1.0:
        out = _sdpa_fused(query, key, value, attn_mask, is_causal, scale, dropout_p)
        if out is not None:
            return out
    # torch's math path: q and k each scaled by sqrt(scale), a bool mask becomes 0/-inf, a
    # fully masked row attends to nothing (zeros), dropout on the attention weights.
    s = 1.0 / math.sqrt(query.size(-1)) if scale is None else scale
    root = math.sqrt(abs(s))
    q = query * (-root if s < 0 else root)
    if is_causal:
        L, S = query.size(-2), key.size(-2)
        attn_mask = _C.ones((L, S), dtype=_C.bool, device=query.device).tril()
    if attn_mask is not None and attn_mask.dtype == _C.bool:
        attn_mask = _C.zeros(attn_mask.shape, dtype=query.dtype, device=query.device).masked_fill(
            ~attn_mask, -math.inf)
    if enable_gqa and query.dim() >= 3:
        key = _repeat_heads(key, query.size(-3) // key.size(-3))
        value = _repeat_heads(value, query.size(-3) // value.size(-3))
    attn = q.matmul(key.transpose(-2, -1) * root)
    if attn_mask is not None:
        attn = attn + attn_mask
        attn = attn.softmax(-1) if is_causal else _safe_softmax(attn, -1)
    else:
        attn = attn.softmax(-1)
    if dropout_p > 0.0:
        attn = dropout(attn, dropout_p, True)
    return attn.matmul(value)


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0,
                                 is_causal=False, scale=None, enable_gqa=False):
    """``softmax(q @ k.T * scale + mask) @ v`` over the last two dims, with a bool (True =
    attend) or additive float ``attn_mask`` broadcast to (..., L, S), or a causal mask.

    >>> import ferrotorch as torch
    >>> q = k = v = torch.ones(1, 2, 4)
    >>> torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True).shape
    torch.Size([1, 2, 4])
    """
    (query, key, value, attn_mask), region = _amp._product_args(query, key, value, attn_mask)
    if region:  # cast once here; the ops it is made of are not cast again
        with _amp._off():
            return scaled_dot_product_attention(query, key, value, attn_mask, dropout_p,
                                                is_causal, scale, enable_gqa)
    for i, (name, x) in enumerate((("query", query), ("key", key), ("value", value))):
        _check_tensor("scaled_dot_product_attention", name, x, i + 1)
    if not query.dtype == key.dtype == value.dtype:
        raise RuntimeError(
            "Expected query, key, and value to have the same dtype, but got query.dtype: "
            f"{_cname(query.dtype)} key.dtype: {_cname(key.dtype)} and "
            f"value.dtype: {_cname(value.dtype)} instead."
        )
    if min(query.dim(), key.dim(), value.dim()) < 2:
        raise RuntimeError(
            "Expected query, key, and value to all be  at least 2 dimensional, but got "
            f"query.dim: {query.dim()} key.dim: {key.dim()} and value.dim: {value.dim()} "
            "instead."
        )
    if query.size(-1) != key.size(-1) or key.size(-2) != value.size(-2):
        raise RuntimeError(
            "scaled_dot_product_attention: query and key need the same embedding size (last "
            "dim) and key and value the same sequence length (dim -2), but got query "
            f"{list(query.shape)}, key {list(key.shape)} and value {list(value.shape)}"
        )
    if attn_mask is not None and attn_mask.dtype not in (_C.bool, query.dtype):
        raise RuntimeError(
            "Expected attn_mask dtype to be bool or float or to match query dtype, but got "
            f"attn_mask.dtype: {_cname(attn_mask.dtype)} and  query.dtype: "
            f"{_cname(query.dtype)} instead."
        )
    if is_causal and attn_mask is not None:
        raise RuntimeError(
            "_scaled_dot_product_attention: Explicit attn_mask should not be set when "
            "is_causal=True (give either the mask or is_causal, not both)"
        )
    if not 0.0 <= dropout_p <= 1.0:
        raise RuntimeError(
            f"dropout probability has to be between 0 and 1, but got {float(dropout_p):g}")
    if enable_gqa and query.dim() >= 3:
        hq, hk, hv = query.size(-3), key.size(-3), value.size(-3)
        if hq % hk or hq % hv:
            raise RuntimeError(
                "Number of heads in key and value must divide the number of heads in query "
                f"(got query: {hq}, key: {hk}, value: {hv} heads)"
            )
    return _sdpa_math(query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa)


def multi_head_attention_forward(*args, **kwargs):
    """torch's functional multi-head attention (the computation behind
    ``nn.MultiheadAttention``), with the same arguments."""
    from ferrotorch.nn.attention import multi_head_attention_forward as forward

    return forward(*args, **kwargs)


# *** encodings ***

def one_hot(tensor, num_classes=-1):
    """One-hot encoding of an int64 tensor: a new last dim of size ``num_classes``
    (``max + 1`` when -1).

    >>> import ferrotorch as torch
    >>> torch.nn.functional.one_hot(torch.tensor([0, 2]), 3)
    tensor([[1, 0, 0],
            [0, 0, 1]])
    """
    return _C.one_hot(tensor, num_classes)
