"""Tensor creation, conversions and basic attributes, each compared with torch."""

import ferrotorch as ft
import numpy as np
import pytest
import torch
from conftest import DTYPES, LAYOUTS, assert_same, dtype_name, pair

torch.set_num_threads(1)  # tiny tensors: torch's thread pool only adds latency

FT = {k: v[0] for k, v in DTYPES.items()}
TH = {k: v[1] for k, v in DTYPES.items()}
ALL = list(DTYPES)


def raises_like(ours, theirs):
    """theirs() (torch) raises; ours() (ferrotorch) must raise the same exception type."""
    with pytest.raises(Exception) as e:
        theirs()
    with pytest.raises(e.type):
        ours()


def same_dtype(ours, theirs):
    assert dtype_name(ours.dtype) == dtype_name(theirs.dtype), f"{ours.dtype} != torch {theirs.dtype}"


# *** tensor(data): values and dtype inference ***

DATA = [
    0, 3, -7, 2.5, True, False, 1e10, -0.0,
    [], [[]], [[], []],
    [1, 2, 3], [1.0, 2.0], [1, 2.5], [True, False], [True, 2], [True, 2.5], [1, True, 2.0],
    [[1, 2], [3, 4]], ((1, 2), (3, 4)), [(1, 2), [3, 4]], ([1.5], [2.5]),
    [[[1], [2]], [[3], [4]]], [[True], [False]], (5,), [[0.5]],
    [2 ** 40, -(2 ** 40)], [1e-30, 1e30],
]


@pytest.mark.parametrize("data", DATA, ids=repr)
def test_tensor_infers_dtype_and_values(data):
    assert_same(ft.tensor(data), torch.tensor(data))


@pytest.mark.parametrize("dtype", ALL)
@pytest.mark.parametrize("data", [[1, 2, 0], [[0.5, -1.5], [2.0, 3.0]], [True, False], 3, 0.0], ids=repr)
def test_tensor_with_dtype(data, dtype):
    if dtype == "uint8" and data == [[0.5, -1.5], [2.0, 3.0]]:
        data = [[0.5, 1.5], [2.0, 3.0]]
    assert_same(ft.tensor(data, dtype=FT[dtype]), torch.tensor(data, dtype=TH[dtype]))


def test_tensor_rank0():
    t, r = ft.tensor(4.5), torch.tensor(4.5)
    assert_same(t, r)
    assert t.dim() == r.dim() == 0 and tuple(t.shape) == ()
    assert t.item() == r.item()


@pytest.mark.parametrize("data", [[[1, 2], [3]], [[1], 2], [1, [2]], [[1, 2], [3, 4, 5]], "abc", [None]], ids=repr)
def test_tensor_bad_data_raises(data):
    raises_like(lambda: ft.tensor(data), lambda: torch.tensor(data))


def test_tensor_requires_grad():
    t = ft.tensor([1.0, 2.0], requires_grad=True)
    r = torch.tensor([1.0, 2.0], requires_grad=True)
    assert t.requires_grad == r.requires_grad == True  # noqa: E712
    assert t.is_leaf == r.is_leaf
    assert ft.tensor([1.0]).requires_grad == torch.tensor([1.0]).requires_grad == False  # noqa: E712


def test_tensor_requires_grad_int_raises():
    with pytest.raises(RuntimeError):
        torch.tensor([1, 2], requires_grad=True)
    with pytest.raises(RuntimeError):
        ft.tensor([1, 2], requires_grad=True)


NP_DTYPES = [np.float16, np.float32, np.float64, np.int32, np.int64, np.uint8, np.bool_]


@pytest.mark.parametrize("npdt", NP_DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("shape", [(), (0,), (4,), (2, 3), (2, 1, 3)], ids=str)
def test_tensor_from_numpy_array(npdt, shape):
    a = np.asarray(np.arange(int(np.prod(shape))).reshape(shape) % 5).astype(npdt)
    assert_same(ft.tensor(a), torch.tensor(a))
    assert_same(ft.from_numpy(a), torch.from_numpy(a))


def test_as_tensor():
    a = np.arange(6.0).reshape(2, 3)
    assert_same(ft.as_tensor(a), torch.as_tensor(a))
    assert_same(ft.as_tensor([1, 2]), torch.as_tensor([1, 2]))


@pytest.mark.parametrize("npdt", NP_DTYPES, ids=lambda d: d.__name__)
def test_tensor_from_noncontiguous_numpy(npdt):
    a = (np.arange(24).reshape(4, 6) % 7).astype(npdt)
    for v in (a.T, a[::2, 1::3]):
        assert_same(ft.tensor(v), torch.tensor(v))


@pytest.mark.parametrize("npdt", [np.float32, np.int64], ids=lambda d: d.__name__)
def test_tensor_from_negative_stride_numpy(npdt):
    a = np.arange(12).reshape(3, 4).astype(npdt)
    for v in (a[:, ::-1], a[::-2], a[::-1, ::-1].T):  # torch refuses negative strides
        raises_like(lambda: ft.tensor(v), lambda: torch.tensor(v))
        raises_like(lambda: ft.from_numpy(v), lambda: torch.from_numpy(v))
        assert_same(ft.tensor(v.copy()), torch.tensor(v.copy()))


@pytest.mark.parametrize("value", [np.float32(1.5), np.float64(2.5), np.int64(3), np.int32(4), np.bool_(True)],
                         ids=repr)
def test_tensor_from_numpy_scalar(value):
    assert_same(ft.tensor(value), torch.tensor(value))


def test_tensor_list_of_numpy_scalars():
    data = [np.float64(1.5), np.float64(2.5)]
    assert_same(ft.tensor(data), torch.tensor(data))


@pytest.mark.parametrize("dtype", ["float32", "float64", "int64", "bool"])
def test_tensor_from_list_of_0d_tensors(dtype):
    vals = [1, 0, 1]
    ours = ft.tensor([ft.tensor(v, dtype=FT[dtype]) for v in vals])
    theirs = torch.tensor([torch.tensor(v, dtype=TH[dtype]) for v in vals])
    assert_same(ours, theirs)


@pytest.mark.parametrize("dtype", ["float32", "float64", "int64", "bool"])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_tensor_from_tensor_copies(dtype, layout):
    a, ta = pair((3, 4), dtype, layout)
    b = ft.tensor(a)
    assert_same(b, torch.tensor(ta))
    assert b._storage_ptr() != a._storage_ptr()


# *** factories ***

SHAPES = [(), (0,), (3,), (2, 3), (2, 0, 4), (1, 2, 3)]


@pytest.mark.parametrize("fn", ["zeros", "ones"])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_zeros_ones(fn, shape):
    assert_same(getattr(ft, fn)(shape), getattr(torch, fn)(shape))
    if shape:
        assert_same(getattr(ft, fn)(*shape), getattr(torch, fn)(*shape))
    for d in ALL:
        assert_same(getattr(ft, fn)(shape, dtype=FT[d]), getattr(torch, fn)(shape, dtype=TH[d]))


@pytest.mark.parametrize("fn", ["zeros", "ones", "empty"])
def test_factories_accept_size_and_list(fn):
    for size in (ft.Size([2, 3]), [2, 3], torch.Size([2, 3])):
        ours = getattr(ft, fn)(size)
        theirs = getattr(torch, fn)(torch.Size(size))
        assert tuple(ours.shape) == tuple(theirs.shape)
        same_dtype(ours, theirs)


@pytest.mark.parametrize("fill", [0, 7, -3, 2.5, True, False, 1e20, float("inf"), float("nan")], ids=repr)
def test_full_infers_dtype(fill):
    assert_same(ft.full((2, 3), fill), torch.full((2, 3), fill))
    assert_same(ft.full((), fill), torch.full((), fill))


@pytest.mark.parametrize("dtype", ALL)
def test_full_with_dtype(dtype):
    assert_same(ft.full((3, 2), 1, dtype=FT[dtype]), torch.full((3, 2), 1, dtype=TH[dtype]))


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_empty_shape_dtype(shape):
    for ours, theirs in [(ft.empty(shape), torch.empty(shape))] + [
            (ft.empty(shape, dtype=FT[d]), torch.empty(shape, dtype=TH[d])) for d in ALL]:
        assert tuple(ours.shape) == tuple(theirs.shape)
        same_dtype(ours, theirs)
        assert ours.is_contiguous() and ours.stride() == theirs.stride()


ARANGE = [
    (5,), (0,), (2, 7), (0, 10, 3), (10, 0, -3), (10, 0, -1), (-5, 5, 2), (3, 3), (3, 3, -1),
    (5.0,), (0, 1, 0.1), (1, 2.5, 0.5), (0.5, 3), (3, 0.5, -0.5), (0, 1, 0.3), (-1, 1, 0.25),
    (0.0, 1.0, 0.1), (1, 0, -0.1), (0, 10, 2.5), (True, 4),
]


@pytest.mark.parametrize("args", ARANGE, ids=str)
def test_arange(args):
    assert_same(ft.arange(*args), torch.arange(*args))


@pytest.mark.parametrize("dtype", ["float32", "float64", "int64", "int32"])
@pytest.mark.parametrize("args", [(6,), (1, 9, 2), (8, 1, -3)], ids=str)
def test_arange_dtype(args, dtype):
    assert_same(ft.arange(*args, dtype=FT[dtype]), torch.arange(*args, dtype=TH[dtype]))


def test_arange_float_step_size_rule():
    # torch computes the length as ceil((end - start) / step) in double precision.
    for args in [(0, 1, 0.1), (0, 0.3, 0.1), (1, 1.3, 0.1), (0, 2, 2 / 3), (-0.3, 0.3, 0.1)]:
        assert tuple(ft.arange(*args).shape) == tuple(torch.arange(*args).shape), args
        assert_same(ft.arange(*args), torch.arange(*args))


@pytest.mark.parametrize("args", [(0, 5, 0), (0, 5, -1), (7, 2), (1.0, 0.0, 0.5)], ids=str)
def test_arange_bad_step_raises(args):
    raises_like(lambda: ft.arange(*args), lambda: torch.arange(*args))


LINSPACE = [(0, 1, 5), (0, 1, 1), (0, 1, 0), (1, 0, 4), (-3, 7, 11), (0.5, 2.5, 7), (0, 10, 100), (2, 2, 3)]


@pytest.mark.parametrize("args", LINSPACE, ids=str)
def test_linspace(args):
    assert_same(ft.linspace(*args), torch.linspace(*args))


@pytest.mark.parametrize("dtype", ["float32", "float64", "int64"])
def test_linspace_dtype(dtype):
    assert_same(ft.linspace(0, 10, 6, dtype=FT[dtype]), torch.linspace(0, 10, 6, dtype=TH[dtype]))
    assert_same(ft.linspace(-1, 1, 9, dtype=FT[dtype]), torch.linspace(-1, 1, 9, dtype=TH[dtype]))


@pytest.mark.parametrize("args", [(3,), (1,), (0,), (2, 4), (4, 2), (3, 3), (0, 2)], ids=str)
@pytest.mark.parametrize("dtype", [None, "float64", "int64", "bool"])
def test_eye(args, dtype):
    if dtype is None:
        assert_same(ft.eye(*args), torch.eye(*args))
    else:
        assert_same(ft.eye(*args, dtype=FT[dtype]), torch.eye(*args, dtype=TH[dtype]))


@pytest.mark.parametrize("fn", ["zeros_like", "ones_like", "empty_like"])
@pytest.mark.parametrize("dtype", ["float32", "float64", "int64", "bool"])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_like(fn, dtype, layout):
    a, ta = pair((2, 3), dtype, layout)
    ours, theirs = getattr(ft, fn)(a), getattr(torch, fn)(ta)
    if fn == "empty_like":
        assert tuple(ours.shape) == tuple(theirs.shape)
        same_dtype(ours, theirs)
    else:
        assert_same(ours, theirs)
    ours, theirs = getattr(ft, fn)(a, dtype=ft.float64), getattr(torch, fn)(ta, dtype=torch.float64)
    assert tuple(ours.shape) == tuple(theirs.shape)
    same_dtype(ours, theirs)


@pytest.mark.parametrize("fill", [0, 5, 2.5, True], ids=repr)
@pytest.mark.parametrize("dtype", ["float32", "float64", "int64", "bool"])
def test_full_like(fill, dtype):
    a, ta = pair((2, 3), dtype)
    assert_same(ft.full_like(a, fill), torch.full_like(ta, fill))
    assert_same(ft.full_like(a, fill, dtype=ft.float64), torch.full_like(ta, fill, dtype=torch.float64))


@pytest.mark.parametrize("fn", ["tril", "triu"])
@pytest.mark.parametrize("shape", [(4, 4), (3, 5), (5, 2), (2, 3, 4)], ids=str)
@pytest.mark.parametrize("dtype", ["float32", "float64", "int64", "bool"])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_tril_triu(fn, shape, dtype, layout):
    a, ta = pair(shape, dtype, layout)
    assert_same(getattr(ft, fn)(a), getattr(torch, fn)(ta))
    for d in [0, 1, -1, 2, -3, 5, -5]:
        assert_same(getattr(ft, fn)(a, d), getattr(torch, fn)(ta, d))
        assert_same(getattr(a, fn)(diagonal=d), getattr(ta, fn)(diagonal=d))


@pytest.mark.parametrize("fn", ["tril_", "triu_"])
def test_tril_triu_inplace(fn):
    a, ta = pair((4, 5), "float32")
    getattr(a, fn)(1), getattr(ta, fn)(1)
    assert_same(a, ta)


# *** numpy interop ***

@pytest.mark.parametrize("npdt", [np.float32, np.float64, np.int64, np.int32, np.uint8, np.bool_],
                         ids=lambda d: d.__name__)
def test_from_numpy_shares_memory(npdt):
    a = np.zeros((2, 3), dtype=npdt)
    b = a.copy()
    t, r = ft.from_numpy(a), torch.from_numpy(b)
    a[1, 2] = 1
    b[1, 2] = 1
    assert_same(t, r)
    t[0, 0] = 1
    r[0, 0] = 1
    np.testing.assert_array_equal(a, b)


def test_from_numpy_noncontiguous_shares_memory():
    a = np.arange(12.0).reshape(3, 4)
    b = a.copy()
    t, r = ft.from_numpy(a.T), torch.from_numpy(b.T)
    assert t.stride() == r.stride()
    a[0, 1] = -1
    b[0, 1] = -1
    assert_same(t, r)


@pytest.mark.parametrize("dtype", ["float32", "float64", "int64", "int32", "uint8", "bool"])
def test_numpy_zero_copy_when_contiguous(dtype):
    a, ta = pair((3, 4), dtype)
    n, tn = a.numpy(), ta.numpy()
    assert n.dtype == tn.dtype and n.shape == tn.shape
    n[1, 1] = 0
    tn[1, 1] = 0
    assert_same(a, ta)
    a[2, 3] = 1
    ta[2, 3] = 1
    np.testing.assert_array_equal(n, tn)


@pytest.mark.parametrize("layout", ["transposed", "sliced"])
def test_numpy_of_view(layout):
    a, ta = pair((3, 4), "float32", layout)
    n, tn = a.numpy(), ta.numpy()
    np.testing.assert_array_equal(n, tn)
    assert n.strides == tn.strides  # torch gives a numpy view with the tensor's strides
    n[0, 0] = 42
    tn[0, 0] = 42
    assert_same(a, ta)


def test_numpy_requires_grad_raises():
    raises_like(lambda: ft.ones(2, requires_grad=True).numpy(), lambda: torch.ones(2, requires_grad=True).numpy())


@pytest.mark.parametrize("dtype", ALL)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_array_protocol(dtype, layout):
    a, ta = pair((2, 3), dtype, layout)
    if dtype == "bfloat16":  # numpy has no bfloat16: torch raises
        raises_like(lambda: np.asarray(a), lambda: np.asarray(ta))
        return
    n, tn = np.asarray(a), np.asarray(ta)
    assert n.dtype == tn.dtype and n.shape == tn.shape
    np.testing.assert_array_equal(n, tn)
    np.testing.assert_array_equal(np.array(a, dtype=np.float64), np.array(ta, dtype=np.float64))


# *** Python conversions ***

@pytest.mark.parametrize("dtype", ALL)
@pytest.mark.parametrize("shape", [(), (0,), (3,), (2, 3), (2, 1, 2)], ids=str)
def test_tolist(dtype, shape):
    a, ta = pair(shape, dtype, "sliced" if shape else "contiguous")
    ours, theirs = a.tolist(), ta.tolist()
    assert ours == theirs
    assert type(ours) is type(theirs)
    flat = lambda x: [y for z in x for y in flat(z)] if isinstance(x, list) else [x]  # noqa: E731
    assert [type(v) for v in flat(ours)] == [type(v) for v in flat(theirs)]


@pytest.mark.parametrize("dtype", ALL)
def test_item(dtype):
    a, ta = pair((1, 1), dtype, seed=3)
    assert a.item() == ta.item() and type(a.item()) is type(ta.item())
    b, tb = pair((), dtype, seed=4)
    assert b.item() == tb.item() and type(b.item()) is type(tb.item())


def test_item_many_elements_raises():
    with pytest.raises(RuntimeError):
        torch.ones(2).item()
    with pytest.raises(RuntimeError):
        ft.ones(2).item()


@pytest.mark.parametrize("dtype", ["float32", "int64", "bool"])
def test_python_number_conversions(dtype):
    a, ta = pair((), dtype, seed=5)
    assert float(a) == float(ta) and int(a) == int(ta) and bool(a) == bool(ta)


def test_bool_of_many_raises():
    with pytest.raises(RuntimeError):
        bool(torch.ones(2))
    with pytest.raises(RuntimeError):
        bool(ft.ones(2))


@pytest.mark.parametrize("layout", LAYOUTS)
def test_len_iter(layout):
    a, ta = pair((3, 2), "float32", layout)
    assert len(a) == len(ta)
    rows, trows = list(a), list(ta)
    assert len(rows) == len(trows)
    for o, t in zip(rows, trows):
        assert_same(o, t)
    assert_same(list(ft.tensor([1, 2, 3])), list(torch.tensor([1, 2, 3])))


def test_len_iter_rank0_raises():
    with pytest.raises(TypeError):
        len(torch.tensor(1.0))
    with pytest.raises(TypeError):
        len(ft.tensor(1.0))
    with pytest.raises(TypeError):
        iter(torch.tensor(1.0))
    with pytest.raises(TypeError):
        iter(ft.tensor(1.0))


# *** attributes ***

@pytest.mark.parametrize("shape", [(), (0,), (3,), (2, 3), (4, 1, 5)], ids=str)
def test_shape_size_ndim(shape):
    a, ta = ft.zeros(shape), torch.zeros(shape)
    assert isinstance(a.shape, tuple) and a.shape == ta.shape
    assert repr(a.shape) == repr(ta.shape) and str(a.shape) == str(ta.shape)
    assert repr(a.size()) == repr(ta.size())
    assert a.ndim == ta.ndim and a.dim() == ta.dim() and a.numel() == ta.numel()
    for d in range(-len(shape), len(shape)):
        assert a.size(d) == ta.size(d)
        assert a.shape[d] == ta.shape[d]
    assert repr(a.shape[1:]) == repr(ta.shape[1:])


def test_size_bad_dim_raises():
    with pytest.raises(IndexError):
        torch.zeros(2, 3).size(2)
    with pytest.raises(IndexError):
        ft.zeros(2, 3).size(2)


def test_device():
    a, ta = ft.zeros(2), torch.zeros(2)
    assert repr(a.device) == repr(ta.device) == "device(type='cpu')"
    assert str(a.device) == str(ta.device)
    assert a.device == ft.device("cpu")
    assert a.is_cuda == ta.is_cuda


@pytest.mark.parametrize("src", ALL)
@pytest.mark.parametrize("dst", ALL)
def test_to_dtype(src, dst):
    a, ta = pair((2, 5), src, "transposed", seed=6)
    assert_same(a.to(FT[dst]), ta.to(TH[dst]))
    assert_same(a.to(dtype=FT[dst]), ta.to(dtype=TH[dst]))
    assert_same(a.to(ft.zeros(1, dtype=FT[dst])), ta.to(torch.zeros(1, dtype=TH[dst])))


def test_to_same_dtype_returns_self():
    a, ta = ft.ones(3), torch.ones(3)
    assert (a.to(ft.float32) is a) == (ta.to(torch.float32) is ta)


@pytest.mark.parametrize("dtype", ["float32", "float64", "int64", "bool"])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_cast_methods(dtype, layout):
    a, ta = pair((3, 4), dtype, layout, seed=7)
    for method in ["float", "double", "long", "int", "bool", "half", "bfloat16", "byte"]:
        assert_same(getattr(a, method)(), getattr(ta, method)())


def test_cast_fractional_to_int_truncates():
    v = [-2.7, -0.5, 0.5, 2.7, 3.0]
    assert_same(ft.tensor(v).long(), torch.tensor(v).long())
    assert_same(ft.tensor(v).int(), torch.tensor(v).int())
    assert_same(ft.tensor(v).bool(), torch.tensor(v).bool())
    assert_same(ft.tensor([0.0, -0.0, float("nan")]).bool(), torch.tensor([0.0, -0.0, float("nan")]).bool())


def test_uint8_wraparound_on_cast():
    v = [-1, 256, 300, -255]
    assert_same(ft.tensor(v).to(ft.uint8), torch.tensor(v).to(torch.uint8))


# *** repr ***

REPRS = [
    lambda m: m.tensor([1, 2, 3]),
    lambda m: m.tensor([[1.5, -2.0], [3.25, 4.0]]),
    lambda m: m.tensor([True, False]),
    lambda m: m.tensor(3),
    lambda m: m.tensor(2.5),
    lambda m: m.tensor(True),
    lambda m: m.tensor([1.0, 2.0], requires_grad=True),
    lambda m: m.tensor([1.0, 2.0], dtype=m.float64),
    lambda m: m.tensor(1.5, dtype=m.float64),
    lambda m: m.tensor([1, 2], dtype=m.int32),
    lambda m: m.tensor([1, 2], dtype=m.uint8),
    lambda m: m.tensor([0.1, 1e-5], dtype=m.float16),
    lambda m: m.tensor([]),
    lambda m: m.zeros(0, 3),
    lambda m: m.zeros(2, 0, dtype=m.int64),
    lambda m: m.arange(12).reshape(3, 4),
    lambda m: m.arange(6.0).reshape(2, 3).T,
    lambda m: m.tensor([1e10, 1.0]),
    lambda m: m.tensor([float("nan"), float("inf"), -1.0]),
    # A result with a grad_fn suffix arrives with autograd (tests/test_autograd.py).
]


@pytest.mark.parametrize("i", range(len(REPRS)))
def test_repr(i):
    assert repr(REPRS[i](ft)) == repr(REPRS[i](torch))
    assert str(REPRS[i](ft)) == str(REPRS[i](torch))


def test_numpy_scalars_are_copied_not_borrowed():
    with pytest.raises(TypeError) as theirs:
        torch.from_numpy(np.float32(3.0))
    with pytest.raises(TypeError, match="expected np.ndarray") as ours:
        ft.from_numpy(np.float32(3.0))
    assert "expected np.ndarray" in str(theirs.value) and ours
    x = ft.as_tensor(np.float32(3.0))
    _ = [np.float32(i) for i in range(1000)]  # would reuse freed scalar memory
    assert x.item() == 3.0 and x.dtype == ft.float32 and x.dim() == 0
    assert ft.tensor(np.int64(7)).item() == 7


def test_randint_keywords_and_constants_like_torch():
    ft.manual_seed(5)
    torch.manual_seed(5)
    assert_same(ft.randint(high=10, size=(4,)), torch.randint(high=10, size=(4,)))
    assert_same(ft.randint(low=2, high=10, size=(3, 2)), torch.randint(low=2, high=10, size=(3, 2)))
    for name in ("inf", "nan", "pi", "e"):
        assert str(getattr(ft, name)) == str(getattr(torch, name))
    assert ft.cuda.is_available() is False and ft.cuda.device_count() == 0


def test_equal_like_torch():
    cases = [([1, 2], [1, 2]), ([1, 2], [1, 3]), ([1, 2], [1, 2, 3]), ([[1.0]], [1.0])]
    for a, b in cases:
        assert ft.equal(ft.tensor(a), ft.tensor(b)) == torch.equal(torch.tensor(a), torch.tensor(b))
