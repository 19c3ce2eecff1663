"""Data-parallel training: ``DistributedDataParallel`` over ``ferrotorch.distributed``."""

from ferrotorch.nn.parallel.distributed import DistributedDataParallel

__all__ = ["DistributedDataParallel"]
