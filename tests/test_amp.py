"""Autocast (automatic mixed precision) against torch.autocast: which ops cast to the lower
precision dtype, which run in float32, the values, and the gradients that come back to float32
parameters. Runs on the test device (native CPU by default; torch:cpu and CUDA in their passes),
with torch's reference on the matching torch device under torch.autocast."""

import sys
import threading
import warnings
from pathlib import Path

import ferrotorch as ft
import numpy as np
import pytest
import torch
from conftest import DEVICE, ON_CUDA, to_numpy

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benches"))
from gpt_bench_model import build  # noqa: E402

KIND = "cuda" if ON_CUDA else "cpu"  # autocast's device type for the test device
TORCH_DEVICE = "cuda" if ON_CUDA else "cpu"
LOW = ["bfloat16", "float16"]


def both(shape, seed, dtype="float32"):
    """The same random values as a ferrotorch tensor on DEVICE and a torch tensor."""
    values = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    ours = ft.tensor(values, device=DEVICE).to(getattr(ft, dtype))
    theirs = torch.tensor(values, device=TORCH_DEVICE).to(getattr(torch, dtype))
    return ours, theirs


def close(ours, theirs, rtol=2e-2, atol=2e-2):
    """Same dtype; values within lower precision rounding (both compute in it)."""
    assert str(ours.dtype) == str(theirs.dtype), f"dtype {ours.dtype} != torch {theirs.dtype}"
    assert tuple(ours.shape) == tuple(theirs.shape)
    np.testing.assert_allclose(to_numpy(ours), to_numpy(theirs), rtol=rtol, atol=atol)


def targets(M):
    dev = DEVICE if M is ft else TORCH_DEVICE
    return M.tensor([0, 3, 1, 2], device=dev)


# name -> fn(M, F, tensors): the op as written in a torch script.
OPS = {
    "matmul": lambda M, F, a, b, c: a @ b,
    "mm": lambda M, F, a, b, c: M.mm(a, b),
    "bmm": lambda M, F, a, b, c: M.bmm(a.unsqueeze(0), b.unsqueeze(0)),
    "linear": lambda M, F, a, b, c: F.linear(a, b.t(), c[0]),
    "einsum": lambda M, F, a, b, c: M.einsum("ij,jk->ik", a, b),
    "sdpa causal": lambda M, F, a, b, c: F.scaled_dot_product_attention(
        a[None], b.t()[None], c[None], is_causal=True),
    "layer_norm f32": lambda M, F, a, b, c: F.layer_norm(a, (4,)),
    "layer_norm of a product": lambda M, F, a, b, c: F.layer_norm(a @ b, (4,)),
    "softmax of a product": lambda M, F, a, b, c: (a @ b).softmax(-1),
    "log_softmax of a product": lambda M, F, a, b, c: (a @ b).log_softmax(-1),
    "gelu of a product": lambda M, F, a, b, c: F.gelu(a @ b, approximate="tanh"),
    "residual add": lambda M, F, a, b, c: a + a @ b,
    "cross_entropy": lambda M, F, a, b, c: F.cross_entropy(a @ b, targets(M)),
    "nll_loss": lambda M, F, a, b, c: F.nll_loss((a @ b).log_softmax(-1), targets(M)),
    "mse_loss": lambda M, F, a, b, c: F.mse_loss(a @ b, c),
    "l1_loss": lambda M, F, a, b, c: F.l1_loss(a @ b, c),
    "bce_with_logits": lambda M, F, a, b, c: F.binary_cross_entropy_with_logits(a @ b, c.sigmoid()),
    "float64 matmul": lambda M, F, a, b, c: a.double() @ b.double(),
}


@pytest.mark.parametrize("dtype", LOW)
@pytest.mark.parametrize("op", list(OPS))
def test_ops_cast_like_torch_autocast(op, dtype):
    (a, ta), (b, tb), (c, tc) = both((4, 4), 1), both((4, 4), 2), both((4, 4), 3)
    with ft.autocast(KIND, dtype=getattr(ft, dtype)):
        ours = OPS[op](ft, ft.nn.functional, a, b, c)
    with torch.autocast(KIND, dtype=getattr(torch, dtype)):
        theirs = OPS[op](torch, torch.nn.functional, ta, tb, tc)
    close(ours, theirs)


@pytest.mark.parametrize("dtype", LOW)
def test_gpt_step_under_autocast_matches_torch(dtype):
    """GPT-2 (small config) forward and loss under autocast, backward outside, as in a mixed
    precision training loop: the same loss, float32 gradients of the same values."""
    cfg = dict(vocab_size=97, context_length=16, emb_dim=32, n_heads=4, n_layers=2,
               drop_rate=0.0, qkv_bias=True)
    theirs = build(torch)(cfg).to(TORCH_DEVICE)
    ours = build(ft)(cfg)
    ours.load_state_dict({k: ft.tensor(v.detach().cpu().numpy())
                          for k, v in theirs.state_dict().items()})
    ours = ours.to(DEVICE)
    tokens = np.random.default_rng(0).integers(0, 97, (2, 13))
    losses = {}
    for M, model, dev in ((ft, ours, DEVICE), (torch, theirs, TORCH_DEVICE)):
        x = M.tensor(tokens[:, :-1], device=dev)
        y = M.tensor(tokens[:, 1:], device=dev)
        with M.autocast(KIND, dtype=getattr(M, dtype)):
            logits = model(x)
            loss = M.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten())
        assert str(logits.dtype) == f"torch.{dtype}" and str(loss.dtype) == "torch.float32"
        loss.backward()
        losses[M] = loss
    close(losses[ft], losses[torch], rtol=1e-2, atol=1e-2)
    grads = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        assert str(p.grad.dtype) == "torch.float32", name
        g, tg = to_numpy(p.grad), to_numpy(grads[name].grad)
        # lower precision rounding in both: compared relative to the gradient's size
        assert np.abs(g - tg).max() <= 0.05 * np.abs(tg).max() + 1e-4, name


def test_regions_nest_restore_and_decorate():
    assert not ft.is_autocast_enabled(KIND)
    assert ft.get_autocast_dtype("cpu") == ft.bfloat16 and ft.get_autocast_dtype("cuda") == ft.float16
    assert str(ft.get_autocast_dtype("cpu")) == str(torch.get_autocast_dtype("cpu"))
    a, _ = both((3, 3), 4)
    with ft.autocast(KIND):
        assert ft.is_autocast_enabled(KIND)
        with ft.autocast(KIND, enabled=False):
            assert not ft.is_autocast_enabled(KIND) and (a @ a).dtype == ft.float32
        assert ft.is_autocast_enabled(KIND)
        assert (a @ a).dtype == ft.get_autocast_dtype(KIND)
    assert not ft.is_autocast_enabled(KIND) and (a @ a).dtype == ft.float32

    @ft.autocast(KIND, dtype=ft.bfloat16)
    def product(x):
        return x @ x

    assert product(a).dtype == ft.bfloat16 and not ft.is_autocast_enabled(KIND)
    with pytest.raises(RuntimeError):
        product(ft.ones(2, 3))  # an error inside leaves the region closed
    assert not ft.is_autocast_enabled(KIND)


def test_errors_and_unsupported_dtype_like_torch():
    with pytest.raises(RuntimeError, match="tpu"):
        ft.autocast("tpu")
    with pytest.raises(RuntimeError, match="tpu"):
        torch.autocast("tpu")
    for M in (ft, torch):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with M.autocast("cpu", dtype=M.float64):
                assert not M.is_autocast_enabled("cpu")
        assert any(issubclass(w.category, UserWarning) and "Disabling autocast" in str(w.message)
                   for w in caught), M


def test_backward_inside_the_region_gives_the_same_gradients():
    a, _ = both((4, 4), 5)
    grads = []
    for inside in (False, True):
        w = ft.randn(4, 4, device=DEVICE, generator=ft.Generator().manual_seed(0)).requires_grad_()
        with ft.autocast(KIND):
            loss = (a @ w).float().pow(2).sum()
            if inside:
                loss.backward()
        if not inside:
            loss.backward()
        assert w.grad.dtype == ft.float32
        grads.append(to_numpy(w.grad))
    np.testing.assert_array_equal(grads[0], grads[1])


def test_regions_are_per_thread():
    seen = []
    with ft.autocast(KIND):
        t = threading.Thread(target=lambda: seen.append(ft.is_autocast_enabled(KIND)))
        t.start()
        t.join()
    assert seen == [False]


@pytest.mark.skipif(not ON_CUDA, reason="torch refuses binary_cross_entropy under CUDA autocast "
                                        "only; the CPU computes it in float32")
def test_binary_cross_entropy_is_refused_on_gpu_like_torch():
    p, tp = both((4,), 6)
    for M, x in ((ft, p), (torch, tp)):
        with M.autocast("cuda"), pytest.raises(RuntimeError, match="unsafe to autocast"):
            M.nn.functional.binary_cross_entropy(x.sigmoid(), x.sigmoid())


def test_attention_with_dropout_under_autocast():
    """The dropout path of attention (the fused kernel with dropout multipliers) in lower
    precision: a half dtype output, float32 gradients for float32 inputs, the same kept
    positions as without autocast (the same seed draws the same mask)."""
    q, _ = both((2, 3, 5, 8), 7)
    q.requires_grad_()
    outs = []
    for on in (True, False):
        ft.manual_seed(11)
        with ft.autocast(KIND, enabled=on):
            out = ft.nn.functional.scaled_dot_product_attention(q, q, q, dropout_p=0.3,
                                                                is_causal=True)
        outs.append(out)
    assert outs[0].dtype == ft.get_autocast_dtype(KIND) and outs[1].dtype == ft.float32
    outs[0].float().sum().backward()
    assert q.grad.dtype == ft.float32 and np.isfinite(to_numpy(q.grad)).all()
    np.testing.assert_allclose(to_numpy(outs[0]), to_numpy(outs[1]), rtol=5e-2, atol=5e-2)
