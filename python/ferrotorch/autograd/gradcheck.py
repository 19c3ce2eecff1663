"""Finite-difference gradient checks (use float64 inputs)."""

import ferrotorch as _ft


def _as_tuple(x):
    if isinstance(x, tuple):
        return x
    return tuple(x) if isinstance(x, list) else (x,)


def _numerical_jacobian(fn, inputs, i, eps):
    x = inputs[i]
    flat = x.detach().reshape(-1)
    cols = []
    # fn runs with grad mode on: it may itself differentiate (gradgradcheck). `flat` is a
    # detached view, so nudging it changes the input's values without touching the graph.
    for k in range(flat.numel()):
        orig = flat[k].item()
        flat[k] = orig + eps
        plus = [o.detach().reshape(-1).clone() for o in _as_tuple(fn(*inputs))]
        flat[k] = orig - eps
        minus = [o.detach().reshape(-1).clone() for o in _as_tuple(fn(*inputs))]
        flat[k] = orig
        cols.append(_ft.cat([(p - m) / (2 * eps) for p, m in zip(plus, minus)]))
    return _ft.stack(cols, dim=1) if cols else None


def _analytical_jacobian(fn, inputs, i):
    outs = _as_tuple(fn(*inputs))
    flat_out = _ft.cat([o.reshape(-1) for o in outs])
    rows = []
    for k in range(flat_out.numel()):
        grads = []
        for o in outs:
            grads.append(_ft.zeros_like(o))
        # one-hot over the concatenated outputs
        offset = 0
        for o, g in zip(outs, grads):
            n = o.numel()
            if offset <= k < offset + n:
                g.reshape(-1)[k - offset] = 1.0
            offset += n
        (gi,) = _ft.autograd.grad(outs, (inputs[i],), grads, retain_graph=True, allow_unused=True)
        n = inputs[i].numel()
        rows.append(_ft.zeros(n, dtype=inputs[i].dtype) if gi is None else gi.reshape(-1))
    return _ft.stack(rows, dim=0)


def gradcheck(func, inputs, *, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True, **_):
    """Compares analytical gradients with central finite differences for every input that
    requires grad; returns True or raises with the worst mismatch."""
    inputs = _as_tuple(inputs)
    for i, x in enumerate(inputs):
        if not (isinstance(x, _ft.Tensor) and x.requires_grad):
            continue
        if x.dtype != _ft.float64:
            import warnings

            warnings.warn("gradcheck: inputs should be float64 for reliable results")
        num = _numerical_jacobian(func, inputs, i, eps)
        ana = _analytical_jacobian(func, inputs, i)
        if num is None:
            continue
        diff = (num - ana).abs()
        bad = diff > (atol + rtol * num.abs())
        if bad.any().item():
            if not raise_exception:
                return False
            raise RuntimeError(
                f"Jacobian mismatch for output 0 with respect to input {i},\n"
                f"numerical:{num}\nanalytical:{ana}\nmax abs difference {diff.max().item():.3e}"
            )
    return True


def gradgradcheck(func, inputs, *, eps=1e-6, atol=1e-5, rtol=1e-3, **_):
    """Checks second derivatives: gradcheck of the first derivative (with a fixed random
    direction for the output gradient)."""
    inputs = _as_tuple(inputs)
    outs = _as_tuple(func(*inputs))
    gouts = [_ft.randn(o.shape, dtype=o.dtype) for o in outs]
    diff_inputs = [x for x in inputs if isinstance(x, _ft.Tensor) and x.requires_grad]

    def first(*xs):
        ys = _as_tuple(func(*xs))
        diff = [x for x in xs if isinstance(x, _ft.Tensor) and x.requires_grad]
        return _ft.autograd.grad(ys, diff, gouts, create_graph=True, allow_unused=True)

    del diff_inputs
    return gradcheck(first, inputs, eps=eps, atol=atol, rtol=rtol)
