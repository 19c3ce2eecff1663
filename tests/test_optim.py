"""Differential tests of ferrotorch.optim against torch.optim.

The core helper `train(M, name, options, dtype, steps)` builds the same parameters on both sides
(several shapes, contiguous and non-contiguous leaves, two param groups with different lrs),
runs `steps` iterations of backward on the same fixed loss with each library's autograd and
each library's optimizer, and returns the parameters and the optimizer. Parameters and every
state tensor are then compared with torch's within conftest's tolerance table.
"""

import warnings

import ferrotorch as ft
import numpy as np
import pytest
import torch
from conftest import assert_same, pair, to_ft
from ferrotorch import _C

torch.set_num_threads(1)

FLOATS = ["float32", "float64"]
FT_DT = {"float32": ft.float32, "float64": ft.float64}
TH_DT = {"float32": torch.float32, "float64": torch.float64}
# (shape, layout): non-contiguous leaves are updated in place through their views
PARAM_SPECS = [((3, 4), "contiguous"), ((5,), "contiguous"), ((4, 3), "transposed"),
               ((2, 3, 2), "sliced"), ((), "contiguous")]


def M_of(opt):
    return ft if isinstance(opt, ft.optim.Optimizer) else torch


def make_params(M, dtype, seed=0, specs=PARAM_SPECS):
    params = []
    for i, (shape, layout) in enumerate(specs):
        ours, theirs = pair(shape, dtype, layout, seed=seed + i, low=-1, high=1)
        params.append((ours if M is ft else theirs).requires_grad_())
    return params


def loss_of(params):
    """A fixed smooth loss whose gradients differ per element and per parameter."""
    total = 0
    for k, p in enumerate(params):
        total = total + (((p - 0.1 * k) ** 2) * (0.5 + 0.25 * k)).sum() + (p * 3).sin().sum()
    return total


def make_opt(M, name, options, params, lr1=0.05):
    groups = [{"params": params[:2]}, {"params": params[2:], "lr": lr1}]
    return getattr(M.optim, name)(groups, **options)


def train(M, name, options, dtype, steps=20, params=None, opt=None, specs=PARAM_SPECS):
    params = make_params(M, dtype, specs=specs) if params is None else params
    opt = make_opt(M, name, options, params) if opt is None else opt
    for _ in range(steps):
        opt.zero_grad()
        loss_of(params).backward()
        opt.step()
    return params, opt


def detached(ps):
    return [p.detach() for p in ps]


def assert_state_same(ours, theirs):
    """Two optimizers' state dicts agree: groups exactly, state tensors within tolerance."""
    a, b = ours.state_dict(), theirs.state_dict()
    assert a["param_groups"] == b["param_groups"]
    assert sorted(a["state"]) == sorted(b["state"])
    for k, st in b["state"].items():
        assert sorted(a["state"][k]) == sorted(st), f"state keys of param {k}"
        for key, value in st.items():
            assert_same(a["state"][k][key], value)


def snapshot(state_dict):
    """A deep copy of an optimizer state dict of either library."""
    def copy(v):
        if isinstance(v, (ft.Tensor, torch.Tensor)):
            return v.detach().clone()
        if isinstance(v, dict):
            return {k: copy(x) for k, x in v.items()}
        if isinstance(v, list):
            return [copy(x) for x in v]
        return v
    return copy(state_dict)


SGD_OPTIONS = [
    dict(lr=0.01),
    dict(lr=0.02, momentum=0.9),
    dict(lr=0.02, momentum=0.9, dampening=0.5),
    dict(lr=0.02, momentum=0.8, nesterov=True),
    dict(lr=0.02, momentum=0.9, weight_decay=0.1),
    dict(lr=0.02, momentum=0.9, nesterov=True, weight_decay=0.05, maximize=True),
    dict(lr=0.01, weight_decay=0.2, maximize=True),
]
ADAM_OPTIONS = [
    dict(),
    dict(lr=0.01),
    dict(lr=0.01, amsgrad=True),
    dict(lr=0.01, weight_decay=0.1),
    dict(lr=0.01, weight_decay=0.1, amsgrad=True, maximize=True),
    dict(lr=0.02, betas=(0.5, 0.9), eps=1e-6),
    # beta1 < 0.5 takes lerp's other formula (interpolation from the far end)
    dict(lr=0.02, betas=(0.3, 0.8), eps=1e-3, amsgrad=True),
    dict(lr=0.01, maximize=True),
]
CASES = ([("SGD", o) for o in SGD_OPTIONS] + [("Adam", o) for o in ADAM_OPTIONS]
         + [("AdamW", o) for o in ADAM_OPTIONS])
IDS = [f"{n}-{'-'.join(f'{k}={v}' for k, v in o.items()) or 'defaults'}" for n, o in CASES]


# --------------------------------------------------------------------------------------------
# updates
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("name,options", CASES, ids=IDS)
def test_twenty_steps_match_torch(name, options, dtype):
    ours, opt = train(ft, name, options, dtype)
    theirs, topt = train(torch, name, options, dtype)
    assert_same(detached(ours), detached(theirs))
    assert_state_same(opt, topt)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("name,options", [("SGD", dict(lr=0.02, momentum=0.9, fused=True)),
                                          ("Adam", dict(lr=0.01, fused=True)),
                                          ("AdamW", dict(lr=0.01, amsgrad=True, fused=True))])
def test_fused_flag_matches_torch_fused(name, options, dtype):
    # torch's fused CPU kernels, on contiguous parameters only: torch's fused path gives wrong
    # numbers for a sliced (non-dense) view parameter, where its single-tensor path is right
    specs = [s for s in PARAM_SPECS if s[1] == "contiguous"]
    ours, opt = train(ft, name, options, dtype, specs=specs)
    theirs, topt = train(torch, name, options, dtype, specs=specs)
    assert_same(detached(ours), detached(theirs))
    assert_state_same(opt, topt)


@pytest.mark.parametrize("name,options", [("SGD", dict(lr=0.1, momentum=0.9)),
                                          ("Adam", dict(lr=0.1)), ("AdamW", dict(lr=0.1))])
def test_params_without_grad_are_skipped(name, options):
    def run(M):
        params = make_params(M, "float32")
        opt = make_opt(M, name, options, params)
        for _ in range(3):
            opt.zero_grad()
            loss_of(params[:1] + params[2:3]).backward()  # params 1, 3, 4 get no grad
            opt.step()
        return params, opt

    (ours, opt), (theirs, topt) = run(ft), run(torch)
    assert_same(detached(ours), detached(theirs))
    assert_state_same(opt, topt)
    assert sorted(opt.state_dict()["state"]) == [0, 2]


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW"])
def test_closure_runs_with_grad_and_returns_loss(name):
    def run(M):
        params = make_params(M, "float64")
        opt = make_opt(M, name, dict(lr=0.05), params)

        def closure():
            opt.zero_grad()
            loss = loss_of(params)
            loss.backward()
            return loss

        losses = []
        with M.no_grad():  # the closure still records its graph
            for _ in range(5):
                losses.append(opt.step(closure).item())
        return params, losses

    (ours, ol), (theirs, tl) = run(ft), run(torch)
    assert ol == pytest.approx(tl, rel=1e-12)
    assert_same(detached(ours), detached(theirs))


def test_update_does_not_record_graph():
    params = make_params(ft, "float32")
    opt = ft.optim.Adam(params, lr=0.1)
    loss_of(params).backward()
    opt.step()
    assert all(p.is_leaf and p.grad_fn is None and p.requires_grad for p in params)


def test_add_param_group_later_matches_torch():
    def run(M):
        params = make_params(M, "float32")
        opt = M.optim.SGD(params[:2], lr=0.1, momentum=0.5)
        opt.add_param_group({"params": params[2:], "lr": 0.01, "nesterov": True})
        opt.add_param_group({"params": M.zeros(2, requires_grad=True), "momentum": 0.0})
        return train(M, None, None, None, steps=5, params=params, opt=opt)

    (ours, opt), (theirs, topt) = run(ft), run(torch)
    assert_same(detached(ours), detached(theirs))
    assert_state_same(opt, topt)


# --------------------------------------------------------------------------------------------
# state dicts
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("name,options", [("SGD", dict(lr=0.02, momentum=0.9, nesterov=True)),
                                          ("Adam", dict(lr=0.01, amsgrad=True)),
                                          ("AdamW", dict(lr=0.01, weight_decay=0.1))])
def test_state_dict_round_trip_resumes_identically(name, options, dtype):
    params, opt = train(ft, name, options, dtype, steps=10)
    saved = snapshot(opt.state_dict())
    values = [p.detach().clone() for p in params]
    train(ft, name, options, dtype, steps=10, params=params, opt=opt)

    resumed = [v.requires_grad_() for v in values]
    fresh = make_opt(ft, name, dict(lr=123.0), resumed)  # options come from the state dict
    fresh.load_state_dict(saved)
    assert fresh.param_groups[0]["lr"] == options["lr"]
    train(ft, name, options, dtype, steps=10, params=resumed, opt=fresh)

    theirs, topt = train(torch, name, options, dtype, steps=20)
    for a, b in zip(resumed, params):  # bit for bit what the uninterrupted run gave
        assert np.array_equal(a.detach().cpu().numpy(), b.detach().cpu().numpy())
    assert_same(detached(resumed), detached(theirs))
    assert_state_same(fresh, topt)


@pytest.mark.parametrize("params_dtype", FLOATS)
@pytest.mark.parametrize("name,options", [("SGD", dict(lr=0.02, momentum=0.9)),
                                          ("Adam", dict(lr=0.01, amsgrad=True)),
                                          ("AdamW", dict(lr=0.01))])
def test_loads_a_torch_state_dict(name, options, params_dtype):
    # torch trains in float32 for 10 steps; both libraries load that state into parameters of
    # `params_dtype` (state tensors are cast to it, 'step' is kept) and train 10 more steps
    theirs, topt = train(torch, name, options, "float32", steps=10)
    saved = snapshot(topt.state_dict())
    t_params = [p.detach().to(TH_DT[params_dtype]).requires_grad_() for p in theirs]
    f_params = [to_ft(p.detach()).requires_grad_() for p in t_params]
    t_opt = make_opt(torch, name, options, t_params)
    f_opt = make_opt(ft, name, options, f_params)
    t_opt.load_state_dict(saved)
    f_opt.load_state_dict(saved)
    assert_state_same(f_opt, t_opt)
    if name != "SGD":
        step = f_opt.state_dict()["state"][0]["step"]
        assert step.dtype == ft.float32 and step.shape == () and step.item() == 10.0
    train(torch, name, options, None, steps=10, params=t_params, opt=t_opt)
    train(ft, name, options, None, steps=10, params=f_params, opt=f_opt)
    assert_same(detached(f_params), detached(t_params))
    assert_state_same(f_opt, t_opt)


@pytest.mark.parametrize("name,options", [("SGD", dict(momentum=0.9)), ("Adam", {}),
                                          ("AdamW", dict(amsgrad=True))])
def test_state_dict_format_matches_torch(name, options):
    (_, opt), (_, topt) = (train(M, name, options, "float32", steps=2) for M in (ft, torch))
    sd, tsd = opt.state_dict(), topt.state_dict()
    assert list(sd) == list(tsd) == ["state", "param_groups"]
    assert [list(g) for g in sd["param_groups"]] == [list(g) for g in tsd["param_groups"]]
    for k in tsd["state"]:
        assert list(sd["state"][k]) == list(tsd["state"][k])
        if "step" in tsd["state"][k]:
            assert_same(sd["state"][k]["step"], tsd["state"][k]["step"], rtol=0, atol=0)


def test_load_state_dict_validates_groups_like_torch():
    def errors(M):
        params = make_params(M, "float32")
        opt = make_opt(M, "Adam", {}, params)
        one_group = M.optim.Adam(params, lr=0.1).state_dict()
        other_sizes = M.optim.Adam([{"params": params[:1]}, {"params": params[1:]}]).state_dict()
        out = []
        for sd in (one_group, other_sizes):
            with pytest.raises(ValueError) as e:
                opt.load_state_dict(sd)
            out.append(str(e.value))
        return out

    # torch's words; ours go on to name the group counts and sizes
    for ours, theirs in zip(errors(ft), errors(torch)):
        assert ours.startswith(theirs)


# --------------------------------------------------------------------------------------------
# zero_grad, repr, construction and errors
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("set_to_none", [True, False])
def test_zero_grad(set_to_none):
    def run(M):
        params = make_params(M, "float32")
        opt = make_opt(M, "SGD", dict(lr=0.1), params)
        loss_of(params[:3]).backward()
        opt.zero_grad(set_to_none=set_to_none)
        return params

    for ours, theirs in zip(run(ft), run(torch)):
        if theirs.grad is None:
            assert ours.grad is None
        else:
            assert_same(ours.grad, theirs.grad)
            assert ours.grad.requires_grad is False


def test_zero_grad_detaches_a_grad_with_history():
    def run(M):
        p = M.tensor([1.0, 2.0], requires_grad=True)
        opt = M.optim.SGD([p], lr=0.1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about the reference cycle
            (p * p * p).sum().backward(create_graph=True)
        assert p.grad.grad_fn is not None
        opt.zero_grad(set_to_none=False)
        return p

    ours, theirs = run(ft), run(torch)
    assert ours.grad.grad_fn is None and theirs.grad.grad_fn is None
    assert_same(ours.grad, theirs.grad)


@pytest.mark.parametrize("name,options", [("SGD", dict(momentum=0.9, nesterov=True)),
                                          ("Adam", dict(betas=(0.8, 0.99))),
                                          ("AdamW", dict(lr=0.1))])
def test_repr_matches_torch(name, options):
    ours = make_opt(ft, name, options, make_params(ft, "float32"))
    theirs = make_opt(torch, name, options, make_params(torch, "float32"))
    assert repr(ours) == repr(theirs)


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW"])
def test_defaults_match_torch(name):
    ours = getattr(ft.optim, name)([ft.zeros(1, requires_grad=True)])
    theirs = getattr(torch.optim, name)([torch.zeros(1, requires_grad=True)])
    assert ours.defaults == theirs.defaults
    assert ours.param_groups[0].keys() == theirs.param_groups[0].keys()


def _raises_like_torch(build):
    """build(M) raises in both libraries with the same exception type and message."""
    outcome = []
    for M in (ft, torch):
        with pytest.raises(Exception) as e:
            build(M)
        outcome.append((type(e.value), str(e.value)))
    assert outcome[0] == outcome[1]


BAD_CONSTRUCTIONS = {
    "sgd-negative-lr": lambda M, p: M.optim.SGD(p, lr=-0.1),
    "sgd-negative-momentum": lambda M, p: M.optim.SGD(p, momentum=-0.5),
    "sgd-negative-weight-decay": lambda M, p: M.optim.SGD(p, weight_decay=-1e-3),
    "sgd-nesterov-without-momentum": lambda M, p: M.optim.SGD(p, nesterov=True),
    "sgd-nesterov-with-dampening": lambda M, p: M.optim.SGD(p, momentum=0.9, dampening=0.1,
                                                            nesterov=True),
    "adam-negative-lr": lambda M, p: M.optim.Adam(p, lr=-1.0),
    "adam-negative-eps": lambda M, p: M.optim.Adam(p, eps=-1e-8),
    "adam-beta0": lambda M, p: M.optim.Adam(p, betas=(1.0, 0.999)),
    "adam-beta1": lambda M, p: M.optim.Adam(p, betas=(0.9, -0.1)),
    "adam-int-betas": lambda M, p: M.optim.Adam(p, betas=(0, 0.9)),
    "adam-negative-weight-decay": lambda M, p: M.optim.Adam(p, weight_decay=-0.1),
    "adamw-beta1": lambda M, p: M.optim.AdamW(p, betas=(0.9, 1.5)),
    "adam-tensor-lr-not-one-element": lambda M, p: M.optim.Adam(p, lr=M.tensor([0.1, 0.2])),
    "empty-params": lambda M, p: M.optim.SGD([], lr=0.1),
    "params-is-a-tensor": lambda M, p: M.optim.SGD(p[0], lr=0.1),
    "param-not-a-tensor": lambda M, p: M.optim.Adam([p[0], 3]),
    "non-leaf-param": lambda M, p: M.optim.SGD([p[0] * 2], lr=0.1),
    "param-in-two-groups": lambda M, p: M.optim.SGD([{"params": p[:2]}, {"params": p[1:]}]),
    "group-not-a-dict": lambda M, p: M.optim.SGD(p, lr=0.1).add_param_group(p[2:]),
    "group-is-a-set": lambda M, p: M.optim.SGD(p[:1]).add_param_group({"params": {p[1]}}),
    "names-mixed": lambda M, p: M.optim.SGD([("a", p[0]), p[1]]),
}


@pytest.mark.parametrize("case", list(BAD_CONSTRUCTIONS))
def test_errors_match_torch(case):
    _raises_like_torch(lambda M: BAD_CONSTRUCTIONS[case](M, make_params(M, "float32")))


def test_duplicate_param_and_set_warn_like_torch():
    for M in (ft, torch):
        p = M.zeros(2, requires_grad=True)
        with pytest.warns(UserWarning, match="duplicate parameters"):
            M.optim.SGD([p, p], lr=0.1)
        with pytest.warns(FutureWarning, match="ordered collections"):
            M.optim.SGD({p}, lr=0.1)


def test_named_params_are_kept_in_groups_and_state_dict():
    def run(M):
        params = make_params(M, "float32")
        opt = M.optim.AdamW([("w", params[0]), ("b", params[1])], lr=0.1)
        loss_of(params[:2]).backward()
        opt.step()
        return opt

    opt, topt = run(ft), run(torch)
    assert opt.param_groups[0]["param_names"] == ["w", "b"]
    assert_state_same(opt, topt)


def test_state_is_keyed_by_parameter():
    params = make_params(ft, "float32")
    opt = ft.optim.SGD(params, lr=0.1, momentum=0.9)
    loss_of(params).backward()
    opt.step()
    assert set(map(id, opt.state)) == set(map(id, params))
    assert list(opt.state[params[0]]) == ["momentum_buffer"]
    assert np.array_equal(opt.state[params[0]]["momentum_buffer"].cpu().numpy(),
                          params[0].grad.cpu().numpy())


@pytest.mark.parametrize("make", [
    lambda ps: ft.optim.Adam(ps, lr=0.1),
    lambda ps: ft.optim.AdamW(ps, lr=0.1, amsgrad=True),
    lambda ps: ft.optim.SGD(ps, lr=0.1, momentum=0.9),
], ids=["adam", "adamw", "sgd"])
def test_optimizers_take_the_fused_path_for_contiguous_params(make, monkeypatch):
    calls = []
    for name in ("_adam_step", "_sgd_step"):
        real = getattr(_C, name)
        monkeypatch.setattr(_C, name, lambda *a, _real=real: calls.append(1) or _real(*a))
    ps = [ft.randn(3, 2, requires_grad=True), ft.randn(4, requires_grad=True)]
    opt = make(ps)
    (ps[0].sum() + ps[1].pow(2).sum()).backward()
    opt.step()
    assert calls == [1]
