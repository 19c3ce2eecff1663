"""Apple's Metal GPU, through the torch backend (``device="mps"``)."""


def is_available():
    """Whether torch is installed and can use an MPS device here."""
    try:
        from ferrotorch._interop import real_torch

        return bool(real_torch().backends.mps.is_available())
    except ImportError:
        return False


def is_built():
    """Whether the installed torch was built with MPS support."""
    try:
        from ferrotorch._interop import real_torch

        return bool(real_torch().backends.mps.is_built())
    except ImportError:
        return False
