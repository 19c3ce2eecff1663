"""Misuse: every invalid call raises the exception type torch raises (torch is run in the test to
find it), never a Rust panic, and ferrotorch's message names the offending shapes or values.
Edge inputs (NaN, inf, zero-size tensors) give torch's values where torch gives values."""

import subprocess
import sys

import ferrotorch as ft
import numpy as np
import pytest
import torch
from conftest import assert_same, dtype_name

torch.set_num_threads(1)

nan, inf = float("nan"), float("inf")


def _raised(fn, M):
    try:
        fn(M)
    except BaseException as e:  # noqa: BLE001  (a PanicException is a BaseException)
        return e
    return None


def assert_raises_like(fn, *needles):
    """fn(torch) raises; fn(ferrotorch) raises the same type (or a subclass), is not a Rust panic,
    and its message contains every needle (a needle may be a tuple of alternatives)."""
    theirs = _raised(fn, torch)
    assert theirs is not None, "torch does not raise here: the test case is wrong"
    ours = _raised(fn, ft)
    assert ours is not None, (
        f"ferrotorch does not raise; torch raises {type(theirs).__name__}: {theirs}")
    assert type(ours).__name__ != "PanicException", f"ferrotorch panicked: {ours}"
    assert isinstance(ours, type(theirs)), (
        f"ferrotorch raises {type(ours).__name__}: {ours}\n"
        f"torch raises      {type(theirs).__name__}: {theirs}")
    msg = str(ours)
    for needle in needles:
        alts = needle if isinstance(needle, tuple) else (needle,)
        assert any(a in msg for a in alts), f"message {msg!r} does not mention {alts}"


def assert_same_outcome(fn, compare=assert_same):
    """torch raises -> ferrotorch raises alike; torch returns a value -> ferrotorch returns it."""
    try:
        theirs = fn(torch)
    except BaseException:  # noqa: BLE001
        assert_raises_like(fn)
        return
    try:
        ours = fn(ft)
    except BaseException as e:  # noqa: BLE001
        pytest.fail(f"ferrotorch raises {type(e).__name__}: {e}; torch returns {theirs!r}")
    compare(ours, theirs)


def _seeded(fill):
    def fn(M):
        M.manual_seed(0)
        return fill(M)
    return fn


# *** the misuse table: (call, needles in ferrotorch's message) ***

CASES = {
    # binary ops / broadcasting
    "add_shape": (lambda M: M.zeros(2, 3) + M.zeros(4, 5), "[2, 3]", "[4, 5]"),
    "mul_shape": (lambda M: M.zeros(2, 3) * M.zeros(2, 4), "3", "4"),
    "sub_broadcast_3d": (lambda M: M.zeros(3, 1, 4) - M.zeros(2, 5), "4", "5"),
    "eq_shape": (lambda M: M.zeros(2, 3) == M.zeros(3, 2), "2", "3"),
    "where_shape": (lambda M: M.where(M.zeros(2, dtype=M.bool), M.zeros(3), M.zeros(4)), "2", "3"),
    "masked_fill_shape": (lambda M: M.zeros(2, 3).masked_fill(M.zeros(4, dtype=M.bool), 1.0), "3", "4"),
    "inplace_broadcast_out": (lambda M: M.zeros(3).add_(M.zeros(2, 3)), "[3]", "[2, 3]"),
    "copy_shape": (lambda M: M.zeros(3).copy_(M.zeros(4)), "3", "4"),
    "setitem_shape": (lambda M: M.zeros(3).__setitem__(slice(None), M.zeros(4)), "3", "4"),
    # matmul family
    "matmul_shape": (lambda M: M.zeros(2, 3) @ M.zeros(4, 5), "2x3", "4x5"),
    "mm_shape": (lambda M: M.zeros(2, 3).mm(M.zeros(4, 5)), "2x3", "4x5"),
    "bmm_shape": (lambda M: M.zeros(2, 2, 3).bmm(M.zeros(2, 4, 5)), ("2x3", "[2, 3]"), ("4x5", "[2, 4]")),
    "matmul_batched_shape": (lambda M: M.zeros(2, 2, 3) @ M.zeros(2, 4, 5), "3", "4"),
    "matmul_1d_len": (lambda M: M.zeros(3) @ M.zeros(4), "3", "4"),
    "matmul_mv_len": (lambda M: M.zeros(2, 3) @ M.zeros(4), ("2x3", "[2, 3]"), "4"),
    "mm_1d": (lambda M: M.zeros(3).mm(M.zeros(3, 3)), ("1-D", "1D")),
    "dot_len": (lambda M: M.zeros(3).dot(M.zeros(4)), "[3]", "[4]"),
    "outer_2d": (lambda M: M.zeros(2, 3).outer(M.zeros(3)), ("2-D", "2D", "[2, 3]")),
    # cat / stack
    "cat_shape": (lambda M: M.cat([M.zeros(2, 3), M.zeros(2, 4)]), "3", "4"),
    "cat_bad_dim": (lambda M: M.cat([M.zeros(2, 3), M.zeros(2, 3)], dim=2), "got 2"),
    "cat_empty_list": (lambda M: M.cat([]), "empty"),
    "cat_rank_mismatch": (lambda M: M.cat([M.zeros(2, 3), M.zeros(3)]), ),
    "stack_shape": (lambda M: M.stack([M.zeros(2, 3), M.zeros(3, 2)]), "[2, 3]", "[3, 2]"),
    "stack_empty": (lambda M: M.stack([]), "empty"),
    "stack_bad_dim": (lambda M: M.stack([M.zeros(2), M.zeros(2)], dim=3), "3"),
    # view / reshape / expand
    "view_numel": (lambda M: M.zeros(2, 3).view(4, 2), "[4, 2]", "6"),
    "view_two_inferred": (lambda M: M.zeros(2, 3).view(-1, -1), "inferred"),
    "reshape_numel": (lambda M: M.zeros(2, 3).reshape(7), "[7]", "6"),
    "reshape_inferred_bad": (lambda M: M.zeros(2, 3).reshape(-1, 4), "[-1, 4]", "6"),
    "view_transposed": (lambda M: M.zeros(2, 3).t().view(6), "reshape"),
    "view_transposed_3d": (lambda M: M.zeros(2, 3, 4).transpose(0, 2).view(24), "reshape"),
    "expand_size": (lambda M: M.zeros(2, 3).expand(2, 4), "[2, 4]", "[2, 3]"),
    "expand_fewer_dims": (lambda M: M.zeros(2, 3).expand(3), "[3]", "[2, 3]"),
    "broadcast_to": (lambda M: M.zeros(2, 3).broadcast_to((3, 3)), "[3, 3]", "[2, 3]"),
    "unflatten_sizes": (lambda M: M.zeros(6).unflatten(0, (4, 2)), "[4, 2]", "6"),
    "view_float_size": (lambda M: M.zeros(6).view(2.0, 3), "float"),
    "as_strided_oob": (lambda M: M.zeros(4).as_strided((3,), (2,)), "[3]", "[2]"),
    "repeat_fewer_dims": (lambda M: M.zeros(2, 3).repeat(2), ),
    # bad dims
    "sum_dim": (lambda M: M.zeros(2, 3).sum(dim=5), "[-2, 1]", "5"),
    "mean_dim": (lambda M: M.zeros(2, 3).mean(dim=-3), "[-2, 1]", "-3"),
    "softmax_dim": (lambda M: M.zeros(2, 3).softmax(dim=5), "[-2, 1]", "5"),
    "transpose_dim": (lambda M: M.zeros(2, 3).transpose(0, 5), "[-2, 1]", "5"),
    "unsqueeze_dim": (lambda M: M.zeros(2, 3).unsqueeze(4), "[-3, 2]", "4"),
    "cumsum_dim": (lambda M: M.zeros(2, 3).cumsum(-3), "[-2, 1]", "-3"),
    "size_dim": (lambda M: M.zeros(2, 3).size(5), "5"),
    "argmax_dim": (lambda M: M.zeros(2, 3).argmax(dim=2), "[-2, 1]", "2"),
    "select_dim": (lambda M: M.zeros(2, 3).select(2, 0), "[-2, 1]", "2"),
    "squeeze_dim": (lambda M: M.zeros(2, 3).squeeze(3), "3"),
    "sort_dim": (lambda M: M.zeros(2, 3).sort(dim=3), "3"),
    "logsumexp_dim": (lambda M: M.zeros(2, 3).logsumexp(4), "4"),
    "unbind_dim": (lambda M: M.zeros(2, 3).unbind(2), "2"),
    "movedim_dim": (lambda M: M.zeros(2, 3).movedim(0, 4), "4"),
    "topk_dim": (lambda M: M.zeros(2, 3).topk(1, dim=5), "5"),
    "gather_dim": (lambda M: M.zeros(2, 3).gather(4, M.zeros(2, 3, dtype=M.int64)), "4"),
    "permute_duplicate": (lambda M: M.zeros(2, 3).permute(0, 0), "duplicate"),
    "permute_len": (lambda M: M.zeros(2, 3).permute(0), ),
    "flatten_order": (lambda M: M.zeros(2, 3).flatten(1, 0), "start_dim"),
    "t_3d": (lambda M: M.zeros(2, 3, 4).t(), ("3D", "3-D")),
    "tril_1d": (lambda M: M.zeros(3).tril(), "2"),
    # out-of-range indices
    "index_int": (lambda M: M.zeros(2, 3)[5], "5", "2"),
    "index_int_negative": (lambda M: M.zeros(2, 3)[-3], "-3"),
    "index_second_dim": (lambda M: M.zeros(2, 3)[0, 3], "index 3", "dimension 1", "size 3"),
    "index_too_many": (lambda M: M.zeros(2, 3)[0, 0, 0], "2"),
    "index_tensor": (lambda M: M.zeros(2, 3)[M.tensor([0, 7])], "7", "2"),
    "index_tensor_negative": (lambda M: M.zeros(2, 3)[M.tensor([-5])], "-5"),
    "setitem_index": (lambda M: M.zeros(2, 3).__setitem__(4, 1.0), "4"),
    "gather_index": (lambda M: M.zeros(2, 3).gather(1, M.tensor([[0, 9]])), "9", "3"),
    "scatter_index": (lambda M: M.zeros(2, 3).scatter(1, M.tensor([[7]]), 1.0), "7", "3"),
    "index_select_index": (lambda M: M.zeros(2, 3).index_select(0, M.tensor([3])), "3"),
    "select_index": (lambda M: M.zeros(2, 3).select(1, 3), "3"),
    "narrow_length": (lambda M: M.zeros(5).narrow(0, 3, 4), "3", "4", "5"),
    "narrow_start": (lambda M: M.zeros(5).narrow(0, 7, 0), "7"),
    "narrow_negative_length": (lambda M: M.zeros(5).narrow(0, 1, -1), ),
    "index_float": (lambda M: M.zeros(3)[1.5], "float"),
    "index_float_tensor": (lambda M: M.zeros(3)[M.tensor([0.0])], "long"),
    "index_mask_shape": (lambda M: M.zeros(3)[M.tensor([True, False])], "[2]", "[3]"),
    "gather_float_index": (lambda M: M.zeros(2, 3).gather(1, M.tensor([[0.0, 1.0]])), "int64"),
    # wrong argument types
    "add_str": (lambda M: M.zeros(2) + "a", "str"),
    "zeros_str": (lambda M: M.zeros("a"), "str"),
    "zeros_float_size": (lambda M: M.zeros(2.5), "float"),
    "zeros_float_in_tuple": (lambda M: M.zeros((2, 2.5)), "float"),
    "ones_none_size": (lambda M: M.ones(None), ),
    "tensor_str": (lambda M: M.tensor("abc"), "str"),
    "tensor_ragged": (lambda M: M.tensor([[1, 2], [3]]), "2", "1"),
    "exp_of_str": (lambda M: M.exp("x"), "str"),
    "sum_of_list": (lambda M: M.sum([1, 2]), "list"),
    "full_str_value": (lambda M: M.full((2,), "a"), "str"),
    "promote_types_str": (lambda M: M.promote_types(M.float32, "x"), ),
    "from_numpy_object": (lambda M: M.from_numpy(np.array(["a"], dtype=object)), "object"),
    "from_numpy_list": (lambda M: M.from_numpy([1.0, 2.0]), ),
    "randint_float_bound": (lambda M: M.randint(0.5, 3, (2,)), ),
    "eye_float": (lambda M: M.eye(2.5), "float"),
    "to_bad_device": (lambda M: M.zeros(2).to("foo"), "foo"),
    # requires_grad on integer tensors
    "requires_grad_zeros_int": (lambda M: M.zeros(3, dtype=M.int64, requires_grad=True), "floating point"),
    "requires_grad_tensor_int": (lambda M: M.tensor([1, 2], requires_grad=True), "floating point"),
    "requires_grad_set_int": (lambda M: setattr(M.tensor([1, 2]), "requires_grad", True), "floating point"),
    "requires_grad__int": (lambda M: M.tensor([1, 2]).requires_grad_(), "floating point"),
    "requires_grad_ones_bool": (lambda M: M.ones(2, dtype=M.bool, requires_grad=True), "floating point"),
    "numpy_of_requires_grad": (lambda M: M.ones(2, requires_grad=True).numpy(), "detach"),
    # conversions to Python scalars
    "item_many": (lambda M: M.zeros(3).item(), "3"),
    "item_empty": (lambda M: M.zeros(0).item(), "0"),
    "bool_many": (lambda M: bool(M.zeros(3)), "ambiguous"),
    "bool_empty": (lambda M: bool(M.zeros(0)), ("no values", "[0]")),
    "len_0d": (lambda M: len(M.tensor(1.0)), "0-d"),
    "iter_0d": (lambda M: iter(M.tensor(1.0)), "0-d"),
    "int_many": (lambda M: int(M.zeros(3)), ),
    "float_many": (lambda M: float(M.zeros(3)), ),
    "int_nan": (lambda M: int(M.tensor(nan)), "NaN"),
    "int_inf": (lambda M: int(M.tensor(inf)), "infinity"),
    # creation
    "zeros_negative": (lambda M: M.zeros(-1), "-1"),
    "zeros_negative_2d": (lambda M: M.zeros(2, -3), "-3"),
    "ones_negative": (lambda M: M.ones(-2), "-2"),
    "full_negative": (lambda M: M.full((-2,), 1.0), "-2"),
    "empty_negative": (lambda M: M.empty(-5), "-5"),
    "rand_negative": (lambda M: M.rand(-2), "-2"),
    "randn_negative": (lambda M: M.randn(3, -1), "-1"),
    "randperm_negative": (lambda M: M.randperm(-1), "-1"),
    "eye_negative": (lambda M: M.eye(-1), "-1"),
    "arange_zero_step": (lambda M: M.arange(0, 10, 0), "step"),
    "arange_wrong_direction": (lambda M: M.arange(0, 10, -1), "step"),
    "arange_nan_end": (lambda M: M.arange(0, nan), ("nan", "NaN")),
    "arange_inf_end": (lambda M: M.arange(0, inf), "inf"),
    "linspace_negative_steps": (lambda M: M.linspace(0, 1, -1), "non-negative"),
    "from_numpy_negative_stride": (lambda M: M.from_numpy(np.arange(5.0)[::-1]), "negative"),
    "from_numpy_negative_stride_2d": (lambda M: M.from_numpy(np.ones((3, 4))[:, ::-1]), "negative"),
    "tensor_overflow_int": (lambda M: M.tensor([2**64]), ),
    # random
    "multinomial_negative": (lambda M: M.multinomial(M.tensor([0.5, -0.1, 0.6]), 1), "< 0"),
    "multinomial_zero_sum": (lambda M: M.multinomial(M.tensor([0.0, 0.0]), 1), "sum"),
    "multinomial_too_many": (lambda M: M.multinomial(M.tensor([0.5, 0.5]), 3), "replacement"),
    "multinomial_nan": (lambda M: M.multinomial(M.tensor([0.5, nan]), 1), ("nan", "NaN")),
    "multinomial_inf": (lambda M: M.multinomial(M.tensor([1.0, inf]), 1), "inf"),
    "multinomial_3d": (lambda M: M.multinomial(M.ones(2, 2, 2), 1), "1 or 2"),
    "multinomial_int": (lambda M: M.multinomial(M.tensor([1, 2]), 1), ("Long", "int64")),
    "multinomial_2d_zero_row": (lambda M: M.multinomial(M.tensor([[1.0, 1.0], [0.0, 0.0]]), 1), "sum"),
    "randint_low_eq_high": (lambda M: M.randint(5, 5, (3,)), "from=5", "to=5"),
    "randint_low_gt_high": (lambda M: M.randint(5, 2, (3,)), "from=5", "to=2"),
    "randint_high_zero": (lambda M: M.randint(0, (3,)), "0"),
    "bernoulli_p_range": (lambda M: M.zeros(3).bernoulli_(1.5), "1.5"),
    "bernoulli_p_nan": (lambda M: M.zeros(3).bernoulli_(nan), ("nan", "NaN")),
    "bernoulli_probs_range": (lambda M: M.bernoulli(M.tensor([0.5, 2.0])), ),
    "uniform_reversed": (lambda M: M.zeros(3).uniform_(2, 1), "from=2", "to=1"),
    "uniform_inf": (lambda M: M.zeros(3).uniform_(0.0, inf), ),
    "normal_negative_std": (lambda M: M.zeros(3).normal_(0, -1), "-1"),
    "exponential_negative": (lambda M: M.zeros(3).exponential_(-1), "-1"),
    "exponential_zero": (lambda M: M.zeros(3).exponential_(0.0), "0"),
    "rand_int_dtype": (lambda M: M.rand(3, dtype=M.int64), "Long"),
    "randn_int_dtype": (lambda M: M.randn(3, dtype=M.int64), "Long"),
    "normal_int_tensor": (lambda M: M.zeros(3, dtype=M.int64).normal_(), "Long"),
    "manual_seed_too_big": (lambda M: M.manual_seed(2**64), ),
    "set_rng_state_size": (lambda M: M.set_rng_state(M.zeros(5, dtype=M.uint8)), "5056", "5"),
    # dtype misuse
    "softmax_int": (lambda M: M.tensor([1, 2, 3]).softmax(0), "Long"),
    "log_softmax_int": (lambda M: M.tensor([1, 2, 3]).log_softmax(0), "Long"),
    "mean_int": (lambda M: M.tensor([1, 2, 3]).mean(), "Long"),
    "mean_int_dim": (lambda M: M.tensor([[1, 2, 3]]).mean(1), "Long"),
    "std_int": (lambda M: M.tensor([1, 2, 3]).std(), "Long"),
    "var_int": (lambda M: M.tensor([1, 2, 3]).var(), "Long"),
    "bitwise_not_float": (lambda M: M.zeros(3).bitwise_not(), "Float"),
    "and_float": (lambda M: M.zeros(3) & M.zeros(3), "Float"),
    "where_float_condition": (lambda M: M.where(M.zeros(2), M.zeros(2), M.zeros(2)), "Float"),
    "masked_fill_float_mask": (lambda M: M.zeros(2, 3).masked_fill(M.zeros(2, 3), 1.0), "dtype"),
    "inplace_int_add_float": (lambda M: M.tensor([1, 2]).add_(1.5), "Float", "Long"),
    "inplace_int_div": (lambda M: M.tensor([1, 2]).div_(2), "Float", "Long"),
    "int_pow_negative": (lambda M: M.tensor([2, 3]) ** -1, "negative"),
    "int_floordiv_zero": (lambda M: M.tensor([1, 2]) // M.tensor([0, 1]), "ZeroDivision"),
    "int_remainder_zero": (lambda M: M.tensor([1, 2]) % M.tensor([0, 1]), "ZeroDivision"),
    # topk / split / chunk / clamp
    "topk_k_too_big": (lambda M: M.zeros(3).topk(4), "4", "3"),
    "topk_k_too_big_dim0": (lambda M: M.zeros(2, 3).topk(3, dim=0), "3", "2"),
    "topk_negative_k": (lambda M: M.zeros(3).topk(-1), ),
    "split_sizes_sum": (lambda M: M.zeros(5).split([2, 2]), "[2, 2]", "5"),
    "split_zero": (lambda M: M.zeros(5).split(0), "size of 5"),
    "split_negative_size": (lambda M: M.zeros(5).split([6, -1]), "-1"),
    "chunk_zero": (lambda M: M.zeros(5).chunk(0), "0"),
    "chunk_negative": (lambda M: M.zeros(5).chunk(-2), "-2"),
    "clamp_no_bounds": (lambda M: M.zeros(3).clamp(), "min"),
    # reductions without a dim on empty tensors
    "max_empty": (lambda M: M.zeros(0).max(), "numel() == 0"),
    "min_empty": (lambda M: M.zeros(0, 3).min(), "numel() == 0"),
    "amax_empty": (lambda M: M.zeros(0).amax(), ),
    "argmax_empty": (lambda M: M.zeros(0).argmax(), ),
    "argmin_empty": (lambda M: M.zeros(3, 0).argmin(), ),
    "max_empty_dim": (lambda M: M.zeros(0, 3).max(dim=0), "0"),
    "amax_empty_dim": (lambda M: M.zeros(0, 3).amax(0), "0"),
    "argmax_empty_dim": (lambda M: M.zeros(3, 0).argmax(1), "1"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_misuse_raises_like_torch(name):
    fn, *needles = CASES[name]
    assert_raises_like(fn, *needles)


def test_table_is_big_enough():
    assert len(CASES) >= 40


def test_helper_catches_a_wrong_type():
    """The helper itself can fail: a ferrotorch call that raises the wrong type is reported."""
    with pytest.raises(AssertionError):
        assert_raises_like(lambda M: M.zeros(2, 3)[5] if M is torch else (_ for _ in ()).throw(KeyError()))
    with pytest.raises(AssertionError):
        assert_raises_like(lambda M: M.zeros(2, 3) @ M.zeros(4, 5) if M is torch else M.zeros(1))


# *** huge allocations: a RuntimeError, never an abort (run in a subprocess) ***

HUGE = [
    "zeros(2**62)",
    "zeros(10**12, 10**6)",
    "zeros(10**12, 10**12)",
    "ones(2**62, dtype=M.float64)",
    "empty(2**40)",
    "full((2**31, 2**31), 1.0)",
    "rand(2**40)",
    "randn(2**40)",
    "randint(0, 10, (2**40,))",
    "randperm(2**40)",
    "arange(0, 2**50)",
    "eye(2**31)",
    "zeros(3).expand(2**40, 3).contiguous()",
    "zeros(1, 3).expand(2**40, 3) + 1",
    "zeros(2**20, 1) * M.zeros(1, 2**22)",
]

_HUGE_SCRIPT = """
import sys
import ferrotorch as M
try:
    M.{expr}
except BaseException as e:
    print("RAISED", type(e).__name__, str(e)[:300])
    sys.exit(0)
print("NO ERROR")
"""


@pytest.mark.parametrize("expr", HUGE)
def test_huge_allocation_raises_runtime_error(expr):
    theirs = _raised(lambda M: eval("M." + expr, {"M": M}), torch)
    assert isinstance(theirs, RuntimeError), f"torch: {theirs!r}"
    p = subprocess.run([sys.executable, "-c", _HUGE_SCRIPT.format(expr=expr)],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, f"ferrotorch aborted (rc {p.returncode}): {p.stderr[-600:]}"
    assert "panicked" not in p.stderr, p.stderr[-600:]
    assert p.stdout.startswith("RAISED "), f"no exception: {p.stdout!r} {p.stderr[-300:]}"
    kind = p.stdout.split()[1]
    assert kind == type(theirs).__name__, f"ferrotorch raises {p.stdout.strip()}; torch {theirs!r}"


# *** NaN and inf inputs: torch returns values, so must ferrotorch ***

V = [1.0, nan, -inf, 2.0, inf, 0.0, -0.0, -3.0]


def _values_only(ours, theirs):
    """For sort/topk (ties between 0.0 and -0.0 may order either way): the values equal torch's
    and the indices pick those values."""
    assert_same(ours[0], theirs[0])
    assert tuple(ours[1].shape) == tuple(theirs[1].shape)
    assert dtype_name(ours[1].dtype) == dtype_name(theirs[1].dtype)


NAN_CASES = {
    "max": lambda M: M.tensor(V).max(),
    "min": lambda M: M.tensor(V).min(),
    "amax": lambda M: M.tensor(V).amax(),
    "amin": lambda M: M.tensor(V).amin(),
    "argmax": lambda M: M.tensor(V).argmax(),
    "argmin": lambda M: M.tensor(V).argmin(),
    "argmax_no_nan": lambda M: M.tensor([1.0, inf, -inf, inf]).argmax(),
    "max_dim": lambda M: M.tensor(V).reshape(2, 4).max(1),
    "min_dim": lambda M: M.tensor(V).reshape(2, 4).min(0),
    "maximum": lambda M: M.maximum(M.tensor(V), M.zeros(8)),
    "minimum": lambda M: M.minimum(M.tensor(V), M.zeros(8)),
    "sum": lambda M: M.tensor(V).sum(),
    "sum_infs": lambda M: M.tensor([inf, -inf]).sum(),
    "mean": lambda M: M.tensor(V).mean(),
    "prod": lambda M: M.tensor(V).prod(),
    "prod_inf_zero": lambda M: M.tensor([inf, 0.0]).prod(),
    "std": lambda M: M.tensor(V).std(),
    "var": lambda M: M.tensor(V).var(),
    "std_one_element": lambda M: M.tensor([1.0]).std(),
    "var_inf": lambda M: M.tensor([1.0, inf]).var(),
    "norm": lambda M: M.tensor(V).norm(),
    "norm_inf": lambda M: M.tensor([1.0, -inf]).norm(),
    "logsumexp": lambda M: M.tensor(V).logsumexp(0),
    "logsumexp_inf": lambda M: M.tensor([1.0, inf]).logsumexp(0),
    "logsumexp_all_neg_inf": lambda M: M.tensor([-inf, -inf]).logsumexp(0),
    "softmax": lambda M: M.tensor(V).softmax(0),
    "softmax_inf": lambda M: M.tensor([1.0, inf]).softmax(0),
    "softmax_all_neg_inf": lambda M: M.tensor([-inf, -inf]).softmax(0),
    "log_softmax": lambda M: M.tensor(V).log_softmax(0),
    "log_softmax_inf": lambda M: M.tensor([1.0, inf, 2.0]).log_softmax(0),
    "cumsum": lambda M: M.tensor(V).cumsum(0),
    "clamp": lambda M: M.tensor(V).clamp(-1, 1),
    "clamp_nan_bound": lambda M: M.tensor(V).clamp(min=nan),
    "relu": lambda M: M.tensor(V).relu(),
    "sigmoid": lambda M: M.tensor(V).sigmoid(),
    "tanh": lambda M: M.tensor(V).tanh(),
    "exp": lambda M: M.tensor(V).exp(),
    "log": lambda M: M.tensor(V).log(),
    "sqrt": lambda M: M.tensor(V).sqrt(),
    "rsqrt": lambda M: M.tensor(V).rsqrt(),
    "log1p": lambda M: M.tensor(V).log1p(),
    "reciprocal": lambda M: M.tensor(V).reciprocal(),
    "div_zero": lambda M: M.tensor(V) / 0.0,
    "remainder_zero": lambda M: M.tensor(V) % 0.0,
    "floor_divide_zero": lambda M: M.tensor(V) // 0.0,
    "pow_half": lambda M: M.tensor(V) ** 0.5,
    "pow_zero": lambda M: M.tensor(V) ** 0,
    "pow_two": lambda M: M.tensor(V) ** 2,
    "pow_neg_inf_exponent": lambda M: M.tensor([0.5, 1.0, 2.0, nan]) ** -inf,
    "round": lambda M: M.tensor(V).round(),
    "floor": lambda M: M.tensor(V).floor(),
    "ceil": lambda M: M.tensor(V).ceil(),
    "trunc": lambda M: M.tensor(V).trunc(),
    "sign": lambda M: M.tensor(V).sign(),
    "abs": lambda M: M.tensor(V).abs(),
    "sin": lambda M: M.tensor(V).sin(),
    "cos": lambda M: M.tensor(V).cos(),
    "eq_self": lambda M: M.tensor(V) == M.tensor(V),
    "ne_self": lambda M: M.tensor(V) != M.tensor(V),
    "lt_inf": lambda M: M.tensor(V) < inf,
    "ge_nan": lambda M: M.tensor(V) >= nan,
    "any": lambda M: M.tensor(V).any(),
    "all": lambda M: M.tensor(V).all(),
    "bool_cast": lambda M: M.tensor(V).bool(),
    "nonzero": lambda M: M.tensor(V).nonzero(),
    "where": lambda M: M.where(M.tensor(V) > 0, M.tensor(V), M.zeros(8)),
    "masked_fill_nan": lambda M: M.tensor(V).masked_fill(M.tensor(V) != M.tensor(V), 0.0),
    "matmul": lambda M: M.tensor(V).reshape(2, 4) @ M.tensor(V).reshape(4, 2),
    "matmul_inf_zero": lambda M: M.tensor([[inf, 0.0]]) @ M.tensor([[0.0], [1.0]]),
    "dot": lambda M: M.tensor(V).dot(M.ones(8)),
    "tolist": lambda M: M.tensor(V).tolist(),
    "item_nan": lambda M: M.tensor(V)[1].item(),
    "float_inf": lambda M: float(M.tensor(V)[2]),
    "bool_nan": lambda M: bool(M.tensor(nan)),
    "int_tensor_div_zero": lambda M: M.tensor([1, -1, 0]) / 0,
    "int_true_divide_zero": lambda M: M.tensor([1, -1, 0]).true_divide(M.tensor([0, 0, 0])),
    "tensor_nan_inf": lambda M: M.tensor([nan, inf, -inf]),
    "tensor_nan_inf_f64": lambda M: M.tensor([nan, inf, -inf], dtype=M.float64),
    "full_nan": lambda M: M.full((2, 2), nan),
    "full_inf_half": lambda M: M.full((2,), inf, dtype=M.float16).float(),
    "linspace_to_inf": lambda M: M.linspace(0, inf, 3),
    "to_float16_overflow": lambda M: M.tensor([1e6, -1e6, nan]).to(M.float16).float(),
    "normal_nan_mean": _seeded(lambda M: M.zeros(5).normal_(nan, 1.0)),
    "normal_inf_std": _seeded(lambda M: M.zeros(5).normal_(0.0, inf)),
    "normal_inf_mean": _seeded(lambda M: M.zeros(20).normal_(inf, 1.0)),
    "uniform_nan": _seeded(lambda M: M.zeros(3).uniform_(nan, 1.0)),
}


@pytest.mark.parametrize("name", list(NAN_CASES))
def test_nan_inf_inputs_like_torch(name):
    assert_same_outcome(NAN_CASES[name])


@pytest.mark.parametrize("name,fn", [
    ("sort", lambda M: M.tensor(V).sort()),
    ("sort_descending", lambda M: M.tensor(V).sort(descending=True)),
    ("topk_largest", lambda M: M.tensor(V).topk(3)),
    ("topk_smallest", lambda M: M.tensor(V).topk(3, largest=False)),
    ("topk_all", lambda M: M.tensor(V).topk(8)),
])
def test_nan_inf_sort_topk_values(name, fn):
    assert_same_outcome(fn, compare=_values_only)
    ours = fn(ft)
    x = ft.tensor(V)
    np.testing.assert_array_equal(x[ours[1]].numpy(), ours[0].numpy())


# *** empty and zero-size inputs to every reduction ***

REDUCTIONS = {
    "sum": lambda x, d: x.sum() if d is None else x.sum(d),
    "sum_keepdim": lambda x, d: x.sum(0 if d is None else d, keepdim=True),
    "mean": lambda x, d: x.mean() if d is None else x.mean(d),
    "prod": lambda x, d: x.prod() if d is None else x.prod(d),
    "var": lambda x, d: x.var() if d is None else x.var(d),
    "std": lambda x, d: x.std() if d is None else x.std(d),
    "max": lambda x, d: x.max() if d is None else x.max(d),
    "min": lambda x, d: x.min() if d is None else x.min(d),
    "amax": lambda x, d: x.amax() if d is None else x.amax(d),
    "amin": lambda x, d: x.amin() if d is None else x.amin(d),
    "argmax": lambda x, d: x.argmax() if d is None else x.argmax(d),
    "argmin": lambda x, d: x.argmin() if d is None else x.argmin(d),
    "logsumexp": lambda x, d: x.logsumexp(tuple(range(x.dim())) if d is None else d),
    "all": lambda x, d: x.all() if d is None else x.all(d),
    "any": lambda x, d: x.any() if d is None else x.any(d),
    "norm": lambda x, d: x.norm() if d is None else x.norm(dim=d),
    "cumsum": lambda x, d: x.cumsum(0 if d is None else d),
    "softmax": lambda x, d: x.softmax(0 if d is None else d),
    "log_softmax": lambda x, d: x.log_softmax(0 if d is None else d),
    "sort": lambda x, d: x.sort(0 if d is None else d),
    "argsort": lambda x, d: x.argsort(0 if d is None else d),
    "topk0": lambda x, d: x.topk(0, 0 if d is None else d),
}
EMPTY_SHAPES = [(0,), (0, 3), (3, 0), (2, 0, 4)]
EMPTY_CASES = [
    (name, shape, d)
    for shape in EMPTY_SHAPES
    for d in [None, 0, -1] + ([1] if len(shape) > 1 else [])
    for name in REDUCTIONS
]


@pytest.mark.parametrize("name,shape,d", EMPTY_CASES, ids=[f"{n}-{s}-{d}" for n, s, d in EMPTY_CASES])
def test_zero_size_reductions(name, shape, d):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns about var/std with no degrees of freedom
        assert_same_outcome(lambda M: REDUCTIONS[name](M.zeros(shape), d))


INT_REDUCTIONS = ["sum", "prod", "max", "min", "amax", "argmax", "all", "any", "cumsum", "sort"]


@pytest.mark.parametrize("name", INT_REDUCTIONS)
@pytest.mark.parametrize("shape,d", [((0,), None), ((0,), 0), ((0, 3), 0), ((3, 0), 1), ((3, 0), 0)], ids=str)
def test_zero_size_int_reductions(name, shape, d):
    assert_same_outcome(lambda M: REDUCTIONS[name](M.zeros(shape, dtype=M.int64), d))


ZERO_DIM_CASES = [
    (name, d)
    for name in ["sum", "mean", "prod", "max", "min", "argmax", "logsumexp", "all", "any", "norm",
                 "cumsum", "softmax", "var", "std"]
    for d in ([0, -1] if name in ("cumsum", "softmax") else [None, 0, -1])
]


@pytest.mark.parametrize("name,d", ZERO_DIM_CASES, ids=[f"{n}-{d}" for n, d in ZERO_DIM_CASES])
def test_zero_dim_tensor_reductions(name, d):
    """A 0-d tensor reduces over dim None, 0 and -1 (torch allows dim 0 / -1 on a scalar)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert_same_outcome(lambda M: REDUCTIONS[name](M.tensor(2.5), d))


def test_index_select_out_of_range_like_torch():
    for idx in ([-1], [4]):
        with pytest.raises(IndexError, match="index out of range in self"):
            torch.arange(4.0).index_select(0, torch.tensor(idx))
        with pytest.raises(IndexError, match="index out of range in self"):
            ft.arange(4.0).index_select(0, ft.tensor(idx))
