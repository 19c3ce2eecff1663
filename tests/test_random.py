"""Random numbers: after the same seed, ferrotorch's CPU generator reproduces torch's values
exactly (rtol=0, atol=0), for every sampler, every size and every seed, and its state bytes
equal torch's."""

import ferrotorch as ft
import numpy as np
import pytest
import torch
from conftest import assert_same, pair

torch.set_num_threads(1)

SEEDS = [0, 1, 7, 42, 123, 2**31 - 1, 2**32 + 5, 2**63 - 1, 2**64 - 1, 987654321987]
SIZES = [0, 1, 3, 15, 16, 17, 100, 1000, 10007]
SHAPES = [(3, 5), (4, 16, 8), (2, 0, 3), (1,), ()]
FLOATS = [(ft.float32, torch.float32), (ft.float64, torch.float64)]
FLOAT_IDS = ["float32", "float64"]


def exact(ours, theirs):
    assert_same(ours, theirs, rtol=0, atol=0)


def seed_both(s):
    ft.manual_seed(s)
    torch.manual_seed(s)


# *** rand / randn ***

@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("n", SIZES)
def test_rand_float32_sizes(seed, n):
    seed_both(seed)
    exact(ft.rand(n), torch.rand(n))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("n", SIZES)
def test_randn_float32_sizes(seed, n):
    seed_both(seed)
    exact(ft.randn(n), torch.randn(n))


@pytest.mark.parametrize("dt", FLOATS, ids=FLOAT_IDS)
@pytest.mark.parametrize("seed", [0, 42, 2**32 + 5, 2**63 - 1])
@pytest.mark.parametrize("n", SIZES)
def test_rand_randn_dtypes(seed, n, dt):
    seed_both(seed)
    exact(ft.rand(n, dtype=dt[0]), torch.rand(n, dtype=dt[1]))
    exact(ft.randn(n, dtype=dt[0]), torch.randn(n, dtype=dt[1]))


@pytest.mark.parametrize("dt", FLOATS, ids=FLOAT_IDS)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_rand_randn_shapes(shape, dt):
    seed_both(5)
    exact(ft.randn(shape, dtype=dt[0]), torch.randn(shape, dtype=dt[1]))
    exact(ft.rand(shape, dtype=dt[0]), torch.rand(shape, dtype=dt[1]))
    if shape:  # torch.rand() with no size at all is an error
        exact(ft.rand(*shape, dtype=dt[0]), torch.rand(*shape, dtype=dt[1]))
        exact(ft.randn(*shape, dtype=dt[0]), torch.randn(*shape, dtype=dt[1]))


def test_rand_like_randn_like():
    seed_both(11)
    a, ta = pair((4, 16, 8), "float64")
    exact(ft.rand_like(a), torch.rand_like(ta))
    exact(ft.randn_like(a), torch.randn_like(ta))
    b, tb = pair((3, 5), "float32")
    exact(ft.randn_like(b), torch.randn_like(tb))
    exact(ft.rand_like(b), torch.rand_like(tb))


# *** randint ***

RANGES = [(0, 2), (0, 10), (-5, 5), (3, 4), (-100, 2**20), (0, 2**31), (0, 2**32),
          (0, 2**32 + 1), (-(2**33), 2**33), (0, 2**40), (5, 2**40 + 3)]


@pytest.mark.parametrize("seed", [0, 42, 2**63 - 1])
@pytest.mark.parametrize("low,high", RANGES, ids=str)
@pytest.mark.parametrize("n", [0, 1, 17, 1000])
def test_randint_ranges(seed, low, high, n):
    seed_both(seed)
    exact(ft.randint(low, high, (n,)), torch.randint(low, high, (n,)))
    exact(ft.randint(low, high, size=(3, 5)), torch.randint(low, high, size=(3, 5)))


@pytest.mark.parametrize("high", [1, 2, 10, 2**31, 2**40])
def test_randint_high_only(high):
    seed_both(3)
    exact(ft.randint(high, (100,)), torch.randint(high, (100,)))
    exact(ft.randint(high, size=(4, 16, 8)), torch.randint(high, size=(4, 16, 8)))


@pytest.mark.parametrize("dtype", ["int32", "int64", "float32", "float64", "uint8"])
def test_randint_dtype(dtype):
    seed_both(8)
    exact(ft.randint(0, 100, (50,), dtype=getattr(ft, dtype)),
          torch.randint(0, 100, (50,), dtype=getattr(torch, dtype)))


# *** randperm ***

@pytest.mark.parametrize("seed", [0, 1, 42, 2**32 + 5, 2**63 - 1])
@pytest.mark.parametrize("n", [0, 1, 2, 3, 15, 16, 17, 100, 1000, 10007, 100000])
def test_randperm(seed, n):
    seed_both(seed)
    exact(ft.randperm(n), torch.randperm(n))
    exact(ft.randperm(n), torch.randperm(n))  # and the stream continues identically


@pytest.mark.parametrize("dtype", ["int32", "int64", "float32", "float64"])
def test_randperm_dtype(dtype):
    seed_both(4)
    exact(ft.randperm(50, dtype=getattr(ft, dtype)), torch.randperm(50, dtype=getattr(torch, dtype)))


# *** in-place fills ***

@pytest.mark.parametrize("dt", FLOATS, ids=FLOAT_IDS)
@pytest.mark.parametrize("seed", [0, 42, 2**63 - 1])
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("mean,std", [(0.0, 1.0), (3.0, 0.5), (-2.0, 10.0)])
def test_normal_(dt, seed, n, mean, std):
    seed_both(seed)
    exact(ft.empty(n, dtype=dt[0]).normal_(mean, std), torch.empty(n, dtype=dt[1]).normal_(mean, std))


@pytest.mark.parametrize("dt", FLOATS, ids=FLOAT_IDS)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_normal_shapes(dt, shape):
    seed_both(77)
    exact(ft.zeros(shape, dtype=dt[0]).normal_(), torch.zeros(shape, dtype=dt[1]).normal_())
    exact(ft.zeros(shape, dtype=dt[0]).normal_(1.5, 2.0), torch.zeros(shape, dtype=dt[1]).normal_(1.5, 2.0))


@pytest.mark.parametrize("dt", FLOATS, ids=FLOAT_IDS)
@pytest.mark.parametrize("seed", [0, 42, 2**63 - 1])
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("a,b", [(0.0, 1.0), (-3.0, 5.0), (10.0, 10.5)])
def test_uniform_(dt, seed, n, a, b):
    seed_both(seed)
    exact(ft.empty(n, dtype=dt[0]).uniform_(a, b), torch.empty(n, dtype=dt[1]).uniform_(a, b))


@pytest.mark.parametrize("dt", FLOATS, ids=FLOAT_IDS)
@pytest.mark.parametrize("seed", [0, 42, 2**63 - 1])
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("p", [0.0, 0.3, 0.5, 1.0])
def test_bernoulli_scalar_p(dt, seed, n, p):
    seed_both(seed)
    exact(ft.empty(n, dtype=dt[0]).bernoulli_(p), torch.empty(n, dtype=dt[1]).bernoulli_(p))


@pytest.mark.parametrize("shape", [(3, 5), (4, 16, 8), (17,), (1000,), (0,)], ids=str)
@pytest.mark.parametrize("dt", FLOATS, ids=FLOAT_IDS)
def test_bernoulli_probs(shape, dt):
    seed_both(21)
    probs = torch.rand(shape, dtype=dt[1])
    fprobs = ft.tensor(probs.numpy())
    seed_both(22)
    exact(ft.bernoulli(fprobs), torch.bernoulli(probs))
    exact(fprobs.bernoulli(), probs.bernoulli())
    exact(ft.empty(shape, dtype=dt[0]).bernoulli_(fprobs), torch.empty(shape, dtype=dt[1]).bernoulli_(probs))


def test_bernoulli_method_scalar_p():
    seed_both(9)
    a, ta = pair((100,), "float32")
    exact(a.bernoulli(0.25), ta.bernoulli(0.25))


@pytest.mark.parametrize("dt", FLOATS, ids=FLOAT_IDS)
@pytest.mark.parametrize("seed", [0, 42, 2**63 - 1])
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("lambd", [1.0, 0.5, 7.0])
def test_exponential_(dt, seed, n, lambd):
    seed_both(seed)
    exact(ft.empty(n, dtype=dt[0]).exponential_(lambd), torch.empty(n, dtype=dt[1]).exponential_(lambd))


# *** multinomial ***

def _probs(shape, dt, zeros=False):
    g = np.random.default_rng(sum(shape) + 1)
    w = g.uniform(0.0, 2.0, size=shape)
    if zeros:
        w[..., ::3] = 0.0
    return ft.tensor(w).to(dt[0]), torch.tensor(w).to(dt[1])


@pytest.mark.parametrize("dt", FLOATS, ids=FLOAT_IDS)
@pytest.mark.parametrize("seed", [0, 42, 2**63 - 1])
@pytest.mark.parametrize("shape", [(1,), (5,), (17,), (100,), (3, 8), (4, 50)], ids=str)
@pytest.mark.parametrize("num", [1, 3, 20])
def test_multinomial_with_replacement(dt, seed, shape, num):
    p, tp = _probs(shape, dt)
    seed_both(seed)
    exact(ft.multinomial(p, num, replacement=True), torch.multinomial(tp, num, replacement=True))
    exact(p.multinomial(num, True), tp.multinomial(num, True))


@pytest.mark.parametrize("dt", FLOATS, ids=FLOAT_IDS)
@pytest.mark.parametrize("seed", [0, 42, 2**63 - 1])
@pytest.mark.parametrize("shape", [(1,), (5,), (17,), (100,), (3, 8), (4, 50)], ids=str)
@pytest.mark.parametrize("num", [1, 3, 5])
def test_multinomial_without_replacement(dt, seed, shape, num):
    if num > shape[-1]:
        num = shape[-1]
    p, tp = _probs(shape, dt)
    seed_both(seed)
    exact(ft.multinomial(p, num), torch.multinomial(tp, num))
    exact(p.multinomial(num, replacement=False), tp.multinomial(num, replacement=False))


@pytest.mark.parametrize("replacement", [False, True])
def test_multinomial_with_zero_weights(replacement):
    p, tp = _probs((3, 30), FLOATS[0], zeros=True)
    seed_both(12)
    exact(ft.multinomial(p, 10, replacement=replacement), torch.multinomial(tp, 10, replacement=replacement))


def test_multinomial_all_categories_without_replacement():
    p, tp = _probs((2, 40), FLOATS[1])
    seed_both(13)
    exact(ft.multinomial(p, 40), torch.multinomial(tp, 40))


# *** interleaved streams ***

@pytest.mark.parametrize("seed", [0, 42, 2**32 + 5])
def test_interleaved_sequence(seed):
    seed_both(seed)
    steps = [
        lambda M: M.rand(3),
        lambda M: M.randn(17),
        lambda M: M.randint(0, 10, (5,)),
        lambda M: M.rand(16, dtype=M.float64),
        lambda M: M.randn(1),
        lambda M: M.randperm(20),
        lambda M: M.randint(-(2**35), 2**35, (7,)),
        lambda M: M.empty(33).normal_(2.0, 3.0),
        lambda M: M.empty(9, dtype=M.float64).uniform_(-1, 1),
        lambda M: M.empty(19).bernoulli_(0.4),
        lambda M: M.empty(21).exponential_(2.0),
        lambda M: M.multinomial(M.tensor([0.1, 0.2, 0.3, 0.4]), 3),
        lambda M: M.multinomial(M.tensor([0.1, 0.2, 0.3, 0.4]), 6, replacement=True),
        lambda M: M.randn(3, 5, dtype=M.float64),
        lambda M: M.rand(1000),
    ]
    for i, step in enumerate(steps):
        ours, theirs = step(ft), step(torch)
        exact(ours, theirs)
    # and the streams still agree after all of it
    exact(ft.rand(10), torch.rand(10))


def test_odd_then_even_randn_sizes():
    """randn of small sizes, then large ones: the normal cache and vector path must match."""
    seed_both(100)
    for n in [1, 2, 3, 15, 16, 17, 31, 1, 5, 100, 1]:
        exact(ft.randn(n), torch.randn(n))
        exact(ft.randn(n, dtype=ft.float64), torch.randn(n, dtype=torch.float64))


# *** generators ***

@pytest.mark.parametrize("seed", SEEDS)
def test_private_generator_matches_torch(seed):
    g, tg = ft.Generator().manual_seed(seed), torch.Generator().manual_seed(seed)
    exact(ft.rand(100, generator=g), torch.rand(100, generator=tg))
    exact(ft.randn(17, generator=g), torch.randn(17, generator=tg))
    exact(ft.randint(0, 2**40, (9,), generator=g), torch.randint(0, 2**40, (9,), generator=tg))
    exact(ft.randperm(50, generator=g), torch.randperm(50, generator=tg))
    exact(ft.empty(20).normal_(1, 2, generator=g), torch.empty(20).normal_(1, 2, generator=tg))
    exact(ft.empty(20).uniform_(-2, 2, generator=g), torch.empty(20).uniform_(-2, 2, generator=tg))
    exact(ft.empty(20).bernoulli_(0.7, generator=g), torch.empty(20).bernoulli_(0.7, generator=tg))
    exact(ft.empty(20).exponential_(3.0, generator=g), torch.empty(20).exponential_(3.0, generator=tg))
    p = [0.5, 0.1, 0.2, 0.2]
    exact(ft.multinomial(ft.tensor(p), 2, generator=g), torch.multinomial(torch.tensor(p), 2, generator=tg))
    exact(ft.bernoulli(ft.tensor(p), generator=g), torch.bernoulli(torch.tensor(p), generator=tg))


def test_private_generator_does_not_disturb_default():
    seed_both(31)
    g, tg = ft.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    exact(ft.rand(4), torch.rand(4))
    exact(ft.randn(100, generator=g), torch.randn(100, generator=tg))
    exact(ft.rand(4), torch.rand(4))
    # default stream equals a fresh stream that never saw the private draws
    ft.manual_seed(31)
    a = ft.rand(8)
    ft.manual_seed(31)
    ft.rand(3, generator=ft.Generator().manual_seed(1))
    b = ft.rand(8)
    assert np.array_equal(a.numpy(), b.numpy())


def test_generator_initial_seed_and_returns_self():
    g = ft.Generator()
    assert g.manual_seed(1234) is g
    assert g.initial_seed() == torch.Generator().manual_seed(1234).initial_seed()


@pytest.mark.parametrize("seed", SEEDS)
def test_initial_seed(seed):
    seed_both(seed)
    assert ft.initial_seed() == torch.initial_seed()


@pytest.mark.parametrize("seed", [-1, -(2**63)])
def test_negative_seed(seed):
    seed_both(seed)
    assert ft.initial_seed() == torch.initial_seed()
    exact(ft.rand(20), torch.rand(20))


def test_manual_seed_returns_default_generator():
    assert ft.manual_seed(3) is ft.default_generator


# *** rng state ***

def state_equal(ours, theirs):
    assert ours.dtype == ft.uint8
    assert tuple(ours.shape) == tuple(theirs.shape)
    assert np.array_equal(ours.numpy(), theirs.numpy())


@pytest.mark.parametrize("seed", SEEDS)
def test_get_rng_state_after_seed(seed):
    seed_both(seed)
    state_equal(ft.get_rng_state(), torch.get_rng_state())


@pytest.mark.parametrize("draw", [
    lambda M: M.rand(1), lambda M: M.rand(1000), lambda M: M.randn(1), lambda M: M.randn(3),
    lambda M: M.randn(16), lambda M: M.randn(1, dtype=M.float64), lambda M: M.randperm(100),
    lambda M: M.randint(0, 2**40, (5,)), lambda M: M.empty(7).normal_(),
    lambda M: M.empty(3).exponential_(),
], ids=["rand1", "rand1000", "randn1", "randn3", "randn16", "randn1_f64", "randperm", "randint64",
        "normal_7", "exponential"])
def test_get_rng_state_after_draws(draw):
    seed_both(42)
    draw(ft), draw(torch)
    state_equal(ft.get_rng_state(), torch.get_rng_state())


def test_set_rng_state_round_trip():
    ft.manual_seed(7)
    ft.randn(3)
    state = ft.get_rng_state()
    a = (ft.rand(50), ft.randn(5), ft.randint(0, 100, (10,)))
    ft.set_rng_state(state)
    b = (ft.rand(50), ft.randn(5), ft.randint(0, 100, (10,)))
    for x, y in zip(a, b):
        assert np.array_equal(x.numpy(), y.numpy())


def test_set_rng_state_from_torch_state():
    """A state captured from torch (including its cached normal) continues torch's stream."""
    torch.manual_seed(99)
    torch.randn(1)
    torch.randn(1, dtype=torch.float64)
    st = torch.get_rng_state()
    ft.set_rng_state(ft.tensor(st.numpy()))
    exact(ft.randn(5), torch.randn(5))
    exact(ft.randn(3, dtype=ft.float64), torch.randn(3, dtype=torch.float64))
    exact(ft.rand(20), torch.rand(20))


def test_torch_accepts_ferrotorch_state():
    ft.manual_seed(5)
    ft.rand(13)
    st = ft.get_rng_state()
    torch.set_rng_state(torch.from_numpy(np.array(st.numpy())))
    exact(ft.randn(40), torch.randn(40))


def test_generator_get_set_state():
    g, tg = ft.Generator().manual_seed(2024), torch.Generator().manual_seed(2024)
    ft.rand(10, generator=g), torch.rand(10, generator=tg)
    s, ts = g.get_state(), tg.get_state()
    state_equal(s, ts)
    a = ft.randn(30, generator=g)
    exact(a, torch.randn(30, generator=tg))
    g.set_state(s)
    b = ft.randn(30, generator=g)
    assert np.array_equal(a.numpy(), b.numpy())
    g2 = ft.Generator()
    g2.set_state(s)
    assert np.array_equal(ft.randn(30, generator=g2).numpy(), a.numpy())


def test_get_state_is_a_copy():
    ft.manual_seed(1)
    s = ft.get_rng_state()
    before = s.numpy().copy()
    ft.rand(100)
    assert np.array_equal(s.numpy(), before)


# *** non-contiguous views ***

@pytest.mark.parametrize("layout", ["transposed", "sliced"])
@pytest.mark.parametrize("fill", ["normal_", "uniform_", "bernoulli_", "exponential_"])
@pytest.mark.parametrize("shape", [(3, 5), (5, 8), (4, 16), (17, 3)], ids=str)
def test_fill_non_contiguous_view(layout, fill, shape):
    a, ta = pair(shape, "float32", layout)
    assert not ta.is_contiguous()
    seed_both(3)
    getattr(a, fill)()
    getattr(ta, fill)()
    exact(a, ta)


@pytest.mark.parametrize("fill", ["normal_", "uniform_", "exponential_"])
@pytest.mark.parametrize("dt", FLOATS, ids=FLOAT_IDS)
def test_fill_contiguous_rows_of_a_larger_tensor(fill, dt):
    # Rows 3..7 are contiguous at an offset: they are drawn into in place, the rest stays.
    base, tbase = ft.zeros(9, 20, dtype=dt[0]), torch.zeros(9, 20, dtype=dt[1])
    seed_both(5)
    getattr(base[3:7], fill)()
    getattr(tbase[3:7], fill)()
    exact(base, tbase)
    getattr(base[8], fill)()
    getattr(tbase[8], fill)()
    exact(base, tbase)


@pytest.mark.parametrize("fill", ["normal_", "uniform_"])
def test_fill_of_a_value_backward_reads_fails_backward_like_torch(fill):
    for mod in (ft, torch):
        x = mod.ones(40, requires_grad=True)
        y = x * 2
        z = y * y  # saves y
        getattr(y, fill)()
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            z.sum().backward()


def test_normal_on_column_and_base_updated():
    base, tbase = ft.zeros(20, 6), torch.zeros(20, 6)
    seed_both(17)
    base[:, 1].normal_(0, 1)
    tbase[:, 1].normal_(0, 1)
    base.t()[2:4].normal_(5, 2)
    tbase.t()[2:4].normal_(5, 2)
    exact(base, tbase)


# *** determinism ***

def test_same_seed_same_numbers_twice():
    def run():
        ft.manual_seed(2718)
        return [ft.rand(37).numpy(), ft.randn(101).numpy(), ft.randint(0, 9, (20,)).numpy(),
                ft.randperm(64).numpy(), ft.empty(33).normal_().numpy()]

    for x, y in zip(run(), run()):
        assert np.array_equal(x, y)


def test_different_seeds_differ():
    ft.manual_seed(1)
    a = ft.rand(100).numpy()
    ft.manual_seed(2)
    b = ft.rand(100).numpy()
    assert not np.array_equal(a, b)


# *** torch.normal functional forms ***

def test_normal_function_forms():
    seed_both(61)
    exact(ft.normal(2.0, 3.0, size=(4, 5)), torch.normal(2.0, 3.0, size=(4, 5)))
    exact(ft.normal(0.0, 1.0, (17,)), torch.normal(0.0, 1.0, (17,)))
    m, tm = pair((3, 6), "float32", seed=1)
    s, ts = pair((3, 6), "float32", seed=2, low=0.1, high=2)
    exact(ft.normal(m, s), torch.normal(tm, ts))
    exact(ft.normal(m, 0.5), torch.normal(tm, 0.5))
    exact(ft.normal(1.0, s), torch.normal(1.0, ts))
