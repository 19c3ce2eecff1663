"""The torch drop-in: after ``install()``, ``import torch`` (and its submodules) gives ferrotorch.

>>> import ferrotorch.compat
>>> ferrotorch.compat.install()
>>> import torch.nn as nn
>>> nn.Linear.__module__
'ferrotorch.nn.linear'
>>> ferrotorch.compat.uninstall()

Three pieces: ``sys.modules`` aliases for the modules listed in ``ALIASES`` (so ``import torch``
finds them at once), a ``sys.meta_path`` finder that maps any later ``import torch.X`` to
``ferrotorch.X``, and a module-level ``__getattr__`` on each aliased module so that a torch name
ferrotorch lacks fails with an error naming it, at the line that uses it.
"""

import dis
import importlib
import importlib.machinery
import importlib.util
import sys

# torch module -> the ferrotorch module it resolves to: the one place this mapping lives.
# A torch module not listed resolves to the ferrotorch module of the same name, if there is one.
ALIASES = {
    "torch": "ferrotorch",
    "torch.nn": "ferrotorch.nn",
    "torch.nn.functional": "ferrotorch.nn.functional",
    "torch.nn.init": "ferrotorch.nn.init",
    "torch.nn.utils": "ferrotorch.nn.utils",
    "torch.nn.parameter": "ferrotorch.nn.parameter",
    "torch.optim": "ferrotorch.optim",
    "torch.optim.lr_scheduler": "ferrotorch.optim.lr_scheduler",
    "torch.utils": "ferrotorch.utils",
    "torch.utils.data": "ferrotorch.utils.data",
    "torch.autograd": "ferrotorch.autograd",
    "torch.testing": "ferrotorch.testing",
}

_IMPORT_FROM = dis.opmap["IMPORT_FROM"]


class DropInError(ModuleNotFoundError):
    """A torch module or name that ferrotorch does not provide, met through the drop-in (an
    ImportError, so ``try: import torch.x / except ImportError`` probes keep working)."""


def _missing_message(torch_name):
    return (
        f"ferrotorch does not implement {torch_name} (used through the ferrotorch drop-in); "
        "rewrite this part with what ferrotorch provides, or run the script with real PyTorch "
        "(plain `python` instead of `python -m ferrotorch.run`)"
    )


def _target_name(torch_name):
    if torch_name in ALIASES:
        return ALIASES[torch_name]
    rest = torch_name[len("torch."):]
    if any(part.startswith("_") for part in rest.split(".")):
        return None  # torch internals (torch._C, torch._dynamo) have no ferrotorch equivalent
    return "ferrotorch." + rest


def _torch_name(ferrotorch_name):
    for torch_name, target in ALIASES.items():
        if target == ferrotorch_name:
            return torch_name
    return "torch" + ferrotorch_name[len("ferrotorch"):]


def _exists(module_name):
    try:
        return importlib.util.find_spec(module_name) is not None
    except ImportError:
        return False


class _State:
    finder = None
    hooked = {}  # ferrotorch module name -> the module __getattr__ it had before (or None)


# *** attribute access on aliased modules ***

def _called_by_from_import(frame):
    # `from torch import fft` reaches __getattr__ from the IMPORT_FROM instruction; Python would
    # replace an AttributeError there by a bare "cannot import name", so raise ImportError instead.
    try:
        return frame.f_code.co_code[frame.f_lasti] == _IMPORT_FROM
    except (AttributeError, IndexError):
        return False


def _make_getattr(module, previous):
    def __getattr__(name):
        if previous is not None:
            try:
                return previous(name)
            except AttributeError:
                pass
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(f"module {module.__name__!r} has no attribute {name!r}")
        sub = f"{module.__name__}.{name}"
        if not name.startswith("_") and _exists(sub):
            child = importlib.import_module(sub)
            _hook(child)
            return child
        msg = _missing_message(f"{_torch_name(module.__name__)}.{name}")
        if _called_by_from_import(sys._getframe(1)):
            raise DropInError(msg, name=name)
        raise AttributeError(msg)

    __getattr__.ferrotorch_dropin = True
    return __getattr__


def _hook(module):
    """Gives an aliased ferrotorch module the drop-in's ``__getattr__`` (once)."""
    if not module.__name__.startswith("ferrotorch") or module.__name__ in _State.hooked:
        return
    previous = module.__dict__.get("__getattr__")
    _State.hooked[module.__name__] = previous
    module.__getattr__ = _make_getattr(module, previous)


def _unhook_all():
    for name, previous in _State.hooked.items():
        module = sys.modules.get(name)
        if module is None:
            continue
        if previous is None:
            module.__dict__.pop("__getattr__", None)
        else:
            module.__getattr__ = previous
    _State.hooked = {}


# *** the import system: aliases and a finder for torch.* ***

class _TorchFinder:
    """Resolves ``torch`` and ``torch.X`` imports to the corresponding ferrotorch modules."""

    def __init__(self):
        self._specs = {}

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "torch" and not fullname.startswith("torch."):
            return None
        target_name = _target_name(fullname)
        if target_name is None or not _exists(target_name):
            raise DropInError(_missing_message(fullname), name=fullname)
        module = importlib.import_module(target_name)
        return importlib.machinery.ModuleSpec(
            fullname, self, is_package=hasattr(module, "__path__")
        )

    def create_module(self, spec):
        module = importlib.import_module(_target_name(spec.name))
        self._specs[module.__name__] = module.__spec__
        return module

    def exec_module(self, module):
        # The import machinery stamped the alias spec on the module; the module keeps its own.
        module.__spec__ = self._specs.pop(module.__name__, module.__spec__)
        _hook(module)


def _real_torch_loaded():
    mod = sys.modules.get("torch")
    return mod is not None and getattr(mod, "__name__", None) == "torch"


def is_installed():
    """Whether the drop-in is active in this process."""
    return _State.finder is not None


def install():
    """Makes ``import torch`` (and ``torch.nn``, ``torch.optim``, ``torch.utils.data``, ...)
    resolve to ferrotorch in this process. Call it before anything imports torch.

    Raises RuntimeError if the real torch is already imported: two libraries under one name
    would mix their tensors.
    """
    if is_installed():
        return
    if _real_torch_loaded():
        raise RuntimeError(
            "ferrotorch.compat.install(): the real torch is already imported in this process, so "
            "`torch` cannot be redirected to ferrotorch; install the drop-in before anything "
            "imports torch (e.g. run the script with `python -m ferrotorch.run script.py`)"
        )
    for torch_name, target in ALIASES.items():
        if _exists(target):
            module = importlib.import_module(target)
            sys.modules[torch_name] = module
            _hook(module)
    _State.finder = _TorchFinder()
    sys.meta_path.insert(0, _State.finder)


def uninstall():
    """Undoes :func:`install`: ``torch`` names leave ``sys.modules``, the finder and the
    ``__getattr__`` hooks are removed. Modules that already bound ``torch`` keep ferrotorch."""
    if not is_installed():
        return
    if _State.finder in sys.meta_path:
        sys.meta_path.remove(_State.finder)
    _State.finder = None
    for name in [n for n in sys.modules if n == "torch" or n.startswith("torch.")]:
        module = sys.modules[name]
        if getattr(module, "__name__", "").startswith("ferrotorch"):
            del sys.modules[name]
    _unhook_all()
