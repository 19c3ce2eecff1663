"""from_torch / Tensor.to_torch: values, dtypes, strides, shared memory, bfloat16, autograd."""

import gc
import subprocess
import sys

import ferrotorch as ft
import numpy as np
import pytest
import torch
from conftest import DTYPES, LAYOUTS, assert_same, make_layout

ALL_DTYPES = list(DTYPES)
SHARED = [d for d in ALL_DTYPES if d != "bfloat16"]  # numpy carries these without a copy


def torch_values(shape, dtype, layout, seed=0):
    g = torch.Generator().manual_seed(seed)
    base = (torch.rand(shape, generator=g, dtype=torch.float64) * 20 - 10)
    if dtype == "bool":
        base = base > 0
    elif dtype == "uint8":
        base = base.abs()
    t = base.to(DTYPES[dtype][1])
    if layout == "expanded":
        return t[:1].expand(shape)
    return make_layout(t, layout)


@pytest.mark.parametrize("layout", [*LAYOUTS, "expanded"])
@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_from_torch_values_dtype_shape(dtype, layout):
    t = torch_values((3, 4), dtype, layout)
    x = ft.from_torch(t)
    assert isinstance(x, ft.Tensor)
    assert_same(x, t, rtol=0, atol=0)


@pytest.mark.parametrize("layout", [*LAYOUTS, "expanded"])
@pytest.mark.parametrize("dtype", SHARED)
def test_from_torch_keeps_strides(dtype, layout):
    t = torch_values((3, 4), dtype, layout)
    x = ft.from_torch(t)
    assert x.stride() == t.stride()


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_round_trip_is_exact(dtype, layout):
    t = torch_values((2, 3, 5), dtype, layout, seed=1)
    back = ft.from_torch(t).to_torch()
    assert back.dtype == t.dtype
    assert back.shape == t.shape
    assert torch.equal(back, t)


@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_to_torch_values(dtype):
    ours, theirs = ft_and_torch((4, 3), dtype)
    out = ours.to_torch()
    assert isinstance(out, torch.Tensor)
    assert out.dtype == theirs.dtype
    assert torch.equal(out, theirs)


def ft_and_torch(shape, dtype):
    t = torch_values(shape, dtype, "contiguous", seed=2)
    if dtype == "bfloat16":
        return ft.tensor(t.float().numpy()).to(ft.bfloat16), t
    return ft.tensor(t.numpy()), t


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", ["float32", "float64", "int64"])
def test_to_torch_keeps_strides(dtype, layout):
    ours, _ = ft_and_torch((3, 4), dtype)
    view = make_layout(ours, layout, ft)
    out = view.to_torch()
    assert out.stride() == view.stride()
    assert torch.equal(out, ft_values_in_torch(view))


def ft_values_in_torch(x):
    return torch.tensor(x.tolist(), dtype=DTYPES[str(x.dtype).replace("torch.", "")][1])


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "int64", "int32", "uint8"])
def test_from_torch_shares_memory(dtype):
    t = torch_values((3, 4), dtype, "sliced")
    x = ft.from_torch(t)
    t[1, 2] = 7  # torch writes, ferrotorch reads
    assert x[1, 2].item() == 7
    x[0, 1] = 5  # ferrotorch writes, torch reads
    assert t[0, 1].item() == 5
    t.add_(1)
    assert_same(x, t, rtol=0, atol=0)


@pytest.mark.parametrize("dtype", ["float32", "float64", "int32", "bool"])
def test_to_torch_shares_memory(dtype):
    ours, _ = ft_and_torch((4, 3), dtype)
    view = ours.t()
    out = view.to_torch()
    value = True if dtype == "bool" else 9
    out[2, 1] = value
    assert ours[1, 2].item() == value
    view[0, 3] = False if dtype == "bool" else -4
    assert out[0, 3].item() == (False if dtype == "bool" else -4)


def test_bfloat16_is_exact_and_copied():
    t = torch.randn(5, 6, generator=torch.Generator().manual_seed(3)).to(torch.bfloat16)
    t[0, 0] = float("inf")
    t[0, 1] = float("nan")
    t[0, 2] = 1e-40  # a bfloat16 subnormal
    x = ft.from_torch(t)
    assert x.dtype == ft.bfloat16
    back = x.to_torch()
    assert back.dtype == torch.bfloat16
    assert torch.equal(back.view(torch.int16), t.view(torch.int16))  # bit for bit, NaN included
    t[1, 1] = 100.0
    assert x[1, 1].item() != 100.0  # bfloat16 goes through float32: a copy, documented


def test_from_torch_outlives_the_torch_tensor():
    t = torch.arange(12.0).reshape(3, 4)[:, 1:]
    expected = t.clone()
    x = ft.from_torch(t)
    del t
    gc.collect()
    assert_same(x, expected, rtol=0, atol=0)


def test_scalar_and_empty():
    for t in (torch.tensor(2.5), torch.zeros(0, 3), torch.tensor(7, dtype=torch.int32)):
        x = ft.from_torch(t)
        assert_same(x, t, rtol=0, atol=0)
        assert torch.equal(x.to_torch(), t)


def test_requires_grad_becomes_a_new_leaf():
    t = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    x = ft.from_torch(t * 1)  # a non-leaf on the torch side
    assert x.requires_grad and x.is_leaf and x.grad_fn is None
    (x.sin() * 3).sum().backward()
    leaf = (t * 1).detach().requires_grad_(True)
    (leaf.sin() * 3).sum().backward()
    assert_same(x.grad, leaf.grad)
    assert t.grad is None  # no history crosses the libraries

    y = ft.randn(2, 2, requires_grad=True)
    out = y.to_torch()
    assert out.requires_grad and out.is_leaf


def test_unsupported_dtype_is_named():
    with pytest.raises(TypeError, match=r"torch\.int16.*t\.to\(torch\.float32\)"):
        ft.from_torch(torch.zeros(3, dtype=torch.int16))
    with pytest.raises(TypeError, match="complex64"):
        ft.from_torch(torch.zeros(3, dtype=torch.complex64))


def test_wrong_argument_types():
    with pytest.raises(TypeError, match="expected a torch.Tensor, got ndarray"):
        ft.from_torch(np.zeros(3))
    with pytest.raises(TypeError, match="expected a torch.Tensor, got Tensor"):
        ft.from_torch(ft.zeros(3))


def test_without_torch_the_error_says_pip_install_torch():
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import ferrotorch as ft\n"
        "for f in (lambda: ft.from_torch(object()), lambda: ft.zeros(2).to_torch()):\n"
        "    try:\n"
        "        f()\n"
        "    except ImportError as e:\n"
        "        print('ImportError:', e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 2
    assert all(line.startswith("ImportError:") and "pip install torch" in line for line in lines)


# *** DLPack ***

@pytest.mark.parametrize("dtype", ALL_DTYPES)
@pytest.mark.parametrize("layout", [*LAYOUTS, "expanded"])
def test_dlpack_to_torch_and_back(dtype, layout):
    t = torch_values((3, 4), dtype, layout)
    ours = ft.from_dlpack(t)  # a torch tensor (has __dlpack__)
    assert_same(ours, t)
    back = torch.from_dlpack(ours)  # our __dlpack__
    assert_same(ours, back)
    if dtype != "bfloat16":  # numpy has no bfloat16: those travel as a copy
        assert ours.stride() == back.stride() == t.stride()
        assert back.data_ptr() == t.data_ptr() == ours.data_ptr()
    capsule = ft.from_dlpack(t.__dlpack__())  # a bare capsule
    assert_same(capsule, t)


@pytest.mark.parametrize("dtype", SHARED)
def test_dlpack_shares_memory_with_numpy(dtype):
    a = torch_values((3, 4), dtype, "sliced").numpy()
    t = ft.from_dlpack(a)
    assert t.data_ptr() == a.ctypes.data
    np.testing.assert_array_equal(t.numpy(), a)
    b = np.from_dlpack(t)
    assert b.ctypes.data == t.data_ptr()
    t[0, 0] = 1
    assert b[0, 0] == a[0, 0] == 1


def test_dlpack_protocol_details():
    t = ft.arange(6.0).reshape(2, 3)
    assert t.__dlpack_device__() == (1, 0) == torch.arange(3.0).__dlpack_device__()
    copied = torch.from_dlpack(t.__dlpack__(copy=True))
    copied[0, 0] = 50.0
    assert t[0, 0].item() == 0.0
    with pytest.raises(RuntimeError, match="require gradient"):
        ft.ones(2, requires_grad=True).__dlpack__()
    with pytest.raises(RuntimeError, match="require gradient"):
        ft.from_dlpack(torch.ones(2, requires_grad=True))
    with pytest.raises(BufferError, match="device"):
        t.__dlpack__(dl_device=(2, 0))
    with pytest.raises(TypeError, match="__dlpack__"):
        ft.from_dlpack([1, 2])
    capsule = _Once(torch.arange(3).__dlpack__())
    assert ft.from_dlpack(capsule.c).tolist() == [0, 1, 2]
    # torch refuses a consumed capsule as well; so do we, with our own words
    with pytest.raises((TypeError, BufferError, RuntimeError, ValueError)):
        ft.from_dlpack(capsule.c)


class _Once:
    def __init__(self, c):
        self.c = c


def test_zero_dim_bfloat16_to_torch():
    # numpy turns 0-d arithmetic into scalars; the bit move must keep an array
    for v in (1.5, -0.0, float("inf")):
        t = ft.tensor(v, dtype=ft.bfloat16).to_torch()
        assert t.shape == () and t.dtype == torch.bfloat16
        assert t.item() == torch.tensor(v, dtype=torch.bfloat16).item() or v != v
