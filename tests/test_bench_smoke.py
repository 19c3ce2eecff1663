"""``benches/compare_torch.py --quick`` runs to the end and prints its tables (never the numbers)."""

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
