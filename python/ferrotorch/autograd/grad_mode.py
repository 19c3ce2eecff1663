"""Grad-mode context managers and decorators (per thread, like torch's)."""

import functools

from ferrotorch import _C


def _with_mode(fn, mode):
    """`fn` run with grad mode set to `mode` (restored afterwards)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        prev = _C._set_grad_enabled(mode)
        try:
            return fn(*args, **kwargs)
        finally:
            _C._set_grad_enabled(prev)

    return wrapper


class _GradMode:
    """Base: a context manager that is also a decorator."""

    mode = True

    def __enter__(self):
        self._prev = _C._set_grad_enabled(self.mode)
        return self

    def __exit__(self, *exc):
        _C._set_grad_enabled(self._prev)
        return False

    def __call__(self, fn):
        return _with_mode(fn, self.mode)


class no_grad(_GradMode):
    """Ops inside do not record the graph.

    >>> import ferrotorch as torch
    >>> x = torch.ones(2, requires_grad=True)
    >>> with torch.no_grad():
    ...     (x * 2).requires_grad
    False
    """

    mode = False


class enable_grad(_GradMode):
    """Turns recording back on inside a ``no_grad`` block."""

    mode = True


class inference_mode(_GradMode):
    """Like ``no_grad`` (ferrotorch has no separate inference tensors)."""

    def __init__(self, mode=True):
        self.mode = not mode

    def __call__(self, fn):
        if not callable(fn):
            return inference_mode(fn)
        return _with_mode(fn, self.mode)


class set_grad_enabled(_GradMode):
    """``set_grad_enabled(False)`` as a call, a context manager or a decorator."""

    def __init__(self, mode):
        self.mode = bool(mode)
        self._prev = _C._set_grad_enabled(self.mode)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        _C._set_grad_enabled(self._prev)
        return False

    def __call__(self, fn):
        # Used as a decorator: undo the switch made in __init__, apply it per call instead.
        _C._set_grad_enabled(self._prev)
        return _with_mode(fn, self.mode)


def is_grad_enabled():
    return _C.is_grad_enabled()
