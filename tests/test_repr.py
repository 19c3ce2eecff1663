"""ferrotorch's tensor text must match torch's repr character for character.

Every case builds a real torch tensor, renders it with torch, and renders the
same values through ``ferrotorch._tensor_str`` from a numpy copy.
"""

import math

import numpy as np
import pytest
import torch
from ferrotorch._tensor_str import (
    format_str,
    format_tensor,
    get_printoptions,
    printoptions,
    set_printoptions,
)

INF, NAN = math.inf, math.nan

ALL_DTYPES = [
    torch.float32,
    torch.float64,
    torch.float16,
    torch.bfloat16,
    torch.int64,
    torch.int32,
    torch.int16,
    torch.int8,
    torch.uint8,
    torch.bool,
]


@pytest.fixture(autouse=True)
def _restore_global_state():
    """Every test starts and ends with default options in both libraries."""
    torch.manual_seed(0)
    yield
    torch.set_printoptions(profile="default")
    set_printoptions(profile="default")
    torch.set_default_dtype(torch.float32)


def _dtype_name(t):
    return str(t.dtype).removeprefix("torch.")


def _values(t):
    """The numpy array ferrotorch would hand over (half types widened to float32)."""
    t = t.detach()
    if t.dtype in (torch.float16, torch.bfloat16):
        t = t.float()
    return t.numpy()


def _ours(t, formatter=format_tensor, **kwargs):
    grad_fn = type(t.grad_fn).__name__ if t.grad_fn is not None else None
    return formatter(
        _values(t),
        _dtype_name(t),
        requires_grad=t.requires_grad,
        grad_fn=grad_fn,
        is_param=isinstance(t, torch.nn.Parameter),
        **kwargs,
    )


def assert_same(t, **kwargs):
    assert _ours(t, **kwargs) == repr(t)


def _random_values(shape, dtype, magnitude=1.0):
    """Random data of ``dtype``: normal floats scaled by ``magnitude``, small ints, bools."""
    if dtype == torch.bool:
        return torch.rand(shape) > 0.5
    if dtype == torch.uint8:
        return torch.randint(0, 256, shape, dtype=dtype)
    if not dtype.is_floating_point:
        info = torch.iinfo(dtype)
        low, high = max(info.min, -(10**6)), min(info.max, 10**6)
        return torch.randint(low, high, shape, dtype=dtype)
    return (torch.randn(shape, dtype=torch.float64) * magnitude).to(dtype)


CASES = {
    # Magnitudes, fixed vs scientific selection.
    **{f"magnitude_1e{e}": (lambda e=e: torch.randn(6) * 10.0**e) for e in range(-8, 9)},
    "mixed_magnitudes": lambda: torch.randn(8) * 10.0 ** torch.randint(-8, 9, (8,)),
    "ratio_just_under_1000": lambda: torch.tensor([1.0, 999.5]),
    "ratio_just_over_1000": lambda: torch.tensor([1.0, 1000.5]),
    "min_at_1e-4": lambda: torch.tensor([1e-4, 0.05], dtype=torch.float64),
    "max_1e8_int": lambda: torch.tensor([1e8, 3.0]),
    "max_over_1e8_int": lambda: torch.tensor([123456789.0, 3.0]),
    "huge_float64": lambda: torch.tensor([1e308, 1e-310], dtype=torch.float64),
    "negatives": lambda: -torch.rand(7) * 100,
    "rounding_widens": lambda: torch.tensor([9.99996, 1.5]),
    # Integer-valued floats.
    "int_valued": lambda: torch.arange(-5.0, 6.0),
    "int_valued_big": lambda: torch.tensor([1.0, 20000.0, -300.0]),
    "int_valued_sci": lambda: torch.tensor([1.0, 1e9]),
    # Zeros, negative zero, non-finite values.
    "zeros": lambda: torch.zeros(4),
    "neg_zero": lambda: torch.tensor([-0.0, 1.0]),
    "neg_zero_fixed": lambda: torch.tensor([-0.0, 1.5]),
    "neg_zero_only": lambda: torch.tensor([-0.0, 0.0]),
    "non_finite_only": lambda: torch.tensor([INF, -INF, NAN]),
    "inf_with_ints": lambda: torch.tensor([1.0, INF, -INF, NAN]),
    "inf_with_fixed": lambda: torch.tensor([1.5, INF, NAN, -2.25]),
    "inf_with_sci": lambda: torch.tensor([1e-5, INF, NAN, 0.0, 3.0]),
    "nan_and_zero": lambda: torch.tensor([0.0, NAN]),
    # Ranks 0-4.
    "scalar_float": lambda: torch.tensor(3.0),
    "scalar_fixed": lambda: torch.tensor(-3.14159),
    "scalar_sci": lambda: torch.tensor(1.5e-7),
    "scalar_zero": lambda: torch.tensor(0.0),
    "scalar_neg_zero": lambda: torch.tensor(-0.0),
    "scalar_nan": lambda: torch.tensor(NAN),
    "scalar_neg_inf": lambda: torch.tensor(-INF),
    "scalar_int": lambda: torch.tensor(-42),
    "scalar_bool": lambda: torch.tensor(True),
    "scalar_float64": lambda: torch.tensor(2.5, dtype=torch.float64),
    "scalar_int8": lambda: torch.tensor(7, dtype=torch.int8),
    "rank2": lambda: torch.randn(3, 4),
    "rank3": lambda: torch.randn(2, 3, 4),
    "rank4": lambda: torch.randn(2, 2, 2, 3),
    "rank4_ints": lambda: torch.arange(-30, 18).reshape(2, 3, 2, 4),
    "single_element_nested": lambda: torch.ones(1, 1, 1),
    # Empty and zero-size shapes.
    "empty_1d": lambda: torch.zeros(0),
    "empty_2d": lambda: torch.zeros(0, 3),
    "empty_3d": lambda: torch.zeros(2, 0, 3),
    "empty_bool_2d": lambda: torch.zeros(3, 0, dtype=torch.bool),
    # Summarization above 1000 elements.
    "summarized_arange": lambda: torch.arange(2000),
    "summarized_1001": lambda: torch.randn(1001),
    "summarized_2d": lambda: torch.randn(100, 100),
    "summarized_3d": lambda: torch.randn(20, 20, 20),
    "summarized_4d": lambda: torch.randn(7, 7, 7, 7),
    "summarized_narrow_dim": lambda: torch.randn(2, 600),
    "summarized_tall": lambda: torch.randn(2000, 1),
    "summarized_outlier_hidden": lambda: torch.cat(
        [torch.ones(3), torch.full((1000,), 1e-9), torch.ones(3)]
    ),
    "summarized_sci": lambda: torch.randn(50, 50) * 1e6,
    # Rows that wrap at 80 columns.
    "wrap_arange": lambda: torch.arange(100),
    "wrap_fixed": lambda: torch.randn(30),
    "wrap_rows": lambda: torch.randn(3, 40) * 1000,
    "wrap_sci": lambda: torch.randn(50) * 1e-6,
    "wrap_nested": lambda: torch.randn(2, 2, 25),
    "wrap_float64_suffix": lambda: torch.randn(20, dtype=torch.float64),
    # Autograd.
    "requires_grad": lambda: torch.randn(3, requires_grad=True),
    "requires_grad_scalar": lambda: torch.tensor(1.0, requires_grad=True),
    "requires_grad_float64": lambda: torch.randn(2, 2, dtype=torch.float64, requires_grad=True),
    "requires_grad_wraps": lambda: torch.randn(8, dtype=torch.float64, requires_grad=True),
    "grad_fn_mul": lambda: torch.randn(3, requires_grad=True) * 2,
    "grad_fn_sum": lambda: torch.randn(3, requires_grad=True).sum(),
    "grad_fn_empty": lambda: torch.zeros(0, 2, dtype=torch.float64, requires_grad=True) + 1,
    "parameter": lambda: torch.nn.Parameter(torch.randn(2, 3)),
    "parameter_frozen": lambda: torch.nn.Parameter(torch.randn(3), requires_grad=False),
}

# Every dtype across scalar, small, nested, empty, wrapped and summarized shapes.
for _dtype in ALL_DTYPES:
    _name = str(_dtype).removeprefix("torch.")
    for _shape in [(), (5,), (2, 3), (0,), (0, 2), (40,), (3, 500)]:
        _key = f"{_name}_{'x'.join(map(str, _shape)) or 'scalar'}"
        CASES[_key] = lambda d=_dtype, s=_shape: _random_values(s, d)
    if _dtype.is_floating_point:
        for _e in (-6, 3, 7):
            CASES[f"{_name}_1e{_e}"] = lambda d=_dtype, e=_e: _random_values((6,), d, 10.0**e)


@pytest.mark.parametrize("make", CASES.values(), ids=CASES.keys())
def test_matches_torch(make):
    assert_same(make())


@pytest.mark.parametrize("make", CASES.values(), ids=CASES.keys())
def test_str_matches_torch(make):
    t = make()
    assert _ours(t, formatter=format_str) == str(t)


@pytest.mark.parametrize("seed", range(300))
def test_random_tensors(seed):
    """Random shapes, dtypes, magnitudes and sprinkled special values."""
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    dtype = ALL_DTYPES[rng.integers(len(ALL_DTYPES))]
    ndim = int(rng.integers(0, 5))
    shape = tuple(int(n) for n in rng.integers(0, [40, 12, 8, 6][:ndim]))
    if rng.random() < 0.2:
        shape = tuple(int(n) for n in rng.integers(1, 40, size=ndim))  # often summarized
    t = _random_values(shape, dtype, 10.0 ** rng.uniform(-9, 9))
    if dtype.is_floating_point and t.numel() and rng.random() < 0.5:
        flat = t.view(-1)
        for special in rng.choice([0.0, -0.0, INF, -INF, NAN], size=3):
            flat[int(rng.integers(t.numel()))] = float(special)
    if dtype.is_floating_point and rng.random() < 0.3:
        t = t.requires_grad_()
        if rng.random() < 0.5:
            t = t * 1
    assert_same(t)


PRINT_OPTION_SETTINGS = [
    {"precision": 2},
    {"precision": 0},
    {"precision": 8},
    {"threshold": 5},
    {"threshold": 0},
    {"edgeitems": 1, "threshold": 10},
    {"edgeitems": 0},
    {"edgeitems": 0, "threshold": 10},
    {"linewidth": 40},
    {"linewidth": 120},
    {"linewidth": 10},
    {"profile": "short"},
    {"profile": "full"},
    {"profile": "full", "precision": 6},
    {"sci_mode": True},
    {"sci_mode": False},
    {"sci_mode": True, "precision": 1},
]

OPTION_TENSORS = {
    "fixed": lambda: torch.randn(12),
    "ints_as_floats": lambda: torch.arange(12.0),
    "sci": lambda: torch.randn(12) * 1e-6,
    "nested": lambda: torch.randn(4, 5, 6),
    "big": lambda: torch.randn(1500),
    "big_2d": lambda: torch.arange(3000).reshape(50, 60),
    "scalar": lambda: torch.tensor(1.23456789),
    "float64_grad": lambda: torch.randn(9, dtype=torch.float64, requires_grad=True),
    "special": lambda: torch.tensor([0.0, INF, NAN, 2.0]),
    "bool": lambda: torch.rand(30) > 0.5,
}


@pytest.mark.parametrize("options", PRINT_OPTION_SETTINGS, ids=str)
@pytest.mark.parametrize("make", OPTION_TENSORS.values(), ids=OPTION_TENSORS.keys())
def test_set_printoptions(options, make):
    t = make()
    torch.set_printoptions(**options)
    set_printoptions(**options)
    assert get_printoptions() == torch._tensor_str.get_printoptions()
    assert_same(t)


def test_set_printoptions_resets_sci_mode():
    # torch assigns sci_mode on every call, so omitting it returns to automatic.
    set_printoptions(sci_mode=True)
    set_printoptions(precision=3)
    assert get_printoptions()["sci_mode"] is None


def test_get_printoptions_defaults():
    assert get_printoptions() == torch._tensor_str.get_printoptions()
    set_printoptions(profile="full")
    assert get_printoptions()["threshold"] == math.inf


def test_printoptions_context_manager():
    t = torch.randn(5)
    set_printoptions(precision=6)
    with (
        printoptions(precision=1, sci_mode=True),
        torch._tensor_str.printoptions(precision=1, sci_mode=True),
    ):
        assert get_printoptions()["precision"] == 1
        assert_same(t)
    assert get_printoptions()["precision"] == 6
    assert get_printoptions()["sci_mode"] is None


FLOAT_OPTION_TENSORS = {k: v for k, v in OPTION_TENSORS.items() if k != "bool"}


@pytest.mark.parametrize("make", FLOAT_OPTION_TENSORS.values(), ids=FLOAT_OPTION_TENSORS.keys())
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.int32])
def test_default_dtype_float64(make, dtype):
    # With float64 as the default, float32 is annotated and float64 is not.
    t = make().detach().to(dtype)
    torch.set_default_dtype(torch.float64)
    assert_same(t, default_dtype="float64")
    assert_same(t.reshape(-1)[:0], default_dtype="float64")


@pytest.mark.parametrize(
    ("values", "kwargs", "expected"),
    [
        ([1.0, 2.0], {"device": "cuda:0"}, "tensor([1., 2.], device='cuda:0')"),
        ([1.0, 2.0], {"device": "cpu"}, "tensor([1., 2.])"),
        (
            [1.5, 2.0],
            {"device": "cuda:1", "requires_grad": True},
            "tensor([1.5000, 2.0000], device='cuda:1', requires_grad=True)",
        ),
    ],
)
def test_device_suffix(values, kwargs, expected):
    # No accelerator is assumed here, so torch's output for these is written out.
    assert format_tensor(np.array(values, dtype=np.float32), "float32", **kwargs) == expected


def test_unknown_dtype_rejected():
    with pytest.raises(ValueError, match="complex64"):
        format_tensor(np.zeros(2, dtype=np.complex64), "complex64")
