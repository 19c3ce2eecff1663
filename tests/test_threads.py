"""Thread-count control (``get_num_threads`` / ``set_num_threads``) and the FMA yardstick the
benchmarks use. Each case runs in a fresh interpreter: the kernels' pool starts once."""

import subprocess
import sys
import textwrap

import pytest


def run(code):
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_set_before_first_op_then_results_match_torch():
    out = run("""
        import ferrotorch as ft, numpy as np, torch
        ft.set_num_threads(1)
        assert ft.get_num_threads() == 1
        a = np.random.default_rng(0).standard_normal((300, 200)).astype("float32")
        got = (ft.from_numpy(a) @ ft.from_numpy(a.T)).numpy()
        want = (torch.from_numpy(a) @ torch.from_numpy(a.T)).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)
        print("ok")
    """)
    assert out.strip() == "ok"


def test_set_after_the_pool_started_names_the_running_count():
    out = run("""
        import ferrotorch as ft
        n = ft.get_num_threads()
        (ft.ones(100000) + 1).sum()
        ft.set_num_threads(n)  # confirming the running count is fine
        try:
            ft.set_num_threads(n + 1)
        except RuntimeError as e:
            print(e)
    """)
    assert "already runs" in out and "RAYON_NUM_THREADS" in out


@pytest.mark.parametrize("bad", [0, -2])
def test_non_positive_count_is_torchs_error(bad):
    import ferrotorch as ft
    import torch
    for M in (ft, torch):
        with pytest.raises(RuntimeError, match="positive integer"):
            M.set_num_threads(bad)


def test_fma_peak_is_a_positive_rate():
    import ferrotorch as ft
    assert ft._C._fma_peak_gflops(1, 20) > 0.1
