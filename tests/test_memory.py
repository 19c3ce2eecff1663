"""Memory is given back: tensors, graphs, hooks, modules, optimizers, loaders and numpy buffers
are freed when Python drops them, an op that fails leaves nothing behind, and an allocation that
cannot be made is a RuntimeError.

The ground truth is ``ferrotorch._C._live_storages()`` (the storages alive in the process and
their bytes). Each scenario also runs in torch, where weak references to the tensors it watches
tell whether torch needs ``gc.collect()`` to free them: ferrotorch may need the cycle collector
only where torch does.
"""

import gc
import os
import platform
import subprocess
import sys
import weakref
from contextlib import contextmanager
from pathlib import Path

import ferrotorch as ft
import numpy as np
import pytest
import torch
from conftest import assert_same


def live():
    return ft._C._live_storages()


def collect():
    """Runs the cycle collector on the young generation: the tests pause the collector while a
    scenario runs, so everything the scenario made is still young. (A full pass costs ~0.4 s
    with torch loaded.)"""
    gc.collect(0)


@contextmanager
def gc_paused():
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def ours_left(scenario):
    """Storages (count, bytes) that ``scenario(ft, watch)`` leaves alive: (before gc.collect(),
    after). The scenario runs once first, so lazily built caches are not counted."""
    with gc_paused():
        scenario(ft, lambda t: t)
    collect()
    with gc_paused():
        before = live()
        scenario(ft, lambda t: t)
        without_gc = live()
    collect()
    after_gc = live()

    def above_before(now):
        return now[0] - before[0], now[1] - before[1]

    return above_before(without_gc), above_before(after_gc)


def torch_left(scenario):
    """Tensors that ``scenario(torch, watch)`` watched and left alive: (before gc.collect(),
    after)."""
    refs = []

    def watch(t):
        refs.append(weakref.ref(t))
        return t

    collect()
    with gc_paused():
        scenario(torch, watch)
        without_gc = sum(r() is not None for r in refs)
    collect()
    assert refs, "the scenario watches no tensor"
    return without_gc, sum(r() is not None for r in refs)


def assert_freed_like_torch(scenario):
    theirs_without_gc, theirs_after_gc = torch_left(scenario)
    assert theirs_after_gc == 0, "torch keeps the watched tensors: the scenario keeps a reference"
    without_gc, after_gc = ours_left(scenario)
    assert after_gc == (0, 0), f"{after_gc} (storages, bytes) leaked even after gc.collect()"
    if theirs_without_gc == 0:
        assert without_gc == (0, 0), (
            f"{without_gc} (storages, bytes) stay alive until gc.collect(); torch frees them "
            "as soon as they are dropped (a reference cycle?)"
        )


# *** scenarios: each builds something with module M, watches its tensors, and drops it all ***

def plain(M, watch):
    x = watch(M.randn(64, 64))
    y = watch(x * 2 + 1)
    y.sum()


def view_outlives_base(M, watch):
    x = watch(M.randn(64, 64))
    v = watch(x[1:, ::2].t())
    w = watch(v.unsqueeze(0).expand(3, -1, -1))
    del x
    (v.sum() + w.sum()).item()


def forward_without_backward(M, watch):
    x = watch(M.randn(16, 16, requires_grad=True))
    watch((x.tanh() @ x).softmax(-1).sum())


def forward_backward(M, watch):
    x = watch(M.randn(16, 16, requires_grad=True))
    y = watch((x.tanh() @ x).softmax(-1).sum())
    y.backward()
    watch(x.grad)


def backward_twice_with_retain_graph(M, watch):
    x = watch(M.randn(16, 16, requires_grad=True))
    y = watch((x.exp() * x).sum())
    y.backward(retain_graph=True)
    y.backward()
    watch(x.grad)


def retain_graph_then_drop_unused(M, watch):
    x = watch(M.randn(16, 16, requires_grad=True))
    y = watch((x.sigmoid() @ x).sum())
    y.backward(retain_graph=True)


def double_backward_with_autograd_grad(M, watch):
    x = watch(M.randn(16, 16, requires_grad=True))
    y = watch((x ** 3).sum())
    (g,) = M.autograd.grad(y, x, create_graph=True)
    watch(g)
    (g * g).sum().backward()
    watch(x.grad)


def backward_create_graph_then_grad_reset(M, watch):
    # .grad gets a graph that holds x: a cycle, which torch asks users to break with grad = None
    x = watch(M.randn(16, 16, requires_grad=True))
    y = watch((x ** 3).sum())
    y.backward(create_graph=True)
    watch(x.grad).sum().backward()
    x.grad = None


def hook_on_leaf_captures_it(M, watch):
    x = watch(M.randn(16, 16, requires_grad=True))
    x.register_hook(lambda g: g + x.detach())
    (x * 2).sum().backward()
    watch(x.grad)


def hook_on_leaf_without_backward(M, watch):
    x = watch(M.randn(16, 16, requires_grad=True))
    x.register_hook(lambda g: g * x.detach())


def hook_on_intermediate_captures_the_leaf(M, watch):
    # (a hook that captures its own non-leaf tensor is a cycle torch cannot free either)
    x = watch(M.randn(16, 16, requires_grad=True))
    h = watch(x * 3)
    h.register_hook(lambda g: g * x.detach())
    h.sum().backward()


def retain_grad_on_intermediate(M, watch):
    x = watch(M.randn(16, 16, requires_grad=True))
    h = watch(x.tanh())
    h.retain_grad()
    (h * h).sum().backward()
    watch(h.grad)


def _square_function(M):
    class Square(M.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * x

        @staticmethod
        def backward(ctx, grad):
            (x,) = ctx.saved_tensors
            return 2 * x * grad

    return Square


def _exp_function(M):
    """Saves its own output: the output's grad_fn must not keep the output alive."""
    class Exp(M.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            out = x.exp()
            ctx.save_for_backward(out)
            return out

        @staticmethod
        def backward(ctx, grad):
            (out,) = ctx.saved_tensors
            return out * grad

    return Exp


SQUARE = {M: _square_function(M) for M in (ft, torch)}
EXP = {M: _exp_function(M) for M in (ft, torch)}


def function_saves_input(M, watch):
    x = watch(M.randn(32, requires_grad=True))
    y = watch(SQUARE[M].apply(x))
    y.sum().backward()
    watch(x.grad)


def function_saves_input_without_backward(M, watch):
    x = watch(M.randn(32, requires_grad=True))
    watch(SQUARE[M].apply(x))


def function_saves_output(M, watch):
    x = watch(M.randn(32, requires_grad=True))
    y = watch(EXP[M].apply(x))
    y.sum().backward()


def function_saves_output_without_backward(M, watch):
    x = watch(M.randn(32, requires_grad=True))
    watch(EXP[M].apply(x))


def module_and_adamw(M, watch):
    model = M.nn.Sequential(M.nn.Linear(8, 32), M.nn.GELU(), M.nn.LayerNorm(32),
                            M.nn.Linear(32, 4))
    opt = M.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(3):
        opt.zero_grad()
        M.nn.functional.cross_entropy(model(M.randn(5, 8)), M.tensor([0, 1, 2, 3, 0])).backward()
        opt.step()
    for p in model.parameters():
        watch(p)
        watch(p.grad)
        for value in opt.state[p].values():
            if isinstance(value, M.Tensor):
                watch(value)
    del model, opt


def dataloader_abandoned_mid_epoch(M, watch):
    data = watch(M.randn(100, 3))
    dataset = M.utils.data.TensorDataset(data, M.arange(100))
    it = iter(M.utils.data.DataLoader(dataset, batch_size=8, shuffle=True))
    x, y = next(it)
    watch(x)
    next(it)


SCENARIOS = [
    plain, view_outlives_base, forward_without_backward, forward_backward,
    backward_twice_with_retain_graph, retain_graph_then_drop_unused,
    double_backward_with_autograd_grad, backward_create_graph_then_grad_reset,
    hook_on_intermediate_captures_the_leaf, retain_grad_on_intermediate, function_saves_input, function_saves_input_without_backward,
    function_saves_output, function_saves_output_without_backward, module_and_adamw,
    dataloader_abandoned_mid_epoch,
]


# Known weakness (docs/reliability.md): a hook lives in the Rust tensor, out of sight of Python's
# cycle collector, so a hook that captures its own leaf keeps both alive; torch's collector frees
# them. Strict: the day it is fixed these fail and the marker must go.
HOOK_CYCLE = pytest.mark.xfail(strict=True, reason="hooks are invisible to the cycle collector")
SCENARIOS += [pytest.param(hook_on_leaf_captures_it, marks=HOOK_CYCLE),
              pytest.param(hook_on_leaf_without_backward, marks=HOOK_CYCLE)]


@pytest.mark.filterwarnings("ignore:Using backward\\(\\) with create_graph=True")
@pytest.mark.parametrize("scenario", SCENARIOS,
                         ids=lambda f: getattr(f, "__name__", None))
def test_dropped_tensors_are_freed_like_torch(scenario):
    assert_freed_like_torch(scenario)


def test_leak_check_catches_a_leak():
    """The helper fails when a scenario keeps a storage alive."""
    kept = []

    def leaky(M, watch):
        x = watch(M.randn(8))
        if M is ft:
            kept.append(x)

    with pytest.raises(AssertionError, match="leaked"):
        assert_freed_like_torch(leaky)


def test_graph_storages_are_freed_without_the_cycle_collector():
    """A training step in a loop, gc disabled: the live storages stay flat."""
    x = ft.randn(32, 16)
    w = ft.randn(16, 16, requires_grad=True)
    counts = []
    with gc_paused():
        for _ in range(5):
            loss = ((x @ w).relu() @ w.t()).pow(2).mean()
            loss.backward()
            w.grad = None
            del loss
            counts.append(live())
    assert counts == [counts[0]] * 5, counts


def test_graph_keeps_only_what_backward_reads():
    """While a graph lives, an intermediate that no backward formula reads is freed as soon as
    Python drops it, as torch frees what it does not save: a product whose result nothing
    reads, the operands of a sum or difference, the input of a dropout (its noise takes no
    gradient). What a formula reads (the dropout's noise) stays. The gradient is torch's."""
    n = 1 << 16
    grads = {}
    for M in (ft, torch):
        M.manual_seed(0)
        w = M.randn(n, requires_grad=True)
        with gc_paused():
            before = live()[1]
            h = w * 2.0
            s = h + 1.0
            d = M.nn.functional.dropout(s, 0.5)
            y = d - w
            del h, s, d
            if M is ft:
                kept = live()[1] - before
                # y itself and the dropout's noise; the 0-dim scalars cost a few bytes each.
                assert 2 * 4 * n <= kept < 2 * 4 * n + 256, kept
        y.backward(M.ones(n))
        grads[M] = w.grad
    assert_same(grads[ft], grads[torch])


# *** numpy buffers shared with from_numpy ***

class Watched(np.ndarray):
    """An ndarray that accepts weak references (a plain ndarray does not)."""


@pytest.mark.parametrize("drop_array_first", [True, False])
def test_from_numpy_releases_the_array_when_both_are_dropped(drop_array_first):
    for M in (ft, torch):
        collect()
        before = live()
        with gc_paused():
            a = np.arange(12, dtype=np.float32).reshape(3, 4).view(Watched)
            ref = weakref.ref(a)
            t = M.from_numpy(a)
            view = t[1:, ::2]
            if M is ft:
                assert live()[0] == before[0] + 1, "the borrowed buffer is one live storage"
            if drop_array_first:
                del a
                assert ref() is not None, f"{M.__name__}: the tensor must keep its array alive"
                assert view.sum().item() == 4 + 6 + 8 + 10
                del t, view
            else:
                del t, view
                assert ref() is not None
                del a
            assert ref() is None, f"{M.__name__}: the array outlives its tensors"
        assert live() == before


def test_from_numpy_gives_back_its_array_references():
    for M in (ft, torch):
        a = np.ones((4, 5), dtype=np.float64)
        refs = sys.getrefcount(a)
        with gc_paused():
            t = M.from_numpy(a)
            views = [t[1:], t.t(), t.reshape(-1), t.unsqueeze(0)]
            (t * 2).sum()
            del t, views
        assert sys.getrefcount(a) == refs, M.__name__


def test_numpy_view_of_a_tensor_keeps_the_storage_until_dropped():
    collect()
    before = live()
    with gc_paused():
        t = ft.arange(10, dtype=ft.float32)
        a = t.numpy()
        del t
        assert live()[0] == before[0] + 1, "the numpy view must keep the storage alive"
        assert a.sum() == 45
        del a
    assert live() == before


# *** an op that fails leaves no storage behind ***

def _failing_function(M):
    """A Function that doubles its input and whose backward raises."""
    class Bad(M.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, grad):
            raise ValueError("backward failed on purpose")

    return Bad


BAD = {M: _failing_function(M) for M in (ft, torch)}


def _failing_hook(M):
    x = M.randn(8, 8, requires_grad=True)
    h = x.exp()

    def hook(g):
        raise ValueError("hook failed on purpose")

    h.register_hook(hook)
    (h * x).sum().backward()


FAILING = {
    "matmul": lambda M: M.randn(30, 40) @ M.randn(50, 60),
    "cat": lambda M: M.cat([M.randn(20, 3), M.randn(20, 3), M.randn(20, 4)], dim=0),
    "stack": lambda M: M.stack([M.randn(20, 3), M.randn(20, 3), M.randn(3, 20)]),
    "index_select": lambda M: M.randn(50, 3).index_select(0, M.tensor([0, 1, 70, 2])),
    "advanced_index": lambda M: M.randn(50, 3)[M.tensor([0, 49, 50])],
    "gather": lambda M: M.randn(10, 4).gather(1, M.tensor([[0, 1, 9]] * 10)),
    "embedding": lambda M: M.nn.functional.embedding(M.tensor([1, 2, 30]), M.randn(20, 8)),
    "cross_entropy": lambda M: M.nn.functional.cross_entropy(
        M.randn(4, 3, requires_grad=True), M.tensor([0, 1, 2, 5])),
    "inplace_broadcast": lambda M: M.randn(3, 4).add_(M.randn(5, 4)),
    "view": lambda M: M.randn(6, 4).view(7, -1),
    "huge_repeat": lambda M: M.randn(3).repeat(2 ** 40),
    "backward_of_function": lambda M: (BAD[M].apply(
        M.randn(8, 8, requires_grad=True).tanh()) * 3).sum().backward(),
    "backward_hook": _failing_hook,
}


def _raises(op, M):
    try:
        op(M)
    except Exception:
        return True
    return False


@pytest.mark.parametrize("name", FAILING)
def test_failed_op_leaves_no_storage_behind(name):
    op = FAILING[name]
    assert _raises(op, torch), f"torch does not raise for {name}: fix the case"
    assert _raises(op, ft)  # warm-up: lazily built caches are not leaks
    collect()
    before = live()
    with gc_paused():
        assert _raises(op, ft), f"ferrotorch does not raise for {name}; torch does"
        without_gc = live()
    collect()
    assert live() == before, f"{name}: storages left after the error and gc.collect()"
    assert without_gc == before, f"{name}: storages left until gc.collect()"


# *** allocations that cannot be made: RuntimeError, never an abort (in a subprocess) ***
# tests/test_errors.py covers the creation ops; these are results of other ops. The inputs are
# expanded views (stride 0), so they cost nothing.

HUGE_RESULTS = [
    "zeros(1, 1).expand(2**40, 1) @ M.zeros(1, 1).expand(1, 2**40)",
    "zeros(1, 1).expand(2**20, 1) @ M.zeros(1, 1).expand(1, 2**30)",
    "zeros(1, 1, 1).expand(2**4, 2**18, 1).bmm(M.zeros(1, 1, 1).expand(2**4, 1, 2**18))",
    "cat([M.zeros(1).expand(2**40), M.zeros(1).expand(2**40)])",
    "stack([M.zeros(1).expand(2**40), M.zeros(1).expand(2**40)])",
    "zeros(1, 1).expand(2**40, 3).t().reshape(-1) + 1",
    "zeros(3).index_select(0, M.zeros(1, dtype=M.int64).expand(2**40))",
    "zeros(3)[M.zeros(1, dtype=M.int64).expand(2**40)]",
    "zeros(3).repeat(2**40)",
    "zeros(2**20).repeat(2**20, 2**20)",
    "zeros_like(M.zeros(1).expand(2**40))",
    "zeros(1).expand(2**40).cumsum(0)",
    "zeros(1).expand(2**40).sort()",
    "zeros(1).expand(2**40).to(M.float64)",
    "zeros(1, 1).expand(2**20, 2**20).tril()",
    "zeros(1, 1).expand(2**21, 2**21).softmax(-1)",
    "nn.functional.one_hot(M.zeros(2**10, dtype=M.int64), 2**40)",
    "nn.functional.one_hot(M.zeros(2, dtype=M.int64), 2**61)",
    "nn.functional.pad(M.zeros(1), (0, 2**40))",
    "where(M.zeros(1, dtype=M.bool), M.zeros(1).expand(2**40), 1.0)",
]

# Runs the expressions given as arguments in turn, saying which one starts before running it, so
# that after an abort the parent knows which expression killed the process.
_HUGE_SCRIPT = """
import sys
import ferrotorch as M
for i, expr in enumerate(sys.argv[1:]):
    print("START", flush=True)
    try:
        eval("M." + expr, {"M": M})
    except BaseException as e:
        print("RAISED", type(e).__name__, str(e)[:300].replace("\\n", " "), flush=True)
    else:
        print("NO ERROR", flush=True)
"""


@pytest.fixture(scope="module")
def huge_outcomes():
    """What ferrotorch does with each of HUGE_RESULTS: one interpreter runs them in turn, and a
    fresh one takes over after an expression that aborts the process."""
    outcomes = {}
    todo = list(HUGE_RESULTS)
    env = dict(os.environ, RUST_BACKTRACE="0")
    while todo:
        p = subprocess.run([sys.executable, "-c", _HUGE_SCRIPT, *todo], capture_output=True,
                           text=True, timeout=300, env=env)
        lines = p.stdout.splitlines()
        results = [line for line in lines if line != "START"]
        outcomes.update(zip(todo, results))
        started = lines.count("START")
        if started > len(results):  # the last one started never finished
            outcomes[todo[started - 1]] = f"ABORTED rc {p.returncode}: {p.stderr[-600:]}"
        elif p.returncode != 0:
            raise RuntimeError(f"the runner failed outside the expressions: {p.stderr[-2000:]}")
        todo = todo[started:]
    return outcomes


def _torch_error(expr):
    try:
        eval("M." + expr, {"M": torch})
    except Exception as e:
        return e
    return None


@pytest.mark.parametrize("expr", HUGE_RESULTS)
def test_impossible_result_raises_runtime_error(expr, huge_outcomes):
    theirs = _torch_error(expr)
    assert isinstance(theirs, RuntimeError), f"torch: {theirs!r}"
    ours = huge_outcomes[expr]
    assert ours.startswith("RAISED RuntimeError"), f"ferrotorch: {ours}; torch raises {theirs!r}"


# *** a long training run: flat live storages and RSS (tests/scripts/leak_curve.py) ***

LEAK_CURVE = Path(__file__).parent / "scripts" / "leak_curve.py"


def test_training_run_does_not_grow():
    steps, every = 2000, 100
    p = subprocess.run([sys.executable, str(LEAK_CURVE), "--steps", str(steps), "--every",
                        str(every), "--csv"], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    rows = [line.split(",") for line in p.stdout.strip().splitlines()]
    assert rows[0] == ["step", "rss_kib", "live_storages", "live_bytes", "loss"], rows[0]
    samples = {int(r[0]): (int(r[1]), int(r[2]), int(r[3]), float(r[4])) for r in rows[1:]}
    assert sorted(samples) == list(range(0, steps + 1, every))
    # from step 100 on (AdamW state and the first epoch's caches exist) the set of live
    # storages is the same at every sample: nothing accumulates
    steady = {step: s[1:3] for step, s in samples.items() if step >= every}
    assert len(set(steady.values())) == 1, f"live (storages, bytes) change: {steady}"
    # RSS may move with the allocator's free lists and fragmentation (it moves ~0.1 MiB here)
    # but must not climb: 4 MiB over 1,800 steps is far below any per-step leak (keeping one
    # step's logits, 2x16x257 floats = 32 KiB, would add 56 MiB)
    growth_kib = samples[steps][0] - samples[200][0]
    assert growth_kib < 4096, f"RSS grew by {growth_kib} KiB from step 200 to {steps}"
    assert samples[steps][3] < samples[every][3], "the model did not train"


FREED_MEMORY_SCRIPT = """
import ferrotorch as ft

def rss_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024

before = rss_mb()
t = ft.ones(50 * 2**20 // 4)  # 50 MiB, above glibc's largest default heap block (32 MiB)
held = rss_mb()
del t
after = rss_mb()
print(round(held - before), round(held - after))
"""


def freed_memory(env):
    out = subprocess.run([sys.executable, "-c", FREED_MEMORY_SCRIPT], capture_output=True,
                         text=True, env={**os.environ, **env}, check=True)
    return [int(x) for x in out.stdout.split()]


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's heap only")
def test_large_freed_buffers_stay_mapped_for_reuse():
    # A freed 50 MiB buffer stays mapped (the next step reuses it without the OS zeroing new
    # pages); FERROTORCH_MALLOC_DEFAULTS=1 keeps glibc's behaviour of unmapping it at once.
    held, given_back = freed_memory({})
    assert held >= 45 and given_back < 5, (held, given_back)
    held, given_back = freed_memory({"FERROTORCH_MALLOC_DEFAULTS": "1"})
    assert held >= 45 and given_back >= 45, (held, given_back)
