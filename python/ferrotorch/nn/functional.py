"""``ferrotorch.nn.functional``: stateless functions on tensors, named like torch's."""

from ferrotorch import _C


def one_hot(tensor, num_classes=-1):
    """One-hot encoding of an int64 tensor: a new last dim of size ``num_classes``
    (``max + 1`` when -1).

    >>> import ferrotorch as torch
    >>> torch.nn.functional.one_hot(torch.tensor([0, 2]), 3)
    tensor([[1, 0, 0],
            [0, 0, 1]])
    """
    return _C.one_hot(tensor, num_classes)
