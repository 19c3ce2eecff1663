"""Datasets, samplers and the DataLoader, with torch's names, defaults and random order.

>>> import ferrotorch as torch
>>> from ferrotorch.utils.data import DataLoader, TensorDataset
>>> ds = TensorDataset(torch.arange(4.0).reshape(4, 1), torch.tensor([0, 1, 0, 1]))
>>> [y.tolist() for _, y in DataLoader(ds, batch_size=2)]
[[0, 1], [0, 1]]
"""

from ferrotorch.utils.data._collate import default_collate, default_convert
from ferrotorch.utils.data.dataloader import DataLoader, get_worker_info
from ferrotorch.utils.data.dataset import (
    ChainDataset,
    ConcatDataset,
    Dataset,
    IterableDataset,
    StackDataset,
    Subset,
    TensorDataset,
    random_split,
)
from ferrotorch.utils.data.distributed import DistributedSampler
from ferrotorch.utils.data.sampler import (
    BatchSampler,
    RandomSampler,
    Sampler,
    SequentialSampler,
    SubsetRandomSampler,
    WeightedRandomSampler,
)

__all__ = [
    "BatchSampler",
    "ChainDataset",
    "ConcatDataset",
    "DataLoader",
    "Dataset",
    "DistributedSampler",
    "IterableDataset",
    "RandomSampler",
    "Sampler",
    "SequentialSampler",
    "StackDataset",
    "Subset",
    "SubsetRandomSampler",
    "TensorDataset",
    "WeightedRandomSampler",
    "default_collate",
    "default_convert",
    "get_worker_info",
    "random_split",
]
