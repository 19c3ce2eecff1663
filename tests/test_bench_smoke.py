"""The benchmark scripts run to the end in smoke mode and print their tables (never the numbers)."""

import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_compare_torch_quick_runs():
    script = os.path.join(REPO, "benches", "compare_torch.py")
    done = subprocess.run([sys.executable, script, "--quick", "--no-write"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "speed-up = torch time / ferrotorch time" in done.stdout
    assert "| target" in done.stdout


def test_compare_device_quick_runs_on_torch_cpu():
    # the GPU comparison, on the torch backend's CPU device: every workload runs to its row
    script = os.path.join(REPO, "benches", "compare_device.py")
    done = subprocess.run([sys.executable, script, "--device", "torch:cpu", "--quick",
                           "--reps", "2", "--batch", "2", "--seq", "16"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    for row in ("small add (dispatch)", "GPT-2 forward", "GPT-2 train step", "first training loss"):
        assert row in done.stdout, done.stdout
