"""dtype objects and torch's type promotion: every binary op's result dtype (and values) must equal
torch's, for tensor/tensor pairs, 0-dim/n-dim mixes and Python scalars on either side."""

import operator

import ferrotorch as ft
import pytest
import torch
from conftest import DEVICE, DTYPES, ON_CUDA, assert_same, cuda_differs, dtype_name, pair, to_ft

torch.set_num_threads(1)  # tiny tensors: torch's thread pool only adds latency

FT = {k: v[0] for k, v in DTYPES.items()}
TH = {k: v[1] for k, v in DTYPES.items()}
NAMES = ["bool", "uint8", "int32", "int64", "float16", "bfloat16", "float32", "float64"]

OPS = {
    "add": operator.add, "sub": operator.sub, "mul": operator.mul, "truediv": operator.truediv,
    "floordiv": operator.floordiv, "eq": operator.eq, "ne": operator.ne, "lt": operator.lt, "le": operator.le,
    "gt": operator.gt, "ge": operator.ge,
}


def operand(name, shape, seed, divisor=False):
    """(ferrotorch, torch) operands; a divisor has no zeros (all True for bool)."""
    if name == "bool":
        n = int(torch.Size(shape).numel())
        t = torch.ones(shape, dtype=torch.bool) if divisor else (torch.arange(n) % 2 == 0).reshape(shape)
        return to_ft(t), t
    return pair(shape, name, seed=seed, low=1, high=4)


def run_both(fn, ours_args, theirs_args):
    """fn(*theirs_args); if torch raises, ferrotorch must raise the same type; else compare."""
    try:
        theirs = fn(*theirs_args)
    except Exception as e:  # noqa: BLE001
        if ON_CUDA and "ZeroDivisionError" in str(e):
            # torch's CUDA kernels divide integers by zero without an error (the values are
            # undefined): the result's dtype is what can be compared, with torch on CUDA.
            theirs = fn(*(a.to(DEVICE) if isinstance(a, torch.Tensor) else a for a in theirs_args))
            assert dtype_name(fn(*ours_args).dtype) == dtype_name(theirs.dtype)
            return
        with pytest.raises(type(e)):
            fn(*ours_args)
        return
    ours = fn(*ours_args)
    assert dtype_name(ours.dtype) == dtype_name(theirs.dtype), f"dtype {ours.dtype} != torch {theirs.dtype}"
    assert_same(ours, theirs)


def check_each(cases, check):
    """check(case) for every case; reports every failing case at once (one bug must not hide another)."""
    failures = []
    for case in cases:
        try:
            check(case)
        except KeyboardInterrupt:
            raise
        except BaseException as e:  # noqa: BLE001  (pytest's Failed and pyo3 panics are BaseExceptions)
            failures.append(f"{case}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
    assert not failures, f"{len(failures)} of {len(cases)} cases differ from torch:\n" + "\n".join(failures)


# *** tensor op tensor ***

@pytest.mark.parametrize("op", list(OPS))
@pytest.mark.parametrize("a", NAMES)
def test_promotion_tensor_tensor(a, op):
    x, tx = operand(a, (2, 3), seed=1)

    def check(b):
        y, ty = operand(b, (2, 3), seed=2, divisor=True)
        run_both(OPS[op], (x, y), (tx, ty))

    check_each(NAMES, check)


@pytest.mark.parametrize("a", NAMES)
def test_promotion_broadcast(a):
    x, tx = operand(a, (2, 1), seed=3)

    def check(case):
        b, op = case
        y, ty = operand(b, (3,), seed=4, divisor=True)
        run_both(OPS[op], (x, y), (tx, ty))

    check_each([(b, op) for b in NAMES for op in ["add", "mul", "truediv", "lt"]], check)


@pytest.mark.parametrize("a", NAMES)
def test_promotion_0dim_and_ndim(a):
    """A 0-dim tensor only raises the result's category, never its size within a category."""
    x, tx = operand(a, (2, 3), seed=5)

    def check(case):
        b, op = case
        s, ts = operand(b, (), seed=6, divisor=True)
        run_both(OPS[op], (x, s), (tx, ts))
        run_both(OPS[op], (s, x), (ts, tx))

    check_each([(b, op) for b in NAMES for op in ["add", "mul", "truediv", "floordiv", "ge"]], check)


@pytest.mark.parametrize("a", NAMES)
def test_promotion_0dim_and_0dim(a):
    x, tx = operand(a, (), seed=7)

    def check(case):
        b, op = case
        y, ty = operand(b, (), seed=8, divisor=True)
        run_both(OPS[op], (x, y), (tx, ty))

    check_each([(b, op) for b in NAMES for op in ["add", "mul", "truediv", "eq"]], check)


# *** tensor op Python scalar ***

SCALARS = [2, -1, 0, 2.5, 1.0, True, False]
SCALAR_OPS = {
    "t+s": lambda t, s: t + s, "s+t": lambda t, s: s + t, "t*s": lambda t, s: t * s, "s*t": lambda t, s: s * t,
    "t-s": lambda t, s: t - s, "s-t": lambda t, s: s - t, "t/s": lambda t, s: t / s, "s/t": lambda t, s: s / t,
    "t//s": lambda t, s: t // s, "s//t": lambda t, s: s // t, "t<s": lambda t, s: t < s, "s<t": lambda t, s: s < t,
    "t==s": lambda t, s: t == s, "t>=s": lambda t, s: t >= s, "t.add(s)": lambda t, s: t.add(s),
    "t.mul(s)": lambda t, s: t.mul(s), "t.div(s)": lambda t, s: t.div(s),
}


@pytest.mark.parametrize("shape", [(2, 3), ()], ids=str)
@pytest.mark.parametrize("op", list(SCALAR_OPS))
@pytest.mark.parametrize("name", NAMES)
def test_promotion_python_scalar(name, op, shape):
    x, tx = operand(name, shape, seed=9, divisor=True)
    # division by a zero scalar (inf/nan or an error) is tested below
    scalars = [s for s in SCALARS if not (s in (0, False) and "/" in op and op.startswith("t"))]
    check_each(scalars, lambda s: run_both(SCALAR_OPS[op], (x, s), (tx, s)))


@cuda_differs("integer division by zero raises no error on CUDA")
@pytest.mark.parametrize("name", ["int64", "int32", "uint8"])
def test_integer_division_by_zero_raises(name):
    x, tx = operand(name, (3,), seed=10)
    z, tz = to_ft(torch.zeros(3, dtype=TH[name])), torch.zeros(3, dtype=TH[name])
    run_both(operator.floordiv, (x, z), (tx, tz))
    run_both(operator.floordiv, (x, 0), (tx, 0))


@pytest.mark.parametrize("name", ["float32", "float64", "int64", "bool"])
def test_true_division_by_zero(name):
    x, tx = operand(name, (3,), seed=11)
    z, tz = to_ft(torch.zeros(3, dtype=TH[name])), torch.zeros(3, dtype=TH[name])
    run_both(operator.truediv, (x, z), (tx, tz))
    run_both(operator.truediv, (x, 0), (tx, 0))
    run_both(operator.truediv, (x, 0.0), (tx, 0.0))


def test_scalar_examples():
    t, tt = ft.tensor([1, 2, 3]), torch.tensor([1, 2, 3])
    for fn in [lambda x: 2 * x, lambda x: 1 - x, lambda x: x / 2, lambda x: x * 1.5, lambda x: x + True,
               lambda x: x.bool() + 1, lambda x: x.bool() * 2.5, lambda x: x.to(TH["uint8"] if x is tt else ft.uint8) + 300,
               lambda x: x.float().double() * 1.5, lambda x: x.half() + 1.5, lambda x: 7 // x, lambda x: x.int() * 2 ** 40]:
        run_both(fn, (t,), (tt,))


# *** in-place ops keep the left dtype (or raise when torch refuses the cast) ***

@pytest.mark.parametrize("op", ["add_", "mul_", "div_"])
@pytest.mark.parametrize("a", NAMES)
def test_inplace_promotion(a, op):
    def check(b):
        x, tx = operand(a, (2, 3), seed=12)
        y, ty = operand(b, (2, 3), seed=13, divisor=True)
        run_both(lambda p, q: getattr(p, op)(q), (x, y), (tx, ty))
        assert_same(x, tx)

    check_each(NAMES, check)


@pytest.mark.parametrize("name", NAMES)
def test_inplace_scalar_promotion(name):
    def check(case):
        op, scalar = case
        x, tx = operand(name, (2, 3), seed=14)
        run_both(lambda p, q: getattr(p, op)(q), (x, scalar), (tx, scalar))
        assert_same(x, tx)

    check_each([(op, s) for op in ["__iadd__", "__imul__", "__itruediv__", "__isub__"] for s in [2, 2.5, True]], check)


# *** promote_types, result_type, can_cast ***

@pytest.mark.parametrize("a", NAMES)
def test_promote_types(a):
    def check(b):
        assert repr(ft.promote_types(FT[a], FT[b])) == repr(torch.promote_types(TH[a], TH[b]))
        assert ft.promote_types(FT[a], FT[b]) is FT[dtype_name(torch.promote_types(TH[a], TH[b]))]

    check_each(NAMES, check)


@pytest.mark.parametrize("a", NAMES)
def test_result_type(a):
    x, tx = operand(a, (2,), seed=15)

    def check(b):
        y, ty = operand(b, (), seed=16)
        for p, q, tp, tq in [(x, y, tx, ty), (y, x, ty, tx), (x, 2.5, tx, 2.5), (x, 3, tx, 3), (True, x, True, tx)]:
            assert repr(ft.result_type(p, q)) == repr(torch.result_type(tp, tq))

    check_each(NAMES, check)


@pytest.mark.parametrize("a", NAMES)
def test_can_cast(a):
    def check(b):
        assert ft.can_cast(FT[a], FT[b]) == torch.can_cast(TH[a], TH[b])

    check_each(NAMES, check)


# *** dtype objects ***

@pytest.mark.parametrize("name", NAMES)
def test_dtype_object(name):
    d, td = FT[name], TH[name]
    assert repr(d) == repr(td) and str(d) == str(td)
    assert d.is_floating_point == td.is_floating_point
    assert d.is_signed == td.is_signed
    assert d.is_complex == td.is_complex
    assert d.itemsize == td.itemsize
    assert d == d and hash(d) == hash(FT[name])
    assert all((d == FT[o]) == (o == name) for o in NAMES)
    assert isinstance(d, ft.dtype)


@pytest.mark.parametrize("name", NAMES)
def test_tensor_dtype_attributes(name):
    x, tx = operand(name, (2, 3), seed=17)
    assert x.dtype is FT[name]
    assert x.is_floating_point() == tx.is_floating_point()
    assert ft.is_floating_point(x) == torch.is_floating_point(tx)
    assert x.element_size() == tx.element_size() and x.itemsize == tx.itemsize
    assert x.nbytes == tx.nbytes


@pytest.mark.parametrize("alias", ["float", "double", "half", "long", "int", "bool"])
def test_dtype_aliases(alias):
    ours, theirs = getattr(ft, alias), getattr(torch, alias)
    assert repr(ours) == repr(theirs)
    assert ours is FT[dtype_name(theirs)]


def test_default_dtype():
    assert repr(ft.get_default_dtype()) == repr(torch.get_default_dtype())
    assert_same(ft.tensor([1.5]), torch.tensor([1.5]))
    assert_same(ft.tensor(1) / 2, torch.tensor(1) / 2)


@pytest.mark.parametrize("name", NAMES)
def test_dtype_as_dict_key_and_in_sets(name):
    table = {FT[n]: n for n in NAMES}
    assert table[FT[name]] == name
    assert len({FT[n] for n in NAMES}) == len(NAMES)
