"""The GPT-2 training loop (``ferrotorch.gpt2.train``) and its checkpoints, checked against the
same loop written in torch: a mirror of GPTModel in torch.nn, torch's AdamW, torch's warmup and
cosine schedulers and torch's gradient clipping, fed the same batches."""

import math
import os
import random

import ferrotorch as ft
import numpy as np
import pytest
import torch
from conftest import to_numpy
from ferrotorch.gpt2 import GPTModel, make_loaders
from ferrotorch.gpt2 import checkpoint as ckpt
from ferrotorch.gpt2.train import (
    load_checkpoint,
    lr_factor,
    param_groups,
    save_checkpoint,
    train,
)

CFG = dict(vocab_size=257, context_length=32, emb_dim=32, n_heads=2, n_layers=2, drop_rate=0.0,
           qkv_bias=False)


def small_text(n_sentences=800, seed=0):
    """Sentences over a small vocabulary: a byte-level model learns its words quickly."""
    rng = random.Random(seed)
    words = "the cat dog sat on a mat and ran to big small red blue house garden".split()
    return ". ".join(" ".join(rng.choice(words) for _ in range(rng.randint(3, 8)))
                     for _ in range(n_sentences))


def make_model(seed=0, **overrides):
    ft.manual_seed(seed)
    return GPTModel(dict(CFG, **overrides))


def loaders(batch_size=8, seed=1, text=None):
    return make_loaders(text or small_text(), "bytes", context_length=CFG["context_length"],
                        batch_size=batch_size, seed=seed)


# *** a torch mirror of GPTModel: same module names, so state dicts load across ***

class TorchAttention(torch.nn.Module):
    def __init__(self, e, heads, qkv_bias):
        super().__init__()
        self.heads = heads
        self.W_query = torch.nn.Linear(e, e, bias=qkv_bias)
        self.W_key = torch.nn.Linear(e, e, bias=qkv_bias)
        self.W_value = torch.nn.Linear(e, e, bias=qkv_bias)
        self.out_proj = torch.nn.Linear(e, e)

    def forward(self, x):
        b, t, e = x.shape

        def split(z):
            return z.view(b, t, self.heads, e // self.heads).transpose(1, 2)

        q, k, v = split(self.W_query(x)), split(self.W_key(x)), split(self.W_value(x))
        y = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.out_proj(y.transpose(1, 2).reshape(b, t, e))


class TorchBlock(torch.nn.Module):
    def __init__(self, cfg):
        super().__init__()
        e = cfg["emb_dim"]
        self.att = TorchAttention(e, cfg["n_heads"], cfg["qkv_bias"])
        self.ff = torch.nn.Module()
        self.ff.layers = torch.nn.Sequential(torch.nn.Linear(e, 4 * e),
                                             torch.nn.GELU(approximate="tanh"),
                                             torch.nn.Linear(4 * e, e))
        self.norm1 = torch.nn.LayerNorm(e)
        self.norm2 = torch.nn.LayerNorm(e)

    def forward(self, x):
        x = x + self.att(self.norm1(x))
        return x + self.ff.layers(self.norm2(x))


class TorchGPT(torch.nn.Module):
    def __init__(self, cfg):
        super().__init__()
        e = cfg["emb_dim"]
        self.tok_emb = torch.nn.Embedding(cfg["vocab_size"], e)
        self.pos_emb = torch.nn.Embedding(cfg["context_length"], e)
        self.trf_blocks = torch.nn.Sequential(*[TorchBlock(cfg) for _ in range(cfg["n_layers"])])
        self.final_norm = torch.nn.LayerNorm(e)
        self.out_head = torch.nn.Linear(e, cfg["vocab_size"], bias=False)

    def forward(self, idx):
        x = self.tok_emb(idx) + self.pos_emb(torch.arange(idx.shape[1]))
        return self.out_head(self.final_norm(self.trf_blocks(x)))


def torch_mirror(model):
    ref = TorchGPT(model.cfg)
    ref.load_state_dict({k: torch.from_numpy(to_numpy(v)) for k, v in model.state_dict().items()})
    return ref


def torch_train(ref, batches, steps, accum, lr, weight_decay, warmup, total, min_lr_ratio,
                grad_clip):
    """The reference loop in plain torch: per-step losses and lrs."""
    decay = [p for p in ref.parameters() if p.dim() >= 2]
    no_decay = [p for p in ref.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=lr)
    sched = torch.optim.lr_scheduler.SequentialLR(opt, [
        torch.optim.lr_scheduler.LinearLR(opt, 1 / warmup, 1.0, total_iters=warmup - 1),
        torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total - warmup,
                                                   eta_min=min_lr_ratio * lr),
    ], milestones=[warmup])
    losses, lrs = [], []
    for _ in range(steps):
        lrs.append(opt.param_groups[0]["lr"])
        total_loss = 0.0
        for _ in range(accum):
            x, y = next(batches)
            logits = ref(x)
            loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten())
            (loss / accum).backward()
            total_loss += loss.item() / accum
        torch.nn.utils.clip_grad_norm_(ref.parameters(), grad_clip)
        opt.step()
        opt.zero_grad()
        sched.step()
        losses.append(total_loss)
    return losses, lrs


def endless_torch_batches(loader):
    while True:
        for x, y in loader:
            yield torch.from_numpy(to_numpy(x)), torch.from_numpy(to_numpy(y))


# *** the loop against torch ***

@pytest.mark.parametrize("accum,batch", [(1, 8), (2, 4)])
def test_train_matches_torch_loop(accum, batch):
    # ours with `accum` micro-batches of `batch`; torch with one batch of accum * batch:
    # the same samples (the shuffled order does not depend on the batch size)
    steps, warmup, lr = 12, 3, 3e-3
    model = make_model()
    ref = torch_mirror(model)
    train_loader, val_loader = loaders(batch_size=batch)
    history = train(model, train_loader, val_loader, steps=steps, lr=lr, warmup=warmup,
                    min_lr_ratio=0.1, weight_decay=0.1, grad_clip=0.5, accum=accum,
                    eval_every=steps, eval_batches=2, progress=False)
    torch_loader, _ = loaders(batch_size=8)
    losses, lrs = torch_train(ref, endless_torch_batches(torch_loader), steps, 1, lr, 0.1,
                              warmup, steps, 0.1, 0.5)
    np.testing.assert_allclose(history["step_loss"], losses, rtol=2e-5, atol=2e-5)
    np.testing.assert_allclose(history["lr"], lrs, rtol=1e-9, atol=0)
    theirs = ref.state_dict()
    for name, value in model.state_dict().items():
        np.testing.assert_allclose(to_numpy(value), to_numpy(theirs[name]), rtol=1e-4,
                                   atol=2e-5, err_msg=name)


def test_lr_schedule_by_formula_and_torch():
    lr, warmup, total, ratio = 0.5, 4, 20, 0.2
    w = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([w], lr=lr)
    sched = torch.optim.lr_scheduler.SequentialLR(opt, [
        torch.optim.lr_scheduler.LinearLR(opt, 1 / warmup, 1.0, total_iters=warmup - 1),
        torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total - warmup, eta_min=ratio * lr),
    ], milestones=[warmup])
    for step in range(total):
        expected = (step + 1) / warmup if step < warmup else ratio + (1 - ratio) * 0.5 * (
            1 + math.cos(math.pi * (step - warmup) / (total - warmup)))
        assert lr_factor(step, warmup, total, ratio) == pytest.approx(expected, rel=1e-12)
        assert lr * lr_factor(step, warmup, total, ratio) == pytest.approx(
            opt.param_groups[0]["lr"], rel=1e-9)
        opt.step()
        sched.step()
    assert lr_factor(total, warmup, total, ratio) == pytest.approx(ratio)
    assert lr_factor(0, 0, 10, 0.1) == 1.0  # no warmup: the peak at once


def test_weight_decay_only_on_matrices():
    model = make_model()
    decay, no_decay = param_groups(model, 0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    names = {id(p): n for n, p in model.named_parameters()}
    assert sorted(names[id(p)] for p in decay["params"]) == sorted(
        n for n, p in torch_mirror(model).named_parameters() if p.dim() >= 2)
    assert all(p.dim() == 1 for p in no_decay["params"])


# *** learning, determinism, resume ***

def test_validation_loss_drops_well_below_start():
    model = make_model()
    train_loader, val_loader = loaders(batch_size=16)
    history = train(model, train_loader, val_loader, steps=200, lr=3e-3, warmup=10,
                    eval_every=100, eval_batches=4, progress=False)
    start, end = history["val_loss"][0], history["val_loss"][-1]
    assert history["steps"] == [0, 100, 200]
    # the untrained model is near uniform over the 257 bytes: torch's cross-entropy of
    # uniform logits is ln(257)
    uniform = torch.nn.functional.cross_entropy(torch.zeros(1, 257), torch.tensor([0])).item()
    assert abs(start - uniform) < 0.5
    assert end < 0.4 * start
    assert history["val_ppl"][-1] == pytest.approx(math.exp(end))
    assert history["tokens_seen"][-1] == 200 * 16 * CFG["context_length"]


def test_same_seed_same_losses_with_dropout():
    runs = []
    for seed in (7, 7, 8):
        model = make_model(drop_rate=0.2)
        train_loader, val_loader = loaders()
        runs.append(train(model, train_loader, val_loader, steps=8, lr=3e-3, eval_every=4,
                          eval_batches=2, seed=seed, progress=False))
    assert runs[0]["step_loss"] == runs[1]["step_loss"]
    assert runs[0]["val_loss"] == runs[1]["val_loss"]
    assert runs[0]["step_loss"] != runs[2]["step_loss"]  # the seed drives dropout


class Crash(Exception):
    pass


def crash_after(model, n_calls):
    """Makes the n-th training forward (counting from 1) raise, like a killed process."""
    forward = model.forward
    calls = [0]

    def crashing(*args, **kwargs):
        if model.training:
            calls[0] += 1
            if calls[0] == n_calls:
                raise Crash
        return forward(*args, **kwargs)

    model.forward = crashing


@pytest.mark.parametrize("accum", [1, 2])
def test_resume_continues_with_identical_losses(tmp_path, accum):
    # dropout on, an epoch boundary inside the run (len(loader) batches per epoch), and a crash
    # in the middle of an accumulation: the resumed run repeats the uninterrupted one
    kw = dict(steps=14, lr=3e-3, warmup=2, eval_every=4, eval_batches=2, accum=accum,
              progress=False)
    text = small_text(100)
    full = train(make_model(drop_rate=0.1), *loaders(text=text), out_dir=tmp_path / "a", **kw)
    assert len(loaders(text=text)[0]) < 14 * accum  # the run crosses an epoch

    model = make_model(drop_rate=0.1)
    crash_after(model, 9 * accum + 1)
    with pytest.raises(Crash):
        train(model, *loaders(text=text), out_dir=tmp_path / "b", **kw)
    assert load_checkpoint(tmp_path / "b", make_model())["step"] == 8

    resumed = train(make_model(seed=99, drop_rate=0.1), *loaders(text=text),
                    out_dir=tmp_path / "b", resume=True, **kw)
    assert resumed["step_loss"] == full["step_loss"]
    assert resumed["val_loss"] == full["val_loss"]
    assert resumed["steps"] == full["steps"]
    a = ft.load(os.path.join(tmp_path, "a", "checkpoint", "model.safetensors"))
    b = ft.load(os.path.join(tmp_path, "b", "checkpoint", "model.safetensors"))
    for name in a:
        np.testing.assert_array_equal(to_numpy(a[name]), to_numpy(b[name]), err_msg=name)


def test_resume_without_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint in"):
        train(make_model(), *loaders(), steps=2, out_dir=tmp_path, resume=True, progress=False)


# *** checkpoints ***

def test_checkpoint_files_and_png(tmp_path):
    model = make_model()
    train(model, *loaders(), steps=4, eval_every=2, eval_batches=1, out_dir=tmp_path,
          progress=False)
    folder = tmp_path / "checkpoint"
    assert sorted(os.listdir(folder)) == sorted(ckpt.CHECKPOINT_FILES)
    assert sorted(os.listdir(tmp_path)) == ["checkpoint", "loss.png"]
    with open(tmp_path / "loss.png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    # the weights file is a plain safetensors file that torch's safetensors reader loads
    from safetensors.torch import load_file

    theirs = load_file(folder / "model.safetensors")
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(to_numpy(value), theirs[name].numpy(), err_msg=name)
    fresh = make_model(seed=5)
    opt = ft.optim.AdamW(param_groups(fresh, 0.1))
    state = load_checkpoint(tmp_path, fresh, opt)
    assert state["step"] == 4 and state["history"]["steps"] == [0, 2, 4]
    assert len(opt.state) == len(list(fresh.parameters()))
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(to_numpy(fresh.state_dict()[name]), to_numpy(value))


def _save_two(tmp_path, fail):
    model = make_model()
    opt = ft.optim.AdamW(model.parameters())
    save_checkpoint(tmp_path, model, opt, step=1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with ft.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    with pytest.raises(OSError, match="disk full"):
        with fail():
            save_checkpoint(tmp_path, model, opt, step=2)
    restored = make_model(seed=3)
    state = load_checkpoint(tmp_path, restored, ft.optim.AdamW(restored.parameters()))
    assert state["step"] == 1
    for name, value in restored.state_dict().items():
        np.testing.assert_array_equal(to_numpy(value), to_numpy(before[name]), err_msg=name)


def test_interrupted_save_keeps_previous_checkpoint(tmp_path, monkeypatch):
    import contextlib

    real = ckpt._write_json

    @contextlib.contextmanager
    def fail_on_state():
        def write(path, obj):
            if path.endswith("state.json"):
                raise OSError("disk full")
            real(path, obj)

        monkeypatch.setattr(ckpt, "_write_json", write)
        yield
        monkeypatch.setattr(ckpt, "_write_json", real)

    _save_two(tmp_path, fail_on_state)
    assert sorted(os.listdir(tmp_path)) == ["checkpoint"]  # the partial folder is gone


def test_save_interrupted_between_renames_falls_back(tmp_path, monkeypatch):
    import contextlib

    real = os.rename

    @contextlib.contextmanager
    def fail_second_rename():
        # the old checkpoint has been moved aside when the new one cannot be moved in
        calls = [0]

        def rename(src, dst):
            calls[0] += 1
            if calls[0] == 2:
                raise OSError("disk full")
            real(src, dst)

        monkeypatch.setattr(ckpt.os, "rename", rename)
        yield
        monkeypatch.setattr(ckpt.os, "rename", real)

    _save_two(tmp_path, fail_second_rename)
    assert "checkpoint.prev" in os.listdir(tmp_path)
    # the next save repairs the folder
    model = make_model()
    save_checkpoint(tmp_path, model, ft.optim.AdamW(model.parameters()), step=3)
    assert sorted(os.listdir(tmp_path)) == ["checkpoint"]


def test_load_checkpoint_errors(tmp_path):
    model = make_model()
    save_checkpoint(tmp_path, model, ft.optim.AdamW(model.parameters()), step=1)
    with pytest.raises(ValueError, match="different model config.*n_layers"):
        load_checkpoint(tmp_path, make_model(n_layers=3))
    folder = tmp_path / "checkpoint"
    with open(folder / "model.safetensors", "wb") as f:
        f.write(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(ValueError, match="cannot read .*model.safetensors"):
        load_checkpoint(tmp_path, make_model())
    os.remove(folder / "model.safetensors")
    with pytest.raises(FileNotFoundError, match="incomplete.*model.safetensors"):
        load_checkpoint(tmp_path, make_model())
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_checkpoint(tmp_path / "nope", make_model())


def test_train_argument_errors():
    model = make_model()
    tr, va = loaders()
    with pytest.raises(ValueError, match="steps or epochs, not both"):
        train(model, tr, va, steps=2, epochs=1, progress=False)
    with pytest.raises(ValueError, match="accum must be a positive integer"):
        train(model, tr, va, steps=2, accum=0, progress=False)
    with pytest.raises(ValueError, match="resume=True needs the out_dir"):
        train(model, tr, va, steps=2, resume=True, progress=False)


def test_epochs_count_steps():
    tr, va = loaders()
    history = train(make_model(), tr, va, epochs=1, accum=2, eval_every=1000, eval_batches=1,
                    progress=False)
    assert len(history["step_loss"]) == len(tr) // 2
