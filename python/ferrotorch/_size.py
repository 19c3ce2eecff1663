"""`ferrotorch.Size`: the shape of a tensor, a tuple that prints like torch's."""


class Size(tuple):
    """A tuple of ints; ``Size([2, 3]) == (2, 3)``.

    >>> Size([2, 3])
    torch.Size([2, 3])
    """

    def __new__(cls, sizes=()):
        return super().__new__(cls, (int(s) for s in sizes))

    def __repr__(self):
        return f"torch.Size([{', '.join(str(s) for s in self)}])"

    __str__ = __repr__

    def numel(self):
        """Number of elements of a tensor of this shape."""
        n = 1
        for s in self:
            n *= s
        return n

    def __getitem__(self, key):
        out = super().__getitem__(key)
        return Size(out) if isinstance(key, slice) else out

    def __add__(self, other):
        return Size(tuple(self) + tuple(other))

    def __reduce__(self):
        return (Size, (tuple(self),))
