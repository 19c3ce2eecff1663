"""The command line of the GPT-2 runner: ``ferrotorch-gpt2`` / ``python -m ferrotorch.gpt2``.

    ferrotorch-gpt2 info --config gpt2-small --batch-size 8 --seq-len 1024
    ferrotorch-gpt2 train --config tiny --steps 500 --out runs/tiny      # default corpus
    ferrotorch-gpt2 generate --checkpoint runs/tiny --prompt "The " --top-k 40

A user error (a missing or corrupt file, an unknown preset, a bad number, a prompt longer than
the context, weights that do not fit the config) prints one line ``error: ...`` on stderr and
exits with 2 (a bad command line) or 1 (a failure while running); ``--debug`` shows the
traceback instead.
"""

import argparse
import json
import math
import os
import sys
import time

__all__ = ["main", "build_parser"]

DEVICES = ("cpu", "cuda", "mps", "torch:cpu")

# train's defaults, kept apart from argparse so that `--resume` can tell what was given
TRAIN_DEFAULTS = {
    "config": "tiny", "data": None, "tokenizer": "bytes", "steps": None, "epochs": None,
    "batch_size": 8, "seq_len": None, "stride": None, "lr": 4e-4, "weight_decay": 0.1,
    "warmup": None, "min_lr_ratio": 0.1, "grad_clip": 1.0, "accum": 1, "eval_every": 50,
    "eval_batches": 20, "val_ratio": 0.1, "seed": 123, "prompt": "The ", "sample_tokens": 40,
}
DEFAULT_STEPS = 200


class UsageError(Exception):
    """A bad command line: exit code 2."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (``error: ...``, exit code 2) instead of usage + error."""

    def error(self, message):
        raise UsageError(f"{message} (see `{self.prog} --help`)")


# *** argument types: bad numbers are usage errors ***

def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _non_negative_int(text):
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def _number(low=None, high=None, low_open=False):
    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        ok = math.isfinite(value)
        if ok and low is not None:
            ok = value > low if low_open else value >= low
        if ok and high is not None:
            ok = value <= high
        if not ok:
            lo = "" if low is None else ("(" if low_open else "[") + f"{low:g}, "
            hi = "inf)" if high is None else f"{high:g}]"
            raise argparse.ArgumentTypeError(f"expected a number in {lo}{hi}, got {text!r}")
        return value
    return parse


def _add_common(p):
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                   help="show Python tracebacks for errors")


def _add_device(p):
    p.add_argument("--device", default="cpu",
                   help="where to run: cpu (ferrotorch's kernels), cuda[:N] or mps (torch's "
                        "kernels behind ferrotorch), torch:cpu (default: cpu)")


def build_parser():
    """The ``argparse`` parser of ``ferrotorch-gpt2`` (subcommands info, train, generate)."""
    parser = _Parser(
        prog="ferrotorch-gpt2",
        description="Build, explain, pretrain and sample GPT-2 style models with ferrotorch.",
        epilog="Run `ferrotorch-gpt2 COMMAND --help` for the options of a command.")
    _add_common(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("info", help="what a config costs: parameters, FLOPs, memory",
                       description="Print the describe() table of a config.")
    p.add_argument("--config", default="gpt2-small",
                   help="preset name or config .json file (default: gpt2-small)")
    p.add_argument("--batch-size", type=_positive_int, default=1,
                   help="batch size for the activation memory (default: 1)")
    p.add_argument("--seq-len", type=_positive_int, default=None,
                   help="sequence length (default: the context length)")
    p.add_argument("--json", action="store_true", help="print the numbers as JSON")
    _add_common(p)

    p = sub.add_parser(
        "train", help="pretrain on a text file or folder (default: Python's doc topics)",
        description="Pretrain a model on next-token prediction. Without --data it trains on "
                    "the text of Python's documentation topics (pydoc_data, offline). The run "
                    "folder gets checkpoint/ (weights, config, optimizer, state) and loss.png.")
    p.add_argument("--config", help="preset name or config .json (default: tiny); its "
                   "vocab_size is set to the tokenizer's")
    p.add_argument("--data", help="a text file, or a folder of .txt/.md files")
    p.add_argument("--tokenizer", choices=("bytes", "gpt2"),
                   help="bytes (no files needed) or gpt2 (BPE via tiktoken) (default: bytes)")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--steps", type=_positive_int,
                        help=f"optimizer steps (default: {DEFAULT_STEPS})")
    length.add_argument("--epochs", type=_positive_int, help="passes over the training data")
    p.add_argument("--batch-size", type=_positive_int, help="sequences per batch (default: 8)")
    p.add_argument("--seq-len", type=_positive_int,
                   help="tokens per training sequence (default: the context length)")
    p.add_argument("--stride", type=_positive_int,
                   help="step between training windows (default: --seq-len)")
    p.add_argument("--lr", type=_number(0, low_open=True), help="peak learning rate "
                   "(default: 4e-4)")
    p.add_argument("--weight-decay", type=_number(0), help="AdamW weight decay on weight "
                   "matrices (default: 0.1)")
    p.add_argument("--warmup", type=_non_negative_int,
                   help="linear warmup steps (default: 5%% of the steps)")
    p.add_argument("--min-lr-ratio", type=_number(0, 1),
                   help="final lr of the cosine decay, as a fraction of --lr (default: 0.1)")
    p.add_argument("--grad-clip", type=_number(0), help="clip the gradient norm to this; "
                   "0 turns clipping off (default: 1.0)")
    p.add_argument("--accum", type=_positive_int,
                   help="batches accumulated per optimizer step (default: 1)")
    p.add_argument("--eval-every", type=_positive_int,
                   help="steps between validations and checkpoints (default: 50)")
    p.add_argument("--eval-batches", type=_positive_int,
                   help="validation batches per evaluation (default: 20)")
    p.add_argument("--val-ratio", type=_number(0, 1),
                   help="fraction of the text held out for validation (default: 0.1)")
    p.add_argument("--seed", type=int, help="random seed: same seed, same losses (default: 123)")
    p.add_argument("--prompt", help="prompt of the sample printed at each evaluation "
                   "(default: 'The '; '' turns samples off)")
    p.add_argument("--sample-tokens", type=_non_negative_int,
                   help="length of those samples in tokens (default: 40)")
    p.add_argument("--out", help="run folder (default: runs/<timestamp>)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run saved in --out (same data order, same losses); "
                   "options not given are those of the saved run, the model config its own")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_device(p)
    _add_common(p)

    p = sub.add_parser("generate", help="continue a prompt, streaming the text",
                       description="Generate text from a trained checkpoint or GPT-2 weights in "
                                   "the Hugging Face layout.")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", help="a run folder (or its checkpoint/) from train")
    source.add_argument("--hf", help="a Hugging Face GPT-2 folder (config.json + "
                        "model.safetensors) or a model.safetensors file")
    p.add_argument("--config", help="config for a bare --hf model.safetensors file")
    p.add_argument("--tokenizer", choices=("bytes", "gpt2"),
                   help="default: the checkpoint's tokenizer; gpt2 for --hf")
    p.add_argument("--prompt", default="", help="the text to continue (default: start from "
                   "end-of-text)")
    p.add_argument("--max-new-tokens", type=_non_negative_int, default=50,
                   help="tokens to generate (default: 50)")
    p.add_argument("--temperature", type=_number(0), default=1.0,
                   help="sampling temperature; 0 is greedy (default: 1.0)")
    p.add_argument("--top-k", type=_positive_int, default=None,
                   help="sample among the k most likely tokens (1 is greedy)")
    p.add_argument("--top-p", type=_number(0, 1, low_open=True), default=None,
                   help="nucleus sampling: the smallest set with this probability")
    p.add_argument("--seed", type=int, default=None, help="seed for reproducible samples")
    _add_device(p)
    _add_common(p)
    return parser


# *** helpers ***

def _check_device(device):
    """The device to run on: "cpu" (ferrotorch's kernels), "cuda[:N]" or "mps" (torch's
    kernels behind ferrotorch), "torch:cpu" (torch's CPU kernels)."""
    import ferrotorch

    try:
        dev = ferrotorch.device(device)
    except (RuntimeError, ValueError):
        raise UsageError(f"--device {device}: expected one of {', '.join(DEVICES)} (cuda:N for "
                         "another GPU)") from None
    if dev.type == "cuda" and not ferrotorch.cuda.is_available():
        raise UsageError(f"--device {device}: no CUDA GPU is available here (torch sees none); "
                         "use --device cpu")
    if dev.type == "mps" and not ferrotorch.backends.mps.is_available():
        raise UsageError(f"--device {device}: MPS is not available here; use --device cpu")
    return str(dev)


def _get_config(spec, **overrides):
    from ferrotorch.gpt2.config import PRESETS, get_config

    if not isinstance(spec, str):
        return get_config(spec, **overrides)
    if spec not in PRESETS and not os.path.exists(spec) and spec.lower().endswith(".json"):
        raise FileNotFoundError(f"config file {spec} does not exist")
    try:
        return get_config(spec, **overrides)
    except ValueError as e:
        if spec not in PRESETS and not os.path.isfile(spec):  # an unknown preset name
            raise UsageError(str(e)) from None
        raise


def _get_tokenizer(name):
    from ferrotorch.gpt2.tokenizer import get_tokenizer

    return get_tokenizer(name)


def _fmt_loss(value):
    return "n/a" if value is None else f"{value:.4f}"


# *** info ***

def cmd_info(args):
    from ferrotorch.gpt2.config import describe

    cfg = _get_config(args.config)
    if args.seq_len is not None and args.seq_len > cfg["context_length"]:
        raise UsageError(f"--seq-len {args.seq_len} is longer than the context length "
                         f"{cfg['context_length']}")
    desc = describe(cfg, batch_size=args.batch_size, seq_len=args.seq_len)
    if args.json:
        print(json.dumps(desc.as_dict(), indent=1))
    else:
        print(desc)
    return 0


# *** train ***

def _train_options(args):
    """The options of this run: defaults < the saved run's options (--resume) < the command
    line."""
    given = {k: getattr(args, k) for k in TRAIN_DEFAULTS if getattr(args, k) is not None}
    options = dict(TRAIN_DEFAULTS)
    state = None
    if args.resume:
        if args.out is None:
            raise UsageError("--resume needs --out, the folder of the run to continue")
        from ferrotorch.gpt2.checkpoint import find_checkpoint

        folder = find_checkpoint(args.out)
        with open(os.path.join(folder, "state.json"), encoding="utf-8") as f:
            try:
                state = json.load(f)
            except json.JSONDecodeError as e:
                raise ValueError(f"{folder}/state.json is not valid JSON ({e})") from None
        saved = state.get("cli") if isinstance(state, dict) else None
        if not isinstance(saved, dict):
            raise ValueError(f"the checkpoint in {folder} was not written by `ferrotorch-gpt2 "
                             "train`: resume it from Python with train(..., resume=True)")
        options.update({k: v for k, v in saved.items() if k in options})
        if "steps" in given or "epochs" in given:
            options["steps"] = options["epochs"] = None
    options.update(given)
    if options["steps"] is None and options["epochs"] is None:
        options["steps"] = DEFAULT_STEPS
    return options, state


def cmd_train(args):
    args.device = _check_device(args.device)
    rank, world = _join_torchrun(args.device)
    try:
        return _train(args, rank, world)
    finally:
        if world > 1:
            from ferrotorch import distributed as dist

            dist.destroy_process_group()


def _join_torchrun(device="cpu"):
    """(rank, world size): joins the process group when started by torchrun with several
    processes (its environment: RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT)."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
    except ValueError:
        raise UsageError(f"WORLD_SIZE={os.environ.get('WORLD_SIZE')!r} and "
                         f"RANK={os.environ.get('RANK')!r} must be integers (torchrun sets "
                         "them)") from None
    if world <= 1:
        return 0, 1
    from ferrotorch import distributed as dist

    if not dist.is_available():
        raise UsageError(f"WORLD_SIZE={world} asks for data-parallel training, which needs "
                         "torch's distributed package: `pip install torch`")
    # nccl between GPUs, gloo otherwise; each process takes the GPU of its local rank
    dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return rank, world


def _rank_device(device):
    """Under torchrun each process takes the GPU of its local rank (cuda:LOCAL_RANK)."""
    if device == "cuda" and "LOCAL_RANK" in os.environ:
        return f"cuda:{int(os.environ['LOCAL_RANK'])}"
    return device


def _train(args, rank, world):
    import ferrotorch as torch
    from ferrotorch.gpt2.checkpoint import find_checkpoint
    from ferrotorch.gpt2.data import load_text, make_loaders
    from ferrotorch.gpt2.model import GPTModel
    from ferrotorch.gpt2.train import train

    o, state = _train_options(args)
    out = args.out or os.path.join("runs", time.strftime("%Y%m%d-%H%M%S"))
    if world > 1:  # rank 0's clock names the run folder of every rank
        from ferrotorch import distributed as dist

        shared = [out]
        dist.broadcast_object_list(shared, src=0)
        out = shared[0]
    say = print if rank == 0 else (lambda *a, **k: None)
    if not args.resume:
        try:
            find_checkpoint(out)
        except FileNotFoundError:
            pass
        else:
            raise UsageError(f"{out} already holds a checkpoint: add --resume to continue it, "
                             "or choose another --out")

    tokenizer = _get_tokenizer(o["tokenizer"])
    if args.resume:
        from ferrotorch.gpt2.checkpoint import _read_json

        cfg = _get_config(_read_json(os.path.join(find_checkpoint(out), "config.json")))
    else:
        cfg = _get_config(o["config"], vocab_size=tokenizer.n_vocab)
    seq_len = o["seq_len"] or cfg["context_length"]
    if seq_len > cfg["context_length"]:
        raise UsageError(f"--seq-len {seq_len} is longer than the model's context length "
                         f"{cfg['context_length']}")
    text = load_text(o["data"])
    train_loader, val_loader = make_loaders(
        text, tokenizer, seq_len, stride=o["stride"], batch_size=o["batch_size"],
        val_ratio=o["val_ratio"], seed=o["seed"])
    if o["warmup"] is None:  # 5% of the run; saved, so that a resumed run keeps it
        total = o["steps"] or (o["epochs"] * len(train_loader)) // o["accum"]
        o["warmup"] = total // 20
    torch.manual_seed(o["seed"])
    model = GPTModel(cfg).to(_rank_device(args.device))
    n_params = sum(p.numel() for p in model.parameters())
    source = o["data"] or "Python's documentation topics (pydoc_data)"
    say(f"model: {o['config']} ({n_params:,} parameters, context {cfg['context_length']}, "
          f"{cfg['n_layers']} layers, emb {cfg['emb_dim']}); tokenizer: {tokenizer.name}")
    say(f"data: {source}: {len(text):,} characters, {len(train_loader.dataset):,} training "
          f"windows of {seq_len} tokens"
          + (f", {len(val_loader.dataset):,} validation" if val_loader is not None else ""))
    say(f"out: {out}")
    if world > 1:
        backend = "nccl" if args.device.startswith("cuda") else "gloo"
        say(f"data parallel: {world} processes ({backend}), each on 1/{world} of every batch")
    sys.stdout.flush()

    cli_state = {k: o[k] for k in TRAIN_DEFAULTS}
    history = train(
        model, train_loader, val_loader, steps=o["steps"], epochs=o["epochs"], lr=o["lr"],
        weight_decay=o["weight_decay"], warmup=o["warmup"], min_lr_ratio=o["min_lr_ratio"],
        grad_clip=o["grad_clip"] or None, accum=o["accum"], eval_every=o["eval_every"],
        eval_batches=o["eval_batches"], out_dir=out, resume=args.resume, seed=o["seed"],
        tokenizer=tokenizer, sample_prompt=o["prompt"] or None, progress=not args.no_progress,
        sample_tokens=o["sample_tokens"], extra_state={"cli": cli_state},
        log=print if args.no_progress else None)
    steps = history["steps"][-1] if history["steps"] else 0
    train_loss = next((v for v in reversed(history["train_loss"]) if v is not None), None)
    val_loss = history["val_loss"][-1] if history["val_loss"] else None
    ppl = history["val_ppl"][-1] if history["val_ppl"] else None
    tok_s = history["tokens_per_s"][-1] if history["tokens_per_s"] else 0.0
    say(f"done: {steps} steps, train loss {_fmt_loss(train_loss)}, val loss "
          f"{_fmt_loss(val_loss)}, val ppl {'n/a' if ppl is None else f'{ppl:.2f}'}, "
          f"{tok_s:,.0f} tokens/s, {history['time_s']:.1f} s, out {out}")
    return 0


# *** generate ***

def _load_for_generation(args):
    from ferrotorch.gpt2.checkpoint import load_model

    if args.checkpoint is not None:
        model, state = load_model(args.checkpoint)
        name = args.tokenizer or state.get("tokenizer") or (
            "bytes" if model.cfg["vocab_size"] <= 257 else "gpt2")
        return model, name
    from ferrotorch.gpt2.model import GPTModel

    config = args.config
    if config is not None and not os.path.exists(config):
        config = _get_config(config)  # a preset name: a clear usage error when unknown
    model = GPTModel.from_hf(args.hf, config=config)
    return model.eval(), args.tokenizer or "gpt2"


def cmd_generate(args):
    from ferrotorch.gpt2.generate import generate_text

    device = _check_device(args.device)
    model, tokenizer_name = _load_for_generation(args)
    model = model.to(device)
    tokenizer = _get_tokenizer(tokenizer_name)
    if tokenizer.n_vocab > model.cfg["vocab_size"]:
        raise ValueError(f"the {tokenizer.name} tokenizer has {tokenizer.n_vocab} tokens but "
                         f"the model only {model.cfg['vocab_size']}: pick the tokenizer the "
                         "model was trained with (--tokenizer)")
    n_prompt = len(tokenizer.encode(args.prompt))
    context = model.cfg["context_length"]
    if n_prompt > context:
        raise UsageError(f"the prompt is {n_prompt} tokens long, more than the model's context "
                         f"length of {context}: shorten it")

    def show(piece):
        sys.stdout.write(piece)
        sys.stdout.flush()

    show(args.prompt)
    generate_text(model, tokenizer, args.prompt, max_new_tokens=args.max_new_tokens,
                  temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                  seed=args.seed, on_text=show)
    show("\n")
    return 0


COMMANDS = {"info": cmd_info, "train": cmd_train, "generate": cmd_generate}


def _one_line(error):
    text = " ".join(str(error).split())
    if isinstance(error, KeyError):
        text = f"missing {text}"
    return text or type(error).__name__


def main(argv=None):
    """Runs the command line; returns the exit code (0 ok, 1 runtime error, 2 usage error)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        args = build_parser().parse_args(argv)
        if args.command is None:
            build_parser().print_help()
            return 2
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        if debug:
            raise
        print("error: interrupted", file=sys.stderr)
        return 130
    except UsageError as e:
        if debug:
            raise
        print(f"error: {_one_line(e)}", file=sys.stderr)
        return 2
    except (OSError, ValueError, RuntimeError, KeyError, FloatingPointError) as e:
        if debug:
            raise
        print(f"error: {_one_line(e)}", file=sys.stderr)
        return 1
    except Exception as e:  # a bug: still one line, with the way to the traceback
        if debug:
            raise
        print(f"error: internal error ({type(e).__name__}: {_one_line(e)}); rerun with --debug "
              "for the traceback", file=sys.stderr)
        return 1
