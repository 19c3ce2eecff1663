"""Optimizers (``ferrotorch.optim``) with torch's names, options, state dicts and numbers, and
learning-rate schedulers in ``ferrotorch.optim.lr_scheduler``."""

from ferrotorch.optim import lr_scheduler
from ferrotorch.optim.adam import Adam
from ferrotorch.optim.adamw import AdamW
from ferrotorch.optim.optimizer import Optimizer
from ferrotorch.optim.sgd import SGD

__all__ = ["Adam", "AdamW", "Optimizer", "SGD", "lr_scheduler"]
