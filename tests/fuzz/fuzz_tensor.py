"""Fuzzes the tensor constructors against torch.

Targets: ``ferrotorch.tensor``, ``ferrotorch.as_tensor`` and ``ferrotorch.from_numpy``, with or
without ``dtype=``. Inputs are nested Python sequences (ragged sometimes; ints up to 10**30,
floats, bools, None, str, complex, bytes, numpy scalars, 0-d tensors, deep nesting) and numpy
arrays of every dtype (float16 to complex, object, datetime, structured, big-endian) seen through
strided, reversed, transposed, broadcast, misaligned and read-only views.

The oracle is torch given the same input:
- torch accepts: ferrotorch gives the same dtype, shape and values (NaN == NaN), or an ordinary
  error when the input or the result has a dtype ferrotorch does not have (int8, uint16, complex,
  ...); from_numpy/as_tensor share the array's memory exactly where torch does;
- torch refuses: ferrotorch refuses too, with TypeError, ValueError, RuntimeError or
  OverflowError, never a PanicException or a crash.
Where torch's answer is a quirk that ferrotorch need not copy, ``torch_quirk`` says why.

    python tests/fuzz/fuzz_tensor.py -max_total_time=600   # see README.md
"""

import os
import sys
import warnings

import atheris
import numpy as np
import torch

with atheris.instrument_imports(include=["ferrotorch"]):
    import ferrotorch as ft

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from findings import Findings, exception_kind, gist  # noqa: E402

# torch and numpy warn about non-writable arrays, slow lists of arrays, complex to real casts:
# all made on purpose here
warnings.simplefilter("ignore")

ORDINARY_ERRORS = (TypeError, ValueError, RuntimeError, OverflowError)
# the dtypes both libraries have, by name
SHARED_DTYPES = ["float32", "float64", "float16", "bfloat16", "int64", "int32", "uint8", "bool"]
NUMPY_DTYPES = [np.bool_, np.uint8, np.int8, np.int16, np.uint16, np.int32, np.uint32, np.int64,
                np.uint64, np.float16, np.float32, np.float64, np.longdouble, np.complex64,
                np.complex128, ">f4", ">i8", ">f2", "M8[s]", "m8[ms]", object, "U3", "S2",
                [("a", "<i4"), ("b", "<f8")]]
INTS = [0, 1, -1, 2, 127, 128, 255, 256, -129, 2**31 - 1, 2**31, 2**53 + 1, 2**63 - 1, -2**63,
        2**63, -2**63 - 1, 2**64, 10**30]
FLOATS = [0.0, -0.0, 0.5, -2.5, 1e-310, 5e-324, 65504.0, 65520.0, 3.5e38, 1e300, float("inf"),
          float("-inf"), float("nan"), 2.0**63, -2.0**63, 256.0]

findings = Findings("tensor")


class ZeroDim:
    """A 0-d tensor inside a nested list, built as a torch or ferrotorch tensor per library."""

    def __init__(self, value, dtype):
        self.value, self.dtype = value, dtype

    def build(self, lib):
        return lib.tensor(self.value).to(getattr(lib, self.dtype))

    def __repr__(self):
        return f"ZeroDim({self.value!r}, {self.dtype})"


# *** inputs ***

def scalar(fdp):
    kind = fdp.ConsumeIntInRange(0, 13)
    if kind <= 3:
        return fdp.PickValueInList(INTS) if kind == 0 else fdp.ConsumeIntInRange(-300, 300)
    if kind <= 6:
        return fdp.PickValueInList(FLOATS) if kind == 4 else fdp.ConsumeRegularFloat()
    if kind <= 8:
        return fdp.ConsumeBool()
    if kind == 9:
        return fdp.PickValueInList([None, "1", 1j, b"\x01", bytearray(b"\x02"), 1.5 - 2j])
    if kind == 10:
        np_type = fdp.PickValueInList([np.float16, np.float32, np.float64, np.int8, np.uint8,
                                       np.int32, np.int64, np.uint64, np.bool_, np.complex64])
        value = fdp.PickValueInList(INTS + FLOATS)
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            try:
                return np_type(value)
            except (OverflowError, ValueError, TypeError):
                return np_type(0)
    if kind == 11:
        return ZeroDim(fdp.PickValueInList([0, 1, -3, 2.5, True]),
                       fdp.PickValueInList(SHARED_DTYPES))
    if kind == 12:
        return np.array(fdp.PickValueInList([[1, 2], [1.5], [], [[True]]]))
    return []


def nested(fdp, shape):
    """A nested list of `shape`, made ragged or mixed now and then."""
    if not shape:
        return scalar(fdp)
    items = [nested(fdp, shape[1:]) for _ in range(shape[0])]
    roll = fdp.ConsumeIntInRange(0, 31)
    if roll == 0:
        items.append(nested(fdp, shape[2:]))  # ragged: a row of the wrong rank
    elif roll == 1 and items:
        items.pop()  # ragged: a row too short, unless the others are short too
    elif roll == 2:
        return tuple(items)
    elif roll == 3 and len(shape) == 1:
        return range(shape[0])
    return items


def python_data(fdp):
    if fdp.ConsumeIntInRange(0, 15) == 0:  # a chain [[[...]]] deeper than torch allows
        data = fdp.PickValueInList([[], [1], [2.5]])
        for _ in range(fdp.ConsumeIntInRange(1, 300)):
            data = [data]
        return data
    shape = [fdp.ConsumeIntInRange(0, 4) for _ in range(fdp.ConsumeIntInRange(0, 4))]
    return nested(fdp, shape)


def numpy_array(fdp):
    dtype = np.dtype(fdp.PickValueInList(NUMPY_DTYPES))
    shape = [fdp.ConsumeIntInRange(0, 4) for _ in range(fdp.ConsumeIntInRange(0, 3))]
    n = int(np.prod(shape))
    if dtype.kind in "OUS":
        array = np.empty(n, dtype=dtype)
        for i in range(n):  # one by one: numpy would unpack list-like objects
            array[i] = scalar(fdp) if dtype.kind == "O" else "ab"
        array = array.reshape(shape)
    else:  # arbitrary bit patterns: NaN payloads, subnormals, huge integers
        raw = fdp.ConsumeBytes(n * dtype.itemsize + 1)
        raw += b"\x00" * (n * dtype.itemsize + 1 - len(raw))
        offset = fdp.ConsumeIntInRange(0, 1) if dtype.itemsize > 1 else 0
        array = np.frombuffer(raw, dtype=dtype, count=n, offset=offset).reshape(shape)
        if dtype.kind == "b":  # bool bytes other than 0 and 1 are undefined in both libraries
            array = array.view(np.uint8).astype(bool)
        if fdp.ConsumeBool():
            array = array.copy()  # writable, and aligned whatever the offset
    for _ in range(fdp.ConsumeIntInRange(0, 3)):
        if not isinstance(array, np.ndarray):  # a numpy scalar has no further views
            break
        array = view_of(fdp, array)
    return array


def view_of(fdp, a):
    """Another view of `a`: strided, reversed, transposed, broadcast, field, read-only..."""
    edit = fdp.ConsumeIntInRange(0, 8)
    if edit == 0 and a.ndim:
        axis = fdp.ConsumeIntInRange(0, a.ndim - 1)
        index = [slice(None)] * a.ndim
        index[axis] = slice(None, None, fdp.PickValueInList([2, 3, -1, -2]))
        return a[tuple(index)]
    if edit == 1:
        return a.T
    if edit == 2:
        return np.broadcast_to(a[None], (fdp.ConsumeIntInRange(0, 3),) + a.shape)
    if edit == 3:
        return a[..., None]
    if edit == 4:
        b = a.view()
        b.setflags(write=False)
        return b
    if edit == 5 and a.dtype.names:
        return a[fdp.PickValueInList(list(a.dtype.names))]
    if edit == 6:
        return np.asfortranarray(a)
    if edit == 7 and a.ndim == 0 and a.dtype.kind in "biufc":
        return a[()]  # a numpy scalar
    return a


# *** the oracle ***

def build(lib, data):
    """`data` with ZeroDim placeholders replaced by `lib`'s tensors."""
    if isinstance(data, ZeroDim):
        return data.build(lib)
    if type(data) in (list, tuple):
        return type(data)(build(lib, v) for v in data)
    return data


def values(t):
    t = t.detach().reshape(-1)  # numpy stops at 64 dimensions, torch at 128
    if t.dtype in (ft.bfloat16, torch.bfloat16):
        t = t.float()
    return np.array(t.numpy(), copy=True)


def same(ours, theirs, compare_values=True):
    if tuple(ours.shape) != tuple(theirs.shape):
        return f"shape {tuple(ours.shape)} != torch {tuple(theirs.shape)}"
    if str(ours.dtype) != str(theirs.dtype):
        return f"dtype {ours.dtype} != torch {theirs.dtype}"
    if not compare_values:
        return None
    a, b = values(ours), values(theirs)
    if not np.array_equal(a, b, equal_nan=a.dtype.kind == "f"):
        return f"values {a!r} != torch {b!r}"
    return None


def unsupported(data):
    """Whether `data` holds a value of a dtype ferrotorch does not have (then it may refuse)."""
    if isinstance(data, complex):
        return True
    if isinstance(data, (np.ndarray, np.generic)):
        return data.dtype.name not in SHARED_DTYPES
    if isinstance(data, (list, tuple)):
        return any(unsupported(v) for v in data)
    return False


def shape_of(data):
    """The shape nested sequences spell, or None when they are ragged."""
    if isinstance(data, (list, tuple, range)):
        shapes = {shape_of(v) for v in data}
        if None in shapes or len(shapes) > 1:
            return None
        return (len(data),) + (shapes.pop() if shapes else ())
    return data.shape if isinstance(data, np.ndarray) else ()


INT_RANGES = {"uint8": (0, 2**8), "int32": (-2**31, 2**31), "int64": (-2**63, 2**63)}


def undefined_cast(data, dtype):
    """Whether `data` has floats that `dtype` cannot hold (NaN, inf, out of range): torch's
    result is then C++ undefined behaviour, so only the shape and dtype are compared."""
    if dtype not in INT_RANGES or not isinstance(data, (np.ndarray, np.generic)) or \
            data.dtype.kind not in "fc":
        return False
    low, high = INT_RANGES[dtype]
    with np.errstate(all="ignore"):
        x = np.asarray(data).real.astype(np.float64)
        return bool(np.any(~np.isfinite(x) | (x < low) | (x >= high)))


def contains(data, kind):
    """Whether `data` or an item nested in it is of type `kind` (or satisfies it, a function)."""
    if isinstance(data, (list, tuple)):
        return any(contains(v, kind) for v in data)
    return kind(data) if callable(kind) and not isinstance(kind, type) else isinstance(data, kind)


def is_float_zero_dim(data):
    return isinstance(data, ZeroDim) and data.dtype.startswith(("float", "bfloat"))


def torch_quirk(api, data, dtype):
    """Why torch's answer for `data` need not be copied, or None when it must."""
    if isinstance(data, (np.ndarray, np.generic)) and api != "from_numpy" and \
            (not data.dtype.isnative or any(st < 0 for st in data.strides)):
        return "ferrotorch copies other byte orders and negative strides where it may copy"
    if isinstance(data, np.ndarray) and not data.flags.aligned and api != "tensor":
        return ("ferrotorch never shares unaligned memory (its kernels read aligned slices): "
                "from_numpy refuses it with a ValueError, as_tensor copies")
    if isinstance(data, np.ndarray) and data.size <= 1:
        return "torch refuses negative or odd strides even where they address nothing"
    if dtype in ("int64", "int32", "uint8", "bool") and \
            contains(data, (np.float16, np.float32, np.bool_)):
        return "torch cannot convert these numpy scalars to integer dtypes (TypeError)"
    if isinstance(data, (list, tuple)) and contains(data, np.bool_):
        return "torch cannot read numpy bool scalars among ints in a list (TypeError)"
    if dtype in ("int64", "int32", "uint8", "bool") and contains(data, is_float_zero_dim):
        return "torch cannot convert a float 0-d tensor in a list to an integer dtype (TypeError)"
    if isinstance(data, (list, tuple)) and contains(data, bytes):
        return "torch reads bytes inside a sequence as ints, but refuses them alone"
    if shape_of(data) is None:
        return "torch stops checking ragged data once a dimension is 0"
    return None


def shares_memory(t, array):
    try:
        return np.shares_memory(t.detach().numpy(), array)
    except (TypeError, RuntimeError):  # bfloat16 has no numpy view
        return False


def writes_through(t, array):
    """Whether a write into tensor `t` shows in `array` (they must share memory)."""
    if not array.flags.writeable or array.size == 0 or 0 in array.strides:
        return shares_memory(t, array)
    index = (0,) * array.ndim
    old = array[index].copy()
    new = not bool(old) if array.dtype == np.bool_ else (0 if old == 1 else 1)
    t[index] = new
    seen = array[index] == new
    array[index] = old
    return bool(seen)


def crashes_torch(api, data):
    """torch.tensor of a misaligned complex128 array is a segmentation fault in torch itself."""
    return api == "tensor" and isinstance(data, np.ndarray) and data.dtype.kind == "c" and \
        not data.flags.aligned


def check(api, data, dtype, raw):
    """Calls `api` on `data` in both libraries; `raw` is the fuzzer input, kept with findings."""
    kwargs = {} if dtype is None else {"dtype": dtype}
    torch_kwargs = {} if dtype is None else {"dtype": getattr(torch, dtype)}
    ft_kwargs = {} if dtype is None else {"dtype": getattr(ft, dtype)}
    call = f"{api}({type(data).__name__}{', ' + repr(kwargs) if kwargs else ''})"
    try:
        theirs, torch_error = getattr(torch, api)(build(torch, data), **torch_kwargs), None
    except Exception as e:  # whatever torch raises, we only need "it refused"
        theirs, torch_error = None, e
    try:
        ours = getattr(ft, api)(build(ft, data), **ft_kwargs)
    except BaseException as e:  # PanicException derives from BaseException
        if not isinstance(e, ORDINARY_ERRORS):
            findings.report(exception_kind(api, e), (call, data, e), raw)
        elif torch_error is None and not unsupported(data) and \
                str(theirs.dtype).replace("torch.", "") in SHARED_DTYPES and \
                not torch_quirk(api, data, dtype):
            findings.report(f"{api} refuses what torch accepts ({gist(e)})", (call, data, e), raw)
        return
    if torch_error is not None:
        if torch_quirk(api, data, dtype):
            return
        findings.report(f"{api} accepts what torch refuses ({gist(torch_error)})",
                        (call, data, torch_error), raw)
        return
    problem = same(ours, theirs, compare_values=not undefined_cast(data, dtype))
    if problem:
        findings.report(f"{api} differs from torch ({problem.split()[0]})",
                        (call, data, problem), raw)
        return
    if isinstance(data, np.ndarray) and api != "tensor" and \
            shares_memory(theirs, data) and not writes_through(ours, data) and \
            not torch_quirk(api, data, dtype):
        findings.report(f"{api} copies where torch shares memory", (call, data), raw)


def TestOneInput(data):  # libFuzzer's name for the entry point
    fdp = atheris.FuzzedDataProvider(data)
    api = fdp.PickValueInList(["tensor", "as_tensor", "from_numpy"])
    dtype = None if api == "from_numpy" or fdp.ConsumeBool() else \
        fdp.PickValueInList(SHARED_DTYPES)
    x = numpy_array(fdp) if api == "from_numpy" or fdp.ConsumeBool() else python_data(fdp)
    if not crashes_torch(api, x):
        check(api, x, dtype, data)


# coverage of the harness's own branches (which kinds of input, which verdicts) guides libFuzzer;
# ferrotorch's Rust core is not instrumented
for _f in (scalar, nested, python_data, numpy_array, view_of, check, torch_quirk, unsupported,
           undefined_cast, crashes_torch):
    atheris.instrument_func(_f)


def main():
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
