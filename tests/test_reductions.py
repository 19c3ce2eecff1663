"""Differential tests of reductions (sum, mean, var, max, argmax, norm, softmax, ...) against torch.
Every expected value is computed by torch in the test."""

import ferrotorch as ft
import numpy as np
import pytest
import torch
from conftest import LAYOUTS, assert_same, pair, to_ft

FLOATS = ["float32", "float64"]
NAN, INF = float("nan"), float("inf")

# dim arguments for a 3-D tensor: None, int, negative int, tuples (also with negative entries)
DIMS = [None, 0, 1, -1, (0, 2), (-1, 0), (0, 1, 2), (1,)]


def dim_kwargs(dim, keepdim):
    kw = {} if dim is None else {"dim": dim}
    if keepdim is not None:
        kw["keepdim"] = keepdim
    return kw


REDUCTIONS = {
    "sum": lambda t, **kw: t.sum(**kw),
    "mean": lambda t, **kw: t.mean(**kw),
    "prod": lambda t, **kw: t.prod(**kw),
    "var": lambda t, **kw: t.var(**kw),
    "std": lambda t, **kw: t.std(**kw),
    "var_c0": lambda t, **kw: t.var(correction=0, **kw),
    "std_c0": lambda t, **kw: t.std(correction=0, **kw),
    "var_c2": lambda t, **kw: t.var(correction=2, **kw),
    "std_c2": lambda t, **kw: t.std(correction=2, **kw),
    "var_unbiased_false": lambda t, **kw: t.var(unbiased=False, **kw),
    "std_unbiased_false": lambda t, **kw: t.std(unbiased=False, **kw),
    "amax": lambda t, **kw: t.amax(**kw),
    "amin": lambda t, **kw: t.amin(**kw),
    "logsumexp": lambda t, **kw: t.logsumexp(**kw),
    "norm": lambda t, **kw: t.norm(**kw),
    "norm_p1": lambda t, **kw: t.norm(p=1, **kw),
    "norm_inf": lambda t, **kw: t.norm(p=INF, **kw),
}

def _call(op, t, dim, keepdim):
    f = REDUCTIONS[op]
    if dim is None and op in ("amax", "amin", "logsumexp"):
        dim = tuple(range(t.dim()))  # torch spells "all dims" as a tuple for these
    if dim is None:
        return f(t, dim=None, keepdim=True) if keepdim else f(t)
    return f(t, dim=dim, keepdim=keepdim)


# torch.prod takes one int dim (no tuple, no all-dims keepdim form)
REDUCTION_CASES = [
    (op, dim, keepdim)
    for op in REDUCTIONS
    for dim in DIMS
    for keepdim in [False, True]
    if not (op == "prod" and (isinstance(dim, tuple) or (dim is None and keepdim)))
    # torch.norm with a tuple dim is a matrix norm: at most two dims
    and not (op.startswith("norm") and isinstance(dim, tuple) and len(dim) > 2)
]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("op,dim,keepdim", REDUCTION_CASES, ids=str)
def test_reduction(op, dim, keepdim, dtype):
    low, high = (0.5, 1.5) if op == "prod" else (-3, 3)
    a, ta = pair((3, 4, 5), dtype, seed=1, low=low, high=high)
    assert_same(_call(op, a, dim, keepdim), _call(op, ta, dim, keepdim))


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dim", [None, 0, -1, (0, 1)], ids=str)
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("op", ["sum", "mean", "var", "std_c0", "amax", "amin", "logsumexp", "norm"])
def test_reduction_layouts(op, dtype, dim, layout):
    a, ta = pair((6, 7), dtype, layout, seed=2)
    assert_same(_call(op, a, dim, False), _call(op, ta, dim, False))
    assert_same(_call(op, a, dim, True), _call(op, ta, dim, True))


@pytest.mark.parametrize("op", ["sum", "mean", "prod", "var", "std", "amax", "amin", "logsumexp",
                                "norm"])
def test_reduction_functional_forms(op):
    a, ta = pair((3, 4), "float64", "transposed", seed=3, low=0.5, high=1.5)
    assert_same(getattr(ft, op)(a, 1), getattr(torch, op)(ta, 1))
    assert_same(getattr(ft, op)(a, dim=0, keepdim=True), getattr(torch, op)(ta, dim=0, keepdim=True))


def test_reduction_of_0dim_tensor():
    a, ta = to_ft(torch.tensor(2.5)), torch.tensor(2.5)
    assert_same(a.sum(), ta.sum())
    assert_same(a.max(), ta.max())
    assert_same(a.argmax(), ta.argmax())
    # a 0-dim tensor accepts dim 0 / -1
    for op in ["sum", "mean", "prod", "amax", "amin", "logsumexp", "norm", "var_c0"]:
        assert_same(_call(op, a, 0, False), _call(op, ta, 0, False))
        assert_same(_call(op, a, -1, True), _call(op, ta, -1, True))
    assert_same(a.max(dim=0).values, ta.max(dim=0).values)
    assert_same(a.argmax(dim=0), ta.argmax(dim=0))


def test_large_float32_sum_accuracy():
    a, ta = pair((1000, 300), "float32", seed=4, low=0, high=1)
    # a sum of 300000 values near 150000: torch's float32 result is accurate to ~1e-6 relative
    assert_same(a.sum(), ta.sum(), rtol=2e-6)
    assert_same(a.sum(dim=0), ta.sum(dim=0), rtol=2e-6)
    assert_same(a.mean(dim=1), ta.mean(dim=1), rtol=2e-6)


def test_var_of_large_offset_values_is_stable():
    ta = torch.tensor([1e6 + 1, 1e6 + 2, 1e6 + 3, 1e6 + 4], dtype=torch.float64)
    a = to_ft(ta)
    assert_same(a.var(), ta.var())
    t32 = ta.float()
    assert_same(to_ft(t32).var(), t32.var(), rtol=1e-4)


def test_var_keyword_forms():
    a, ta = pair((4, 5), "float64", seed=5)
    assert_same(a.var(1), ta.var(1))
    assert_same(a.std(-1, unbiased=True, keepdim=True), ta.std(-1, unbiased=True, keepdim=True))
    assert_same(a.var(0, unbiased=False, keepdim=True), ta.var(0, unbiased=False, keepdim=True))
    assert_same(ft.var(a, dim=1, correction=0), torch.var(ta, dim=1, correction=0))
    assert_same(ft.std(a, correction=2), torch.std(ta, correction=2))


def test_var_std_positional_unbiased():
    # torch's overload var(dim, unbiased, keepdim)
    a, ta = pair((4, 5), "float64", seed=5)
    assert_same(a.var(1, True), ta.var(1, True))
    assert_same(a.var(0, False, True), ta.var(0, False, True))
    assert_same(a.std(1, False), ta.std(1, False))


def test_var_too_few_elements_gives_nan():
    a, ta = pair((3, 1), "float64", seed=6)
    with pytest.warns(UserWarning):
        expected = ta.var(dim=1)
    assert_same(a.var(dim=1), expected)
    assert_same(a.std(dim=1, correction=0), ta.std(dim=1, correction=0))
    with pytest.warns(UserWarning):
        expected = ta.var(dim=0, correction=3)
    assert_same(a.var(dim=0, correction=3), expected)


# *** dtypes ***

@pytest.mark.parametrize("dtype", ["int64", "int32", "bool", "uint8"])
def test_int_sum_gives_int64(dtype):
    a, ta = pair((3, 4), dtype, "transposed", seed=7)
    assert_same(a.sum(), ta.sum())
    assert_same(a.sum(dim=0), ta.sum(dim=0))
    assert_same(a.sum(dim=(0, 1), keepdim=True), ta.sum(dim=(0, 1), keepdim=True))
    assert_same(a.prod(dim=1), ta.prod(dim=1))
    assert_same(a.cumsum(dim=1), ta.cumsum(dim=1))


@pytest.mark.parametrize("dtype", ["int64", "bool"])
def test_int_max_min_keep_dtype(dtype):
    a, ta = pair((3, 4), dtype, seed=8)
    assert_same(a.amax(dim=1), ta.amax(dim=1))
    assert_same(a.amin(dim=0), ta.amin(dim=0))
    assert_same(a.max(), ta.max())
    assert_same(a.max(dim=1).values, ta.max(dim=1).values)


def test_sum_dtype_argument():
    a, ta = pair((3, 4), "float32", seed=9)
    assert_same(a.sum(dtype=ft.float64), ta.sum(dtype=torch.float64))
    assert_same(a.sum(dim=1, dtype=ft.float64), ta.sum(dim=1, dtype=torch.float64))
    i, ti = pair((3, 4), "int64", seed=10)
    assert_same(i.sum(dtype=ft.float32), ti.sum(dtype=torch.float32))
    assert_same(ft.sum(i, dtype=ft.float64), torch.sum(ti, dtype=torch.float64))
    assert_same(a.mean(dtype=ft.float64), ta.mean(dtype=torch.float64))
    assert_same(i.mean(dtype=ft.float32), ti.mean(dtype=torch.float32))
    assert_same(a.cumsum(0, dtype=ft.float64), ta.cumsum(0, dtype=torch.float64))
    assert_same(a.prod(1, dtype=ft.float64), ta.prod(1, dtype=torch.float64))


def test_sum_dtype_narrower_int():
    i, ti = pair((3, 4), "int64", seed=10)
    assert_same(i.sum(1, dtype=ft.int32), ti.sum(1, dtype=torch.int32))


def test_mean_of_int_raises():
    with pytest.raises(RuntimeError):
        torch.ones(3, dtype=torch.int64).mean()
    with pytest.raises(RuntimeError):
        ft.ones(3, dtype=ft.int64).mean()
    with pytest.raises(RuntimeError):
        ft.ones(3, dtype=ft.int64).var()


def test_dim_out_of_range_raises():
    with pytest.raises(IndexError):
        torch.zeros(2, 3).sum(dim=2)
    with pytest.raises(IndexError):
        ft.zeros(2, 3).sum(dim=2)
    with pytest.raises(IndexError):
        ft.zeros(2, 3).max(dim=-3)
    with pytest.raises(IndexError):
        ft.zeros(2, 3).softmax(dim=5)


def test_repeated_dim_raises():
    with pytest.raises(RuntimeError):
        torch.zeros(2, 3).sum(dim=(1, -1))
    with pytest.raises(RuntimeError):
        ft.zeros(2, 3).sum(dim=(1, -1))


# *** max / min / argmax / argmin ***

@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", FLOATS + ["int64"])
@pytest.mark.parametrize("op", ["max", "min"])
def test_max_min_with_dim(op, dtype, layout):
    a, ta = pair((4, 6), dtype, layout, seed=11)
    for dim in [0, 1, -1, -2]:
        for keepdim in [False, True]:
            r = getattr(a, op)(dim=dim, keepdim=keepdim)
            tr = getattr(ta, op)(dim=dim, keepdim=keepdim)
            assert_same(r.values, tr.values)
            assert_same(r.indices, tr.indices)
            values, indices = r
            assert_same(values, tr[0])
            assert_same(indices, tr[1])
    assert_same(getattr(a, op)(1)[0], getattr(ta, op)(1)[0])
    assert_same(getattr(ft, op)(a, 0).indices, getattr(torch, op)(ta, 0).indices)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", FLOATS + ["int64"])
@pytest.mark.parametrize("op", ["max", "min"])
def test_max_min_without_dim(op, dtype, layout):
    a, ta = pair((4, 6), dtype, layout, seed=12)
    assert_same(getattr(a, op)(), getattr(ta, op)())
    assert_same(getattr(ft, op)(a), getattr(torch, op)(ta))


@pytest.mark.parametrize("op", ["max", "min"])
def test_max_min_binary_form(op):
    a, ta = pair((3, 4), "float32", seed=13)
    b, tb = pair((4,), "float32", seed=14)
    assert_same(getattr(ft, op)(a, b), getattr(torch, op)(ta, tb))
    assert_same(getattr(a, op)(b), getattr(ta, op)(tb))


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", FLOATS + ["int64"])
@pytest.mark.parametrize("op", ["argmax", "argmin"])
def test_argmax_argmin(op, dtype, layout):
    a, ta = pair((4, 6), dtype, layout, seed=15)
    assert_same(getattr(a, op)(), getattr(ta, op)())
    assert_same(getattr(a, op)(keepdim=True), getattr(ta, op)(keepdim=True))
    for dim in [0, 1, -1]:
        for keepdim in [False, True]:
            assert_same(getattr(a, op)(dim=dim, keepdim=keepdim), getattr(ta, op)(dim=dim, keepdim=keepdim))
    assert_same(getattr(ft, op)(a, 1), getattr(torch, op)(ta, 1))


@pytest.mark.parametrize("op", ["argmax", "argmin", "max", "min"])
def test_ties_give_first_index(op):
    # many equal values: torch returns the first occurrence
    ta = torch.tensor([[1, 3, 3, 0, 3], [2, 2, 0, 0, 2], [0, 0, 0, 0, 0]])
    for t_ in (ta, ta.double()):
        a = to_ft(t_)
        if op in ("max", "min"):
            assert_same(getattr(a, op)(dim=1).indices, getattr(t_, op)(dim=1).indices)
            assert_same(getattr(a, op)(dim=0).indices, getattr(t_, op)(dim=0).indices)
        else:
            assert_same(getattr(a, op)(), getattr(t_, op)())
            assert_same(getattr(a, op)(dim=1), getattr(t_, op)(dim=1))
            assert_same(getattr(a, op)(dim=0), getattr(t_, op)(dim=0))


NAN_CASES = [
    [1.0, NAN, 3.0, NAN],
    [NAN, 2.0, -INF, INF],
    [INF, -INF, 0.0, 5.0],
    [-INF, -INF, -INF, -INF],
    [2.0, 2.0, 3.0, NAN],
]


@pytest.mark.parametrize("op", ["max", "min", "argmax", "argmin", "amax", "amin"])
def test_nan_and_inf_handling(op):
    ta = torch.tensor(NAN_CASES)
    a = to_ft(ta)
    assert_same(getattr(a, op)(), getattr(ta, op)())
    if op in ("max", "min"):
        assert_same(getattr(a, op)(dim=1).values, getattr(ta, op)(dim=1).values)
        assert_same(getattr(a, op)(dim=1).indices, getattr(ta, op)(dim=1).indices)
        assert_same(getattr(a, op)(dim=0).values, getattr(ta, op)(dim=0).values)
        assert_same(getattr(a, op)(dim=0).indices, getattr(ta, op)(dim=0).indices)
    else:
        assert_same(getattr(a, op)(dim=1), getattr(ta, op)(dim=1))
        assert_same(getattr(a, op)(dim=0), getattr(ta, op)(dim=0))


@pytest.mark.parametrize("op", ["sum", "mean", "prod", "var", "logsumexp", "norm", "cumsum"])
def test_nan_and_inf_propagate(op):
    ta = torch.tensor(NAN_CASES)
    a = to_ft(ta)
    f = REDUCTIONS.get(op, lambda t, **kw: t.cumsum(**kw))
    assert_same(f(a, dim=1), f(ta, dim=1))
    assert_same(f(a, dim=0), f(ta, dim=0))


def test_logsumexp_extremes():
    ta = torch.tensor([[1000.0, 1000.0], [-1000.0, -1000.0], [-INF, -INF], [INF, 1.0], [-INF, 0.0]])
    a = to_ft(ta)
    assert_same(a.logsumexp(dim=1), ta.logsumexp(dim=1))
    assert_same(a.logsumexp(dim=1, keepdim=True), ta.logsumexp(dim=1, keepdim=True))


# *** all / any ***

@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", ["bool", "float32", "int64"])
@pytest.mark.parametrize("op", ["all", "any"])
def test_all_any(op, dtype, layout):
    a, ta = pair((4, 5), dtype, layout, seed=16, low=0, high=3)
    if dtype == "float32":
        a, ta = a.floor(), ta.floor()
    assert_same(getattr(a, op)(), getattr(ta, op)())
    for dim in [0, 1, -1]:
        for keepdim in [False, True]:
            assert_same(getattr(a, op)(dim=dim, keepdim=keepdim), getattr(ta, op)(dim=dim, keepdim=keepdim))
    assert_same(getattr(a, op)(dim=(0, 1)), getattr(ta, op)(dim=(0, 1)))
    assert_same(getattr(ft, op)(a, 1), getattr(torch, op)(ta, 1))


def test_all_any_nan_counts_as_true():
    ta = torch.tensor([[NAN, 1.0], [0.0, NAN], [0.0, 0.0]])
    a = to_ft(ta)
    assert_same(a.all(dim=1), ta.all(dim=1))
    assert_same(a.any(dim=1), ta.any(dim=1))
    assert_same(a.all(), ta.all())


# *** softmax / log_softmax / cumsum ***

@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dim", [0, 1, 2, -1, -2])
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("op", ["softmax", "log_softmax", "cumsum"])
def test_softmax_family(op, dtype, dim, layout):
    a, ta = pair((3, 4, 5), dtype, layout, seed=17)
    assert_same(getattr(a, op)(dim), getattr(ta, op)(dim))
    assert_same(getattr(a, op)(dim=dim), getattr(ta, op)(dim=dim))
    assert_same(getattr(ft, op)(a, dim), getattr(torch, op)(ta, dim))


def test_softmax_dtype_argument():
    a, ta = pair((3, 4), "float32", seed=18)
    assert_same(a.softmax(-1, dtype=ft.float64), ta.softmax(-1, dtype=torch.float64))
    assert_same(a.log_softmax(0, dtype=ft.float64), ta.log_softmax(0, dtype=torch.float64))


def test_softmax_extremes():
    ta = torch.tensor([[1000.0, 1001.0, 999.0], [-1000.0, -1000.0, -1000.0],
                       [-INF, 0.0, 1.0], [-INF, -INF, -INF], [INF, 0.0, 1.0]])
    a = to_ft(ta)
    assert_same(a.softmax(dim=1), ta.softmax(dim=1))
    assert_same(a.log_softmax(dim=1), ta.log_softmax(dim=1))


@pytest.mark.parametrize("shape", [(0,), (2, 0, 3), (3, 0)], ids=str)
def test_softmax_cumsum_zero_size(shape):
    a, ta = pair(shape, "float32", seed=19)
    assert_same(a.softmax(-1), ta.softmax(-1))
    assert_same(a.log_softmax(0), ta.log_softmax(0))
    assert_same(a.cumsum(0), ta.cumsum(0))


def test_softmax_int_raises_or_matches():
    with pytest.raises(RuntimeError):
        torch.ones(3, dtype=torch.int64).softmax(0)
    with pytest.raises(RuntimeError):
        ft.ones(3, dtype=ft.int64).softmax(0)


# *** norm ***

@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", FLOATS)
def test_norm_variants(dtype, layout):
    a, ta = pair((4, 5), dtype, layout, seed=20)
    assert_same(a.norm(), ta.norm())
    assert_same(a.norm(p=2), ta.norm(p=2))
    assert_same(a.norm(2), ta.norm(2))
    assert_same(a.norm(p=1), ta.norm(p=1))
    assert_same(a.norm(p=INF), ta.norm(p=INF))
    assert_same(a.norm(p=-INF), ta.norm(p=-INF))
    assert_same(a.norm(p=3), ta.norm(p=3))
    assert_same(a.norm(p=0), ta.norm(p=0))
    assert_same(a.norm(p="fro"), ta.norm(p="fro"))
    assert_same(a.norm("fro", dim=(0, 1)), ta.norm("fro", dim=(0, 1)))
    assert_same(a.norm(p="fro", dim=1, keepdim=True), ta.norm(p="fro", dim=1, keepdim=True))
    assert_same(a.norm(dim=1), ta.norm(dim=1))
    assert_same(a.norm(p=1, dim=0), ta.norm(p=1, dim=0))
    assert_same(a.norm(p=INF, dim=-1, keepdim=True), ta.norm(p=INF, dim=-1, keepdim=True))
    assert_same(a.norm(2, -1), ta.norm(2, -1))
    assert_same(ft.norm(a, p=1, dim=1), torch.norm(ta, p=1, dim=1))


def test_norm_zero_vector_and_empty():
    for shape in [(3,), (0,), (2, 0)]:
        ta = torch.zeros(shape)
        a = to_ft(ta)
        assert_same(a.norm(), ta.norm())
        assert_same(a.norm(p=1), ta.norm(p=1))


# *** empty reductions ***

@pytest.mark.parametrize("dtype", FLOATS + ["int64"])
def test_empty_sum_prod(dtype):
    for shape in [(0,), (2, 0, 3)]:
        a, ta = pair(shape, dtype, seed=21)
        assert_same(a.sum(), ta.sum())
        assert_same(a.prod(), ta.prod())
        assert_same(a.sum(dim=0), ta.sum(dim=0))
        assert_same(a.prod(dim=0), ta.prod(dim=0))
        assert_same(a.sum(dim=-1, keepdim=True), ta.sum(dim=-1, keepdim=True))
        assert_same(a.all(), ta.all())
        assert_same(a.any(), ta.any())


def test_empty_sum_over_empty_dim():
    a, ta = pair((2, 0, 3), "float32", seed=22)
    assert_same(a.sum(dim=1), ta.sum(dim=1))
    assert_same(a.prod(dim=1), ta.prod(dim=1))
    assert_same(a.mean(dim=1), ta.mean(dim=1))
    assert_same(a.amax(dim=0), ta.amax(dim=0))
    assert_same(a.max(dim=2).values, ta.max(dim=2).values)
    assert_same(a.argmax(dim=0), ta.argmax(dim=0))
    assert_same(a.logsumexp(dim=1), ta.logsumexp(dim=1))
    assert_same(a.all(dim=1), ta.all(dim=1))
    assert_same(a.any(dim=1), ta.any(dim=1))
    assert_same(a.norm(dim=1), ta.norm(dim=1))


def test_empty_mean_is_nan():
    a, ta = pair((0,), "float32", seed=23)
    assert_same(a.mean(), ta.mean())
    b, tb = pair((2, 0), "float64", seed=24)
    assert_same(b.mean(), tb.mean())
    with pytest.warns(UserWarning):
        expected = tb.var()
    assert_same(b.var(), expected)


@pytest.mark.parametrize("op", ["max", "min", "argmax", "argmin", "amax", "amin"])
def test_empty_max_raises(op):
    with pytest.raises((RuntimeError, IndexError)):
        getattr(torch.zeros(0), op)()
    with pytest.raises((RuntimeError, IndexError)):
        getattr(ft.zeros(0), op)()
    with pytest.raises((RuntimeError, IndexError)):
        getattr(ft.zeros(2, 0), op)(dim=1) if op not in ("amax", "amin") else getattr(ft.zeros(2, 0), op)(dim=1)


def test_empty_max_raises_exact_types():
    # torch: no dim -> RuntimeError; reducing a size-0 dim -> IndexError
    with pytest.raises(RuntimeError):
        torch.zeros(0).max()
    with pytest.raises(RuntimeError):
        ft.zeros(0).max()
    with pytest.raises(IndexError):
        torch.zeros(2, 0).max(dim=1)
    with pytest.raises(IndexError):
        ft.zeros(2, 0).max(dim=1)
    with pytest.raises(IndexError):
        torch.zeros(2, 0).argmax(dim=1)
    with pytest.raises(IndexError):
        ft.zeros(2, 0).argmax(dim=1)


@pytest.mark.parametrize("size", [(3, 1), (1, 4), (4,), (2, 1, 1), (), (2, 3, 4)])
def test_sum_to_size_like_torch(size):
    values = np.random.default_rng(0).standard_normal((2, 3, 4))
    x, tx = ft.tensor(values, requires_grad=True), torch.tensor(values, requires_grad=True)
    ours, theirs = x.sum_to_size(size), tx.sum_to_size(size)
    assert_same(ours, theirs)
    ours.sum().backward()
    theirs.sum().backward()
    assert_same(x.grad, tx.grad)
    with pytest.raises(RuntimeError, match="not expandable"):
        x.sum_to_size(5)
