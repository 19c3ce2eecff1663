"""GPT-2 configurations: the book's config dict, presets, validation and ``describe``.

A config is a plain dict in the style of Raschka's "LLMs from scratch":

>>> from ferrotorch.gpt2.config import get_config
>>> cfg = get_config("gpt2-small")
>>> cfg["emb_dim"], cfg["n_layers"], cfg["tie_weights"]
(768, 12, False)
"""

import difflib
import json
import os

__all__ = [
    "GPT_CONFIG_124M", "PRESETS", "REQUIRED_KEYS", "OPTIONAL_KEYS", "DTYPES",
    "get_config", "validate_config", "describe", "Description",
]

GPT_CONFIG_124M = {
    "vocab_size": 50257,     # GPT-2 BPE vocabulary
    "context_length": 1024,  # positions the model can see
    "emb_dim": 768,          # embedding (model) width
    "n_heads": 12,           # attention heads
    "n_layers": 12,          # transformer blocks
    "drop_rate": 0.1,        # dropout after embeddings, attention weights and residual branches
    "qkv_bias": False,       # the book trains without query/key/value biases; real GPT-2 has them
}


def _preset(emb_dim, n_layers, n_heads, context_length=1024, vocab_size=50257):
    return dict(GPT_CONFIG_124M, emb_dim=emb_dim, n_layers=n_layers, n_heads=n_heads,
                context_length=context_length, vocab_size=vocab_size)


PRESETS = {
    "gpt2-small": dict(GPT_CONFIG_124M),     # 124M
    "gpt2-medium": _preset(1024, 24, 16),    # 355M
    "gpt2-large": _preset(1280, 36, 20),     # 774M
    "gpt2-xl": _preset(1600, 48, 25),        # 1558M
    # small enough to train for a few hundred steps on 2 CPU cores in minutes
    "tiny": _preset(128, 4, 4, context_length=128),
    "mini": _preset(256, 6, 8, context_length=256),
}

REQUIRED_KEYS = tuple(GPT_CONFIG_124M)
OPTIONAL_KEYS = {"tie_weights": False, "dtype": "float32"}
# dtype name -> bytes per element
DTYPES = {"float32": 4, "float64": 8, "bfloat16": 2, "float16": 2}
_INT_KEYS = ("vocab_size", "context_length", "emb_dim", "n_heads", "n_layers")
_BOOL_KEYS = ("qkv_bias", "tie_weights")


def _suggest(word, choices):
    close = difflib.get_close_matches(str(word), list(choices), n=1)
    return f"did you mean {close[0]!r}? " if close else ""


def _dtype_name(dtype):
    # accept "float32", "torch.float32" and dtype objects (ferrotorch or torch)
    return str(dtype).replace("torch.", "").replace("ferrotorch.", "")


def validate_config(cfg):
    """A checked copy of ``cfg`` with the optional keys filled in; a ``ValueError`` with one line
    naming the key and the fix otherwise.

    >>> validate_config(dict(GPT_CONFIG_124M, n_heads=10))
    Traceback (most recent call last):
    ...
    ValueError: emb_dim must be divisible by n_heads (768 % 10 != 0)
    """
    if not isinstance(cfg, dict):
        raise TypeError(f"a GPT config must be a dict, got {type(cfg).__name__}")
    valid = REQUIRED_KEYS + tuple(OPTIONAL_KEYS)
    for key in cfg:
        if key not in valid:
            raise ValueError(f"unknown config key {key!r}: {_suggest(key, valid)}"
                             f"valid keys are {', '.join(valid)}")
    missing = [k for k in REQUIRED_KEYS if k not in cfg]
    if missing:
        raise ValueError(f"config is missing {', '.join(map(repr, missing))} "
                         f"(required keys: {', '.join(REQUIRED_KEYS)})")
    out = {**OPTIONAL_KEYS, **cfg}
    for key in _INT_KEYS:
        value = out[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{key} must be a positive integer, got {value!r}")
    for key in _BOOL_KEYS:
        if not isinstance(out[key], bool):
            raise ValueError(f"{key} must be true or false, got {out[key]!r}")
    rate = out["drop_rate"]
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 <= rate < 1.0:
        raise ValueError(f"drop_rate must be a number in [0, 1), got {rate!r}")
    out["drop_rate"] = float(rate)
    name = _dtype_name(out["dtype"])
    if name not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {out['dtype']!r}")
    out["dtype"] = name
    if out["emb_dim"] % out["n_heads"]:
        raise ValueError(f"emb_dim must be divisible by n_heads "
                         f"({out['emb_dim']} % {out['n_heads']} != 0)")
    return out


def _load_json(path):
    if not os.path.isfile(path):
        raise FileNotFoundError(f"config file {path!r} not found (give a preset name: "
                                f"{', '.join(PRESETS)}, or a path to a .json file)")
    try:
        with open(path, encoding="utf-8") as f:
            cfg = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"config file {path!r} is not valid JSON ({e})") from None
    if not isinstance(cfg, dict):
        raise ValueError(f"config file {path!r} must hold a JSON object, got "
                         f"{type(cfg).__name__}")
    return cfg


def get_config(spec, **overrides):
    """A validated copy of a config given as a preset name, a path to a JSON file or a dict;
    keyword ``overrides`` (``None`` values ignored) replace keys before validation.

    >>> get_config("tiny", vocab_size=257)["vocab_size"]
    257
    """
    if isinstance(spec, dict):
        cfg = dict(spec)
    elif isinstance(spec, (str, os.PathLike)):
        text = os.fspath(spec)
        if text in PRESETS:
            cfg = dict(PRESETS[text])
        elif text.endswith(".json") or os.path.sep in text or os.path.exists(text):
            cfg = _load_json(text)
        else:
            raise ValueError(f"unknown preset {text!r}: {_suggest(text, PRESETS)}valid presets "
                             f"are {', '.join(PRESETS)} (or give a path to a .json file)")
    else:
        raise TypeError(f"config must be a preset name, a .json path or a dict, got "
                        f"{type(spec).__name__}")
    cfg.update({k: v for k, v in overrides.items() if v is not None})
    return validate_config(cfg)


# *** describe: what a config costs ***

class Description:
    """The numbers of a config (attributes) and a readable table (``str(desc)``).

    Parameters: ``components`` maps token embedding, position embedding, attention,
    feed-forward, layer norms and head to their counts; ``params_untied`` is their sum,
    ``params_tied`` leaves out the head (it shares the token embedding), ``params_total`` is the
    one the config builds.

    Compute per token (Kaplan et al.'s estimate): ``flops_forward = 2 * matmul_params +
    2 * n_layers * seq_len * emb_dim`` where ``matmul_params`` are the parameters that multiply
    activations (everything but the two embedding tables, head included);
    ``flops_train = 3 * flops_forward`` (backward costs twice the forward).

    Memory in bytes of ``dtype``: weights ``params_total * b``; gradients the same; AdamW
    state twice the weights (two moments); activations saved for backward at
    ``batch_size x seq_len``: ``B * S * (n_layers * (18 * E + n_heads * S) + 4 * E + 2 * V) * b``
    (per block: two LayerNorm inputs/outputs 4E, q/k/v and attention output 4E, two dropout masks
    2E, feed-forward 8E, attention weights n_heads*S; plus the embedding sum/dropout and final
    norm 4E, the logits and their softmax 2V).
    """

    def __init__(self, cfg, batch_size=1, seq_len=None):
        cfg = get_config(cfg)
        self.config = cfg
        V, C, E = cfg["vocab_size"], cfg["context_length"], cfg["emb_dim"]
        L, H = cfg["n_layers"], cfg["n_heads"]
        S = C if seq_len is None else int(seq_len)
        if S < 1 or S > C:
            raise ValueError(f"seq_len must be in 1..context_length ({C}), got {S}")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size}")
        B = int(batch_size)
        self.batch_size, self.seq_len = B, S
        self.context_length, self.emb_dim, self.hidden_dim = C, E, 4 * E
        self.n_layers, self.n_heads, self.head_dim = L, H, E // H
        self.vocab_size, self.drop_rate = V, cfg["drop_rate"]
        self.dtype, self.bytes_per_param = cfg["dtype"], DTYPES[cfg["dtype"]]
        self.tie_weights = cfg["tie_weights"]

        qkv_bias = 3 * E if cfg["qkv_bias"] else 0
        self.components = {
            "token embedding": V * E,
            "position embedding": C * E,
            "attention": L * (3 * E * E + qkv_bias + E * E + E),
            "feed-forward": L * (E * 4 * E + 4 * E + 4 * E * E + E),
            "layer norms": L * 2 * 2 * E + 2 * E,
            "output head": E * V,
        }
        self.params_untied = sum(self.components.values())
        self.params_tied = self.params_untied - self.components["output head"]
        self.params_total = self.params_tied if self.tie_weights else self.params_untied
        embeddings = self.components["token embedding"] + self.components["position embedding"]
        self.matmul_params = self.params_untied - embeddings

        self.flops_forward = 2 * self.matmul_params + 2 * L * S * E
        self.flops_train = 3 * self.flops_forward

        b = self.bytes_per_param
        self.memory_weights = self.params_total * b
        self.memory_gradients = self.params_total * b
        self.memory_adamw = 2 * self.params_total * b
        self.memory_activations = B * S * (L * (18 * E + H * S) + 4 * E + 2 * V) * b
        self.memory_training = (self.memory_weights + self.memory_gradients
                                + self.memory_adamw + self.memory_activations)

    def as_dict(self):
        """The numbers as a plain dict (for JSON)."""
        return {k: v for k, v in vars(self).items() if k != "config"}

    def __str__(self):
        rows = [("parameters (as configured)", f"{self.params_total:,}"
                 + (" (tied head)" if self.tie_weights else "")),
                ("  untied / tied head", f"{self.params_untied:,} / {self.params_tied:,}")]
        rows += [(f"  {name}", f"{n:,}") for name, n in self.components.items()]
        rows += [
            ("context length", f"{self.context_length:,}"),
            ("embedding / hidden (4x)", f"{self.emb_dim:,} / {self.hidden_dim:,}"),
            ("layers / heads (head dim)", f"{self.n_layers} / {self.n_heads} ({self.head_dim})"),
            ("vocabulary", f"{self.vocab_size:,}"),
            ("dropout", f"{self.drop_rate:g}"),
            (f"FLOPs per token, forward (seq {self.seq_len})", _flops(self.flops_forward)),
            ("FLOPs per token, training (3x)", _flops(self.flops_train)),
            (f"memory ({self.dtype}): weights", _bytes(self.memory_weights)),
            ("  gradients", _bytes(self.memory_gradients)),
            ("  AdamW state (2x weights)", _bytes(self.memory_adamw)),
            (f"  activations (batch {self.batch_size} x seq {self.seq_len})",
             _bytes(self.memory_activations)),
            ("  training total", _bytes(self.memory_training)),
        ]
        width = max(len(name) for name, _ in rows)
        return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)

    def __repr__(self):
        return (f"Description(params={self.params_total:,}, layers={self.n_layers}, "
                f"emb_dim={self.emb_dim}, seq_len={self.seq_len})")


def _flops(n):
    for unit, size in (("TFLOP", 1e12), ("GFLOP", 1e9), ("MFLOP", 1e6)):
        if n >= size:
            return f"{n / size:,.2f} {unit} ({n:,})"
    return f"{n:,} FLOP"


def _bytes(n):
    for unit, size in (("GiB", 2 ** 30), ("MiB", 2 ** 20), ("KiB", 2 ** 10)):
        if n >= size:
            return f"{n / size:,.2f} {unit}"
    return f"{n} B"


def describe(cfg, batch_size=1, seq_len=None):
    """What a config costs: parameters, shapes, FLOPs per token and training memory.

    ``seq_len`` defaults to the context length. ``str()`` of the result is a table.

    >>> d = describe("gpt2-small")
    >>> d.params_untied, d.params_tied
    (163009536, 124412160)
    """
    return Description(cfg, batch_size, seq_len)
