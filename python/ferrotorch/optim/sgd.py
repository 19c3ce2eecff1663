"""Stochastic gradient descent with momentum, dampening, Nesterov and weight decay (torch's
``torch.optim.SGD``, same numbers as its single-tensor CPU path)."""

from ferrotorch import _C
from ferrotorch.autograd.grad_mode import no_grad
from ferrotorch.optim.optimizer import Optimizer, _check_one_element, _scalar, fusable

__all__ = ["SGD", "sgd"]


class SGD(Optimizer):
    """Stochastic gradient descent, optionally with (Nesterov) momentum.

    >>> import ferrotorch as torch
    >>> w = torch.tensor([1.0, 2.0], requires_grad=True)
    >>> opt = torch.optim.SGD([w], lr=0.1, momentum=0.9)
    >>> (w * w).sum().backward()
    >>> opt.step()
    >>> w
    tensor([0.8000, 1.6000], requires_grad=True)
    """

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0,
                 nesterov=False, *, maximize=False, foreach=None, differentiable=False,
                 fused=None):
        _check_one_element(lr, "lr")
        if lr < 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if momentum < 0.0:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if weight_decay < 0.0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        defaults = {
            "lr": lr, "momentum": momentum, "dampening": dampening,
            "weight_decay": weight_decay, "nesterov": nesterov, "maximize": maximize,
            "foreach": foreach, "differentiable": differentiable, "fused": fused,
        }
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        if differentiable:
            raise NotImplementedError(
                "SGD(differentiable=True) is not supported by ferrotorch; leave it False"
            )
        super().__init__(params, defaults)
        if fused and foreach:
            raise RuntimeError("`fused` and `foreach` cannot be `True` together.")

    def __setstate__(self, state):
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("nesterov", False)
            group.setdefault("maximize", False)
            group.setdefault("foreach", None)
            group.setdefault("differentiable", False)
            group.setdefault("fused", False)

    def step(self, closure=None):
        """Updates the parameters that have a ``.grad``; returns the closure's loss if given."""
        loss = self._eval_closure(closure)
        for group in self.param_groups:
            params, grads, buffers = [], [], []
            momentum = group["momentum"]
            for p in group["params"]:
                grad = p.grad
                if grad is None:
                    continue
                params.append(p)
                grads.append(grad)
                if momentum != 0:
                    buffers.append(self.state[p].get("momentum_buffer"))
            sgd(params, grads, buffers, weight_decay=group["weight_decay"],
                momentum=momentum, lr=group["lr"], dampening=group["dampening"],
                nesterov=group["nesterov"], maximize=group["maximize"])
            if momentum != 0:
                for p, buf in zip(params, buffers):
                    self.state[p]["momentum_buffer"] = buf
        return loss


def sgd(params, grads, momentum_buffers, *, weight_decay, momentum, lr, dampening, nesterov,
        maximize):
    """One SGD update of a group, in place: ``params`` and, when ``momentum != 0``,
    ``momentum_buffers`` (a ``None`` entry, on a parameter's first step, is replaced by the
    new buffer). Follows torch's ``_single_tensor_sgd`` op by op; this is the one function a
    fused kernel replaces."""
    lr = _scalar(lr)
    weight_decay = _scalar(weight_decay)
    if fusable(params, momentum_buffers):
        # One Rust call updates every parameter (and creates first-step buffers).
        given = momentum_buffers if momentum != 0 else [None] * len(params)
        bufs = _C._sgd_step(params, grads, given, lr, float(momentum),
                            float(dampening), float(weight_decay), nesterov, maximize)
        if momentum != 0:
            momentum_buffers[:] = bufs
        return
    # Op by op, in place, off the tape (the fused kernel above records nothing either).
    with no_grad():
        for i, param in enumerate(params):
            grad = grads[i].neg() if maximize else grads[i]
            if weight_decay != 0:
                grad = grad.add(param, alpha=weight_decay)
            if momentum != 0:
                buf = momentum_buffers[i]
                if buf is None:
                    buf = grad.detach().clone()
                    momentum_buffers[i] = buf
                else:
                    buf.mul_(momentum).add_(grad, alpha=1 - dampening)
                grad = grad.add(buf, alpha=momentum) if nesterov else buf
            param.add_(grad, alpha=-lr)
