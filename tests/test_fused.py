"""The fused kernels of the Rust core (layer norm, cross-entropy, optimizer steps, erfinv,
random_) against torch: forward, gradients, second derivatives and float64 gradcheck."""

import math

import ferrotorch as ft
import numpy as np
import pytest
import torch
from conftest import assert_same, cuda_differs, to_ft
from ferrotorch import _C

FLOATS = ["float32", "float64"]


def _both(shape, dtype, seed, requires_grad=True, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    t = (torch.randn(*shape, generator=g, dtype=torch.float64) * scale).to(getattr(torch, dtype))
    f = to_ft(t)
    if requires_grad:
        t.requires_grad_(True)
        f.requires_grad_(True)
    return f, t


# *** layer norm ***

@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape,norm", [((4, 8), (8,)), ((2, 3, 16), (16,)), ((2, 3, 4), (3, 4)),
                                        ((5,), (5,)), ((0, 7), (7,))])
@pytest.mark.parametrize("affine", [True, False])
def test_layer_norm_matches_torch(dtype, shape, norm, affine):
    x, xt = _both(shape, dtype, 1)
    w, wt = _both(norm, dtype, 2) if affine else (None, None)
    b, bt = _both(norm, dtype, 3) if affine else (None, None)
    y = _C.layer_norm(x, list(norm), w, b, 1e-5)
    yt = torch.nn.functional.layer_norm(xt, norm, wt, bt, 1e-5)
    assert_same(y, yt)
    g, gt = _both(shape, dtype, 4, requires_grad=False)
    (y * g).sum().backward()
    (yt * gt).sum().backward()
    for ours, theirs in [(x, xt), (w, wt), (b, bt)]:
        if ours is not None:
            assert_same(ours.grad, theirs.grad, rtol=1e-4 if dtype == "float32" else None,
                        atol=1e-5 if dtype == "float32" else None)
    assert y.grad_fn.name() == "NativeLayerNormBackward0"


def test_layer_norm_non_contiguous_input():
    x, xt = _both((6, 4), "float64", 5)
    y = _C.layer_norm(x.t(), [6])
    yt = torch.nn.functional.layer_norm(xt.t(), (6,))
    assert_same(y, yt)
    y.pow(2).sum().backward()
    yt.pow(2).sum().backward()
    assert_same(x.grad, xt.grad)


def test_layer_norm_second_derivative():
    x, xt = _both((3, 5), "float64", 6)
    w, wt = _both((5,), "float64", 7)
    b, bt = _both((5,), "float64", 8)

    def gnorm(M, x, w, b, y):
        (gx, gw) = M.autograd.grad((y * y.sin()).sum(), (x, w), create_graph=True)
        return (gx.pow(2).sum() + gw.pow(2).sum())

    gnorm(ft, x, w, b, _C.layer_norm(x, [5], w, b, 1e-5)).backward()
    gnorm(torch, xt, wt, bt, torch.nn.functional.layer_norm(xt, (5,), wt, bt)).backward()
    for ours, theirs in [(x, xt), (w, wt), (b, bt)]:
        assert_same(ours.grad, theirs.grad, rtol=1e-9, atol=1e-9)


def test_layer_norm_gradcheck():
    x, _ = _both((3, 4), "float64", 9)
    w, _ = _both((4,), "float64", 10)
    b, _ = _both((4,), "float64", 11)
    assert ft.autograd.gradcheck(lambda x, w, b: _C.layer_norm(x, [4], w, b, 1e-5), (x, w, b))


def test_layer_norm_half_types_compute_in_float():
    x, xt = _both((4, 8), "float32", 12, requires_grad=False)
    for dt, tdt in [(ft.bfloat16, torch.bfloat16), (ft.float16, torch.float16)]:
        y = _C.layer_norm(x.to(dt), [8])
        yt = torch.nn.functional.layer_norm(xt.to(tdt), (8,))
        assert y.dtype == dt
        np.testing.assert_allclose(y.float().cpu().numpy(), yt.float().cpu().numpy(), rtol=2e-2, atol=2e-2)


def test_layer_norm_errors():
    x = ft.randn(2, 3)
    with pytest.raises(RuntimeError, match=r"normalized_shape=\[4\].*\[\*, 4\].*\[2, 3\]"):
        _C.layer_norm(x, [4])
    with pytest.raises(RuntimeError, match="weight of shape"):
        _C.layer_norm(x, [3], ft.ones(4))
    with pytest.raises(RuntimeError, match="dtype"):
        _C.layer_norm(x, [3], ft.ones(3, dtype=ft.float64))


# *** cross-entropy ***

CE_CASES = [
    dict(),
    dict(reduction="sum"),
    dict(reduction="none"),
    dict(ignore_index=1),
    dict(label_smoothing=0.1),
    dict(label_smoothing=0.2, reduction="none"),
    dict(weight=True),
    dict(weight=True, label_smoothing=0.3, ignore_index=2),
    dict(weight=True, reduction="sum", ignore_index=0),
]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("case", CE_CASES, ids=str)
def test_cross_entropy_matches_torch(dtype, case):
    n, c = 7, 5
    x, xt = _both((n, c), dtype, 20, scale=2.0)
    tgt = torch.randint(0, c, (n,), generator=torch.Generator().manual_seed(21))
    kw = dict(case)
    wt = w = None
    if kw.pop("weight", False):
        wt = torch.rand(c, generator=torch.Generator().manual_seed(22), dtype=xt.dtype) + 0.5
        w = to_ft(wt)
    loss = _C.cross_entropy(x, to_ft(tgt), w, kw.get("ignore_index", -100),
                            kw.get("label_smoothing", 0.0), kw.get("reduction", "mean"))
    lt = torch.nn.functional.cross_entropy(xt, tgt, weight=wt, **kw)
    assert_same(loss, lt)
    if lt.dim():
        g, gt = _both(tuple(lt.shape), dtype, 23, requires_grad=False)
        (loss * g).sum().backward()
        (lt * gt).sum().backward()
    else:
        loss.backward()
        lt.backward()
    assert_same(x.grad, xt.grad)


def test_cross_entropy_non_contiguous_logits_and_grad_fn():
    x, xt = _both((5, 4), "float64", 24)
    tgt = torch.tensor([0, 3, 1, 2])
    loss = _C.cross_entropy(x.t(), to_ft(tgt))
    lt = torch.nn.functional.cross_entropy(xt.t(), tgt)
    assert_same(loss, lt)
    loss.backward()
    lt.backward()
    assert_same(x.grad, xt.grad)
    assert loss.grad_fn.name() == "NllLossBackward0"


def test_cross_entropy_second_derivative():
    x, xt = _both((4, 6), "float64", 25)
    tgt = torch.tensor([1, 5, 0, 2])
    for M, xx, loss in [
        (ft, x, _C.cross_entropy(x, to_ft(tgt), None, -100, 0.1, "mean")),
        (torch, xt, torch.nn.functional.cross_entropy(xt, tgt, label_smoothing=0.1)),
    ]:
        (gx,) = M.autograd.grad(loss, (xx,), create_graph=True)
        (gx.pow(2).sum() + (gx * xx).sum()).backward()
    assert_same(x.grad, xt.grad, rtol=1e-9, atol=1e-9)


def test_cross_entropy_gradcheck():
    x, _ = _both((3, 4), "float64", 26)
    tgt = ft.tensor([0, 3, 1])
    assert ft.autograd.gradcheck(
        lambda x: _C.cross_entropy(x, tgt, None, -100, 0.2, "mean"), (x,))
    assert ft.autograd.gradcheck(
        lambda x: _C.cross_entropy(x, tgt, None, 3, 0.0, "none"), (x,))


def test_cross_entropy_all_ignored_is_nan_like_torch():
    x, xt = _both((2, 3), "float32", 27)
    tgt = torch.tensor([-100, -100])
    lt = torch.nn.functional.cross_entropy(xt, tgt)
    loss = _C.cross_entropy(x, to_ft(tgt))
    assert np.isnan(loss.item()) and np.isnan(lt.item())


@cuda_differs("CUDA checks the targets' range in the kernel, a device-side assert that poisons the process")
def test_cross_entropy_errors():
    x = ft.randn(3, 4)
    with pytest.raises(IndexError, match="Target 4 is out of bounds"):
        _C.cross_entropy(x, ft.tensor([0, 4, 1]))
    with pytest.raises(IndexError, match="Target -1 is out of bounds"):
        _C.cross_entropy(x, ft.tensor([0, -1, 1]))
    with pytest.raises(ValueError, match="batch_size"):
        _C.cross_entropy(x, ft.tensor([0, 1]))
    with pytest.raises(RuntimeError, match="Long"):
        _C.cross_entropy(x, ft.tensor([0, 1, 2], dtype=ft.int32))
    with pytest.raises(ValueError, match="reduction"):
        _C.cross_entropy(x, ft.tensor([0, 1, 2]), None, -100, 0.0, "avg")


# *** fused optimizer steps ***

def _params(dtype, seed):
    g = torch.Generator().manual_seed(seed)
    shapes = [(7, 3), (5,), (70000,)]  # the last one spans several parallel chunks
    ts = [torch.randn(*s, generator=g, dtype=getattr(torch, dtype)) for s in shapes]
    gs = [torch.randn(*s, generator=g, dtype=getattr(torch, dtype)) for s in shapes]
    return ts, gs


ADAM_CASES = [
    dict(),
    dict(weight_decay=0.1),
    dict(amsgrad=True),
    dict(maximize=True, weight_decay=0.05, betas=(0.8, 0.99), eps=1e-6),
]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("decoupled", [False, True])
@pytest.mark.parametrize("case", ADAM_CASES, ids=str)
def test_adam_step_matches_torch(dtype, decoupled, case):
    ts, gs = _params(dtype, 30)
    ps = [to_ft(t) for t in ts]
    params = [torch.nn.Parameter(t.clone()) for t in ts]
    opt = (torch.optim.AdamW if decoupled else torch.optim.Adam)(params, lr=1e-2, **case)
    amsgrad = case.get("amsgrad", False)
    b1, b2 = case.get("betas", (0.9, 0.999))
    m = [ft.zeros_like(p) for p in ps]
    v = [ft.zeros_like(p) for p in ps]
    mx = [ft.zeros_like(p) for p in ps] if amsgrad else None
    wd = case.get("weight_decay", 1e-2 if decoupled else 0.0)
    for step in range(1, 6):
        grads = [g * step for g in gs]
        for p, g in zip(params, grads):
            p.grad = g.clone()
        opt.step()
        _C._adam_step(ps, [to_ft(g) for g in grads], m, v, mx, [float(step)] * len(ps), 1e-2,
                      b1, b2, case.get("eps", 1e-8), wd, case.get("maximize", False), decoupled)
    for ours, theirs in zip(ps, params):
        assert_same(ours, theirs.detach())
    for ours, p in zip(m, params):
        assert_same(ours, opt.state[p]["exp_avg"])


SGD_CASES = [
    dict(),
    dict(momentum=0.9),
    dict(momentum=0.9, dampening=0.1, weight_decay=0.01),
    dict(momentum=0.8, nesterov=True, maximize=True),
]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("case", SGD_CASES, ids=str)
def test_sgd_step_matches_torch(dtype, case):
    ts, gs = _params(dtype, 31)
    ps = [to_ft(t) for t in ts]
    params = [torch.nn.Parameter(t.clone()) for t in ts]
    opt = torch.optim.SGD(params, lr=0.05, **case)
    bufs = [None] * len(ps)
    for step in range(1, 5):
        grads = [g * step for g in gs]
        for p, g in zip(params, grads):
            p.grad = g.clone()
        opt.step()
        bufs = _C._sgd_step(ps, [to_ft(g) for g in grads], bufs, 0.05, case.get("momentum", 0.0),
                            case.get("dampening", 0.0), case.get("weight_decay", 0.0),
                            case.get("nesterov", False), case.get("maximize", False))
    for ours, theirs in zip(ps, params):
        assert_same(ours, theirs.detach())
    if case.get("momentum"):
        for b, p in zip(bufs, params):
            assert_same(b, opt.state[p]["momentum_buffer"])
    else:
        assert bufs == [None] * len(ps)


def test_optimizer_step_errors():
    p = ft.zeros(3)
    with pytest.raises(RuntimeError, match="gradient of parameter 0 has shape"):
        _C._sgd_step([p], [ft.zeros(4)], [None], 0.1, 0.0, 0.0, 0.0, False, False)
    with pytest.raises(RuntimeError, match="contiguous"):
        _C._sgd_step([ft.zeros(3, 2).t()], [ft.zeros(2, 3)], [None], 0.1, 0.0, 0.0, 0.0, False,
                     False)
    with pytest.raises(ValueError, match="parameters"):
        _C._adam_step([p], [], [], [], None, [], 0.1, 0.9, 0.99, 1e-8, 0.0, False, False)


# *** erfinv and random_ ***

@pytest.mark.parametrize("dtype", FLOATS)
def test_erfinv_matches_torch(dtype):
    g = torch.Generator().manual_seed(40)
    u = (torch.rand(2000, generator=g, dtype=torch.float64) * 2 - 1).to(getattr(torch, dtype))
    u = torch.cat([u, torch.tensor([-1.0, 1.0, 0.0, 0.9999, -0.71, 1.5], dtype=u.dtype)])
    assert_same(to_ft(u).erfinv(), torch.erfinv(u), rtol=1e-5 if dtype == "float32" else 1e-12)
    x, xt = _both((50,), "float64", 41, requires_grad=False)
    x, xt = (x.tanh() * 0.9).requires_grad_(), (xt.tanh() * 0.9).requires_grad_()
    x.erfinv().sum().backward()
    xt.erfinv().sum().backward()
    assert_same(x.grad, xt.grad)
    assert ft.autograd.gradcheck(lambda t: t.erfinv(), (x.detach().requires_grad_(),))


@pytest.mark.parametrize("dtype", ["int64", "int32", "uint8", "float32", "float64", "bfloat16",
                                   "float16", "bool"])
@pytest.mark.parametrize("args", [(), (7,), (-3, 9)], ids=str)
def test_random_matches_torch_stream(dtype, args):
    if dtype in ("uint8", "bool") and args and args[0] < 0:
        args = (0, 2)
    ft.manual_seed(50)
    torch.manual_seed(50)
    try:
        theirs = torch.empty(3, 5, dtype=getattr(torch, dtype)).t().random_(*args)
    except RuntimeError as e:
        with pytest.raises(RuntimeError, match=str(e).split(" for ")[0]):
            ft.empty(3, 5, dtype=getattr(ft, dtype)).t().random_(*args)
        return
    torch.manual_seed(50)
    ours = ft.empty(3, 5, dtype=getattr(ft, dtype)).t().random_(*args)
    theirs = torch.empty(3, 5, dtype=getattr(torch, dtype)).t().random_(*args)
    assert_same(ours, theirs)


def test_random_errors():
    with pytest.raises(RuntimeError, match="from=5 >= to=5"):
        ft.zeros(3).random_(5, 5)


# *** attention ***

def _attn_inputs(dtype, n=3, lq=5, lk=7, e=4, ev=6, seed=60):
    q, qt = _both((n, lq, e), dtype, seed)
    k, kt = _both((n, lk, e), dtype, seed + 1)
    v, vt = _both((n, lk, ev), dtype, seed + 2)
    return (q, k, v), (qt, kt, vt)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("mode", ["plain", "causal", "bool_mask", "float_mask", "scale"])
def test_attention_matches_torch(dtype, mode):
    ours, theirs = _attn_inputs(dtype)
    n, lq, lk = 3, 5, 7
    kw, mask, mask_t = {}, None, None
    if mode == "causal":
        kw["is_causal"] = True
    if mode == "bool_mask":
        mb = torch.rand(1, lq, lk, generator=torch.Generator().manual_seed(61)) > 0.3
        mb[:, :, 0] = True  # no fully masked row: torch's math path would give NaN
        mask_t = mb
        mask = to_ft(torch.zeros(1, lq, lk, dtype=theirs[0].dtype).masked_fill(~mb, -math.inf))
    if mode == "float_mask":
        mask_t = torch.randn(n, lq, lk, generator=torch.Generator().manual_seed(62),
                             dtype=theirs[0].dtype)
        mask = to_ft(mask_t)
    scale = 0.3 if mode == "scale" else 1 / math.sqrt(4)
    if mode == "scale":
        kw["scale"] = 0.3
    out = _C._attention(*ours, None if mask is None else mask.expand(n, lq, lk),
                        kw.get("is_causal", False), scale)
    out_t = torch.nn.functional.scaled_dot_product_attention(*theirs, attn_mask=mask_t, **kw)
    assert_same(out, out_t)
    g, gt = _both((n, lq, 6), dtype, 63, requires_grad=False)
    (out * g).sum().backward()
    (out_t * gt).sum().backward()
    for a, b in zip(ours, theirs):
        assert_same(a.grad, b.grad, rtol=1e-5 if dtype == "float32" else None,
                    atol=1e-5 if dtype == "float32" else None)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("lq,lk", [(40, 37), (19, 45), (64, 64)])
def test_causal_attention_rows_longer_than_a_vector(dtype, lq, lk):
    """Causal rows see 1..lk keys: the softmax runs on the seen part only (in 8-wide chunks and
    a remainder), the unseen part weighs 0; more queries than keys leaves the last rows seeing
    every key."""
    ours, theirs = _attn_inputs(dtype, n=2, lq=lq, lk=lk, e=8, ev=5, seed=64)
    out = _C._attention(*ours, None, True, 0.4)
    out_t = torch.nn.functional.scaled_dot_product_attention(*theirs, is_causal=True, scale=0.4)
    assert_same(out, out_t)
    g, gt = _both((2, lq, 5), dtype, 65, requires_grad=False)
    (out * g).sum().backward()
    (out_t * gt).sum().backward()
    for a, b in zip(ours, theirs):
        assert_same(a.grad, b.grad, rtol=1e-5 if dtype == "float32" else None,
                    atol=1e-5 if dtype == "float32" else None)


def test_attention_second_derivative_and_gradcheck():
    ours, theirs = _attn_inputs("float64", n=2, lq=3, lk=4, e=2, ev=3)
    results = []
    for M, (q, k, v), out in [
        (ft, ours, _C._attention(*ours, None, True, 0.7)),
        (torch, theirs, None),
    ]:
        if out is None:
            with torch.nn.attention.sdpa_kernel(torch.nn.attention.SDPBackend.MATH):
                out = torch.nn.functional.scaled_dot_product_attention(
                    q, k, v, is_causal=True, scale=0.7)
        gs = M.autograd.grad((out * out).sum(), (q, k, v), create_graph=True)
        sum(gg.pow(2).sum() for gg in gs).backward()
        results.append([t.grad for t in (q, k, v)])
    for a, b in zip(*results):
        assert_same(a, b, rtol=1e-9, atol=1e-9)
    q, k, v = (t.detach().requires_grad_() for t in ours)
    assert ft.autograd.gradcheck(lambda q, k, v: _C._attention(q, k, v, None, True, 0.7),
                                 (q, k, v))


def test_attention_fully_masked_row_gives_zeros():
    (q, k, v), _ = _attn_inputs("float32", n=1, lq=2, lk=3)
    mask = ft.zeros(1, 2, 3)
    mask[0, 1] = -math.inf
    out = _C._attention(q, k, v, mask, False, 0.5)
    assert out[0, 1].abs().sum().item() == 0.0
    out.sum().backward()
    assert all(np.isfinite(t.grad.cpu().numpy()).all() for t in (q, k, v))


def test_attention_errors():
    q = ft.randn(2, 3, 4)
    with pytest.raises(RuntimeError, match=r"query \(N, L, E\)"):
        _C._attention(q, ft.randn(2, 3, 5), ft.randn(2, 3, 4), None, False, 1.0)
    with pytest.raises(RuntimeError, match="same floating dtype"):
        _C._attention(q, q.double(), q, None, False, 1.0)


# *** GELU's fused backward ***

@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_fused_backward_matches_torch(dtype, approximate):
    x, xt = _both((70000,), dtype, 70, scale=3.0)
    g, gt = _both((70000,), dtype, 71, requires_grad=False)
    (x.gelu(approximate=approximate) * g).sum().backward()
    (torch.nn.functional.gelu(xt, approximate=approximate) * gt).sum().backward()
    assert_same(x.grad, xt.grad)


@pytest.mark.parametrize("dtype", FLOATS)
def test_attention_with_dropout_multipliers_matches_torch_math(dtype):
    # torch's math path: softmax, then weights * (bernoulli(1-p) / (1-p)), then @ v
    ours, theirs = _attn_inputs(dtype, n=2, lq=4, lk=5, e=3, ev=2, seed=80)
    keep_t = (torch.rand(2, 4, 5, generator=torch.Generator().manual_seed(81)) > 0.3)
    keep_t = keep_t.to(theirs[0].dtype) / 0.7
    out = _C._attention(*ours, None, True, 0.5, to_ft(keep_t))
    qt, kt, vt = theirs
    s = (qt @ kt.transpose(1, 2)) * 0.5
    s = s.masked_fill(torch.ones(4, 5, dtype=torch.bool).triu(1), -math.inf)
    out_t = (s.softmax(-1) * keep_t) @ vt
    assert_same(out, out_t)
    g, gt = _both((2, 4, 2), dtype, 82, requires_grad=False)
    (out * g).sum().backward()
    (out_t * gt).sum().backward()
    for a, b in zip(ours, theirs):
        assert_same(a.grad, b.grad, rtol=1e-5 if dtype == "float32" else None,
                    atol=1e-5 if dtype == "float32" else None)
    if dtype == "float64":
        keep = to_ft(keep_t)
        q, k, v = (t.detach().requires_grad_() for t in ours)
        assert ft.autograd.gradcheck(
            lambda q, k, v: _C._attention(q, k, v, None, True, 0.5, keep), (q, k, v))
        (gq,) = ft.autograd.grad(_C._attention(q, k, v, None, False, 0.5, keep).pow(2).sum(),
                                 (q,), create_graph=True)
        qt2 = qt.detach().requires_grad_()
        out2 = ((qt2 @ kt.detach().transpose(1, 2) * 0.5).softmax(-1) * keep_t) @ vt.detach()
        (gqt,) = torch.autograd.grad(out2.pow(2).sum(), (qt2,), create_graph=True)
        assert_same(gq, gqt)
        gq.sum().backward()
        gqt.sum().backward()
        assert_same(q.grad, qt2.grad)


@cuda_differs("dropout masks on CUDA come from the GPU's generator, as torch's do, not the CPU's that the reference uses")
def test_sdpa_dropout_uses_the_fused_kernel_and_torch_mask(monkeypatch):
    calls = []
    real = _C._attention
    monkeypatch.setattr(_C, "_attention", lambda *a: calls.append(a[-1] is not None) or real(*a))
    (q, k, v), (qt, kt, vt) = _attn_inputs("float32", n=2, lq=5, lk=5, e=4, ev=4, seed=83)
    ft.manual_seed(7)
    torch.manual_seed(7)
    out = ft.nn.functional.scaled_dot_product_attention(q, k, v, dropout_p=0.3, is_causal=True)
    out_t = torch.nn.functional.scaled_dot_product_attention(qt, kt, vt, dropout_p=0.3,
                                                              is_causal=True)
    assert calls == [True]
    assert_same(out, out_t, rtol=1e-5, atol=1e-6)
