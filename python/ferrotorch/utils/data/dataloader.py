"""DataLoader: batches of samples from a dataset, in torch's order for the same seed.

Loading always happens in the calling process: ``num_workers > 0`` is accepted (with a warning)
and behaves like ``num_workers=0``. Random numbers are drawn at the points torch draws them
(a base seed when an iterator is created, then the sampler's seed), so shuffled epochs follow
torch's order under ``manual_seed`` or an explicit ``generator``.
"""

import math
import warnings

from ferrotorch.utils.data._collate import default_collate, default_convert
from ferrotorch.utils.data.dataset import IterableDataset
from ferrotorch.utils.data.sampler import BatchSampler, RandomSampler, Sampler, SequentialSampler

__all__ = ["DataLoader", "default_collate", "default_convert", "get_worker_info"]


def _ft():
    # `ferrotorch` imports this package while it is still initializing; look it up at call time.
    import ferrotorch

    return ferrotorch


def get_worker_info():
    """Information about the current worker process; always ``None`` here, since ferrotorch's
    DataLoader loads in the main process (as torch's does with ``num_workers=0``)."""
    return None


class _InfiniteConstantSampler(Sampler):
    """The sampler of an iterable dataset: a placeholder index per sample, forever."""

    def __iter__(self):
        while True:
            yield None


_FROZEN_AFTER_INIT = (
    "batch_size", "batch_sampler", "sampler", "drop_last", "dataset", "persistent_workers"
)


class DataLoader:
    """Iterates over ``dataset`` in batches of ``batch_size`` samples merged by ``collate_fn``.

    ``shuffle=True`` gives a new random order each epoch (torch's order for the same seed or
    ``generator``); ``sampler``/``batch_sampler`` choose the indices yourself; ``batch_size=None``
    turns batching off. ``num_workers``, ``pin_memory``, ``timeout``, ``prefetch_factor``,
    ``persistent_workers`` and ``multiprocessing_context`` are accepted for compatibility:
    ferrotorch loads in the main process.

    >>> import ferrotorch as torch
    >>> from ferrotorch.utils.data import TensorDataset
    >>> ds = TensorDataset(torch.arange(5), torch.arange(5) * 10)
    >>> for x, y in DataLoader(ds, batch_size=2):
    ...     print(x, y)
    tensor([0, 1]) tensor([ 0, 10])
    tensor([2, 3]) tensor([20, 30])
    tensor([4]) tensor([40])
    """

    _initialized = False

    def __init__(self, dataset, batch_size=1, shuffle=None, sampler=None, batch_sampler=None,
                 num_workers=0, collate_fn=None, pin_memory=False, drop_last=False, timeout=0,
                 worker_init_fn=None, multiprocessing_context=None, generator=None, *,
                 prefetch_factor=None, persistent_workers=False, pin_memory_device="",
                 in_order=True):
        _check_worker_options(num_workers, timeout, prefetch_factor, persistent_workers,
                              multiprocessing_context)
        if num_workers > 0 and prefetch_factor is None:
            prefetch_factor = 2
        self.dataset = dataset
        self.num_workers = num_workers
        self.prefetch_factor = prefetch_factor
        self.pin_memory = pin_memory  # nothing to pin on the CPU
        self.pin_memory_device = pin_memory_device
        self.timeout = timeout
        self.worker_init_fn = worker_init_fn
        self.multiprocessing_context = multiprocessing_context
        self.in_order = in_order

        self._is_iterable = isinstance(dataset, IterableDataset)
        if self._is_iterable:
            if shuffle not in (False, None):
                raise ValueError(
                    "DataLoader with IterableDataset: expected unspecified shuffle option, "
                    f"but got shuffle={shuffle}"
                )
            if sampler is not None:
                raise ValueError(
                    "DataLoader with IterableDataset: expected unspecified sampler option, "
                    f"but got sampler={sampler}"
                )
            if batch_sampler is not None:
                raise ValueError(
                    "DataLoader with IterableDataset: expected unspecified batch_sampler "
                    f"option, but got batch_sampler={batch_sampler}"
                )
        else:
            shuffle = bool(shuffle)

        if sampler is not None and shuffle:
            raise ValueError("sampler option is mutually exclusive with shuffle")
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError(
                    "batch_sampler option is mutually exclusive with batch_size, shuffle, "
                    "sampler, and drop_last"
                )
            batch_size = None
            drop_last = False
        elif batch_size is None and drop_last:
            raise ValueError(
                "batch_size=None option disables auto-batching and is mutually exclusive "
                "with drop_last"
            )

        if sampler is None:
            if self._is_iterable:
                sampler = _InfiniteConstantSampler()
            elif shuffle:
                sampler = RandomSampler(dataset, generator=generator)
            else:
                sampler = SequentialSampler(dataset)
        if batch_size is not None and batch_sampler is None:
            batch_sampler = BatchSampler(sampler, batch_size, drop_last)

        self.batch_size = batch_size
        self.drop_last = drop_last
        self.sampler = sampler
        self.batch_sampler = batch_sampler
        self.generator = generator
        if collate_fn is None:
            collate_fn = default_collate if self._auto_collation else default_convert
        self.collate_fn = collate_fn
        self.persistent_workers = persistent_workers
        self._IterableDataset_len_called = None
        self._initialized = True

        if num_workers > 0:
            warnings.warn(
                f"DataLoader(num_workers={num_workers}): ferrotorch's DataLoader has no worker "
                "processes yet; the data is loaded in the main process (as with num_workers=0) "
                "and worker_init_fn is not called.",
                UserWarning,
                stacklevel=2,
            )

    def __setattr__(self, name, value):
        if self._initialized and name in _FROZEN_AFTER_INIT:
            raise ValueError(
                f"{name} attribute should not be set after {type(self).__name__} is initialized"
            )
        super().__setattr__(name, value)

    @property
    def _auto_collation(self):
        return self.batch_sampler is not None

    @property
    def _index_sampler(self):
        return self.batch_sampler if self._auto_collation else self.sampler

    def __iter__(self):
        return _DataLoaderIter(self)

    def __len__(self):
        if self._is_iterable:
            length = len(self.dataset)
            self._IterableDataset_len_called = length
            if self.batch_size is not None:
                if self.drop_last:
                    return length // self.batch_size
                return math.ceil(length / self.batch_size)
            return length
        return len(self._index_sampler)


def _check_worker_options(num_workers, timeout, prefetch_factor, persistent_workers,
                          multiprocessing_context):
    if num_workers < 0:
        raise ValueError(
            "num_workers option should be non-negative; use num_workers=0 to disable "
            "multiprocessing."
        )
    if timeout < 0:
        raise ValueError("timeout option should be non-negative")
    if num_workers == 0 and prefetch_factor is not None:
        raise ValueError(
            "prefetch_factor option could only be specified in multiprocessing. Let "
            "num_workers > 0 to enable multiprocessing, otherwise set prefetch_factor to None."
        )
    if prefetch_factor is not None and prefetch_factor < 0:
        raise ValueError("prefetch_factor option should be non-negative")
    if persistent_workers and num_workers == 0:
        raise ValueError("persistent_workers option needs num_workers > 0")
    if multiprocessing_context is not None and num_workers == 0:
        raise ValueError(
            "multiprocessing_context can only be used with multi-process loading "
            f"(num_workers > 0), but got num_workers={num_workers}"
        )


class _DataLoaderIter:
    """One pass over a DataLoader."""

    def __init__(self, loader):
        ft = _ft()
        if loader.timeout != 0 and loader.num_workers == 0:
            raise AssertionError(
                f"DataLoader(timeout={loader.timeout}) needs num_workers > 0: a timeout only "
                "applies to waiting for worker processes"
            )
        self._loader = loader
        self._dataset = loader.dataset
        self._auto_collation = loader._auto_collation
        self._collate_fn = loader.collate_fn
        self._drop_last = loader.drop_last
        self._len_called = loader._IterableDataset_len_called
        self._sampler_iter = iter(loader._index_sampler)
        # torch draws a base seed for its workers here; drawing it too keeps the random stream
        # (and so the shuffled order of later epochs) identical to torch's.
        self._base_seed = ft.empty((), dtype=ft.int64).random_(generator=loader.generator).item()
        self._num_yielded = 0
        if loader._is_iterable:
            self._dataset_iter = iter(loader.dataset)
            self._ended = False

    def __iter__(self):
        return self

    def __len__(self):
        return len(self._loader._index_sampler)

    def __next__(self):
        index = next(self._sampler_iter)
        data = self._fetch_iterable(index) if self._loader._is_iterable else self._fetch_map(index)
        self._num_yielded += 1
        if self._len_called is not None and self._num_yielded > self._len_called:
            warnings.warn(
                f"Length of IterableDataset {self._dataset} was reported to be "
                f"{self._len_called} (when accessing len(dataloader)), but {self._num_yielded} "
                "samples have been fetched. ",
                stacklevel=2,
            )
        return data

    def _fetch_map(self, index):
        if not self._auto_collation:
            return self._collate_fn(self._dataset[index])
        getitems = getattr(self._dataset, "__getitems__", None)
        if getitems:
            return self._collate_fn(getitems(index))
        return self._collate_fn([self._dataset[i] for i in index])

    def _fetch_iterable(self, index):
        if self._ended:
            raise StopIteration
        if not self._auto_collation:
            return self._collate_fn(next(self._dataset_iter))
        data = []
        for _ in index:
            try:
                data.append(next(self._dataset_iter))
            except StopIteration:
                self._ended = True
                break
        if not data or (self._drop_last and len(data) < len(index)):
            raise StopIteration
        return self._collate_fn(data)
