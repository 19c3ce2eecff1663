"""``assert_close``: torch.testing.assert_close's rules and report, computed with numpy.

Inputs may be ferrotorch tensors, torch tensors, numpy arrays, numbers, or (nested) sequences and
mappings of them; tensor-likes from different libraries are compared by value. Closeness is
decided as torch decides it: elementwise in the (promoted) dtype of the inputs, with torch's
rounding of each intermediate step, so a pair passes exactly where torch's would.
"""

import cmath
import collections.abc

import numpy as np

from ferrotorch import _C
from ferrotorch._interop import loaded_torch

# torch's default (rtol, atol) per dtype; dtypes not listed (integers, bool) compare exactly.
DTYPE_PRECISIONS = {
    "float16": (0.001, 1e-5),
    "bfloat16": (0.016, 1e-5),
    "float32": (1.3e-6, 1e-5),
    "float64": (1e-7, 1e-7),
    "complex32": (0.001, 1e-5),
    "complex64": (1.3e-6, 1e-5),
    "complex128": (1e-7, 1e-7),
}
_HALF = ("float16", "bfloat16")


class _Failure(Exception):
    """A mismatch found while pairing or comparing; becomes the user-facing exception."""

    def __init__(self, type_, msg, id=()):
        super().__init__(msg)
        self.type, self.msg, self.id = type_, msg, id

    def to_error(self, msg=None):
        if isinstance(msg, str):
            return self.type(msg)
        text = self.msg
        if self.id:
            text += f"\n\nThe failure occurred for item {''.join(str([i]) for i in self.id)}"
        return self.type(msg(text) if callable(msg) else text)


# *** tensor-likes as numpy values ***

def as_values(x):
    """(numpy array, dtype name) of a ferrotorch/torch tensor or numpy array, else None.

    bfloat16 values are carried in float32 (exactly); the name keeps the real dtype."""
    if isinstance(x, _C.Tensor):
        name = str(x.dtype).replace("torch.", "")
        x = x.detach().cpu()  # values on a device come to the host to be compared
        return np.asarray(x.float() if name == "bfloat16" else x), name
    torch = loaded_torch()
    if torch is not None and isinstance(x, torch.Tensor):
        name = str(x.dtype).replace("torch.", "")
        x = x.detach().cpu().resolve_conj().resolve_neg()
        return (x.float() if name == "bfloat16" else x).numpy(), name
    if isinstance(x, np.ndarray) and x.dtype.kind in "biufc":
        return x, x.dtype.name
    return None


def _is_float(name):
    return name.startswith(("float", "bfloat"))


def _category(name):
    if name == "bool":
        return 0
    if name.startswith(("int", "uint")):
        return 1
    return 3 if name.startswith("complex") else 2


def promote(a, b):
    """torch.promote_types on dtype names."""
    if a == b:
        return a
    try:
        return str(_C.promote_types(getattr(_C, a), getattr(_C, b))).replace("torch.", "")
    except (AttributeError, TypeError):
        pass
    ca, cb = _category(a), _category(b)
    if ca != cb and (a == "bfloat16" or b == "bfloat16"):
        return a if ca > cb else b
    if "bfloat16" in (a, b):  # bfloat16 with float16 or a wider float
        other = b if a == "bfloat16" else a
        return "float32" if other == "float16" else other
    return np.promote_types(a, b).name


def _round(x, name):
    """Rounds a float32 intermediate to the storage dtype, as torch does after each op on
    half types (which it computes in float32)."""
    if name == "float16":
        return x.astype(np.float16).astype(np.float32)
    if name == "bfloat16":
        bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
        rounded = (bits + np.uint32(0x7FFF) + ((bits >> 16) & np.uint32(1))) & np.uint32(0xFFFF0000)
        out = rounded.view(np.float32)
        return np.where(np.isnan(x), x, out)
    return x


def _compute_dtype(name):
    return np.dtype(np.float32 if name in _HALF else name)


def isclose(a, e, rtol, atol, equal_nan, name):
    """torch.isclose on arrays already cast to the compute dtype of dtype ``name``."""
    if rtol < 0:
        raise RuntimeError(f"rtol must be greater than or equal to zero, but got {rtol}")
    if atol < 0:
        raise RuntimeError(f"atol must be greater than or equal to zero, but got {atol}")
    with np.errstate(all="ignore"):
        close = np.asarray(a == e)
        floating = _category(name) >= 2
        if equal_nan and floating:
            close = close | (np.isnan(a) & np.isnan(e))
        if rtol == 0 and atol == 0:
            return close
        if floating:
            op = _compute_dtype(name).type
            allowed = _round(op(atol) + np.abs(_round(op(rtol) * e, name)), name)
            actual = np.abs(_round(a - e, name))
        else:
            # torch computes integer/bool errors against a float32 allowance (default dtype).
            if name == "bool":
                a, e = a.astype(np.float32), e.astype(np.float32)
            actual = np.abs(a - e).astype(np.float32)
            allowed = np.float32(atol) + np.abs(np.float32(rtol) * e.astype(np.float32))
        return close | (np.isfinite(actual) & (actual <= allowed))


# *** failure reports ***

def _diff_line(kind, diff, idx, tol, equality):
    line = f"{kind.title()} difference: {diff}" if idx is None else (
        f"Greatest {kind} difference: {diff} at index {idx}")
    return line + ("" if equality else f" (up to {tol} allowed)") + "\n"


def mismatch_msg(identifier, extra, abs_diff, abs_idx, atol, rel_diff, rel_idx, rtol):
    equality = rtol == 0 and atol == 0
    msg = f"{identifier} are not {'equal' if equality else 'close'}!\n\n"
    if extra:
        msg += extra.strip() + "\n"
    msg += _diff_line("absolute", abs_diff, abs_idx, atol, equality)
    msg += _diff_line("relative", rel_diff, rel_idx, rtol, equality)
    return msg.strip()


def scalar_mismatch_msg(actual, expected, rtol, atol):
    abs_diff = abs(actual - expected)
    rel_diff = float("inf") if expected == 0 else abs_diff / abs(expected)
    return mismatch_msg("Scalars", f"Expected {expected} but got {actual}.",
                        abs_diff, None, atol, rel_diff, None, rtol)


def tensor_mismatch_msg(a, e, matches, name, rtol, atol):
    shape = matches.shape
    total = matches.size
    wrong = total - int(np.count_nonzero(matches))
    extra = f"Mismatched elements: {wrong} / {total} ({wrong / total:.1%})"
    a, e, hit = a.ravel(), e.ravel(), matches.ravel()
    with np.errstate(all="ignore"):
        if _category(name) >= 2:
            abs_diff = np.abs(_round(a - e, name))
            abs_diff[hit] = 0
            rel_diff = _round(abs_diff / np.abs(e), name)
        else:
            abs_diff = np.abs(a.astype(np.int64) - e.astype(np.int64))
            abs_diff[hit] = 0
            # torch divides integers in its default float dtype.
            rel_diff = abs_diff.astype(np.float32) / np.abs(e.astype(np.int64)).astype(np.float32)
        rel_diff[hit] = 0
    i_abs, i_rel = int(np.argmax(abs_diff)), int(np.argmax(rel_diff))

    def unravel(i):
        return tuple(int(k) for k in np.unravel_index(i, shape))

    return mismatch_msg("Tensor-likes", extra, abs_diff[i_abs].item(), unravel(i_abs), atol,
                        rel_diff[i_rel].item(), unravel(i_rel), rtol)


# *** pairs: one comparison each, built while walking the inputs ***

def _tolerances(names, rtol, atol, id):
    if (rtol is None) ^ (atol is None):
        raise _Failure(
            ValueError,
            "Both 'rtol' and 'atol' must be either specified or omitted, "
            f"but got no {'rtol' if rtol is None else 'atol'}.",
            id,
        )
    if rtol is not None:
        return rtol, atol
    rtols, atols = zip(*(DTYPE_PRECISIONS.get(n, (0.0, 0.0)) for n in names))
    return max(rtols), max(atols)


def _number_dtype(x):
    # torch's NumberPair: int -> int64, float -> float64, complex -> complex128.
    if isinstance(x, complex):
        return "complex128"
    return "float64" if isinstance(x, float) else "int64"


def _torch_size(shape):
    return f"torch.Size({list(shape)})"


def _strides(x):
    if isinstance(x, np.ndarray):
        return tuple(s // x.itemsize for s in x.strides)
    return tuple(x.stride())


def _pair(actual, expected, id, rtol, atol, equal_nan, check_dtype, check_stride):
    """A zero-argument function comparing a leaf pair (raising _Failure), or a _Failure raised
    now when the pair cannot be compared at all."""
    if actual is None or expected is None:
        def compare_none():
            if not (actual is None and expected is None):
                raise _Failure(AssertionError, f"None mismatch: {actual} is not {expected}", id)
        return compare_none

    bools = (bool, np.bool_)
    if isinstance(actual, bools) and isinstance(expected, bools):
        def compare_bool():
            if bool(actual) is not bool(expected):
                raise _Failure(
                    AssertionError, f"Booleans mismatch: {bool(actual)} is not {bool(expected)}", id
                )
        return compare_bool

    numbers = (int, float, complex, np.number)
    if isinstance(actual, numbers) and isinstance(expected, numbers):
        a = actual.item() if isinstance(actual, np.number) else actual
        e = expected.item() if isinstance(expected, np.number) else expected
        r, t = _tolerances([_number_dtype(a), _number_dtype(e)], rtol, atol, id)

        def compare_numbers():
            if check_dtype and type(a) is not type(e):
                raise _Failure(
                    AssertionError, f"The (d)types do not match: {type(a)} != {type(e)}.", id
                )
            if a == e or (equal_nan and cmath.isnan(a) and cmath.isnan(e)):
                return
            diff = abs(a - e)
            if cmath.isfinite(diff) and diff <= t + r * abs(e):
                return
            raise _Failure(AssertionError, scalar_mismatch_msg(a, e, r, t), id)
        return compare_numbers

    va, ve = as_values(actual), as_values(expected)
    if va is None or ve is None:
        raise _Failure(
            TypeError,
            f"No comparison pair was able to handle inputs of type {type(actual)} "
            f"and {type(expected)}.",
            id,
        )
    (a, na), (e, ne) = va, ve
    r, t = _tolerances([na, ne], rtol, atol, id)

    def compare_tensors():
        def attribute_mismatch(attr, x, y):
            raise _Failure(
                AssertionError, f"The values for attribute '{attr}' do not match: {x} != {y}.", id
            )

        if a.shape != e.shape:
            attribute_mismatch("shape", _torch_size(a.shape), _torch_size(e.shape))
        if check_stride and _strides(actual) != _strides(expected):
            attribute_mismatch("stride()", _strides(actual), _strides(expected))
        if check_dtype and na != ne:
            attribute_mismatch("dtype", f"torch.{na}", f"torch.{ne}")
        name = promote(na, ne)
        x, y = a.astype(_compute_dtype(name)), e.astype(_compute_dtype(name))
        matches = isclose(x, y, r, t, equal_nan, name)
        if matches.all():
            return
        if x.shape == ():
            raise _Failure(AssertionError, scalar_mismatch_msg(x.item(), y.item(), r, t), id)
        raise _Failure(AssertionError, tensor_mismatch_msg(x, y, matches, name, r, t), id)
    return compare_tensors


def _originate(actual, expected, id, options):
    seq, mapping = collections.abc.Sequence, collections.abc.Mapping
    if (isinstance(actual, seq) and not isinstance(actual, str)
            and isinstance(expected, seq) and not isinstance(expected, str)):
        if len(actual) != len(expected):
            raise _Failure(
                AssertionError,
                f"The length of the sequences mismatch: {len(actual)} != {len(expected)}",
                id,
            )
        pairs = []
        for i in range(len(actual)):
            pairs += _originate(actual[i], expected[i], (*id, i), options)
        return pairs
    if isinstance(actual, mapping) and isinstance(expected, mapping):
        ka, ke = set(actual.keys()), set(expected.keys())
        if ka != ke:
            raise _Failure(
                AssertionError,
                "The keys of the mappings do not match:\n"
                f"Missing keys in the actual mapping: {sorted(ke - ka)}\n"
                f"Additional keys in the actual mapping: {sorted(ka - ke)}",
                id,
            )
        try:
            keys = sorted(ka)
        except TypeError:
            keys = list(ka)
        pairs = []
        for k in keys:
            pairs += _originate(actual[k], expected[k], (*id, k), options)
        return pairs
    return [_pair(actual, expected, id, **options)]


def assert_close(actual, expected, *, allow_subclasses=True, rtol=None, atol=None,
                 equal_nan=False, check_device=True, check_dtype=True, check_layout=True,
                 check_stride=False, msg=None):
    """Asserts that ``actual`` and ``expected`` are close, with torch.testing.assert_close's
    rules, default tolerances per dtype and failure report.

    ``|actual - expected| <= atol + rtol * |expected|`` elementwise (NaN equal to NaN only with
    ``equal_nan``). Inputs may mix ferrotorch tensors, torch tensors and numpy arrays (compared by
    value), numbers, and nested sequences/mappings of them. ``msg`` replaces the report (a str) or
    edits it (a callable). ``check_stride`` compares strides (in elements); torch's
    ``allow_subclasses``, ``check_device`` and ``check_layout`` are accepted and have no effect
    (every input here is a strided CPU array).

    >>> import ferrotorch
    >>> from ferrotorch.testing import assert_close
    >>> assert_close(ferrotorch.tensor([1.0, 2.0]), ferrotorch.tensor([1.0, 2.0 + 1e-7]))
    >>> assert_close(ferrotorch.tensor([1.0, 2.0]), ferrotorch.tensor([1.0, 3.0]))
    Traceback (most recent call last):
    ...
    AssertionError: Tensor-likes are not close!
    <BLANKLINE>
    Mismatched elements: 1 / 2 (50.0%)
    Greatest absolute difference: 1.0 at index (1,) (up to 1e-05 allowed)
    Greatest relative difference: 0.3333333432674408 at index (1,) (up to 1.3e-06 allowed)
    """
    __tracebackhide__ = True
    options = dict(rtol=rtol, atol=atol, equal_nan=equal_nan, check_dtype=check_dtype,
                   check_stride=check_stride)
    try:
        pairs = _originate(actual, expected, (), options)
    except _Failure as failure:
        raise failure.to_error(msg) from None
    for compare in pairs:
        try:
            compare()
        except _Failure as failure:
            raise failure.to_error(msg) from None
