"""``python -m ferrotorch``: the main job in one command, offline.

Trains the ``tiny`` GPT-2 preset with the byte tokenizer on the text of Python's documentation
topics (in every Python's standard library) for a short run, then prints the summary and a
sample generation. The run folder (checkpoint + loss curve) stays for
``python -m ferrotorch.gpt2 generate --checkpoint DIR``.
"""

import argparse
import os
import sys
import time

DESCRIPTION = """\
Train a tiny GPT-2 from scratch, offline, in a minute or two on a laptop CPU.

With no arguments this trains the `tiny` preset (4 layers, 128-wide) with the byte tokenizer
on the text of Python's documentation topics (pydoc_data, part of the standard library), prints
a progress bar, the validation loss and perplexity, a summary line and a sample generation,
and leaves a checkpoint and a loss-curve PNG in the run folder.

For everything else (other presets and configs, your own text, GPT-2's BPE tokenizer, more
steps, resuming, describing a config's cost, generating from a checkpoint or from real GPT-2
weights in the Hugging Face layout) use the full command line:

    python -m ferrotorch.gpt2 --help        (also installed as `ferrotorch-gpt2`)
"""


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m ferrotorch", description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=120,
                        help="optimizer steps of the short run (default: 120)")
    parser.add_argument("--out", default=None,
                        help="run folder (default: runs/<timestamp>)")
    parser.add_argument("--seed", type=int, default=123, help="random seed (default: 123)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv=None):
    from ferrotorch.gpt2.cli import main as gpt2_main

    args = build_parser().parse_args(argv)
    out = args.out or os.path.join("runs", time.strftime("%Y%m%d-%H%M%S"))
    train = ["train", "--config", "tiny", "--tokenizer", "bytes", "--steps", str(args.steps),
             "--seq-len", "64", "--batch-size", "8", "--lr", "2e-3", "--warmup", "10",
             "--eval-every", str(max(1, args.steps // 3)), "--eval-batches", "10",
             "--seed", str(args.seed), "--out", out]
    if args.no_progress:
        train.append("--no-progress")
    code = gpt2_main(train)
    if code != 0:
        return code
    print("\nsample (temperature 0.8, top-k 40):")
    sys.stdout.flush()
    code = gpt2_main(["generate", "--checkpoint", out, "--prompt", "The ", "--max-new-tokens",
                      "200", "--temperature", "0.8", "--top-k", "40", "--seed", str(args.seed)])
    if code == 0:
        print(f"\nnext: python -m ferrotorch.gpt2 generate --checkpoint {out} --prompt \"...\"")
    return code


if __name__ == "__main__":
    sys.exit(main())
