"""ferrotorch against torch, side by side on this machine, in one run.

    python benches/compare_torch.py [--quick] [--reps N] [--only sgemm,elementwise,...]
                                    [--no-write] [--out docs/benchmarks.md]

Workloads (``--only``): sgemm, elementwise, gpt_train, gpt_infer, generate, mlp. Both frameworks
run on the same number of threads; timed repetitions alternate ferrotorch and torch and each
reports its median. GPT-2 training runs every config in a fresh subprocess per framework
(``--child``), so that each peak RSS belongs to one run. A workload that fails is reported in
the notes: the script itself does not fail. The tables go to stdout and to ``docs/benchmarks.md``.
"""

import argparse
import contextlib
import datetime
import importlib
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
import traceback

import numpy as np
from gpt_bench_model import GPT_124M, GPT_QUICK, build, generate_greedy

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FRAMEWORKS = ("ferrotorch", "torch")
WORKLOADS = ("sgemm", "elementwise", "gpt_train", "gpt_infer", "generate", "mlp")

# (full run, --quick)
SQUARES = ((256, 512, 1024, 2048), (64, 128))
GPT2_MATMULS = ((512, 768, 768), (512, 768, 2304), (512, 768, 3072), (512, 3072, 768),
                (512, 768, 50257))  # M = B*T = 512; QKV, MLP up and down, LM head
ELEMENTWISE_SIZES = ((1 << 20, 1 << 24), (1 << 16, 1 << 20))
TRAIN_SHAPES = (((1, 128), (4, 128), (2, 256)), ((2, 32),))
INFER_SHAPES = (((1, 128), (4, 128)), ((1, 32), (4, 32)))
PROMPT_TOKENS, NEW_TOKENS = 8, 50
MLP_BATCHES = (1, 64)

# Table columns: key -> header. Ratios are named so that their direction is explicit.
COLUMNS = {
    "workload": "workload",
    "metric": "metric",
    "ft": "ferrotorch",
    "torch": "torch",
    "speedup": "speed-up = torch time / ferrotorch time",
    "numpy": "numpy",
    "vs_numpy": "numpy time / ferrotorch time",
    "peak_pct": "ferrotorch % of FMA peak",
    "rss_ft": "peak RSS MB ferrotorch",
    "rss_torch": "peak RSS MB torch",
    "rss_ratio": "RSS ferrotorch / torch",
    "check": "check: ferrotorch / torch",
}
ALWAYS_SHOWN = ("workload", "metric", "ft", "torch", "speedup")

GPT_MODEL = ("GPT-2 124M (vocab 50257, context 1024, emb 768, 12 heads, 12 layers, dropout 0.1, "
             "no qkv bias, untied head; with `--quick` vocab 1000, context 64, emb 64, 2 heads, "
             "2 layers), built after `manual_seed(123)` from the same code in both frameworks "
             "(`benches/gpt_bench_model.py`)")
WORKLOAD_NOTES = {
    "sgemm": "float32 `a @ b` on the same random data (`from_numpy`), numpy's own matmul too; "
             "squares, and the GPT-2 124M projections at B*T = 512: QKV, MLP up and down, "
             "LM head, with `b` row-major (backward's products) and as `W.T` of a weight "
             "stored (N, K) as `nn.Linear` keeps it (every forward)",
    "elementwise": "float32 `a + b`, `a * b`, `gelu(a, approximate=\"tanh\")`; "
                   "GB/s = (inputs + output) x 4 bytes / time",
    "gpt_train": "forward, cross-entropy, backward, `AdamW(lr=4e-4, weight_decay=0.1).step()`, "
                 "`zero_grad()`; one warm-up step, median step time; each config in a fresh "
                 "process per framework",
    "gpt_infer": "`eval()`, forward under `no_grad()`",
    "generate": f"greedy decoding of {NEW_TOKENS} tokens after a {PROMPT_TOKENS}-token prompt "
                "with a key/value cache (one pass over the prompt, then one token a step)",
    "mlp": "`Sequential(Linear(10, 5), ReLU(), Linear(5, 1), Sigmoid())`, `BCELoss`, "
           "`SGD(lr=0.1)`; a step is zero_grad, forward, loss, backward, step",
}
GPT_WORKLOADS = ("gpt_train", "gpt_infer", "generate")


# *** set-up ***

def import_framework(name, threads):
    """``ferrotorch`` or ``torch``, set to run on ``threads`` threads."""
    module = importlib.import_module(name)
    set_threads = getattr(module, "set_num_threads", None)
    if set_threads is not None:
        set_threads(threads)
    return module


def default_threads(ft):
    """ferrotorch's own thread count (all cores where it cannot say)."""
    get_threads = getattr(ft, "get_num_threads", None)
    return get_threads() if get_threads is not None else os.cpu_count()


def peak_rss_mb():
    """This process's peak resident set size so far, in MB.

    Linux's VmHWM where there is one: ``ru_maxrss`` carries the parent's peak over into a child
    started by ``subprocess`` (it is kept across exec), which would hide the child's own.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / (1 << 10)  # KiB
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1 << 20) if sys.platform == "darwin" else peak / (1 << 10)  # bytes vs KiB


def random_tokens(vocab_size, shape, seed=0):
    return np.random.default_rng(seed).integers(0, vocab_size, size=shape, dtype=np.int64)


class Settings:
    """What every workload needs: the two frameworks and how long to measure."""

    def __init__(self, args, ft, torch, threads, fma_peak):
        self.ft, self.torch = ft, torch
        self.modules = {"ferrotorch": ft, "torch": torch}
        self.quick = args.quick
        self.level = 1 if args.quick else 0  # index into the (full, quick) tables above
        self.reps = args.reps or (3 if args.quick else 5)
        self.min_seconds = 0.01 if args.quick else 0.25  # per timed repetition
        # Pause before each timed repetition: the worker threads of whatever ran last (OpenMP
        # in torch, OpenBLAS in numpy, rayon in ferrotorch) keep spinning for a moment after a
        # call and would steal the cores from the next framework. A smoke run skips it.
        self.settle = 0.0 if args.quick else 0.3
        self.threads = threads
        self.fma_peak = fma_peak
        self.gpt_cfg = GPT_QUICK if args.quick else GPT_124M
        self._gpt_models = None

    def gpt_models(self):
        """The same GPT-2 (``manual_seed(123)``) in both frameworks, in eval mode; built once."""
        if self._gpt_models is None:
            self._gpt_models = {}
            for name, module in self.modules.items():
                module.manual_seed(123)
                self._gpt_models[name] = build(module)(self.gpt_cfg).eval()
        return self._gpt_models


# *** timing ***

def alternate(fns, s):
    """Median seconds per call of each function in ``fns`` (name -> callable).

    Each is warmed up and calls are batched so that one repetition lasts ``s.min_seconds``;
    then ``s.reps`` rounds time them in turn (ferrotorch, torch, ..., ferrotorch, torch, ...),
    each after a pause of ``s.settle``.
    """
    reps, min_seconds = s.reps, s.min_seconds
    calls = {}
    for name, fn in fns.items():
        fn()  # warm-up
        # Size the batch from warm calls that together last a tenth of a repetition: one
        # call of a microsecond-scale step is mostly cache misses and timer noise, and would
        # give repetitions much shorter than asked for.
        n = 1
        while True:
            start = time.perf_counter()
            for _ in range(n):
                fn()
            elapsed = time.perf_counter() - start
            if elapsed >= min_seconds / 10 or n >= 1 << 20:
                break
            n *= 8
        calls[name] = max(1, math.ceil(min_seconds * n / max(elapsed, 1e-9)))
    samples = {name: [] for name in fns}
    for _ in range(reps):
        for name, fn in fns.items():
            time.sleep(s.settle)
            start = time.perf_counter()
            for _ in range(calls[name]):
                fn()
            samples[name].append((time.perf_counter() - start) / calls[name])
    return {name: statistics.median(times) for name, times in samples.items()}


def ratio(numerator, denominator):
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def geomean(values):
    return math.exp(statistics.fmean(math.log(v) for v in values))


# *** the FMA peak ***

def cpu_info():
    """Model name, clock (MHz) and flags of the first core, from /proc/cpuinfo where it exists."""
    info = {"model": platform.processor() or platform.machine(), "vendor": "", "mhz": None,
            "flags": set()}
    try:
        with open("/proc/cpuinfo") as f:
            first_core = f.read().split("\n\n")[0]
    except OSError:
        return info
    for line in first_core.splitlines():
        key, _, value = (part.strip() for part in line.partition(":"))
        if key == "model name":
            info["model"] = value
        elif key == "vendor_id":
            info["vendor"] = value
        elif key == "cpu MHz":
            info["mhz"] = float(value)
        elif key == "flags":
            info["flags"] = set(value.split())
    return info


PEAK_TRIES = 5


def fma_lanes(cpu):
    """float32 lanes of each of a core's 2 FMA units (None without AVX2): 16 with AVX-512,
    except on AMD, whose cores (Zen 4) run a 512-bit FMA on both 256-bit units at once."""
    if "avx512f" in cpu["flags"] and cpu["vendor"] != "AuthenticAMD":
        return 16
    return 8 if "avx2" in cpu["flags"] else None


def theoretical_peak(cpu, cores):
    """clock x cores x 2 FMA units x float32 lanes x 2 flops per FMA, in GFLOP/s (or None)."""
    lanes = fma_lanes(cpu)
    if cpu["mhz"] is None or lanes is None:
        return None
    return cpu["mhz"] / 1000 * cores * 2 * lanes * 2


def measured_peak(ft, threads, millis, tries=PEAK_TRIES):
    """GFLOP/s of ferrotorch's FMA-throughput loop on ``threads`` threads (None if absent):
    the best of ``tries`` runs a moment apart, since a busy neighbour can only lower a peak
    (one run on a shared machine has come out at half the others)."""
    fma_peak = getattr(ft._C, "_fma_peak_gflops", None)
    if fma_peak is None:
        return None
    best = 0.0
    for i in range(tries):
        if i:
            time.sleep(0.2)
        best = max(best, fma_peak(threads, millis))
    return best


# *** workloads ***

def bench_sgemm(s, report):
    report.section("sgemm (M, K) @ (K, N)")
    rng = np.random.default_rng(0)
    m_gpt2 = 16 if s.quick else 512
    shapes = [((n, n, n), "square", False) for n in SQUARES[s.level]]
    # GPT-2's projections both ways: b row-major (backward's products), and b = W.T with the
    # weight W stored (N, K) as nn.Linear keeps it (every forward).
    for transposed in (False, True):
        shapes += [((m_gpt2, k, n), "sgemm_gpt2", transposed) for _, k, n in GPT2_MATMULS]
    for (m, k, n), tag, transposed in shapes:
        name = f"{m}x{k} @ ({n}x{k}).T" if transposed else f"{m}x{k} @ {k}x{n}"
        with report.guard(f"sgemm {name}"):
            a = rng.standard_normal((m, k), dtype=np.float32)
            b = rng.standard_normal((n, k) if transposed else (k, n), dtype=np.float32)
            fa, fb = s.ft.from_numpy(a), s.ft.from_numpy(b)
            ta, tb = s.torch.from_numpy(a), s.torch.from_numpy(b)
            if transposed:
                b, fb, tb = b.T, fb.t(), tb.t()
            seconds = alternate({"ferrotorch": lambda: fa @ fb, "torch": lambda: ta @ tb,
                                 "numpy": lambda: a @ b}, s)
            gflops = {fw: 2 * m * k * n / t / 1e9 for fw, t in seconds.items()}
            ours = gflops["ferrotorch"]
            report.add(workload=name, metric="GFLOP/s", tag=tag, ft=ours,
                       torch=gflops["torch"], numpy=gflops["numpy"],
                       speedup=ratio(ours, gflops["torch"]),
                       vs_numpy=ratio(ours, gflops["numpy"]),
                       peak_pct=None if s.fma_peak is None else 100 * ours / s.fma_peak)


ELEMENTWISE_OPS = {  # name -> (function of (module, a, b), tensors read + written)
    "a + b": (lambda torch, a, b: a + b, 3),
    "a * b": (lambda torch, a, b: a * b, 3),
    "gelu(a, tanh)": (lambda torch, a, b: torch.nn.functional.gelu(a, approximate="tanh"), 2),
}


def element_count(n):
    return f"{n >> 20}M" if n >= 1 << 20 else f"{n >> 10}K"


def bench_elementwise(s, report):
    report.section("elementwise")
    rng = np.random.default_rng(0)
    for size in ELEMENTWISE_SIZES[s.level]:
        a = rng.standard_normal(size, dtype=np.float32)
        b = rng.standard_normal(size, dtype=np.float32)
        tensors = {name: (m.from_numpy(a), m.from_numpy(b)) for name, m in s.modules.items()}
        for op_name, (op, tensors_moved) in ELEMENTWISE_OPS.items():
            workload = f"{op_name}, {element_count(size)}"
            with report.guard(workload):
                fns = {name: (lambda m=m, t=tensors[name]: op(m, *t))
                       for name, m in s.modules.items()}
                seconds = alternate(fns, s)
                gbs = {name: tensors_moved * size * 4 / t / 1e9 for name, t in seconds.items()}
                report.add(workload=workload, metric="GB/s", ft=gbs["ferrotorch"],
                           torch=gbs["torch"], speedup=ratio(gbs["ferrotorch"], gbs["torch"]))


def bench_gpt_train(s, report):
    report.section("GPT-2 training step")
    for batch, seq in TRAIN_SHAPES[s.level]:
        runs = {}
        for name in FRAMEWORKS:  # back to back: ferrotorch, then torch
            runs[name] = None
            with report.guard(f"gpt_train B={batch} T={seq} {name}"):
                runs[name] = run_child(s, "gpt_train", name, batch, seq)
        tokens_per_s = {name: None if r is None else batch * seq / r["seconds"]
                        for name, r in runs.items()}
        rss = {name: None if r is None else r["peak_rss_mb"] for name, r in runs.items()}
        losses = [None if r is None else r["first_loss"] for r in runs.values()]
        report.add(workload=f"B={batch}, T={seq}", metric="tokens/s", tag="gpt_train",
                   ft=tokens_per_s["ferrotorch"], torch=tokens_per_s["torch"],
                   speedup=ratio(tokens_per_s["ferrotorch"], tokens_per_s["torch"]),
                   rss_ft=rss["ferrotorch"], rss_torch=rss["torch"],
                   rss_ratio=ratio(rss["ferrotorch"], rss["torch"]),
                   check="first loss " + " / ".join("n/a" if x is None else f"{x:.4f}"
                                                    for x in losses))


def bench_gpt_infer(s, report):
    report.section("GPT-2 inference forward")
    models = s.gpt_models()
    for batch, seq in INFER_SHAPES[s.level]:
        with report.guard(f"gpt_infer B={batch} T={seq}"):
            tokens = random_tokens(s.gpt_cfg["vocab_size"], (batch, seq))
            inputs = {name: m.from_numpy(tokens) for name, m in s.modules.items()}

            def forward(name):
                with s.modules[name].no_grad():
                    return models[name](inputs[name])

            seconds = alternate(
                {name: (lambda name=name: forward(name)) for name in FRAMEWORKS}, s)
            rate = {name: batch * seq / t for name, t in seconds.items()}
            gap = np.abs(forward("ferrotorch").numpy() - forward("torch").numpy()).max()
            report.add(workload=f"B={batch}, T={seq}", metric="tokens/s", tag="gpt_infer",
                       ft=rate["ferrotorch"], torch=rate["torch"],
                       speedup=ratio(rate["ferrotorch"], rate["torch"]),
                       check=f"max logit difference {gap:.1e}")


def bench_generate(s, report):
    report.section("generation, KV cache")
    models = s.gpt_models()
    prompt = random_tokens(s.gpt_cfg["vocab_size"], (1, PROMPT_TOKENS))
    prompts = {name: m.from_numpy(prompt) for name, m in s.modules.items()}

    def generate(name):
        return generate_greedy(s.modules[name], models[name], prompts[name], NEW_TOKENS)

    seconds = alternate({name: (lambda name=name: generate(name)) for name in FRAMEWORKS},
                        s)
    rate = {name: NEW_TOKENS / t for name, t in seconds.items()}
    same = generate("ferrotorch").tolist() == generate("torch").tolist()
    report.add(workload="B=1", metric="tokens/s", tag="generate", ft=rate["ferrotorch"],
               torch=rate["torch"], speedup=ratio(rate["ferrotorch"], rate["torch"]),
               check="same tokens" if same else "different tokens")


def mlp_step(torch, batch):
    """One SGD training step of the tiny MLP as a function of no arguments."""
    nn = torch.nn
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 5), nn.ReLU(), nn.Linear(5, 1), nn.Sigmoid())
    loss_fn = nn.BCELoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x = torch.randn(batch, 10)
    y = (torch.rand(batch, 1) > 0.5).float()

    def step():
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()

    return step


def bench_mlp(s, report):
    report.section("tiny MLP training step")
    for batch in MLP_BATCHES:
        with report.guard(f"mlp batch {batch}"):
            steps = {name: mlp_step(m, batch) for name, m in s.modules.items()}
            seconds = alternate(steps, s)
            rate = {name: 1 / t for name, t in seconds.items()}
            report.add(workload=f"batch {batch}", metric="steps/s", tag=f"mlp_b{batch}",
                       ft=rate["ferrotorch"], torch=rate["torch"],
                       speedup=ratio(rate["ferrotorch"], rate["torch"]))


BENCHES = {"sgemm": bench_sgemm, "elementwise": bench_elementwise, "gpt_train": bench_gpt_train,
           "gpt_infer": bench_gpt_infer, "generate": bench_generate, "mlp": bench_mlp}


# *** subprocess runs (peak RSS per run) ***

def run_child(s, workload, framework, batch, seq):
    """Run one workload in a fresh interpreter and return the JSON it prints."""
    command = [sys.executable, os.path.abspath(__file__), "--child", workload,
               "--framework", framework, "--batch", str(batch), "--seq", str(seq),
               "--reps", str(s.reps), "--threads", str(s.threads)]
    if s.quick:
        command.append("--quick")
    done = subprocess.run(command, capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or [f"exit status {done.returncode}"]
        raise RuntimeError(lines[-1])
    return json.loads(done.stdout.strip().splitlines()[-1])


def child_gpt_train(args):
    """Build GPT-2 with ``manual_seed(123)``, one warm-up step, then ``reps`` timed steps."""
    torch = import_framework(args.framework, args.threads)
    F = torch.nn.functional
    cfg = GPT_QUICK if args.quick else GPT_124M
    torch.manual_seed(123)
    model = build(torch)(cfg).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=4e-4, weight_decay=0.1)
    tokens = random_tokens(cfg["vocab_size"], (args.batch, args.seq + 1))
    inputs = torch.from_numpy(np.ascontiguousarray(tokens[:, :-1]))
    targets = torch.from_numpy(np.ascontiguousarray(tokens[:, 1:]))

    def step():
        logits = model(inputs)
        loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten())
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        return loss.item()

    first_loss = step()
    times = []
    for _ in range(args.reps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return {"seconds": statistics.median(times), "first_loss": first_loss,
            "peak_rss_mb": peak_rss_mb()}


CHILDREN = {"gpt_train": child_gpt_train}


# *** the report ***

def format_number(value, digits=3):
    """``value`` with about ``digits`` significant digits, without an exponent for big numbers."""
    if value is None:
        return "n/a"
    if abs(value) >= 10 ** (digits - 1):
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def format_cell(key, value):
    if value is None:
        return "n/a" if key in ALWAYS_SHOWN else ""
    if isinstance(value, str):
        return value
    if key in ("speedup", "vs_numpy", "rss_ratio"):
        return f"{value:.2f}x"
    if key == "peak_pct":
        return f"{value:.0f}%"
    return format_number(value)


def markdown_table(headers, rows):
    """A pipe table with padded columns, readable as text too."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows)]
    lines = ["| " + " | ".join(str(c).ljust(w) for c, w in zip(line, widths)) + " |"
             for line in (headers, *rows)]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


class Report:
    """The rows of the results table, in sections, and notes on whatever failed."""

    def __init__(self):
        self.rows = []
        self.notes = []

    def section(self, title):
        print(f"\n== {title}", flush=True)
        self.rows.append({"section": title})

    def add(self, **cells):
        self.rows.append(cells)
        line = (f"  {cells['workload']}: ferrotorch {format_number(cells['ft'])}, torch "
                f"{format_number(cells['torch'])} {cells['metric']}, speed-up "
                f"{format_cell('speedup', cells['speedup'])}")
        if "check" in cells:
            line += f", {cells['check']}"
        print(line, flush=True)

    @contextlib.contextmanager
    def guard(self, what):
        """Report an exception raised inside as a failure of ``what``, and carry on."""
        try:
            yield
        except Exception as e:
            self.fail(what, e)

    def fail(self, what, error):
        self.notes.append(f"{what} failed: {type(error).__name__}: {error}")
        traceback.print_exception(error)
        print(f"  {self.notes[-1]}", file=sys.stderr, flush=True)

    def tagged(self, tag, key):
        return [row[key] for row in self.rows
                if row.get("tag") == tag and row.get(key) is not None]

    def results_table(self):
        keys = [key for key in COLUMNS
                if key in ALWAYS_SHOWN or any(row.get(key) is not None for row in self.rows)]
        lines = []
        for row in self.rows:
            if "section" in row:
                lines.append([f"**{row['section']}**"] + [""] * (len(keys) - 1))
            else:
                lines.append([format_cell(key, row.get(key)) for key in keys])
        return markdown_table([COLUMNS[key] for key in keys], lines)

    def targets_table(self):
        return markdown_table(["target", "goal", "measured", "status"],
                              [list(target) for target in self.targets()])

    def targets(self):
        """(target, goal, measured, met / not met / n/a) for each project target."""
        yield self.sgemm_target()
        yield self.ratio_target("GPT-2 training tokens/s", "gpt_train", "speedup", 1.2)
        yield self.ratio_target("GPT-2 training peak RSS", "gpt_train", "rss_ratio", 0.8)
        yield self.ratio_target("inference forward tokens/s", "gpt_infer", "speedup", 1.2)
        yield self.ratio_target("tiny MLP steps/s, batch 1", "mlp_b1", "speedup", 10)
        yield self.ratio_target("generation tokens/s with KV cache", "generate", "speedup", 1.5)

    def ratio_target(self, name, tag, key, goal):
        """Geometric mean of a ratio column over the tagged rows; RSS ratios must stay below
        ``goal``, speed-ups reach it."""
        lower_is_better = key == "rss_ratio"
        goal_text = f"{'≤' if lower_is_better else '≥'}{goal:g}x torch"
        values = self.tagged(tag, key)
        if not values:
            return name, goal_text, "not measured", "n/a"
        mean = geomean(values)
        measured = f"{mean:.2f}x"
        if len(values) > 1:
            measured += f" (worst {max(values) if lower_is_better else min(values):.2f}x)"
        met = mean <= goal if lower_is_better else mean >= goal
        return name, goal_text, measured, "met" if met else "not met"

    def sgemm_target(self):
        name, goal = "sgemm at GPT-2 shapes", "≥1x torch, ≥1x numpy, ≥75% of FMA peak"
        vs_torch = self.tagged("sgemm_gpt2", "speedup")
        if not vs_torch:
            return name, goal, "not measured", "n/a"
        vs_numpy = geomean(self.tagged("sgemm_gpt2", "vs_numpy"))
        peak = self.tagged("sgemm_gpt2", "peak_pct")
        peak = geomean(peak) if peak else None
        measured = (f"{geomean(vs_torch):.2f}x torch, {vs_numpy:.2f}x numpy, "
                    + ("FMA peak n/a" if peak is None else f"{peak:.0f}% of FMA peak"))
        met = geomean(vs_torch) >= 1 and vs_numpy >= 1 and peak is not None and peak >= 75
        return name, goal, measured, "met" if met else "not met"


def machine_lines(s, cpu, theoretical):
    """The machine and the software versions, as Markdown list items."""
    flags = ", ".join(f for f in ("avx2", "avx512f", "fma") if f in cpu["flags"]) or "none found"
    try:
        with open("/proc/meminfo") as f:
            ram = f"{int(f.readline().split()[1]) / (1 << 20):.1f} GiB"
    except (OSError, ValueError, IndexError):
        ram = "unknown"
    measured = "n/a" if s.fma_peak is None else f"{s.fma_peak:.0f} GFLOP/s"
    formula = ("n/a" if theoretical is None else
               f"{theoretical:.0f} GFLOP/s = {cpu['mhz'] / 1000:.2f} GHz x {os.cpu_count()} cores"
               f" x 2 FMA units x {fma_lanes(cpu)} lanes x 2 (clock as /proc/cpuinfo reports"
               " it: boost clocks run above it)")
    return [
        f"CPU: {cpu['model']}, {os.cpu_count()} logical cores, flags: {flags}",
        f"RAM: {ram}",
        f"OS: {platform.platform()}",
        f"Python {platform.python_version()}, torch {s.torch.__version__}, numpy {np.__version__},"
        f" ferrotorch {getattr(s.ft, '__version__', 'unknown')}",
        f"threads: {s.threads} for both frameworks (numpy: OpenBLAS's default)",
        f"date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; load average "
        f"before the run: {os.getloadavg()[0]:.2f}",
        f"FMA peak, measured: {measured} (`ferrotorch._C._fma_peak_gflops`, {s.threads} threads, "
        f"best of {PEAK_TRIES} runs)",
        f"FMA peak, theoretical: {formula}",
    ]


def markdown_page(s, report, machine, workloads):
    quick = ("\n> Smoke run (`--quick`): small shapes and a small GPT config; these numbers say "
             "little.\n" if s.quick else "")
    notes = "".join(f"- {note}\n" for note in report.notes) or "- none\n"
    machine = "".join(f"- {line}\n" for line in machine)
    model = f"- the GPT-2 model: {GPT_MODEL}\n" if set(workloads) & set(GPT_WORKLOADS) else ""
    workloads = model + "".join(f"- **{name}**: {WORKLOAD_NOTES[name]}\n" for name in workloads)
    return f"""# ferrotorch vs torch: benchmarks

Generated by `benches/compare_torch.py`; do not edit by hand.
{quick}
## Reproduce

```sh
pip install ".[gpt2]" torch   # ferrotorch, and torch to compare with
python benches/compare_torch.py   # this page (--quick for a smoke run, --only sgemm,mlp, ...)
cargo bench                       # the Rust kernels alone
```

Run it on an otherwise idle machine: where other work holds the cores, torch's OpenMP threads
(and OpenBLAS's) wait on each other and their times grow many-fold.

## Machine

{machine}
## Results

Both frameworks run with the same thread count. Each workload is warmed up, then timed in
{s.reps} repetitions that alternate ferrotorch and torch; the table gives medians. Speed-ups
are torch time / ferrotorch time: above 1, ferrotorch is faster. GPT-2 training runs each
config in a fresh process per framework; its RSS ratio is ferrotorch / torch: below 1,
ferrotorch uses less memory. The check column compares the two frameworks' results
(same seed, same weights).

{workloads}
{report.results_table()}

## Targets

sgemm: geometric mean over the GPT-2 shapes; training and inference: geometric mean over the
configs, worst config in brackets.

{report.targets_table()}

## Failures

{notes}"""


# *** main ***

def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny shapes, a smoke run (<60 s)")
    parser.add_argument("--reps", type=int, help="timed repetitions (default 5, --quick 3)")
    parser.add_argument("--only", help="comma-separated workloads: " + ",".join(WORKLOADS))
    parser.add_argument("--no-write", action="store_true", help="print only, write no file")
    parser.add_argument("--out", default=os.path.join(REPO, "docs", "benchmarks.md"),
                        help="Markdown output (default: docs/benchmarks.md)")
    # one run of one workload in this fresh process (used by the script itself)
    parser.add_argument("--child", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    parser.add_argument("--framework", choices=FRAMEWORKS, help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--seq", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.workloads = (WORKLOADS if args.only is None
                      else tuple(name.strip() for name in args.only.split(",")))
    unknown = set(args.workloads) - set(WORKLOADS)
    if unknown:
        parser.error(f"unknown workload(s) {', '.join(sorted(unknown))}: "
                     f"choose from {', '.join(WORKLOADS)}")
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.child:
        print(json.dumps(CHILDREN[args.child](args)))
        return 0

    ft = importlib.import_module("ferrotorch")
    threads = default_threads(ft)
    torch = import_framework("torch", threads)
    print(f"threads: {threads} (ferrotorch and torch)")
    cpu = cpu_info()
    theoretical = theoretical_peak(cpu, os.cpu_count())
    try:
        fma_peak = measured_peak(ft, threads, 50 if args.quick else 500)
    except Exception as e:  # the peak is context, not a result
        print(f"FMA peak: {type(e).__name__}: {e}", file=sys.stderr)
        fma_peak = None
    s = Settings(args, ft, torch, threads, fma_peak)
    machine = machine_lines(s, cpu, theoretical)
    print("\n".join(machine[-2:]))

    report = Report()
    for name in args.workloads:
        with report.guard(name):
            BENCHES[name](s, report)

    print("\n" + report.results_table() + "\n\n" + report.targets_table())
    if report.notes:
        print("\nfailures:\n" + "\n".join(report.notes))
    if not args.no_write:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            f.write(markdown_page(s, report, machine, args.workloads))
        print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
