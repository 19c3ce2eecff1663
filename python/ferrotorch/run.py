"""``python -m ferrotorch.run script.py [args ...]``: runs an unmodified PyTorch script on
ferrotorch.

The drop-in (:mod:`ferrotorch.compat`) is installed first, so the script's ``import torch``
gives ferrotorch; then the script runs as ``__main__`` with ``sys.argv = [script, *args]``, as
``python script.py args`` would, and its exit code is this command's. ``-m module`` runs a
module instead of a file.
"""

import os
import runpy
import sys

from ferrotorch import compat

USAGE = (
    "usage: python -m ferrotorch.run script.py [args ...]\n"
    "       python -m ferrotorch.run -m module [args ...]"
)


def main(argv=None):
    """Runs the script named in ``argv`` (default ``sys.argv[1:]``) under the drop-in."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    if not argv or (argv[0] == "-m" and len(argv) < 2):
        print(USAGE, file=sys.stderr)
        return 2
    if argv[0] == "-m":
        compat.install()
        sys.argv = [argv[1], *argv[2:]]
        sys.path[0] = os.getcwd()
        runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
        return 0
    path = argv[0]
    if not os.path.exists(path):
        print(f"ferrotorch.run: can't open file {path!r}: no such file", file=sys.stderr)
        return 2
    compat.install()
    sys.argv = [path, *argv[1:]]
    # As `python script.py` does: the script's folder comes first on the import path.
    sys.path[0] = os.path.dirname(os.path.abspath(path))
    runpy.run_path(path, run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main())
