"""Differential tests of the losses (``nn.functional`` and the ``nn.loss`` modules) against torch:
forward values, gradients (input, and target where torch has one), reductions, weights,
ignore_index, label smoothing, class-probability targets, K-dim inputs and the errors.
"""

import warnings

import ferrotorch as ft
import numpy as np
import pytest
import torch
from conftest import LAYOUTS, assert_same, cuda_differs, pair, skip_if_cuda_differs, to_ft
from ferrotorch.nn import loss as ft_loss
from test_functional import (
    FLOATS,
    TH_DT,
    C,
    F,
    In,
    assert_like_torch,
    check,
    check_second_derivative,
    same_error,
)

REDUCTIONS = ["none", "mean", "sum"]


def class_targets(shape, n_classes, seed=0, ignore=None):
    """int64 class indices; with `ignore` = (value, fraction), some are set to that value."""
    g = np.random.default_rng(seed)
    t = g.integers(0, n_classes, size=shape)
    if ignore is not None:
        t = np.where(g.random(shape) < ignore[1], ignore[0], t)
    return torch.tensor(t, dtype=torch.int64)


def probs(shape, dim, dtype, seed=0):
    g = np.random.default_rng(seed)
    return torch.tensor(g.random(shape)).softmax(dim).to(TH_DT[dtype])


def class_weight(n, dtype, seed=5):
    return torch.tensor(np.random.default_rng(seed).uniform(0.2, 2.0, n)).to(TH_DT[dtype])


# *** cross_entropy / nll_loss with class indices ***

@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy(reduction, dtype, layout):
    t = class_targets((6,), 5)
    check(lambda M, x: F(M).cross_entropy(x, C(M, t), reduction=reduction), (6, 5),
          dtype=dtype, layout=layout)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("ignore_index", [-100, 2])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.15])
def test_cross_entropy_options(reduction, weighted, ignore_index, label_smoothing):
    t = class_targets((8,), 5, seed=1, ignore=(ignore_index, 0.3))
    for dtype in FLOATS:
        w = class_weight(5, dtype) if weighted else None
        check(lambda M, x: F(M).cross_entropy(
            x, C(M, t), weight=None if w is None else C(M, w), ignore_index=ignore_index,
            reduction=reduction, label_smoothing=label_smoothing), (8, 5), dtype=dtype)


@pytest.mark.parametrize("shape", [(2, 4, 3), (2, 4, 3, 2), (3, 4, 2, 1, 2)])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_cross_entropy_k_dim(shape, reduction, label_smoothing):
    t = class_targets((shape[0], *shape[2:]), shape[1], seed=2, ignore=(-100, 0.2))
    w = class_weight(shape[1], "float64")
    check(lambda M, x: F(M).cross_entropy(x, C(M, t), C(M, w), reduction=reduction,
                                          label_smoothing=label_smoothing), shape)
    check(lambda M, x: F(M).cross_entropy(x, C(M, t), reduction=reduction), shape,
          dtype="float32", layout="transposed")


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_unbatched_input(reduction):
    t = torch.tensor(3)
    check(lambda M, x: F(M).cross_entropy(x, C(M, t), reduction=reduction,
                                          label_smoothing=0.2), (5,))


def test_cross_entropy_uint8_targets_and_all_ignored():
    t = torch.tensor([1, 4, 0], dtype=torch.uint8)
    check(lambda M, x: F(M).cross_entropy(x, C(M, t)), (3, 5))
    ignored = torch.tensor([-100, -100, -100])
    for ls in (0.0, 0.1):
        check(lambda M, x: F(M).cross_entropy(x, C(M, ignored), label_smoothing=ls), (3, 5),
              grad=False)
    check(lambda M, x: F(M).cross_entropy(x, C(M, ignored), reduction="sum"), (3, 5))


def test_cross_entropy_math_matches_torch():
    # the body that a fused kernel will replace, tested on its own
    x, tx = pair((4, 6), "float64")
    t = class_targets((4,), 6, ignore=(1, 0.3))
    got = ft.nn.functional._cross_entropy_math(x, to_ft(t), None, 1, "mean", 0.1)
    assert_same(got, torch.nn.functional.cross_entropy(tx, t, ignore_index=1,
                                                       label_smoothing=0.1))


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
def test_nll_loss(dtype, reduction, weighted):
    t = class_targets((7,), 4, ignore=(-100, 0.3))
    w = class_weight(4, dtype) if weighted else None
    check(lambda M, x: F(M).nll_loss(x, C(M, t), None if w is None else C(M, w),
                                     reduction=reduction), (7, 4), dtype=dtype, layout="sliced")
    k = class_targets((2, 3, 2), 4, seed=3)
    check(lambda M, x: F(M).nll_loss(x, C(M, k), reduction=reduction), (2, 4, 3, 2),
          dtype=dtype)


def test_nll_loss_unbatched():
    check(lambda M, x: F(M).nll_loss(x, C(M, torch.tensor(2))), (5,))
    # torch's backward rejects a (1,) target for a (C,) input, its forward accepts it
    check(lambda M, x: F(M).nll_loss(x, C(M, torch.tensor([2])), reduction="none"), (5,),
          grad=False)


# *** cross_entropy with class probabilities ***

@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
def test_cross_entropy_probability_targets(dtype, reduction, weighted, label_smoothing):
    w = class_weight(4, dtype) if weighted else None

    def fn(M, x, p):
        return F(M).cross_entropy(x, p, None if w is None else C(M, w), reduction=reduction,
                                  label_smoothing=label_smoothing)

    # the target is a leaf too: torch differentiates the loss with respect to it
    check(fn, (5, 4), In((5, 4), low=0, high=1), dtype=dtype)
    check(fn, (2, 4, 3), In((2, 4, 3), low=0, high=1), dtype=dtype, layout="transposed")
    check(fn, (4,), In((4,), low=0, high=1), dtype=dtype)


def test_cross_entropy_probability_targets_empty_batch():
    p = torch.zeros(0, 5)
    check(lambda M, x: F(M).cross_entropy(x, C(M, p)), (0, 5), grad=False)


# *** cross_entropy / nll_loss errors ***

@pytest.mark.parametrize("case", [
    lambda M: F(M).cross_entropy(M.zeros(3, 5), M.tensor([1, 5, 0])),
    lambda M: F(M).cross_entropy(M.zeros(3, 5), M.tensor([1, -1, 0])),
    lambda M: F(M).cross_entropy(M.zeros(2, 5, 3), M.tensor([[1, 2, 7], [0, 0, 0]])),
    lambda M: F(M).nll_loss(M.zeros(3, 5), M.tensor([1, 5, 0])),
])
def test_target_out_of_bounds_names_the_target(case):
    ours, theirs = same_error(case)
    assert isinstance(theirs, str) and theirs.startswith("Target ")
    assert ours.startswith(theirs)
    assert "5 classes" in ours


@pytest.mark.parametrize("case", [
    lambda M: F(M).cross_entropy(M.zeros(3, 5), M.tensor([1.0, 2.0, 0.0])),
    lambda M: F(M).cross_entropy(M.zeros(3, 5), M.zeros(3, 5, dtype=M.int64)),
    lambda M: F(M).cross_entropy(M.zeros(3, 5), M.zeros(3, 5), ignore_index=1),
    lambda M: F(M).cross_entropy(M.zeros(3, 5), M.tensor([1, 2])),
    lambda M: F(M).cross_entropy(M.zeros(3, 5), M.tensor([1, 2, 0]), label_smoothing=1.5),
    lambda M: F(M).cross_entropy(M.zeros(3, 5), M.zeros(3, 5), label_smoothing=1.5),
    lambda M: F(M).cross_entropy(M.zeros(3, 5), M.tensor([1, 2, 0]), weight=M.ones(4)),
    lambda M: F(M).cross_entropy(M.zeros(3, 5), M.zeros(3, 5), weight=M.ones(4)),
    lambda M: F(M).cross_entropy(M.zeros(3, 5), M.tensor([1, 2, 0]),
                                 weight=M.ones(5, dtype=M.float64)),
    lambda M: F(M).cross_entropy(M.zeros(2, 3, 4), M.zeros(2, 5, dtype=M.int64)),
    lambda M: F(M).cross_entropy(M.zeros(3, 5), M.zeros(3, 2, dtype=M.int64)),
    lambda M: F(M).cross_entropy(M.zeros(3, 5), M.tensor([1, 2, 0], dtype=M.int32)),
    lambda M: F(M).cross_entropy(M.zeros(3, 5), M.tensor([1, 2, 0]), reduction="avg"),
    lambda M: F(M).cross_entropy(M.ones(3, 5, dtype=M.int64), M.tensor([1, 2, 0])),
    lambda M: F(M).nll_loss(M.tensor(1.0), M.tensor(0)),
    lambda M: F(M).nll_loss(M.zeros(5), M.tensor([1, 2])),
])
def test_classification_errors(case):
    ours, theirs = same_error(case)
    if "not implemented for" not in theirs:  # torch names an internal kernel there
        assert ours.startswith(theirs.split(" (")[0].rstrip(".")), (ours, theirs)


# *** binary_cross_entropy ***

@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_binary_cross_entropy(reduction, dtype, layout):
    check(lambda M, x, t: F(M).binary_cross_entropy(x, t, reduction=reduction),
          In((4, 5), 0.02, 0.98), In((4, 5), 0, 1), dtype=dtype, layout=layout)


@pytest.mark.parametrize("weight_shape", [(4, 5), (5,), (4, 1)])
def test_binary_cross_entropy_weight(weight_shape):
    w = torch.rand(weight_shape, dtype=torch.float64)
    for reduction in REDUCTIONS:
        check(lambda M, x, t: F(M).binary_cross_entropy(x, t, C(M, w), reduction=reduction),
              In((4, 5), 0.02, 0.98), In((4, 5), 0, 1))


@pytest.mark.parametrize("dtype", FLOATS)
def test_binary_cross_entropy_saturated_inputs_like_torch(dtype):
    # sigmoid outputs round to exactly 0 or 1; torch clamps the logs and keeps the grad finite
    x = torch.tensor([0.0, 1.0, 0.0, 1.0, 0.5, 1e-30], dtype=TH_DT[dtype])
    t = torch.tensor([0.0, 1.0, 1.0, 0.0, 1.0, 1.0], dtype=TH_DT[dtype])
    for reduction in REDUCTIONS:
        xt, xf = x.clone().requires_grad_(), to_ft(x).requires_grad_()
        lt = torch.nn.functional.binary_cross_entropy(xt, t, reduction=reduction)
        lf = ft.nn.functional.binary_cross_entropy(xf, to_ft(t), reduction=reduction)
        assert_same(lf.detach(), lt.detach())
        lt.sum().backward()
        lf.sum().backward()
        assert_same(xf.grad, xt.grad, rtol=1e-5)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_binary_cross_entropy_is_one_node_like_torch(reduction):
    x, t = torch.rand(3, 4) * 0.9 + 0.05, torch.rand(3, 4)
    xt, xf = x.clone().requires_grad_(), to_ft(x).requires_grad_()
    lt = torch.nn.functional.binary_cross_entropy(xt, t, reduction=reduction)
    lf = ft.nn.functional.binary_cross_entropy(xf, to_ft(t), reduction=reduction)
    assert lf.grad_fn.name() == lt.grad_fn.name() == "BinaryCrossEntropyBackward0"


def test_binary_cross_entropy_large_input_in_parallel_chunks():
    # more elements than one thread takes: every chunk computes, and checks, its own range
    g = np.random.default_rng(3)
    w = torch.tensor(g.uniform(0.5, 2, (250,)), dtype=torch.float32)
    for reduction in REDUCTIONS:
        check(lambda M, a, b: F(M).binary_cross_entropy(a, b, C(M, w), reduction=reduction),
              In((300, 250), 0.02, 0.98), In((300, 250), 0, 1), dtype="float32")


@cuda_differs("CUDA checks the values' range in the kernel, a device-side assert that poisons the process")
def test_binary_cross_entropy_large_input_out_of_range_raises():
    # more elements than one thread takes: the chunk holding the bad value reports it
    g = np.random.default_rng(3)
    x = torch.tensor(g.uniform(0.02, 0.98, (300, 250)), dtype=torch.float32)
    t = torch.tensor(g.uniform(0, 1, (300, 250)), dtype=torch.float32)
    for bad, which in ((x, "input"), (t, "target")):
        bad = bad.clone()
        bad[-1, -1] = 1.5
        args = (bad, t) if which == "input" else (x, bad)
        ours, theirs = same_error(lambda M: F(M).binary_cross_entropy(*(C(M, a) for a in args)))
        assert ours == theirs == f"all elements of {which} should be between 0 and 1"


def test_binary_cross_entropy_size_mismatch_explains_the_fix():
    ours, theirs = same_error(lambda M: F(M).binary_cross_entropy(M.tensor([[0.5]]),
                                                                  M.tensor([1.0])))
    expected = ("Using a target size (torch.Size([1])) that is different to the input size "
                "(torch.Size([1, 1])) is deprecated. Please ensure they have the same size.")
    assert theirs == expected
    assert ours.startswith(expected)
    assert "target.view_as(input)" in ours and "torch.tensor([[1.0]])" in ours


# Errors that depend on the values (out of [0, 1], NaN), not on shapes or dtypes.
BCE_VALUE_ERRORS = [
    lambda M: F(M).binary_cross_entropy(M.tensor([1.5]), M.tensor([1.0])),
    lambda M: F(M).binary_cross_entropy(M.tensor([float("nan")]), M.tensor([1.0])),
    lambda M: F(M).binary_cross_entropy(M.tensor([0.5]), M.tensor([1.5])),
]


@pytest.mark.parametrize("case", [
    *BCE_VALUE_ERRORS,
    lambda M: F(M).binary_cross_entropy(M.tensor([0.5]), M.tensor([1.0], dtype=M.float64)),
    lambda M: F(M).binary_cross_entropy(M.tensor([0.5]), M.tensor([1])),
    lambda M: F(M).binary_cross_entropy(M.tensor([0.5]), M.tensor([1.0]), reduction="avg"),
    lambda M: F(M).binary_cross_entropy(M.tensor([0.5, 0.5]), M.tensor([1.0, 0.0]),
                                        weight=M.ones(3)),
])
def test_binary_cross_entropy_errors(case):
    if case in BCE_VALUE_ERRORS:
        skip_if_cuda_differs("CUDA checks the values' range in the kernel, a device-side assert that poisons the process")
    ours, theirs = same_error(case)
    if "broadcast" not in theirs:
        assert ours.startswith(theirs.split(" (")[0])


# *** binary_cross_entropy_with_logits ***

@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_bce_with_logits(reduction, dtype, layout):
    check(lambda M, x, t: F(M).binary_cross_entropy_with_logits(x, t, reduction=reduction),
          In((4, 5), -8, 8), In((4, 5), 0, 1), dtype=dtype, layout=layout)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("pw_shape", [(5,), (4, 5), (4, 1)])
def test_bce_with_logits_weight_and_pos_weight(dtype, pw_shape):
    w = torch.rand(4, 5).to(TH_DT[dtype])
    pw = (torch.rand(pw_shape) * 3).to(TH_DT[dtype])
    for reduction in REDUCTIONS:
        check(lambda M, x, t: F(M).binary_cross_entropy_with_logits(
            x, t, C(M, w), reduction=reduction, pos_weight=C(M, pw)),
            In((4, 5), -5, 5), In((4, 5), 0, 1), dtype=dtype)


@pytest.mark.parametrize("dtype", FLOATS)
def test_bce_with_logits_extreme_and_zero_logits(dtype):
    x = torch.tensor([-200.0, -30.0, 0.0, 0.0, 30.0, 200.0], dtype=TH_DT[dtype])
    t = torch.tensor([1.0, 0.0, 1.0, 0.3, 0.0, 1.0], dtype=TH_DT[dtype])
    pw = torch.full((6,), 2.5, dtype=TH_DT[dtype])
    for pos_weight in (None, pw):
        xt, xf = x.clone().requires_grad_(), to_ft(x).requires_grad_()
        kw = {} if pos_weight is None else {"pos_weight": pos_weight}
        lt = torch.nn.functional.binary_cross_entropy_with_logits(xt, t, reduction="none", **kw)
        kw = {} if pos_weight is None else {"pos_weight": to_ft(pos_weight)}
        lf = ft.nn.functional.binary_cross_entropy_with_logits(xf, to_ft(t), reduction="none",
                                                               **kw)
        assert_same(lf.detach(), lt.detach())
        lt.sum().backward()
        lf.sum().backward()
        assert_same(xf.grad, xt.grad)


def test_bce_with_logits_result_dtype_follows_target_like_torch():
    x32, t64 = torch.randn(3), torch.rand(3, dtype=torch.float64)
    for x, t in ((x32, t64), (x32.double(), t64.float())):
        assert_same(ft.nn.functional.binary_cross_entropy_with_logits(to_ft(x), to_ft(t)),
                    torch.nn.functional.binary_cross_entropy_with_logits(x, t), rtol=1e-6)


@pytest.mark.parametrize("case", [
    lambda M: F(M).binary_cross_entropy_with_logits(M.tensor([[0.5]]), M.tensor([1.0])),
    lambda M: F(M).binary_cross_entropy_with_logits(M.ones(2, 3), M.ones(2, 3),
                                                    pos_weight=M.ones(4)),
    lambda M: F(M).binary_cross_entropy_with_logits(M.ones(2, 3), M.ones(2, 3, dtype=M.int64)),
])
def test_bce_with_logits_errors(case):
    assert_like_torch(*same_error(case))


# *** mse_loss, l1_loss ***

@pytest.mark.parametrize("name", ["mse_loss", "l1_loss"])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_regression_losses(name, reduction, dtype, layout):
    check(lambda M, x, t: getattr(F(M), name)(x, t, reduction=reduction), (4, 5), (4, 5),
          dtype=dtype, layout=layout)


@pytest.mark.parametrize("name", ["mse_loss", "l1_loss"])
def test_regression_losses_broadcast_with_torchs_warning(name):
    with pytest.warns(UserWarning) as theirs:
        check(lambda M, x, t: getattr(F(M), name)(x, t), (3, 1), (3,))
    messages = [str(w.message) for w in theirs]
    assert len(messages) == 2 and messages[0] == messages[1]
    assert "torch.Size([3])" in messages[0] and "broadcasting" in messages[0]


@pytest.mark.parametrize("name", ["mse_loss", "l1_loss"])
def test_regression_losses_weight_and_legacy_arguments(name):
    w = torch.rand(4, 5, dtype=torch.float64)
    for reduction in REDUCTIONS:
        check(lambda M, x, t: getattr(F(M), name)(x, t, reduction=reduction, weight=C(M, w)),
              (4, 5), (4, 5))
    for size_average, reduce in ((False, None), (None, False), (True, True)):
        with pytest.warns(UserWarning, match="size_average and reduce"):
            check(lambda M, x, t: getattr(F(M), name)(x, t, size_average, reduce), (4, 5),
                  (4, 5))


@pytest.mark.parametrize("case", [
    lambda M: F(M).mse_loss(M.ones(3, 2), M.ones(3)),
    lambda M: F(M).mse_loss(M.ones(3), M.ones(3), reduction="bad"),
    lambda M: F(M).l1_loss(M.ones(3), M.ones(3), reduction="bad"),
    lambda M: F(M).mse_loss(M.ones(3), M.ones(3), weight=M.ones(2)),
    lambda M: F(M).mse_loss(M.ones(3, dtype=M.int64), M.ones(3, dtype=M.int64)),
])
def test_regression_errors(case):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours, theirs = same_error(case)
    if "not implemented" not in theirs:  # torch names an internal kernel there
        assert_like_torch(ours, theirs)


# *** loss modules ***

MODULES = {
    "L1Loss": (dict(), (4, 5), (4, 5)),
    "MSELoss": (dict(reduction="sum"), (4, 5), (4, 5)),
    "BCELoss": (dict(weight="w5"), In((4, 5), 0.05, 0.95), In((4, 5), 0, 1)),
    "BCEWithLogitsLoss": (dict(weight="w5", pos_weight="w5", reduction="none"), (4, 5),
                          In((4, 5), 0, 1)),
    "NLLLoss": (dict(weight="w5", ignore_index=1), (6, 5), "targets"),
    "CrossEntropyLoss": (dict(weight="w5", ignore_index=1, label_smoothing=0.1), (6, 5),
                         "targets"),
}


def _module_kwargs(M, kwargs):
    def w5():  # a new tensor each time: torch lists a buffer held twice only once
        return C(M, torch.linspace(0.5, 2.0, 5, dtype=torch.float64))

    return {k: (w5() if v == "w5" else v) for k, v in kwargs.items()}


@pytest.mark.parametrize("name", list(MODULES))
def test_loss_module_matches_torch(name):
    kwargs, x_spec, t_spec = MODULES[name]
    targets = class_targets((6,), 5, ignore=(1, 0.3))
    modules = {M: getattr(torch.nn if M is torch else ft_loss, name)(**_module_kwargs(M, kwargs))
               for M in (torch, ft)}
    assert repr(modules[ft]) == repr(modules[torch])
    for attr in ("reduction", "ignore_index", "label_smoothing"):
        assert getattr(modules[ft], attr, None) == getattr(modules[torch], attr, None)
    assert sorted(dict(modules[ft].named_buffers())) == sorted(
        dict(modules[torch].named_buffers()))
    assert sorted(modules[ft].state_dict()) == sorted(modules[torch].state_dict())
    if t_spec == "targets":
        check(lambda M, x: modules[M](x, C(M, targets)), x_spec)
    else:
        check(lambda M, x, t: modules[M](x, t), x_spec, t_spec)


@pytest.mark.parametrize("name", list(MODULES))
def test_loss_module_defaults_and_legacy_reduction(name):
    for kwargs in (dict(), dict(size_average=False), dict(reduce=False)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs = getattr(torch.nn, name)(**kwargs)
            ours = getattr(ft_loss, name)(**kwargs)
        assert ours.reduction == theirs.reduction
        assert repr(ours) == repr(theirs)
        assert ours.training == theirs.training


# *** gradcheck (float64, small inputs) ***

def _gc(shape, seed=0, low=-2, high=2):
    return pair(shape, "float64", seed=seed, low=low, high=high)[0].requires_grad_()


def test_gradcheck_losses():
    Fn = ft.nn.functional
    x = _gc((3, 4))
    p = _gc((3, 4), seed=1, low=0.1, high=0.9)
    t = ft.tensor([1, 3, -100])
    w = ft.tensor([0.5, 1.0, 1.5, 2.0], dtype=ft.float64)
    assert ft.autograd.gradcheck(
        lambda a: Fn.cross_entropy(a, t, w, label_smoothing=0.2), (x,))
    assert ft.autograd.gradcheck(lambda a, b: Fn.cross_entropy(a, b, reduction="none"), (x, p))
    assert ft.autograd.gradcheck(lambda a: Fn.nll_loss(a, t, w), (x,))
    q = _gc((3, 4), seed=2, low=0.1, high=0.9)
    assert ft.autograd.gradcheck(lambda a, b: Fn.binary_cross_entropy(a, b, w), (p, q))
    assert ft.autograd.gradcheck(lambda a, b: Fn.binary_cross_entropy_with_logits(
        a, b, pos_weight=w), (x, p))
    assert ft.autograd.gradcheck(lambda a, b: Fn.mse_loss(a, b) + Fn.l1_loss(a, b), (x, p))


@pytest.mark.parametrize("name", ["cross_entropy", "cross_entropy_probs", "nll_loss", "bce",
                                  "bce_with_logits", "mse_loss"])
def test_second_derivatives(name):
    t = class_targets((3,), 4, ignore=(-100, 0.3))
    w = class_weight(4, "float64")
    cases = {
        "cross_entropy": (lambda M, x: F(M).cross_entropy(x, C(M, t), C(M, w),
                                                          label_smoothing=0.1), (3, 4)),
        "cross_entropy_probs": (lambda M, x, p: F(M).cross_entropy(x, p, reduction="none"),
                                (3, 4), In((3, 4), 0, 1)),
        "nll_loss": (lambda M, x: F(M).nll_loss(x.tanh(), C(M, t)), (3, 4)),
        "bce": (lambda M, x, y: F(M).binary_cross_entropy(x, y), In((3, 4), 0.1, 0.9),
                In((3, 4), 0, 1)),
        "bce_with_logits": (lambda M, x, y: F(M).binary_cross_entropy_with_logits(
            x, y, pos_weight=C(M, w)), (3, 4), In((3, 4), 0, 1)),
        "mse_loss": (lambda M, x, y: F(M).mse_loss(x, y) + F(M).l1_loss(x, y), (3, 4), (3, 4)),
    }
    fn, *specs = cases[name]
    check_second_derivative(fn, *specs)
