"""The pretraining loop of the GPT-2 runner: AdamW, linear warmup then cosine decay, gradient
clipping and accumulation, periodic validation, sample generations, checkpoints and resume.

Determinism: with the same ``seed``, model and loaders, two runs give the same losses, and a run
resumed from a checkpoint continues with the losses the uninterrupted run would have had. The
checkpoint records the step, the position in the current epoch and the random-generator states
(the global one, which drives dropout, and the loader's shuffling generator as it was when the
epoch began); on resume the epoch's order is drawn again and the batches already used skipped.
Evaluation and sample generation run on a forked global generator, so how often you evaluate
does not change the training losses.

Data parallel: when a ``ferrotorch.distributed`` process group is initialized (e.g. under
``torchrun``), every rank reads the same batches, computes the loss of its own share of the
rows, and ``DistributedDataParallel`` averages the gradients; the loss is weighted so that the
gradient is the full batch's whatever the split. The weights stay equal on every rank, the
losses are reduced over the ranks, evaluation batches are shared out, and only rank 0 prints,
samples, writes checkpoints and the loss plot.
"""

import contextlib
import math
import os
import time

import ferrotorch as torch
from ferrotorch.gpt2.checkpoint import (
    checkpoint_dir,
    find_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from ferrotorch.nn import functional as F

__all__ = ["lr_factor", "param_groups", "plot_history", "evaluate", "train",
           "save_checkpoint", "load_checkpoint"]


def lr_factor(step, warmup, total_steps, min_lr_ratio=0.1):
    """The multiplier of the peak learning rate at optimizer step ``step`` (0-based).

    Linear warmup over the first ``warmup`` steps (``(step + 1) / warmup``, so the first step
    already moves), then a cosine decay from 1 at step ``warmup`` to ``min_lr_ratio`` at step
    ``total_steps`` (nanoGPT's schedule): ``r + (1 - r) * (1 + cos(pi * p)) / 2`` with
    ``p = (step - warmup) / (total_steps - warmup)``.

    >>> [round(lr_factor(s, warmup=2, total_steps=6, min_lr_ratio=0.0), 3) for s in range(6)]
    [0.5, 1.0, 1.0, 0.854, 0.5, 0.146]
    """
    if step < warmup:
        return (step + 1) / warmup
    span = max(1, total_steps - warmup)
    progress = min(1.0, (step - warmup) / span)
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def param_groups(model, weight_decay):
    """AdamW parameter groups: weight decay on the matrices (parameters with 2 or more
    dimensions: linear weights and embeddings), none on biases and LayerNorm scales/shifts,
    as in nanoGPT and common GPT-2 practice (decaying a bias or a norm scale towards zero only
    hurts)."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.dim() >= 2 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


def _loss(model, x, y):
    logits = model(x)
    return F.cross_entropy(logits.flatten(0, 1), y.flatten())


def _share_loss(model, x, y, rank, world):
    """This rank's part of the batch's mean cross-entropy, scaled so that the ranks' gradients
    averaged by DistributedDataParallel are the full batch's gradient (rows are split as evenly
    as possible; a rank without rows contributes zero gradients)."""
    lo, hi = rank * len(x) // world, (rank + 1) * len(x) // world
    if hi == lo:
        return sum((p * 0).sum() for p in model.parameters())
    logits = model(x[lo:hi])
    total = F.cross_entropy(logits.flatten(0, 1), y[lo:hi].flatten(), reduction="sum")
    return total * (world / y.numel())


def _device_of(model):
    """Where the model's parameters are (batches go there)."""
    p = next(iter(model.parameters()), None)
    return p.device if p is not None else torch.device("cpu")


def _sum_over_ranks(*values, device="cpu"):
    """The values summed over the ranks (on ``device``: nccl reduces GPU tensors only)."""
    from ferrotorch import distributed as dist

    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def _data_parallel(enabled):
    """(rank, world size) of a data-parallel run, (0, 1) when training alone."""
    from ferrotorch import distributed as dist

    if enabled is False or not dist.is_initialized():
        if enabled:
            raise ValueError("data_parallel=True needs an initialized process group: call "
                             "ferrotorch.distributed.init_process_group first (torchrun sets "
                             "up its environment)")
        return 0, 1
    return dist.get_rank(), dist.get_world_size()


def evaluate(model, loader, max_batches=None, _shard=(0, 1)):
    """The mean cross-entropy of ``model`` over ``loader`` (at most ``max_batches`` batches), in
    eval mode and without gradients; the model's train/eval mode is restored afterwards."""
    rank, world = _shard
    was_training = model.training
    model.eval()
    device = _device_of(model)
    total, n = 0.0, 0
    with torch.no_grad():
        for i, (x, y) in enumerate(loader):
            if max_batches is not None and i >= max_batches:
                break
            if i % world == rank:
                total += _loss(model, x.to(device), y.to(device)).item()
            n += 1
    model.train(was_training)
    if world > 1:
        total = _sum_over_ranks(total, device=device)[0]
    if n == 0:
        raise ValueError("the validation loader yielded no batches")
    return total / n


def _perplexity(loss):
    return math.exp(loss) if loss < 700 else float("inf")


def _loader_generators(loader):
    """The generators that decide a loader's order (its own and its sampler's), deduplicated."""
    found = []
    for g in (getattr(loader, "generator", None),
              getattr(getattr(loader, "sampler", None), "generator", None)):
        if isinstance(g, torch.Generator) and all(g is not h for h in found):
            found.append(g)
    return found


def _rng_snapshot(loader):
    return {"global": torch.get_rng_state().tolist(),
            "loader": [g.get_state().tolist() for g in _loader_generators(loader)]}


def _rng_restore(snapshot, loader):
    torch.set_rng_state(torch.tensor(snapshot["global"], dtype=torch.uint8))
    generators = _loader_generators(loader)
    if len(generators) != len(snapshot["loader"]):
        raise ValueError(
            f"the train loader has {len(generators)} random generator(s) but the checkpoint "
            f"saved {len(snapshot['loader'])}: resume with the loaders the run was started with"
        )
    for g, state in zip(generators, snapshot["loader"]):
        g.set_state(torch.tensor(state, dtype=torch.uint8))


class _ForkedRNG:
    """Runs a block on a copy of the global generator (evaluation, samples)."""

    def __enter__(self):
        self.state = torch.get_rng_state()

    def __exit__(self, *exc):
        torch.set_rng_state(self.state)


class _Batches:
    """An endless stream of training batches that knows its place: epoch, the batches used
    in this epoch, and the generator states at the start of the epoch."""

    def __init__(self, loader):
        self.loader = loader
        self.epoch = 0
        self.position = 0
        self.epoch_rng = None
        self._it = None

    def _start_epoch(self):
        self.epoch_rng = _rng_snapshot(self.loader)
        self._it = iter(self.loader)
        self.position = 0

    def resume(self, epoch, position, epoch_rng, current_rng):
        """Redraws the order of ``epoch`` from its saved generator states, skips the
        ``position`` batches already used, then restores the generators as they were."""
        self.epoch = epoch
        if epoch_rng is not None:
            _rng_restore(epoch_rng, self.loader)
            self._start_epoch()
            for _ in range(position):
                next(self._it)
            self.position = position
        _rng_restore(current_rng, self.loader)

    def next(self):
        if self._it is None:
            self._start_epoch()
        while True:
            try:
                batch = next(self._it)
            except StopIteration:
                if self.position == 0:
                    raise ValueError("the train loader yielded no batches") from None
                self.epoch += 1
                self._start_epoch()
                continue
            self.position += 1
            return batch


def _empty_history():
    return {"steps": [], "train_loss": [], "val_loss": [], "val_ppl": [], "tokens_seen": [],
            "tokens_per_s": [], "step_loss": [], "lr": []}


def _check_positive_int(name, value, allow_none=False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def _check_args(steps, epochs, lr, weight_decay, warmup, min_lr_ratio, grad_clip, accum,
                eval_every, eval_batches):
    if steps is not None and epochs is not None:
        raise ValueError("give steps or epochs, not both")
    _check_positive_int("steps", steps, allow_none=True)
    _check_positive_int("epochs", epochs, allow_none=True)
    _check_positive_int("accum", accum)
    _check_positive_int("eval_every", eval_every, allow_none=True)
    _check_positive_int("eval_batches", eval_batches, allow_none=True)
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    if not (isinstance(weight_decay, (int, float)) and weight_decay >= 0):
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay!r}")
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"warmup must be a non-negative integer, got {warmup!r}")
    if not (isinstance(min_lr_ratio, (int, float)) and 0 <= min_lr_ratio <= 1):
        raise ValueError(f"min_lr_ratio must be in [0, 1], got {min_lr_ratio!r}")
    if grad_clip is not None and not (isinstance(grad_clip, (int, float)) and grad_clip > 0):
        raise ValueError(f"grad_clip must be a positive number or None, got {grad_clip!r}")


def train(model, train_loader, val_loader, *, steps=None, epochs=None, lr=4e-4, weight_decay=0.1,
          warmup=0, min_lr_ratio=0.1, grad_clip=1.0, accum=1, eval_every=50, eval_batches=None,
          out_dir=None, resume=False, seed=123, tokenizer=None, sample_prompt=None, progress=True,
          sample_tokens=40, extra_state=None, log=None, data_parallel=None):
    """Pretrains ``model`` on next-token prediction and returns the history dict.

    One optimizer step uses ``accum`` batches of ``train_loader`` (each loss scaled by
    ``1 / accum``, so the gradient is that of their mean); the run lasts ``steps`` optimizer
    steps, or ``epochs`` passes over the loader (one epoch when neither is given). The learning
    rate warms up linearly for ``warmup`` steps, then decays along a cosine to
    ``min_lr_ratio * lr`` (:func:`lr_factor`); AdamW decays only the weight matrices
    (:func:`param_groups`); gradients are clipped to norm ``grad_clip`` (None: no clipping).

    Every ``eval_every`` steps and at the end: validation loss and perplexity over
    ``eval_batches`` batches of ``val_loader`` (all when None), a sample continuation of
    ``sample_prompt`` when a ``tokenizer`` is given, and a checkpoint in ``out_dir`` (see
    :mod:`ferrotorch.gpt2.checkpoint`); a loss-curve PNG ``loss.png`` is written there at the
    end. ``resume=True`` continues the run saved in ``out_dir``. ``seed`` seeds the global
    generator (dropout) at the start of a fresh run. The evaluation lines go to the progress
    bar, or to ``log`` (e.g. ``print``) when ``progress=False``.

    The history has, per evaluation, ``steps``, ``train_loss`` (mean of the steps since the
    previous evaluation), ``val_loss``, ``val_ppl``, ``tokens_seen`` and ``tokens_per_s``, and
    per step ``step_loss`` and ``lr``.

    ``data_parallel``: None trains data-parallel when a process group of several ranks is
    initialized (see the module's notes), False never, True insists on it.

    >>> import ferrotorch as torch
    >>> from ferrotorch.gpt2 import GPTModel, get_config, make_loaders
    >>> cfg = get_config("tiny", vocab_size=257, context_length=16, n_layers=1)
    >>> tr, va = make_loaders("hello world! " * 40, "bytes", context_length=16, batch_size=4)
    >>> history = train(GPTModel(cfg), tr, va, steps=3, eval_every=3, progress=False)
    >>> history["steps"]
    [0, 3]
    """
    _check_args(steps, epochs, lr, weight_decay, warmup, min_lr_ratio, grad_clip, accum,
                eval_every, eval_batches)
    if resume and out_dir is None:
        raise ValueError("resume=True needs the out_dir of the run to continue")
    batches_per_epoch = len(train_loader)
    if steps is not None:
        total_steps = steps
    else:
        total_steps = max(1, ((epochs or 1) * batches_per_epoch) // accum)
    eval_every = eval_every or total_steps

    rank, world = _data_parallel(data_parallel)
    device = _device_of(model)
    net = model
    if world > 1:
        from ferrotorch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model)
    if rank != 0:  # one rank speaks and writes for the run
        progress, log, tokenizer_for_samples = False, None, None
    else:
        tokenizer_for_samples = tokenizer
    optimizer = torch.optim.AdamW(param_groups(model, weight_decay), lr=lr,
                                  weight_decay=weight_decay)
    batches = _Batches(train_loader)
    history = _empty_history()
    step = 0
    tokens_seen = 0
    if resume:
        find_checkpoint(out_dir)  # a clear FileNotFoundError when there is nothing to resume
        state = load_checkpoint(out_dir, model, optimizer)
        try:
            step = state["step"]
            tokens_seen = state["tokens_seen"]
            history = state["history"]
            batches.resume(state["epoch"], state["batch_position"], state["epoch_rng"],
                           state["rng"])
        except KeyError as e:
            raise ValueError(
                f"the checkpoint in {out_dir} has no {e.args[0]!r} entry in state.json: it was "
                "not written by ferrotorch.gpt2.train and cannot be resumed"
            ) from None
    else:
        torch.manual_seed(seed)

    def checkpoint():
        if out_dir is None or rank != 0:
            return
        extra = {"epoch": batches.epoch, "batch_position": batches.position,
                 "epoch_rng": batches.epoch_rng, "rng": _rng_snapshot(train_loader),
                 "tokens_seen": tokens_seen, "total_steps": total_steps, "seed": seed,
                 "tokenizer": getattr(tokenizer, "name", None), "history": history}
        extra.update(extra_state or {})
        save_checkpoint(out_dir, model, optimizer, step, extra)

    run_tokens = 0
    run_start = time.perf_counter()
    since_eval = []

    def run_eval():
        with _ForkedRNG():
            val = (evaluate(model, val_loader, eval_batches, _shard=(rank, world))
                   if val_loader is not None else None)
            sample = None
            if tokenizer_for_samples is not None and sample_prompt:
                sample = _sample(model, tokenizer, sample_prompt, sample_tokens)
        elapsed = time.perf_counter() - run_start
        history["steps"].append(step)
        history["train_loss"].append(sum(since_eval) / len(since_eval) if since_eval else None)
        history["val_loss"].append(val)
        history["val_ppl"].append(_perplexity(val) if val is not None else None)
        history["tokens_seen"].append(tokens_seen)
        history["tokens_per_s"].append(run_tokens / elapsed if elapsed > 0 else 0.0)
        since_eval.clear()
        return val, sample

    bar = _progress_bar(total_steps, step, progress)
    model.train()
    try:
        if step == 0 and val_loader is not None:
            run_eval()
        while step < total_steps:
            factor = lr_factor(step, warmup, total_steps, min_lr_ratio)
            for group in optimizer.param_groups:
                group["lr"] = lr * factor
            step_loss = 0.0
            for i in range(accum):
                x, y = batches.next()
                x, y = x.to(device), y.to(device)
                if world == 1:
                    loss = _loss(model, x, y)
                    (loss / accum).backward()
                else:  # gradients are averaged at the last micro-batch only
                    with net.no_sync() if i < accum - 1 else contextlib.nullcontext():
                        loss = _share_loss(net, x, y, rank, world)
                        (loss / accum).backward()
                step_loss += loss.item() / accum
                run_tokens += x.numel()
                tokens_seen += x.numel()
            if world > 1:
                step_loss = _sum_over_ranks(step_loss, device=device)[0] / world
            if grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            optimizer.step()
            optimizer.zero_grad()
            step += 1
            history["step_loss"].append(step_loss)
            history["lr"].append(lr * factor)
            since_eval.append(step_loss)
            if not math.isfinite(step_loss):
                raise FloatingPointError(
                    f"the training loss became {step_loss} at step {step}: lower the learning "
                    "rate (--lr) or clip gradients (--grad-clip)"
                )
            elapsed = time.perf_counter() - run_start
            if bar is not None:
                bar.set_postfix(loss=f"{step_loss:.3f}", tok_s=f"{run_tokens / elapsed:,.0f}",
                                refresh=False)
                bar.update(1)
            if step % eval_every == 0 or step == total_steps:
                val, sample = run_eval()
                write = bar.write if bar is not None else log
                if write is not None:
                    text = f"step {step}: train {history['train_loss'][-1]:.3f}"
                    if val is not None:
                        text += f", val {val:.3f} (ppl {_perplexity(val):.1f})"
                    write(text)
                    if sample is not None:
                        write(f"  sample: {sample!r}")
                checkpoint()
    finally:
        if bar is not None:
            bar.close()
    if out_dir is not None and rank == 0:
        plot_history(history, os.path.join(os.fspath(out_dir), "loss.png"))
    history["time_s"] = time.perf_counter() - run_start
    history["out_dir"] = os.fspath(out_dir) if out_dir is not None else None
    history["checkpoint"] = checkpoint_dir(out_dir) if out_dir is not None else None
    return history


def _sample(model, tokenizer, prompt, max_new_tokens):
    from ferrotorch.gpt2.generate import generate_text

    context = model.cfg["context_length"] if hasattr(model, "cfg") else None
    if context is not None:
        max_new_tokens = max(0, min(max_new_tokens, context - len(tokenizer.encode(prompt))))
    if max_new_tokens == 0:
        return ""
    was_training = model.training
    model.eval()
    try:
        # sampled (a fixed seed: the same sample for the same weights) rather than greedy,
        # which repeats the most frequent token for most of a short run
        return generate_text(model, tokenizer, prompt, max_new_tokens=max_new_tokens,
                             temperature=0.8, top_k=40, seed=123)
    finally:
        model.train(was_training)


def _progress_bar(total, initial, enabled):
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # the bar is a nicety: train without it
        return None
    return tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True, leave=True)


def plot_history(history, path):
    """Draws the train loss (per step, and averaged between evaluations) and the validation
    loss against the optimizer step into ``path`` (a PNG), with matplotlib's Agg backend.
    Returns the path, or None when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.2))
    try:
        per_step = history.get("step_loss", [])
        if per_step:
            ax.plot(range(1, len(per_step) + 1), per_step, color="tab:blue", alpha=0.3, lw=0.8,
                    label="train (per step)")
        points = [(s, t) for s, t in zip(history["steps"], history["train_loss"]) if t is not None]
        if points:
            ax.plot(*zip(*points), color="tab:blue", marker="o", ms=3,
                    label="train (mean since the last evaluation)")
        points = [(s, v) for s, v in zip(history["steps"], history["val_loss"]) if v is not None]
        if points:
            ax.plot(*zip(*points), color="tab:orange", marker="o", ms=3, label="validation")
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("cross-entropy loss")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(path, dpi=100)
    finally:
        plt.close(fig)
    return path
