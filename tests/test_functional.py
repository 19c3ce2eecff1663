"""Differential tests of ``ferrotorch.nn.functional`` (activations, linear, embedding, dropout,
layer_norm, pad, scaled_dot_product_attention) against ``torch.nn.functional``.

`check(fn, *specs)` builds equal random leaves on both sides, passes them (viewed with the
requested memory layout) to ``fn(M, *inputs)`` with M = torch and M = ferrotorch, compares the
outputs, backpropagates the same random upstream gradient and compares every leaf's ``.grad``.
The losses are tested in test_losses.py with the same helper.
"""

import warnings

import ferrotorch as ft
import numpy as np
import pytest
import torch
from conftest import LAYOUTS, assert_same, cuda_differs, make_layout, pair, to_ft

torch.set_num_threads(1)

FLOATS = ["float32", "float64"]
# composed ops round differently from torch's fused kernels: float32 gets a little room
TOL = {"float32": (2e-5, 2e-5), "float64": (1e-10, 1e-10)}
FT_DT = {"float32": ft.float32, "float64": ft.float64}
TH_DT = {"float32": torch.float32, "float64": torch.float64}


# *** helpers ***

class In:
    """An input spec: shape, value range, whether it is a leaf that needs a gradient."""

    def __init__(self, shape, low=-3, high=3, grad=True):
        self.shape, self.low, self.high, self.grad = tuple(shape), low, high, grad


def F(M):
    """The functional module of M (torch or ferrotorch)."""
    return M.nn.functional


def C(M, t):
    """The constant torch tensor `t` (targets, masks, indices) on M's side."""
    return t if M is torch else to_ft(t)


def _leaves(specs, dtype, seed):
    out = []
    for i, s in enumerate(specs):
        s = s if isinstance(s, In) else In(s)
        _, t = pair(s.shape, dtype, "contiguous", seed + 7 * i + 1, s.low, s.high)
        f = to_ft(t)
        if s.grad:
            t, f = t.clone().requires_grad_(), f.requires_grad_()
        out.append((f, t))
    return out


def check(fn, *specs, dtype="float64", layout="contiguous", seed=0, tol=None, grad=True):
    """Runs fn(M, *inputs) on both libraries; compares outputs and the leaves' gradients."""
    leaves = _leaves(specs, dtype, seed)
    out_t = fn(torch, *[make_layout(t, layout) for _, t in leaves])
    out_f = fn(ft, *[make_layout(f, layout, ft) for f, _ in leaves])
    rtol, atol = tol or TOL[dtype]
    assert_same(out_f.detach(), out_t.detach(), rtol, atol)
    if not grad or not out_t.requires_grad:
        return out_f, out_t
    g = torch.tensor(np.random.default_rng(seed).standard_normal(tuple(out_t.shape)))
    g = g.to(out_t.dtype)
    out_t.backward(g)
    out_f.backward(to_ft(g))
    for k, (f, t) in enumerate(leaves):
        if t.requires_grad:
            assert (f.grad is None) == (t.grad is None), f"input {k}: grad presence differs"
            if t.grad is not None:
                assert_same(f.grad, t.grad, rtol, atol)
    return out_f, out_t


def check_second_derivative(fn, *specs, dtype="float64", seed=0):
    """Gradients of (grad of fn's output, in a random direction) match torch's (create_graph)."""
    leaves = _leaves(specs, dtype, seed)
    results = []
    for M, xs in ((torch, [t for _, t in leaves]), (ft, [f for f, _ in leaves])):
        out = fn(M, *xs)
        g = torch.tensor(np.random.default_rng(seed).standard_normal(tuple(out.shape)))
        firsts = M.autograd.grad(out, xs, C(M, g.to(TH_DT[dtype])), create_graph=True)
        total = sum((d * d).sum() for d in firsts)
        results.append(M.autograd.grad(total, xs, allow_unused=True))
    for ours, theirs in zip(results[1], results[0]):
        if theirs is None:  # the first derivative does not depend on this input
            assert ours is None or not ours.abs().max().item()
        else:
            assert_same(ours, theirs, *TOL[dtype])


def same_error(fn):
    """fn(M) raises the same exception type on both sides; returns both messages."""
    errors = []
    for M in (torch, ft):
        with pytest.raises(Exception) as info:
            fn(M)
        errors.append(info.value)
    assert type(errors[1]) is type(errors[0]), f"{errors[1]!r} != torch's {errors[0]!r}"
    return str(errors[1]), str(errors[0])


def assert_like_torch(ours, theirs):
    """Our message says what torch's says, possibly followed by a hint (after " (" or ";");
    the core's broadcast errors put the op's name in front."""
    if theirs.startswith("The size of tensor"):
        assert theirs[1:] in ours, (ours, theirs)
    else:
        head = theirs.split(" (")[0].rstrip(".")
        assert ours.startswith(head), (ours, theirs)


# *** activations ***

ACTIVATIONS = {
    "relu": lambda M, x: F(M).relu(x),
    "gelu": lambda M, x: F(M).gelu(x),
    "gelu_tanh": lambda M, x: F(M).gelu(x, approximate="tanh"),
    "silu": lambda M, x: F(M).silu(x),
    "sigmoid": lambda M, x: F(M).sigmoid(x),
    "tanh": lambda M, x: F(M).tanh(x),
    "softmax0": lambda M, x: F(M).softmax(x, dim=0),
    "softmax-1": lambda M, x: F(M).softmax(x, -1),
    "log_softmax": lambda M, x: F(M).log_softmax(x, dim=1),
    "softmax_dtype": lambda M, x: F(M).softmax(x, 1, dtype=M.float64),
    "log_softmax_dtype": lambda M, x: F(M).log_softmax(x, 0, dtype=M.float64),
}


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_activation(name, dtype, layout):
    check(ACTIVATIONS[name], In((5, 7), low=-6, high=6), dtype=dtype, layout=layout)


@pytest.mark.parametrize("name", ["relu", "silu"])
def test_activation_inplace(name):
    t = torch.randn(4, 5)
    f = to_ft(t)
    rt = getattr(torch.nn.functional, name)(t, inplace=True)
    rf = getattr(ft.nn.functional, name)(f, inplace=True)
    assert rf is f and rt is t
    assert_same(f, t)


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@pytest.mark.parametrize("ndim", [0, 1, 2, 3, 4])
def test_softmax_implicit_dim_warns_like_torch(name, ndim):
    t = torch.randn([3] * ndim)
    with pytest.warns(UserWarning) as theirs:
        expected = getattr(torch.nn.functional, name)(t)
    with pytest.warns(UserWarning) as ours:
        got = getattr(ft.nn.functional, name)(to_ft(t))
    assert str(ours[0].message) == str(theirs[0].message)
    assert "dim=X" in str(ours[0].message)
    assert ours[0].filename == __file__  # points at the caller, like torch's
    assert_same(got, expected)


def test_gelu_bad_approximate():
    ours, theirs = same_error(lambda M: F(M).gelu(M.ones(2), approximate="exact"))
    assert ours.startswith(theirs.rstrip(".")) and "'exact'" in ours


def test_non_tensor_input_is_type_error():
    ours, theirs = same_error(lambda M: F(M).relu([1.0, 2.0]))
    assert "must be Tensor, not list" in ours and "must be Tensor, not list" in theirs


# *** linear ***

@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", FLOATS)
def test_linear(dtype, layout):
    check(lambda M, x, w, b: F(M).linear(x, w, b), (6, 4), (5, 4), (5,), dtype=dtype,
          layout=layout)


@pytest.mark.parametrize("shapes", [((4,), (3, 4)), ((2, 3, 4), (5, 4)), ((6, 4), (4,))])
def test_linear_shapes_without_bias(shapes):
    check(lambda M, x, w: F(M).linear(x, w), *shapes)


def test_linear_batched_with_bias():
    check(lambda M, x, w, b: F(M).linear(x, w, b), (2, 3, 4), (5, 4), (5,), dtype="float32")


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", FLOATS)
def test_linear_batched_layouts(dtype, layout):
    # batch dims fold into one GEMM; strided inputs are read in place or copied once
    check(lambda M, x, w, b: F(M).linear(x, w, b), (2, 3, 4), (5, 4), (5,), dtype=dtype,
          layout=layout)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("x_shape", [(1, 37), (2, 37), (4, 1, 37), (5, 37)])
def test_linear_few_rows(x_shape, layout):
    # up to 4 rows (decoding) stream the weight through dot products instead of a GEMM
    for dtype in FLOATS:
        check(lambda M, x, w, b: F(M).linear(x, w, b), x_shape, (300, 37), (300,), dtype=dtype,
              layout=layout)


def test_linear_packed_weight_views():
    # MultiheadAttention's packed projections: weight and bias are chunks of bigger tensors
    def fn(M, x, w, b):
        parts = [F(M).linear(x, wi, bi) for wi, bi in zip(w.chunk(3), b.chunk(3))]
        return M.cat([parts[0], parts[1][1:] * 2, parts[2].exp()], dim=0)
    check(fn, (3, 2, 4), (15, 4), (15,))


def test_linear_input_without_grad():
    out_f, out_t = check(lambda M, w, b: F(M).linear(M.ones(4, 3, dtype=w.dtype) * 0.5, w, b),
                         (2, 3), (2,))
    assert out_f.requires_grad and out_t.requires_grad


@pytest.mark.parametrize("x_shape", [(6, 4), (2, 3, 4)])
def test_linear_second_derivative(x_shape):
    check_second_derivative(lambda M, x, w, b: F(M).linear(x, w, b).tanh(), x_shape, (5, 4),
                            (5,))


@pytest.mark.parametrize("x_shape", [(3,), (6, 4), (2, 3, 4)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_grad_fn_name(x_shape, bias):
    names = []
    for M in (torch, ft):
        w = M.ones(5, 4, requires_grad=True)
        b = M.zeros(5, requires_grad=True) if bias else None
        x = M.ones(*x_shape[:-1], 4)
        fn = F(M).linear(x, w, b).grad_fn
        names.append(type(fn).__name__ if M is torch else fn.name())
    if x_shape != (3,):  # a vector input takes the composite path
        assert names[1] == names[0]


def test_linear_shape_error():
    ours, theirs = same_error(lambda M: F(M).linear(M.ones(2, 3), M.ones(4, 5)))
    assert "(2x3 and 5x4)" in ours and "(2x3 and 5x4)" in theirs


# *** embedding ***

def _indices(shape, n, seed=0):
    return torch.tensor(np.random.default_rng(seed).integers(0, n, size=shape))


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("idx_shape", [(), (7,), (3, 4)])
def test_embedding(dtype, idx_shape):
    idx = _indices(idx_shape, 6)
    check(lambda M, w: F(M).embedding(C(M, idx), w), (6, 3), dtype=dtype)


@pytest.mark.parametrize("padding_idx", [0, 2, -1])
def test_embedding_padding_idx_gets_no_gradient(padding_idx):
    idx = torch.tensor([[0, 2, 5, 2], [5, 1, 0, 3]])
    # torch's weight gradient has a zero padding row; check compares ours with it
    check(lambda M, w: F(M).embedding(C(M, idx), w, padding_idx=padding_idx), (6, 3))


def test_embedding_int32_indices_and_scale_grad_by_freq():
    idx = torch.tensor([[0, 2, 2, 2], [5, 1, 0, 2]], dtype=torch.int32)
    check(lambda M, w: F(M).embedding(C(M, idx), w, scale_grad_by_freq=True), (6, 3))
    check(lambda M, w: F(M).embedding(C(M, idx), w, padding_idx=2, scale_grad_by_freq=True),
          (6, 3))


@pytest.mark.parametrize("norm_type", [2.0, 1.0])
def test_embedding_max_norm_renormalizes_rows_like_torch(norm_type):
    t = (torch.randn(6, 3) * 2).requires_grad_()
    f = to_ft(t).requires_grad_()
    idx = torch.tensor([[0, 2, 2], [5, 1, 0]])
    out_t = torch.nn.functional.embedding(idx, t, max_norm=1.5, norm_type=norm_type)
    out_f = ft.nn.functional.embedding(to_ft(idx), f, max_norm=1.5, norm_type=norm_type)
    assert_same(out_f.detach(), out_t.detach())
    assert_same(f.detach(), t.detach())  # looked-up rows rescaled in place, the others kept
    out_t.pow(2).sum().backward()
    out_f.pow(2).sum().backward()
    assert_same(f.grad, t.grad)


@pytest.mark.parametrize("case", [
    lambda M: F(M).embedding(M.tensor([1.0]), M.ones(4, 3)),  # float indices
    lambda M: F(M).embedding(M.tensor([4]), M.ones(4, 3)),  # out of range
    lambda M: F(M).embedding(M.tensor([-1]), M.ones(4, 3)),
    lambda M: F(M).embedding(M.tensor([1]), M.ones(4, 3), padding_idx=4),
    lambda M: F(M).embedding(M.tensor([1]), M.ones(4)),  # 1-D weight
])
def test_embedding_errors(case):
    same_error(case)


def test_embedding_sparse_is_not_implemented():
    with pytest.raises(NotImplementedError, match="sparse"):
        ft.nn.functional.embedding(ft.tensor([1]), ft.ones(4, 3), sparse=True)


# *** dropout ***

@cuda_differs("dropout masks on CUDA come from the GPU's generator, as torch's do, not the CPU's that the reference uses")
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_dropout_draws_torchs_mask(p, dtype, layout):
    base, tbase = pair((9, 7), dtype)
    for seed in (0, 123):
        torch.manual_seed(seed)
        expected = torch.nn.functional.dropout(make_layout(tbase, layout), p)
        ft.manual_seed(seed)
        got = ft.nn.functional.dropout(make_layout(base, layout, ft), p)
        assert_same(got, expected, 0, 0)
        assert_same(ft.rand(3), torch.rand(3), 0, 0)  # the generators moved alike


@cuda_differs("dropout masks on CUDA come from the GPU's generator, as torch's do, not the CPU's that the reference uses")
@pytest.mark.parametrize("layout", LAYOUTS)
def test_dropout_gradient_like_torch(layout):
    torch.manual_seed(7)
    ft.manual_seed(7)
    check(lambda M, x: F(M).dropout(x, 0.3), (6, 5), layout=layout)


@cuda_differs("dropout masks on CUDA come from the GPU's generator, as torch's do, not the CPU's that the reference uses")
def test_dropout_inplace_like_torch():
    base, tbase = pair((8, 9), "float32")
    torch.manual_seed(3)
    rt = torch.nn.functional.dropout(tbase, 0.4, inplace=True)
    ft.manual_seed(3)
    rf = ft.nn.functional.dropout(base, 0.4, inplace=True)
    assert rf is base and rt is tbase
    assert_same(base, tbase, 0, 0)


@pytest.mark.parametrize("p", [0.2, 0.7])
def test_dropout_statistics(p):
    x = ft.ones(100_000, dtype=ft.float64)
    ft.manual_seed(0)
    y = ft.nn.functional.dropout(x, p).cpu().numpy()
    kept = y != 0
    assert abs(kept.mean() - (1 - p)) < 4 * np.sqrt(p * (1 - p) / y.size)
    np.testing.assert_allclose(y[kept], 1 / (1 - p), rtol=1e-15)


def test_dropout_identity_cases_like_torch():
    x = ft.randn(3, 4)
    t = torch.randn(3, 4)
    for M, v in ((ft, x), (torch, t)):
        assert F(M).dropout(v, 0.5, training=False) is v
        assert F(M).dropout(v, 0.0) is v
    assert_same(ft.nn.functional.dropout(to_ft(t), 1.0), torch.nn.functional.dropout(t, 1.0))
    for p in (-0.1, 1.5):
        ours, theirs = same_error(lambda M: F(M).dropout(M.ones(3), p))
        assert ours == theirs


# *** layer_norm ***

@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape", [(4,), (3, 4)])
def test_layer_norm(shape, dtype, layout):
    check(lambda M, x, w, b: F(M).layer_norm(x, shape, w, b, eps=1e-5), (2, 3, 4), shape, shape,
          dtype=dtype, layout=layout)


@pytest.mark.parametrize("affine", ["none", "weight", "bias"])
def test_layer_norm_optional_affine(affine):
    if affine == "none":
        check(lambda M, x: F(M).layer_norm(x, [5], eps=1e-3), (4, 5))
    elif affine == "weight":
        check(lambda M, x, w: F(M).layer_norm(x, (5,), weight=w), (4, 5), (5,))
    else:
        check(lambda M, x, b: F(M).layer_norm(x, (5,), bias=b), (4, 5), (5,))


def test_layer_norm_math_matches_torch():
    # the body that a fused kernel will replace, tested on its own
    x, t = pair((3, 6), "float64")
    w, tw = pair((6,), "float64", seed=1)
    got = ft.nn.functional._layer_norm_math(x, [6], w, None, 1e-6)
    assert_same(got, torch.nn.functional.layer_norm(t, (6,), tw, None, 1e-6))


@pytest.mark.parametrize("case", [
    lambda M: F(M).layer_norm(M.ones(2, 3), (4,)),
    lambda M: F(M).layer_norm(M.ones(2, 3), (1, 2, 3)),
    lambda M: F(M).layer_norm(M.ones(2, 3), (3,), weight=M.ones(4)),
    lambda M: F(M).layer_norm(M.ones(2, 3), (3,), bias=M.ones(4)),
    lambda M: F(M).layer_norm(M.ones(2, 3), 3),
])
def test_layer_norm_errors(case):
    ours, theirs = same_error(case)
    assert ours.split(";")[0] == theirs


# *** pad ***

CONSTANT_PADS = [(1, 2), (0, 0, 2, 1), (1, 1, 1, 1, 1, 1), (-1, 2, 1, -2), (2, 0, 0, 0, 0, 3)]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("pads", CONSTANT_PADS)
def test_pad_constant(pads, layout):
    check(lambda M, x: F(M).pad(x, pads, value=1.5), (3, 4, 5), layout=layout)
    check(lambda M, x: F(M).pad(x, pads), (3, 4, 5), dtype="float32", layout=layout)


def test_pad_constant_integer_tensor_and_crop_to_empty():
    t = torch.arange(6).reshape(2, 3)
    assert_same(ft.nn.functional.pad(to_ft(t), (1, 1), value=2.7),
                torch.nn.functional.pad(t, (1, 1), value=2.7))
    check(lambda M, x: F(M).pad(x, (-2, -1)), (2, 3))


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
@pytest.mark.parametrize("shape,pads", [
    ((2, 5), (2, 3)),
    ((2, 3, 5), (-1, 2)),
    ((3, 4, 5), (1, 2, 3, 0)),
    ((2, 3, 4, 5), (2, -1, 1, 3)),
    ((3, 4, 4, 5), (1, 2, 0, 1, 3, 2)),
    ((2, 3, 3, 4, 5), (1, 1, 2, 2, 1, 0)),
])
def test_pad_modes(mode, shape, pads):
    check(lambda M, x: F(M).pad(x, pads, mode=mode), shape)


@pytest.mark.parametrize("case", [
    lambda M: F(M).pad(M.ones(2, 3), (1,)),
    lambda M: F(M).pad(M.ones(2, 3), (1, 1, 1, 1, 1, 1)),
    lambda M: F(M).pad(M.ones(2, 3), (1.0, 1)),
    lambda M: F(M).pad(M.ones(2, 3), (1, 1), mode="foo"),
    lambda M: F(M).pad(M.ones(2, 3), (1, 1), mode="reflect", value=1.0),
    lambda M: F(M).pad(M.ones(2, 3), (3, 3), mode="reflect"),
    lambda M: F(M).pad(M.ones(3), (1, 1), mode="replicate"),
    lambda M: F(M).pad(M.ones(2, 3), (1, 1, 1, 1), mode="circular"),
    lambda M: F(M).pad(M.ones(2, 3), (4, 0), mode="circular"),
    lambda M: F(M).pad(M.ones(2, 0), (1, 1), mode="replicate"),
    lambda M: F(M).pad(M.ones(2, 3), (-2, -2)),
])
def test_pad_errors(case):
    ours, theirs = same_error(case)
    if "narrow" not in theirs:  # ours explains the negative size instead
        assert ours.startswith(theirs.split(" (")[0])


# *** scaled_dot_product_attention ***

def sdpa(M, q, k, v, **kw):
    return F(M).scaled_dot_product_attention(q, k, v, **kw)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", FLOATS)
def test_sdpa(dtype, layout):
    check(sdpa, (2, 3, 4, 8), (2, 3, 6, 8), (2, 3, 6, 5), dtype=dtype, layout=layout)


@pytest.mark.parametrize("kw", [
    dict(is_causal=True), dict(scale=0.3), dict(scale=-0.7, is_causal=True),
])
@pytest.mark.parametrize("L,S", [(4, 6), (6, 4), (5, 5)])
def test_sdpa_causal_and_scale(kw, L, S):
    check(lambda M, q, k, v: sdpa(M, q, k, v, **kw), (2, 2, L, 8), (2, 2, S, 8), (2, 2, S, 3))


@pytest.mark.parametrize("mask_shape", [(4, 6), (2, 1, 4, 6), (1, 3, 1, 6)])
@pytest.mark.parametrize("kind", ["bool", "float"])
def test_sdpa_masks(mask_shape, kind):
    g = np.random.default_rng(1)
    if kind == "bool":
        mask = torch.tensor(g.random(mask_shape) > 0.3)
    else:
        mask = torch.tensor(g.standard_normal(mask_shape))
        mask[..., 0] = float("-inf")
    check(lambda M, q, k, v: sdpa(M, q, k, v, attn_mask=C(M, mask)),
          (2, 3, 4, 8), (2, 3, 6, 8), (2, 3, 6, 5))


@pytest.mark.parametrize("kind", ["bool", "float"])
def test_sdpa_fully_masked_row_gives_zeros_and_finite_grads(kind):
    mask = torch.tensor([[True, False, True], [False, False, False]])
    if kind == "float":
        mask = torch.zeros(2, 3, dtype=torch.float64).masked_fill(~mask, float("-inf"))
    f, t = check(lambda M, q, k, v: sdpa(M, q, k, v, attn_mask=C(M, mask)),
                 (1, 2, 2, 4), (1, 2, 3, 4), (1, 2, 3, 4))
    assert (t[0, :, 1] == 0).all()


def test_sdpa_2d_and_3d_inputs():
    check(sdpa, (3, 8), (5, 8), (5, 7))
    check(sdpa, (2, 3, 8), (2, 5, 8), (2, 5, 7), dtype="float32")


def test_sdpa_grouped_query_attention():
    check(lambda M, q, k, v: sdpa(M, q, k, v, enable_gqa=True),
          (2, 6, 4, 8), (2, 2, 5, 8), (2, 3, 5, 4))


@cuda_differs("dropout masks on CUDA come from the GPU's generator, as torch's do, not the CPU's that the reference uses")
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("kw", [dict(), dict(is_causal=True), dict(scale=0.5)])
def test_sdpa_dropout_same_seed_as_torch(dtype, kw):
    # torch's CPU math path draws the dropout mask on the attention weights
    torch.manual_seed(11)
    ft.manual_seed(11)
    check(lambda M, q, k, v: sdpa(M, q, k, v, dropout_p=0.4, **kw),
          (2, 2, 4, 8), (2, 2, 6, 8), (2, 2, 6, 5), dtype=dtype)
    assert_same(ft.rand(2), torch.rand(2), 0, 0)


def test_sdpa_math_matches_torch():
    q, tq = pair((2, 4, 8), "float64")
    k, tk = pair((2, 5, 8), "float64", seed=1)
    got = ft.nn.functional._sdpa_math(q, k, k, None, 0.0, True, None, False)
    assert_same(got, torch.nn.functional.scaled_dot_product_attention(tq, tk, tk, is_causal=True))


@pytest.mark.parametrize("case", [
    lambda M: sdpa(M, M.ones(1, 4, 8), M.ones(1, 6, 8), M.ones(1, 6, 8),
                   attn_mask=M.ones(4, 6, dtype=M.bool), is_causal=True),
    lambda M: sdpa(M, M.ones(1, 4, 8), M.ones(1, 6, 8, dtype=M.float64), M.ones(1, 6, 8)),
    lambda M: sdpa(M, M.ones(1, 4, 8), M.ones(1, 6, 8), M.ones(1, 6, 8),
                   attn_mask=M.ones(4, 6, dtype=M.int64)),
    lambda M: sdpa(M, M.ones(1, 4, 8), M.ones(1, 6, 8), M.ones(1, 6, 8),
                   attn_mask=M.ones(4, 6, dtype=M.float64)),
    lambda M: sdpa(M, M.ones(8), M.ones(8), M.ones(8)),
    lambda M: sdpa(M, M.ones(1, 3, 4, 8), M.ones(1, 2, 6, 8), M.ones(1, 2, 6, 8),
                   enable_gqa=True),
    lambda M: sdpa(M, M.ones(1, 4, 8), M.ones(1, 6, 8), M.ones(1, 6, 8), dropout_p=2.0),
])
def test_sdpa_errors(case):
    ours, theirs = same_error(case)
    assert ours.split(" (")[0] == theirs.split(" (")[0]


# *** gradcheck (float64, small inputs) ***

def _gc_input(shape, seed=0, low=-2, high=2):
    return pair(shape, "float64", seed=seed, low=low, high=high)[0].requires_grad_()


@pytest.mark.parametrize("name", ["layer_norm", "gelu", "softmax", "sdpa", "pad_reflect",
                                  "embedding", "linear"])
def test_gradcheck(name):
    Fn = ft.nn.functional
    x = _gc_input((2, 3))
    w = _gc_input((3,), seed=1)
    cases = {
        "layer_norm": (lambda a, b: Fn.layer_norm(a, (3,), b, b), (x, w)),
        "gelu": (lambda a: Fn.gelu(a, approximate="tanh") + Fn.gelu(a), (x,)),
        "softmax": (lambda a: Fn.log_softmax(a, 1) + Fn.softmax(a, 0), (x,)),
        "sdpa": (lambda a, b: Fn.scaled_dot_product_attention(
            a, b.reshape(1, 3), b.reshape(1, 3), attn_mask=ft.tensor([[True], [False]])),
            (x, w)),
        "pad_reflect": (lambda a: Fn.pad(a.reshape(1, 2, 3), (2, 1), mode="reflect"), (x,)),
        "embedding": (lambda a: Fn.embedding(ft.tensor([[1, 0], [1, 1]]), a),
                      (x,)),
        "linear": (lambda a, b: Fn.linear(a, a, b[:2]), (x, w)),
    }
    fn, inputs = cases[name]
    assert ft.autograd.gradcheck(fn, inputs)


def _sdpa_math_backend(M, q, k, v):
    # torch's CPU flash kernel has no double backward; its math path has
    if M is ft:
        return sdpa(M, q, k, v, is_causal=True)
    from torch.nn.attention import SDPBackend, sdpa_kernel

    with sdpa_kernel(SDPBackend.MATH):
        return sdpa(M, q, k, v, is_causal=True)


@pytest.mark.parametrize("name", ["layer_norm", "gelu", "log_softmax", "sdpa", "linear"])
def test_second_derivatives(name):
    cases = {
        "layer_norm": (lambda M, x, w, b: F(M).layer_norm(x, (4,), w, b), (3, 4), (4,), (4,)),
        "gelu": (lambda M, x: F(M).gelu(x) + F(M).gelu(x, approximate="tanh"), (3, 4)),
        "log_softmax": (lambda M, x: F(M).log_softmax(x, 1) * F(M).softmax(x, 0), (3, 4)),
        "sdpa": (_sdpa_math_backend, (2, 3, 4), (2, 3, 4), (2, 3, 4)),
        "linear": (lambda M, x, w, b: F(M).linear(x, w, b).tanh(), (3, 4), (2, 4), (2,)),
    }
    fn, *specs = cases[name]
    check_second_derivative(fn, *specs)


def test_no_warnings_on_ordinary_calls():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        x = ft.randn(2, 3)
        ft.nn.functional.softmax(x, dim=1)
        ft.nn.functional.mse_loss(x, x)


# *** softplus ***

# both sides of beta * x = threshold and exactly on it (10.0 with beta 2 or 0.5, 20.0 with
# beta 1), values whose exp overflows or underflows, and the non-finite values
SOFTPLUS_VALUES = [-1e4, -100.0, -30.0, -1.0, -1e-6, 0.0, 1e-6, 0.5, 1.0, 9.5, 10.0, 10.5, 19.0,
                   20.0, 21.0, 50.0, 1e4, float("inf"), float("-inf"), float("nan")]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("beta, threshold", [(1.0, 20.0), (2.0, 20.0), (0.5, 5.0), (-1.0, 20.0),
                                             (3, 1)])
def test_softplus_around_the_threshold(dtype, beta, threshold):
    x_t = torch.tensor(SOFTPLUS_VALUES, dtype=TH_DT[dtype], requires_grad=True)
    x_f = to_ft(x_t.detach()).requires_grad_()
    out_t = torch.nn.functional.softplus(x_t, beta, threshold)
    out_f = ft.nn.functional.softplus(x_f, beta, threshold)
    assert_same(out_f.detach(), out_t.detach(), *TOL[dtype])
    out_t.sum().backward()
    out_f.sum().backward()
    assert_same(x_f.grad, x_t.grad, *TOL[dtype])


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", FLOATS)
def test_softplus_random(dtype, layout):
    check(lambda M, x: F(M).softplus(x, beta=2.0, threshold=3.0), In((5, 7), low=-6, high=6),
          dtype=dtype, layout=layout)
    check(lambda M, x: M.nn.Softplus()(x), In((4,), low=-30, high=30), dtype=dtype)


def test_softplus_module_like_torch():
    assert repr(ft.nn.Softplus()) == repr(torch.nn.Softplus())
    assert repr(ft.nn.Softplus(2, 10)) == repr(torch.nn.Softplus(2, 10))


@pytest.mark.parametrize("case", [
    lambda M: F(M).softplus(M.tensor([1, 2])),
    lambda M: F(M).softplus([1.0]),
])
def test_softplus_errors(case):
    ours, theirs = same_error(case)
    assert ("Long" in theirs) == ("Long" in ours)


def test_softplus_gradcheck_and_second_derivative():
    x = _gc_input((2, 3), low=-3, high=3)
    assert ft.autograd.gradcheck(lambda a: ft.nn.functional.softplus(a, 2.0, 1.0), (x,))
    check_second_derivative(lambda M, x: F(M).softplus(x, beta=0.5), In((3, 4), low=-5, high=5))
