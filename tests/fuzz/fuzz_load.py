"""Fuzzes the checkpoint readers with damaged safetensors files.

Targets: ``ferrotorch.load``, ``ferrotorch.gpt2.checkpoint.load_checkpoint`` and
``ferrotorch.gpt2.weights.load_hf``. Each input picks a mode (its last byte):

- raw: the rest of the input is the file (start libFuzzer from ``make_corpus.py``'s seeds);
- header: a valid seed file with a few structural edits to its JSON header (dtype, shape,
  data_offsets, names, the ferrotorch structure tree, the length prefix), then truncated,
  extended or bit-flipped;
- checkpoint / hf: a GPT-2 checkpoint folder or Hugging Face folder of a tiny model with one
  of its files damaged that way.

A loader passes when it returns tensors whose dtype, shape and values are exactly the bytes that
the header claims, or raises the exception type it documents. Anything else (PanicException,
another exception type, a valid file refused, wrong values, a crash, a hang) is a finding.

    python tests/fuzz/fuzz_load.py -max_total_time=600 corpus/   # see README.md
"""

import json
import math
import os
import shutil
import struct
import sys
import tempfile

import atheris
import numpy as np
import safetensors
import safetensors.numpy

with atheris.instrument_imports(include=["ferrotorch"]):
    import ferrotorch as ft
    from ferrotorch.gpt2 import GPTModel, checkpoint, weights
    from ferrotorch.gpt2.config import get_config

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from findings import Findings, exception_kind, gist  # noqa: E402

# safetensors dtype -> (numpy dtype of its bytes, ferrotorch dtype) for the dtypes ferrotorch reads
READABLE = {
    "BOOL": (np.bool_, ft.bool), "U8": (np.uint8, ft.uint8), "I32": (np.int32, ft.int32),
    "I64": (np.int64, ft.int64), "F16": (np.float16, ft.float16),
    "BF16": (np.uint16, ft.bfloat16), "F32": (np.float32, ft.float32),
    "F64": (np.float64, ft.float64),
}
OTHER_DTYPES = ["I8", "I16", "U16", "U32", "U64", "F8_E4M3", "F8_E5M2", "C64", "", "f32", 7, None]
INTERESTING_INTS = [0, 1, 2, 3, 4, 7, 8, 255, -1, 2**31, 2**32, 2**40, 2**62, 2**63 - 1, 2**63,
                    2**64, 10**30]
TINY_GPT = {"vocab_size": 11, "context_length": 4, "emb_dim": 4, "n_heads": 2, "n_layers": 1,
            "drop_rate": 0.0, "qkv_bias": True}

findings = Findings("load")


# *** seeds: small valid files of every kind the loaders read ***

def _tensor_seeds():
    g = ft.Generator().manual_seed(0)
    w = ft.randn(3, 2, generator=g)
    return {
        "plain": safetensors.numpy.save({
            "w": np.arange(6, dtype=np.float32).reshape(2, 3), "empty": np.zeros((0, 3), np.int64),
            "mask": np.array([True, False]), "scalar": np.array(2.5)}),
        "dtypes": {str(d).split(".")[-1]: ft.arange(4).to(d) for d in
                   (ft.float16, ft.bfloat16, ft.float32, ft.float64, ft.int32, ft.int64,
                    ft.uint8, ft.bool)},
        "nested": {"model": {"fc.weight": w, "fc.bias": ft.zeros(2)},
                   "optimizer": {"state": {0: {"step": ft.tensor(3.0), "exp_avg": ft.ones(3, 2)}},
                                 "param_groups": [{"lr": 0.1, "params": [0], "betas": (0.9, 0.99)}]},
                   "epoch": 3, "best": float("nan"), "name": "run", "flag": None,
                   "dtype": ft.float16, "device": ft.device("cpu"), "size": ft.Size([2, 3])},
        "shared": {"a": w, "b": w, "c": w.detach(), "row": w[1], "empty": ft.zeros(0)},
        "scalar": ft.tensor(7, dtype=ft.int32),
    }


def _seed_bytes(obj, folder):
    if isinstance(obj, bytes):
        return obj
    path = os.path.join(folder, "seed.pt")
    ft.save(obj, path)
    with open(path, "rb") as f:
        return f.read()


def _tiny_model():
    ft.manual_seed(0)
    return GPTModel(get_config(dict(TINY_GPT)))


def _folder_seed(write):
    """{file name: bytes} of a folder written by `write(folder)`."""
    with tempfile.TemporaryDirectory() as folder:
        write(folder)
        out = {}
        for name in sorted(os.listdir(folder)):
            with open(os.path.join(folder, name), "rb") as f:
                out[name] = f.read()
        return out


def build_seeds():
    """(file seeds {name: bytes}, checkpoint folder {file: bytes}, HF folder {file: bytes})."""
    with tempfile.TemporaryDirectory() as folder:
        files = {name: _seed_bytes(obj, folder) for name, obj in _tensor_seeds().items()}
    model = _tiny_model()
    opt = ft.optim.AdamW(model.parameters(), lr=1e-3)
    model(ft.tensor([[1, 2, 3]])).sum().backward()
    opt.step()

    def write_checkpoint(folder):
        saved = checkpoint.save_checkpoint(folder, model, opt, step=1)
        for name in os.listdir(saved):
            shutil.move(os.path.join(saved, name), folder)
        os.rmdir(saved)

    ckpt = _folder_seed(write_checkpoint)
    hf = _folder_seed(lambda folder: weights.save_hf(model, folder))
    files["gpt2-model"] = ckpt["model.safetensors"]
    files["gpt2-hf"] = hf["model.safetensors"]
    return files, ckpt, hf


# *** structural mutations of a safetensors file ***

def split(data):
    """(header dict, bytes after the header) of a valid safetensors file."""
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8:8 + n]), data[8 + n:]


def join(header, body, pad=True):
    text = json.dumps(header).encode()
    if pad:
        text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + body


def random_json(fdp, depth=0):
    """A JSON value, biased towards the tags of ferrotorch's structure tree."""
    kind = fdp.ConsumeIntInRange(0, 12 if depth < 4 else 5)
    if kind == 0:
        return None
    if kind == 1:
        return fdp.ConsumeBool()
    if kind == 2:
        return fdp.PickValueInList(INTERESTING_INTS)
    if kind == 3:
        return fdp.PickValueInList([0.5, -0.0, 1e308, "nan"])
    if kind == 4:
        return fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 8))
    if kind == 5:
        return fdp.PickValueInList(["w", "model.fc.weight", "a", "b", "dtypes.float16", ""])
    items = [random_json(fdp, depth + 1) for _ in range(fdp.ConsumeIntInRange(0, 3))]
    if kind == 6:
        return items
    tag = fdp.PickValueInList(["__dict__", "__odict__", "__tuple__", "__float__", "__dtype__",
                               "__device__", "__size__"])
    if kind == 7:
        return {tag: [[random_json(fdp, depth + 1), v] for v in items]}
    if kind == 8:
        return {tag: items}
    if kind == 9:
        return {tag: random_json(fdp, depth + 1)}
    node = {"__tensor__": random_json(fdp, depth + 1)}
    for key in fdp.PickValueInList([[], ["object"], ["requires_grad"], ["parameter", "device"]]):
        node[key] = random_json(fdp, depth + 1)
    return node


def _nodes(tree, out):
    """Every (container, key) slot of a JSON tree, for in-place replacement."""
    items = tree.items() if isinstance(tree, dict) else enumerate(tree) \
        if isinstance(tree, list) else []
    for key, value in items:
        out.append((tree, key))
        _nodes(value, out)
    return out


def mutate_structure(fdp, header):
    meta = header.get("__metadata__")
    if not isinstance(meta, dict) or "ferrotorch" not in meta:
        return
    try:
        tree = json.loads(meta["ferrotorch"])
    except (TypeError, ValueError):
        return
    slots = _nodes(tree, [])
    if slots and fdp.ConsumeBool():
        container, key = slots[fdp.ConsumeIntInRange(0, len(slots) - 1)]
        container[key] = random_json(fdp)
    elif fdp.ConsumeBool():
        tree = random_json(fdp)
    else:
        meta["ferrotorch"] = fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 64))
        return
    meta["ferrotorch"] = json.dumps(tree)


def _ints(value, default, length=None):
    """`value` if it is a list of ints (of `length` items), else `default`: earlier edits may
    have left any JSON value there."""
    ok = isinstance(value, list) and all(type(v) is int for v in value)
    return value if ok and (length is None or len(value) == length) else default


def mutate_header(fdp, header):
    names = [k for k in header if k != "__metadata__"]
    edit = fdp.ConsumeIntInRange(0, 8)
    if edit == 0 or not names:
        mutate_structure(fdp, header)
        return
    name = names[fdp.ConsumeIntInRange(0, len(names) - 1)]
    entry = header[name]
    if edit == 1:
        entry["dtype"] = fdp.PickValueInList(list(READABLE) + OTHER_DTYPES)
    elif edit == 2:
        if fdp.ConsumeBool():
            entry["shape"] = [fdp.PickValueInList(INTERESTING_INTS)
                              for _ in range(fdp.ConsumeIntInRange(0, 5))]
        else:  # a shape with the same number of elements, or one element more or less
            n = math.prod(_ints(entry.get("shape"), [1])) + fdp.ConsumeIntInRange(-1, 1)
            entry["shape"] = [n, 1] if fdp.ConsumeBool() else [1, n]
    elif edit == 3:
        start, end = _ints(entry.get("data_offsets"), [0, 0], length=2)
        entry["data_offsets"] = [start + fdp.ConsumeIntInRange(-8, 8),
                                 fdp.PickValueInList([end + fdp.ConsumeIntInRange(-8, 8)]
                                                     + INTERESTING_INTS)]
    elif edit == 4:
        entry.pop(fdp.PickValueInList(["dtype", "shape", "data_offsets"]), None)
    elif edit == 5:
        entry[fdp.PickValueInList(["extra", "dtype"])] = random_json(fdp)
    elif edit == 6:
        header[fdp.PickValueInList(["", "a", "w", name + "#2", "__metadata__"])] = dict(entry)
    elif edit == 7:
        del header[name]
    else:
        header[fdp.ConsumeUnicodeNoSurrogates(8)] = header.pop(name)


def mutate_file(fdp, data):
    """A near-valid variant of the safetensors file `data`."""
    header, body = split(data)
    for _ in range(fdp.ConsumeIntInRange(0, 3)):
        mutate_header(fdp, header)
    out = bytearray(join(header, body, pad=fdp.ConsumeProbability() > 0.1))
    edit = fdp.ConsumeIntInRange(0, 6)
    if edit == 1 and out:
        del out[fdp.ConsumeIntInRange(0, len(out) - 1):]
    elif edit == 2:
        out += fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 64))
    elif edit == 3 and len(out) > 8:
        i = fdp.ConsumeIntInRange(0, len(out) - 1)
        out[i] ^= 1 << fdp.ConsumeIntInRange(0, 7)
    elif edit == 4:
        n = struct.unpack("<Q", out[:8])[0] + fdp.ConsumeIntInRange(-16, 16)
        out[:8] = struct.pack("<Q", n % 2**64)
    elif edit == 5 and len(out) > len(body):  # new values for the tensor bytes
        tail = fdp.ConsumeBytes(len(body))
        out[len(out) - len(body):len(out) - len(body) + len(tail)] = tail
    return bytes(out)


# *** the oracle ***

def reference(data):
    """{name: (dtype, shape, bytes)} as the safetensors package parses `data`, and its metadata;
    None when it refuses the file."""
    try:
        tensors = safetensors.deserialize(data)
        header, _ = split(data)
    except Exception:  # any refusal means "not a valid file"
        return None
    return ({name: (t["dtype"], list(t["shape"]), bytes(t["data"])) for name, t in tensors},
            header.get("__metadata__") or {})


def readable(dtype, shape, raw):
    """Whether ferrotorch must read this tensor: a dtype it has, and bool bytes of 0 or 1 (it
    refuses other bool bytes on purpose; safetensors does not look)."""
    return dtype in READABLE and (dtype != "BOOL" or max(raw, default=0) <= 1)


def expected_values(dtype, shape, raw):
    np_dtype, _ = READABLE[dtype]
    values = np.frombuffer(raw, dtype=np_dtype).reshape(shape)
    if dtype == "BF16":
        return (values.astype(np.uint32) << 16).view(np.float32)
    return values


def same_tensor(t, dtype, shape, raw):
    if dtype not in READABLE or t.dtype != READABLE[dtype][1] or list(t.shape) != shape:
        return False
    got = t.detach()
    got = got.float().numpy() if got.dtype == ft.bfloat16 else got.numpy()
    want = expected_values(dtype, shape, raw)
    return want.dtype == got.dtype and np.array_equal(got, want, equal_nan=want.dtype.kind == "f")


def tensors_in(obj, out):
    if isinstance(obj, ft.Tensor):
        out.append(obj)
    elif isinstance(obj, dict):
        for k, v in obj.items():
            tensors_in(k, out)
            tensors_in(v, out)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            tensors_in(v, out)
    return out


def check_load(data, path):
    ref = reference(data)
    try:
        obj = ft.load(path)
    except BaseException as e:  # PanicException derives from BaseException
        if not isinstance(e, RuntimeError):
            findings.report(exception_kind("load", e), e, data)
        elif ref is not None and "ferrotorch" not in ref[1] and all(
                readable(*entry) for entry in ref[0].values()):
            findings.report(f"load refused a valid plain safetensors file ({gist(e, path)})",
                            e, data)
        return
    if ref is None:
        findings.report("load accepted a file that safetensors refuses", obj, data)
        return
    entries = ref[0]
    if "ferrotorch" not in ref[1]:
        if set(obj) != set(entries) or not all(
                same_tensor(obj[k], *entries[k]) for k in entries):
            findings.report("load returned tensors that differ from the file", obj, data)
        return
    for t in tensors_in(obj, []):
        if not any(same_tensor(t, *e) for e in entries.values()):
            findings.report("load returned a tensor that is not in the file", t, data)


def load_folder(files, load, allowed, data):
    with tempfile.TemporaryDirectory() as folder:
        for name, content in files.items():
            with open(os.path.join(folder, name), "wb") as f:
                f.write(content)
        try:
            load(folder)
        except BaseException as e:  # PanicException derives from BaseException
            if not isinstance(e, allowed):
                findings.report(exception_kind(load.__name__, e), e, data)


def load_gpt2_checkpoint(folder):
    model = _tiny_model()
    checkpoint.load_checkpoint(folder, model, ft.optim.AdamW(model.parameters()))


def load_gpt2_hf(folder):
    weights.load_hf(folder)


def damage_folder(fdp, seed):
    files = dict(seed)
    name = fdp.PickValueInList(sorted(files))
    if name.endswith(".safetensors"):
        files[name] = mutate_file(fdp, files[name])
    else:
        files[name] = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 256)) if fdp.ConsumeBool() \
            else json.dumps(random_json(fdp)).encode()
    return files


SEEDS, CHECKPOINT, HF = build_seeds()
WORKDIR = tempfile.mkdtemp(prefix="fuzz_load-")


def TestOneInput(data):  # libFuzzer's name for the entry point
    fdp = atheris.FuzzedDataProvider(data)
    mode = fdp.ConsumeIntInRange(0, 3)
    if mode == 0:
        file = fdp.ConsumeBytes(fdp.remaining_bytes())
    elif mode == 1:
        file = mutate_file(fdp, SEEDS[fdp.PickValueInList(sorted(SEEDS))])
    elif mode == 2:
        load_folder(damage_folder(fdp, CHECKPOINT), load_gpt2_checkpoint,
                    (ValueError, FileNotFoundError), data)
        return
    else:
        load_folder(damage_folder(fdp, HF), load_gpt2_hf,
                    (RuntimeError, ValueError, FileNotFoundError), data)
        return
    path = os.path.join(WORKDIR, "input.safetensors")
    with open(path, "wb") as f:
        f.write(file)
    check_load(file, path)


# coverage of the harness's own branches (which edits, which verdicts) guides libFuzzer too;
# ferrotorch's Rust core is not instrumented
for _f in (random_json, mutate_structure, mutate_header, mutate_file, check_load, load_folder,
           damage_folder, same_tensor, readable):
    atheris.instrument_func(_f)


def main():
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
