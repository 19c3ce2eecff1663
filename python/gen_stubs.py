"""Regenerates python/ferrotorch/_C.pyi from the built extension: `python python/gen_stubs.py`.

Signatures come from PyO3's `__text_signature__`; return types from a small table."""

import pathlib

import ferrotorch._C as C

OUT = pathlib.Path(__file__).parent / "ferrotorch" / "_C.pyi"
PROPS = {
    "shape": "Any", "dtype": "dtype", "device": "Any", "ndim": "int", "T": "Tensor",
    "mT": "Tensor", "requires_grad": "bool", "is_leaf": "bool", "grad_fn": "Optional[Node]",
    "grad": "Optional[Tensor]", "data": "Tensor", "is_cuda": "bool", "itemsize": "int",
    "nbytes": "int", "_version": "int", "__array_interface__": "dict", "retains_grad": "bool",
}
RETURNS = {
    "item": "Any", "tolist": "Any", "numpy": "numpy.ndarray", "__array__": "numpy.ndarray",
    "__repr__": "str", "__len__": "int", "__bool__": "bool", "__float__": "float",
    "__int__": "int", "__index__": "int", "__hash__": "int", "dim": "int", "ndimension": "int",
    "numel": "int", "nelement": "int", "element_size": "int", "stride": "Any",
    "storage_offset": "int", "is_contiguous": "bool", "is_floating_point": "bool",
    "data_ptr": "int", "_storage_ptr": "int", "size": "Any", "__iter__": "Iterator[Tensor]",
    "unbind": "Tuple[Tensor, ...]", "split": "Tuple[Tensor, ...]", "chunk": "Tuple[Tensor, ...]",
    "max": "Any", "min": "Any", "topk": "Any", "sort": "Any", "nonzero": "Any",
    "__format__": "str", "__setitem__": "None", "backward": "None", "retain_grad": "None",
    "register_hook": "int", "name": "str", "next_functions": "Any",
    "initial_seed": "int", "seed": "int", "get_state": "Tensor", "grad": "Tuple[Any, ...]",
    "is_grad_enabled": "bool", "_set_grad_enabled": "bool", "default_generator_obj": "Generator",
    "promote_types": "dtype", "where": "Any", "_attach_function": "list", "_fusable": "bool",
}


SKIP = {
    "__init__", "__getattribute__", "__setattr__", "__delattr__", "__dir__", "__reduce_ex__",
    "__sizeof__", "__subclasshook__", "__init_subclass__", "__new__", "__class__",
}


def sig(obj, method):
    ts = getattr(obj, "__text_signature__", None)
    if not ts:
        return "(self, *args: Any, **kwargs: Any)" if method else "(*args: Any, **kwargs: Any)"
    return ts.replace("$self", "self").replace("$cls", "cls").replace("$type", "self")


def class_block(cls, name, default):
    lines = [f"class {name}:"]
    own = vars(cls)
    for attr, value in sorted(own.items()):
        if attr == "__new__":
            lines.append(f"    def __init__{sig(value, True)} -> None: ...")
        elif attr in PROPS:
            lines.append(f"    {attr}: {PROPS[attr]}")
        elif attr.startswith("__") and attr not in RETURNS and not attr.endswith("__"):
            continue
        elif callable(value):
            if attr in SKIP:
                continue
            ret = RETURNS.get(attr, default)
            lines.append(f"    def {attr}{sig(value, True)} -> {ret}: ...")
        elif not callable(value) and not attr.startswith("__"):
            lines.append(f"    {attr}: Any")
    return lines + [""]


def main():
    lines = [
        '"""Type stubs for `ferrotorch._C`, the compiled core (made by python/gen_stubs.py)."""',
        "",
        "from typing import Any, Iterator, Optional, Tuple",
        "",
        "import numpy",
        "",
        "class dtype:",
        "    is_floating_point: bool",
        "    is_signed: bool",
        "    is_complex: bool",
        "    itemsize: int",
        "",
    ]
    lines += class_block(C.Tensor, "Tensor", "Tensor")
    lines += class_block(C.Generator, "Generator", "Generator")
    lines += class_block(C.Node, "Node", "Any")
    for name, obj in sorted(vars(C).items()):
        if isinstance(obj, C.dtype):
            lines.append(f"{name}: dtype")
    lines.append("")
    for name, obj in sorted(vars(C).items()):
        if callable(obj) and not isinstance(obj, type) and not name.startswith("__"):
            lines.append(f"def {name}{sig(obj, False)} -> {RETURNS.get(name, 'Tensor')}: ...")
    OUT.write_text("\n".join(lines) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
