"""``Optimizer``: the base class of ferrotorch's optimizers, with torch's param groups,
per-parameter state and state-dict format (a torch optimizer's ``state_dict()`` loads here and
vice versa)."""

import warnings
from collections import defaultdict
from copy import deepcopy
from itertools import chain

from ferrotorch import _C
from ferrotorch._C import Tensor, bfloat16, float16, float32
from ferrotorch._C import tensor as _tensor
from ferrotorch.autograd.grad_mode import enable_grad

__all__ = ["Optimizer", "required"]


class _RequiredParameter:
    """Marks an option every param group must give (no default)."""

    def __repr__(self):
        return "<required parameter>"


required = _RequiredParameter()

_TENSOR_TYPE_NAMES = {
    "float32": "FloatTensor", "float64": "DoubleTensor", "float16": "HalfTensor",
    "bfloat16": "BFloat16Tensor", "int64": "LongTensor", "int32": "IntTensor",
    "uint8": "ByteTensor", "bool": "BoolTensor",
}


def _typename(obj):
    """The type name torch's messages use (``torch.FloatTensor``, ``int``, ``pkg.Class``)."""
    if isinstance(obj, Tensor):
        return "torch." + _TENSOR_TYPE_NAMES.get(str(obj.dtype).replace("torch.", ""), "Tensor")
    cls = type(obj)
    if cls.__module__ in ("builtins", None):
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


def _is_foreign_tensor(value):
    # A torch.Tensor (from a torch checkpoint), recognised without importing torch.
    return (not isinstance(value, Tensor) and type(value).__module__.startswith("torch")
            and hasattr(value, "detach") and hasattr(value, "dtype"))


def _from_foreign(value):
    """A ferrotorch copy of a torch tensor (values, dtype and shape)."""
    t = value.detach().cpu()
    name = str(t.dtype).replace("torch.", "")
    if name in ("bfloat16", "float16"):
        return _tensor(t.float().numpy()).to(bfloat16 if name == "bfloat16" else float16)
    return _tensor(t.numpy())


def _cast_state_value(param, value, fused_or_capturable, key=None):
    """torch's rule for loaded state: float tensors take the param's dtype, ``step`` is kept as
    saved (float32 for fused/capturable groups); containers are rebuilt recursively."""
    if _is_foreign_tensor(value):
        value = _from_foreign(value)
    if isinstance(value, Tensor):
        if key == "step":
            if fused_or_capturable:
                return value.to(float32)
            return value
        if param.is_floating_point():
            return value.to(param.dtype)
        return value
    if isinstance(value, dict):
        return {k: _cast_state_value(param, v, fused_or_capturable, key=k)
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_cast_state_value(param, v, fused_or_capturable) for v in value)
    return value


def _deepcopy(value):
    """``copy.deepcopy`` that also copies ferrotorch tensors (which do not pickle)."""
    if isinstance(value, Tensor):
        return value.detach().clone()
    if isinstance(value, dict):
        return {k: _deepcopy(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_deepcopy(v) for v in value)
    return deepcopy(value)


class Optimizer:
    """Base class of all optimizers.

    ``params`` is an iterable of tensors, or of dicts (param groups) with a ``"params"`` entry
    and per-group options that override ``defaults``. Subclasses implement ``step``.

    >>> import ferrotorch as torch
    >>> w = torch.zeros(2, requires_grad=True)
    >>> opt = torch.optim.SGD([{"params": [w], "lr": 0.5}], lr=0.1)
    >>> opt.param_groups[0]["lr"]
    0.5
    """

    def __init__(self, params, defaults):
        self.defaults = defaults
        if isinstance(params, Tensor):
            raise TypeError(
                "params argument given to the optimizer should be an iterable of Tensors or "
                "dicts, but got " + _typename(params)
            )
        if isinstance(params, set):
            warnings.warn(
                "optimizer parameters need to be organized in ordered collections, but the "
                "ordering of tensors in sets will change between runs. Please use a list "
                "instead. This will be an error in a future release.",
                FutureWarning, stacklevel=2,
            )
        self.state = defaultdict(dict)
        self.param_groups = []
        param_groups = list(params)
        if len(param_groups) == 0:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(param_groups[0], dict):
            param_groups = [{"params": param_groups}]
        for group in param_groups:
            self.add_param_group(group)

    def __getstate__(self):
        return {"defaults": self.defaults, "state": self.state,
                "param_groups": self.param_groups}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.defaults.setdefault("differentiable", False)

    def __repr__(self):
        text = self.__class__.__name__ + " ("
        for i, group in enumerate(self.param_groups):
            text += f"\nParameter Group {i}\n"
            text += "".join(f"    {k}: {group[k]}\n" for k in sorted(group) if k != "params")
        return text + ")"

    def _eval_closure(self, closure):
        # The closure recomputes the loss and calls backward: it needs grad mode even though
        # the update itself runs under no_grad.
        if closure is None:
            return None
        with enable_grad():
            return closure()

    def step(self, closure=None):
        """Performs one optimization step (implemented by each optimizer)."""
        raise NotImplementedError

    def zero_grad(self, set_to_none=True):
        """Resets the gradients of all optimized tensors: to ``None`` by default, or to zeros
        (detached from any graph) with ``set_to_none=False``."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                    continue
                grad = p.grad
                if grad.grad_fn is not None:
                    # `p.grad.detach_()` would detach a temporary handle only: store a
                    # detached tensor on the same storage instead
                    grad = grad.detach()
                    p.grad = grad
                else:
                    grad.requires_grad_(False)
                grad.zero_()

    def add_param_group(self, param_group):
        """Adds a group of parameters (a dict with ``"params"`` and optional options) to
        ``param_groups``; options it omits take the optimizer's defaults."""
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {type(param_group)}")
        params = param_group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, set):
            raise TypeError(
                "optimizer parameters need to be organized in ordered collections, but the "
                "ordering of tensors in sets will change between runs. Please use a list instead."
            )
        else:
            params = list(params)

        names = [p[0] for p in params if isinstance(p, tuple)]
        tensors = [p[1] if isinstance(p, tuple) else p for p in params]
        param_group["params"] = tensors
        if names:
            if len(names) != len(tensors):
                raise ValueError(
                    "all optimizer params should be with/without names. Some param names are "
                    "missing"
                )
            param_group["param_names"] = names

        for p in tensors:
            if not isinstance(p, Tensor):
                raise TypeError(
                    "optimizer can only optimize Tensors, but one of the params is "
                    + _typename(p)
                )
            if not self.defaults.get("differentiable", None) and not (
                p.is_leaf or p.retains_grad
            ):
                raise ValueError("can't optimize a non-leaf Tensor")

        for name, default in self.defaults.items():
            if default is required and name not in param_group:
                raise ValueError(
                    "parameter group didn't specify a value of required optimization "
                    f"parameter {name}"
                )
            param_group.setdefault(name, default)

        if len({id(p) for p in tensors}) != len(tensors):
            warnings.warn(
                "optimizer contains a parameter group with duplicate parameters; in future, "
                "this will cause an error; see github.com/pytorch/pytorch/issues/40967 for "
                "more information",
                stacklevel=3,
            )

        seen = set()
        for group in self.param_groups:
            seen.update(id(p) for p in group["params"])
            if ("param_names" in param_group) != ("param_names" in group):
                which = "with names" if "param_names" in param_group else "without names"
                raise ValueError(
                    "all optimizer param groups should be with/without names. "
                    f"cannot add param group {which} to the optimizer"
                )
        if any(id(p) in seen for p in tensors):
            raise ValueError("some parameters appear in more than one parameter group")
        self.param_groups.append(param_group)

    def state_dict(self):
        """The optimizer state in torch's format: ``{"state": {index: {...}}, "param_groups":
        [{..., "params": [indices]}]}``, parameters numbered in group order.

        The state tensors are the live ones (like torch): deep-copy the dict to keep a snapshot.
        """
        index_of = {}
        start = 0

        def pack(group):
            nonlocal start
            packed = {k: v for k, v in group.items() if k != "params"}
            for i, p in enumerate(group["params"], start):
                index_of.setdefault(id(p), i)
            packed["params"] = [index_of[id(p)] for p in group["params"]]
            start += len(packed["params"])
            return packed

        param_groups = [pack(g) for g in self.param_groups]
        state = {(index_of[id(k)] if isinstance(k, Tensor) else k): v
                 for k, v in self.state.items()}
        return {"state": state, "param_groups": param_groups}

    def load_state_dict(self, state_dict):
        """Loads a state from ``state_dict()`` (ours or torch's): the groups must have the same
        sizes; state tensors are cast to their parameter's dtype (``step`` is kept)."""
        state_dict = state_dict.copy()
        groups = self.param_groups
        saved_groups = _deepcopy(state_dict["param_groups"])
        if len(groups) != len(saved_groups):
            raise ValueError(
                f"loaded state dict has a different number of parameter groups: "
                f"{len(saved_groups)} saved, {len(groups)} in the optimizer")
        for i, (g, s) in enumerate(zip(groups, saved_groups)):
            if len(g["params"]) != len(s["params"]):
                raise ValueError(
                    "loaded state dict contains a parameter group that doesn't match the size "
                    f"of optimizer's group: group {i} has {len(s['params'])} saved parameters, "
                    f"{len(g['params'])} in the optimizer")
        id_map = dict(zip(chain.from_iterable(g["params"] for g in saved_groups),
                          chain.from_iterable(g["params"] for g in groups)))

        def fused_or_capturable(index):
            for g in state_dict["param_groups"]:
                if index in g["params"]:
                    return bool(g.get("fused", False) or g.get("capturable", False))
            return False

        state = defaultdict(dict)
        for k, v in state_dict["state"].items():
            if k in id_map:
                param = id_map[k]
                state[param] = _cast_state_value(param, v, fused_or_capturable(k))
            else:
                state[k] = v

        def update_group(group, new_group):
            new_group["params"] = group["params"]
            if "param_names" in group and "param_names" not in new_group:
                new_group["param_names"] = group["param_names"]
            return new_group

        param_groups = [update_group(g, ng) for g, ng in zip(groups, saved_groups)]
        self.__setstate__({"state": state, "param_groups": param_groups})


def _scalar(x):
    """A learning rate or beta given as a one-element tensor, as a Python number."""
    return x.item() if isinstance(x, Tensor) else x


def _check_one_element(x, name):
    if isinstance(x, Tensor) and x.numel() != 1:
        raise ValueError(f"Tensor {name} must be 1-element")


def _round_to(value, like):
    """``value`` rounded to ``like``'s dtype, as torch converts a scalar operand of a kernel."""
    return _tensor(value, dtype=like.dtype).item()


def _lerp_(start, end, weight):
    """``start.lerp_(end, weight)`` for a scalar weight, with torch's two formulas (the small
    weight one from ``start``, the large weight one from ``end``, for accuracy near 1)."""
    weight = _round_to(weight, start)
    diff = end - start
    if abs(weight) < 0.5:
        return start.add_(diff.mul_(weight))
    return start.copy_(end.sub(diff.mul_(1.0 - weight)))


def _addcmul_(self, t1, t2, value):
    """``self.addcmul_(t1, t2, value=value)``: ``self + value * t1 * t2`` in torch's order."""
    return self.add_(t1.mul(value).mul_(t2))


def _addcdiv_(self, t1, t2, value):
    """``self.addcdiv_(t1, t2, value=value)``: ``self + value * t1 / t2`` in torch's order."""
    return self.add_(t1.mul(value).div_(t2))


def fusable(params, *state_lists):
    """Whether the fused Rust update can take these tensors: contiguous float32/float64
    parameters and states (anything else, e.g. a strided parameter view, takes the op-by-op
    path, which gives the same numbers)."""
    return _C._fusable(params, *state_lists)
