"""API misuse beyond tensor ops: nn, autograd, optim, utils.data, save/load and the GPT-2 runner.

Each case is an invalid call. Where torch has the API, torch runs the same call in the test to
give the expected exception type; ferrotorch must raise that type (never a Rust panic), with a
message naming the offending shapes, values or names. The GPT-2 runner is ferrotorch's own: its
cases assert the documented type and message directly. A case that hangs fails.

tests/test_errors.py holds the companion table for tensor ops; tests/test_serialization.py
covers corrupt and truncated checkpoint files, which are not repeated here.
"""

import faulthandler
import json
import os
import signal

import ferrotorch as ft
import pytest
import torch
from ferrotorch import gpt2
from ferrotorch.gpt2 import checkpoint as gpt2_checkpoint
from test_errors import CASES as TENSOR_OP_CASES
from test_errors import assert_raises_like

torch.set_num_threads(1)

inf = float("inf")


# *** a hang is a failure ***

CASE_SECONDS = 30


class Hang(BaseException):
    """A case ran past CASE_SECONDS (a BaseException, so library code cannot swallow it)."""


@pytest.fixture(autouse=True)
def time_limit():
    """Interrupts a case that runs past CASE_SECONDS. A hang inside native code that holds the
    GIL never sees the signal, so faulthandler ends the process (with tracebacks) a little later."""
    def on_alarm(signum, frame):
        raise Hang(f"the case ran past {CASE_SECONDS} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(CASE_SECONDS)
    faulthandler.dump_traceback_later(2 * CASE_SECONDS, exit=True)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


# *** nn modules and functional ***

def _load_state(M, state, strict=True):
    return M.nn.Linear(2, 2).load_state_dict(state, strict=strict)


def _register(M, method, *args):
    return getattr(M.nn.Module(), method)(*args)


def _mha(M, query):
    return M.nn.MultiheadAttention(4, 2)(query, query, query)


def _sdpa(M, q, k, v, **kw):
    return M.nn.functional.scaled_dot_product_attention(
        M.zeros(*q), M.zeros(*k), M.zeros(*v), **kw)


def _clip_nonfinite(M):
    p = M.nn.Parameter(M.ones(2))
    p.grad = M.tensor([1.0, inf])
    return M.nn.utils.clip_grad_norm_([p], 1.0, error_if_nonfinite=True)


def _assign_tensor_to_parameter(M):
    M.nn.Linear(2, 2).weight = M.zeros(2, 2)


NN_CASES = {
    "linear_in_features": (lambda M: M.nn.Linear(3, 2)(M.zeros(4, 5)), "4x5", "3x2"),
    "linear_1d_input": (lambda M: M.nn.Linear(3, 2)(M.zeros(4)), "4", "3"),
    "f_linear_weight": (lambda M: M.nn.functional.linear(M.zeros(2, 3), M.zeros(4, 5)),
                        "2x3", "5x4"),
    "f_linear_bias": (lambda M: M.nn.functional.linear(M.zeros(2, 3), M.zeros(4, 3), M.zeros(5)),
                      "4", "5"),
    "embedding_index_too_big": (lambda M: M.nn.Embedding(5, 2)(M.tensor([1, 7])), "7"),
    "embedding_index_negative": (lambda M: M.nn.Embedding(5, 2)(M.tensor([-1])), "-1"),
    "embedding_float_indices": (lambda M: M.nn.Embedding(5, 2)(M.tensor([1.0])),
                                ("Float", "float32")),
    "embedding_padding_idx": (lambda M: M.nn.Embedding(5, 2, padding_idx=7), "7"),
    "f_embedding_1d_weight": (lambda M: M.nn.functional.embedding(M.tensor([0]), M.zeros(5)),
                              "2-D", "[5]"),
    "layer_norm_shape": (lambda M: M.nn.LayerNorm(4)(M.zeros(2, 3)), "[4]", "[2, 3]"),
    "f_layer_norm_weight": (lambda M: M.nn.functional.layer_norm(M.zeros(2, 3), (3,),
                                                                 weight=M.ones(4)), "3", "4"),
    "dropout_p_above_one": (lambda M: M.nn.Dropout(1.5), "1.5"),
    "dropout_p_negative": (lambda M: M.nn.Dropout(-0.1), "-0.1"),
    "f_dropout_p": (lambda M: M.nn.functional.dropout(M.zeros(3), p=2.0), "2.0"),
    "sequential_index": (lambda M: M.nn.Sequential(M.nn.ReLU())[3], "3"),
    "sequential_non_module": (lambda M: M.nn.Sequential(M.nn.ReLU(), 5), "int"),
    "module_list_index": (lambda M: M.nn.ModuleList([M.nn.ReLU()])[-2], "-2"),
    "module_list_append_int": (lambda M: M.nn.ModuleList().append(3), "int"),
    "module_dict_missing_key": (lambda M: M.nn.ModuleDict()["enc"], "enc"),
    "load_state_dict_missing": (lambda M: _load_state(M, {"weight": M.zeros(2, 2)}),
                                "Missing", "bias"),
    "load_state_dict_unexpected": (lambda M: _load_state(
        M, {"weight": M.zeros(2, 2), "bias": M.zeros(2), "scale": M.zeros(1)}),
        "Unexpected", "scale"),
    "load_state_dict_shape": (lambda M: _load_state(M, {"weight": M.zeros(3, 2),
                                                        "bias": M.zeros(2)}),
                              "weight", "[3, 2]", "[2, 2]"),
    "load_state_dict_shape_not_strict": (lambda M: _load_state(
        M, {"weight": M.zeros(2, 3)}, strict=False), "weight", "[2, 3]", "[2, 2]"),
    "load_state_dict_list": (lambda M: _load_state(M, [("weight", M.zeros(2, 2))]), "list"),
    "register_buffer_dotted_name": (lambda M: _register(M, "register_buffer", "a.b", M.zeros(1)),
                                    '"."'),
    "register_buffer_empty_name": (lambda M: _register(M, "register_buffer", "", M.zeros(1)),
                                   "empty"),
    "register_buffer_int_name": (lambda M: _register(M, "register_buffer", 1, M.zeros(1)), "int"),
    "register_buffer_not_tensor": (lambda M: _register(M, "register_buffer", "a", 3), "int"),
    "register_parameter_plain_tensor": (lambda M: _register(
        M, "register_parameter", "w", M.zeros(1)), "w", "Parameter"),
    "register_parameter_existing": (lambda M: _register(
        M, "register_parameter", "training", M.nn.Parameter(M.zeros(1))), "training"),
    "add_module_not_module": (lambda M: _register(M, "add_module", "head", 3), "int"),
    "assign_tensor_to_parameter": (_assign_tensor_to_parameter, "weight"),
    "train_mode_not_bool": (lambda M: M.nn.Linear(2, 2).train("yes"), "yes"),
    "cross_entropy_target_too_big": (lambda M: M.nn.functional.cross_entropy(
        M.zeros(2, 3), M.tensor([0, 5])), "5"),
    "cross_entropy_target_negative": (lambda M: M.nn.functional.cross_entropy(
        M.zeros(2, 3), M.tensor([-1, 0])), "-1"),
    "cross_entropy_batch_mismatch": (lambda M: M.nn.functional.cross_entropy(
        M.zeros(2, 3), M.tensor([0, 1, 2])), "2", "3"),
    "cross_entropy_probs_shape": (lambda M: M.nn.functional.cross_entropy(
        M.zeros(2, 3), M.zeros(2, 4)), "[2, 4]", "[2, 3]"),
    "cross_entropy_probs_batch": (lambda M: M.nn.functional.cross_entropy(
        M.zeros(2, 3), M.zeros(3, 3)), "2", "3"),
    "cross_entropy_bool_target": (lambda M: M.nn.functional.cross_entropy(
        M.zeros(2, 3), M.tensor([True, False])), "Bool"),
    "nll_loss_target_too_big": (lambda M: M.nn.functional.nll_loss(
        M.zeros(2, 3), M.tensor([3, 0])), "3"),
    "nll_loss_weight_size": (lambda M: M.nn.functional.nll_loss(
        M.zeros(2, 3), M.tensor([0, 1]), weight=M.ones(4)), "3", "4"),
    "nll_loss_spatial_target": (lambda M: M.nn.functional.nll_loss(
        M.zeros(2, 3, 4), M.zeros(2, 5, dtype=M.int64)), "[2, 5]"),
    "bce_input_above_one": (lambda M: M.nn.functional.binary_cross_entropy(
        M.tensor([1.5]), M.tensor([1.0])), "between 0 and 1"),
    "bce_input_negative": (lambda M: M.nn.functional.binary_cross_entropy(
        M.tensor([-0.5]), M.tensor([1.0])), "between 0 and 1"),
    "bce_shape": (lambda M: M.nn.functional.binary_cross_entropy(
        M.full((2,), 0.5), M.zeros(3)), "[3]", "[2]"),
    "bce_with_logits_shape": (lambda M: M.nn.functional.binary_cross_entropy_with_logits(
        M.zeros(2), M.zeros(3)), "[3]", "[2]"),
    "mse_loss_not_broadcastable": (lambda M: M.nn.functional.mse_loss(M.zeros(2, 3), M.zeros(4)),
                                   "3", "4"),
    "l1_loss_not_broadcastable": (lambda M: M.nn.functional.l1_loss(M.zeros(5), M.zeros(2)),
                                  "5", "2"),
    "loss_bad_reduction": (lambda M: M.nn.functional.mse_loss(M.zeros(2), M.zeros(2),
                                                              reduction="avg"), "avg"),
    "sdpa_head_dim": (lambda M: _sdpa(M, (1, 2, 4, 8), (1, 2, 4, 6), (1, 2, 4, 6)), "8", "6"),
    "sdpa_heads": (lambda M: _sdpa(M, (1, 2, 4, 8), (1, 3, 4, 8), (1, 3, 4, 8)), "2", "3"),
    "sdpa_mask_shape": (lambda M: _sdpa(M, (1, 2, 4, 8), (1, 2, 4, 8), (1, 2, 4, 8),
                                        attn_mask=M.ones(3, 3, dtype=M.bool)), "3", "4"),
    "mha_heads_do_not_divide": (lambda M: M.nn.MultiheadAttention(10, 3), "10", "3"),
    "mha_embed_dim": (lambda M: _mha(M, M.zeros(2, 5, 8)), "4", "8"),
    "one_hot_class_too_big": (lambda M: M.nn.functional.one_hot(M.tensor([0, 5]), 3),
                              "num_classes"),
    "one_hot_float": (lambda M: M.nn.functional.one_hot(M.tensor([0.0])), ("Long", "int64")),
    "pad_odd_length": (lambda M: M.nn.functional.pad(M.zeros(3), (1,)), "divisible by 2"),
    "gelu_approximate": (lambda M: M.nn.functional.gelu(M.zeros(2), approximate="fast"),
                         "fast"),
    "unflatten_sizes": (lambda M: M.nn.Unflatten(1, (2, 2))(M.zeros(3, 5)), "5"),
    "init_calculate_gain": (lambda M: M.nn.init.calculate_gain("swish"), "swish"),
    "init_eye_3d": (lambda M: M.nn.init.eye_(M.zeros(2, 2, 2)), "2 dimensions"),
    "clip_grad_norm_nonfinite": (_clip_nonfinite, "non-finite"),
}


# *** autograd ***

def _leaf(M):
    return M.ones(3, requires_grad=True)


def _backward_twice(M):
    y = _leaf(M).exp().sum()
    y.backward()
    y.backward()


def _modified_saved_output(M):
    y = _leaf(M).exp()  # exp saves its output for backward
    y.add_(1)
    y.sum().backward()


def _modified_saved_input(M):
    a = _leaf(M) * 1
    b = a.sin()  # sin saves its input
    a.mul_(2)
    b.sum().backward()


def _grad_of_wrong_shape(M):
    (_leaf(M) * 2).backward(M.ones(4))


def _set_grad(M, value):
    x = _leaf(M)
    x.grad = value(M)


def _grad_unused_input(M):
    x, unused = _leaf(M), _leaf(M)
    return M.autograd.grad((x * 2).sum(), [x, unused])


def _grad_input_without_grad(M):
    x = _leaf(M)
    return M.autograd.grad((x * 2).sum(), [M.ones(3)])


def _hook_changes_shape(M):
    x = _leaf(M)
    x.register_hook(lambda g: M.ones(4))
    (x * 2).sum().backward()


def _backward_under_no_grad(M):
    x = _leaf(M)
    with M.no_grad():
        y = (x * 2).sum()
    y.backward()


def _custom_backward(M, backward):
    """Backward through an autograd.Function ``2 * x`` whose backward is ``backward(M, grad)``."""
    class Double(M.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, grad):
            return backward(M, grad)

    Double.apply(_leaf(M)).sum().backward()


def _backward_mismatched_lengths(M):
    x = _leaf(M)
    M.autograd.backward([(x * 2).sum(), (x * 3).sum()], [M.tensor(1.0)])


AUTOGRAD_CASES = {
    "backward_non_scalar": (lambda M: (_leaf(M) * 2).backward(), "scalar"),
    "backward_without_grad": (lambda M: M.ones(3).sum().backward(), "does not require grad"),
    "backward_under_no_grad": (_backward_under_no_grad, "does not require grad"),
    "backward_twice": (_backward_twice, "second time", "retain_graph"),
    "modified_saved_output": (_modified_saved_output, "inplace", "version"),
    "modified_saved_input": (_modified_saved_input, "inplace", "version"),
    "backward_grad_shape": (_grad_of_wrong_shape, "[4]", "[3]"),
    "backward_grad_shape_scalar": (lambda M: _leaf(M).sum().backward(M.ones(2)), "[2]", "[]"),
    "backward_grad_lengths": (_backward_mismatched_lengths, "2", "1"),
    "grad_unused_input": (_grad_unused_input, "allow_unused"),
    "grad_input_without_grad": (_grad_input_without_grad, "does not require grad"),
    "grad_output_without_grad": (lambda M: M.autograd.grad(M.ones(3).sum(), [_leaf(M)]),
                                 "does not require grad"),
    "grad_non_scalar_output": (lambda M: M.autograd.grad(_leaf(M) * 2, [_leaf(M)]), "scalar"),
    "requires_grad_false_non_leaf": (lambda M: (_leaf(M) * 2).requires_grad_(False), "leaf"),
    "set_grad_shape": (lambda M: _set_grad(M, lambda M: M.zeros(4)), "size"),
    "set_grad_dtype": (lambda M: _set_grad(M, lambda M: M.zeros(3, dtype=M.float64)), "type"),
    "set_grad_int": (lambda M: _set_grad(M, lambda M: 3), "int"),
    "leaf_inplace": (lambda M: _leaf(M).add_(1), "leaf", "in-place"),
    "leaf_setitem": (lambda M: _leaf(M).__setitem__(0, 2.0), "leaf", "in-place"),
    "hook_changes_shape": (_hook_changes_shape, "[4]", "[3]"),
    "hook_without_grad": (lambda M: M.ones(3).register_hook(lambda g: g), "require"),
    "retain_grad_without_grad": (lambda M: M.ones(3).retain_grad(), "requires_grad=False"),
    "function_too_many_grads": (lambda M: _custom_backward(M, lambda M, g: (g, g)),
                                "expected 1", "got 2"),
    "function_grad_shape": (lambda M: _custom_backward(M, lambda M, g: M.ones(4)), "[4]", "[3]"),
}


# *** optim and lr_scheduler ***

def _param(M):
    return M.nn.Parameter(M.ones(2))


def _sgd_load_state(M, state):
    M.optim.SGD([_param(M)], lr=0.1).load_state_dict(state(M))


def _two_groups_state(M):
    return M.optim.SGD([{"params": [_param(M)]}, {"params": [_param(M)]}], lr=0.1).state_dict()


def _two_params_state(M):
    return M.optim.SGD([_param(M), _param(M)], lr=0.1).state_dict()


def _resume_without_initial_lr(M):
    return M.optim.lr_scheduler.StepLR(M.optim.SGD([_param(M)], lr=0.1), 2, last_epoch=3)


def _twice_in_groups(M):
    p = _param(M)
    return M.optim.SGD([{"params": [p]}, {"params": [p]}], lr=0.1)


OPTIM_CASES = {
    "sgd_negative_lr": (lambda M: M.optim.SGD([_param(M)], lr=-0.1), "-0.1"),
    "sgd_negative_momentum": (lambda M: M.optim.SGD([_param(M)], momentum=-0.5), "-0.5"),
    "sgd_negative_weight_decay": (lambda M: M.optim.SGD([_param(M)], weight_decay=-2.0), "-2.0"),
    "sgd_nesterov_without_momentum": (lambda M: M.optim.SGD([_param(M)], nesterov=True),
                                      "momentum"),
    "adam_negative_lr": (lambda M: M.optim.Adam([_param(M)], lr=-1.0), "-1.0"),
    "adam_beta1_above_one": (lambda M: M.optim.Adam([_param(M)], betas=(1.5, 0.999)), "1.5"),
    "adam_beta2_negative": (lambda M: M.optim.Adam([_param(M)], betas=(0.9, -0.1)), "-0.1"),
    "adam_negative_eps": (lambda M: M.optim.Adam([_param(M)], eps=-1e-8), "-1e-08"),
    "adam_mixed_beta_types": (lambda M: M.optim.Adam([_param(M)], betas=(M.tensor(0.9), 0.999)),
                              "Tensor"),
    "adamw_negative_weight_decay": (lambda M: M.optim.AdamW([_param(M)], weight_decay=-0.01),
                                    "-0.01"),
    "empty_parameter_list": (lambda M: M.optim.SGD([], lr=0.1), "empty"),
    "non_leaf_parameter": (lambda M: M.optim.SGD([_param(M) * 2], lr=0.1), "non-leaf"),
    "params_is_a_tensor": (lambda M: M.optim.SGD(_param(M), lr=0.1), "iterable"),
    "params_hold_a_float": (lambda M: M.optim.SGD([1.0], lr=0.1), "float"),
    "param_in_two_groups": (_twice_in_groups, "more than one parameter group"),
    "param_group_without_params": (lambda M: M.optim.SGD([{"lr": 0.1}], lr=0.1), "params"),
    "add_param_group_not_dict": (lambda M: M.optim.SGD([_param(M)]).add_param_group([_param(M)]),
                                 "dict"),
    "load_state_group_count": (lambda M: _sgd_load_state(M, _two_groups_state),
                               "parameter groups", "2", "1"),
    "load_state_group_size": (lambda M: _sgd_load_state(M, _two_params_state), "size", "2",
                              "1"),
    "scheduler_on_a_list": (lambda M: M.optim.lr_scheduler.StepLR([_param(M)], 2),
                            ("list", "Optimizer")),
    "lambda_lr_count": (lambda M: M.optim.lr_scheduler.LambdaLR(
        M.optim.SGD([_param(M)]), [lambda e: 1.0, lambda e: 0.5]), "1", "2"),
    "scheduler_resume_without_initial_lr": (_resume_without_initial_lr, "initial_lr"),
    "linear_lr_start_factor": (lambda M: M.optim.lr_scheduler.LinearLR(
        M.optim.SGD([_param(M)]), start_factor=1.5), "1.5"),
}


# *** utils.data ***

def _tensor_dataset(M, n=3):
    return M.utils.data.TensorDataset(M.arange(float(n)), M.arange(n))


def _loader(M, **kw):
    return M.utils.data.DataLoader(_tensor_dataset(M), **kw)


def _sequential(M):
    return M.utils.data.SequentialSampler(range(3))


def _stream(M):
    """An IterableDataset of M (torch or ferrotorch) yielding 0, 1, 2."""
    class Stream(M.utils.data.IterableDataset):
        def __iter__(self):
            return iter(range(3))

    return Stream()


DATA_CASES = {
    "loader_batch_size_zero": (lambda M: _loader(M, batch_size=0), "0"),
    "loader_batch_size_negative": (lambda M: _loader(M, batch_size=-1), "-1"),
    "loader_sampler_and_shuffle": (lambda M: _loader(M, sampler=_sequential(M), shuffle=True),
                                   "shuffle"),
    "loader_batch_sampler_and_batch_size": (lambda M: _loader(
        M, batch_sampler=M.utils.data.BatchSampler(_sequential(M), 2, False), batch_size=2),
        "batch_size"),
    "loader_negative_workers": (lambda M: _loader(M, num_workers=-1), "num_workers"),
    "loader_negative_timeout": (lambda M: _loader(M, timeout=-1), "timeout"),
    "loader_persistent_without_workers": (lambda M: _loader(M, persistent_workers=True),
                                          "num_workers"),
    "loader_iterable_shuffle": (lambda M: M.utils.data.DataLoader(_stream(M), shuffle=True),
                                "shuffle"),
    "random_split_lengths": (lambda M: M.utils.data.random_split(range(10), [3, 4]), "length"),
    "random_split_negative_fraction": (lambda M: M.utils.data.random_split(range(10),
                                                                           [-0.5, 1.5]),
                                       "-0.5"),
    "tensor_dataset_sizes": (lambda M: M.utils.data.TensorDataset(M.zeros(3), M.zeros(4)),
                             "Size mismatch"),
    "tensor_dataset_index": (lambda M: _tensor_dataset(M)[5], "5", "3"),
    "subset_index": (lambda M: M.utils.data.Subset(_tensor_dataset(M), [0, 1])[4], "4"),
    "concat_empty": (lambda M: M.utils.data.ConcatDataset([]), "empty"),
    "concat_index": (lambda M: M.utils.data.ConcatDataset([_tensor_dataset(M)])[-4], "-4", "3"),
    "batch_sampler_zero": (lambda M: M.utils.data.BatchSampler(_sequential(M), 0, False), "0"),
    "batch_sampler_drop_last_str": (lambda M: M.utils.data.BatchSampler(_sequential(M), 2, "no"),
                                    "no"),
    "random_sampler_zero_samples": (lambda M: M.utils.data.RandomSampler(range(3),
                                                                         num_samples=0), "0"),
    "weighted_sampler_negative": (lambda M: M.utils.data.WeightedRandomSampler([0.5, 0.5], -1),
                                  "-1"),
    "stack_dataset_lengths": (lambda M: M.utils.data.StackDataset(M.zeros(3), M.zeros(4)),
                              "3", "4"),
    "collate_unequal_shapes": (lambda M: M.utils.data.default_collate([M.zeros(2), M.zeros(3)]),
                               ("[2]", "equal size")),
    "collate_object": (lambda M: M.utils.data.default_collate([object(), object()]), "object"),
}


# *** save and load (corrupt files: tests/test_serialization.py) ***

def _checkpoint_file(M, folder):
    path = os.path.join(folder, f"{M.__name__}.pt")
    M.save({"w": M.zeros(2)}, path)
    return path


SERIALIZATION_CASES = {
    "load_directory": (lambda M, folder: M.load(folder), "Is a directory"),
    "save_onto_directory": (lambda M, folder: M.save({"w": M.zeros(1)}, folder),
                            "Is a directory"),
    "load_bad_map_location": (lambda M, folder: M.load(_checkpoint_file(M, folder),
                                                       map_location="tpu:9"), "tpu"),
    "save_to_float_path": (lambda M, folder: M.save({"w": M.zeros(1)}, 3.5), "float"),
}


# *** the GPT-2 runner (ferrotorch only: the documented type and message) ***

TINY = dict(vocab_size=32, context_length=8, emb_dim=8, n_heads=2, n_layers=1, drop_rate=0.0,
            qkv_bias=False)


def _tiny(**changes):
    return gpt2.GPTModel(dict(TINY, **changes))


def _without(key):
    return {k: v for k, v in TINY.items() if k != key}


def _write(path, text):
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


def _saved_checkpoint(folder, **changes):
    model = _tiny(**changes)
    gpt2.save_checkpoint(folder, model, ft.optim.AdamW(model.parameters()), step=1)
    return gpt2_checkpoint.checkpoint_dir(folder)


def _edit_config(folder, **changes):
    ckpt = _saved_checkpoint(folder)
    path = os.path.join(ckpt, "config.json")
    with open(path, encoding="utf-8") as f:
        cfg = json.load(f)
    _write(path, json.dumps(dict(cfg, **changes)))
    return ckpt


def _damage_weights(folder, damage):
    ckpt = _saved_checkpoint(folder)
    path = os.path.join(ckpt, "model.safetensors")
    with open(path, "rb") as f:
        data = bytearray(f.read())
    with open(path, "wb") as f:
        f.write(damage(data))
    return ckpt


def _flip_header(data):
    data[12] ^= 0xFF
    return bytes(data)


def _corrupt_state(folder):
    ckpt = _saved_checkpoint(folder)
    _write(os.path.join(ckpt, "state.json"), "{step")
    return ckpt


def _remove(folder, name):
    ckpt = _saved_checkpoint(folder)
    os.remove(os.path.join(ckpt, name))
    return folder


def _bpe_unreachable(folder, monkeypatch):
    """The GPT-2 tokenizer with an empty tiktoken cache and no way to download."""
    import tiktoken.registry

    # tiktoken keeps every encoding it loaded: start from none, so the files are looked up
    monkeypatch.setattr(tiktoken.registry, "ENCODINGS", {})
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", folder)
    for var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")  # the discard port: refused at once
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    return gpt2.get_tokenizer("gpt2")


def _not_gpt2_weights(folder):
    path = os.path.join(folder, "model.safetensors")
    ft.save({"encoder.weight": ft.zeros(4, 4)}, path)
    return gpt2.GPTModel.from_hf(path, config=dict(TINY))


def _ids(n):
    return ft.zeros(1, n, dtype=ft.int64)


def _generate(**kw):
    return gpt2.generate(_tiny(), kw.pop("idx", _ids(2)), kw.pop("max_new_tokens", 2), **kw)


# name -> (call(folder, monkeypatch), exception type, needles in the message); "{folder}" in a
# needle stands for the case's scratch folder
GPT2_CASES = {
    "config_missing_key": (lambda d, mp: gpt2.get_config(_without("n_heads")), ValueError,
                           "'n_heads'", "missing"),
    "config_unknown_key": (lambda d, mp: gpt2.get_config(dict(TINY, n_head=2)), ValueError,
                           "'n_head'", "'n_heads'"),
    "config_string_int": (lambda d, mp: gpt2.get_config(dict(TINY, n_layers="4")), ValueError,
                          "n_layers", "'4'"),
    "config_float_int": (lambda d, mp: gpt2.get_config(dict(TINY, emb_dim=8.0)), ValueError,
                         "emb_dim", "8.0"),
    "config_bool_not_bool": (lambda d, mp: gpt2.get_config(dict(TINY, qkv_bias="no")),
                             ValueError, "qkv_bias", "'no'"),
    "config_drop_rate_one": (lambda d, mp: gpt2.get_config(dict(TINY, drop_rate=1.0)),
                             ValueError, "drop_rate", "1.0"),
    "config_dtype": (lambda d, mp: gpt2.get_config(dict(TINY, dtype="int8")), ValueError,
                     "dtype", "'int8'"),
    "config_heads_do_not_divide": (lambda d, mp: gpt2.get_config(dict(TINY, n_heads=3)),
                                   ValueError, "emb_dim", "n_heads", "8 % 3"),
    "config_unknown_preset": (lambda d, mp: gpt2.get_config("gpt2-smal"), ValueError,
                              "'gpt2-smal'", "'gpt2-small'"),
    "config_not_a_dict": (lambda d, mp: gpt2.get_config(42), TypeError, "int"),
    "config_json_missing": (lambda d, mp: gpt2.get_config(os.path.join(d, "cfg.json")),
                            FileNotFoundError, "cfg.json"),
    "config_json_invalid": (lambda d, mp: gpt2.get_config(_write(os.path.join(d, "c.json"),
                                                                 "{vocab")),
                            ValueError, "c.json", "JSON"),
    "config_json_list": (lambda d, mp: gpt2.get_config(_write(os.path.join(d, "c.json"), "[1]")),
                         ValueError, "c.json", "list"),
    "describe_seq_len": (lambda d, mp: gpt2.describe(dict(TINY), seq_len=9), ValueError,
                         "seq_len", "8", "9"),
    "forward_longer_than_context": (lambda d, mp: _tiny()(_ids(9)), ValueError, "9", "8"),
    "forward_1d_ids": (lambda d, mp: _tiny()(ft.zeros(3, dtype=ft.int64)), ValueError,
                       "(3,)"),
    "load_state_dict_other_width": (lambda d, mp: _tiny().load_state_dict(
        _tiny(emb_dim=16).state_dict()), RuntimeError, "tok_emb.weight", "[32, 16]", "[32, 8]"),
    "checkpoint_other_config": (lambda d, mp: gpt2.load_checkpoint(
        _saved_checkpoint(d), _tiny(n_layers=2)), ValueError, "n_layers", "1", "2"),
    "checkpoint_config_disagrees": (lambda d, mp: gpt2_checkpoint.load_model(
        _edit_config(d, emb_dim=16)), ValueError, "tok_emb.weight", "(32, 8)", "(32, 16)"),
    "checkpoint_weights_flipped": (lambda d, mp: gpt2.load_checkpoint(
        _damage_weights(d, _flip_header), _tiny()), ValueError, "model.safetensors"),
    "checkpoint_weights_truncated": (lambda d, mp: gpt2.load_checkpoint(
        _damage_weights(d, lambda data: bytes(data[:len(data) // 2])), _tiny()), ValueError,
        "model.safetensors"),
    "checkpoint_missing": (lambda d, mp: gpt2.load_checkpoint(os.path.join(d, "run"), _tiny()),
                           FileNotFoundError, "run"),
    "checkpoint_incomplete": (lambda d, mp: gpt2.load_checkpoint(
        _remove(d, "config.json"), _tiny()), FileNotFoundError, "config.json"),
    "checkpoint_state_corrupt": (lambda d, mp: gpt2.load_checkpoint(
        _corrupt_state(d), _tiny()), ValueError, "state.json", "JSON"),
    "tokenizer_bpe_unreachable": (_bpe_unreachable, RuntimeError, "{folder}",
                                  "TIKTOKEN_CACHE_DIR", "'bytes'"),
    "tokenizer_unknown": (lambda d, mp: gpt2.get_tokenizer("gpt3"), ValueError, "'gpt3'",
                          "bytes"),
    "decode_outside_vocabulary": (lambda d, mp: gpt2.get_tokenizer("bytes").decode([65, 300]),
                                  ValueError, "300", "0..256"),
    "generate_prompt_too_long": (lambda d, mp: _generate(idx=_ids(9)), ValueError, "9", "8"),
    "generate_negative_new_tokens": (lambda d, mp: _generate(max_new_tokens=-1), ValueError,
                                     "max_new_tokens", "-1"),
    "generate_negative_temperature": (lambda d, mp: _generate(temperature=-0.5), ValueError,
                                      "temperature", "-0.5"),
    "generate_top_k_zero": (lambda d, mp: _generate(temperature=1.0, top_k=0), ValueError,
                            "top_k", "0"),
    "generate_top_p_above_one": (lambda d, mp: _generate(temperature=1.0, top_p=1.5),
                                 ValueError, "top_p", "1.5"),
    "generate_float_ids": (lambda d, mp: _generate(idx=ft.zeros(1, 2)), TypeError, "float32"),
    "generate_list_ids": (lambda d, mp: _generate(idx=[[1, 2]]), TypeError, "list"),
    "generate_empty_prompt": (lambda d, mp: _generate(idx=_ids(0)), ValueError, "(1, 0)"),
    "from_hf_missing_path": (lambda d, mp: gpt2.GPTModel.from_hf(os.path.join(d, "nowhere")),
                             FileNotFoundError, "nowhere"),
    "from_hf_text_file": (lambda d, mp: gpt2.GPTModel.from_hf(
        _write(os.path.join(d, "notes.safetensors"), "not weights"), config=dict(TINY)),
        RuntimeError, "notes.safetensors"),
    "from_hf_other_model": (lambda d, mp: _not_gpt2_weights(d), RuntimeError, "missing keys",
                            "h.0.", "encoder.weight"),
    "from_hf_folder_without_weights": (lambda d, mp: gpt2.GPTModel.from_hf(d),
                                       FileNotFoundError, "model.safetensors"),
}


# *** the tests ***

# torch warns before it fails on loss inputs of different sizes; the warning is expected
@pytest.mark.filterwarnings("ignore:Using a target size")
@pytest.mark.parametrize("name", list(NN_CASES))
def test_nn_misuse(name):
    fn, *needles = NN_CASES[name]
    assert_raises_like(fn, *needles)


@pytest.mark.parametrize("name", list(AUTOGRAD_CASES))
def test_autograd_misuse(name):
    fn, *needles = AUTOGRAD_CASES[name]
    assert_raises_like(fn, *needles)


@pytest.mark.parametrize("name", list(OPTIM_CASES))
def test_optim_misuse(name):
    fn, *needles = OPTIM_CASES[name]
    assert_raises_like(fn, *needles)


@pytest.mark.parametrize("name", list(DATA_CASES))
def test_data_misuse(name):
    fn, *needles = DATA_CASES[name]
    assert_raises_like(fn, *needles)


@pytest.mark.parametrize("name", list(SERIALIZATION_CASES))
def test_serialization_misuse(name, tmp_path):
    fn, *needles = SERIALIZATION_CASES[name]
    assert_raises_like(lambda M: fn(M, str(tmp_path)), *needles)


@pytest.mark.parametrize("name", list(GPT2_CASES))
def test_gpt2_misuse(name, tmp_path, monkeypatch):
    fn, expected, *needles = GPT2_CASES[name]
    with pytest.raises(expected) as info:
        fn(str(tmp_path), monkeypatch)
    message = str(info.value)
    for needle in needles:
        needle = needle.format(folder=tmp_path)
        assert needle in message, f"message {message!r} does not mention {needle!r}"


TABLES = (NN_CASES, AUTOGRAD_CASES, OPTIM_CASES, DATA_CASES, SERIALIZATION_CASES, GPT2_CASES)


def test_catalogue_is_big_enough():
    assert sum(len(t) for t in TABLES) >= 70


def test_both_catalogues_together():
    """The docs quote the size of the two misuse catalogues together."""
    assert sum(len(t) for t in TABLES) + len(TENSOR_OP_CASES) >= 250
