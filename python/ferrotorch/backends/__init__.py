"""``ferrotorch.backends``: what the torch backend's devices are available here."""

from ferrotorch.backends import mps

__all__ = ["mps"]
