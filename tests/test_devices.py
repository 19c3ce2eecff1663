"""Devices and the torch backend: tensors on "torch:cpu" (torch's CPU kernels behind ferrotorch's
API and tape) agree with the native backend and with torch; moves between devices are
differentiable; mixing devices fails like torch; GPT-2 trains the same on both backends.

The whole differential suite also runs on the torch backend:
`FERROTORCH_TEST_DEVICE=torch:cpu pytest tests/test_autograd.py ...` (see .ci/run). On a
machine where torch sees a GPU the cuda tests at the end run; elsewhere they are skipped with
that reason.
"""

import ferrotorch as ft
import numpy as np
import pytest
import torch
from conftest import DEVICE, to_numpy

TC = "torch:cpu"


def both(shape, seed=0, dtype="float32", requires_grad=False):
    """The same random values as a native tensor, a torch:cpu tensor and a torch tensor."""
    g = np.random.default_rng(seed)
    values = g.standard_normal(shape).astype(dtype)
    native = ft.tensor(values, device="cpu", requires_grad=requires_grad)
    dev = ft.tensor(values, device=TC, requires_grad=requires_grad)
    ref = torch.tensor(values, requires_grad=requires_grad)
    return native, dev, ref


# *** the device API ***

def test_device_objects_and_names():
    d = ft.device(TC)
    assert d.type == TC and d.index is None and str(d) == TC and d == TC
    assert ft.device("cuda:1").index == 1 and str(ft.device("cuda", 1)) == "cuda:1"
    with pytest.raises(RuntimeError, match="Expected one of cpu, torch:cpu, cuda"):
        ft.device("tpu")
    x = ft.ones(2, device=TC)
    assert x.device == ft.device(TC) and str(x.device) == TC and not x.is_cuda
    assert x.cpu().device == ft.device("cpu")
    assert "device='torch:cpu'" in repr(x)


def test_factories_and_like_functions_follow_the_device():
    for make in (lambda **k: ft.zeros(2, 3, **k), lambda **k: ft.ones(2, **k),
                 lambda **k: ft.full((2,), 7.0, **k), lambda **k: ft.arange(5, **k),
                 lambda **k: ft.eye(3, **k), lambda **k: ft.linspace(0, 1, 4, **k),
                 lambda **k: ft.tensor([1, 2], **k), lambda **k: ft.rand(3, **k),
                 lambda **k: ft.randn(3, **k), lambda **k: ft.randint(0, 5, (3,), **k),
                 lambda **k: ft.randperm(4, **k), lambda **k: ft.empty(2, **k)):
        ft.manual_seed(0)
        a = make(device="cpu")
        ft.manual_seed(0)  # the random ones draw the same numbers on both
        b = make(device=TC)
        assert str(b.device) == TC and str(a.device) == "cpu"
        assert_same_values(a, b)
    x = ft.ones(2, 2, device=TC)
    for like in (ft.zeros_like, ft.ones_like, ft.empty_like, ft.rand_like, ft.randn_like):
        assert str(like(x).device) == TC
    assert str(ft.full_like(x, 3).device) == TC
    assert str(ft.zeros_like(x, device="cpu").device) == "cpu"


def assert_same_values(a, b):
    np.testing.assert_array_equal(to_numpy(a), to_numpy(b))


def test_random_draws_are_the_same_on_every_device():
    ft.manual_seed(5)
    a = ft.randn(4, 3)
    ft.manual_seed(5)
    b = ft.randn(4, 3, device=TC)
    assert_same_values(a, b)
    ft.manual_seed(9)
    da = ft.nn.functional.dropout(ft.ones(50, device="cpu"), 0.3)
    ft.manual_seed(9)
    db = ft.nn.functional.dropout(ft.ones(50, device=TC), 0.3)
    assert_same_values(da, db)


def test_default_device():
    assert ft.get_default_device() == ft.device(DEVICE)
    try:
        ft.set_default_device(TC)
        assert str(ft.zeros(2).device) == TC and str(ft.tensor([1.0]).device) == TC
        assert ft.get_default_device() == ft.device(TC)
        assert str(ft.from_numpy(np.zeros(2)).device) == "cpu"  # numpy memory stays native
    finally:
        ft.set_default_device(DEVICE)


def test_to_moves_casts_and_copies():
    x = ft.arange(6.0, device="cpu").reshape(2, 3)
    y = x.to(TC)
    assert str(y.device) == TC and y.dtype == ft.float32
    z = x.to(TC, ft.float64)
    assert z.dtype == ft.float64 and str(z.device) == TC
    assert y.to(TC) is y and y.to(device=TC, dtype=ft.float32) is y
    assert str(x.to(y).device) == TC  # to(other tensor): its device and dtype
    y[0, 0] = 100.0  # a move copies: the source keeps its values
    assert x[0, 0].item() == 0.0
    assert y.cpu()[0, 0].item() == 100.0


def test_moves_are_differentiable():
    x = ft.tensor([1.0, -2.0, 3.0], device="cpu", requires_grad=True)
    y = x.to(TC)
    assert y.grad_fn.name() == "ToCopyBackward0"
    ((y * y).sum() * 3).backward()
    assert str(x.grad.device) == "cpu"
    np.testing.assert_array_equal(to_numpy(x.grad), [6.0, -12.0, 18.0])
    w = ft.ones(3, device=TC, requires_grad=True)
    (w.cpu() * x.detach()).sum().backward()
    assert str(w.grad.device) == TC
    np.testing.assert_array_equal(to_numpy(w.grad), [1.0, -2.0, 3.0])


@pytest.mark.skipif(ft.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu_raises_torchs_error():
    x = ft.ones(2, device="cpu")
    with pytest.raises((RuntimeError, AssertionError)) as ours:
        x.cuda()
    with pytest.raises((RuntimeError, AssertionError)) as theirs:
        torch.ones(2).cuda()
    assert type(ours.value) is type(theirs.value)
    assert not ft.cuda.is_available() and ft.cuda.device_count() == 0


def test_mixing_devices_raises_torchs_error():
    a, b = ft.ones(3, device="cpu"), ft.ones(3, device=TC)
    msg = "Expected all tensors to be on the same device, but found at least two devices"
    for op in (lambda: a + b, lambda: b * a, lambda: a @ b, lambda: ft.cat([a, b]),
               lambda: ft.where(a > 0, a, b)):
        with pytest.raises(RuntimeError, match=msg):
            op()
    # A 0-d tensor on the CPU may join an op on another device, as in torch.
    assert_same_values(b * ft.tensor(2.0, device="cpu"), ft.full((3,), 2.0))
    # copy_ is the op that moves values between devices.
    a.copy_(b * 5)
    assert a.tolist() == [5.0, 5.0, 5.0]


def test_numpy_needs_the_host():
    x = ft.ones(2, device=TC)
    with pytest.raises(TypeError, match="can't convert torch:cpu device type tensor to numpy"):
        x.numpy()
    with pytest.raises(TypeError, match="Use Tensor.cpu"):
        np.asarray(x)
    assert x.tolist() == [1.0, 1.0] and x.sum().item() == 2.0


def test_interop_with_torch_and_dlpack_on_the_device():
    x = ft.arange(6.0, device=TC).reshape(2, 3)
    t = x.to_torch()
    t[0, 0] = 42.0  # the torch tensor holding the elements: shared
    assert x[0, 0].item() == 42.0
    back = torch.from_dlpack(x)
    assert back.data_ptr() == t.data_ptr()
    assert x.__dlpack_device__() == t.__dlpack_device__()


def test_distributed_collectives_on_a_device_tensor(tmp_path):
    import ferrotorch.distributed as dist

    store = torch.distributed.FileStore(str(tmp_path / "store"), 1)
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    try:
        x = ft.ones(3, device=TC) * 2
        v = x._version
        dist.all_reduce(x)
        assert x.tolist() == [2.0, 2.0, 2.0] and x._version > v
    finally:
        dist.destroy_process_group()


# *** ops and training agree across backends ***

@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_block_of_ops_agrees_with_the_native_backend(dtype):
    (a, ad, at), (b, bd, bt) = (both((4, 5), s, dtype, True) for s in (1, 2))

    def f(M, x, y):
        h = M.nn.functional.gelu(x @ y.t()) + x.sum(1, keepdim=True)
        h = M.nn.functional.layer_norm(h, (4,)) * M.softmax(h, -1)
        return (h.log_softmax(-1) * h.tanh()).mean() + h.std() + h[1:, ::2].abs().max()

    outs = [f(ft, a, b), f(ft, ad, bd), f(torch, at, bt)]
    for o in outs:
        o.backward()
    assert str(outs[1].device) == TC
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == "float32" else dict(rtol=1e-10, atol=1e-12)
    for ours in ((outs[0], a.grad, b.grad), (outs[1], ad.grad, bd.grad)):
        np.testing.assert_allclose(to_numpy(ours[0]), to_numpy(outs[2]), **tol)
        np.testing.assert_allclose(to_numpy(ours[1]), to_numpy(at.grad), **tol)
        np.testing.assert_allclose(to_numpy(ours[2]), to_numpy(bt.grad), **tol)


def test_gpt2_trains_the_same_on_both_backends():
    from ferrotorch.gpt2 import GPTModel

    # No key bias: its gradient is rounding noise around 0 (softmax ignores a per-query
    # shift), which AdamW would blow up to full-size steps of either sign.
    cfg = dict(vocab_size=61, context_length=16, emb_dim=32, n_heads=4, n_layers=2,
               drop_rate=0.0, qkv_bias=False)
    runs = {}
    for device in ("cpu", TC):
        ft.manual_seed(3)
        model = GPTModel(cfg).to(device)
        opt = ft.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.1)
        g = ft.Generator().manual_seed(4)
        losses = []
        for _ in range(3):
            x = ft.randint(0, 61, (2, 12), generator=g).to(device)
            y = ft.randint(0, 61, (2, 12), generator=g).to(device)
            logits = model(x)
            loss = ft.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten())
            loss.backward()
            opt.step()
            opt.zero_grad()
            losses.append(loss.item())
        assert all(str(p.device) == device for p in model.parameters())
        runs[device] = (losses, {k: to_numpy(v) for k, v in model.state_dict().items()})
    np.testing.assert_allclose(runs[TC][0], runs["cpu"][0], rtol=1e-5)
    for k, v in runs["cpu"][1].items():
        np.testing.assert_allclose(runs[TC][1][k], v, rtol=1e-4, atol=1e-5, err_msg=k)


def test_gpt2_generation_on_the_torch_backend():
    from ferrotorch.gpt2 import GPTModel, generate_text

    cfg = dict(vocab_size=257, context_length=32, emb_dim=16, n_heads=2, n_layers=1,
               drop_rate=0.0, qkv_bias=False)
    ft.manual_seed(0)
    model = GPTModel(cfg).eval()
    native = generate_text(model, "bytes", "Hi", max_new_tokens=8, top_k=1)
    on_device = generate_text(model.to(TC), "bytes", "Hi", max_new_tokens=8, top_k=1)
    assert native == on_device


def test_gpt2_runner_device_option(tmp_path):
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "ferrotorch.gpt2", "train", "--steps", "2", "--batch-size", "2",
         "--seq-len", "16", "--eval-every", "2", "--eval-batches", "1", "--device", TC,
         "--out", str(tmp_path / "run"), "--no-progress", "--sample-tokens", "4"],
        capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "done: 2 steps" in done.stdout
    bad = subprocess.run([sys.executable, "-m", "ferrotorch.gpt2", "train", "--device", "tpu"],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "--device tpu" in bad.stderr


# *** CUDA: where torch sees a GPU ***

cuda = pytest.mark.skipif(not ft.cuda.is_available(),
                          reason="no CUDA GPU here: the cuda tests run where torch sees one")


@cuda
def test_cuda_ops_and_gradients_agree_with_torch():
    a, b = ft.randn(64, 32, requires_grad=True), ft.randn(32, 16, requires_grad=True)
    ac, bc = (t.detach().cuda().requires_grad_() for t in (a, b))
    assert ac.is_cuda and str(ac.device) == "cuda:0"
    for x, y in ((a, b), (ac, bc)):
        ft.nn.functional.gelu(x @ y).log_softmax(-1).sum().backward()
    np.testing.assert_allclose(to_numpy(ac.grad), to_numpy(a.grad), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(to_numpy(bc.grad), to_numpy(b.grad), rtol=1e-4, atol=1e-5)
    ft.cuda.synchronize()


@cuda
def test_cuda_dropout_draws_on_the_gpu_reproducibly():
    """Dropout masks of CUDA tensors are drawn on the GPU (by torch's generator there, seeded
    from ferrotorch's): the same seed gives the same mask, and the gradient is that mask."""
    x = ft.ones(4000, device="cuda", requires_grad=True)
    ft.manual_seed(1)
    a = ft.nn.functional.dropout(x, 0.3)
    ft.manual_seed(1)
    b = ft.nn.functional.dropout(x, 0.3)
    assert_same_values(a, b)
    values = to_numpy(a)
    assert set(np.unique(values).tolist()) <= {0.0, float(np.float32(1) / np.float32(0.7))}
    assert abs((values == 0).mean() - 0.3) < 0.05
    a.sum().backward()
    np.testing.assert_array_equal(to_numpy(x.grad), values)
    y = ft.ones(7, 9, device="cuda").t()  # a transposed view is filled in its own layout
    assert tuple(ft.nn.functional.dropout(y, 0.5).shape) == (9, 7)


@cuda
def test_cuda_gpt2_step_and_mixing_error():
    from ferrotorch.gpt2 import GPTModel

    cfg = dict(vocab_size=61, context_length=16, emb_dim=32, n_heads=4, n_layers=2,
               drop_rate=0.1, qkv_bias=False)
    model = GPTModel(cfg).cuda()
    x = ft.randint(0, 61, (2, 12)).cuda()
    loss = ft.nn.functional.cross_entropy(model(x).flatten(0, 1), x.flatten())
    loss.backward()
    assert all(p.grad.is_cuda for p in model.parameters())
    with pytest.raises(RuntimeError, match="same device"):
        ft.ones(3, device="cpu").cuda() + ft.ones(3, device="cpu")
