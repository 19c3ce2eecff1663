"""Neural-network building blocks (``ferrotorch.nn``), named and behaving like ``torch.nn``.

>>> import ferrotorch as torch
>>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
>>> net(torch.randn(2, 4)).shape
torch.Size([2, 1])
"""

from ferrotorch.nn import functional, init, parallel, utils  # noqa: F401
from ferrotorch.nn.activation import GELU, LogSoftmax, ReLU, Sigmoid, SiLU, Softmax, Softplus, Tanh
from ferrotorch.nn.attention import MultiheadAttention
from ferrotorch.nn.container import ModuleDict, ModuleList, Sequential
from ferrotorch.nn.dropout import Dropout
from ferrotorch.nn.flatten import Flatten, Unflatten
from ferrotorch.nn.linear import Identity, Linear
from ferrotorch.nn.loss import (
    BCELoss,
    BCEWithLogitsLoss,
    CrossEntropyLoss,
    L1Loss,
    MSELoss,
    NLLLoss,
)
from ferrotorch.nn.module import Module
from ferrotorch.nn.normalization import LayerNorm
from ferrotorch.nn.parameter import Buffer, Parameter
from ferrotorch.nn.sparse import Embedding

__all__ = [
    "BCELoss", "BCEWithLogitsLoss", "CrossEntropyLoss", "L1Loss", "MSELoss", "NLLLoss",
    "GELU", "Buffer", "Dropout", "Embedding", "Flatten", "Identity", "LayerNorm", "Linear",
    "LogSoftmax", "Module", "ModuleDict", "ModuleList", "MultiheadAttention", "Parameter",
    "ReLU", "Sequential", "SiLU", "Sigmoid", "Softmax", "Softplus", "Tanh", "Unflatten",
    "functional", "init", "utils",
]
