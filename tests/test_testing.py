"""ferrotorch.testing: assert_close agrees with torch.testing.assert_close (outcome and report),
crosscheck finds wrong functions and passes right ones."""

import math

import ferrotorch as ft
import numpy as np
import pytest
import torch
from conftest import DTYPES
from ferrotorch.autograd import Function
from ferrotorch.testing import assert_close, crosscheck

FLOATS = ["float32", "float64", "float16", "bfloat16"]
# (actual's library, expected's library): every mix is compared by value.
LIBS = [("ferrotorch", "ferrotorch"), ("ferrotorch", "torch"), ("torch", "ferrotorch"),
        ("numpy", "ferrotorch"), ("ferrotorch", "numpy"), ("torch", "numpy")]
TORCH_TOL = {"float16": (1e-3, 1e-5), "bfloat16": (0.016, 1e-5), "float32": (1.3e-6, 1e-5),
             "float64": (1e-7, 1e-7)}


def convert(t, lib):
    if lib == "torch":
        return t.clone()
    if lib == "numpy":
        return np.array(t.numpy(), copy=True, order="K")  # keeps the strides
    return ft.from_torch(t.clone())


def outcome(fn, actual, expected, **kwargs):
    try:
        fn(actual, expected, **kwargs)
    except Exception as e:  # the type and the text are what is compared
        return type(e).__name__, str(e)
    return "pass"


def check_like_torch(actual, expected, libs=("ferrotorch", "ferrotorch"), **kwargs):
    """ours on the converted inputs == torch's on the torch inputs: same pass/fail, same text."""
    theirs = outcome(torch.testing.assert_close, actual, expected, **kwargs)
    ours = outcome(assert_close, convert(actual, libs[0]), convert(expected, libs[1]), **kwargs)
    assert ours == theirs
    return theirs


def random(shape, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g, dtype=torch.float64).to(DTYPES[dtype][1])


def cases(dtype):
    """(name, actual, expected, kwargs) for one float dtype."""
    e = random((4, 5), dtype)
    rtol, atol = TORCH_TOL[dtype]
    allowed = atol + rtol * e.double().abs()
    nan, inf = float("nan"), float("inf")

    def with_values(t, **at):
        t = t.clone()
        for key, v in at.items():
            t[int(key[1]), int(key[2])] = v
        return t

    far = (e.double() + 3 * allowed).to(e.dtype)
    return [
        ("equal", e.clone(), e, {}),
        ("within", (e.double() + 0.4 * allowed).to(e.dtype), e, {}),
        ("outside_all", far, e, {}),
        ("outside_two", with_values(e, i01=far[0, 1], i32=far[3, 2]), e, {}),
        ("custom_tol_pass", far, e, {"rtol": 0.5, "atol": 0.5}),
        ("zero_tol", with_values(e, i11=far[1, 1]), e, {"rtol": 0.0, "atol": 0.0}),
        ("nan_both", with_values(e, i00=nan), with_values(e, i00=nan), {}),
        ("nan_both_equal_nan", with_values(e, i00=nan), with_values(e, i00=nan),
         {"equal_nan": True}),
        ("nan_one", with_values(e, i22=nan), e, {"equal_nan": True}),
        ("inf_same", with_values(e, i10=inf), with_values(e, i10=inf), {}),
        ("inf_opposite", with_values(e, i10=-inf), with_values(e, i10=inf), {}),
        ("inf_vs_finite", with_values(e, i30=inf), e, {}),
        ("zero_expected", with_values(e, i00=0.5), with_values(e, i00=0.0), {}),
        ("scalar_pass", e[0, 0].clone(), e[0, 0].clone(), {}),
        ("scalar_fail", far[0, 0].clone(), e[0, 0].clone(), {}),
        ("shape", e[:3].clone(), e, {}),
        ("empty", e[:0].clone(), e[:0].clone(), {}),
    ]


@pytest.mark.parametrize("libs", LIBS)
@pytest.mark.parametrize("dtype", FLOATS)
def test_float_grid_matches_torch(dtype, libs):
    if dtype == "bfloat16":  # numpy has no bfloat16: mix ferrotorch and torch only
        libs = tuple("torch" if lib == "numpy" else lib for lib in libs)
    outcomes = {}
    for name, actual, expected, kwargs in cases(dtype):
        outcomes[name] = check_like_torch(actual, expected, libs, **kwargs)
    # The grid exercises both outcomes and the full report.
    assert outcomes["equal"] == "pass" and outcomes["within"] == "pass"
    assert "Tensor-likes are not close!" in outcomes["outside_two"][1]
    assert "Mismatched elements: 2 / 20 (10.0%)" in outcomes["outside_two"][1]


@pytest.mark.parametrize("libs", LIBS)
@pytest.mark.parametrize("dtype", ["int64", "int32", "uint8", "bool"])
def test_exact_dtypes_match_torch(dtype, libs):
    g = torch.Generator().manual_seed(1)
    e = torch.randint(0, 2 if dtype == "bool" else 50, (3, 4), generator=g).to(DTYPES[dtype][1])
    a = e.clone()
    a[1, 2] = not bool(e[1, 2]) if dtype == "bool" else e[1, 2] + 3
    assert check_like_torch(e.clone(), e, libs) == "pass"
    kind, text = check_like_torch(a, e, libs)
    assert text.startswith("Tensor-likes are not equal!")
    check_like_torch(a, e, libs, rtol=0.1, atol=2.0)
    check_like_torch(a[0, 0].clone(), e[1, 2].clone(), libs)


@pytest.mark.parametrize("libs", LIBS)
def test_dtype_mismatch_matches_torch(libs):
    e = random((3, 2), "float64")
    a = e.float()
    assert check_like_torch(a, e, libs)[1] == (
        "The values for attribute 'dtype' do not match: torch.float32 != torch.float64."
    )
    assert check_like_torch(a, e, libs, check_dtype=False) == "pass"
    check_like_torch((a.double() + 1e-6).float(), e, libs, check_dtype=False)
    check_like_torch(e.to(torch.int64), e, libs, check_dtype=False)
    check_like_torch(e.half(), e.float(), libs, check_dtype=False)


@pytest.mark.parametrize("dtype", FLOATS)
def test_boundary_fuzz_matches_torch(dtype):
    """Values scattered around the tolerance edge: pass/fail decided element by element in the
    dtype's own rounding, as torch does."""
    g = torch.Generator().manual_seed(7)
    rtol, atol = TORCH_TOL[dtype]
    for trial in range(60):
        e = random((40,), dtype, seed=trial)
        scale = 10 ** (torch.rand(1, generator=g).item() * 3 - 2)
        noise = (torch.rand(40, generator=g, dtype=torch.float64) - 0.5) * 2 * scale
        a = (e.double() + noise * (atol + rtol * e.double().abs())).to(e.dtype)
        check_like_torch(a, e, ("ferrotorch", "torch"))


def test_structures_numbers_and_messages_match_torch():
    e = random((2, 3), "float32")
    bad = e.clone()
    bad[1, 0] += 1

    def both(actual, expected, ours_actual=None, ours_expected=None, **kwargs):
        theirs = outcome(torch.testing.assert_close, actual, expected, **kwargs)
        ours = outcome(assert_close, actual if ours_actual is None else ours_actual,
                       expected if ours_expected is None else ours_expected, **kwargs)
        assert ours == theirs
        return theirs

    f, fb = ft.from_torch(e.clone()), ft.from_torch(bad.clone())
    nested = both([e, {"w": bad, "b": e}], [e, {"w": e, "b": e}],
                  [f, {"w": fb, "b": e.numpy()}], [e, {"w": f, "b": f}])
    assert nested[1].endswith("The failure occurred for item [1]['w']")
    both([e, e], [e], [f, f], [f])
    both({"a": e}, {"b": e}, {"a": f}, {"b": f})
    both((1, 2.0), (1, 2.0 + 1e-9))
    both(1, 1.0)
    both(1, 1.0, check_dtype=False)
    both(0.5, 0.6)
    both(np.float32(0.5), 0.5, check_dtype=False)
    both(True, False)
    both(None, None)
    both(None, 0)
    both("ab", "ab")
    both(np.array(["a"]), np.array(["a"]))
    both(e, e, f, f, rtol=1e-3)
    both(bad, e, fb, f, msg="custom")
    both(bad, e, fb, f, msg=lambda m: f"header\n{m}\nfooter")
    both(math.nan, math.nan, equal_nan=True)
    both(math.inf, -math.inf)


def test_tensor_versus_number_is_a_type_error_like_torch():
    with pytest.raises(TypeError, match="No comparison pair"):
        torch.testing.assert_close(torch.tensor(1.0), 1.0)
    with pytest.raises(TypeError, match="No comparison pair"):
        assert_close(ft.tensor(1.0), 1.0)


# *** crosscheck ***

def test_crosscheck_passes_a_right_function_with_grads():
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    w = torch.randn(4, 5, generator=torch.Generator().manual_seed(1))

    def fn(M, x, w):
        h = M.tanh(x @ w)
        return h.softmax(dim=-1), h.sum(dim=0)

    report = crosscheck(fn, x, w)
    assert report.passed and bool(report)
    labels = [c.label for c in report.comparisons]
    assert labels == ["output[0]", "output[1]", "grad input[0]", "grad input[1]"]
    # The reported differences are the real ones: recompute them with torch.
    xt, wt = torch.from_numpy(x), w.clone()
    ref = fn(torch, xt, wt)[0]
    ours = fn(ft, ft.from_numpy(x.copy()), ft.from_torch(w.clone()))[0]
    diff = (ours.to_torch().double() - ref.double()).abs().max().item()
    assert report.comparisons[0].max_abs == pytest.approx(diff, abs=0)
    assert "output[0]" in str(report) and "ok" in str(report)


def test_crosscheck_float64_and_non_tensor_arguments():
    x = torch.randn(5, 3, dtype=torch.float64)
    idx = np.array([2, 0, 1, 1, 0])

    unused = torch.randn(2, dtype=torch.float64)

    def fn(M, x, idx, dim, unused):
        return x.gather(dim, idx.reshape(5, 1)).exp()  # idx arrives as each library's tensor

    report = crosscheck(fn, x, idx, 1, unused)
    # The integer input gets no gradient entry; the unused one has none on either side.
    assert [c.label for c in report.comparisons] == ["output[0]", "grad input[0]", "grad input[3]"]
    assert report.comparisons[2].note == "none on both sides"


def test_crosscheck_finds_a_different_op():
    def wrong(M, x):
        return x.sin() if M is ft else x.cos()

    x = torch.randn(3, 3)
    with pytest.raises(AssertionError) as info:
        crosscheck(wrong, x)
    text = str(info.value)
    assert "FAIL" in text and "output[0]" in text
    expected = (torch.sin(x) - torch.cos(x)).abs().max().item()
    assert f"max abs diff {expected:.3g}" in text


def test_crosscheck_finds_a_wrong_gradient():
    class BadSquare(Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * x

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return g * x  # should be 2 * g * x

    def square(M, x):
        return BadSquare.apply(x) if M is ft else x * x

    x = torch.randn(4, dtype=torch.float64)
    with pytest.raises(AssertionError, match=r"output\[0\]\s+ok[\s\S]*grad input\[0\]\s+FAIL"):
        crosscheck(square, x)
    assert crosscheck(square, x, grad=False).passed


def test_crosscheck_reports_shape_dtype_and_count_mismatches():
    x = torch.randn(2, 3)
    with pytest.raises(AssertionError, match="shape"):
        crosscheck(lambda M, x: x.t() if M is ft else x, x, grad=False)
    with pytest.raises(AssertionError, match="dtype float64 != torch's float32"):
        crosscheck(lambda M, x: x.double() if M is ft else x, x, grad=False)
    with pytest.raises(AssertionError, match="2 outputs, torch gives 1"):
        crosscheck(lambda M, x: (x, x) if M is ft else (x,), x, grad=False)


def test_crosscheck_tolerances_and_verbose(capsys):
    x = torch.rand(3) + 1

    def off(M, x):
        return x * (1.001 if M is ft else 1.0)

    with pytest.raises(AssertionError):
        crosscheck(off, x, grad=False)
    report = crosscheck(off, x, grad=False, rtol=1e-2, atol=0.0, verbose=True)
    assert report.passed
    assert "crosscheck of off" in capsys.readouterr().out
    with pytest.raises(ValueError, match="both rtol and atol"):
        crosscheck(off, x, rtol=1e-2)


@pytest.mark.parametrize("libs", LIBS)
def test_check_stride_matches_torch(libs):
    e = random((3, 4), "float32")
    t = e.t().contiguous().t()  # same values, column-major
    assert check_like_torch(t, e, libs) == "pass"
    assert check_like_torch(t, e, libs, check_stride=True)[1] == (
        "The values for attribute 'stride()' do not match: (1, 3) != (4, 1)."
    )


def test_crosscheck_python_number_outputs():
    x = torch.rand(6, dtype=torch.float32)
    report = crosscheck(lambda M, x: (x.exp().sum().item(), x.exp()), x)
    expected = abs(ft.from_torch(x).exp().sum().item() - x.exp().sum().item())
    assert report.comparisons[0].max_abs == pytest.approx(expected, abs=0)
    with pytest.raises(AssertionError, match=r"output\[0\]\s+FAIL[\s\S]*not compared"):
        crosscheck(lambda M, x: (x.sum().item() + (0.1 if M is ft else 0.0), x.exp()), x)
