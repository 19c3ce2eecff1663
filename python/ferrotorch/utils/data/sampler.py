"""Samplers: the order in which a DataLoader visits dataset indices.

Random samplers consume the random stream exactly as torch's do, so that with the same seed
``DataLoader(..., shuffle=True)`` visits the samples in torch's order.
"""

import itertools
from typing import Generic, TypeVar

__all__ = [
    "BatchSampler",
    "RandomSampler",
    "Sampler",
    "SequentialSampler",
    "SubsetRandomSampler",
    "WeightedRandomSampler",
]

T_co = TypeVar("T_co", covariant=True)


def _ft():
    # `ferrotorch` imports this package while it is still initializing; look it up at call time.
    import ferrotorch

    return ferrotorch


def _is_positive_int(value):
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


class Sampler(Generic[T_co]):
    """Base class of samplers: subclasses define ``__iter__`` (indices, or lists of indices for
    a batch sampler) and usually ``__len__``.

    No default ``__len__`` is provided on purpose: ``list(sampler)`` must then fall back to
    iteration instead of failing, as in torch.
    """

    def __init__(self, data_source=None):
        pass

    def __iter__(self):
        raise NotImplementedError


class SequentialSampler(Sampler[int]):
    """Yields ``0, 1, ..., len(data_source) - 1``.

    >>> list(SequentialSampler(range(4)))
    [0, 1, 2, 3]
    """

    def __init__(self, data_source):
        self.data_source = data_source

    def __iter__(self):
        return iter(range(len(self.data_source)))

    def __len__(self):
        return len(self.data_source)


class RandomSampler(Sampler[int]):
    """Yields the indices of ``data_source`` in random order (a fresh permutation per epoch), or
    ``num_samples`` indices drawn with replacement.

    Without a ``generator``, each pass draws a seed from the global generator, as torch does, so
    ``manual_seed(s)`` gives torch's order.

    >>> import ferrotorch as torch
    >>> list(RandomSampler(range(5), generator=torch.Generator().manual_seed(0)))
    [4, 0, 1, 3, 2]
    """

    def __init__(self, data_source, replacement=False, num_samples=None, generator=None):
        self.data_source = data_source
        self.replacement = replacement
        self._num_samples = num_samples
        self.generator = generator
        if not isinstance(replacement, bool):
            raise TypeError(
                f"replacement should be a boolean value, but got replacement={replacement}"
            )
        if not isinstance(self.num_samples, int) or self.num_samples <= 0:
            raise ValueError(
                "num_samples should be a positive integer value, "
                f"but got num_samples={self.num_samples}"
            )

    @property
    def num_samples(self):
        # read each time: the dataset may grow or shrink between epochs
        if self._num_samples is None:
            return len(self.data_source)
        return self._num_samples

    def __iter__(self):
        ft = _ft()
        n = len(self.data_source)
        generator = self.generator
        if generator is None:
            seed = int(ft.empty((), dtype=ft.int64).random_().item())
            generator = ft.Generator()
            generator.manual_seed(seed)
        if self.replacement:
            # chunks of 32 draws: the same stream consumption as torch
            for _ in range(self.num_samples // 32):
                yield from ft.randint(0, n, (32,), dtype=ft.int64, generator=generator).tolist()
            rest = self.num_samples % 32
            yield from ft.randint(0, n, (rest,), dtype=ft.int64, generator=generator).tolist()
        else:
            for _ in range(self.num_samples // n):
                yield from ft.randperm(n, generator=generator).tolist()
            yield from ft.randperm(n, generator=generator).tolist()[: self.num_samples % n]

    def __len__(self):
        return self.num_samples


class SubsetRandomSampler(Sampler[int]):
    """Yields the given ``indices`` in random order."""

    def __init__(self, indices, generator=None):
        self.indices = indices
        self.generator = generator

    def __iter__(self):
        order = _ft().randperm(len(self.indices), generator=self.generator).tolist()
        for i in order:
            yield self.indices[i]

    def __len__(self):
        return len(self.indices)


class WeightedRandomSampler(Sampler[int]):
    """Yields ``num_samples`` indices into ``weights``, index ``i`` with probability
    proportional to ``weights[i]``."""

    def __init__(self, weights, num_samples, replacement=True, generator=None):
        if not _is_positive_int(num_samples):
            raise ValueError(
                "num_samples should be a positive integer value, "
                f"but got num_samples={num_samples}"
            )
        if not isinstance(replacement, bool):
            raise ValueError(
                f"replacement should be a boolean value, but got replacement={replacement}"
            )
        ft = _ft()
        if isinstance(weights, ft.Tensor):
            weights_tensor = weights.to(ft.float64)
        else:
            weights_tensor = ft.tensor(weights, dtype=ft.float64)
        if weights_tensor.dim() != 1:
            raise ValueError(
                "weights should be a 1d sequence but given weights have shape "
                f"{tuple(weights_tensor.shape)}"
            )
        self.weights = weights_tensor
        self.num_samples = num_samples
        self.replacement = replacement
        self.generator = generator

    def __iter__(self):
        draws = _ft().multinomial(
            self.weights, self.num_samples, self.replacement, generator=self.generator
        )
        yield from draws.tolist()

    def __len__(self):
        return self.num_samples


class BatchSampler(Sampler[list]):
    """Groups the indices of ``sampler`` into lists of ``batch_size`` (the last one shorter
    unless ``drop_last``).

    >>> list(BatchSampler(SequentialSampler(range(7)), batch_size=3, drop_last=False))
    [[0, 1, 2], [3, 4, 5], [6]]
    """

    def __init__(self, sampler, batch_size, drop_last):
        if not _is_positive_int(batch_size):
            raise ValueError(
                f"batch_size should be a positive integer value, but got batch_size={batch_size}"
            )
        if not isinstance(drop_last, bool):
            raise ValueError(
                f"drop_last should be a boolean value, but got drop_last={drop_last}"
            )
        self.sampler = sampler
        self.batch_size = batch_size
        self.drop_last = drop_last

    def __iter__(self):
        indices = iter(self.sampler)
        while True:
            batch = list(itertools.islice(indices, self.batch_size))
            if not batch or (self.drop_last and len(batch) < self.batch_size):
                return
            yield batch

    def __len__(self):
        if self.drop_last:
            return len(self.sampler) // self.batch_size
        return (len(self.sampler) + self.batch_size - 1) // self.batch_size
