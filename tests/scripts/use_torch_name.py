"""Uses one torch name, given on the command line, the way scripts do.

usage: use_torch_name.py attribute|import|from-import NAME   (NAME relative to torch)
"""

import importlib
import sys

import torch

mode, name = sys.argv[1], sys.argv[2]
if mode == "attribute":
    value = torch
    for part in name.split("."):
        value = getattr(value, part)
elif mode == "import":
    importlib.import_module(f"torch.{name}")
else:
    parent, _, leaf = f"torch.{name}".rpartition(".")
    exec(f"from {parent} import {leaf}")
print("resolved", name)
