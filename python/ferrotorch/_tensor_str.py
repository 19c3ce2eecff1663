"""Text rendering of tensors, character-for-character identical to torch's ``repr``.

Everything here works on a numpy array holding the tensor's values plus the
dtype's name, so it is independent of the Rust core: the tensor class only has
to hand over its data and metadata.  Doctests, notebooks and users comparing
output with PyTorch rely on the text being *exactly* torch's, so the rules
below deliberately reproduce torch's quirks (column widths that ignore zeros
and non-finite values, the way suffixes decide to wrap, and so on).
"""

import contextlib
import dataclasses
import math
from typing import Any

import numpy as np

__all__ = [
    "format_str",
    "format_tensor",
    "get_printoptions",
    "printoptions",
    "set_printoptions",
]


@dataclasses.dataclass
class _PrintOptions:
    precision: int = 4
    threshold: float = 1000
    edgeitems: int = 3
    linewidth: int = 80
    sci_mode: bool | None = None


# Module-level state, as in torch: printing options are global, not per tensor.
_OPTS = _PrintOptions()

_PROFILES = {
    "default": {"precision": 4, "threshold": 1000, "edgeitems": 3, "linewidth": 80},
    "short": {"precision": 2, "threshold": 1000, "edgeitems": 2, "linewidth": 80},
    "full": {"precision": 4, "threshold": math.inf, "edgeitems": 3, "linewidth": 80},
}

_FLOAT_DTYPES = frozenset({"float64", "float32", "float16", "bfloat16"})
_OTHER_DTYPES = frozenset(
    {"int64", "int32", "int16", "int8", "uint8", "uint16", "uint32", "uint64", "bool"}
)
# The element text already tells int64 and bool apart from the default float
# dtype, so torch omits the ``dtype=`` suffix for them (but not when empty).
_IMPLIED_DTYPES = frozenset({"int64", "bool"})


def set_printoptions(
    precision=None,
    threshold=None,
    edgeitems=None,
    linewidth=None,
    profile=None,
    sci_mode=None,
):
    """Change the global printing options, with torch's semantics.

    ``profile`` ("default", "short" or "full") is applied first and the
    explicit arguments override it; an unknown profile is ignored, as in
    torch.  ``sci_mode`` is *always* assigned, so any call that omits it
    returns scientific notation to automatic selection -- torch does the same.
    """
    if profile in _PROFILES:
        for name, value in _PROFILES[profile].items():
            setattr(_OPTS, name, value)
    if precision is not None:
        _OPTS.precision = precision
    if threshold is not None:
        _OPTS.threshold = threshold
    if edgeitems is not None:
        _OPTS.edgeitems = edgeitems
    if linewidth is not None:
        _OPTS.linewidth = linewidth
    _OPTS.sci_mode = sci_mode


def get_printoptions() -> dict[str, Any]:
    """Return the current options as a dict that ``set_printoptions(**d)`` accepts."""
    return dataclasses.asdict(_OPTS)


@contextlib.contextmanager
def printoptions(**kwargs):
    """Temporarily apply ``set_printoptions(**kwargs)``, restoring the old options on exit."""
    saved = get_printoptions()
    set_printoptions(**kwargs)
    try:
        yield
    finally:
        set_printoptions(**saved)


def format_tensor(
    arr,
    dtype_name,
    *,
    requires_grad=False,
    grad_fn=None,
    device=None,
    is_param=False,
    default_dtype="float32",
):
    """Return the text torch's ``repr(tensor)`` gives for a tensor with these values.

    ``arr`` holds the values (float16/bfloat16 data may be given as float32,
    since every such value is exact in float32); ``dtype_name`` is the torch
    dtype without the ``torch.`` prefix.  ``grad_fn`` is the backward node's
    class name (e.g. ``"MulBackward0"``) and takes precedence over
    ``requires_grad``, as torch only shows one of them.  ``device`` None or
    ``"cpu"`` prints no device.  ``is_param`` gives ``nn.Parameter``'s repr;
    ``requires_grad`` is not implied by it, because a parameter may be frozen.
    ``default_dtype`` is the floating dtype that goes unannotated (torch's
    ``get_default_dtype()``).
    """
    if dtype_name not in _FLOAT_DTYPES and dtype_name not in _OTHER_DTYPES:
        raise ValueError(f"cannot format tensors of dtype {dtype_name!r}")
    arr = np.asarray(arr)
    prefix = "tensor("
    indent = len(prefix)
    suffixes = []
    if device is not None and device != "cpu":
        suffixes.append(f"device='{device}'")

    size_suffix = f"size={tuple(arr.shape)}"
    dtype_suffix = f"dtype=torch.{dtype_name}"
    if arr.size == 0:
        body = "[]"
        # "[]" alone reads as shape (0,); any other empty shape must be spelled out.
        if arr.ndim != 1:
            suffixes.append(size_suffix)
        # No element text hints at the dtype, so only the default dtype is implied.
        if dtype_name != default_dtype:
            suffixes.append(dtype_suffix)
    else:
        # With edgeitems=0 a summarized tensor prints as "[...]", so torch adds its shape.
        if not _OPTS.edgeitems:
            suffixes.append(size_suffix)
        if dtype_name != default_dtype and dtype_name not in _IMPLIED_DTYPES:
            suffixes.append(dtype_suffix)
        body = _tensor_body(arr, dtype_name in _FLOAT_DTYPES, indent)

    if grad_fn is not None:
        suffixes.append(f"grad_fn=<{grad_fn}>")
    elif requires_grad:
        suffixes.append("requires_grad=True")

    text = _append_suffixes(prefix + body, suffixes, indent)
    if is_param:
        text = "Parameter containing:\n" + text
    return text


# torch defines no Tensor.__str__ (and nn.Parameter only overrides __repr__),
# so str() of a tensor or parameter is its repr.
format_str = format_tensor


class _Formatter:
    """One layout shared by every element, so that columns line up.

    The mode (integer-valued floats, fixed point or scientific) and the column
    width are chosen from the nonzero finite values only, as torch does: zeros,
    infinities and NaNs are padded to that width but never widen it.
    """

    def __init__(self, values, floating):
        self.floating = floating
        self.int_mode = True
        self.sci_mode = False
        self.width = 1
        flat = values.ravel()
        if not floating:
            self.width = max([1] + [len(str(v)) for v in flat.tolist()])
            return

        doubles = flat.astype(np.float64)
        finite = doubles[np.isfinite(doubles) & (doubles != 0)]
        if finite.size == 0:
            return
        magnitudes = np.abs(finite)
        smallest, largest = float(magnitudes.min()), float(magnitudes.max())
        self.int_mode = bool(np.all(finite == np.ceil(finite)))
        if _OPTS.sci_mode is None:
            self.sci_mode = largest / smallest > 1000.0 or largest > 1.0e8 or smallest < 1.0e-4
        else:
            self.sci_mode = _OPTS.sci_mode

        precision = _OPTS.precision
        values = finite.tolist()
        if self.sci_mode:
            widths = [len(f"{v:.{precision}e}") for v in values]
        elif self.int_mode:
            # +1 for the "." that marks integer-valued floats as floating.
            widths = [len(f"{v:.0f}") + 1 for v in values]
        else:
            widths = [len(f"{v:.{precision}f}") for v in values]
        self.width = max(self.width, max(widths))

    def format(self, value):
        """Format one Python scalar, right-aligned to the column width."""
        precision = _OPTS.precision
        if not self.floating:
            text = str(value)
        elif self.sci_mode:
            text = f"{value:{self.width}.{precision}e}"
        elif self.int_mode:
            text = f"{value:.0f}"
            if math.isfinite(value):
                text += "."
        else:
            text = f"{value:.{precision}f}"
        return text.rjust(self.width)


def _tensor_body(arr, floating, indent):
    """The bracketed element text of a non-empty tensor."""
    summarize = arr.size > _OPTS.threshold
    # Only the elements that will actually be shown decide the layout.
    formatter = _Formatter(_shown_elements(arr) if summarize else arr, floating)
    return _format_nested(arr, indent, summarize, formatter)


def _shown_elements(arr):
    """The sub-array of elements a summarized print displays (for layout decisions)."""
    edge = _OPTS.edgeitems
    if arr.ndim >= 2 and not edge:
        return arr.reshape(-1)[:0]
    for axis in range(arr.ndim):
        if arr.shape[axis] > 2 * edge:
            lead = (slice(None),) * axis
            # With edge == 0 (reachable only in 1-D), slice(-0, None) selects the
            # whole row; torch measures that whole row too, so keep the quirk.
            head = arr[lead + (slice(None, edge),)]
            tail = arr[lead + (slice(-edge, None),)]
            arr = np.concatenate((head, tail), axis=axis)
    return arr


def _format_nested(arr, indent, summarize, formatter):
    """Recursively format ``arr``; ``indent`` is the column its opening bracket sits in."""
    if arr.ndim == 0:
        return formatter.format(arr.item())
    if arr.ndim == 1:
        return _format_row(arr, indent, summarize, formatter)

    edge = _OPTS.edgeitems
    count = arr.shape[0]
    if summarize and count > 2 * edge:
        rows = [_format_nested(arr[i], indent + 1, summarize, formatter) for i in range(edge)]
        rows.append("...")
        rows += [
            _format_nested(arr[i], indent + 1, summarize, formatter)
            for i in range(count - edge, count)
        ]
    else:
        rows = [_format_nested(sub, indent + 1, summarize, formatter) for sub in arr]
    # Sub-tensors of a rank-n tensor are separated by n-2 blank lines and
    # aligned just inside this tensor's opening bracket.
    separator = "," + "\n" * (arr.ndim - 1) + " " * (indent + 1)
    return "[" + separator.join(rows) + "]"


def _format_row(row, indent, summarize, formatter):
    """Format a 1-D array, wrapping so lines stay within ``linewidth``."""
    # Every element is budgeted its column width plus the ", " separator.
    per_line = max(1, math.floor((_OPTS.linewidth - indent) / (formatter.width + 2)))
    edge = _OPTS.edgeitems
    if summarize and not edge:
        items = ["..."]
    elif summarize and row.shape[0] > 2 * edge:
        # The leading space makes the ellipsis stand apart: "2,  ..., 7".
        items = [formatter.format(v) for v in row[:edge].tolist()]
        items.append(" ...")
        items += [formatter.format(v) for v in row[-edge:].tolist()]
    else:
        items = [formatter.format(v) for v in row.tolist()]
    lines = [", ".join(items[i : i + per_line]) for i in range(0, len(items), per_line)]
    return "[" + (",\n" + " " * (indent + 1)).join(lines) + "]"


def _append_suffixes(text, suffixes, indent):
    """Close ``text`` with ``, key=value`` suffixes, wrapping any that would overflow."""
    parts = [text]
    # torch's estimate of the current line is 2 more than its true length
    # (and stays so while suffixes are appended to it) but exact after a
    # wrap; mirroring that decides wrapping at exactly the same points.
    line_len = len(text) - text.rfind("\n") + 1
    for suffix in suffixes:
        if line_len + len(suffix) + 2 > _OPTS.linewidth:
            parts.append(",\n" + " " * indent + suffix)
            line_len = indent + len(suffix)
        else:
            parts.append(", " + suffix)
            line_len += len(suffix) + 2
    parts.append(")")
    return "".join(parts)
