"""Threads: the kernels' thread-count control (``get_num_threads`` / ``set_num_threads``) and the
FMA yardstick the benchmarks use, each case in a fresh interpreter (the pool starts once); and
ferrotorch used from several Python threads at once: correct results, the GIL released in heavy
kernels, grad mode per thread, concurrent backward and training."""

import subprocess
import sys
import textwrap
import threading
import time

import ferrotorch as ft
import numpy as np
import pytest
import torch
from conftest import assert_same


def run(code):
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_set_before_first_op_then_results_match_torch():
    out = run("""
        import ferrotorch as ft, numpy as np, torch
        ft.set_num_threads(1)
        assert ft.get_num_threads() == 1
        a = np.random.default_rng(0).standard_normal((300, 200)).astype("float32")
        got = (ft.from_numpy(a) @ ft.from_numpy(a.T)).numpy()
        want = (torch.from_numpy(a) @ torch.from_numpy(a.T)).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)
        print("ok")
    """)
    assert out.strip() == "ok"


def test_set_after_the_pool_started_names_the_running_count():
    out = run("""
        import ferrotorch as ft
        n = ft.get_num_threads()
        (ft.ones(100000) + 1).sum()
        ft.set_num_threads(n)  # confirming the running count is fine
        try:
            ft.set_num_threads(n + 1)
        except RuntimeError as e:
            print(e)
    """)
    assert "already runs" in out and "RAYON_NUM_THREADS" in out


@pytest.mark.parametrize("bad", [0, -2])
def test_non_positive_count_is_torchs_error(bad):
    for M in (ft, torch):
        with pytest.raises(RuntimeError, match="positive integer"):
            M.set_num_threads(bad)


def test_fma_peak_is_a_positive_rate():
    assert ft._C._fma_peak_gflops(1, 20) > 0.1


# *** several Python threads at once ***

def run_in_threads(*jobs):
    """Runs each job in its own thread, all released together; returns their results in order
    and re-raises the first exception a job raised."""
    start = threading.Barrier(len(jobs))
    results = [None] * len(jobs)
    errors = []

    def run(i, job):
        start.wait()
        try:
            results[i] = job()
        except BaseException as e:  # handed to the main thread, where pytest sees it
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i, job)) for i, job in enumerate(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "a thread is still running after 300 s"
    if errors:
        raise errors[0]
    return results


def assert_equal_results(got, want):
    """Bitwise-equal ferrotorch results (the same kernels on the same inputs)."""
    assert got.keys() == want.keys()
    for name in want:
        np.testing.assert_array_equal(got[name].numpy(), want[name].numpy(), err_msg=name)


def workload_inputs(M, seed):
    g = np.random.default_rng(seed)
    a = M.tensor(g.standard_normal((256, 256)).astype(np.float32))
    b = M.tensor(g.standard_normal((256, 256)).astype(np.float32))
    target = M.tensor(g.integers(0, 256, 256))
    idx = M.tensor(g.integers(0, 256, 64))
    return a, b, target, idx


def workload(M, a, b, target, idx):
    """A mix of kernels: matmul, softmax, layer_norm, cross_entropy forward and backward,
    elementwise ops and indexing."""
    F = M.nn.functional
    x = a.clone().requires_grad_()
    prod = x @ b
    loss = F.cross_entropy(prod, target)
    loss.backward()
    return {
        "matmul": prod.detach(),
        "softmax": prod.detach().softmax(-1),
        "layer_norm": F.layer_norm(a, (256,)),
        "cross_entropy": loss.detach(),
        "cross_entropy_grad": x.grad,
        "elementwise": a.sin() * b.clamp(-1, 1).exp() + a.abs().sqrt(),
        "gather_rows": a[idx],
        "index_select_cols": a.index_select(1, idx).sum(0),
        "masked": a[a > 1.5],
    }


def test_concurrent_ops_match_single_threaded_and_torch():
    n_threads, repeats = 4, 12
    inputs = [workload_inputs(ft, seed) for seed in range(n_threads)]
    alone = [workload(ft, *inp) for inp in inputs]

    def job(i):
        return lambda: [workload(ft, *inputs[i]) for _ in range(repeats)]

    together = run_in_threads(*(job(i) for i in range(n_threads)))
    for i in range(n_threads):
        for got in together[i]:
            assert_equal_results(got, alone[i])
        theirs = workload(torch, *workload_inputs(torch, i))
        for name, want in theirs.items():
            # sums over 256 products: a little looser than the float32 table
            assert_same(alone[i][name], want, rtol=1e-5, atol=1e-4)


def python_ticks_during(work):
    """How often a pure-Python thread got to run while ``work()`` ran in this thread.

    With a switch interval of 2 s the interpreter never takes the GIL away from ``work`` (it
    lasts well under that), so the other thread runs only while ``work`` has released the GIL.
    The other thread sleeps between ticks, which hands the GIL back at once.
    """
    ticks = 0
    working = False
    stop = threading.Event()

    def count():
        nonlocal ticks
        while not stop.is_set():
            if working:
                ticks += 1
            time.sleep(1e-4)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(2.0)
    counter = threading.Thread(target=count)
    counter.start()
    try:
        time.sleep(0.01)
        working = True
        work()
        working = False
    finally:
        stop.set()
        counter.join()
        sys.setswitchinterval(interval)
    return ticks


def test_heavy_kernels_release_the_gil():
    a, b = ft.randn(512, 512), ft.randn(512, 512)
    a @ b  # the first call starts the kernels' thread pool

    def matmuls():
        for _ in range(20):
            a @ b

    # the yardstick: a C loop that keeps the GIL lets the other thread tick (almost) never
    held = python_ticks_during(lambda: sum(range(3_000_000)))
    released = python_ticks_during(matmuls)
    assert held < 20, f"the probe is broken: {held} ticks while the GIL was held"
    assert released >= 100, (
        f"a pure-Python thread ran only {released} times during 20 matmuls of 512x512 "
        f"(GIL held: {held}): the matmul keeps the GIL"
    )


@pytest.mark.parametrize("M", [ft, torch], ids=["ferrotorch", "torch"])
def test_grad_mode_is_per_thread(M):
    """no_grad / set_grad_enabled in one thread leave the other thread's grad mode alone; steps
    are interleaved with a barrier."""
    step = threading.Barrier(2)
    seen = {}
    x = M.ones(3, requires_grad=True)

    def a():
        with M.no_grad():
            step.wait()  # 1: a is in no_grad
            step.wait()  # 2: b has looked
            seen["a in no_grad"] = (M.is_grad_enabled(), (x * 2).requires_grad)
        step.wait()  # 3: a left no_grad
        step.wait()  # 4: b disabled grad
        seen["a while b disabled"] = (M.is_grad_enabled(), (x * 2).requires_grad)
        step.wait()  # 5: a has looked

    def b():
        step.wait()  # 1
        seen["b while a in no_grad"] = (M.is_grad_enabled(), (x * 2).requires_grad)
        step.wait()  # 2
        step.wait()  # 3
        with M.set_grad_enabled(False):
            step.wait()  # 4
            step.wait()  # 5
            seen["b disabled"] = (M.is_grad_enabled(), (x * 2).requires_grad)
        seen["b after"] = M.is_grad_enabled()

    run_in_threads(a, b)
    assert seen == {
        "a in no_grad": (False, False),
        "b while a in no_grad": (True, True),
        "a while b disabled": (True, True),
        "b disabled": (False, False),
        "b after": True,
    }


def test_new_thread_starts_with_grad_enabled_like_torch():
    def grad_in_new_thread(M):
        with M.no_grad():
            return run_in_threads(M.is_grad_enabled)[0]

    assert grad_in_new_thread(ft) == grad_in_new_thread(torch) is True


def _mlp_grads(seed, steps):
    """Gradients of a two-layer net on its own data, recomputed ``steps`` times."""
    g = ft.Generator().manual_seed(seed)
    x = ft.randn(64, 32, generator=g)
    w1 = ft.randn(32, 64, generator=g).requires_grad_()
    w2 = ft.randn(64, 8, generator=g).requires_grad_()
    grads = []
    for _ in range(steps):
        loss = ((x @ w1).tanh() @ w2).softmax(-1).log().mean()
        gw1, gw2 = ft.autograd.grad(loss, [w1, w2])
        grads.append({"w1": gw1, "w2": gw2, "loss": loss.detach()})
    return grads


def test_concurrent_backward_on_separate_graphs():
    alone = [_mlp_grads(seed, 1)[0] for seed in range(4)]
    together = run_in_threads(*(lambda s=seed: _mlp_grads(s, 10) for seed in range(4)))
    for seed in range(4):
        for got in together[seed]:
            assert_equal_results(got, alone[seed])


@pytest.mark.parametrize("M", [ft, torch], ids=["ferrotorch", "torch"])
def test_concurrent_backward_into_a_shared_leaf_accumulates_every_gradient(M):
    w = M.tensor(np.random.default_rng(0).standard_normal((16, 16)), requires_grad=True)
    xs = [M.tensor(np.random.default_rng(s).standard_normal((8, 16))) for s in range(1, 5)]

    def job(x):
        def backward_20_times():
            for _ in range(20):
                (x @ w).tanh().sum().backward()
        return backward_20_times

    run_in_threads(*(job(x) for x in xs))
    w_alone = M.tensor(w.detach().numpy(), requires_grad=True)
    for x in xs:
        (x @ w_alone).tanh().sum().backward()
    np.testing.assert_allclose(w.grad.numpy(), 20 * w_alone.grad.numpy(), rtol=1e-12, atol=1e-12)


def _train_small_model(seed, steps=30):
    """Trains a small model with its own AdamW; returns its final weights."""
    g = ft.Generator().manual_seed(seed)
    model = ft.nn.Sequential(ft.nn.Linear(16, 32), ft.nn.GELU(), ft.nn.LayerNorm(32),
                             ft.nn.Linear(32, 4))
    with ft.no_grad():
        for p in model.parameters():
            p.copy_(ft.randn(p.shape, generator=g) * 0.3)
    x = ft.randn(64, 16, generator=g)
    y = ft.randint(0, 4, (64,), generator=g)
    opt = ft.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(steps):
        opt.zero_grad()
        ft.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return {name: p.detach() for name, p in model.state_dict().items()}


def test_two_threads_training_their_own_models_equal_a_sequential_run():
    sequential = [_train_small_model(seed) for seed in (1, 2)]
    together = run_in_threads(lambda: _train_small_model(1), lambda: _train_small_model(2))
    for got, want in zip(together, sequential):
        assert_equal_results(got, want)


def _read_shared(t):
    """Views and reductions of ``t``, which must not change it."""
    return {
        "rows": t[1::3].sum(1),
        "transposed": t.t().contiguous(),
        "narrow": t.narrow(1, 5, 20).mean(0),
        "reshape": t.reshape(-1, 16).amax(1),
        "expand": t[:1].expand(8, -1).sum(0),
        "var": t.var(0),
        "norm": t.norm(dim=1),
        "argmax": t.argmax(1),
        "sort": t[0].sort().values,
        "cumsum": t.cumsum(1)[:, -1],
    }


def test_shared_read_only_tensor_used_by_many_threads():
    t = ft.tensor(np.random.default_rng(0).standard_normal((128, 64)).astype(np.float32))
    before = t.numpy().copy()
    alone = _read_shared(t)
    together = run_in_threads(*(lambda: [_read_shared(t) for _ in range(20)] for _ in range(6)))
    for results in together:
        for got in results:
            assert_equal_results(got, alone)
    np.testing.assert_array_equal(t.numpy(), before)
