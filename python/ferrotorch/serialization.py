"""``save`` and ``load``: checkpoints as safetensors files, with no pickle and no code execution.

A saved object is any nesting of dict/OrderedDict/list/tuple of str/int/float/bool/None,
dtypes, devices, Sizes and tensors (state dicts, optimizer state dicts with their int keys,
``{'model': ..., 'optimizer': ..., 'epoch': 3}``). The tensors are the safetensors entries,
named by their path in the object (``model.fc.weight``), so other safetensors readers see a
state dict by its usual keys; the structure is one JSON tree in the header's metadata, under
the key ``"ferrotorch"``, in which tensors are ``{"__tensor__": name}`` references.

Tied weights: tensors that are the same view of the same storage (the same object, or
``detach()``-ed copies of one parameter as in a state dict) are stored once; after ``load`` they
share one storage again, the same object where they were the same object. Tensors that merely
overlap (a tensor and a slice of it) are stored separately and no longer share memory after
``load``.

Writing is atomic: the file is written to a temporary file in the same folder, flushed to disk
and renamed over the target, so a failed save leaves a previous file intact.
"""

import json
import math
import os
import tempfile
from collections import OrderedDict

from ferrotorch import _C
from ferrotorch._C import Tensor

__all__ = ["load", "save"]

_META_KEY = "ferrotorch"
_VERSION = 1
_PICKLE_HINT = (
    "ferrotorch does not unpickle files (unpickling can run arbitrary code). To convert a "
    "PyTorch checkpoint, load it with torch and save its state dict with ferrotorch, e.g. "
    "`sd = torch.load(path, map_location='cpu'); "
    "ferrotorch.save({k: ferrotorch.from_torch(v) for k, v in sd.items()}, 'model.ft')`, or "
    "save it as safetensors with `safetensors.torch.save_file(sd, 'model.safetensors')`."
)


def _ft():
    import ferrotorch

    return ferrotorch


# *** save: the object -> (JSON tree, named tensors) ***


class _Encoder:
    """Walks an object, collecting its tensors under unique path names."""

    def __init__(self):
        self.tensors = []  # (name, tensor), in the order met
        self._names = set()
        # a view (storage, offset, shape, strides, dtype) -> (name, [ids of the objects seen])
        self._views = {}

    def encode(self, obj, path):
        if obj is None or isinstance(obj, (bool, str)):
            return obj
        if isinstance(obj, int):
            return int(obj)
        if isinstance(obj, float):
            return obj if math.isfinite(obj) else {"__float__": repr(float(obj))}
        if isinstance(obj, Tensor):
            return self._tensor(obj, path)
        ft = _ft()
        if isinstance(obj, ft.dtype):
            return {"__dtype__": str(obj).rsplit(".", 1)[-1]}
        if isinstance(obj, ft.device):
            return {"__device__": str(obj)}
        if isinstance(obj, ft.Size):
            return {"__size__": [int(s) for s in obj]}
        if type(obj) in (dict, OrderedDict):
            tag = "__odict__" if type(obj) is OrderedDict else "__dict__"
            return {tag: [[self._key(k, path), self.encode(v, path + [str(k)])]
                          for k, v in obj.items()]}
        if type(obj) is list:
            return [self.encode(v, path + [str(i)]) for i, v in enumerate(obj)]
        if type(obj) is tuple:
            return {"__tuple__": [self.encode(v, path + [str(i)]) for i, v in enumerate(obj)]}
        where = ".".join(path) or "the object"
        raise TypeError(
            f"ferrotorch.save cannot store {type(obj).__module__}.{type(obj).__qualname__} "
            f"(at {where}): a saved object may only nest dict, OrderedDict, list and tuple of "
            "tensors, str, int, float, bool, None, dtypes, devices and Sizes. Convert it first "
            "(e.g. a namedtuple to a tuple or dict, a numpy array with ferrotorch.from_numpy)."
        )

    def _key(self, key, path):
        if not _plain_key(key):
            raise TypeError(
                f"ferrotorch.save: dict key {key!r} at {'.'.join(path) or 'the top level'} is "
                "not storable; keys must be str, int, float, bool, None or tuples of them"
            )
        return self.encode(key, path)

    def _tensor(self, t, path):
        node = {"__tensor__": None}
        if t.requires_grad:
            node["requires_grad"] = True
        parameter = getattr(_ft().nn, "Parameter", None)
        if parameter is not None and isinstance(t, parameter):
            node["parameter"] = True
        if t.device.type != "cpu":
            node["device"] = str(t.device)
        data = t.detach()
        if data.device.type != "cpu":
            data = data.cpu()
        view = (data._storage_ptr(), data.storage_offset(), tuple(data.shape),
                tuple(data.stride()), str(data.dtype))
        known = self._views.get(view) if data.numel() > 0 else None
        if known is not None:
            name, objects = known
            if id(t) not in objects:
                objects.append(id(t))
            node["__tensor__"] = name
            node["object"] = objects.index(id(t))
            return node
        name = self._unique(".".join(path) or "tensor")
        self._names.add(name)
        # `data` is kept alive in self.tensors, so its storage address cannot be reused
        self.tensors.append((name, data))
        self._views[view] = (name, [id(t)])
        node["__tensor__"] = name
        node["object"] = 0
        return node

    def _unique(self, name):
        if name not in self._names:
            return name
        i = 2
        while f"{name}#{i}" in self._names:
            i += 1
        return f"{name}#{i}"


def _plain_key(key):
    if type(key) is tuple:
        return all(_plain_key(k) for k in key)
    return key is None or isinstance(key, (str, int, float))


def save(obj, f, pickle_module=None, pickle_protocol=None, **kwargs):
    """Saves ``obj`` (nested dicts/lists/tuples of tensors and plain values, e.g. a state dict)
    to ``f`` (a path or a writable binary file object) as a safetensors file, atomically.

    >>> import ferrotorch as torch, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "ckpt.pt")
    >>> torch.save({"w": torch.ones(2), "step": 3, "lrs": (0.1, 0.01)}, path)
    >>> torch.load(path)
    {'w': tensor([1., 1.]), 'step': 3, 'lrs': (0.1, 0.01)}
    """
    encoder = _Encoder()
    root = encoder.encode(obj, [])
    structure = json.dumps({"version": _VERSION, "root": root}, allow_nan=False)
    metadata = {"format": "pt", _META_KEY: structure}
    if hasattr(f, "write"):
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "checkpoint.safetensors")
            _C._safetensors_save(path, encoder.tensors, metadata)
            with open(path, "rb") as src:
                f.write(src.read())
        return
    _C._safetensors_save(_path_of(f, "save"), encoder.tensors, metadata)


def _path_of(f, fn):
    if isinstance(f, (str, bytes, os.PathLike)):
        return os.fsdecode(f)
    # torch raises AttributeError here (it looks for the file object's methods).
    raise AttributeError(
        f"ferrotorch.{fn}: expected a path (str or os.PathLike) or a binary file object, "
        f"got {type(f).__name__}"
    )


# *** load: (JSON tree, named tensors) -> the object ***


class _Decoder:
    def __init__(self, tensors, where, map_location):
        self.tensors = tensors
        self.where = where
        self.map_location = map_location
        self._objects = {}

    def fail(self, what):
        raise RuntimeError(
            f"{self.where} is not a valid ferrotorch save: {what} (the file may be corrupt or "
            "written by another program)"
        )

    def decode(self, node):
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        if isinstance(node, list):
            return [self.decode(v) for v in node]
        if not isinstance(node, dict) or not node:
            self.fail(f"unexpected JSON value {node!r}")
        ft = _ft()
        if "__tensor__" in node:
            return self._tensor(node)
        if len(node) != 1:
            self.fail(f"unexpected JSON object with keys {sorted(node)}")
        (tag, value), = node.items()
        if tag in ("__dict__", "__odict__"):
            if not isinstance(value, list) or not all(
                    isinstance(kv, list) and len(kv) == 2 for kv in value):
                self.fail(f"{tag} must hold [key, value] pairs")
            items = [(self._key(self.decode(k)), self.decode(v)) for k, v in value]
            return OrderedDict(items) if tag == "__odict__" else dict(items)
        if tag == "__tuple__" and isinstance(value, list):
            return tuple(self.decode(v) for v in value)
        if tag == "__float__" and value in ("nan", "inf", "-inf"):
            return float(value)
        if tag == "__dtype__" and isinstance(getattr(ft, str(value), None), ft.dtype):
            return getattr(ft, value)
        if tag == "__device__":
            return self._device(value)
        if tag == "__size__" and isinstance(value, list) and all(type(s) is int for s in value):
            return ft.Size(value)
        self.fail(f"unknown entry {tag!r}: {value!r}")

    def _device(self, value):
        try:
            return _ft().device(value)
        except (RuntimeError, TypeError):
            self.fail(f"{value!r} is not a device")

    def _key(self, key):
        if not _plain_key(key):  # what save accepts as a key, so always hashable
            self.fail(f"a dict key {key!r} is not a str, int, float, bool, None or tuple of them")
        return key

    def _tensor(self, node):
        name, index = node.get("__tensor__"), node.get("object", 0)
        if not isinstance(name, str) or name not in self.tensors:
            self.fail(f"the structure refers to a tensor {name!r} that the file does not hold")
        if not isinstance(index, int) or isinstance(index, bool) or index < 0:
            self.fail(f"bad object index {index!r} for tensor {name!r}")
        if (name, index) in self._objects:
            return self._objects[(name, index)]
        base = self.tensors[name]
        if node.get("requires_grad") and not base.is_floating_point():
            self.fail(f"tensor {name!r} of dtype {base.dtype} is marked as requiring grad")
        # a second object viewing the same storage: a new tensor object on the same memory
        t = base if index == 0 else base.detach()
        t = self._place(t, str(self._device(node.get("device", "cpu"))))
        if node.get("parameter"):
            t = _ft().nn.Parameter(t, requires_grad=bool(node.get("requires_grad")))
        elif node.get("requires_grad"):
            t = t.requires_grad_()
        self._objects[(name, index)] = t
        return t

    def _place(self, t, saved_device):
        loc = self.map_location
        if loc is None:
            target = saved_device
        elif callable(loc) and not isinstance(loc, (str, _ft().device)):
            moved = loc(t, saved_device)
            return t if moved is None else moved
        elif isinstance(loc, dict):
            target = loc.get(saved_device, saved_device)
        else:
            target = loc
        target = str(target)
        return t if target == "cpu" else t.to(target)


def load(f, map_location=None, pickle_module=None, *, weights_only=True, mmap=None,
         **kwargs):
    """Loads an object saved by ``ferrotorch.save`` from ``f`` (a path or a readable binary file
    object). Tensors come back on the device they were saved from, or as ``map_location`` (a
    device, a ``{saved: new}`` dict or a function ``(tensor, saved_device) -> tensor``) says.

    No code is ever run while loading, whatever ``weights_only`` says. A plain safetensors file
    (without ferrotorch's structure) loads as a dict of its tensors by name.
    """
    if hasattr(f, "read"):
        data = f.read()
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "checkpoint.safetensors")
            with open(path, "wb") as dst:
                dst.write(data)
            return _load_path(path, repr(f), map_location)
    path = _path_of(f, "load")
    return _load_path(path, path, map_location)


def _load_path(path, where, map_location):
    with open(path, "rb") as fh:  # FileNotFoundError / IsADirectoryError as for open()
        head = fh.read(4)
    try:
        named, metadata = _C._safetensors_load(path)
    except RuntimeError as e:
        if _is_torch_save(head):
            raise RuntimeError(f"{where} is a PyTorch pickle/zip checkpoint (torch.save). "
                               + _PICKLE_HINT) from None
        message = str(e).replace(path, where)
        raise RuntimeError(
            f"{message} (ferrotorch.load reads the safetensors files that ferrotorch.save writes)"
        ) from None
    tensors = dict(named)
    if _META_KEY not in metadata:
        return {name: tensors[name] for name in sorted(tensors)}
    try:
        structure = json.loads(metadata[_META_KEY])
    except (ValueError, RecursionError) as e:  # ValueError: bad JSON, or an int too long
        raise RuntimeError(
            f"{where} is not a valid ferrotorch save: its structure metadata is not readable "
            f"JSON ({e}); the file may be corrupt"
        ) from None
    if not isinstance(structure, dict) or "root" not in structure:
        raise RuntimeError(f"{where} is not a valid ferrotorch save: no structure root found")
    version = structure.get("version")
    if type(version) is not int or version < 1:
        raise RuntimeError(
            f"{where} is not a valid ferrotorch save: its format version {version!r} is not a "
            "positive integer"
        )
    if version > _VERSION:
        raise RuntimeError(
            f"{where} was written by a newer ferrotorch (format version {version!r}; this "
            f"version reads up to {_VERSION}): upgrade ferrotorch to load it"
        )
    decoder = _Decoder(tensors, where, map_location)
    try:
        return decoder.decode(structure["root"])
    except RecursionError:
        pass  # reported below, outside the handler, so the error does not chain the deep stack
    decoder.fail("its structure is nested too deeply")


def _is_torch_save(head):
    """Whether a file that is not safetensors starts like torch.save's output: a zip archive,
    or (the legacy format) a pickle's PROTO opcode 0x80 with protocol 2 to 5. A safetensors
    file can start with these bytes too (its header length), so this is asked only after the
    safetensors parse failed."""
    pickle = len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5
    return pickle or head.startswith(b"PK\x03\x04")
