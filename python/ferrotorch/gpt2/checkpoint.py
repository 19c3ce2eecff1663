"""Training checkpoints of our own: ``out_dir/checkpoint/`` holds

- ``model.safetensors``: the model's state dict (``ferrotorch.save``),
- ``config.json``: the model config (loadable with ``get_config``),
- ``optimizer.safetensors``: the optimizer's state dict (``ferrotorch.save``),
- ``state.json``: the step, the data position, the random-number-generator states and the
  history, so that a resumed run continues with the same losses.

A save never destroys the previous checkpoint: the files are written into a temporary folder
next to it, which is renamed into place only when complete (the previous checkpoint is kept
as ``checkpoint.prev`` for the instant between the two renames, and loading falls back to it).
"""

import json
import os
import shutil

import ferrotorch as torch

__all__ = ["CHECKPOINT_FILES", "checkpoint_dir", "find_checkpoint", "load_checkpoint",
           "load_model", "save_checkpoint"]

CHECKPOINT_FILES = ("model.safetensors", "config.json", "optimizer.safetensors", "state.json")
_FORMAT = "ferrotorch-gpt2-checkpoint"
_VERSION = 1


def checkpoint_dir(out_dir):
    """The folder that holds ``out_dir``'s current checkpoint (it may not exist yet)."""
    return os.path.join(os.fspath(out_dir), "checkpoint")


def model_config(model):
    """The config dict of a GPTModel (or of any model that keeps one as ``cfg``/``config``)."""
    for name in ("cfg", "config"):
        cfg = getattr(model, name, None)
        if isinstance(cfg, dict):
            return dict(cfg)
    raise TypeError(
        f"cannot checkpoint a {type(model).__name__}: it has no config dict (`model.cfg`); "
        "build it with ferrotorch.gpt2.GPTModel(cfg)"
    )


def _fsync_dir(path):
    # Makes the renames durable; not every platform can open a folder (Windows cannot).
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())


def save_checkpoint(out_dir, model, optimizer, step, extra=None):
    """Writes a checkpoint of ``model`` and ``optimizer`` at ``step`` into
    ``out_dir/checkpoint/`` atomically; ``extra`` (JSON-able dict) is stored in ``state.json``.
    Returns the checkpoint folder.

    >>> import ferrotorch as torch, tempfile
    >>> from ferrotorch.gpt2 import GPTModel
    >>> model = GPTModel("tiny")
    >>> opt = torch.optim.AdamW(model.parameters())
    >>> path = save_checkpoint(tempfile.mkdtemp(), model, opt, step=0)
    """
    out_dir = os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    final = checkpoint_dir(out_dir)
    prev = final + ".prev"
    # leftovers of saves that were killed before their rename
    for name in os.listdir(out_dir):
        if name.startswith(".checkpoint.tmp-"):
            shutil.rmtree(os.path.join(out_dir, name), ignore_errors=True)
    tmp = os.path.join(out_dir, f".checkpoint.tmp-{os.getpid()}")
    os.makedirs(tmp)
    try:
        torch.save(model.state_dict(), os.path.join(tmp, "model.safetensors"))
        _write_json(os.path.join(tmp, "config.json"), model_config(model))
        if optimizer is not None:
            torch.save(optimizer.state_dict(), os.path.join(tmp, "optimizer.safetensors"))
        state = {"format": _FORMAT, "version": _VERSION, "step": int(step)}
        state.update(extra or {})
        # state.json last: a folder with it is complete
        _write_json(os.path.join(tmp, "state.json"), state)
        _fsync_dir(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if os.path.isdir(final):
        if os.path.exists(prev):
            shutil.rmtree(prev)
        os.rename(final, prev)
    os.rename(tmp, final)
    _fsync_dir(out_dir)
    shutil.rmtree(prev, ignore_errors=True)
    return final


def _complete(folder, need_optimizer=True):
    names = CHECKPOINT_FILES if need_optimizer else ("model.safetensors", "config.json")
    return all(os.path.isfile(os.path.join(folder, n)) for n in names)


def find_checkpoint(path, need_optimizer=True):
    """The checkpoint folder for ``path``: a run folder (holding ``checkpoint/``, or only
    ``checkpoint.prev/`` after a save was interrupted) or a checkpoint folder itself.
    Raises FileNotFoundError with the reason when there is none."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"checkpoint folder {path} does not exist")
    if not os.path.isdir(path):
        raise FileNotFoundError(
            f"{path} is a file; a checkpoint is a folder (a run's out dir or its checkpoint/)"
        )
    if _complete(path, need_optimizer):
        return path
    for name in ("checkpoint", "checkpoint.prev"):
        folder = os.path.join(path, name)
        if os.path.isdir(folder) and _complete(folder, need_optimizer):
            return folder
    folder = checkpoint_dir(path)
    if os.path.isdir(folder):
        names = CHECKPOINT_FILES if need_optimizer else CHECKPOINT_FILES[:2]
        missing = [n for n in names if not os.path.isfile(os.path.join(folder, n))]
        raise FileNotFoundError(f"checkpoint {folder} is incomplete (missing {', '.join(missing)})")
    raise FileNotFoundError(
        f"no checkpoint in {path} (expected {os.path.join(path, 'checkpoint')}/ with "
        f"{', '.join(CHECKPOINT_FILES)})"
    )


def _read_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (ValueError, RecursionError) as e:  # also bad UTF-8, too long ints, deep nesting
        raise ValueError(f"{path} is not valid JSON ({e}); the checkpoint may be corrupt") from None


def _load_tensors(path):
    try:
        return torch.load(path)
    except RuntimeError as e:
        raise ValueError(f"cannot read {path}: {e}") from None


def _check_config(saved, cfg, folder):
    keys = ("vocab_size", "context_length", "emb_dim", "n_heads", "n_layers", "qkv_bias",
            "tie_weights")
    diff = [f"{k}: checkpoint {saved.get(k)!r}, model {cfg.get(k)!r}" for k in keys
            if k in saved and k in cfg and saved[k] != cfg[k]]
    if diff:
        raise ValueError(
            f"checkpoint {folder} was saved from a different model config ({'; '.join(diff)})"
        )


def _read_config(folder):
    path = os.path.join(folder, "config.json")
    cfg = _read_json(path)
    if not isinstance(cfg, dict):
        raise ValueError(f"{path} does not hold a config dict")
    return cfg, path


def _load_weights(model, state_dict, where):
    if not isinstance(state_dict, dict) or not all(isinstance(k, str) for k in state_dict):
        raise ValueError(f"{where} does not hold a state dict (tensors by parameter name)")
    own = model.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing[:4])}" + (" ..." if len(missing) > 4 else ""))
        if unexpected:
            parts.append(f"unexpected {', '.join(unexpected[:4])}"
                         + (" ..." if len(unexpected) > 4 else ""))
        raise ValueError(f"weights in {where} do not match the model ({'; '.join(parts)})")
    for name, t in state_dict.items():
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"weights in {where} do not match the model: {name} is a "
                             f"{type(t).__name__}, not a tensor")
        if tuple(t.shape) != tuple(own[name].shape):
            raise ValueError(
                f"weights in {where} do not match the model: {name} has shape "
                f"{tuple(t.shape)} in the file, {tuple(own[name].shape)} in the model"
            )
        # another float precision is converted, as load_state_dict does; integer or bool
        # values in place of float weights mean the file is damaged
        if t.is_floating_point() != own[name].is_floating_point():
            raise ValueError(
                f"weights in {where} do not match the model: {name} is {t.dtype} in the file, "
                f"{own[name].dtype} in the model"
            )
    model.load_state_dict(state_dict)


def _check_optimizer_state(opt_state, optimizer, where):
    """Checks what ``optimizer.load_state_dict`` assumes of a state dict, so that a damaged
    file gives a ValueError instead of a broken optimizer or another exception type."""
    groups = opt_state.get("param_groups") if isinstance(opt_state, dict) else None
    state = opt_state.get("state") if isinstance(opt_state, dict) else None
    if not (isinstance(groups, list) and isinstance(state, dict)
            and all(isinstance(g, dict) and isinstance(g.get("params"), list) for g in groups)
            and all(type(i) is int for g in groups for i in g["params"])
            and all(isinstance(v, dict) for v in state.values())):
        raise ValueError(f"{where} does not hold an optimizer state dict")
    saved = [i for g in groups for i in g["params"]]
    params = [p for g in optimizer.param_groups for p in g["params"]]
    if len(saved) != len(params):
        raise ValueError(f"optimizer state in {where} does not fit: {len(saved)} parameters "
                         f"saved, {len(params)} in the optimizer")
    for i, p in zip(saved, params):
        for key, value in state.get(i, {}).items():
            # per-element state (Adam's moments, momentum) has the parameter's shape
            if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape != p.shape:
                raise ValueError(
                    f"optimizer state in {where} does not fit: {key} of parameter {i} has "
                    f"shape {tuple(value.shape)}, the parameter {tuple(p.shape)}"
                )


def load_checkpoint(out_dir, model, optimizer=None):
    """Loads the checkpoint of ``out_dir`` (a run folder or a checkpoint folder) into ``model``
    and, when given, ``optimizer``; returns the contents of ``state.json`` (``step``, ...).

    Raises FileNotFoundError when there is no complete checkpoint and ValueError when the files
    are corrupt or do not fit ``model``, each with a one-line message.
    """
    folder = find_checkpoint(out_dir, need_optimizer=optimizer is not None)
    state_path = os.path.join(folder, "state.json")
    state = _read_json(state_path) if os.path.isfile(state_path) else {"step": 0}
    if not isinstance(state, dict) or not isinstance(state.get("step"), int):
        raise ValueError(f"{state_path} has no step number; the checkpoint may be corrupt")
    saved_cfg, _ = _read_config(folder)
    try:
        cfg = model_config(model)
    except TypeError:
        cfg = None
    if cfg is not None:
        _check_config(saved_cfg, cfg, folder)
    weights = os.path.join(folder, "model.safetensors")
    _load_weights(model, _load_tensors(weights), weights)
    if optimizer is not None:
        opt_path = os.path.join(folder, "optimizer.safetensors")
        opt_state = _load_tensors(opt_path)
        _check_optimizer_state(opt_state, optimizer, opt_path)
        try:
            optimizer.load_state_dict(opt_state)
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(f"optimizer state in {opt_path} does not fit: {e}") from None
    return state


def load_model(path):
    """Builds a GPTModel from a checkpoint folder (a run folder or its ``checkpoint/``) and
    returns ``(model, state)``; the model is in eval mode."""
    from ferrotorch.gpt2.config import get_config
    from ferrotorch.gpt2.model import GPTModel

    folder = find_checkpoint(path, need_optimizer=False)
    saved_cfg, config_path = _read_config(folder)
    try:
        cfg = get_config(saved_cfg)
    except ValueError as e:
        raise ValueError(f"{config_path} does not hold a valid config: {e}") from None
    model = GPTModel(cfg)
    state = load_checkpoint(folder, model)
    return model.eval(), state
