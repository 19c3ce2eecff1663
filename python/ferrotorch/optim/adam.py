"""Adam (and AMSGrad, and decoupled weight decay for AdamW): torch's ``torch.optim.Adam``, same
numbers as its single-tensor CPU path."""

from ferrotorch import _C
from ferrotorch._C import Tensor, zeros_like
from ferrotorch._C import float32 as _float32
from ferrotorch._C import tensor as _tensor
from ferrotorch.autograd.grad_mode import no_grad
from ferrotorch.optim.optimizer import (
    Optimizer,
    _addcdiv_,
    _addcmul_,
    _check_one_element,
    _lerp_,
    _scalar,
    fusable,
)

__all__ = ["Adam", "adam"]


class Adam(Optimizer):
    """Adam: per-parameter steps from bias-corrected running averages of the gradient and of
    its square.

    >>> import ferrotorch as torch
    >>> w = torch.tensor([1.0, -2.0], requires_grad=True)
    >>> opt = torch.optim.Adam([w], lr=0.1)
    >>> (w * w).sum().backward()
    >>> opt.step()
    >>> w
    tensor([ 0.9000, -1.9000], requires_grad=True)
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 amsgrad=False, *, foreach=None, maximize=False, capturable=False,
                 differentiable=False, fused=None, decoupled_weight_decay=False):
        _check_one_element(lr, "lr")
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= betas[0] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 0: {betas[0]}")
        if not 0.0 <= betas[1] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 1: {betas[1]}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        both_floats = isinstance(betas[0], float) and isinstance(betas[1], float)
        both_tensors = isinstance(betas[0], Tensor) and isinstance(betas[1], Tensor)
        if not (both_floats or both_tensors):
            raise ValueError("betas must be either both floats or both Tensors")
        _check_one_element(betas[0], "betas[0]")
        _check_one_element(betas[1], "betas[1]")
        if differentiable or capturable:
            raise NotImplementedError(
                f"{type(self).__name__}(differentiable=True / capturable=True) is not "
                "supported by ferrotorch; leave both False"
            )
        defaults = {
            "lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay,
            "amsgrad": amsgrad, "maximize": maximize, "foreach": foreach,
            "capturable": capturable, "differentiable": differentiable, "fused": fused,
            "decoupled_weight_decay": decoupled_weight_decay,
        }
        super().__init__(params, defaults)
        if fused and foreach:
            raise RuntimeError("`fused` and `foreach` cannot be `True` together.")

    def __setstate__(self, state):
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("amsgrad", False)
            group.setdefault("maximize", False)
            group.setdefault("foreach", None)
            group.setdefault("capturable", False)
            group.setdefault("differentiable", False)
            group.setdefault("decoupled_weight_decay", False)
            group.setdefault("fused", None)
            for p in group["params"]:
                p_state = self.state.get(p, [])
                # old checkpoints saved the step as a number
                if len(p_state) != 0 and not isinstance(p_state["step"], Tensor):
                    p_state["step"] = _tensor(float(p_state["step"]), dtype=_float32)

    def step(self, closure=None):
        """Updates the parameters that have a ``.grad``; returns the closure's loss if given."""
        loss = self._eval_closure(closure)
        with no_grad():
            for group in self.param_groups:
                params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps = (
                    [], [], [], [], [], [])
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    params.append(p)
                    grads.append(p.grad)
                    state = self.state[p]
                    if len(state) == 0:
                        # `step` is a float32 scalar like torch's (checkpoints interchange)
                        state["step"] = _tensor(0.0, dtype=_float32)
                        state["exp_avg"] = zeros_like(p)
                        state["exp_avg_sq"] = zeros_like(p)
                        if group["amsgrad"]:
                            state["max_exp_avg_sq"] = zeros_like(p)
                    exp_avgs.append(state["exp_avg"])
                    exp_avg_sqs.append(state["exp_avg_sq"])
                    if group["amsgrad"]:
                        max_exp_avg_sqs.append(state["max_exp_avg_sq"])
                    steps.append(state["step"])
                beta1, beta2 = group["betas"]
                adam(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps,
                     amsgrad=group["amsgrad"], beta1=beta1, beta2=beta2, lr=group["lr"],
                     weight_decay=group["weight_decay"], eps=group["eps"],
                     maximize=group["maximize"],
                     decoupled_weight_decay=group["decoupled_weight_decay"])
        return loss


def adam(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, state_steps, *, amsgrad, beta1,
         beta2, lr, weight_decay, eps, maximize, decoupled_weight_decay=False):
    """One Adam/AdamW update of a group, in place: ``params``, the moment buffers and the
    ``state_steps`` counters (float32 scalars). Follows torch's ``_single_tensor_adam`` op by op
    (bias corrections in Python floats, like torch's non-capturable path); this is the one
    function a fused kernel replaces."""
    lr, beta1, beta2 = _scalar(lr), _scalar(beta1), _scalar(beta2)
    maxes = max_exp_avg_sqs if amsgrad else None
    if fusable(params, exp_avgs, exp_avg_sqs, maxes or ()):
        # One Rust call does the whole update of every parameter, torch's arithmetic per element.
        steps = []
        for step_t in state_steps:
            step_t.add_(1)
            steps.append(step_t.item())
        _C._adam_step(params, grads, exp_avgs, exp_avg_sqs, maxes, steps, lr, beta1, beta2,
                      float(eps), float(weight_decay), maximize, decoupled_weight_decay)
        return
    for i, param in enumerate(params):
        grad = grads[i].neg() if maximize else grads[i]
        exp_avg, exp_avg_sq, step_t = exp_avgs[i], exp_avg_sqs[i], state_steps[i]
        step_t.add_(1)
        if weight_decay != 0:
            if decoupled_weight_decay:
                param.mul_(1 - lr * weight_decay)
            else:
                grad = grad.add(param, alpha=weight_decay)

        _lerp_(exp_avg, grad, 1 - beta1)
        _addcmul_(exp_avg_sq.mul_(beta2), grad, grad, 1 - beta2)

        step = step_t.item()
        bias_correction1 = 1 - beta1**step
        bias_correction2 = 1 - beta2**step
        step_size = lr / bias_correction1
        bias_correction2_sqrt = bias_correction2**0.5
        if amsgrad:
            max_exp_avg_sqs[i].copy_(max_exp_avg_sqs[i].maximum(exp_avg_sq))
            denom = (max_exp_avg_sqs[i].sqrt() / bias_correction2_sqrt).add_(eps)
        else:
            denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps)
        _addcdiv_(param, exp_avg, denom, -step_size)
