"""``ferrotorch.cuda.amp``: torch's older spelling of CUDA autocast
(``torch.autocast("cuda", ...)`` is the current one)."""

from ferrotorch import _C
from ferrotorch import amp as _amp

__all__ = ["autocast"]


class autocast(_amp.autocast):
    """``torch.cuda.amp.autocast(enabled=True, dtype=torch.float16, cache_enabled=True)``:
    ``ferrotorch.autocast("cuda", ...)``."""

    def __init__(self, enabled=True, dtype=_C.float16, cache_enabled=True):
        super().__init__("cuda", dtype=dtype, enabled=enabled, cache_enabled=cache_enabled)
