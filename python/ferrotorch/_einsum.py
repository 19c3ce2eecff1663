"""einsum for one or two operands by reduction to permute + reshape + bmm."""

from ferrotorch._C import Tensor


def _parse(equation, n):
    eq = equation.replace(" ", "")
    if "->" in eq:
        lhs, out = eq.split("->")
    else:
        lhs = eq
        letters = lhs.replace(",", "")
        out = "".join(sorted(c for c in set(letters) if letters.count(c) == 1))
    ins = lhs.split(",")
    if len(ins) != n:
        raise ValueError(
            f"einsum(): {len(ins)} operand subscripts in {equation!r} but {n} operands given"
        )
    if "." in eq:
        raise RuntimeError("einsum(): ellipsis ('...') subscripts are not supported yet")
    return ins, out


def _diagonal(t, labels):
    """A repeated subscript ('ii') takes the diagonal: one dim whose stride is the sum of the
    repeated dims' strides (a view, no copy)."""
    if len(set(labels)) == len(labels):
        return t
    shape, stride = [], []
    for c in dict.fromkeys(labels):
        dims = [i for i, x in enumerate(labels) if x == c]
        shape.append(t.shape[dims[0]])
        stride.append(sum(t.stride(i) for i in dims))
    return t.as_strided(shape, stride, t.storage_offset())


def _sum_private(t, labels, keep):
    """Sums out labels that appear only in this operand and not in `keep`."""
    drop = [i for i, c in enumerate(labels) if c not in keep]
    if drop:
        t = t.sum(dim=tuple(drop))
        labels = "".join(c for c in labels if c in keep)
    return t, labels


def einsum(equation, *operands):
    if not operands or len(operands) > 2:
        raise RuntimeError("einsum(): ferrotorch supports one or two operands")
    if not all(isinstance(o, Tensor) for o in operands):
        raise TypeError("einsum(): operands must be tensors")
    ins, out = _parse(equation, len(operands))
    for labels, t in zip(ins, operands):
        if len(labels) != t.dim():
            raise RuntimeError(
                f"einsum(): the number of subscripts in the equation ({len(labels)}) does not "
                f"match the number of dimensions ({t.dim()}) for operand of shape {tuple(t.shape)}"
            )
        if len(set(labels)) != len(labels):
            sizes = {c: s for c, s in zip(labels, t.shape) if labels.count(c) > 1}
            for c, s in zip(labels, t.shape):
                if c in sizes and sizes[c] != s:
                    raise RuntimeError(
                        f"einsum(): subscript {c!r} is repeated for operand of shape "
                        f"{tuple(t.shape)} but the sizes don't match, {sizes[c]} != {s}"
                    )
    operands = [_diagonal(t, labels) for t, labels in zip(operands, ins)]
    ins = ["".join(dict.fromkeys(labels)) for labels in ins]
    if len(operands) == 1:
        t, labels = _sum_private(operands[0], ins[0], out)
        return t.permute([labels.index(c) for c in out]) if out else t
    (a, la), (b, lb) = _sum_private(operands[0], ins[0], out + ins[1]), _sum_private(
        operands[1], ins[1], out + ins[0]
    )
    batch = [c for c in out if c in la and c in lb]
    contract = [c for c in la if c in lb and c not in out]
    a_only = [c for c in la if c not in lb]
    b_only = [c for c in lb if c not in la]
    size = {}
    for labels, t in ((la, a), (lb, b)):
        for c, s in zip(labels, t.shape):
            if c in size and size[c] != s and 1 not in (size[c], s):
                raise RuntimeError(
                    f"einsum(): operands do not broadcast with remapped shapes: subscript {c!r} "
                    f"has sizes {size[c]} and {s}"
                )
            size[c] = max(size.get(c, s), s)

    def prod(cs):
        n = 1
        for c in cs:
            n *= size[c]
        return n

    a = a.permute([la.index(c) for c in batch + a_only + contract])
    b = b.permute([lb.index(c) for c in batch + contract + b_only])
    a = a.expand([size[c] for c in batch + a_only + contract])
    b = b.expand([size[c] for c in batch + contract + b_only])
    a = a.reshape(prod(batch), prod(a_only), prod(contract))
    b = b.reshape(prod(batch), prod(contract), prod(b_only))
    r = a.bmm(b).reshape([size[c] for c in batch + a_only + b_only])
    have = batch + a_only + b_only
    return r.permute([have.index(c) for c in out])
