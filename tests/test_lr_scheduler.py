"""Differential tests of ferrotorch.optim.lr_scheduler against torch's.

`run(M, make_sched, steps)` builds the same optimizer on both sides (two param groups with
different lrs), steps optimizer and scheduler `steps` times and records every group's lr (and
momentum / beta1) after each step; the sequences must equal torch's.
"""

import math
import warnings

import ferrotorch as ft
import pytest
import torch

torch.set_num_threads(1)

STEPS = 30


def make_opt(M, kind="SGD"):
    groups = [{"params": [M.zeros(2, requires_grad=True)]},
              {"params": [M.zeros(3, requires_grad=True)], "lr": 0.05}]
    if kind == "SGD":
        return M.optim.SGD(groups, lr=0.1, momentum=0.9)
    return getattr(M.optim, kind)(groups, lr=0.1)


def S(M):
    return M.optim.lr_scheduler


def record(opt, sched):
    return {
        "last_lr": list(sched.get_last_lr()),
        "lr": [g["lr"] for g in opt.param_groups],
        "momentum": [g.get("momentum") for g in opt.param_groups],
        "betas": [g.get("betas") for g in opt.param_groups],
    }


def run(M, make_sched, steps=STEPS, kind="SGD", epochs=False):
    opt = make_opt(M, kind)
    sched = make_sched(M, opt)
    seq = [record(opt, sched)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the deprecated epoch argument warns
        for epoch in range(1, steps + 1):
            opt.step()
            sched.step(epoch) if epochs else sched.step()
            seq.append(record(opt, sched))
    return seq, opt, sched


def close(a, b):
    """Nested dicts/lists/tuples of numbers equal up to float rounding (rel 1e-14)."""
    if isinstance(b, dict):
        return isinstance(a, dict) and sorted(a) == sorted(b) and all(
            close(a[k], b[k]) for k in b)
    if isinstance(b, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(map(close, a, b))
    if isinstance(b, float) and isinstance(a, (int, float)):
        return math.isclose(a, b, rel_tol=1e-14, abs_tol=1e-16)
    return a == b


def assert_same_sequence(ours, theirs):
    assert len(ours) == len(theirs)
    for i, (a, b) in enumerate(zip(ours, theirs)):
        assert close(a, b), f"step {i}: {a} != torch {b}"


SCHEDULERS = {
    "StepLR": lambda M, o: S(M).StepLR(o, step_size=3, gamma=0.5),
    "StepLR-default-gamma": lambda M, o: S(M).StepLR(o, 7),
    "LambdaLR": lambda M, o: S(M).LambdaLR(o, lambda e: 0.95 ** e),
    "LambdaLR-per-group": lambda M, o: S(M).LambdaLR(
        o, [lambda e: 1 / (1 + e), lambda e: min(1.0, (e + 1) / 10)]),
    "LinearLR-warmup": lambda M, o: S(M).LinearLR(o, start_factor=0.25, total_iters=8),
    "LinearLR-decay": lambda M, o: S(M).LinearLR(o, start_factor=1.0, end_factor=0.1,
                                                 total_iters=12),
    "LinearLR-defaults": lambda M, o: S(M).LinearLR(o),
    "CosineAnnealingLR": lambda M, o: S(M).CosineAnnealingLR(o, T_max=10, eta_min=0.001),
    "CosineAnnealingLR-long": lambda M, o: S(M).CosineAnnealingLR(o, T_max=40),
    "OneCycleLR-cos": lambda M, o: S(M).OneCycleLR(o, max_lr=[1.0, 0.5], total_steps=STEPS),
    "OneCycleLR-linear": lambda M, o: S(M).OneCycleLR(
        o, max_lr=0.3, epochs=3, steps_per_epoch=10, anneal_strategy="linear", pct_start=0.4,
        base_momentum=0.8, max_momentum=[0.9, 0.99]),
    "OneCycleLR-three-phase": lambda M, o: S(M).OneCycleLR(
        o, max_lr=0.2, total_steps=STEPS, three_phase=True, div_factor=10.0,
        final_div_factor=100.0),
    "OneCycleLR-no-momentum-cycle": lambda M, o: S(M).OneCycleLR(
        o, max_lr=0.2, total_steps=STEPS, cycle_momentum=False),
    "SequentialLR": lambda M, o: S(M).SequentialLR(
        o, [S(M).LinearLR(o, start_factor=0.1, total_iters=5),
            S(M).CosineAnnealingLR(o, T_max=20, eta_min=1e-4)], milestones=[5]),
    "SequentialLR-three": lambda M, o: S(M).SequentialLR(
        o, [S(M).LambdaLR(o, lambda e: (e + 1) / 4), S(M).StepLR(o, step_size=2, gamma=0.7),
            S(M).LinearLR(o, start_factor=0.5, end_factor=0.2, total_iters=6)],
        milestones=[4, 12]),
}


@pytest.mark.parametrize("kind", ["SGD", "Adam"])
@pytest.mark.parametrize("name", list(SCHEDULERS))
def test_lr_sequence_matches_torch(name, kind):
    ours, opt, _ = run(ft, SCHEDULERS[name], kind=kind)
    theirs, topt, _ = run(torch, SCHEDULERS[name], kind=kind)
    assert_same_sequence(ours, theirs)
    assert close({k: v for k, v in opt.param_groups[0].items() if k != "params"},
                 {k: v for k, v in topt.param_groups[0].items() if k != "params"})


@pytest.mark.parametrize("name", ["StepLR", "LinearLR-warmup", "CosineAnnealingLR"])
def test_closed_form_with_epoch_matches_torch(name):
    ours, _, _ = run(ft, SCHEDULERS[name], epochs=True)
    theirs, _, _ = run(torch, SCHEDULERS[name], epochs=True)
    assert_same_sequence(ours, theirs)


def test_epoch_argument_warns_like_torch():
    for M in (ft, torch):
        opt = make_opt(M)
        sched = S(M).StepLR(opt, 2)
        opt.step()
        with pytest.warns(UserWarning, match="epoch parameter in `scheduler.step\\(\\)`"):
            sched.step(3)


@pytest.mark.parametrize("name", list(SCHEDULERS))
def test_state_dict_round_trip_resumes(name):
    """10 steps, save, a fresh optimizer + scheduler load the state, 20 more steps: the
    sequence continues like torch's uninterrupted one."""
    make = SCHEDULERS[name]
    first, opt, sched = run(ft, make, steps=10)
    opt_state, sched_state = opt.state_dict(), sched.state_dict()

    opt2 = make_opt(ft)
    sched2 = make(ft, opt2)
    opt2.load_state_dict(opt_state)
    sched2.load_state_dict(sched_state)
    rest = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(20):
            opt2.step()
            sched2.step()
            rest.append(record(opt2, sched2))
    theirs, _, _ = run(torch, make, steps=30)
    assert_same_sequence(first + rest, theirs)


@pytest.mark.parametrize("name", list(SCHEDULERS))
def test_state_dict_matches_torch(name):
    _, _, sched = run(ft, SCHEDULERS[name], steps=7)
    _, _, tsched = run(torch, SCHEDULERS[name], steps=7)
    ours, theirs = sched.state_dict(), tsched.state_dict()
    assert sorted(ours) == sorted(theirs)
    if "_schedulers" in theirs:
        inner = zip(ours.pop("_schedulers"), theirs.pop("_schedulers"))
        for a, b in inner:
            assert sorted(a) == sorted(b)
            a.pop("lr_lambdas", None), b.pop("lr_lambdas", None)
            assert close(a, b)
    ours.pop("lr_lambdas", None), theirs.pop("lr_lambdas", None)
    assert close(ours, theirs)


def test_lambda_lr_state_dict_saves_callable_objects_only():
    class Decay:
        def __init__(self, rate):
            self.rate = rate

        def __call__(self, epoch):
            return self.rate ** epoch

    states = []
    for M in (ft, torch):
        opt = make_opt(M)
        states.append(S(M).LambdaLR(opt, [Decay(0.9), lambda e: 1.0]).state_dict()["lr_lambdas"])
    assert states[0] == states[1] == [{"rate": 0.9}, None]

    opt = make_opt(ft)
    decay = Decay(0.5)
    sched = S(ft).LambdaLR(opt, [decay, lambda e: 1.0])
    sched.load_state_dict({**sched.state_dict(), "lr_lambdas": [{"rate": 0.25}, None]})
    assert decay.rate == 0.25


def test_construction_sets_initial_lr_and_base_lrs():
    for M in (ft, torch):
        opt = make_opt(M)
        sched = S(M).StepLR(opt, 2)
        assert [g["initial_lr"] for g in opt.param_groups] == [0.1, 0.05]
        assert sched.base_lrs == [0.1, 0.05] and sched.last_epoch == 0
        assert sched._step_count == 1


def test_resuming_needs_initial_lr_like_torch():
    outcome = []
    for M in (ft, torch):
        with pytest.raises(KeyError) as e:
            S(M).StepLR(make_opt(M), 2, last_epoch=4)
        outcome.append(str(e.value))
    assert outcome[0] == outcome[1]


def test_scheduler_step_before_optimizer_step_warns_like_torch():
    for M in (ft, torch):
        opt = make_opt(M)
        sched = S(M).StepLR(opt, 2)
        with pytest.warns(UserWarning, match="before `optimizer.step\\(\\)`"):
            sched.step()
        opt = make_opt(M)
        sched = S(M).StepLR(opt, 2)
        opt.step()
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            sched.step()


def test_one_cycle_cycles_momentum_and_beta1():
    for kind, key in (("SGD", "momentum"), ("Adam", "betas")):
        ours, _, _ = run(ft, SCHEDULERS["OneCycleLR-cos"], kind=kind)
        theirs, _, _ = run(torch, SCHEDULERS["OneCycleLR-cos"], kind=kind)
        values = [r[key][0] if key == "momentum" else r[key][0][0] for r in ours]
        assert values == pytest.approx(
            [r[key][0] if key == "momentum" else r[key][0][0] for r in theirs], rel=1e-14)
        assert values[0] == pytest.approx(0.95) and min(values) == pytest.approx(0.85)


def test_one_cycle_past_total_steps_raises_like_torch():
    outcome = []
    for M in (ft, torch):
        opt = make_opt(M)
        sched = S(M).OneCycleLR(opt, max_lr=0.1, total_steps=3)
        with pytest.raises(ValueError) as e:
            for _ in range(4):
                opt.step()
                sched.step()
        outcome.append(str(e.value))
    assert outcome[0] == outcome[1]


class _Plain:
    """Builds, in either library, an optimizer without momentum or betas."""

    @staticmethod
    def make(M):
        class NoMomentum(M.optim.Optimizer):
            def __init__(self, params):
                super().__init__(params, {"lr": 0.1})

        return NoMomentum([M.zeros(1, requires_grad=True)])


BAD = {
    "not-an-optimizer": lambda M, o: S(M).StepLR(object(), 2),
    "linear-start": lambda M, o: S(M).LinearLR(o, start_factor=0.0),
    "linear-start-above-1": lambda M, o: S(M).LinearLR(o, start_factor=1.5),
    "linear-end": lambda M, o: S(M).LinearLR(o, end_factor=-0.1),
    "lambda-count": lambda M, o: S(M).LambdaLR(o, [lambda e: 1.0]),
    "one-cycle-no-steps": lambda M, o: S(M).OneCycleLR(o, max_lr=0.1),
    "one-cycle-bad-total": lambda M, o: S(M).OneCycleLR(o, max_lr=0.1, total_steps=0),
    "one-cycle-bad-epochs": lambda M, o: S(M).OneCycleLR(o, 0.1, epochs=2.0, steps_per_epoch=3),
    "one-cycle-bad-steps-per-epoch": lambda M, o: S(M).OneCycleLR(o, 0.1, epochs=2,
                                                                  steps_per_epoch=-1),
    "one-cycle-pct": lambda M, o: S(M).OneCycleLR(o, 0.1, total_steps=10, pct_start=1.5),
    "one-cycle-int-pct": lambda M, o: S(M).OneCycleLR(o, 0.1, total_steps=10, pct_start=0),
    "one-cycle-anneal": lambda M, o: S(M).OneCycleLR(o, 0.1, total_steps=10,
                                                     anneal_strategy="exp"),
    "one-cycle-max-lr-count": lambda M, o: S(M).OneCycleLR(o, [0.1, 0.2, 0.3], total_steps=10),
    "one-cycle-no-momentum": lambda M, o: S(M).OneCycleLR(_Plain.make(M), 0.1, total_steps=10),
    "sequential-empty": lambda M, o: S(M).SequentialLR(o, [], milestones=[]),
    "sequential-milestones": lambda M, o: S(M).SequentialLR(
        o, [S(M).StepLR(o, 2), S(M).StepLR(o, 3)], milestones=[2, 4]),
    "sequential-not-a-scheduler": lambda M, o: S(M).SequentialLR(o, [3], milestones=[]),
}


@pytest.mark.parametrize("case", list(BAD))
def test_errors_match_torch(case):
    outcome = []
    for M in (ft, torch):
        with pytest.raises(Exception) as e:
            BAD[case](M, make_opt(M))
        outcome.append((type(e.value), str(e.value)))
    (ours_type, ours), (theirs_type, theirs) = outcome
    # torch's type and words; ours may go on to name the offending value
    assert ours_type is theirs_type and ours.startswith(theirs.rstrip("."))


def test_sequential_rejects_another_optimizers_scheduler():
    for M in (ft, torch):
        opt, other = make_opt(M), make_opt(M)
        with pytest.raises(ValueError, match="same optimizer"):
            S(M).SequentialLR(opt, [S(M).StepLR(opt, 2), S(M).StepLR(other, 2)], [3])


def test_sequential_milestones_switch_schedulers():
    ours, _, sched = run(ft, SCHEDULERS["SequentialLR-three"], steps=15)
    theirs, _, _ = run(torch, SCHEDULERS["SequentialLR-three"], steps=15)
    assert_same_sequence(ours, theirs)
    # at each milestone the next scheduler restarts from its own epoch 0
    assert [s.last_epoch for s in sched._schedulers] == [3, 7, 3]
