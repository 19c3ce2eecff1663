"""Installs and uninstalls the drop-in in a fresh process; prints what `torch` resolved to, as
JSON, for tests/test_compat.py."""

import json
import sys

import ferrotorch
import ferrotorch.compat as compat

report = {}
compat.install()
compat.install()  # a second install is a no-op
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import torch.optim as optim  # noqa: E402
from torch.optim.lr_scheduler import StepLR  # noqa: E402
from torch.utils.data import DataLoader, Dataset  # noqa: E402

report["installed"] = {
    "torch": torch is ferrotorch,
    "nn": nn is ferrotorch.nn,
    "F": F is ferrotorch.nn.functional,
    "optim": optim is ferrotorch.optim,
    "StepLR": StepLR is ferrotorch.optim.lr_scheduler.StepLR,
    "DataLoader": DataLoader is ferrotorch.utils.data.DataLoader,
    "Dataset": Dataset is ferrotorch.utils.data.Dataset,
    "autograd": torch.autograd is ferrotorch.autograd,
    "testing": torch.testing.assert_close is ferrotorch.testing.assert_close,
    "Tensor": torch.Tensor is ferrotorch.Tensor,
    "own_spec": ferrotorch.nn.__spec__.name == "ferrotorch.nn",
}
compat.uninstall()
report["uninstalled_clean"] = not any(n == "torch" or n.startswith("torch.") for n in sys.modules)
report["hook_removed"] = "__getattr__" not in vars(ferrotorch)
import torch as real  # noqa: E402

report["real_version"] = real.__version__
report["real_is_other"] = real.Tensor is not ferrotorch.Tensor
try:
    compat.install()
    report["refused"] = None
except RuntimeError as e:
    report["refused"] = str(e)
print(json.dumps(report))
