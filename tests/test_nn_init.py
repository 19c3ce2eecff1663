"""``ferrotorch.nn.init`` and every layer's default initialisation against torch's: the same
seed must give the same weights bit for bit (the generators draw the same stream)."""

import warnings

import ferrotorch as ft
import numpy as np
import pytest
import torch
from conftest import to_numpy

FLOATS = ["float32", "float64"]
FT_DT = {"float32": ft.float32, "float64": ft.float64}
TH_DT = {"float32": torch.float32, "float64": torch.float64}
SHAPES = [(7, 5), (64, 3), (4, 3, 2, 2)]


def assert_exact(ours, theirs):
    assert tuple(ours.shape) == tuple(theirs.shape)
    assert str(ours.dtype) == str(theirs.dtype)
    np.testing.assert_array_equal(to_numpy(ours.detach()), to_numpy(theirs.detach()))


def seeded(fn, seed):
    """fn(M) run on both libraries right after manual_seed(seed)."""
    ft.manual_seed(seed)
    ours = fn(ft)
    torch.manual_seed(seed)
    theirs = fn(torch)
    return ours, theirs


INITS = {
    "uniform": lambda M, t: M.nn.init.uniform_(t),
    "uniform_ab": lambda M, t: M.nn.init.uniform_(t, -0.3, 0.7),
    "normal": lambda M, t: M.nn.init.normal_(t),
    "normal_ms": lambda M, t: M.nn.init.normal_(t, mean=1.5, std=0.02),
    "zeros": lambda M, t: M.nn.init.zeros_(t),
    "ones": lambda M, t: M.nn.init.ones_(t),
    "constant": lambda M, t: M.nn.init.constant_(t, 0.25),
    "xavier_uniform": lambda M, t: M.nn.init.xavier_uniform_(t),
    "xavier_uniform_gain": lambda M, t: M.nn.init.xavier_uniform_(
        t, gain=M.nn.init.calculate_gain("tanh")),
    "xavier_normal": lambda M, t: M.nn.init.xavier_normal_(t, gain=0.5),
    "kaiming_uniform": lambda M, t: M.nn.init.kaiming_uniform_(t),
    "kaiming_uniform_sqrt5": lambda M, t: M.nn.init.kaiming_uniform_(t, a=5 ** 0.5),
    "kaiming_uniform_fan_out_relu": lambda M, t: M.nn.init.kaiming_uniform_(
        t, mode="fan_out", nonlinearity="relu"),
    "kaiming_normal": lambda M, t: M.nn.init.kaiming_normal_(t),
    "kaiming_normal_fan_out": lambda M, t: M.nn.init.kaiming_normal_(
        t, a=0.2, mode="fan_out", nonlinearity="leaky_relu"),
    "trunc_normal": lambda M, t: M.nn.init.trunc_normal_(t),
    "trunc_normal_gpt": lambda M, t: M.nn.init.trunc_normal_(t, std=0.02, a=-0.04, b=0.04),
    "trunc_normal_narrow": lambda M, t: M.nn.init.trunc_normal_(t, mean=0.0, std=1.0, a=2.0,
                                                                b=2.5),
    "trunc_normal_window": lambda M, t: M.nn.init.trunc_normal_(t, mean=0.3, std=2.0, a=0.1,
                                                                b=0.6),
}


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("name", list(INITS))
def test_init_matches_torch(name, shape, dtype):
    def run(M):
        t = M.empty(shape, dtype=FT_DT[dtype] if M is ft else TH_DT[dtype])
        out = INITS[name](M, t)
        assert out is t  # in place, returns its argument
        return t

    ours, theirs = seeded(run, 1234)
    assert_exact(ours, theirs)
    # and the generator is left in the same state
    assert_exact(ft.rand(3, dtype=FT_DT[dtype]), torch.rand(3, dtype=TH_DT[dtype]))


@pytest.mark.parametrize("name", ["uniform", "normal", "xavier_uniform", "kaiming_normal",
                                  "trunc_normal"])
def test_init_with_explicit_generator(name):
    fns = {
        "uniform": lambda M, t, g: M.nn.init.uniform_(t, -2, 2, generator=g),
        "normal": lambda M, t, g: M.nn.init.normal_(t, 0, 3, generator=g),
        "xavier_uniform": lambda M, t, g: M.nn.init.xavier_uniform_(t, generator=g),
        "kaiming_normal": lambda M, t, g: M.nn.init.kaiming_normal_(t, generator=g),
        "trunc_normal": lambda M, t, g: M.nn.init.trunc_normal_(t, generator=g),
    }

    def run(M):
        g = M.Generator().manual_seed(77)
        return fns[name](M, M.empty(20, 6), g)

    assert_exact(run(ft), run(torch))


def test_trunc_normal_stays_in_bounds_and_requires_grad_kept():
    ft.manual_seed(0)
    p = ft.nn.Parameter(ft.empty(200, 10))
    ft.nn.init.trunc_normal_(p, std=0.5, a=-0.2, b=0.3)
    values = p.detach().numpy()
    assert values.min() >= -0.2 and values.max() <= 0.3
    assert p.requires_grad and p.is_leaf


def test_eye_matches_torch():
    for shape in [(3, 3), (2, 5), (5, 2)]:
        assert_exact(ft.nn.init.eye_(ft.empty(shape)), torch.nn.init.eye_(torch.empty(shape)))
    with pytest.raises(ValueError, match="Only tensors with 2 dimensions are supported"):
        ft.nn.init.eye_(ft.empty(2, 2, 2))


def test_init_on_parameter_under_grad_mode():
    """Initialising a leaf that requires grad works (no_grad inside) and keeps it a leaf."""
    def run(M):
        p = M.nn.Parameter(M.empty(4, 3))
        M.nn.init.kaiming_uniform_(p, a=5 ** 0.5)
        assert p.is_leaf and p.requires_grad and p.grad_fn is None
        return p

    assert_exact(*seeded(run, 9))


@pytest.mark.parametrize("args", [
    ("linear",), ("conv2d",), ("sigmoid",), ("tanh",), ("relu",), ("leaky_relu",),
    ("leaky_relu", 0.2), ("leaky_relu", 3), ("selu",),
])
def test_calculate_gain_matches_torch(args):
    assert ft.nn.init.calculate_gain(*args) == torch.nn.init.calculate_gain(*args)


def _error(fn):
    with pytest.raises(Exception) as info:
        fn()
    return type(info.value), str(info.value)


@pytest.mark.parametrize("case", ["gain_unknown", "gain_bad_slope", "fan_1d", "bad_mode"])
def test_init_errors_match_torch(case):
    def run(M):
        cases = {
            "gain_unknown": lambda: M.nn.init.calculate_gain("swish"),
            "gain_bad_slope": lambda: M.nn.init.calculate_gain("leaky_relu", "x"),
            "fan_1d": lambda: M.nn.init.xavier_uniform_(M.empty(5)),
            "bad_mode": lambda: M.nn.init.kaiming_uniform_(M.empty(2, 2), mode="fan_avg"),
        }
        return _error(cases[case])

    assert run(ft) == run(torch)


def test_kaiming_zero_element_warns_like_torch():
    for M in (ft, torch):
        with warnings.catch_warnings(record=True) as rec:
            warnings.simplefilter("always")
            M.nn.init.kaiming_uniform_(M.empty(0, 3))
        assert any("zero-element" in str(w.message) for w in rec)


# --------------------------------------------------------------------------------------------
# every layer's default initialisation
# --------------------------------------------------------------------------------------------

LAYERS = {
    "linear": lambda M, dt: M.nn.Linear(7, 4, dtype=dt),
    "linear_nobias": lambda M, dt: M.nn.Linear(3, 9, bias=False, dtype=dt),
    "linear_big": lambda M, dt: M.nn.Linear(64, 48, dtype=dt),
    "embedding": lambda M, dt: M.nn.Embedding(20, 8, dtype=dt),
    "embedding_padding": lambda M, dt: M.nn.Embedding(20, 8, padding_idx=3, dtype=dt),
    "layernorm": lambda M, dt: M.nn.LayerNorm((2, 5), dtype=dt),
    "layernorm_nobias": lambda M, dt: M.nn.LayerNorm(5, bias=False, dtype=dt),
    "mha": lambda M, dt: M.nn.MultiheadAttention(8, 2, dtype=dt),
    "mha_nobias": lambda M, dt: M.nn.MultiheadAttention(8, 4, bias=False, dtype=dt),
    "mha_kdim_vdim_bias_kv": lambda M, dt: M.nn.MultiheadAttention(
        8, 2, kdim=3, vdim=5, add_bias_kv=True, dtype=dt),
    "sequence": lambda M, dt: M.nn.Sequential(
        M.nn.Embedding(10, 6, dtype=dt), M.nn.Linear(6, 6, dtype=dt),
        M.nn.MultiheadAttention(6, 3, batch_first=True, dtype=dt),
        M.nn.LayerNorm(6, dtype=dt), M.nn.Linear(6, 2, dtype=dt)),
}


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("name", list(LAYERS))
def test_layer_default_init_matches_torch(name, dtype):
    def run(M):
        return LAYERS[name](M, FT_DT[dtype] if M is ft else TH_DT[dtype])

    for seed in (0, 123):
        ours, theirs = seeded(run, seed)
        names = [n for n, _ in theirs.named_parameters()]
        assert [n for n, _ in ours.named_parameters()] == names
        for (n, p), tp in zip(ours.named_parameters(), theirs.parameters()):
            assert isinstance(p, ft.nn.Parameter), n
            assert p.requires_grad == tp.requires_grad, n
            assert_exact(p, tp)
        assert_exact(ft.rand(2), torch.rand(2))


def test_reset_parameters_redraws_like_torch():
    def run(M):
        lin = M.nn.Linear(5, 3)
        emb = M.nn.Embedding(6, 2, padding_idx=1)
        lin.reset_parameters()
        emb.reset_parameters()
        return lin.weight, lin.bias, emb.weight

    ours, theirs = seeded(run, 42)
    for o, t in zip(ours, theirs):
        assert_exact(o, t)
