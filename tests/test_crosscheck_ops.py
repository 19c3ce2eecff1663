"""One line per op: ``ferrotorch.testing.crosscheck`` runs the same function with ferrotorch and
with torch and compares outputs and input gradients (the user-facing checker, used on the hot
paths of a transformer; float32 and float64, contiguous and transposed inputs)."""

import ferrotorch as ft
import numpy as np
import pytest

rng = np.random.default_rng(0)


def arr(*shape, dtype="float64"):
    return rng.standard_normal(shape).astype(dtype)


def targets(n, c):
    return rng.integers(0, c, size=n).astype("int64")


OPS = {
    "gelu": (lambda M, x: M.nn.functional.gelu(x), lambda d: (arr(4, 9, dtype=d),)),
    "gelu_tanh": (lambda M, x: M.nn.functional.gelu(x, approximate="tanh"),
                  lambda d: (arr(4, 9, dtype=d),)),
    "softmax_T": (lambda M, x: M.softmax(x.T, dim=-1), lambda d: (arr(5, 3, dtype=d),)),
    "log_softmax": (lambda M, x: M.log_softmax(x, dim=0), lambda d: (arr(5, 3, dtype=d),)),
    "layer_norm": (lambda M, x, w, b: M.nn.functional.layer_norm(x, (6,), w, b),
                   lambda d: (arr(2, 3, 6, dtype=d), arr(6, dtype=d), arr(6, dtype=d))),
    "layer_norm_T": (lambda M, x: M.nn.functional.layer_norm(x.transpose(0, 1), (4,)),
                     lambda d: (arr(4, 3, dtype=d),)),
    "cross_entropy": (lambda M, x, t: M.nn.functional.cross_entropy(x, t, label_smoothing=0.1),
                      lambda d: (arr(6, 5, dtype=d), targets(6, 5))),
    "cross_entropy_kdim": (lambda M, x, t: M.nn.functional.cross_entropy(x, t),
                           lambda d: (arr(2, 5, 3, dtype=d), targets(6, 5).reshape(2, 3))),
    "sdpa_causal": (lambda M, q, k, v: M.nn.functional.scaled_dot_product_attention(
        q, k, v, is_causal=True), lambda d: (arr(2, 3, 5, 4, dtype=d), arr(2, 3, 5, 4, dtype=d),
                                             arr(2, 3, 5, 4, dtype=d))),
    "sdpa_bool_mask": (lambda M, q, k, v: M.nn.functional.scaled_dot_product_attention(
        q, k, v, attn_mask=M.ones(5, 7, dtype=M.bool).tril(2)),
        lambda d: (arr(2, 5, 4, dtype=d), arr(2, 7, 4, dtype=d), arr(2, 7, 3, dtype=d))),
    "linear": (lambda M, x, w, b: M.nn.functional.linear(x, w, b),
               lambda d: (arr(3, 4, dtype=d), arr(5, 4, dtype=d), arr(5, dtype=d))),
    "mlp_block": (lambda M, x, w1, w2: M.nn.functional.gelu(x @ w1.T) @ w2,
                  lambda d: (arr(3, 4, dtype=d), arr(8, 4, dtype=d), arr(8, 4, dtype=d))),
    "bce_with_logits": (lambda M, x, y: M.nn.functional.binary_cross_entropy_with_logits(x, y),
                        lambda d: (arr(4, 3, dtype=d), rng.random((4, 3)).astype(d))),
    "mse": (lambda M, x, y: M.nn.functional.mse_loss(x, y),
            lambda d: (arr(4, 3, dtype=d), arr(4, 3, dtype=d))),
}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", sorted(OPS))
def test_op_crosschecks_with_torch(name, dtype):
    fn, make = OPS[name]
    report = ft.testing.crosscheck(fn, *make(dtype))
    assert report.passed, str(report)
    assert len(report.comparisons) >= 2  # the output and at least one input gradient


def test_crosscheck_catches_a_wrong_gradient():
    class WrongGrad(ft.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, g):
            return g * 3

    def fn(M, x):
        return WrongGrad.apply(x) if M is ft else x * 2

    with pytest.raises(AssertionError, match="FAIL"):
        ft.testing.crosscheck(fn, arr(3))
