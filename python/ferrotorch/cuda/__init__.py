"""``ferrotorch.cuda``: what scripts ask about the GPU. This build computes on the CPU only,
so no CUDA device is available; the seeding calls are accepted and do nothing, as torch's do
on a machine without a GPU.

>>> import ferrotorch as torch
>>> torch.cuda.is_available()
False
"""

__all__ = ["is_available", "device_count", "manual_seed", "manual_seed_all", "synchronize",
           "is_bf16_supported", "empty_cache"]


def is_available():
    """Whether a CUDA device can be used (never, in this build)."""
    return False


def device_count():
    """The number of CUDA devices (0 in this build)."""
    return 0


def manual_seed(seed):
    """Seeds the current GPU's generator: nothing to seed without one."""


def manual_seed_all(seed):
    """Seeds every GPU's generator: nothing to seed without one."""


def synchronize(device=None):
    """Waits for GPU work: there is none."""


def empty_cache():
    """Releases cached GPU memory: there is none."""


def is_bf16_supported(including_emulation=True):
    """bfloat16 on the GPU: no GPU, so no."""
    return False
