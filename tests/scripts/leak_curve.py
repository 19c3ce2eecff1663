"""Trains a very small GPT with AdamW and the data loader, and prints how memory evolves.

Every ``--every`` optimizer steps (and before the first) it samples the process's resident set
size (VmRSS in /proc/self/status) and ``ferrotorch._C._live_storages()`` (tensor storages alive
and their bytes). A run that leaks shows a climbing curve; a healthy one is flat once AdamW's
state exists. The loss column is the mean training loss since the previous sample.

    python tests/scripts/leak_curve.py --steps 2000 --every 100          # markdown table
    python tests/scripts/leak_curve.py --steps 2000 --every 100 --csv    # CSV
"""

import argparse
import time

import ferrotorch as torch
from ferrotorch.gpt2 import GPTModel, default_corpus, get_config, make_loaders
from ferrotorch.gpt2.train import param_groups
from ferrotorch.nn import functional as F

# Small enough for 2,000 steps in 10-20 s on 2 CPU cores, with every part of GPT-2 in it
# (two blocks, dropout); the text is short enough that the loader starts a new epoch
# every ~600 steps, so abandoned epoch iterators would show up too.
CONFIG = dict(vocab_size=257, context_length=16, emb_dim=32, n_heads=2, n_layers=2,
              drop_rate=0.1)
TEXT_CHARS = 20_000
BATCH_SIZE = 2


def rss_kib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS line in /proc/self/status (this script needs Linux)")


def endless(loader):
    while True:
        yield from loader


def run(steps, every):
    """Trains for ``steps`` steps; yields (step, rss_kib, storages, bytes, mean loss)."""
    torch.manual_seed(0)
    model = GPTModel(get_config("tiny", **CONFIG))
    train_loader, _ = make_loaders(default_corpus()[:TEXT_CHARS], "bytes",
                                   CONFIG["context_length"], batch_size=BATCH_SIZE, val_ratio=0)
    optimizer = torch.optim.AdamW(param_groups(model, 0.1), lr=3e-3)
    batches = endless(train_loader)
    losses = []
    yield (0, rss_kib(), *torch._C._live_storages(), float("nan"))
    for step in range(1, steps + 1):
        x, y = next(batches)
        loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
        del loss
        if step % every == 0:
            yield (step, rss_kib(), *torch._C._live_storages(), sum(losses) / len(losses))
            losses.clear()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--every", type=int, default=100)
    parser.add_argument("--csv", action="store_true", help="print CSV instead of markdown")
    args = parser.parse_args()
    start = time.perf_counter()
    if args.csv:
        print("step,rss_kib,live_storages,live_bytes,loss")
        for row in run(args.steps, args.every):
            print("{},{},{},{},{:.4f}".format(*row), flush=True)
        return
    print("| step | RSS (MiB) | live storages | live bytes | loss |")
    print("|-----:|----------:|--------------:|-----------:|-----:|")
    for step, rss, storages, nbytes, loss in run(args.steps, args.every):
        loss = "-" if step == 0 else f"{loss:.3f}"
        print(f"| {step} | {rss / 1024:.1f} | {storages} | {nbytes:,} | {loss} |", flush=True)
    print(f"\n{args.steps} steps in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
