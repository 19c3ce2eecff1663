"""Writes a seed corpus for fuzz_load.py: the harness's valid seed files as raw-mode inputs
(the file followed by one 0 byte, which selects raw mode).

    python tests/fuzz/make_corpus.py corpus/load
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def main(folder):
    from fuzz_load import SEEDS

    os.makedirs(folder, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(folder, f"seed-{name}"), "wb") as f:
            f.write(data + b"\x00")
    return len(SEEDS)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    print(f"wrote {main(sys.argv[1])} seeds to {sys.argv[1]}")
