"""The torch drop-in: an unmodified torch script runs on ferrotorch with torch's numbers; torch
names ferrotorch lacks fail with an error naming them; install/uninstall.

Each run is a fresh interpreter: this process has imported the real torch already."""

import builtins
import json
import os
import re
import subprocess
import sys
import types

import ferrotorch as ft
import ferrotorch.compat as compat
import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = os.path.join(ROOT, "tests", "scripts")


def run(*args, timeout=300):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def losses(stdout):
    """{'sgd step 0': 1.10..., ...} from the training script's output."""
    found = re.findall(r"^(.*?) ([-+0-9.e]+|nan|inf)$", stdout, flags=re.M)
    return {label: float(value) for label, value in found}


def test_training_script_prints_torchs_losses():
    script = os.path.join(SCRIPTS, "train_tiny.py")
    theirs = run(script, "3")
    ours = run("-m", "ferrotorch.run", script, "3")
    assert theirs.returncode == 3, theirs.stderr
    assert ours.returncode == 3, ours.stderr  # argv reached the script, its exit code came back
    expected, got = losses(theirs.stdout), losses(ours.stdout)
    assert len(expected) == 11
    assert list(got) == list(expected)
    for label, value in expected.items():
        assert got[label] == pytest.approx(value, rel=1e-5, abs=1e-5), label


def missing_torch_module():
    """A public torch submodule that ferrotorch does not provide (chosen from torch itself)."""
    for name in ("fft", "special", "distributions", "jit", "sparse", "onnx", "hub", "quantization"):
        if isinstance(getattr(torch, name, None), types.ModuleType) and not hasattr(ft, name):
            return name
    raise AssertionError("ferrotorch now provides all candidate torch modules: extend the list")


@pytest.mark.parametrize("mode, error", [
    ("attribute", AttributeError),
    ("import", ModuleNotFoundError),
    ("from-import", ImportError),
])
def test_missing_torch_name_is_named(mode, error):
    name = missing_torch_module()
    script = os.path.join(SCRIPTS, "use_torch_name.py")
    assert run(script, mode, name).stdout.strip() == f"resolved {name}"  # real torch has it
    out = run("-m", "ferrotorch.run", script, mode, name)
    assert out.returncode == 1
    last = out.stderr.strip().splitlines()[-1]
    assert f"ferrotorch does not implement torch.{name} (used through the ferrotorch drop-in)" in last
    exc_name = last.split(":")[0].rsplit(".", 1)[-1]
    exc_type = getattr(compat, exc_name, None) or getattr(builtins, exc_name)
    assert issubclass(exc_type, error)


def test_missing_name_inside_a_submodule_is_named():
    name = next(n for n in ("Conv2d", "Conv1d", "LSTM", "GRU", "Transformer")
                if hasattr(torch.nn, n) and not hasattr(ft.nn, n))
    script = os.path.join(SCRIPTS, "use_torch_name.py")
    for mode in ("attribute", "from-import"):
        out = run("-m", "ferrotorch.run", script, mode, f"nn.{name}")
        assert out.returncode == 1
        assert f"ferrotorch does not implement torch.nn.{name}" in out.stderr


def test_install_maps_modules_and_uninstall_restores():
    out = run(os.path.join(SCRIPTS, "compat_probe.py"))
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert all(report["installed"].values()), report["installed"]
    assert report["uninstalled_clean"] and report["hook_removed"]
    assert report["real_version"] == torch.__version__ and report["real_is_other"]
    assert "real torch is already imported" in report["refused"]


def test_install_refuses_when_real_torch_is_loaded():
    assert sys.modules["torch"] is torch
    with pytest.raises(RuntimeError, match="real torch is already imported.*ferrotorch.run"):
        compat.install()
    assert not compat.is_installed()
    assert sys.modules["torch"] is torch


def test_run_usage_and_missing_script():
    out = run("-m", "ferrotorch.run")
    assert out.returncode == 2 and "usage: python -m ferrotorch.run script.py" in out.stderr
    out = run("-m", "ferrotorch.run", "no_such_script.py")
    assert out.returncode == 2 and "no_such_script.py" in out.stderr


def test_run_module_mode():
    out = run("-m", "ferrotorch.run", "-m", "tests.scripts.use_torch_name", "attribute", "nn")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "resolved nn"
    name = missing_torch_module()  # fails only if `torch` is ferrotorch there
    out = run("-m", "ferrotorch.run", "-m", "tests.scripts.use_torch_name", "attribute", name)
    assert out.returncode == 1 and f"does not implement torch.{name}" in out.stderr


def test_mapping_table_targets_exist():
    """Every alias points at a ferrotorch module that imports (other workers add modules)."""
    import importlib

    for torch_name, target in compat.ALIASES.items():
        module = importlib.import_module(target)
        assert module.__name__ == target, torch_name
        real = importlib.import_module(torch_name)
        assert real.__name__ == torch_name  # the torch side of the table is real torch
