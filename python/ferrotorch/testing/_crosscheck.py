"""``crosscheck``: run one function with ferrotorch and with torch and compare everything.

The function takes the module as its first argument (``fn(M, *tensors)``), so the same source
runs against both libraries; outputs and, through one backward pass, input gradients are
compared with torch's per-dtype tolerances.
"""

import numpy as np

from ferrotorch import _C
from ferrotorch._interop import real_torch
from ferrotorch.testing._comparison import (
    DTYPE_PRECISIONS,
    _compute_dtype,
    _is_float,
    as_values,
    isclose,
    promote,
)


class Comparison:
    """One compared quantity (an output or an input's gradient) of a crosscheck."""

    def __init__(self, label, shape, dtype, max_abs, max_rel, rtol, atol, passed, note=""):
        self.label, self.shape, self.dtype = label, shape, dtype
        self.max_abs, self.max_rel = max_abs, max_rel
        self.rtol, self.atol, self.passed, self.note = rtol, atol, passed, note

    def __str__(self):
        status = "ok" if self.passed else "FAIL"
        if self.note:
            return f"  {self.label:<14} {status:<4} {self.note}"
        return (
            f"  {self.label:<14} {status:<4} shape {str(tuple(self.shape)):<14} {self.dtype:<9} "
            f"max abs diff {self.max_abs:.3g}  max rel diff {self.max_rel:.3g}  "
            f"(rtol {self.rtol:g}, atol {self.atol:g})"
        )


class CrossCheckReport:
    """What ``crosscheck`` compared: ``comparisons`` (a list of :class:`Comparison`) and
    ``passed``. ``str(report)`` is a table, one line per output and per input gradient."""

    def __init__(self, name):
        self.name = name
        self.comparisons = []

    @property
    def passed(self):
        return all(c.passed for c in self.comparisons)

    def __bool__(self):
        return self.passed

    def __str__(self):
        head = f"crosscheck of {self.name} (ferrotorch vs torch): {'ok' if self.passed else 'FAIL'}"
        return "\n".join([head, *(str(c) for c in self.comparisons)])

    __repr__ = __str__


def _compare(label, ours, theirs, rtol, atol):
    """A Comparison of two tensor-likes (or None for a missing tensor)."""
    if ours is None or theirs is None:
        if ours is None and theirs is None:
            return Comparison(label, (), "", 0.0, 0.0, 0, 0, True, "none on both sides")
        which = "ferrotorch" if ours is None else "torch"
        return Comparison(label, (), "", 0.0, 0.0, 0, 0, False, f"None from {which} only")
    vo, vt = as_values(ours), as_values(theirs)
    numbers = (int, float, np.number)
    if isinstance(ours, numbers) and isinstance(theirs, numbers) and not isinstance(theirs, bool):
        # Python numbers mostly come from .item() on float32 results: float32 tolerances.
        r, t = (rtol, atol) if rtol is not None else DTYPE_PRECISIONS["float32"]
        diff = abs(float(ours) - float(theirs))
        rel = diff / abs(float(theirs)) if theirs else (0.0 if diff == 0 else float("inf"))
        same = diff <= t + r * abs(float(theirs)) or (np.isnan(ours) and np.isnan(theirs))
        return Comparison(label, (), type(theirs).__name__, diff, rel, r, t, bool(same))
    if vo is None or vt is None:
        same = type(ours) is type(theirs) and ours == theirs
        return Comparison(label, (), type(theirs).__name__, 0.0, 0.0, 0, 0, bool(same),
                          "" if same else f"{ours!r} != torch's {theirs!r}")
    (a, na), (e, ne) = vo, vt
    if a.shape != e.shape:
        return Comparison(label, e.shape, ne, 0.0, 0.0, 0, 0, False,
                          f"shape {tuple(a.shape)} != torch's {tuple(e.shape)}")
    if na != ne:
        return Comparison(label, e.shape, ne, 0.0, 0.0, 0, 0, False,
                          f"dtype {na} != torch's {ne}")
    r, t = (rtol, atol) if rtol is not None else DTYPE_PRECISIONS.get(ne, (0.0, 0.0))
    name = promote(na, ne)
    x, y = a.astype(_compute_dtype(name)), e.astype(_compute_dtype(name))
    passed = bool(isclose(x, y, r, t, True, name).all())
    with np.errstate(all="ignore"):
        x64, y64 = x.astype(np.float64), y.astype(np.float64)
        same = (x64 == y64) | (np.isnan(x64) & np.isnan(y64))
        diff = np.where(same, 0.0, np.abs(x64 - y64))
        rel = np.where(same, 0.0, diff / np.abs(y64))
    max_abs = float(np.max(diff)) if diff.size else 0.0
    max_rel = float(np.max(rel)) if rel.size else 0.0
    return Comparison(label, e.shape, ne, max_abs, max_rel, r, t, passed)


def _outputs(out):
    return list(out) if isinstance(out, (tuple, list)) else [out]


def crosscheck(fn, *inputs, grad=True, rtol=None, atol=None, verbose=False, seed=0):
    """Runs ``fn(M, *inputs)`` with ``M = ferrotorch`` and with ``M = torch`` on equal copies of
    the inputs and compares the outputs and, when ``grad``, the inputs' gradients.

    Tensor inputs may be ferrotorch or torch tensors or numpy arrays; other inputs are passed
    unchanged; each side gets its own contiguous copy of each tensor input (make views inside
    ``fn`` to test other layouts). With ``grad=True`` floating inputs require grad and both
    sides backpropagate ``sum(out * w)`` over the floating outputs, with the same random weights
    ``w`` (from ``seed``), so that gradients of sum-invariant functions such as softmax are
    still tested; gradients are not compared when the outputs already differ.
    Tolerances default to torch's per-dtype ones. Returns a :class:`CrossCheckReport`; raises
    AssertionError with that report when anything differs beyond tolerance.

    >>> import numpy as np
    >>> from ferrotorch.testing import crosscheck
    >>> x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    >>> crosscheck(lambda M, t: M.softmax(t, dim=-1), x).passed
    True
    """
    import ferrotorch

    torch = real_torch()
    if (rtol is None) ^ (atol is None):
        raise ValueError("crosscheck(): give both rtol and atol, or neither")
    ours, theirs = [], []
    for x in inputs:
        values = as_values(x)
        if values is None:
            ours.append(x)
            theirs.append(x)
            continue
        array, name = values
        # Each side gets its own copy: fn may write to its inputs.
        o = _C.from_numpy(np.array(array, copy=True)).to(_C._default_device())
        t = torch.from_numpy(np.array(array, copy=True))
        if name == "bfloat16":
            o, t = o.to(_C.bfloat16), t.to(torch.bfloat16)
        if grad and _is_float(name):
            o.requires_grad_(True)
            t.requires_grad_(True)
        ours.append(o)
        theirs.append(t)

    report = CrossCheckReport(getattr(fn, "__name__", repr(fn)))
    out_o, out_t = _outputs(fn(ferrotorch, *ours)), _outputs(fn(torch, *theirs))
    if len(out_o) != len(out_t):
        report.comparisons.append(Comparison(
            "outputs", (), "", 0.0, 0.0, 0, 0, False,
            f"{len(out_o)} outputs, torch gives {len(out_t)}"))
    for i, (o, t) in enumerate(zip(out_o, out_t)):
        report.comparisons.append(_compare(f"output[{i}]", o, t, rtol, atol))

    if grad and not report.passed:
        report.comparisons.append(Comparison(
            "gradients", (), "", 0.0, 0.0, 0, 0, False, "not compared: the outputs differ"))
    elif grad:
        _backward(out_o, out_t, torch, seed)
        for i, (o, t) in enumerate(zip(ours, theirs)):
            if isinstance(t, torch.Tensor) and t.requires_grad:
                report.comparisons.append(_compare(f"grad input[{i}]", o.grad, t.grad, rtol, atol))

    if verbose:
        print(report)
    if not report.passed:
        raise AssertionError(str(report))
    return report


def _backward(out_o, out_t, torch, seed):
    """Backpropagates sum(out * w) on both sides with the same weights w."""
    g = np.random.default_rng(seed)
    loss_o = loss_t = None
    for o, t in zip(out_o, out_t):
        if not (isinstance(t, torch.Tensor) and t.dtype.is_floating_point):
            continue
        w = g.standard_normal(tuple(t.shape))
        w_t = torch.from_numpy(w).to(t.dtype)
        w_o = _C.from_numpy(w).to(o.device if isinstance(o, _C.Tensor) else "cpu",
                                   getattr(_C, str(t.dtype).replace("torch.", "")))
        if t.requires_grad:
            term = (t * w_t).sum()
            loss_t = term if loss_t is None else loss_t + term
        if isinstance(o, _C.Tensor) and o.requires_grad:
            term = (o * w_o).sum()
            loss_o = term if loss_o is None else loss_o + term
    if loss_t is not None:
        loss_t.backward()
    if loss_o is not None:
        loss_o.backward()
