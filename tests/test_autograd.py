"""Differential tests of ferrotorch's autograd against torch.

Every expected value (forward result and every input's gradient) is computed by torch in the
test. The core helper is `check_grad(fn, *specs, dtype, layout)`: it builds the same leaves on
both sides, runs `fn(M, *xs)` with M=ft and M=torch, compares the outputs, backpropagates the
same random upstream gradient and compares every leaf's `.grad`.
"""

import gc
import threading

import ferrotorch as ft
import numpy as np
import pytest
import torch
from conftest import assert_same as _assert_same
from conftest import pair, to_ft

torch.set_num_threads(1)

FLOATS = ["float32", "float64"]
LAYOUTS = ["contiguous", "transposed", "sliced"]
# gradients are sums of products: float32 gets a little more room than the forward table
GRAD_TOL = {"float32": (1e-5, 1e-5), "float64": (1e-10, 1e-10)}
FT_DT = {"float32": ft.float32, "float64": ft.float64}
TH_DT = {"float32": torch.float32, "float64": torch.float64}


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def _detached(x):
    if isinstance(x, (tuple, list)):
        return type(x)(_detached(v) for v in x) if isinstance(x, list) else tuple(
            _detached(v) for v in x)
    return x.detach() if isinstance(x, ft.Tensor) else x


def assert_same(ours, theirs, rtol=None, atol=None):
    """conftest's assert_same on detached values (a tensor that requires grad has no numpy())."""
    _assert_same(_detached(ours), theirs, rtol, atol)


def C(M, t):
    """The constant torch tensor `t` (indices, masks, targets) on M's side."""
    return t if M is torch else to_ft(t)


def gelu(M, x, approximate="none"):
    if M is ft:
        return ft.gelu(x, approximate=approximate)
    return torch.nn.functional.gelu(x, approximate=approximate)


def silu(M, x):
    return ft.silu(x) if M is ft else torch.nn.functional.silu(x)


class In:
    """An input spec: shape, value range, and points the values must stay away from."""

    def __init__(self, shape, low=-3, high=3, away=(), margin=0.3, grad=True):
        self.shape, self.low, self.high = tuple(shape), low, high
        self.away, self.margin, self.grad = away, margin, grad


POS = dict(low=0.5, high=3)  # strictly positive values (log, sqrt, rsqrt, pow bases)


def _spec(s):
    return s if isinstance(s, In) else In(s)


def _view(layout, ndim):
    """The view op applied inside fn to a contiguous leaf to get the given layout."""
    if layout == "transposed" and ndim >= 2:
        return lambda x: x.transpose(0, -1)
    if layout == "sliced":
        return lambda x: x[tuple(slice(1, None, 2) for _ in range(ndim))]
    return lambda x: x


def _base_shape(shape, layout):
    if layout == "transposed" and len(shape) >= 2:
        s = list(shape)
        s[0], s[-1] = s[-1], s[0]
        return tuple(s)
    if layout == "sliced":
        return tuple(2 * n + 1 for n in shape)
    return shape


def make_leaf(spec, dtype, layout="contiguous", seed=0):
    """(ferrotorch leaf, torch leaf, view): contiguous leaves with equal values; `view` turns
    a leaf into an input of spec.shape with the requested layout kind."""
    spec = _spec(spec)
    _, t = pair(_base_shape(spec.shape, layout), dtype, "contiguous", seed, spec.low, spec.high)
    t = t.clone()
    for p in spec.away:
        close = (t - p).abs() < spec.margin
        t[close] = t[close] + 2.5 * spec.margin * torch.sign(t[close] - p + 1e-9)
    f = to_ft(t)
    if spec.grad:
        f = f.detach().requires_grad_()
        t = t.detach().requires_grad_()
    return f, t, _view(layout, len(spec.shape))


def _tuple(x):
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def check_grad(fn, *specs, dtype="float32", layout="contiguous", tol=None, gtol=None, seed=0):
    leaves = [make_leaf(s, dtype, layout, seed + 10 * i + 1) for i, s in enumerate(specs)]
    out_t = _tuple(fn(torch, *[v(t) for _, t, v in leaves]))
    out_f = _tuple(fn(ft, *[v(f) for f, _, v in leaves]))
    tol = tol or (None, None)
    gtol = gtol or GRAD_TOL[dtype]
    assert len(out_f) == len(out_t)
    for o_f, o_t in zip(out_f, out_t):
        assert_same(o_f, o_t, *tol)
        assert o_f.requires_grad == o_t.requires_grad
    # the same random upstream gradient on both sides
    gs = [pair(tuple(o.shape), dtype, seed=seed + 100 + k) for k, o in enumerate(out_t)]
    torch.autograd.backward(list(out_t), [g for _, g in gs])
    ft.autograd.backward(list(out_f), [g for g, _ in gs])
    for i, (f, t, _) in enumerate(leaves):
        if t.grad is None:
            assert f.grad is None, f"input {i}: torch has no grad, ferrotorch has {f.grad}"
        else:
            assert f.grad is not None, f"input {i}: ferrotorch has no grad"
            assert_same(f.grad, t.grad, *gtol)


# --------------------------------------------------------------------------------------------
# first derivatives: one line per op
# --------------------------------------------------------------------------------------------

IDX = torch.tensor([0, 2, 2, 1])        # repeated index -> accumulated grads
MASK34 = torch.tensor(np.random.default_rng(7).random((3, 4)) > 0.5)
GATHER = torch.tensor(np.random.default_rng(8).integers(0, 4, (3, 5)))
SCATTER = torch.tensor(np.random.default_rng(9).integers(0, 3, (2, 4)))
LABELS = torch.tensor([0, 2, 1, 1, 0, 2])

ELEMENTWISE = {
    "add": (lambda M, a, b: a + b, (3, 4), (3, 4)),
    "add_bcast": (lambda M, a, b: a + b, (3, 1, 4), (5, 4)),
    "sub_bcast": (lambda M, a, b: a - b, (1,), (2, 3)),
    "sub_bcast_rev": (lambda M, a, b: b - a, (1,), (2, 3)),
    "mul": (lambda M, a, b: a * b, (3, 4), (3, 4)),
    "mul_bcast": (lambda M, a, b: a * b, (3, 1, 4), (5, 4)),
    "mul_bcast_scalar_tensor": (lambda M, a, b: a * b, (1,), (2, 3)),
    "div": (lambda M, a, b: a / b, (3, 4), In((3, 4), away=(0,))),
    "div_bcast": (lambda M, a, b: a / b, (3, 1, 4), In((5, 4), away=(0,))),
    "div_bcast_num": (lambda M, a, b: a / b, (1,), In((2, 3), away=(0,))),
    "scalar_ops": (lambda M, a: (2 - a) * 3 + a / 4 - 1, (3, 4)),
    "rdiv_scalar": (lambda M, a: 3 / a, In((3, 4), away=(0,))),
    "pow_2": (lambda M, a: a ** 2, (3, 4)),
    "pow_3": (lambda M, a: a ** 3, (3, 4)),
    "pow_half": (lambda M, a: a ** 0.5, In((3, 4), **POS)),
    "pow_neg": (lambda M, a: a ** -1.5, In((3, 4), **POS)),
    "pow_tensor": (lambda M, a, b: a ** b, In((3, 4), **POS), (3, 4)),
    "pow_tensor_bcast": (lambda M, a, b: a ** b, In((3, 1), **POS), (1, 4)),
    "rpow_scalar": (lambda M, a: 2 ** a, (3, 4)),
    "neg": (lambda M, a: -a, (3, 4)),
    "exp": (lambda M, a: a.exp(), (3, 4)),
    "log": (lambda M, a: a.log(), In((3, 4), **POS)),
    "log1p": (lambda M, a: a.log1p(), In((3, 4), low=-0.5, high=3)),
    "sqrt": (lambda M, a: a.sqrt(), In((3, 4), **POS)),
    "rsqrt": (lambda M, a: a.rsqrt(), In((3, 4), **POS)),
    "sin": (lambda M, a: a.sin(), (3, 4)),
    "cos": (lambda M, a: a.cos(), (3, 4)),
    "tanh": (lambda M, a: a.tanh(), (3, 4)),
    "sigmoid": (lambda M, a: a.sigmoid(), (3, 4)),
    "relu": (lambda M, a: a.relu(), In((3, 4), away=(0,))),
    "gelu": (lambda M, a: gelu(M, a), (3, 4)),
    "gelu_tanh": (lambda M, a: gelu(M, a, "tanh"), (3, 4)),
    "silu": (lambda M, a: silu(M, a), (3, 4)),
    "abs": (lambda M, a: a.abs(), In((3, 4), away=(0,))),
    "reciprocal": (lambda M, a: a.reciprocal(), In((3, 4), away=(0,))),
    "clamp": (lambda M, a: a.clamp(-1, 1), In((3, 4), away=(-1, 1))),
    "clamp_kw": (lambda M, a: a.clamp(min=-1, max=1), In((3, 4), away=(-1, 1))),
    "clamp_min": (lambda M, a: a.clamp(min=0.5), In((3, 4), away=(0.5,))),
    "clamp_max": (lambda M, a: a.clamp(max=0.5), In((3, 4), away=(0.5,))),
    "maximum": (lambda M, a, b: M.maximum(a, b), (3, 4), (3, 4)),
    "minimum": (lambda M, a, b: M.minimum(a, b), (3, 4), (3, 4)),
    "maximum_bcast": (lambda M, a, b: M.maximum(a, b), (3, 1, 4), (5, 4)),
    "minimum_bcast": (lambda M, a, b: M.minimum(a, b), (1,), (2, 3)),
    "where": (lambda M, a, b: M.where(C(M, MASK34), a, b), (3, 4), (3, 4)),
    "where_bcast": (lambda M, a, b: M.where(C(M, MASK34), a, b), (3, 4), (4,)),
    "masked_fill": (lambda M, a: a.masked_fill(C(M, MASK34), 0.5), (3, 4)),
    "chain": (lambda M, a, b: (a * b).sin() * a.exp() / (1 + b * b), (3, 4), (3, 4)),
    "reuse_input": (lambda M, a: a * a + a.tanh() * a, (3, 4)),
}

REDUCTIONS = {
    "sum": (lambda M, a: a.sum(), (3, 4, 5)),
    "sum_dim": (lambda M, a: a.sum(1), (3, 4, 5)),
    "sum_tuple_keepdim": (lambda M, a: a.sum((0, 2), keepdim=True), (3, 4, 5)),
    "sum_neg_dim": (lambda M, a: a.sum(dim=-1), (3, 4, 5)),
    "sum_dim_none": (lambda M, a: a.sum(dim=None), (3, 4)),
    "mean": (lambda M, a: a.mean(), (3, 4, 5)),
    "mean_dim_keepdim": (lambda M, a: a.mean(1, keepdim=True), (3, 4, 5)),
    "mean_tuple": (lambda M, a: a.mean((0, 2)), (3, 4, 5)),
    "prod": (lambda M, a: a.prod(), In((3, 4), low=-1.5, high=1.5, away=(0,))),
    "prod_dim": (lambda M, a: a.prod(1), In((3, 4), low=-1.5, high=1.5, away=(0,))),
    "prod_dim_keepdim": (lambda M, a: a.prod(0, keepdim=True), In((3, 4), low=-1.5, high=1.5, away=(0,))),
    "var": (lambda M, a: a.var(), (3, 4)),
    "var_dim_c0": (lambda M, a: a.var(1, correction=0), (3, 4)),
    "var_tuple_c1_keepdim": (lambda M, a: a.var((0, 2), correction=1, keepdim=True), (3, 4, 5)),
    "std": (lambda M, a: a.std(), (3, 4)),
    "std_dim_c0": (lambda M, a: a.std(0, correction=0), (3, 4)),
    "std_dim_c1": (lambda M, a: a.std(dim=1, correction=1), (3, 4)),
    "amax": (lambda M, a: a.amax(1), (3, 4, 5)),
    "amax_tuple": (lambda M, a: a.amax((0, 2)), (3, 4, 5)),
    "amin_keepdim": (lambda M, a: a.amin(0, keepdim=True), (3, 4)),
    "max_dim": (lambda M, a: a.max(1).values, (3, 4)),
    "max_dim_keepdim": (lambda M, a: a.max(dim=0, keepdim=True)[0], (3, 4)),
    "min_dim": (lambda M, a: a.min(-1).values, (3, 4, 5)),
    "max_all": (lambda M, a: a.max(), (3, 4)),
    "min_all": (lambda M, a: a.min(), (3, 4)),
    "logsumexp": (lambda M, a: a.logsumexp(1), (3, 4)),
    "logsumexp_tuple": (lambda M, a: a.logsumexp((0, 1)), (3, 4)),
    "softmax": (lambda M, a: a.softmax(-1), (3, 4)),
    "softmax_dim0": (lambda M, a: a.softmax(dim=0), (3, 4, 5)),
    "log_softmax": (lambda M, a: a.log_softmax(1), (3, 4)),
    "fn_softmax": (lambda M, a: M.softmax(a, 1), (3, 4)),
    "fn_log_softmax": (lambda M, a: M.log_softmax(a, dim=-1), (3, 4)),
    "cumsum": (lambda M, a: a.cumsum(0), (3, 4)),
    "cumsum_dim1": (lambda M, a: a.cumsum(dim=1), (3, 4, 5)),
    "norm": (lambda M, a: a.norm(), (3, 4)),
    "norm_dim": (lambda M, a: a.norm(dim=1), (3, 4)),
}

VIEWS = {
    "view": (lambda M, a: a.contiguous().view(12) * 1, (3, 4)),
    "view_infer": (lambda M, a: a.contiguous().view(-1, 2), (3, 4)),
    "reshape": (lambda M, a: a.reshape(2, 6), (3, 4)),
    "reshape_3d": (lambda M, a: a.reshape(4, -1, 3), (3, 4, 2)),
    "transpose": (lambda M, a: a.transpose(0, 1), (3, 4)),
    "permute": (lambda M, a: a.permute(2, 0, 1), (2, 3, 4)),
    "T": (lambda M, a: a.T, (3, 4)),
    "t": (lambda M, a: a.t(), (3, 4)),
    "mT": (lambda M, a: a.mT, (2, 3, 4)),
    "unsqueeze": (lambda M, a: a.unsqueeze(1), (3, 4)),
    "squeeze": (lambda M, a: a.squeeze(), (3, 1, 4)),
    "squeeze_dim": (lambda M, a: a.squeeze(1), (3, 1, 4)),
    "flatten": (lambda M, a: a.flatten(), (2, 3, 4)),
    "flatten_start": (lambda M, a: a.flatten(1), (2, 3, 4)),
    "expand": (lambda M, a: a.expand(5, 3, 4), (3, 4)),
    "expand_1": (lambda M, a: a.expand(3, 4), (3, 1)),
    "expand_neg": (lambda M, a: a.expand(2, -1, 4), (3, 1)),
    "narrow": (lambda M, a: a.narrow(1, 1, 2), (3, 4)),
    "split": (lambda M, a: a.split(2, dim=1), (3, 5)),
    "split_sizes": (lambda M, a: a.split([1, 2], 0), (3, 4)),
    "split_one_piece": (lambda M, a: a.split(2, dim=1)[1], (3, 5)),
    "chunk": (lambda M, a: a.chunk(2, 1), (3, 4)),
    "unbind": (lambda M, a: a.unbind(0), (3, 4)),
    "unbind_one": (lambda M, a: a.unbind(1)[2] * 2, (3, 4)),
    "slice_step": (lambda M, a: a[::2, 1:], (5, 4)),
    "slice_step2": (lambda M, a: a[1:, ::3], (5, 7)),
    "slice_int_ellipsis": (lambda M, a: a[..., 1], (2, 3, 4)),
    "slice_none": (lambda M, a: a[None, 1:3], (4, 3)),
    "int_index": (lambda M, a: a[1], (3, 4)),
    "adv_list": (lambda M, a: a[[0, 2, 2]], (3, 4)),
    "adv_list_dim1": (lambda M, a: a[:, [3, 0, 3]], (3, 4)),
    "adv_tensor": (lambda M, a: a[C(M, IDX)], (3, 4)),
    "adv_pair": (lambda M, a: a[[0, 1, 0], [2, 2, 2]], (3, 4)),
    "adv_bool": (lambda M, a: a[C(M, MASK34)], (3, 4)),
    "index_select": (lambda M, a: a.index_select(0, C(M, IDX)), (3, 4)),
    "index_select_dim1": (lambda M, a: M.index_select(a, 1, C(M, IDX)), (3, 4)),
    "gather": (lambda M, a: a.gather(1, C(M, GATHER)), (3, 4)),
    "scatter_add": (lambda M, a, s: a.scatter_add(0, C(M, SCATTER), s), (3, 4), (2, 4)),
    "cat": (lambda M, a, b: M.cat([a, b], 0), (3, 4), (2, 4)),
    "cat_dim1": (lambda M, a, b: M.cat([a, b, a], dim=1), (3, 4), (3, 2)),
    "stack": (lambda M, a, b: M.stack([a, b], 1), (3, 4), (3, 4)),
    "stack_same": (lambda M, a: M.stack([a, a * 2]), (3, 4)),
}


def _setitem_zero(M, a):
    y = a * 1
    y[0] = 0
    return y


def _setitem_value(M, a, v):
    y = a * 1
    y[C(M, torch.tensor([2, 0]))] = v
    return y


def _setitem_slice(M, a, v):
    y = a * 2
    y[1:, ::2] = v
    return y * y


def _setitem_mask(M, a):
    y = a * 2
    y[C(M, MASK34)] = 1.5
    return y


VIEWS.update({
    "setitem_zero": (_setitem_zero, (3, 4)),
    "setitem_index_value": (_setitem_value, (3, 4), (2, 4)),
    "setitem_slice_value": (_setitem_slice, (3, 4), (2, 2)),
    "setitem_mask": (_setitem_mask, (3, 4)),
})


def _mlp_ce(M, x, w1, b1, w2, b2):
    h = (x @ w1 + b1).relu()
    logits = h @ w2 + b2
    return -logits.log_softmax(1).gather(1, C(M, LABELS)[:, None]).mean()


MATMUL = {
    "dot_1d_1d": (lambda M, a, b: a @ b, (4,), (4,)),
    "mv_2d_1d": (lambda M, a, b: a @ b, (3, 4), (4,)),
    "vm_1d_2d": (lambda M, a, b: a @ b, (4,), (4, 5)),
    "mm_2d_2d": (lambda M, a, b: a @ b, (3, 4), (4, 5)),
    "batched": (lambda M, a, b: a @ b, (2, 3, 4), (2, 4, 5)),
    "batched_mat": (lambda M, a, b: a.matmul(b), (2, 3, 4), (4, 5)),
    "mat_batched": (lambda M, a, b: M.matmul(a, b), (3, 4), (2, 4, 5)),
    "batched_bcast": (lambda M, a, b: a @ b, (2, 1, 3, 4), (5, 4, 2)),
    "batched_vec": (lambda M, a, b: a @ b, (2, 3, 4), (4,)),
    "vec_batched": (lambda M, a, b: a @ b, (4,), (2, 4, 5)),
    "mm": (lambda M, a, b: a.mm(b), (3, 4), (4, 5)),
    "fn_mm": (lambda M, a, b: M.mm(a, b), (3, 4), (4, 5)),
    "bmm": (lambda M, a, b: a.bmm(b), (2, 3, 4), (2, 4, 5)),
    "einsum_ij_jk": (lambda M, a, b: M.einsum("ij,jk->ik", a, b), (3, 4), (4, 5)),
    "einsum_bij_bjk": (lambda M, a, b: M.einsum("bij,bjk->bik", a, b), (2, 3, 4), (2, 4, 5)),
    "mm_self_T": (lambda M, a: a @ a.T, (3, 4)),
    "linear": (lambda M, x, w, b: x @ w.t() + b, (6, 4), (5, 4), (5,)),
    "mlp_cross_entropy": (_mlp_ce, (6, 10), (10, 8), (8,), (8, 3), (3,)),
}

CASES = {**ELEMENTWISE, **REDUCTIONS, **VIEWS, **MATMUL}
# float32 matmul-type gradients sum up to ~10 products of magnitude <= 9
LOOSE = {name: ((1e-5, 1e-4), (1e-5, 1e-4)) for name in MATMUL}
LOOSE.update({n: ((None, None), (1e-5, 1e-4)) for n in ("var_tuple_c1_keepdim", "prod", "chain")})


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("name", list(CASES))
def test_grad(name, dtype, layout):
    fn, *specs = CASES[name]
    tol, gtol = LOOSE.get(name, (None, None)) if dtype == "float32" else (None, None)
    check_grad(fn, *specs, dtype=dtype, layout=layout, tol=tol, gtol=gtol)


@pytest.mark.parametrize("name", ["exp", "mul_bcast", "sum_dim", "transpose", "adv_list",
                                  "mm_2d_2d", "softmax", "gather", "cat", "narrow"])
@pytest.mark.parametrize("layout", ["transposed", "sliced"])
def test_grad_noncontiguous_leaf(name, layout):
    """Leaves that are themselves non-contiguous (a detached strided view made a leaf)."""
    fn, *specs = CASES[name]
    fs, ts = [], []
    for i, s in enumerate(specs):
        s = _spec(s)
        f, t = pair(s.shape, "float64", layout, seed=i + 3)
        fs.append(f.detach().requires_grad_())
        ts.append(t.detach().requires_grad_())
    assert all(f.is_leaf for f in fs)
    out_f, out_t = fn(ft, *fs), fn(torch, *ts)
    assert_same(out_f, out_t)
    g_f, g_t = pair(tuple(out_t.shape), "float64", seed=99)
    out_f.backward(g_f)
    out_t.backward(g_t)
    for f, t in zip(fs, ts):
        assert_same(f.grad, t.grad)


# --------------------------------------------------------------------------------------------
# second derivatives
# --------------------------------------------------------------------------------------------

SECOND = {
    "pow3": (lambda M, a: a ** 3, (3, 4)),
    "sin": (lambda M, a: a.sin(), (3, 4)),
    "cos": (lambda M, a: a.cos(), (3, 4)),
    "tanh": (lambda M, a: a.tanh(), (3, 4)),
    "sigmoid": (lambda M, a: a.sigmoid(), (3, 4)),
    "exp": (lambda M, a: a.exp(), (3, 4)),
    "log": (lambda M, a: a.log(), In((3, 4), **POS)),
    "softmax": (lambda M, a: a.softmax(-1), (3, 4)),
    "log_softmax": (lambda M, a: a.log_softmax(-1), (3, 4)),
    "mul": (lambda M, a, b: a * b * a, (3, 4), (3, 4)),
    "div": (lambda M, a, b: a / b, (3, 4), In((3, 4), away=(0,))),
    "matmul": (lambda M, a, b: (a @ b) ** 2, (3, 4), (4, 5)),
    "sum": (lambda M, a: (a * a).sum(), (3, 4)),
    "mean": (lambda M, a: (a ** 3).mean(1), (3, 4)),
    "gelu": (lambda M, a: gelu(M, a), (3, 4)),
    "sqrt": (lambda M, a: a.sqrt(), In((3, 4), **POS)),
}


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("name", list(SECOND))
def test_second_derivative(name, dtype):
    """grad(create_graph=True), then backward through the gradient (Hessian-vector product)."""
    fn, *specs = SECOND[name]
    leaves = [make_leaf(s, dtype, seed=i + 1) for i, s in enumerate(specs)]
    res = {}
    for M, k in ((torch, 1), (ft, 0)):
        xs = [leaf[k] for leaf in leaves]
        y = fn(M, *xs)
        g = pair(tuple(y.shape), dtype, seed=50)[k]
        g1 = M.autograd.grad(y, xs, g, create_graph=True)
        assert all(t.requires_grad for t in g1)
        v = [pair(tuple(x.shape), dtype, seed=60 + i)[k] for i, x in enumerate(xs)]
        sum((gi * vi).sum() for gi, vi in zip(g1, v)).backward()
        res[M] = (g1, [x.grad for x in xs])
    rtol, atol = GRAD_TOL[dtype]
    if dtype == "float32":
        atol = 1e-4
    assert_same(res[ft][0], res[torch][0], rtol, atol)
    assert_same(res[ft][1], res[torch][1], rtol, atol)


@pytest.mark.parametrize("dtype", FLOATS)
def test_gradient_of_gradient_norm(dtype):
    """The gradient penalty: g = d loss / d w (create_graph), then backward of |g|^2."""
    res = {}
    for M, k in ((torch, 1), (ft, 0)):
        x = pair((6, 4), dtype, seed=1)[k].requires_grad_()
        w = pair((4, 3), dtype, seed=2, low=-1, high=1)[k].requires_grad_()
        loss = ((x @ w).tanh() ** 2).sum()
        (g,) = M.autograd.grad(loss, w, create_graph=True)
        (g ** 2).sum().backward()
        res[M] = (g, w.grad, x.grad)
    assert_same(res[ft], res[torch], 1e-5 if dtype == "float32" else 1e-10,
                1e-4 if dtype == "float32" else 1e-10)


@pytest.mark.parametrize("dtype", FLOATS)
def test_third_derivative_pow(dtype):
    res = {}
    for M, k in ((torch, 1), (ft, 0)):
        x = pair((5,), dtype, seed=3)[k].requires_grad_()
        y = (x ** 4).sum()
        (g1,) = M.autograd.grad(y, x, create_graph=True)
        (g2,) = M.autograd.grad(g1.sum(), x, create_graph=True)
        (g3,) = M.autograd.grad(g2.sum(), x)
        res[M] = (g1, g2, g3)
    assert_same(res[ft], res[torch], 1e-5 if dtype == "float32" else 1e-12, 1e-4)


# --------------------------------------------------------------------------------------------
# gradcheck / gradgradcheck
# --------------------------------------------------------------------------------------------

GRADCHECK = [
    "mul_bcast", "div", "pow_tensor", "pow_3", "exp", "log", "sqrt", "tanh", "sigmoid", "gelu",
    "gelu_tanh", "silu", "maximum", "where", "sum_tuple_keepdim", "mean_dim_keepdim", "prod_dim",
    "var_dim_c0", "std_dim_c1", "logsumexp", "softmax", "log_softmax", "cumsum", "norm_dim",
    "amax", "adv_list", "gather", "scatter_add", "cat", "mm_2d_2d", "batched_bcast",
    "setitem_index_value", "mlp_cross_entropy",
]


def _small(spec):
    s = _spec(spec)
    return In(tuple(min(n, 3) for n in s.shape), s.low, s.high, s.away, s.margin)


@pytest.mark.parametrize("name", GRADCHECK)
def test_gradcheck(name):
    fn, *specs = CASES[name]
    if name in ("mlp_cross_entropy", "where", "gather", "scatter_add", "setitem_index_value",
                "amax", "adv_list"):
        small = [_spec(s) for s in specs]  # shapes tied to constant indices: keep them
    else:
        small = [_small(s) for s in specs]
    leaves = [make_leaf(s, "float64", seed=i + 1) for i, s in enumerate(small)]
    assert torch.autograd.gradcheck(lambda *xs: fn(torch, *xs), tuple(t for _, t, _ in leaves))
    assert ft.autograd.gradcheck(lambda *xs: fn(ft, *xs), tuple(f for f, _, _ in leaves),
                                 eps=1e-6, atol=1e-5, rtol=1e-3)


@pytest.mark.parametrize("name", ["pow_3", "tanh", "sigmoid", "exp", "softmax", "mm_2d_2d",
                                  "mul_bcast", "log_softmax"])
def test_gradgradcheck(name):
    fn, *specs = CASES[name]
    leaves = [make_leaf(_small(s), "float64", seed=i + 1) for i, s in enumerate(specs)]
    assert torch.autograd.gradgradcheck(lambda *xs: fn(torch, *xs), tuple(t for _, t, _ in leaves))
    assert ft.autograd.gradgradcheck(lambda *xs: fn(ft, *xs), tuple(f for f, _, _ in leaves))


def _bad_square(M):
    class BadSquare(M.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * x

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return 3 * x * g  # wrong: should be 2 x g

    return BadSquare


@pytest.mark.parametrize("container", [tuple, list, "bare"])
def test_gradcheck_catches_a_wrong_backward(container):
    """torch accepts the inputs as a tuple, a list or a single tensor."""
    for M in (torch, ft):
        x = M.tensor([0.5, -1.0, 2.0], dtype=M.float64, requires_grad=True)
        inputs = x if container == "bare" else container([x])
        with pytest.raises(RuntimeError):
            M.autograd.gradcheck(_bad_square(M).apply, inputs)


# --------------------------------------------------------------------------------------------
# engine semantics
# --------------------------------------------------------------------------------------------


def both(values, requires_grad=True, dtype="float32"):
    t = torch.tensor(values, dtype=TH_DT[dtype], requires_grad=requires_grad)
    f = ft.tensor(values, dtype=FT_DT[dtype], requires_grad=requires_grad)
    return f, t


def test_grad_accumulates_across_backward_calls():
    f, t = both([1.0, -2.0, 3.0])
    for M, x in ((ft, f), (torch, t)):
        (x * x).sum().backward()
        (x.exp()).sum().backward()
    assert_same(f.grad, t.grad)


def _grads_after_backward(M, case):
    """Runs one backward where a gradient could reach two places, then writes into one of
    them in place; returns every gradient afterwards."""
    a = M.tensor([1.0, -2.0, 3.0], requires_grad=True)
    b = M.tensor([0.5, 4.0, -1.0], requires_grad=True)
    if case == "add":  # both inputs get the incoming gradient itself
        (a + b).sum().backward()
        a.grad.add_(1.0)
        return a.grad, b.grad
    if case == "user_gradient":  # the caller keeps the gradient it passed
        g = M.tensor([1.0, 2.0, 3.0])
        a.backward(g)
        g.mul_(10.0)
        return a.grad, g
    if case == "cat":  # both gradients are views of one buffer
        M.cat([a, b]).pow(2).sum().backward()
        b.grad.sub_(1.0)
        return a.grad, b.grad
    if case == "retain_grad":  # a non-leaf and a leaf share the gradient of an add
        h = a * 2
        h.retain_grad()
        (h + b).exp().sum().backward()
        h.grad.mul_(3.0)
        return a.grad, b.grad, h.grad
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["add", "user_gradient", "cat", "retain_grad"])
def test_stored_gradients_never_share_memory(case):
    # Gradients that nothing else holds become `.grad` without a copy; the others are copied,
    # so an in-place write to one `.grad` never shows up anywhere else (as in torch).
    for f, t in zip(_grads_after_backward(ft, case), _grads_after_backward(torch, case)):
        assert_same(f, t)


def test_retain_graph_allows_second_backward():
    f, t = both([1.0, -2.0, 3.0])
    for x in (f, t):
        y = (x.sin() * x).sum()
        y.backward(retain_graph=True)
        y.backward()
    assert_same(f.grad, t.grad)


def test_second_backward_without_retain_graph_raises():
    f, t = both([1.0, -2.0, 3.0])
    for x in (f, t):
        y = (x.exp() * x).sum()
        y.backward()
        with pytest.raises(RuntimeError, match="second time"):
            y.backward()


def test_backward_on_non_scalar_without_gradient_raises():
    f, t = both([1.0, -2.0, 3.0])
    for x in (f, t):
        with pytest.raises(RuntimeError):
            (x * 2).backward()


def test_backward_with_gradient_of_wrong_shape_raises():
    f, t = both([1.0, -2.0, 3.0])
    for M, x in ((ft, f), (torch, t)):
        with pytest.raises(RuntimeError):
            (x * 2).backward(M.ones(2))


def test_backward_on_tensor_without_grad_raises():
    f, t = both([1.0, -2.0, 3.0], requires_grad=False)
    for x in (f, t):
        with pytest.raises(RuntimeError):
            (x * 2).sum().backward()


def test_requires_grad_on_int_tensor_raises():
    with pytest.raises(RuntimeError):
        torch.tensor([1, 2]).requires_grad_()
    with pytest.raises(RuntimeError):
        ft.tensor([1, 2]).requires_grad_()
    with pytest.raises(RuntimeError):
        ft.tensor([1, 2], requires_grad=True)
    with pytest.raises(RuntimeError):
        ft.tensor([1, 2]).requires_grad = True


def test_autograd_grad_of_tensor_not_requiring_grad_raises():
    for M in (ft, torch):
        x = M.tensor([1.0, 2.0], requires_grad=True)
        c = M.tensor([3.0, 4.0])
        with pytest.raises(RuntimeError):
            M.autograd.grad((c * 2).sum(), x)
        with pytest.raises(RuntimeError):  # the input is unreachable without allow_unused
            M.autograd.grad((c * 2).sum() + (x * 0).sum(), c)


def test_autograd_grad_allow_unused():
    res = {}
    for M in (ft, torch):
        x = M.tensor([1.0, 2.0], requires_grad=True)
        u = M.tensor([3.0, 4.0], requires_grad=True)
        with pytest.raises(RuntimeError):
            M.autograd.grad((x * x).sum(), [x, u], retain_graph=True)
        gx, gu = M.autograd.grad((x * x).sum(), [x, u], allow_unused=True)
        assert gu is None
        assert x.grad is None  # autograd.grad does not touch .grad
        res[M] = gx
    assert_same(res[ft], res[torch])


def test_autograd_grad_with_grad_outputs_and_several_outputs():
    res = {}
    for M, k in ((ft, 0), (torch, 1)):
        x = pair((3, 4), seed=1)[k].requires_grad_()
        y1, y2 = x.exp(), x.sin().sum(0)
        g1, g2 = pair((3, 4), seed=2)[k], pair((4,), seed=3)[k]
        res[M] = M.autograd.grad([y1, y2], [x], [g1, g2])
    assert_same(res[ft], res[torch])


INPLACE_ON_LEAF = {
    "add_": lambda x: x.add_(1),
    "mul_": lambda x: x.mul_(2),
    "sub_": lambda x: x.sub_(x),
    "exp_": lambda x: x.exp_(),
    "zero_": lambda x: x.zero_(),
    "fill_": lambda x: x.fill_(3.0),
    "clamp_": lambda x: x.clamp_(0, 1),
    "iadd": lambda x: x.__iadd__(1),
    "setitem": lambda x: x.__setitem__(0, 5.0),
    "view_mul_": lambda x: x[1:].mul_(2),
}


@pytest.mark.parametrize("op", list(INPLACE_ON_LEAF))
def test_inplace_on_leaf_requiring_grad_raises(op):
    f, t = both([1.0, 2.0])
    for x in (t, f):
        with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
            INPLACE_ON_LEAF[op](x)


def test_inplace_on_leaf_under_no_grad_is_allowed():
    f, t = both([1.0, 2.0])
    for M, x in ((ft, f), (torch, t)):
        with M.no_grad():
            x.mul_(3)
            x[1] = 7.0
        (x * x).sum().backward()
        assert x.is_leaf and x.requires_grad
    assert_same(f, t.detach())
    assert_same(f.grad, t.grad)


def test_modifying_a_tensor_saved_for_backward_raises():
    with pytest.raises(RuntimeError, match="inplace"):
        x = torch.tensor([1.0, 2.0], requires_grad=True)
        y = x.exp()
        z = y * y
        y.add_(1)
        z.sum().backward()
    x = ft.tensor([1.0, 2.0], requires_grad=True)
    y = x.exp()
    z = y * y
    y.add_(1)
    with pytest.raises(RuntimeError, match="inplace"):
        z.sum().backward()


def test_modifying_an_output_saved_for_backward_raises():
    # exp saves its result: modifying it in place must be caught too
    with pytest.raises(RuntimeError, match="inplace"):
        x = torch.tensor([1.0, 2.0], requires_grad=True)
        y = x.exp()
        y.mul_(2)
        y.sum().backward()
    x = ft.tensor([1.0, 2.0], requires_grad=True)
    y = x.exp()
    y.mul_(2)
    with pytest.raises(RuntimeError, match="inplace"):
        y.sum().backward()


@pytest.mark.parametrize("op", ["mul_", "add_", "sub_", "div_", "pow_", "clamp_", "exp_",
                                "neg_", "setitem_slice", "chain"])
@pytest.mark.parametrize("dtype", FLOATS)
def test_inplace_on_non_leaf_is_recorded(op, dtype):
    def fn(M, x, w):
        y = x * 2
        if op == "mul_":
            y.mul_(w)
        elif op == "add_":
            y.add_(w)
        elif op == "sub_":
            y.sub_(3)
        elif op == "div_":
            y.div_(w)
        elif op == "pow_":
            y.pow_(2)
        elif op == "clamp_":
            y.clamp_(-1, 1)
        elif op == "exp_":
            y.exp_()
        elif op == "neg_":
            y.neg_()
        elif op == "setitem_slice":
            y[:, 1:3] = w[:, :2] * 3
        else:
            y.mul_(3).add_(w).tanh_()
        return y * x

    check_grad(fn, In((3, 4), away=(-0.5, 0.5)), In((3, 4), away=(0,)), dtype=dtype)


INPLACE_ON_VIEWS = {
    # (name, fn(M, x, w)): in-place ops through views of results, as torch records them
    # (CopySlices on the base, the view rebased onto it).
    "row_mul_": lambda M, x, w: _via_view(x * 1, lambda y: y[1].mul_(5)),
    "column_add_tensor": lambda M, x, w: _via_view(x * 2, lambda y: y[:, 2].add_(w[0, :3])),
    "setitem_on_view": lambda M, x, w: _via_view(x.sin(), lambda y: y[1:].__setitem__(0, w[1])),
    "chained_views": lambda M, x, w: _via_view(x * x, lambda y: y[1:][:, 1:3].mul_(w[2, :2])),
    "transposed_view": lambda M, x, w: _via_view(x + 1, lambda y: y.t()[0].sub_(w[0, :3])),
    "view_then_use_view": lambda M, x, w: _use_view_after(x * 3, w),
    "copy_into_slice": lambda M, x, w: _via_view(x.sin(), lambda y: y[0, :2].copy_(w[1, :2])),
    "expand_source_fill": lambda M, x, w: _via_view(x * 1, lambda y: y[2].fill_(0.5)),
    "twice_same_view": lambda M, x, w: _via_view(x * 1, lambda y: y[0].mul_(w[0]).add_(w[1])),
}


def _via_view(y, op):
    op(y)
    return y * y


def _use_view_after(y, w):
    v = y[:, 1]
    v.mul_(w[0, :3])
    return y.sum() + (v * v).sum()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", sorted(INPLACE_ON_VIEWS))
def test_inplace_on_view_of_non_leaf_matches_torch(name, dtype):
    fn = INPLACE_ON_VIEWS[name]
    res = {}
    for M, k in ((ft, 0), (torch, 1)):
        x = pair((3, 4), dtype, seed=1)[k].requires_grad_()
        w = pair((3, 4), dtype, seed=2)[k].requires_grad_()
        out = fn(M, x, w)
        out.sum().backward()
        res[M] = [t for t in (out, x.grad, w.grad) if t is not None]
    assert_same(res[ft], res[torch])


def test_inplace_on_view_names_and_later_use_of_the_base():
    for M, k in ((ft, 0), (torch, 1)):
        x = pair((3, 4), "float64", seed=3)[k].requires_grad_()
        y = x * 2
        z = y + 1  # used before the in-place change: backpropagates into y's old history
        v = y[1]
        v.mul_(3)
        assert type(y.grad_fn).__name__ == "CopySlices" or y.grad_fn.name() == "CopySlices"
        (z.sum() + (y * y).sum()).backward()
        if M is ft:
            ours = x.grad
        else:
            assert_same(ours, x.grad)


def test_inplace_on_view_gradcheck_and_second_order():
    def f(x):
        y = x * x
        y[1:, :2].mul_(x[:2, 2:])
        return y.sin()

    x = pair((3, 4), "float64", seed=4)[0].requires_grad_()
    assert ft.autograd.gradcheck(f, (x,))
    tx = pair((3, 4), "float64", seed=4)[1].requires_grad_()

    def tf(x):
        y = x * x
        y[1:, :2].mul_(x[:2, 2:])
        return y.sin()

    (g,) = ft.autograd.grad(f(x).sum(), x, create_graph=True)
    (tg,) = torch.autograd.grad(tf(tx).sum(), tx, create_graph=True)
    assert_same(g, tg)
    g.pow(2).sum().backward()
    tg.pow(2).sum().backward()
    assert_same(x.grad, tx.grad)


def test_inplace_on_view_of_leaf_still_refused():
    for M in (ft, torch):
        x = M.ones(3, requires_grad=True)
        with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
            x[0].mul_(2)


@pytest.mark.parametrize("ctx", ["no_grad", "inference_mode", "set_grad_enabled_false"])
def test_grad_mode_context_managers(ctx):
    for M in (ft, torch):
        x = M.tensor([1.0, 2.0], requires_grad=True)
        cm = {"no_grad": M.no_grad, "inference_mode": M.inference_mode,
              "set_grad_enabled_false": lambda: M.set_grad_enabled(False)}[ctx]
        assert M.is_grad_enabled()
        with cm():
            assert not M.is_grad_enabled()
            y = x * 2
            assert not y.requires_grad and y.grad_fn is None
            with M.enable_grad():
                if ctx != "inference_mode":  # torch: inference mode is not undone by grad mode
                    assert M.is_grad_enabled()
                    z = x * 2
                    assert z.requires_grad and z.grad_fn is not None
            assert not (x * 2).requires_grad
        assert M.is_grad_enabled()
        assert (x * 2).requires_grad


def test_grad_mode_decorators():
    for M in (ft, torch):
        x = M.tensor([1.0, 2.0], requires_grad=True)

        @M.no_grad()
        def f1(a):
            return a * 2

        @M.inference_mode()
        def f2(a):
            return a * 2

        @M.set_grad_enabled(False)
        def f3(a):
            return a * 2

        @M.enable_grad()
        def f4(a):
            return a * 2

        assert not f1(x).requires_grad
        assert not f2(x).requires_grad
        assert not f3(x).requires_grad
        assert M.is_grad_enabled()
        with M.no_grad():
            assert f4(x).requires_grad
        assert f1.__name__ == "f1"


def test_set_grad_enabled_as_a_function():
    for M in (ft, torch):
        x = M.tensor([1.0], requires_grad=True)
        M.set_grad_enabled(False)
        try:
            assert not (x * 2).requires_grad
        finally:
            M.set_grad_enabled(True)
        assert (x * 2).requires_grad


def test_grad_mode_restored_after_exception():
    for M in (ft, torch):
        with pytest.raises(ValueError):
            with M.no_grad():
                raise ValueError
        assert M.is_grad_enabled()


def test_grad_mode_is_per_thread():
    for M in (ft, torch):
        x = M.tensor([1.0, 2.0], requires_grad=True)
        seen = {}

        def worker():
            seen["enabled"] = M.is_grad_enabled()
            seen["rg"] = (x * 2).requires_grad

        with M.no_grad():
            th = threading.Thread(target=worker)
            th.start()
            th.join()
            assert not (x * 2).requires_grad
        assert seen == {"enabled": True, "rg": True}, (M.__name__, seen)


def test_detach_shares_storage_and_cuts_the_graph():
    res = {}
    for M in (ft, torch):
        x = M.tensor([1.0, 2.0, 3.0], requires_grad=True)
        y = x * 2
        d = y.detach()
        assert not d.requires_grad and d.is_leaf and d.grad_fn is None
        d[0] = 10.0
        assert y[0].item() == 10.0
        (y * x + d * x).sum().backward()
        res[M] = (y.detach(), x.grad)
    assert_same(res[ft], res[torch])


def test_detach_in_place():
    res = {}
    for M in (ft, torch):
        x = M.tensor([1.0, 2.0, 3.0], requires_grad=True)
        z = x * 3
        assert z.detach_() is z
        assert not z.requires_grad and z.grad_fn is None and z.is_leaf
        (x * z).sum().backward()
        res[M] = (z, x.grad)
    assert_same(res[ft], res[torch])


def test_data_shares_storage_and_is_not_tracked():
    res = {}
    for M in (ft, torch):
        x = M.tensor([1.0, 2.0, 3.0], requires_grad=True)
        assert not x.data.requires_grad and x.data.is_leaf
        x.data[1] = 5.0
        assert x[1].item() == 5.0
        (x * x).sum().backward()
        res[M] = x.grad
    assert_same(res[ft], res[torch])


def test_data_modification_bypasses_the_version_check():
    """torch's escape hatch: changes through .data are invisible to autograd (no error)."""
    res = {}
    for M in (ft, torch):
        x = M.tensor([1.0, 2.0], requires_grad=True)
        y = x * x
        x.data[0] = 5.0
        y.sum().backward()
        res[M] = x.grad
    assert_same(res[ft], res[torch])


def _outcome(fn):
    """The result of ``fn()``, or the type of the exception it raised."""
    try:
        return fn()
    except RuntimeError as e:
        return type(e)


@pytest.mark.parametrize("case", ["unread_factor", "read_factor", "sum_operand",
                                  "where_branch", "quotient"])
def test_inplace_write_fails_backward_only_where_the_formula_reads_the_value(case):
    """A graph keeps (and version-checks) only what a backward formula reads, as torch does: a
    factor whose partner takes no gradient, the operands of a sum and the branches of a where
    may be changed in place before the backward; a factor that is read, or a divisor, may not."""
    res = {}
    for M in (ft, torch):
        w = M.tensor([1.0, 2.0, 3.0], requires_grad=True)
        v = M.tensor([0.5, -1.0, 2.0], requires_grad=True)
        c = M.tensor([3.0, 4.0, 5.0])
        h = w * 2
        if case == "unread_factor":
            y = h * c
        elif case == "read_factor":
            y = h * v
        elif case == "sum_operand":
            y = (h + v) - h
        elif case == "where_branch":
            y = M.where(c > 3.5, h, v)
        else:
            y = v / h
        h.add_(1)

        def backward():
            y.sum().backward()
            return tuple(g for g in (w.grad, v.grad) if g is not None)

        res[M] = _outcome(backward)
    assert (res[ft] is RuntimeError) == (res[torch] is RuntimeError), res
    if res[torch] is not RuntimeError:
        assert_same(res[ft], res[torch])


def test_data_setter():
    res = {}
    for M in (ft, torch):
        x = M.tensor([1.0, 2.0], requires_grad=True)
        x.data = M.tensor([3.0, 4.0])
        assert x.requires_grad and x.is_leaf
        (x * x).sum().backward()
        res[M] = x.grad
    assert_same(res[ft], res[torch])


@pytest.mark.filterwarnings("ignore:The .grad attribute of a Tensor that is not a leaf")
def test_leaf_flags():
    for M in (ft, torch):
        x = M.tensor([1.0, 2.0], requires_grad=True)
        c = M.tensor([1.0, 2.0])
        y = x * c
        assert x.is_leaf and c.is_leaf and not y.is_leaf
        assert x.grad_fn is None and y.grad_fn is not None
        assert not (c * 2).requires_grad and (c * 2).is_leaf
        y.sum().backward()
        assert y.grad is None and c.grad is None


GRAD_FN_OPS = {
    "add": lambda M, a, b: a + b,
    "sub": lambda M, a, b: a - b,
    "mul": lambda M, a, b: a * b,
    "div": lambda M, a, b: a / b,
    "neg": lambda M, a, b: -a,
    "pow_scalar": lambda M, a, b: a ** 2,
    "pow_tensor": lambda M, a, b: a ** b,
    "add_scalar": lambda M, a, b: a + 1,
    "mul_scalar": lambda M, a, b: a * 2,
    "exp": lambda M, a, b: a.exp(),
    "log": lambda M, a, b: a.log(),
    "sqrt": lambda M, a, b: a.sqrt(),
    "sin": lambda M, a, b: a.sin(),
    "cos": lambda M, a, b: a.cos(),
    "tanh": lambda M, a, b: a.tanh(),
    "sigmoid": lambda M, a, b: a.sigmoid(),
    "relu": lambda M, a, b: a.relu(),
    "abs": lambda M, a, b: a.abs(),
    "clamp": lambda M, a, b: a.clamp(0, 1),
    "sum": lambda M, a, b: a.sum(),
    "sum_dim": lambda M, a, b: a.sum(1),
    "mean": lambda M, a, b: a.mean(),
    "mean_dim": lambda M, a, b: a.mean(0),
    "prod": lambda M, a, b: a.prod(),
    "amax": lambda M, a, b: a.amax(1),
    "max_dim": lambda M, a, b: a.max(1).values,
    "softmax": lambda M, a, b: a.softmax(1),
    "log_softmax": lambda M, a, b: a.log_softmax(1),
    "view": lambda M, a, b: a.view(6),
    "reshape_copy": lambda M, a, b: a.t().reshape(6),
    "transpose": lambda M, a, b: a.transpose(0, 1),
    "t": lambda M, a, b: a.t(),
    "permute": lambda M, a, b: a.permute(1, 0),
    "unsqueeze": lambda M, a, b: a.unsqueeze(0),
    "squeeze": lambda M, a, b: a[None].squeeze(0),
    "expand": lambda M, a, b: a.expand(4, 2, 3),
    "select": lambda M, a, b: a[0],
    "slice": lambda M, a, b: a[:, 1:],
    "index": lambda M, a, b: a[[1, 0]],
    "index_select": lambda M, a, b: a.index_select(0, C(M, torch.tensor([1, 0]))),
    "gather": lambda M, a, b: a.gather(1, C(M, torch.tensor([[0], [2]]))),
    "cat": lambda M, a, b: M.cat([a, b]),
    "stack": lambda M, a, b: M.stack([a, b]),
    "matmul_2d": lambda M, a, b: a @ b.t(),
    "matmul_2d_1d": lambda M, a, b: a @ b[0],
    "matmul_1d_1d": lambda M, a, b: a[0] @ b[0],
    "matmul_3d": lambda M, a, b: a[None] @ b.t()[None],
    "mm": lambda M, a, b: a.mm(b.t()),
    "bmm": lambda M, a, b: a[None].bmm(b.t()[None]),
    "where": lambda M, a, b: M.where(a > 0, a, b),
    "masked_fill": lambda M, a, b: a.masked_fill(a > 0, 0.0),
    "cumsum": lambda M, a, b: a.cumsum(0),
    "var": lambda M, a, b: a.var(),
    "std": lambda M, a, b: a.std(),
    "norm": lambda M, a, b: a.norm(),
    "logsumexp": lambda M, a, b: a.logsumexp(1),
    "maximum": lambda M, a, b: M.maximum(a, b),
    "clone": lambda M, a, b: a.clone(),
}


def _grad_fn_names():
    out = {}
    a, ta = pair((2, 3), "float64", seed=1, low=0.5, high=2)
    b, tb = pair((2, 3), "float64", seed=2, low=0.5, high=2)
    for name, fn in GRAD_FN_OPS.items():
        fa, fb = a.detach().requires_grad_(), b.detach().requires_grad_()
        ta_, tb_ = ta.detach().requires_grad_(), tb.detach().requires_grad_()
        theirs = type(fn(torch, ta_, tb_).grad_fn).__name__
        try:
            ours = fn(ft, fa, fb).grad_fn.name()
        except Exception as e:  # reported as a mismatch
            ours = f"<{type(e).__name__}>"
        out[name] = (ours, theirs)
    return out


# grad_fn names that agree with torch's (the remaining ones are reported, not asserted:
# pow_scalar, clamp, reshape_copy, t, squeeze, index_select, stack, matmul_*, mm, bmm,
# masked_fill, norm)
GRAD_FN_MATCHING = [
    "add", "sub", "mul", "div", "neg", "pow_tensor", "add_scalar", "mul_scalar", "exp", "log",
    "sqrt", "sin", "cos", "tanh", "sigmoid", "relu", "abs", "sum", "sum_dim", "mean",
    "mean_dim", "prod", "amax", "max_dim", "softmax", "log_softmax", "view", "transpose",
    "permute", "unsqueeze", "expand", "select", "slice", "index", "gather", "cat", "where",
    "cumsum", "var", "std", "logsumexp", "maximum", "clone",
]


def test_grad_fn_names_match_torch():
    names = _grad_fn_names()
    wrong = {k: v for k, v in names.items() if k in GRAD_FN_MATCHING and v[0] != v[1]}
    assert not wrong, f"(ferrotorch, torch) grad_fn names differ: {wrong}"


def test_grad_fn_repr_and_next_functions():
    x = ft.tensor([1.0, 2.0], requires_grad=True)
    y = (x * 2).sum()
    assert repr(y.grad_fn).startswith("<SumBackward0 object at ")
    ((nxt, idx),) = y.grad_fn.next_functions
    assert nxt.name() == "MulBackward0" and idx == 0
    tx = torch.tensor([1.0, 2.0], requires_grad=True)
    ty = (tx * 2).sum()
    assert len(ty.grad_fn.next_functions) == len(y.grad_fn.next_functions)


def test_hook_modifies_gradient():
    res = {}
    for M in (ft, torch):
        x = M.tensor([1.0, -2.0, 3.0], requires_grad=True)
        seen = []
        y = x * x
        y.register_hook(lambda g: seen.append(g.clone()))
        x.register_hook(lambda g: g * 2)
        z = y.exp() * 0 + y
        z.register_hook(lambda g: g + 1)
        z.sum().backward()
        res[M] = (x.grad, seen[0])
    assert_same(res[ft], res[torch])


def test_hook_handle_remove():
    res = {}
    for M in (ft, torch):
        x = M.tensor([1.0, -2.0, 3.0], requires_grad=True)
        h = x.register_hook(lambda g: g * 2)
        (x * 3).sum().backward()
        h.remove()
        (x * 3).sum().backward()  # hook removed: no doubling
        res[M] = x.grad
    assert_same(res[ft], res[torch])


def test_post_accumulate_grad_hook():
    """Called with the leaf after its .grad holds the accumulated total; the order against the
    gradient hooks and across two uses of the leaf is torch's."""
    res = {}
    for M in (ft, torch):
        w = M.tensor([1.0, -2.0, 3.0], requires_grad=True)
        b = M.tensor([0.5], requires_grad=True)
        events = []
        w.register_hook(lambda g: events.append(("grad", g.clone())))
        hw = w.register_post_accumulate_grad_hook(
            lambda t: events.append(("post", t.grad.clone())))
        b.register_post_accumulate_grad_hook(lambda t: events.append(("post_b", t.grad.clone())))
        ((w * w).sum() + (w * b).sum() * 3).backward()
        (w * 2).sum().backward()  # accumulates: the hook sees the running total
        hw.remove()
        (w * 5).sum().backward()
        res[M] = [(name, v) for name, v in events]
    assert [n for n, _ in res[ft]] == [n for n, _ in res[torch]]
    assert_same([v for _, v in res[ft]], [v for _, v in res[torch]])


def test_post_accumulate_grad_hook_errors():
    for M in (ft, torch):
        with pytest.raises(RuntimeError, match="doesn't require gradient"):
            M.ones(2).register_post_accumulate_grad_hook(lambda t: None)
        with pytest.raises(RuntimeError, match="post accumulate grad hooks cannot be registered on non-leaf"):
            (M.ones(2, requires_grad=True) * 2).register_post_accumulate_grad_hook(lambda t: None)
    x = ft.ones(2, requires_grad=True)
    x.register_post_accumulate_grad_hook(lambda t: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        (x * 2).sum().backward()


def test_queued_backward_callback_runs_after_the_pass():
    """A callback queued from a hook runs once the whole pass is done (every .grad stored),
    as with torch's Variable._execution_engine.queue_callback."""
    res = {}
    for M in (ft, torch):
        a = M.tensor([1.0, 2.0], requires_grad=True)
        b = M.tensor([3.0], requires_grad=True)
        log = []

        def queue(cb, M=M):
            if M is ft:
                ft._C._queue_backward_callback(cb)
            else:
                torch.autograd.Variable._execution_engine.queue_callback(cb)

        def hook(g, a=a, b=b, log=log, queue=queue):
            queue(lambda: log.append((a.grad.clone(), b.grad.clone())))

        out = a * 2
        out.register_hook(hook)
        (out.sum() * b).sum().backward()
        res[M] = log
    assert len(res[ft]) == len(res[torch]) == 1
    assert_same(list(res[ft][0]), list(res[torch][0]))
    with pytest.raises(RuntimeError, match="during backward pass"):
        ft._C._queue_backward_callback(lambda: None)


def test_hook_returning_none_keeps_gradient():
    res = {}
    for M in (ft, torch):
        x = M.tensor([1.0, 2.0], requires_grad=True)
        calls = []
        x.register_hook(lambda g: calls.append(1))
        (x.sin() * 3).sum().backward()
        assert calls == [1]
        res[M] = x.grad
    assert_same(res[ft], res[torch])


@pytest.mark.filterwarnings("ignore:The .grad attribute of a Tensor that is not a leaf")
def test_retain_grad_on_non_leaf():
    res = {}
    for M, k in ((ft, 0), (torch, 1)):
        x = pair((3, 4), seed=1)[k].requires_grad_()
        y = x.tanh()
        y.retain_grad()
        z = y * y
        w = z.sum(1)
        w.retain_grad()
        w.sum().backward()
        res[M] = (y.grad, w.grad, x.grad)
        assert z.grad is None and not z.is_leaf and not z.retains_grad
    assert_same(res[ft], res[torch])
    assert res[ft][0] is not None


def test_grad_can_be_set_and_zeroed():
    res = {}
    for M in (ft, torch):
        x = M.tensor([1.0, 2.0], requires_grad=True)
        (x * x).sum().backward()
        x.grad.zero_()
        (x * 3).sum().backward()
        g1 = x.grad.clone()
        x.grad = None
        assert x.grad is None
        x.grad = M.tensor([10.0, 20.0])
        (x * x).sum().backward()
        res[M] = (g1, x.grad)
    assert_same(res[ft], res[torch])


# --------------------------------------------------------------------------------------------
# custom autograd.Function
# --------------------------------------------------------------------------------------------


def _make_functions(M):
    class Square(M.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * x

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return 2 * x * g

    class MulFn(M.autograd.Function):
        @staticmethod
        def forward(ctx, a, b, scale):
            ctx.save_for_backward(a, b)
            ctx.scale = scale
            return a * b * scale

        @staticmethod
        def backward(ctx, g):
            a, b = ctx.saved_tensors
            ga = g * b * ctx.scale if ctx.needs_input_grad[0] else None
            gb = g * a * ctx.scale if ctx.needs_input_grad[1] else None
            ctx.seen = tuple(ctx.needs_input_grad)
            return ga, gb, None

    class SplitFn(M.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2, x.exp()

        @staticmethod
        def backward(ctx, g1, g2):
            return g1 * 2 + g2  # deliberately "wrong" for exp: checks the plumbing only

    return Square, MulFn, SplitFn


FT_FUNCS, TH_FUNCS = _make_functions(ft), _make_functions(torch)


@pytest.mark.parametrize("dtype", FLOATS)
def test_custom_function_square(dtype):
    res = {}
    for M, k, (Square, _, _) in ((ft, 0, FT_FUNCS), (torch, 1, TH_FUNCS)):
        x = pair((3, 4), dtype, seed=1)[k].requires_grad_()
        y = Square.apply(x)
        assert y.requires_grad and not y.is_leaf
        (Square.apply(y.sin()) * 3).sum().backward()
        res[M] = (y, x.grad)
    assert_same(res[ft], res[torch])


@pytest.mark.parametrize("needs", [(True, True), (True, False), (False, True)])
def test_custom_function_two_inputs_needs_input_grad(needs):
    res = {}
    for M, k, (_, MulFn, _) in ((ft, 0, FT_FUNCS), (torch, 1, TH_FUNCS)):
        a = pair((3, 4), "float64", seed=1)[k].requires_grad_(needs[0])
        b = pair((4,), "float64", seed=2)[k].requires_grad_(needs[1])
        out = MulFn.apply(a, b, 1.5)
        g = pair((3, 4), "float64", seed=3)[k]
        out.backward(g)
        res[M] = (out, a.grad, b.grad)
    ours, theirs = res[ft], res[torch]
    assert_same(ours[0], theirs[0])
    for o, t in zip(ours[1:], theirs[1:]):
        assert (o is None) == (t is None)
        if t is not None:
            assert_same(o, t)


def test_custom_function_multiple_outputs():
    res = {}
    for M, k, (_, _, SplitFn) in ((ft, 0, FT_FUNCS), (torch, 1, TH_FUNCS)):
        x = pair((3,), "float64", seed=1)[k].requires_grad_()
        p, q = SplitFn.apply(x)
        (p * 3 + q).sum().backward()
        res[M] = (p, q, x.grad)
    assert_same(res[ft], res[torch])


def test_custom_function_no_grad_outside():
    for M, (Square, _, _) in ((ft, FT_FUNCS), (torch, TH_FUNCS)):
        x = M.tensor([2.0], requires_grad=True)
        with M.no_grad():
            assert not Square.apply(x).requires_grad
        assert not Square.apply(M.tensor([2.0])).requires_grad


# --------------------------------------------------------------------------------------------
# end-to-end
# --------------------------------------------------------------------------------------------


def test_seed_example_logistic_bce():
    x, y = ft.tensor([1.1]), ft.tensor([1.0])
    w = ft.tensor([2.2], requires_grad=True)
    b = ft.tensor([0.0], requires_grad=True)
    z = x * w + b
    a = z.sigmoid()
    loss = -(y * a.log() + (1 - y) * (1 - a).log()).mean()
    loss.backward()

    tx, ty = torch.tensor([1.1]), torch.tensor([1.0])
    tw = torch.tensor([2.2], requires_grad=True)
    tb = torch.tensor([0.0], requires_grad=True)
    ta = torch.sigmoid(tx * tw + tb)
    tloss = torch.nn.functional.binary_cross_entropy(ta, ty)
    tloss.backward()

    assert_same(loss, tloss)
    assert_same(w.grad, tw.grad)
    assert_same(b.grad, tb.grad)
    assert z.grad_fn.name() == "AddBackward0"
    assert a.grad_fn.name() == "SigmoidBackward0"


def _mlp_step(M, params, x, y, lr):
    w1, b1, w2, b2 = params
    h = (x @ w1.t() + b1).relu()
    p = (h @ w2.t() + b2).sigmoid()
    loss = -(y * p.log() + (1 - y) * (1 - p).log()).mean()
    loss.backward()
    with M.no_grad():
        for w in params:
            w -= lr * w.grad
            w.grad = None
    return loss


def _torch_init(seed=0):
    torch.manual_seed(seed)
    l1, l2 = torch.nn.Linear(10, 5), torch.nn.Linear(5, 1)
    ps = [l1.weight, l1.bias, l2.weight, l2.bias]
    return [p.detach().clone().requires_grad_() for p in ps]


def test_mlp_training_matches_torch():
    tparams = _torch_init()
    fparams = [to_ft(p).requires_grad_() for p in tparams]
    g = torch.Generator().manual_seed(1)
    tx = torch.randn(16, 10, generator=g)
    ty = (tx[:, :1] + tx[:, 1:2] > 0).float()
    fx, fy = to_ft(tx), to_ft(ty)
    tl, fl = [], []
    for _ in range(100):
        tl.append(_mlp_step(torch, tparams, tx, ty, 0.5).item())
        fl.append(_mlp_step(ft, fparams, fx, fy, 0.5).item())
    np.testing.assert_allclose(fl, tl, rtol=1e-5, atol=1e-5)
    assert tl[-1] < tl[0]
    for f, t in zip(fparams, tparams):
        assert_same(f, t.detach(), 1e-4, 1e-5)
        assert f.is_leaf and f.requires_grad


def _rss_mb():
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    import os

    return pages * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


def test_memory_flat_over_many_steps():
    params = [to_ft(p).requires_grad_() for p in _torch_init()]
    x = ft.randn(16, 10)
    y = (x[:, :1] > 0).float()
    rss200 = None
    for step in range(1, 2001):
        _mlp_step(ft, params, x, y, 0.05)
        if step == 200:
            gc.collect()
            rss200 = _rss_mb()
    gc.collect()
    growth = _rss_mb() - rss200
    assert growth < 20, f"RSS grew by {growth:.1f} MB between step 200 and step 2000"


def test_memory_flat_with_inplace_ops_on_results_and_views():
    # An in-place op rebases the tensor onto a node whose inputs refer to its old history; the
    # graph must not hold the tensor object itself (a cycle would keep every step alive).
    w = ft.randn(500, 500, requires_grad=True)

    def step():
        y = w * 2
        y += 1
        y[0].mul_(2)
        y.masked_fill_(y > 3, 0.0)
        (y * y).sum().backward()

    for _ in range(5):
        step()
    gc.collect()
    before = _rss_mb()
    for _ in range(60):  # 1 MB per tensor: a leak would grow by well over 100 MB
        step()
    gc.collect()
    growth = _rss_mb() - before
    assert growth < 20, f"RSS grew by {growth:.1f} MB over 60 steps with in-place ops"


@pytest.mark.parametrize("case", ["tril", "triu", "topk", "sort", "zero_", "fill_", "copy_",
                                  "scatter_add_", "index_put_", "index_put_acc"])
def test_more_ops_and_inplace_writes_are_differentiable(case):
    def run(M):
        x = M.tensor([[1.0, 5.0, 3.0], [4.0, 2.0, 6.0]], dtype=M.float64, requires_grad=True)
        s = M.tensor([[0.5, -1.0, 2.0], [1.5, 0.25, -2.0]], dtype=M.float64, requires_grad=True)
        y = x * 1
        if case == "tril":
            out = y.tril(-1 + 1) * s
        elif case == "triu":
            out = y.triu(1) * s
        elif case == "topk":
            out = (x * s).topk(2, dim=1).values
        elif case == "sort":
            out = (x * s).sort(dim=0, descending=True).values * s
        elif case == "zero_":
            y.zero_()
            out = y + x * s
        elif case == "fill_":
            y.fill_(2.5)
            out = y * s + x
        elif case == "copy_":
            y.copy_(s * 3)
            out = y * x
        elif case == "scatter_add_":
            y.scatter_add_(1, M.tensor([[0, 0], [2, 1]]), s[:, :2] * 2)
            out = y * y
        elif case == "index_put_":
            y.index_put_((M.tensor([1, 0]),), s * 2)
            out = y * x
        else:
            y.index_put_((M.tensor([1, 1]),), s[0] * 2, accumulate=True)
            out = y * x
        out.sum().backward()
        return out, x.grad, s.grad

    ours, theirs = run(ft), run(torch)
    for o, t in zip(ours, theirs):
        if t is None:
            assert o is None
        else:
            assert_same(o.detach(), t.detach())


def test_backward_inputs_restricts_accumulation():
    res = {}
    for M in (ft, torch):
        w = M.tensor([1.0, 2.0], requires_grad=True)
        b = M.tensor([3.0], requires_grad=True)
        h = w * b
        h.retain_grad()
        (h * h).sum().backward(inputs=[w])
        res[M] = (w.grad, b.grad, h.grad)
    assert_same(res[ft][0], res[torch][0])
    assert res[ft][1] is None and res[torch][1] is None
    assert_same(res[ft][2], res[torch][2])


def test_second_backward_through_ops_that_saved_nothing_works():
    res = {}
    for M in (ft, torch):
        x = M.tensor([1.0, 2.0], requires_grad=True)
        y = (x + 1).t().reshape(2)
        y.sum().backward()
        y.sum().backward()
        res[M] = x.grad
    assert_same(res[ft], res[torch])


@pytest.mark.parametrize("bounds", ["min", "max", "both", "tensors"])
def test_clamp_gradient_at_the_boundaries(bounds):
    res = {}
    for M in (ft, torch):
        x = M.tensor([-1.0, 0.0, 0.5, 1.0, 2.0], requires_grad=True)
        kw = {"min": {"min": 0.0}, "max": {"max": 1.0}, "both": {"min": 0.0, "max": 1.0},
              "tensors": {"min": M.tensor(0.0), "max": M.tensor(1.0)}}[bounds]
        x.clamp(**kw).sum().backward()
        res[M] = x.grad
    assert_same(res[ft], res[torch])


def test_scatter_gradients():
    res = {}
    for M in (ft, torch):
        x = M.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], requires_grad=True)
        s = M.tensor([[10.0, 20.0]], requires_grad=True)
        y = (x * 1).scatter(1, M.tensor([[2, 0]]), s * 1)
        z = (x * 1).scatter(0, M.tensor([[1, 0, 1]]), 7.0)
        w = x * 1
        w.scatter_(1, M.tensor([[1], [2]]), s.t() * 3)
        (y * y + z * z + w * w).sum().backward()
        res[M] = (x.grad, s.grad)
    assert_same(res[ft], res[torch])


def test_gradient_of_a_reshaped_expanded_view():
    # the view's elements share memory; each must count once
    b, tb = pair((1, 2), "float64", seed=901)
    b.requires_grad_(True)
    tb.requires_grad_(True)
    g, tg = pair((3, 2), "float64", seed=902)
    b.expand(1, 3, 2).reshape(3, 2).backward(g)
    tb.expand(1, 3, 2).reshape(3, 2).backward(tg)
    assert_same(b.grad, tb.grad)
    b.grad = None
    tb.grad = None
    b.repeat(2, 3).mul(2).sum().backward()
    tb.repeat(2, 3).mul(2).sum().backward()
    assert_same(b.grad, tb.grad)


def test_negative_zero_gradients_reach_leaves_through_views():
    w = ft.zeros(2, 3, requires_grad=True)
    tw = torch.zeros(2, 3, requires_grad=True)
    x = ft.tensor([[-1.0, 2.0, -3.0]])
    g = ft.tensor([[1.0, -1.0]])
    (x @ w.t()).backward(g)
    (torch.tensor(x.tolist()) @ tw.t()).backward(torch.tensor(g.tolist()))
    assert w.grad.cpu().numpy().tobytes() == tw.grad.cpu().numpy().tobytes()


def test_tensors_deepcopy_and_pickle():
    import copy
    import pickle

    for dt in (ft.float32, ft.float64, ft.bfloat16, ft.int64, ft.bool):
        t = ft.arange(6).reshape(2, 3).to(dt)
        for c in (copy.deepcopy(t), pickle.loads(pickle.dumps(t))):
            assert c.dtype == t.dtype and c.shape == t.shape
            assert c.tolist() == t.tolist()
            assert not c.storage_offset() and c.data_ptr() != t.data_ptr()
    p = ft.randn(3, requires_grad=True)
    p.grad = ft.ones(3)
    c = copy.deepcopy(p)
    assert c.requires_grad and c.is_leaf and c.grad.tolist() == [1.0, 1.0, 1.0]
    with pytest.raises(RuntimeError, match="graph leaves"):
        copy.deepcopy(p * 2)
