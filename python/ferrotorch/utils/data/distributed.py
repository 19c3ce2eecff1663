"""``DistributedSampler``: each rank of a data-parallel run visits its own share of a dataset,
in torch's order (the same indices torch's sampler gives for the same seed and epoch)."""

import math

from ferrotorch.utils.data.sampler import Sampler

__all__ = ["DistributedSampler"]


class DistributedSampler(Sampler[int]):
    """Splits ``dataset``'s indices among ``num_replicas`` ranks; this one yields ``rank``'s.

    With ``shuffle`` the order is a permutation seeded by ``seed + epoch``: call
    ``set_epoch(epoch)`` at the start of each epoch for a new order (the same on every rank).
    Without ``drop_last`` the indices are padded by repeating the first ones so that every rank
    gets the same number; with it the tail that does not divide evenly is dropped.

    >>> list(DistributedSampler(range(5), num_replicas=2, rank=1, shuffle=False))
    [1, 3, 0]
    """

    def __init__(self, dataset, num_replicas=None, rank=None, shuffle=True, seed=0,
                 drop_last=False):
        from ferrotorch import distributed as dist

        for name, value in (("num_replicas", num_replicas), ("rank", rank)):
            if value is None and not dist.is_initialized():
                raise RuntimeError(f"DistributedSampler: {name} is None and the default process "
                                   f"group is not initialized; pass {name} or call "
                                   "init_process_group first")
        if num_replicas is None:
            num_replicas = dist.get_world_size()
        if rank is None:
            rank = dist.get_rank()
        if not isinstance(num_replicas, int) or isinstance(num_replicas, bool) or num_replicas < 1:
            raise ValueError(f"num_replicas should be a positive integer, got {num_replicas!r}")
        if rank >= num_replicas or rank < 0:
            raise ValueError(
                f"Invalid rank {rank}, rank should be in the interval [0, {num_replicas - 1}]")
        self.dataset = dataset
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0
        self.drop_last = drop_last
        n = len(dataset)
        if drop_last and n % num_replicas != 0:
            self.num_samples = math.ceil((n - num_replicas) / num_replicas)
        else:
            self.num_samples = math.ceil(n / num_replicas)
        self.total_size = self.num_samples * num_replicas
        self.shuffle = shuffle
        self.seed = seed

    def __iter__(self):
        import ferrotorch

        n = len(self.dataset)
        if self.shuffle:
            g = ferrotorch.Generator()
            g.manual_seed(self.seed + self.epoch)
            indices = ferrotorch.randperm(n, generator=g).tolist()
        else:
            indices = list(range(n))
        if not self.drop_last:
            padding = self.total_size - len(indices)
            if padding > 0 and indices:
                indices += (indices * math.ceil(padding / len(indices)))[:padding]
        else:
            indices = indices[:self.total_size]
        if len(indices) != self.total_size:
            raise RuntimeError(f"DistributedSampler: the dataset has {n} items, which cannot be "
                               f"split into {self.num_replicas} non-empty shares")
        indices = indices[self.rank:self.total_size:self.num_replicas]
        return iter(indices)

    def __len__(self):
        return self.num_samples

    def set_epoch(self, epoch):
        """Sets the epoch that seeds the next shuffle (call it before each epoch)."""
        self.epoch = epoch
