"""Loss modules: thin ``Module`` wrappers that hold the options of the ``nn.functional`` losses.

Like torch's, they have no ``extra_repr`` (``repr(nn.MSELoss())`` is ``MSELoss()``), keep the class
``weight`` (and ``pos_weight``) as buffers, and accept the deprecated ``size_average``/``reduce``.
"""

from ferrotorch.nn import functional as F
from ferrotorch.nn.module import Module

__all__ = ["BCELoss", "BCEWithLogitsLoss", "CrossEntropyLoss", "L1Loss", "MSELoss", "NLLLoss"]


class _Loss(Module):
    def __init__(self, size_average=None, reduce=None, reduction="mean"):
        super().__init__()
        if size_average is not None or reduce is not None:
            reduction = F._reduction(size_average, reduce, reduction)
        self.reduction = reduction


class _WeightedLoss(_Loss):
    def __init__(self, weight=None, size_average=None, reduce=None, reduction="mean"):
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", weight)


class L1Loss(_Loss):
    """Mean absolute error between input and target.

    >>> import ferrotorch as torch
    >>> from ferrotorch.nn.loss import L1Loss
    >>> L1Loss()(torch.tensor([1.0, 2.0]), torch.tensor([2.0, 4.0]))
    tensor(1.5000)
    """

    __constants__ = ["reduction"]

    def forward(self, input, target):
        return F.l1_loss(input, target, reduction=self.reduction)


class MSELoss(_Loss):
    """Mean squared error between input and target.

    >>> import ferrotorch as torch
    >>> from ferrotorch.nn.loss import MSELoss
    >>> MSELoss()(torch.tensor([1.0, 2.0]), torch.tensor([2.0, 4.0]))
    tensor(2.5000)
    """

    __constants__ = ["reduction"]

    def forward(self, input, target):
        return F.mse_loss(input, target, reduction=self.reduction)


class BCELoss(_WeightedLoss):
    """Binary cross entropy on probabilities (apply sigmoid first, or use
    :class:`BCEWithLogitsLoss` on logits)."""

    __constants__ = ["reduction"]

    def forward(self, input, target):
        return F.binary_cross_entropy(input, target, weight=self.weight,
                                      reduction=self.reduction)


class BCEWithLogitsLoss(_Loss):
    """Binary cross entropy on logits, with optional ``weight`` and ``pos_weight`` (weight of
    the positive class, broadcast along the target).

    >>> import ferrotorch as torch
    >>> from ferrotorch.nn.loss import BCEWithLogitsLoss
    >>> BCEWithLogitsLoss()(torch.tensor([0.0]), torch.tensor([1.0]))
    tensor(0.6931)
    """

    def __init__(self, weight=None, size_average=None, reduce=None, reduction="mean",
                 pos_weight=None):
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", weight)
        self.register_buffer("pos_weight", pos_weight)

    def forward(self, input, target):
        return F.binary_cross_entropy_with_logits(
            input, target, self.weight, pos_weight=self.pos_weight, reduction=self.reduction)


class NLLLoss(_WeightedLoss):
    """Negative log likelihood of class indices, given log-probabilities."""

    __constants__ = ["ignore_index", "reduction"]

    def __init__(self, weight=None, size_average=None, ignore_index=-100, reduce=None,
                 reduction="mean"):
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index = ignore_index

    def forward(self, input, target):
        return F.nll_loss(input, target, weight=self.weight, ignore_index=self.ignore_index,
                          reduction=self.reduction)


class CrossEntropyLoss(_WeightedLoss):
    """Cross entropy of logits against class indices or class probabilities, with optional
    class ``weight``, ``ignore_index`` and ``label_smoothing``.

    >>> import ferrotorch as torch
    >>> from ferrotorch.nn.loss import CrossEntropyLoss
    >>> loss = CrossEntropyLoss()
    >>> loss(torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([2]))
    tensor(0.4076)
    """

    __constants__ = ["ignore_index", "reduction", "label_smoothing"]

    def __init__(self, weight=None, size_average=None, ignore_index=-100, reduce=None,
                 reduction="mean", label_smoothing=0.0):
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index = ignore_index
        self.label_smoothing = label_smoothing

    def forward(self, input, target):
        return F.cross_entropy(input, target, weight=self.weight, ignore_index=self.ignore_index,
                               reduction=self.reduction, label_smoothing=self.label_smoothing)
