"""Short runs of the atheris harnesses in tests/fuzz/, and one regression test per finding.

Each harness runs in a subprocess for a fixed number of inputs from a fixed seed (about 10-20 s
on two cores) and must end cleanly: no finding, no PanicException, no crash. Longer runs are
described in tests/fuzz/README.md. The regression tests below are the minimal inputs of what the
fuzzers found, each checked against torch or against the loader's documented exception.
"""

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import ferrotorch as ft
import numpy as np
import pytest
import torch
from conftest import assert_same

FUZZ_DIR = Path(__file__).resolve().parent / "fuzz"
TINY_GPT = {"vocab_size": 11, "context_length": 4, "emb_dim": 4, "n_heads": 2, "n_layers": 1,
            "drop_rate": 0.0, "qkv_bias": True}


# *** the harnesses, briefly ***

@pytest.mark.parametrize("harness, runs, max_len", [
    ("fuzz_load.py", 1500, 8192),
    ("fuzz_tensor.py", 12000, 4096),
])
def test_harness_runs_clean(harness, runs, max_len, tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    if harness == "fuzz_load.py":
        subprocess.run([sys.executable, str(FUZZ_DIR / "make_corpus.py"), str(corpus)],
                       check=True, capture_output=True, timeout=120)
    env = {k: v for k, v in os.environ.items() if k != "FUZZ_KEEP_GOING"}  # stop at a finding
    proc = subprocess.run(
        [sys.executable, str(FUZZ_DIR / harness), f"-runs={runs}", "-seed=1",
         f"-max_len={max_len}", "-timeout=30", f"-artifact_prefix={tmp_path}/", str(corpus)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
        env=dict(env, RUST_BACKTRACE="0"))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{harness} found a problem (exit {proc.returncode}):\n{out[-4000:]}"
    for sign in ("PanicException", "Traceback", "Uncaught Python exception"):
        assert sign not in out, f"{harness} printed {sign}:\n{out[-4000:]}"
    assert f"Done {runs} runs" in out


# *** ferrotorch.load regressions ***

def write_safetensors(path, header, body=b""):
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    if len(text) % 256 == 128:  # a 0x80 first byte has a test of its own (below)
        text += b" " * 8
    path.write_bytes(struct.pack("<Q", len(text)) + text + body)
    return path


def test_load_header_length_with_low_byte_0x80(tmp_path):
    # the first byte of a safetensors file is the low byte of its header length; 0x80 is also
    # how a pickle starts, but a valid safetensors file must still load
    for n in range(1, 300):
        path = tmp_path / f"{n}.pt"
        ft.save({"w" * n: ft.ones(2)}, path)
        if path.read_bytes()[0] == 0x80:
            break
    else:
        pytest.fail("no name length gave a header length of 128 mod 256")
    assert_same(ft.load(path)["w" * n], torch.ones(2))


@pytest.mark.parametrize("shape", [[0, 2**40, 2**40], [0, 2**62, 4]])
def test_load_empty_tensor_with_huge_dims_is_a_runtime_error(tmp_path, shape):
    path = write_safetensors(tmp_path / "x.safetensors",
                             {"a": {"dtype": "F32", "shape": shape, "data_offsets": [0, 0]}})
    with pytest.raises(RuntimeError):
        ft.load(path)


@pytest.mark.parametrize("root", [
    '{"__tensor__": [1]}',
    '{"__size__": ["x"]}',
    '{"__size__": [null]}',
    "9" * 5000,
])
def test_load_malformed_structure_is_a_runtime_error(tmp_path, root):
    structure = '{"version": 1, "root": ' + root + "}"
    path = write_safetensors(tmp_path / "x.pt",
                             {"__metadata__": {"format": "pt", "ferrotorch": structure}})
    with pytest.raises(RuntimeError, match="not a valid ferrotorch save"):
        ft.load(path)


# *** gpt2 checkpoint and weight loading regressions ***

@pytest.fixture
def tiny_run(tmp_path):
    from ferrotorch.gpt2 import GPTModel, checkpoint
    from ferrotorch.gpt2.config import get_config

    cfg = get_config(dict(TINY_GPT))
    folder = checkpoint.save_checkpoint(tmp_path / "run", GPTModel(cfg), None, step=1)
    return Path(folder), lambda: GPTModel(cfg)


@pytest.mark.parametrize("content", [{"value": "x"}, {"value": None}, {"list": [1, 2]}])
def test_load_checkpoint_with_non_tensor_weights_is_a_value_error(tiny_run, content):
    from ferrotorch.gpt2 import checkpoint

    folder, new_model = tiny_run
    model = new_model()
    obj = {k: content["value"] for k in model.state_dict()} if "value" in content \
        else content["list"]
    ft.save(obj, folder / "model.safetensors")
    with pytest.raises(ValueError):
        checkpoint.load_checkpoint(folder.parent, model)


def test_load_hf_with_null_config_is_a_value_error(tmp_path):
    from ferrotorch.gpt2 import GPTModel, weights
    from ferrotorch.gpt2.config import get_config

    weights.save_hf(GPTModel(get_config(dict(TINY_GPT))), tmp_path)
    (tmp_path / "config.json").write_text("null")
    with pytest.raises(ValueError, match="config.json"):
        weights.load_hf(tmp_path)


# *** tensor constructor regressions ***

def deep_list(depth):
    data = []
    for _ in range(depth):
        data = [data]
    return data


def test_tensor_of_too_deep_list_is_a_value_error_like_torch():
    with pytest.raises(ValueError):
        torch.tensor(deep_list(200))
    with pytest.raises(ValueError):
        ft.tensor(deep_list(200))


def test_tensor_of_very_deep_list_does_not_crash():
    # 20000 levels overflowed the native stack (segmentation fault): run it in a subprocess
    code = ("import ferrotorch as ft\nx = []\nfor _ in range(20000): x = [x]\n"
            "try:\n    ft.tensor(x)\nexcept ValueError:\n    print('ValueError')\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, f"exit {proc.returncode}: {proc.stderr[-2000:]}"
    assert proc.stdout.strip() == "ValueError"


@pytest.mark.parametrize("data, dtype", [
    ([300], "uint8"),
    ([2**40], "int32"),
    ([float("nan")], "int64"),
    ([float("inf")], "int64"),
    ([2.0**63], "int64"),  # int64's max rounds up to 2**63 as a float, which does not fit
    (2.0**63, "int64"),
])
def test_tensor_out_of_range_value_for_dtype_is_a_runtime_error(data, dtype):
    with pytest.raises(RuntimeError):
        torch.tensor(data, dtype=getattr(torch, dtype))
    with pytest.raises(RuntimeError, match="overflow"):
        ft.tensor(data, dtype=getattr(ft, dtype))


@pytest.mark.parametrize("scalar, dtype", [
    (np.int64(7740398493674204011), "uint8"),
    (np.float64(1e30), "int64"),
])
def test_tensor_out_of_range_numpy_scalar_for_dtype_is_a_runtime_error(scalar, dtype):
    with pytest.raises(RuntimeError):
        torch.tensor(scalar, dtype=getattr(torch, dtype))
    with pytest.raises(RuntimeError, match="overflow"):
        ft.tensor(scalar, dtype=getattr(ft, dtype))


def test_tensor_of_bytes_is_a_type_error():
    with pytest.raises(TypeError):
        torch.tensor(b"ab")
    with pytest.raises(TypeError):
        ft.tensor(b"ab")


@pytest.mark.parametrize("api", ["tensor", "as_tensor"])
def test_unaligned_array(api):
    array = np.frombuffer(bytearray(range(17)), dtype=np.float32, offset=1, count=4)
    assert_same(getattr(ft, api)(array), getattr(torch, api)(array))


def test_from_numpy_refuses_to_share_unaligned_memory():
    """A deliberate difference: torch shares it, but Rust slices must be aligned, so from_numpy
    says what to do instead of sharing memory that its kernels may not read."""
    array = np.frombuffer(bytearray(range(17)), dtype=np.float32, offset=1, count=4)
    with pytest.raises(ValueError, match="aligned"):
        ft.from_numpy(array)


@pytest.mark.filterwarnings("ignore:Creating a tensor from a list of numpy.ndarrays")
@pytest.mark.parametrize("data", [
    [np.array([1, 2]), np.array([3, 4])],
    [np.array([], dtype=np.float64)],
    [np.array([1.5], dtype=np.float16), np.array([2.5], dtype=np.float16)],
])
def test_tensor_of_list_of_arrays(data):
    assert_same(ft.tensor(data), torch.tensor(data))


@pytest.mark.parametrize("value, dtype", [(2**64, "float32"), (2**64, "bool"), (2**63, "bool")])
def test_tensor_of_int_beyond_int64_with_float_or_bool_dtype(value, dtype):
    assert_same(ft.tensor(value, dtype=getattr(ft, dtype)),
                torch.tensor(value, dtype=getattr(torch, dtype)))


@pytest.mark.parametrize("item_dtype, other", [
    ("uint8", 1), ("int32", 1), ("float16", 1.5), ("bool", 1), ("float16", 1), ("float64", 1.5),
])
def test_tensor_dtype_of_list_with_zero_dim_tensor(item_dtype, other):
    ours = ft.tensor([ft.tensor(0).to(getattr(ft, item_dtype)), other])
    theirs = torch.tensor([torch.tensor(0).to(getattr(torch, item_dtype)), other])
    assert_same(ours, theirs)


@pytest.mark.parametrize("scalar", [np.int32(0), np.uint8(3), np.float16(0.5)])
def test_tensor_dtype_of_list_with_numpy_scalar(scalar):
    other = 1.5 if isinstance(scalar, np.floating) else 1
    assert_same(ft.tensor([scalar, other]), torch.tensor([scalar, other]))


def test_from_numpy_big_endian_shares_memory_or_refuses():
    array = np.arange(3, dtype=">f4")
    with pytest.raises(ValueError):
        torch.from_numpy(array)
    try:
        t = ft.from_numpy(array)
    except ValueError:
        return
    t[0] = 5.0
    assert array[0] == 5.0, "from_numpy returned a copy: writes through the tensor are lost"
