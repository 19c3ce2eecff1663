"""Tests of ferrotorch.save / ferrotorch.load (safetensors + JSON structure, no pickle).

What torch can do too (round trips of tensors and nested objects, tied weights, parameters,
file objects, missing and truncated files) is compared with torch.save/torch.load run on the
same values in the same test. The file format checks (corrupt headers, wrong sizes, pickle
files, atomic writes, other safetensors readers) check ferrotorch's own guarantees, with the
expected tensors still computed by torch.
"""

import collections
import io
import json
import math
import os
import pathlib
import signal
import struct
import subprocess
import sys
import textwrap
import time

import ferrotorch as ft
import numpy as np
import pytest
import safetensors
import safetensors.torch
import torch
from conftest import assert_same, pair, to_ft

ALL_DTYPES = ["float32", "float64", "float16", "bfloat16", "int64", "int32", "uint8", "bool"]
LAYOUTS = ["contiguous", "transposed", "sliced"]


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def assert_tree(ours, theirs):
    """ours (loaded by ferrotorch) equals theirs (loaded by torch) through any nesting."""
    if isinstance(theirs, torch.Tensor):
        assert isinstance(ours, ft.Tensor), f"{type(ours)} is not a tensor"
        assert type(ours).__name__ == type(theirs).__name__  # Tensor / Parameter
        assert ours.requires_grad == theirs.requires_grad
        assert_same(ours.detach(), theirs.detach(), rtol=0, atol=0)
    elif isinstance(theirs, (torch.dtype, torch.device)):
        assert str(ours) == str(theirs)
    elif isinstance(theirs, torch.Size):
        assert isinstance(ours, ft.Size) and tuple(ours) == tuple(theirs)
    elif isinstance(theirs, (list, tuple)):
        assert type(ours) is type(theirs), f"{type(ours)} != torch {type(theirs)}"
        assert len(ours) == len(theirs)
        for o, t in zip(ours, theirs):
            assert_tree(o, t)
    elif isinstance(theirs, dict):
        assert type(ours) is type(theirs), f"{type(ours)} != torch {type(theirs)}"
        assert list(ours) == list(theirs)
        assert [type(k) for k in ours] == [type(k) for k in theirs]
        for k in theirs:
            assert_tree(ours[k], theirs[k])
    elif isinstance(theirs, float) and math.isnan(theirs):
        assert isinstance(ours, float) and math.isnan(ours)
    else:
        assert type(ours) is type(theirs) and ours == theirs, f"{ours!r} != torch {theirs!r}"


def round_trips(make, tmp_path, **load_kwargs):
    """(ferrotorch's, torch's) round trip through a file of the object make(M) builds."""
    ours_path, theirs_path = tmp_path / "ours.ft", tmp_path / "theirs.pt"
    ft.save(make(ft), ours_path)
    torch.save(make(torch), theirs_path)
    return ft.load(ours_path, **load_kwargs), torch.load(theirs_path, **load_kwargs)


def tensors_like(theirs):
    """A dict of ferrotorch tensors equal to a dict of torch tensors."""
    return {k: to_ft(v) for k, v in theirs.items()}


def saved(tmp_path, obj=None):
    """The path of a ferrotorch save of a small state dict (or of obj)."""
    path = tmp_path / "ckpt.ft"
    ft.save(obj if obj is not None else {"w": ft.arange(12.0).reshape(3, 4),
                                         "b": ft.tensor([1, 2, 3])}, path)
    return path


def header_of(path):
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8:8 + n]), data[8 + n:]


def write_with_header(path, header, body):
    """A safetensors file with the given header dict (space-padded to 8 bytes) and body."""
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + body)


def load_fails(path, *words):
    """ferrotorch.load(path) raises RuntimeError naming the path and the given words."""
    with pytest.raises(RuntimeError) as info:
        ft.load(path)
    message = str(info.value)
    assert str(path) in message, message
    for w in words:
        assert w in message, message
    return message


# --------------------------------------------------------------------------------------------
# round trips compared with torch
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ALL_DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_state_dict_all_dtypes_and_layouts(dtype, layout, tmp_path):
    shapes = {"w": (3, 4), "b": (4,), "s": (), "e": (0, 3), "t": (2, 3, 5)}
    tensors = {k: pair(s, dtype, layout if len(s) >= 2 else "contiguous", seed=i)
               for i, (k, s) in enumerate(shapes.items())}
    ours, theirs = round_trips(
        lambda M: collections.OrderedDict((k, v[0] if M is ft else v[1])
                                          for k, v in tensors.items()),
        tmp_path)
    assert_tree(ours, theirs)


def test_nested_objects_with_int_keys(tmp_path):
    w, tw = pair((4, 3), "float32", "transposed")
    m, tm = pair((4, 3), "float64", "sliced", seed=1)

    def make(M):
        W, E = (w, m) if M is ft else (tw, tm)
        return {
            "model": collections.OrderedDict([("fc.weight", W), ("fc.bias", W[0])]),
            "optimizer": {
                "state": {0: {"step": M.tensor(3.0), "exp_avg": E}, 1: {"step": M.tensor(1.0)}},
                "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8,
                                  "weight_decay": 0.0, "amsgrad": False, "params": [0, 1],
                                  "foreach": None, "name": "main"}],
            },
            "epoch": 3,
            "losses": [2.5, 1.25, float("nan"), float("inf"), -float("inf"), -0.0],
            "keys": {1.5: "float key", True: "bool key", None: "none key", (1, "a"): "tuple"},
            "big": 2 ** 70,
            "empty": ({}, [], ()),
            "dtype": M.float16,
            "device": M.device("cpu"),
            "size": M.Size([2, 3]),
            "text": "ünïcødé \"quotes\" \n",
        }

    ours, theirs = round_trips(make, tmp_path)
    assert_tree(ours, theirs)


def test_module_state_dict(tmp_path):
    torch.manual_seed(0)
    tlin = torch.nn.Linear(5, 3)
    lin = ft.nn.Linear(5, 3)
    lin.load_state_dict(tensors_like(tlin.state_dict()))
    ours, theirs = round_trips(lambda M: (lin if M is ft else tlin).state_dict(), tmp_path)
    assert_tree(ours, theirs)
    fresh = ft.nn.Linear(5, 3)
    fresh.load_state_dict(ours)
    x, tx = pair((2, 5))
    assert_same(fresh(x).detach(), tlin(tx).detach())


def test_tied_and_shared_tensors(tmp_path):
    base, tbase = pair((3, 4), "float64")

    def make(M):
        p = (base if M is ft else tbase).clone()
        return {"same": p, "again": p, "alias": p.detach(), "other": p.clone(),
                "slice": p[1:], "params": [M.nn.Parameter(p), M.nn.Parameter(p.detach())]}

    ours, theirs = round_trips(make, tmp_path)
    assert_tree(ours, theirs)

    def facts(d):
        d["same"].add_(1)  # in place: seen through every tensor that shares its storage
        return [d["same"] is d["again"], d["alias"] is d["same"], d["alias"][0, 0].item(),
                d["other"][0, 0].item(), d["params"][0][0, 0].item()]

    assert facts(ours) == facts(theirs)
    # a tensor object met twice is stored once
    assert len(header_of(tmp_path / "ours.ft")[0]) - 1 == 3  # p, other, slice (+ metadata)


def test_parameters_and_requires_grad(tmp_path):
    a, ta = pair((2, 3))

    def make(M):
        A = a if M is ft else ta
        return {"p": M.nn.Parameter(A.clone()), "frozen": M.nn.Parameter(A.clone(), False),
                "leaf": A.clone().requires_grad_(), "plain": A.clone()}

    ours, theirs = round_trips(make, tmp_path)
    assert_tree(ours, theirs)


def test_file_objects_and_path_types(tmp_path):
    x, tx = pair((5,), "int64")
    ours_buf, theirs_buf = io.BytesIO(), io.BytesIO()
    ft.save({"x": x, "n": 1}, ours_buf)
    torch.save({"x": tx, "n": 1}, theirs_buf)
    ours_buf.seek(0)
    theirs_buf.seek(0)
    assert_tree(ft.load(ours_buf), torch.load(theirs_buf))
    ft.save([x], str(tmp_path / "as_str"))
    torch.save([tx], pathlib.Path(tmp_path / "as_path_t"))
    assert_tree(ft.load(pathlib.Path(tmp_path / "as_str")),
                torch.load(str(tmp_path / "as_path_t")))


@pytest.mark.parametrize("map_location", [None, "cpu", "device", "dict", "callable"])
def test_map_location(map_location, tmp_path):
    def loc(M):
        return {"device": M.device("cpu"), "dict": {"cpu": "cpu"},
                "callable": lambda storage, location: storage}.get(map_location, map_location)

    w, tw = pair((2, 2))
    ft.save({"w": w}, tmp_path / "o")
    torch.save({"w": tw}, tmp_path / "t")
    assert_tree(ft.load(tmp_path / "o", map_location=loc(ft)),
                torch.load(tmp_path / "t", map_location=loc(torch)))


def test_loaded_tensors_own_their_memory(tmp_path):
    w, tw = pair((3,))
    ft.save({"w": w}, tmp_path / "o")
    torch.save({"w": tw}, tmp_path / "t")
    ours, theirs = ft.load(tmp_path / "o"), torch.load(tmp_path / "t")
    (tmp_path / "o").unlink()  # the loaded tensor must not depend on the file
    ours["w"].mul_(2)
    theirs["w"].mul_(2)
    assert_tree(ours, theirs)
    assert_same(w, tw)  # the saved tensor is unchanged


# --------------------------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------------------------


def test_missing_file(tmp_path):
    errors = []
    for load in (ft.load, torch.load):
        with pytest.raises(FileNotFoundError) as info:
            load(tmp_path / "missing.pt")
        errors.append(info.value)
    assert errors[0].errno == errors[1].errno
    assert str(tmp_path / "missing.pt") in str(errors[0])


@pytest.mark.parametrize("keep", [0, 5, 8, 20, -1])
def test_truncated_file(keep, tmp_path):
    path = saved(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[:keep] if keep >= 0 else data[:-7])
    tpath = tmp_path / "t.pt"
    torch.save({"w": torch.zeros(3)}, tpath)
    tdata = tpath.read_bytes()
    tpath.write_bytes(tdata[:len(tdata) // 2])
    with pytest.raises(RuntimeError):  # torch fails the same way on its own truncated file
        torch.load(tpath)
    load_fails(path)


@pytest.mark.parametrize("where", [0, 7, 8, 9, 20, 40, "last header byte"])
def test_flipped_header_bytes(where, tmp_path):
    path = saved(tmp_path)
    data = bytearray(path.read_bytes())
    (n,) = struct.unpack("<Q", data[:8])
    i = 8 + n - 1 if where == "last header byte" else where
    data[i] ^= 0xFF
    path.write_bytes(bytes(data))
    load_fails(path)


@pytest.mark.parametrize("problem", ["shape", "dtype", "offsets past end", "offsets overlap",
                                     "extra bytes", "missing bytes"])
def test_wrong_sizes_and_dtypes(problem, tmp_path):
    path = saved(tmp_path)
    header, body = header_of(path)
    w = header["w"]
    if problem == "shape":
        w["shape"] = [3, 5]
    elif problem == "dtype":
        w["dtype"] = "F7"
    elif problem == "offsets past end":
        w["data_offsets"] = [w["data_offsets"][0], w["data_offsets"][1] + 8]
    elif problem == "offsets overlap":
        header["b"]["data_offsets"] = w["data_offsets"]
    elif problem == "extra bytes":
        body += b"\0" * 8
    else:
        body = body[:-8]
    write_with_header(path, header, body)
    load_fails(path)


@pytest.mark.parametrize("problem", ["not json", "no root", "missing tensor", "unknown tag",
                                     "bad dict", "newer version"])
def test_corrupt_structure(problem, tmp_path):
    path = saved(tmp_path)
    header, body = header_of(path)
    structure = json.loads(header["__metadata__"]["ferrotorch"])
    if problem == "not json":
        text = header["__metadata__"]["ferrotorch"][:-3]
    else:
        if problem == "no root":
            del structure["root"]
        elif problem == "missing tensor":
            structure["root"]["__dict__"][0][1]["__tensor__"] = "nope"
        elif problem == "unknown tag":
            structure["root"] = {"__set__": [1, 2]}
        elif problem == "bad dict":
            structure["root"] = {"__dict__": [[1]]}
        else:
            structure["version"] = 99
        text = json.dumps(structure)
    header["__metadata__"]["ferrotorch"] = text
    write_with_header(path, header, body)
    load_fails(path)


@pytest.mark.parametrize("legacy", [False, True])
def test_pickle_file(legacy, tmp_path):
    path = tmp_path / "model.pt"
    torch.save({"w": torch.ones(2)}, path, _use_new_zipfile_serialization=not legacy)
    message = load_fails(path, "does not unpickle", "from_torch")
    assert "safetensors" in message


def test_not_a_checkpoint(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello, this is not a checkpoint at all")
    load_fails(path, "ferrotorch.save")
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    load_fails(empty)


@pytest.mark.parametrize("obj,where", [
    ({"a": {"b": object()}}, "a.b"),
    ([1, np.zeros(2)], "1"),
    ({"f": lambda: 1}, "f"),
    ({"nt": collections.namedtuple("P", "x")(1)}, "nt"),
    ({("a", ft.zeros(1)): 1}, ""),
    ({"c": 1j}, "c"),
])
def test_unsupported_objects(obj, where, tmp_path):
    with pytest.raises(TypeError) as info:
        ft.save(obj, tmp_path / "x")
    assert where in str(info.value)
    assert not (tmp_path / "x").exists()


def test_failing_save_keeps_previous_file(tmp_path):
    path = saved(tmp_path)
    before = path.read_bytes()
    with pytest.raises(TypeError):
        ft.save({"w": ft.zeros(2), "bad": object()}, path)
    assert path.read_bytes() == before
    # a write that fails midway (the file size limit is hit) leaves the previous file intact
    script = textwrap.dedent(f"""
        import resource, signal
        import ferrotorch as ft
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
        try:
            ft.save({{"big": ft.zeros(100_000)}}, {str(path)!r})
        except (RuntimeError, OSError) as e:
            print("failed:", e)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120)
    assert "failed:" in out.stdout, out.stdout + out.stderr
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == [path.name]  # no temporary file left behind
    theirs = {"w": torch.arange(12.0).reshape(3, 4), "b": torch.tensor([1, 2, 3])}
    assert_tree(ft.load(path), theirs)


def test_save_to_missing_folder(tmp_path):
    with pytest.raises(RuntimeError) as info:
        ft.save({"w": ft.zeros(1)}, tmp_path / "nope" / "x.ft")
    with pytest.raises(RuntimeError):
        torch.save({"w": torch.zeros(1)}, tmp_path / "nope" / "x.pt")
    assert "nope" in str(info.value)


# --------------------------------------------------------------------------------------------
# interop with the safetensors package
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_safetensors_package_reads_our_files(dtype, tmp_path):
    tensors = {name: pair(shape, dtype, layout, seed=i) for i, (name, shape, layout) in
               enumerate([("fc.weight", (3, 4), "transposed"), ("fc.bias", (4,), "contiguous"),
                          ("emb", (2, 3, 2), "sliced")])}
    ft.save({k: v[0] for k, v in tensors.items()}, tmp_path / "m.safetensors")
    loaded = safetensors.torch.load_file(tmp_path / "m.safetensors")
    assert sorted(loaded) == sorted(tensors)
    for k, (_, theirs) in tensors.items():
        assert torch.equal(loaded[k], theirs), k
    with safetensors.safe_open(tmp_path / "m.safetensors", "pt") as f:
        assert f.metadata()["format"] == "pt"


def test_nested_names_for_safetensors(tmp_path):
    a, ta = pair((2,))
    ft.save({"model": {"w": a}, "opt": {"state": {0: {"m": a * 2}}}, "list": [a + 1]},
            tmp_path / "n")
    loaded = safetensors.torch.load_file(tmp_path / "n")
    expected = {"model.w": ta, "opt.state.0.m": ta * 2, "list.0": ta + 1}
    assert sorted(loaded) == sorted(expected)
    for k in expected:
        assert torch.equal(loaded[k], expected[k])


@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_we_read_safetensors_package_files(dtype, tmp_path):
    theirs = {"b": pair((3,), dtype)[1], "a": pair((2, 2), dtype, seed=1)[1]}
    safetensors.torch.save_file(theirs, tmp_path / "hf.safetensors")
    ours = ft.load(tmp_path / "hf.safetensors")
    assert_tree(ours, dict(sorted(theirs.items())))


# --------------------------------------------------------------------------------------------
# regressions: files that start like a pickle, malformed structures
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("header_length", [0x180, 0x280, 0x380, 0x580])
def test_safetensors_file_that_starts_like_a_pickle_loads(header_length, tmp_path):
    # a safetensors file starts with its header length: 0x80 then 0x02..0x05 is also how a
    # pickle (torch.save's legacy format) starts, yet the file is safetensors and must load
    path = saved(tmp_path)
    header, body = header_of(path)
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", header_length) + raw.ljust(header_length) + body)
    assert path.read_bytes()[0] == 0x80
    theirs = {"w": torch.arange(12.0).reshape(3, 4), "b": torch.tensor([1, 2, 3])}
    assert_tree(ft.load(path), theirs)
    assert_tree(ft.load(io.BytesIO(path.read_bytes())), theirs)


@pytest.mark.parametrize("root", [
    {"__tensor__": [1]},                                  # a tensor reference that is no name
    {"__tensor__": "w", "device": 5},                     # a tensor's device that is no device
    {"__tensor__": "b", "requires_grad": True},           # an int64 tensor requiring grad
    {"__device__": "nowhere"},
    {"__size__": ["x"]},
    {"__size__": [None]},
    {"__dict__": [[[1], 2]]},                             # an unhashable key
    {"__dict__": [[{"__tensor__": "w"}, 2]]},             # a key that save cannot write
    "99999" * 1000,                                       # an int too long for int()
    "[" * 100_000 + "]" * 100_000,                        # nested deeper than json reads
    {"__tuple__": "[" * 900 + "]" * 900},                 # nested deeper than load decodes
])
def test_malformed_structure_is_a_runtime_error(root, tmp_path):
    path = saved(tmp_path)
    header, body = header_of(path)
    text = json.dumps(root)
    if isinstance(root, str):  # raw JSON text
        text = root
    elif "__tuple__" in root:
        text = '{"__tuple__": ' + root["__tuple__"] + "}"
    header["__metadata__"]["ferrotorch"] = '{"version": 1, "root": ' + text + "}"
    write_with_header(path, header, body)
    load_fails(path, "is not a valid ferrotorch save")


@pytest.mark.parametrize("version", ['"1"', "null", "0", "true"])
def test_malformed_format_version(version, tmp_path):
    path = saved(tmp_path)
    header, body = header_of(path)
    header["__metadata__"]["ferrotorch"] = '{"version": ' + version + ', "root": 1}'
    write_with_header(path, header, body)
    load_fails(path, "is not a valid ferrotorch save", "version")


# --------------------------------------------------------------------------------------------
# regressions: damaged files of gpt2 checkpoints and Hugging Face folders, which are read with
# ferrotorch.load and must give a ValueError naming the file
# --------------------------------------------------------------------------------------------

TINY_GPT = {"vocab_size": 11, "context_length": 4, "emb_dim": 4, "n_heads": 2, "n_layers": 1,
            "drop_rate": 0.0, "qkv_bias": True}


def _tiny_gpt():
    from ferrotorch.gpt2 import GPTModel

    return GPTModel(dict(TINY_GPT))


@pytest.fixture
def gpt_checkpoint(tmp_path):
    """A checkpoint folder of a tiny model and an AdamW that took one step."""
    from ferrotorch.gpt2 import checkpoint

    model = _tiny_gpt()
    opt = ft.optim.AdamW(model.parameters())
    model(ft.zeros(1, 2, dtype=ft.int64)).sum().backward()
    opt.step()
    return pathlib.Path(checkpoint.save_checkpoint(tmp_path / "run", model, opt, step=1))


def _with_model(make):
    def damage(folder):
        ft.save(make(_tiny_gpt().state_dict()), folder / "model.safetensors")
        return "model.safetensors"
    return damage


def _with_optimizer(make):
    def damage(folder):
        state = ft.load(folder / "optimizer.safetensors")
        ft.save(make(state), folder / "optimizer.safetensors")
        return "optimizer.safetensors"
    return damage


def _with_config(text):
    def damage(folder):
        (folder / "config.json").write_text(text)
        return "config.json"
    return damage


CHECKPOINT_DAMAGE = {
    "weights are strings": _with_model(lambda sd: {k: "x" for k in sd}),
    "weights are a list": _with_model(lambda sd: [1, 2]),
    "weights with int keys": _with_model(lambda sd: {**sd, 1: 2}),
    "weights are integers": _with_model(lambda sd: {k: v.to(ft.int32) for k, v in sd.items()}),
    "weights of another shape": _with_model(lambda sd: {**sd, "tok_emb.weight": ft.zeros(3)}),
    "optimizer state is a list": _with_optimizer(lambda s: [1]),
    "optimizer groups are ints": _with_optimizer(lambda s: {**s, "param_groups": [1]}),
    "optimizer params are strings": _with_optimizer(
        lambda s: {**s, "param_groups": [dict(s["param_groups"][0], params=["a"])]}),
    "optimizer has fewer params": _with_optimizer(
        lambda s: {**s, "param_groups": [dict(s["param_groups"][0], params=[0])]}),
    "optimizer moment of another shape": _with_optimizer(
        lambda s: {**s, "state": {**s["state"], 0: {**s["state"][0], "exp_avg": ft.zeros(3)}}}),
    "optimizer state of a param is a list": _with_optimizer(
        lambda s: {**s, "state": {0: [1]}}),
    "config is null": _with_config("null"),
    "config int too long": _with_config("9" * 5000),
}


@pytest.mark.parametrize("damage", list(CHECKPOINT_DAMAGE))
def test_damaged_checkpoint_is_a_value_error(damage, gpt_checkpoint):
    from ferrotorch.gpt2 import checkpoint

    name = CHECKPOINT_DAMAGE[damage](gpt_checkpoint)
    model = _tiny_gpt()
    with pytest.raises(ValueError, match=name):
        checkpoint.load_checkpoint(gpt_checkpoint, model, ft.optim.AdamW(model.parameters()))


@pytest.mark.parametrize("text", ["null", "[1]", "{}", '{"vocab_size": "x"}', "9" * 5000])
def test_load_model_with_damaged_config_is_a_value_error(text, gpt_checkpoint):
    from ferrotorch.gpt2 import checkpoint

    (gpt_checkpoint / "config.json").write_text(text)
    with pytest.raises(ValueError, match="config.json"):
        checkpoint.load_model(gpt_checkpoint)


def _hf_edit(**changes):
    return lambda cfg: json.dumps({**cfg, **changes})


HF_CONFIG_DAMAGE = {
    "null": lambda cfg: "null",
    "a list": lambda cfg: "[1]",
    "not JSON": lambda cfg: "{n_embd",
    "no vocab_size": lambda cfg: json.dumps({k: v for k, v in cfg.items() if k != "vocab_size"}),
    "n_embd a dict": _hf_edit(n_embd={}),
    "n_layer a string": _hf_edit(n_layer="1"),
    "epsilon a string": _hf_edit(layer_norm_epsilon="x"),
    "dropout null": _hf_edit(resid_pdrop=None),
}


@pytest.mark.parametrize("damage", list(HF_CONFIG_DAMAGE))
def test_load_hf_with_damaged_config_is_a_value_error(damage, tmp_path):
    from ferrotorch.gpt2 import weights

    weights.save_hf(_tiny_gpt(), tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(HF_CONFIG_DAMAGE[damage](cfg))
    with pytest.raises(ValueError, match="config.json"):
        weights.load_hf(tmp_path)


@pytest.mark.parametrize("index", ["null", "{weight_map", '{"weight_map": [1]}',
                                   '{"weight_map": {"wte.weight": 1}}'])
def test_load_hf_with_damaged_index_is_a_value_error(index, tmp_path):
    from ferrotorch.gpt2 import weights

    weights.save_hf(_tiny_gpt(), tmp_path)
    os.remove(tmp_path / "model.safetensors")
    (tmp_path / "model.safetensors.index.json").write_text(index)
    with pytest.raises(ValueError, match="model.safetensors.index.json"):
        weights.load_hf(tmp_path)


def test_load_hf_with_integer_weights_is_an_error(tmp_path):
    from ferrotorch.gpt2 import weights

    model = _tiny_gpt()
    weights.save_hf(model, tmp_path)
    tensors = {k: v.to(ft.int32) for k, v in weights.hf_state_dict(model).items()}
    ft._C._safetensors_save(str(tmp_path / "model.safetensors"), list(tensors.items()), {})
    with pytest.raises(RuntimeError, match="int32 values: GPT-2 weights are floating"):
        weights.load_hf(tmp_path)


# *** a save killed at any instant leaves a loadable previous (or new) version ***

_SAVE_FOREVER = """
import sys
import ferrotorch as ft
from ferrotorch.gpt2 import GPTModel
from ferrotorch.gpt2.checkpoint import save_checkpoint

kind, target = sys.argv[1], sys.argv[2]
model = GPTModel({"vocab_size": 64, "context_length": 16, "emb_dim": 32, "n_heads": 2,
                  "n_layers": 2, "drop_rate": 0.0, "qkv_bias": False})
opt = ft.optim.AdamW(model.parameters())
step = 1
while True:
    with ft.no_grad():
        for p in model.parameters():
            p.fill_(float(step))
    if kind == "file":
        ft.save({"w": ft.full((256, 1024), float(step)), "step": step}, target)
    else:
        save_checkpoint(target, model, opt, step)
    print(step, flush=True)
    step += 1
"""


@pytest.mark.parametrize("kind", ["file", "checkpoint"])
def test_save_killed_midway_leaves_a_loadable_version(kind, tmp_path):
    """SIGKILL a process that saves over and over, at staggered instants: what is on disk must
    load and be one whole version (every value equal to one step's), never a mix or garbage."""
    from ferrotorch.gpt2.checkpoint import load_model

    target = str(tmp_path / ("ckpt.pt" if kind == "file" else "run"))
    script = tmp_path / "save_forever.py"
    script.write_text(_SAVE_FOREVER)
    kills = 0
    for delay in (0.5, 0.9, 1.3, 1.7, 2.1, 2.6):
        p = subprocess.Popen([sys.executable, str(script), kind, target],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(delay)
        p.kill()
        out, err = p.communicate()
        assert p.returncode == -signal.SIGKILL, err[-500:]
        if not out.split():
            continue  # killed before its first save finished: nothing to check yet
        kills += 1
        if kind == "file":
            loaded = ft.load(target)
            step, values = loaded["step"], sorted(set(loaded["w"].reshape(-1).tolist()))
        else:
            model, state = load_model(target)
            step = state["step"]
            values = sorted(set(ft.cat([p.reshape(-1) for p in model.parameters()]).tolist()))
        assert values == [float(step)], f"a mixed or damaged save: step {step}, values {values}"
    assert kills >= 3, "the saving process never got far enough to be killed mid-run"
