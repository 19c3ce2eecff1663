"""`ferrotorch.device`: where a tensor lives. ``"cpu"`` is the native backend (ferrotorch's own
kernels); ``"cuda"``, ``"mps"`` and ``"torch:cpu"`` (torch's CPU, which runs the torch backend
without a GPU) are the torch backend, where torch's kernels compute behind the same API."""


class device:
    """A device description, compared and printed like torch's.

    >>> device("cpu")
    device(type='cpu')
    """

    __slots__ = ("type", "index")

    def __init__(self, type, index=None):
        if isinstance(type, device):
            type, index = type.type, type.index
        type = str(type)
        if type in ("torch:cpu", "torch:cpu:0"):  # torch's CPU, through the torch backend
            type = "torch:cpu"
            if index not in (None, 0):
                raise RuntimeError(f"torch:cpu has no device {index}")
            index = None
        elif ":" in type:
            if index is not None:
                raise ValueError(
                    f"device string {type!r} already has an index; got index={index}"
                )
            type, _, idx = type.partition(":")
            if not idx.isdigit():
                raise RuntimeError(f"Invalid device string: '{type}:{idx}'")
            index = int(idx)
        if type not in ("cpu", "torch:cpu", "cuda", "mps", "meta"):
            raise RuntimeError(
                "Expected one of cpu, torch:cpu, cuda, mps, meta device type at start of device "
                f"string: {type}"
            )
        self.type = type
        self.index = index

    def __repr__(self):
        if self.index is None:
            return f"device(type='{self.type}')"
        return f"device(type='{self.type}', index={self.index})"

    def __str__(self):
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __eq__(self, other):
        if isinstance(other, str):
            other = device(other)
        if not isinstance(other, device):
            return NotImplemented
        return self.type == other.type and self.index == other.index

    def __hash__(self):
        return hash((self.type, self.index))


CPU = device("cpu")
