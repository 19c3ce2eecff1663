"""``ferrotorch.cuda``: the GPU, through the torch backend.

Tensors on ``"cuda"`` keep their elements in torch CUDA tensors and run torch's CUDA kernels
behind ferrotorch's API and autograd tape, so what CUDA is available is what the installed torch
sees. Random numbers for tensors on any device are drawn by ferrotorch's generator (the same
values as on the CPU for the same seed), so the seeding calls here have nothing of their own to
seed: ``ferrotorch.manual_seed`` covers every device.

>>> import ferrotorch as torch
>>> torch.cuda.is_available() in (True, False)
True
"""

__all__ = ["is_available", "device_count", "manual_seed", "manual_seed_all", "synchronize",
           "is_bf16_supported", "empty_cache", "current_device", "set_device"]


def _torch_cuda():
    """torch.cuda, or None when torch is not installed (then there is no GPU for us)."""
    try:
        from ferrotorch._interop import real_torch

        return real_torch().cuda
    except ImportError:
        return None


def is_available():
    """Whether a CUDA device can be used (torch is installed and sees a GPU)."""
    cuda = _torch_cuda()
    return bool(cuda is not None and cuda.is_available())


def device_count():
    """The number of CUDA devices torch sees."""
    cuda = _torch_cuda()
    return cuda.device_count() if cuda is not None and cuda.is_available() else 0


def current_device():
    cuda = _torch_cuda()
    if cuda is None or not cuda.is_available():
        raise RuntimeError("current_device(): no CUDA GPU is available")
    return cuda.current_device()


def set_device(device):
    """Makes ``device`` the current GPU (what ``"cuda"`` without an index means)."""
    cuda = _torch_cuda()
    if cuda is None or not cuda.is_available():
        raise RuntimeError(f"set_device({device!r}): no CUDA GPU is available")
    cuda.set_device(str(device) if not isinstance(device, int) else device)


def manual_seed(seed):
    """Accepted for torch scripts: device tensors draw from ferrotorch's own generator, which
    ``ferrotorch.manual_seed`` seeds."""


def manual_seed_all(seed):
    """Accepted for torch scripts (see ``manual_seed``)."""


def synchronize(device=None):
    """Waits until the GPU has finished the work queued so far (nothing to wait for without
    one)."""
    cuda = _torch_cuda()
    if cuda is not None and cuda.is_available():
        cuda.synchronize(device if device is None or isinstance(device, int) else str(device))


def empty_cache():
    """Releases the GPU memory torch's caching allocator holds unused."""
    cuda = _torch_cuda()
    if cuda is not None and cuda.is_available():
        cuda.empty_cache()


def is_bf16_supported(including_emulation=True):
    """Whether the GPU computes in bfloat16 (False without one)."""
    cuda = _torch_cuda()
    return bool(cuda is not None and cuda.is_available()
                and cuda.is_bf16_supported(including_emulation))


from ferrotorch.cuda import amp  # noqa: E402,F401  (torch.cuda.amp.autocast)
