"""ferrotorch against torch on a torch-backend device (a GPU), side by side in one run.

    python benches/compare_device.py [--device cuda] [--reps 10] [--batch 8] [--seq 512]
                                     [--autocast bfloat16]

On such a device ferrotorch runs torch's kernels behind its own API and autograd tape, so the
ratio measures what that layer costs: Python dispatch, the tape, and the backward formulas that
ferrotorch records itself. Workloads: one small op (dispatch latency), GPT-2 124M inference
forward and a full training step (forward, cross-entropy, backward, AdamW), both frameworks
running the same model code (``gpt_bench_model.py``). Timed repetitions alternate the two
frameworks and report medians; the device is synchronised around every timed region.
``--autocast bfloat16`` runs the forward passes (and the loss) under each framework's autocast.
``--device torch:cpu`` runs the same comparison on torch's CPU kernels (ferrotorch's side on
"torch:cpu", torch's on "cpu"), which is how this script is smoke-tested without a GPU.
"""

import argparse
import contextlib
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gpt_bench_model import GPT_124M, GPT_QUICK, build  # noqa: E402


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda", help="ferrotorch device (default: cuda)")
    p.add_argument("--reps", type=int, default=10, help="timed repetitions (default: 10)")
    p.add_argument("--batch", type=int, default=8, help="GPT-2 batch size (default: 8)")
    p.add_argument("--seq", type=int, default=512, help="GPT-2 sequence length (default: 512)")
    p.add_argument("--quick", action="store_true", help="a small GPT config: a smoke run")
    p.add_argument("--autocast", choices=("bfloat16", "float16"),
                   help="forward passes under autocast in this dtype")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    import ferrotorch as ft
    import torch

    ft_device = args.device
    torch_device = "cpu" if ft_device == "torch:cpu" else ft_device

    def sync():
        if torch_device.startswith("cuda"):
            torch.cuda.synchronize()

    def timed(fns):
        """Median seconds of each callable, alternating them; one warm-up call each."""
        for fn in fns.values():
            fn()
        sync()
        samples = {name: [] for name in fns}
        for _ in range(args.reps):
            for name, fn in fns.items():
                sync()
                start = time.perf_counter()
                fn()
                sync()
                samples[name].append(time.perf_counter() - start)
        return {name: statistics.median(v) for name, v in samples.items()}

    rows = []

    def report(workload, unit, rate):
        rows.append((workload, unit, rate["ferrotorch"], rate["torch"],
                     rate["ferrotorch"] / rate["torch"]))
        print(f"{workload:<34} {unit:<9} ferrotorch {rate['ferrotorch']:>12.1f}   "
              f"torch {rate['torch']:>12.1f}   ratio {rows[-1][-1]:.2f}", flush=True)

    # Dispatch: 100 chained adds of a small tensor.
    small = {"ferrotorch": ft.ones(64, device=ft_device),
             "torch": torch.ones(64, device=torch_device)}

    def adds(name):
        x = small[name]
        for _ in range(100):
            x = x + 1.0
        return x

    t = timed({name: (lambda name=name: adds(name)) for name in small})
    report("small add (dispatch)", "ops/s", {k: 100 / v for k, v in t.items()})

    cfg = GPT_QUICK if args.quick else GPT_124M
    tokens = np.random.default_rng(0).integers(0, cfg["vocab_size"], (args.batch, args.seq + 1))
    models, optimizers, inputs, targets = {}, {}, {}, {}
    for name, mod, dev in (("ferrotorch", ft, ft_device), ("torch", torch, torch_device)):
        mod.manual_seed(123)
        models[name] = build(mod)(cfg).to(dev)
        optimizers[name] = mod.optim.AdamW(models[name].parameters(), lr=4e-4, weight_decay=0.1)
        inputs[name] = mod.tensor(tokens[:, :-1]).to(dev)
        targets[name] = mod.tensor(tokens[:, 1:]).to(dev)
    mods = {"ferrotorch": ft, "torch": torch}
    n_tokens = args.batch * args.seq
    kind = "cpu" if torch_device == "cpu" else torch_device.split(":")[0]

    def region(name):
        if args.autocast is None:
            return contextlib.nullcontext()
        mod = mods[name]
        return mod.autocast(kind, dtype=getattr(mod, args.autocast))

    def infer(name):
        models[name].eval()
        with mods[name].no_grad(), region(name):
            return models[name](inputs[name])

    t = timed({name: (lambda name=name: infer(name)) for name in models})
    amp = f" {args.autocast}" if args.autocast else ""
    report(f"GPT-2 forward B={args.batch} T={args.seq}{amp}", "tokens/s",
           {k: n_tokens / v for k, v in t.items()})

    losses = {name: [] for name in models}

    def train(name):
        model, opt = models[name], optimizers[name]
        model.train()
        with region(name):
            logits = model(inputs[name])
            loss = mods[name].nn.functional.cross_entropy(logits.flatten(0, 1),
                                                          targets[name].flatten())
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses[name].append(loss)

    t = timed({name: (lambda name=name: train(name)) for name in models})
    report(f"GPT-2 train step B={args.batch} T={args.seq}{amp}", "tokens/s",
           {k: n_tokens / v for k, v in t.items()})
    first = {name: float(v[0].item()) for name, v in losses.items()}
    print(f"first training loss: ferrotorch {first['ferrotorch']:.4f}, torch {first['torch']:.4f}")
    card = torch.cuda.get_device_name() if torch_device.startswith("cuda") else "cpu"
    print(f"device: {ft_device} ({card}), torch {torch.__version__}")


if __name__ == "__main__":
    main()
