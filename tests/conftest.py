"""Shared helpers for the differential tests: every result is compared with torch's.

The tolerance table is explicit: float32 results may differ from torch's in the last bits
because kernels sum in a different order; float64 results must agree much more tightly;
integer and bool results must be identical.
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

try:
    import torch
except ImportError as e:  # pragma: no cover - a clear failure, never a silent skip
    raise RuntimeError(
        "the test suite compares ferrotorch with torch: install it with `pip install torch`"
    ) from e

import ferrotorch as ft

# Property-test profiles. "ci" (the default) is quick and derandomised, so a CI run is
# reproducible; "long" is for runs by hand: `pytest --hypothesis-profile=long tests/test_properties.py`.
_SLOW_IS_FINE = [HealthCheck.too_slow, HealthCheck.data_too_large]
settings.register_profile("ci", max_examples=60, deadline=None, derandomize=True,
                          suppress_health_check=_SLOW_IS_FINE)
settings.register_profile("long", max_examples=3000, deadline=None,
                          suppress_health_check=_SLOW_IS_FINE)
settings.load_profile("ci")

# dtype name -> (rtol, atol)
TOLERANCE = {
    "float16": (1e-3, 1e-3),
    "bfloat16": (1e-2, 1e-2),
    "float32": (1.3e-6, 1e-5),
    "float64": (1e-12, 1e-12),
}

DTYPES = {
    "float32": (ft.float32, torch.float32),
    "float64": (ft.float64, torch.float64),
    "float16": (ft.float16, torch.float16),
    "bfloat16": (ft.bfloat16, torch.bfloat16),
    "int64": (ft.int64, torch.int64),
    "int32": (ft.int32, torch.int32),
    "uint8": (ft.uint8, torch.uint8),
    "bool": (ft.bool, torch.bool),
}


def dtype_name(d):
    return str(d).replace("torch.", "")


# The device the differential tests put ferrotorch's inputs on: "cpu" (the native backend, the
# default) or another device of the torch backend, e.g.
# `FERROTORCH_TEST_DEVICE=torch:cpu pytest tests/test_crosscheck_ops.py` runs the same
# comparisons through torch's kernels behind ferrotorch's API and tape.
DEVICE = os.environ.get("FERROTORCH_TEST_DEVICE", "cpu")
ft.set_default_device(DEVICE)  # tensors a test makes itself go there too
ON_CUDA = DEVICE.startswith("cuda")
if ON_CUDA:
    # The references run on torch's CPU: CUDA's float32 math functions (sin, exp...) differ
    # from the CPU's by a few ulps and its reductions sum in another order, which repeated
    # steps (the optimizer tests) carry well past one rounding.
    TOLERANCE["float32"] = (1e-4, 1e-5)


def cuda_differs(reason):
    """Marks a test whose reference is torch's CPU behaviour where torch's own CUDA kernels
    behave otherwise (``reason`` says how): on CUDA, where ferrotorch runs those kernels, it is
    skipped with that reason. Data-dependent errors that CUDA reports as a device-side assert
    belong here too: the assert would poison the process's CUDA context for every later test."""
    return pytest.mark.skipif(ON_CUDA, reason=f"torch's CUDA kernels differ from its CPU: {reason}")


def skip_if_cuda_differs(reason):
    """``cuda_differs`` inside a test, for one case of a parametrized test."""
    if ON_CUDA:
        pytest.skip(f"torch's CUDA kernels differ from its CPU: {reason}")


def to_numpy(x):
    """Values of a ferrotorch or torch tensor as a numpy array (half types widened)."""
    if isinstance(x, torch.Tensor):
        if x.dtype in (torch.bfloat16, torch.float16):
            x = x.float()
        return x.detach().cpu().numpy().copy()
    if isinstance(x, ft.Tensor):
        x = x.detach().cpu()
        if x.dtype in (ft.bfloat16, ft.float16):
            x = x.float()
        return np.array(x.numpy(), copy=True)
    return np.asarray(x)


def to_ft(t):
    """A ferrotorch tensor with the values of a torch tensor."""
    name = dtype_name(t.dtype)
    if name in ("bfloat16", "float16"):
        return ft.tensor(t.float().numpy()).to(DTYPES[name][0]).to(DEVICE)
    return ft.tensor(t.detach().numpy()).to(DEVICE)


def assert_same(ours, theirs, rtol=None, atol=None, check_dtype=True):
    """ours (ferrotorch) equals theirs (torch): same shape, dtype and values (NaN == NaN)."""
    if isinstance(theirs, (tuple, list)):
        assert len(ours) == len(theirs), f"{len(ours)} results, torch gives {len(theirs)}"
        for o, t in zip(ours, theirs):
            assert_same(o, t, rtol, atol, check_dtype)
        return
    if not isinstance(theirs, torch.Tensor):
        assert ours == pytest.approx(theirs, rel=rtol or 1e-6, abs=atol or 1e-6, nan_ok=True)
        return
    assert isinstance(ours, ft.Tensor), f"expected a ferrotorch Tensor, got {type(ours)}"
    assert str(ours.device) == DEVICE, f"the result is on {ours.device}, the inputs on {DEVICE}"
    assert tuple(ours.shape) == tuple(theirs.shape), f"shape {tuple(ours.shape)} != torch {tuple(theirs.shape)}"
    name = dtype_name(theirs.dtype)
    if check_dtype:
        assert dtype_name(ours.dtype) == name, f"dtype {ours.dtype} != torch {theirs.dtype}"
    r, a = TOLERANCE.get(name, (0, 0))
    r = r if rtol is None else rtol
    a = a if atol is None else atol
    np.testing.assert_allclose(to_numpy(ours), to_numpy(theirs), rtol=r, atol=a, equal_nan=True)


def make_layout(t, layout, M=torch):
    """A view of tensor `t`'s values (module `M`: torch or ferrotorch) with the given memory
    layout: "contiguous", "transposed" (column-major) or "sliced" (every other element)."""
    if layout == "contiguous":
        return t
    if layout == "transposed":
        return t.transpose(0, -1).contiguous().transpose(0, -1) if t.dim() >= 2 else t
    if layout == "sliced":
        big = M.zeros(*(2 * s + 1 for s in t.shape), dtype=t.dtype, device=t.device)
        idx = tuple(slice(1, None, 2) for _ in t.shape)
        big[idx] = t
        return big[idx]
    raise ValueError(layout)


def pair(shape, dtype="float32", layout="contiguous", seed=0, low=-3, high=3):
    """(ferrotorch tensor, torch tensor) with equal values and the same kind of layout.

    The ferrotorch tensor is built with the same layout trick, so non-contiguous views are
    exercised on both sides.
    """
    g = np.random.default_rng(seed)
    name = dtype
    if name == "bool":
        values = g.random(shape) > 0.5
    elif name in ("int64", "int32", "uint8"):
        lo = 0 if name == "uint8" else low
        values = g.integers(lo, high + 1, size=shape)
    else:
        values = g.uniform(low, high, size=shape)
    base = torch.tensor(values).to(DTYPES[name][1])
    theirs = make_layout(base, layout)
    ours = make_layout(to_ft(base), layout, ft)
    assert tuple(ours.shape) == tuple(theirs.shape)
    return ours, theirs


LAYOUTS = ["contiguous", "transposed", "sliced"]


# The verified GPT-2 BPE files live in `shared/gpt2-bpe` beside the repository (CI lays a copy of
# shared/ beside its clone); the tests build an offline tiktoken cache from them.
BPE_DIR = Path(__file__).resolve().parents[2] / "shared" / "gpt2-bpe"


@pytest.fixture(scope="session")
def tiktoken_cache(tmp_path_factory):
    """A TIKTOKEN_CACHE_DIR built from the shared GPT-2 BPE files, set for the whole session:
    the tests never download."""
    if not (BPE_DIR / "make_tiktoken_cache.py").is_file():
        raise RuntimeError(
            f"the GPT-2 BPE files are expected in {BPE_DIR} (shared/gpt2-bpe beside the repository)"
        )
    cache = tmp_path_factory.mktemp("tiktoken-cache")
    subprocess.run([sys.executable, str(BPE_DIR / "make_tiktoken_cache.py"), str(cache)],
                   check=True, capture_output=True)
    old = os.environ.get("TIKTOKEN_CACHE_DIR")
    os.environ["TIKTOKEN_CACHE_DIR"] = str(cache)
    yield str(cache)
    if old is None:
        os.environ.pop("TIKTOKEN_CACHE_DIR", None)
    else:
        os.environ["TIKTOKEN_CACHE_DIR"] = old
