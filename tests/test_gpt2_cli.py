"""The GPT-2 runner's command line (``python -m ferrotorch.gpt2`` / ``ferrotorch-gpt2``) and the
main job (``python -m ferrotorch``): train -> checkpoint -> PNG -> generate end to end, greedy
generations checked against torch (a torch mirror of the model, and ``transformers``), and
one-line errors with their exit codes."""

import json
import os
import subprocess
import sys

import ferrotorch as ft
import numpy as np
import pytest
import torch
from conftest import to_numpy
from ferrotorch.gpt2.checkpoint import load_model, save_checkpoint
from ferrotorch.gpt2.cli import main
from ferrotorch.gpt2.tokenizer import ByteTokenizer
from test_gpt2_train import CFG, TorchGPT, make_model, small_text

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(*args, cwd=None, env=None):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=300)


@pytest.fixture
def files(tmp_path):
    config = tmp_path / "cfg.json"
    config.write_text(json.dumps(CFG))
    data = tmp_path / "corpus.txt"
    data.write_text(small_text(300))
    return config, data


@pytest.fixture
def saved_run(tmp_path):
    """A checkpoint of a small untrained model (fast, for the error cases)."""
    model = make_model()
    save_checkpoint(tmp_path / "run", model, ft.optim.AdamW(model.parameters()), step=0,
                    extra={"tokenizer": "bytes"})
    return tmp_path / "run"


def torch_greedy(model, prompt_ids, n):
    """Greedy continuation computed by a torch mirror of ``model`` (full recomputation)."""
    ref = TorchGPT(model.cfg)
    ref.load_state_dict({k: torch.from_numpy(to_numpy(v)) for k, v in model.state_dict().items()})
    ids = torch.tensor([prompt_ids])
    with torch.no_grad():
        for _ in range(n):
            logits = ref(ids[:, -model.cfg["context_length"]:])[:, -1]
            ids = torch.cat([ids, logits.argmax(-1, keepdim=True)], dim=1)
    return ids[0].tolist()


# *** end to end ***

def test_train_checkpoint_png_generate(tmp_path, files):
    config, data = files
    out = tmp_path / "run"
    done = run("-m", "ferrotorch.gpt2", "train", "--config", str(config), "--data", str(data),
               "--steps", "6", "--batch-size", "4", "--lr", "3e-3", "--eval-every", "3",
               "--eval-batches", "2", "--out", str(out), "--no-progress")
    assert done.returncode == 0, done.stderr
    summary = done.stdout.strip().splitlines()[-1]
    assert summary.startswith("done: 6 steps, train loss ") and summary.endswith(f"out {out}")
    for word in ("val loss", "val ppl", "tokens/s"):
        assert word in summary
    assert sorted(os.listdir(out / "checkpoint")) == sorted(
        ["config.json", "model.safetensors", "optimizer.safetensors", "state.json"])
    with open(out / "loss.png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    state = json.loads((out / "checkpoint" / "state.json").read_text())
    assert state["step"] == 6 and state["tokenizer"] == "bytes"
    assert len(state["history"]["step_loss"]) == 6

    prompt = "the cat "
    done = run("-m", "ferrotorch.gpt2", "generate", "--checkpoint", str(out), "--prompt", prompt,
               "--max-new-tokens", "20", "--top-k", "1")
    assert done.returncode == 0, done.stderr
    model, _ = load_model(out)
    tok = ByteTokenizer()
    expected = tok.decode(torch_greedy(model, tok.encode(prompt), 20))
    assert done.stdout == expected + "\n"


def test_resume_from_the_command_line(tmp_path, files, capsys):
    config, data = files
    out = str(tmp_path / "run")
    common = ["--data", str(data), "--batch-size", "4", "--eval-every", "2",
              "--eval-batches", "1", "--out", out, "--no-progress"]
    assert main(["train", "--config", str(config), "--steps", "4", *common]) == 0
    first = json.loads(open(os.path.join(out, "checkpoint", "state.json")).read())
    # --resume takes the run's options from the checkpoint; --steps extends it
    assert main(["train", "--resume", "--steps", "6", "--out", out, "--no-progress"]) == 0
    assert "done: 6 steps" in capsys.readouterr().out
    state = json.loads(open(os.path.join(out, "checkpoint", "state.json")).read())
    assert state["step"] == 6
    assert state["history"]["step_loss"][:4] == first["history"]["step_loss"]
    assert state["cli"]["data"] == str(data) and state["cli"]["batch_size"] == 4


def test_generate_from_hf_weights_matches_transformers(tmp_path, tiktoken_cache, monkeypatch,
                                                       capsys):
    import tiktoken
    import transformers

    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", tiktoken_cache)
    torch.manual_seed(0)
    hf = transformers.GPT2LMHeadModel(transformers.GPT2Config(
        vocab_size=50257, n_positions=64, n_embd=32, n_layer=2, n_head=2)).eval()
    hf.save_pretrained(tmp_path / "hf", safe_serialization=True)
    prompt = "Hello, my name is"
    enc = tiktoken.get_encoding("gpt2")
    ids = torch.tensor([enc.encode(prompt)])
    with torch.no_grad():
        for _ in range(8):
            ids = torch.cat([ids, hf(ids).logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    code = main(["generate", "--hf", str(tmp_path / "hf"), "--prompt", prompt,
                 "--max-new-tokens", "8", "--top-k", "1"])
    assert code == 0
    assert capsys.readouterr().out == enc.decode(ids[0].tolist()) + "\n"


def test_info_prints_the_describe_table(capsys):
    from ferrotorch.gpt2 import GPTModel

    assert main(["info", "--config", "tiny", "--json"]) == 0
    numbers = json.loads(capsys.readouterr().out)
    ft.manual_seed(0)
    ours = GPTModel("tiny")
    theirs = TorchGPT(ours.cfg)  # the torch mirror counts the same parameters
    assert numbers["params_total"] == sum(p.numel() for p in theirs.parameters())
    assert main(["info", "--config", "gpt2-small", "--batch-size", "2"]) == 0
    table = capsys.readouterr().out
    assert "163,009,536" in table and "124,412,160" in table


# *** errors: one line on stderr, exit code 2 (command line) or 1 (running) ***

def _errors(tmp_path, saved_run):
    missing = str(tmp_path / "missing")
    bad_json = tmp_path / "bad.json"
    bad_json.write_text("{not json")
    run_dir = str(saved_run)
    return [
        (["info", "--config", "gpt-small"], 2, "unknown preset 'gpt-small'"),
        (["info", "--config", missing + ".json"], 1, "does not exist"),
        (["info", "--config", str(bad_json)], 1, "JSON"),
        (["info", "--config", "tiny", "--seq-len", "4096"], 2, "longer than the context"),
        (["train", "--steps", "0"], 2, "--steps: expected a positive integer"),
        (["train", "--lr", "abc"], 2, "--lr: expected a number"),
        (["train", "--lr", "-1"], 2, "--lr: expected a number in"),
        (["train", "--steps", "2", "--epochs", "1"], 2, "not allowed with"),
        (["train", "--device", "cuda"], 2, "no CUDA GPU is available"),
        (["train", "--tokenizer", "sentencepiece"], 2, "invalid choice"),
        (["train", "--data", missing, "--out", str(tmp_path / "o1")], 1, "no such file"),
        (["train", "--config", "tiny", "--seq-len", "4096", "--out", str(tmp_path / "o2")], 2,
         "longer than the model's context"),
        (["train", "--out", run_dir], 2, "already holds a checkpoint"),
        (["train", "--resume"], 2, "--resume needs --out"),
        (["train", "--resume", "--out", missing], 1, "does not exist"),
        (["generate"], 2, "one of the arguments --checkpoint --hf is required"),
        (["generate", "--checkpoint", missing], 1, "does not exist"),
        (["generate", "--hf", missing], 1, "not found"),
        (["generate", "--checkpoint", run_dir, "--temperature", "-1"], 2, "--temperature"),
        (["generate", "--checkpoint", run_dir, "--top-p", "1.5"], 2, "--top-p"),
        (["generate", "--checkpoint", run_dir, "--prompt", "x" * 40], 2,
         "prompt is 40 tokens long, more than the model's context length of 32"),
        (["generate", "--checkpoint", run_dir, "--tokenizer", "gpt2"], 1,
         "the gpt2 tokenizer has 50257 tokens but the model only 257"),
        (["generate", "--checkpoint", run_dir, "--device", "mps"], 2, "MPS is not available"),
        (["frobnicate"], 2, "invalid choice"),
    ]


def test_errors_are_one_line_with_exit_codes(tmp_path, saved_run, capsys, monkeypatch,
                                            tiktoken_cache):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", tiktoken_cache)
    for argv, code, message in _errors(tmp_path, saved_run):
        assert main(argv) == code, argv
        captured = capsys.readouterr()
        lines = captured.err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (argv, captured.err)
        assert message in lines[0], (argv, lines[0])
    assert not os.path.exists(tmp_path / "runs")  # no error left a run folder behind


def test_corrupt_or_mismatched_checkpoint(saved_run, capsys):
    folder = saved_run / "checkpoint"
    cfg = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(dict(cfg, n_layers=3)))
    assert main(["generate", "--checkpoint", str(saved_run), "--prompt", "a"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: weights in") and "do not match the model" in err
    (folder / "config.json").write_text("{")
    assert main(["generate", "--checkpoint", str(saved_run)]) == 1
    assert "not valid JSON" in capsys.readouterr().err
    (folder / "config.json").write_text(json.dumps(cfg))
    (folder / "model.safetensors").write_bytes(b"garbage")
    assert main(["generate", "--checkpoint", str(saved_run)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: cannot read") and len(err.strip().splitlines()) == 1


def test_no_traceback_unless_debug(tmp_path):
    missing = str(tmp_path / "missing")
    done = run("-m", "ferrotorch.gpt2", "generate", "--checkpoint", missing)
    assert done.returncode == 1
    assert done.stderr == f"error: checkpoint folder {missing} does not exist\n"
    done = run("-m", "ferrotorch.gpt2", "generate", "--checkpoint", missing, "--debug")
    assert done.returncode == 1
    assert "Traceback (most recent call last)" in done.stderr
    assert "FileNotFoundError" in done.stderr


# *** python -m ferrotorch: the main job ***

def test_main_job_help_points_to_the_cli():
    done = run("-m", "ferrotorch", "--help")
    assert done.returncode == 0
    assert "python -m ferrotorch.gpt2" in done.stdout and "tiny" in done.stdout


def test_main_job_short_run(tmp_path):
    done = run("-m", "ferrotorch", "--steps", "2", "--out", str(tmp_path / "run"),
               "--no-progress", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "done: 2 steps" in done.stdout and "sample (temperature" in done.stdout
    assert os.path.isfile(tmp_path / "run" / "loss.png")
    history = json.loads((tmp_path / "run" / "checkpoint" / "state.json").read_text())["history"]
    assert np.isfinite(history["step_loss"]).all() and len(history["step_loss"]) == 2
