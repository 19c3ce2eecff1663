"""Neural-network building blocks (``ferrotorch.nn``). Modules, layers and losses arrive with the
nn issue; ``nn.functional`` already holds the functions the tensor core provides."""

from ferrotorch.nn import functional  # noqa: F401
