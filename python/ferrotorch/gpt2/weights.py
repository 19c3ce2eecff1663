"""GPT-2 weights in the Hugging Face ``GPT2LMHeadModel`` layout: load into and save from
``GPTModel``.

The HF layout differs from ours in three ways: its linear layers are ``Conv1D`` with the weight
stored as (in, out) — the transpose of ``nn.Linear``'s; the query/key/value projections are one
fused ``attn.c_attn`` of width 3 * emb; and the output head is usually omitted because it is tied
to the token embedding ``wte``.

>>> from ferrotorch.gpt2 import GPTModel
>>> model = GPTModel.from_hf("path/to/gpt2")         # doctest: +SKIP
>>> model.save_hf("out/gpt2-copy")                   # doctest: +SKIP
"""

import json
import os

import ferrotorch as torch
from ferrotorch import _C
from ferrotorch.gpt2.config import DTYPES, OPTIONAL_KEYS, get_config, validate_config

__all__ = ["load_hf", "save_hf", "hf_state_dict", "config_from_hf", "config_to_hf"]

WEIGHTS_NAME = "model.safetensors"
INDEX_NAME = "model.safetensors.index.json"
CONFIG_NAME = "config.json"
# buffers older GPT-2 files carry (the causal mask); they hold no weights
_IGNORED_SUFFIXES = (".attn.bias", ".attn.masked_bias")
# per block: HF name -> (our name, stored transposed)
_BLOCK = {
    "ln_1.weight": ("norm1.weight", False), "ln_1.bias": ("norm1.bias", False),
    "attn.c_proj.weight": ("att.out_proj.weight", True),
    "attn.c_proj.bias": ("att.out_proj.bias", False),
    "ln_2.weight": ("norm2.weight", False), "ln_2.bias": ("norm2.bias", False),
    "mlp.c_fc.weight": ("ff.layers.0.weight", True), "mlp.c_fc.bias": ("ff.layers.0.bias", False),
    "mlp.c_proj.weight": ("ff.layers.2.weight", True),
    "mlp.c_proj.bias": ("ff.layers.2.bias", False),
}
_QKV = ("W_query", "W_key", "W_value")


# *** configs ***

def config_from_hf(hf):
    """Our validated config dict from a Hugging Face ``GPT2Config`` dict (``n_embd``,
    ``n_layer`` ...)."""
    def need(key):
        if key not in hf:
            raise ValueError(f"the Hugging Face config has no {key!r}: is it a GPT-2 config.json?")
        return hf[key]

    dtype = str(hf.get("dtype") or hf.get("torch_dtype") or "float32")
    cfg = validate_config({
        "vocab_size": need("vocab_size"), "context_length": need("n_positions"),
        "emb_dim": need("n_embd"), "n_heads": need("n_head"), "n_layers": need("n_layer"),
        "drop_rate": hf.get("resid_pdrop", 0.1), "qkv_bias": True,
        "tie_weights": bool(hf.get("tie_word_embeddings", True)),
        "dtype": dtype if dtype in DTYPES else "float32",
    })
    emb = cfg["emb_dim"]
    n_inner = hf.get("n_inner")
    if n_inner is not None and n_inner != 4 * emb:
        raise ValueError(f"n_inner {n_inner} is not supported: GPTModel's feed-forward width is "
                         f"4 * n_embd ({4 * emb})")
    act = hf.get("activation_function", "gelu_new")
    if act not in ("gelu_new", "gelu_pytorch_tanh"):
        raise ValueError(f"activation_function {act!r} is not supported: GPTModel uses GELU "
                         "with the tanh approximation ('gelu_new')")
    eps = hf.get("layer_norm_epsilon", 1e-5)
    if not isinstance(eps, (int, float)) or abs(eps - 1e-5) > 1e-12:
        raise ValueError(f"layer_norm_epsilon {eps!r} is not supported: GPTModel uses 1e-5")
    return cfg


def config_to_hf(cfg, tied):
    """A Hugging Face ``GPT2Config`` dict for our config."""
    return {
        "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2",
        "vocab_size": cfg["vocab_size"], "n_positions": cfg["context_length"],
        "n_embd": cfg["emb_dim"], "n_layer": cfg["n_layers"], "n_head": cfg["n_heads"],
        "n_inner": None, "activation_function": "gelu_new",
        "resid_pdrop": cfg["drop_rate"], "embd_pdrop": cfg["drop_rate"],
        "attn_pdrop": cfg["drop_rate"], "layer_norm_epsilon": 1e-5, "initializer_range": 0.02,
        "scale_attn_weights": True, "tie_word_embeddings": bool(tied),
        "bos_token_id": 50256 if cfg["vocab_size"] > 50256 else None,
        "eos_token_id": 50256 if cfg["vocab_size"] > 50256 else None,
        "dtype": cfg["dtype"], "use_cache": True,
    }


def _resolve_config(config, default_json):
    """(our config, given explicitly?) from a dict/preset/JSON path, either ours or HF's."""
    if config is None:
        if default_json is None or not os.path.isfile(default_json):
            raise FileNotFoundError(
                f"no config for the weights: {default_json or 'config.json'} not found; pass "
                "config= (a preset name, a config dict or a config.json path)")
        config = default_json
    source = None
    if isinstance(config, (str, os.PathLike)) and os.path.isfile(config):
        source = os.fspath(config)
        config = _read_json(source, "config file")
        if not isinstance(config, dict):
            raise ValueError(f"config file {source!r} must hold a JSON object, got "
                             f"{type(config).__name__}")
    try:
        if isinstance(config, dict) and "n_embd" in config:
            return config_from_hf(config), False
        return get_config(config), True
    except ValueError as e:
        if source is None:
            raise
        raise ValueError(f"config file {source!r} does not hold a valid config: {e}") from None


def _read_json(path, what):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (ValueError, RecursionError) as e:  # also bad UTF-8, too long ints, deep nesting
        raise ValueError(f"{what} {path!r} is not valid JSON ({e})") from None


# *** reading ***

def _read_safetensors(path):
    try:
        named, _ = _C._safetensors_load(path)
    except RuntimeError as e:
        raise RuntimeError(f"cannot read GPT-2 weights from {path}: {e}") from None
    return dict(named)


def _read_weights(path):
    """(tensors with the ``transformer.`` prefix removed, path of the default config.json)."""
    path = os.fspath(path)
    if os.path.isdir(path):
        folder = path
        single, index = os.path.join(path, WEIGHTS_NAME), os.path.join(path, INDEX_NAME)
        if os.path.isfile(single):
            files = [single]
        elif os.path.isfile(index):
            files = [os.path.join(path, name) for name in _shard_names(index)]
        else:
            found = ", ".join(sorted(os.listdir(path))) or "nothing"
            raise FileNotFoundError(f"no {WEIGHTS_NAME} in {path} (found: {found}); save the "
                                    "model with save_pretrained(..., safe_serialization=True)")
    elif os.path.isfile(path):
        folder, files = os.path.dirname(path), [path]
    else:
        raise FileNotFoundError(f"GPT-2 weights not found: {path} is neither a folder nor a "
                                f"{WEIGHTS_NAME} file")
    tensors = {}
    for file in files:
        for name, t in _read_safetensors(file).items():
            name = name[len("transformer."):] if name.startswith("transformer.") else name
            if not name.endswith(_IGNORED_SUFFIXES):
                tensors[name] = t
    return tensors, os.path.join(folder, CONFIG_NAME)


def _shard_names(index_path):
    """The weight files that a ``model.safetensors.index.json`` lists."""
    index = _read_json(index_path, "weights index")
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not all(isinstance(name, str)
                                                   for name in weight_map.values()):
        raise ValueError(f"weights index {index_path!r} has no weight_map from tensor names to "
                         "file names")
    return sorted(set(weight_map.values()))


def _expected_shapes(cfg, with_head):
    V, C, E, L = cfg["vocab_size"], cfg["context_length"], cfg["emb_dim"], cfg["n_layers"]
    shapes = {"wte.weight": (V, E), "wpe.weight": (C, E), "ln_f.weight": (E,),
              "ln_f.bias": (E,)}
    per_block = {"ln_1.weight": (E,), "ln_1.bias": (E,), "attn.c_attn.weight": (E, 3 * E),
                 "attn.c_attn.bias": (3 * E,), "attn.c_proj.weight": (E, E),
                 "attn.c_proj.bias": (E,), "ln_2.weight": (E,), "ln_2.bias": (E,),
                 "mlp.c_fc.weight": (E, 4 * E), "mlp.c_fc.bias": (4 * E,),
                 "mlp.c_proj.weight": (4 * E, E), "mlp.c_proj.bias": (E,)}
    for i in range(L):
        shapes.update({f"h.{i}.{k}": v for k, v in per_block.items()})
    if not cfg["qkv_bias"]:
        for i in range(L):
            del shapes[f"h.{i}.attn.c_attn.bias"]
    if with_head:
        shapes["lm_head.weight"] = (V, E)
    return shapes


def _listing(names, n=5):
    names = sorted(names)
    more = f" and {len(names) - n} more" if len(names) > n else ""
    return ", ".join(names[:n]) + more


def _check(tensors, cfg, with_head):
    blocks = {int(k.split(".")[1]) for k in tensors if k.startswith("h.") and
              k.split(".")[1].isdigit()}
    if blocks and max(blocks) + 1 != cfg["n_layers"]:
        raise RuntimeError(f"config does not match the weights: the weights have "
                           f"{max(blocks) + 1} layers, the config has n_layers "
                           f"{cfg['n_layers']}")
    expected = _expected_shapes(cfg, with_head)
    for name, shape in expected.items():
        got = tuple(tensors[name].shape) if name in tensors else shape
        if got != shape:
            raise RuntimeError(
                f"config does not match the weights: {name} has shape {got}, expected {shape} "
                f"(config: vocab_size {cfg['vocab_size']}, context_length "
                f"{cfg['context_length']}, emb_dim {cfg['emb_dim']})")
    for name, t in tensors.items():
        if name in expected and not t.is_floating_point():
            raise RuntimeError(f"{name} holds {t.dtype} values: GPT-2 weights are floating point")
    missing = [k for k in expected if k not in tensors]
    unexpected = [k for k in tensors if k not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing keys: {_listing(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {_listing(unexpected)}")
        raise RuntimeError("config does not match the weights: " + "; ".join(parts))


def load_hf(path, config=None):
    """A ``GPTModel`` with the weights of a Hugging Face ``GPT2LMHeadModel`` (see
    ``GPTModel.from_hf``). ``qkv_bias`` follows the file; a missing ``lm_head`` is tied to
    ``wte`` (or copied when the config asks for untied weights)."""
    from ferrotorch.gpt2.model import GPTModel

    tensors, default_json = _read_weights(path)
    cfg, explicit = _resolve_config(config, default_json)
    cfg["qkv_bias"] = "h.0.attn.c_attn.bias" in tensors
    has_head = "lm_head.weight" in tensors
    if not explicit:  # HF config: tie exactly when the file has no separate head
        cfg["tie_weights"] = not has_head
    if not (explicit and isinstance(config, dict) and "dtype" in config):
        wte = tensors.get("wte.weight")
        name = str(wte.dtype).replace("torch.", "") if wte is not None else cfg["dtype"]
        cfg["dtype"] = name if name in DTYPES else OPTIONAL_KEYS["dtype"]
    _check(tensors, cfg, has_head)

    E = cfg["emb_dim"]
    state = {"tok_emb.weight": tensors["wte.weight"], "pos_emb.weight": tensors["wpe.weight"],
             "final_norm.weight": tensors["ln_f.weight"], "final_norm.bias": tensors["ln_f.bias"],
             "out_head.weight": tensors["lm_head.weight" if has_head and not cfg["tie_weights"]
                                      else "wte.weight"]}
    for i in range(cfg["n_layers"]):
        src, dst = f"h.{i}.", f"trf_blocks.{i}."
        for hf_name, (ours, transposed) in _BLOCK.items():
            t = tensors[src + hf_name]
            state[dst + ours] = t.t() if transposed else t
        qkv = tensors[src + "attn.c_attn.weight"].t()  # (3E, E), rows q | k | v
        for j, name in enumerate(_QKV):
            state[f"{dst}att.{name}.weight"] = qkv[j * E:(j + 1) * E]
            if cfg["qkv_bias"]:
                bias = tensors[src + "attn.c_attn.bias"]
                state[f"{dst}att.{name}.bias"] = bias[j * E:(j + 1) * E]

    model = GPTModel(cfg)
    dtype = getattr(torch, cfg["dtype"])
    with torch.no_grad():
        model.load_state_dict({k: v.to(dtype) for k, v in state.items()})
    return model


# *** writing ***

def hf_state_dict(model):
    """The model's weights under Hugging Face GPT-2 names (``transformer.`` prefix, Conv1D
    layout, contiguous, detached); ``lm_head.weight`` only when the head is not tied."""
    cfg = model.cfg
    sd = {k: v.detach() for k, v in model.state_dict().items()}
    out = {"transformer.wte.weight": sd["tok_emb.weight"],
           "transformer.wpe.weight": sd["pos_emb.weight"]}
    E = cfg["emb_dim"]
    for i in range(cfg["n_layers"]):
        src, dst = f"trf_blocks.{i}.", f"transformer.h.{i}."
        for hf_name, (ours, transposed) in _BLOCK.items():
            t = sd[src + ours]
            out[dst + hf_name] = t.t() if transposed else t
        out[dst + "attn.c_attn.weight"] = torch.cat(
            [sd[f"{src}att.{n}.weight"] for n in _QKV], dim=0).t()
        if cfg["qkv_bias"]:
            bias = torch.cat([sd[f"{src}att.{n}.bias"] for n in _QKV], dim=0)
        else:  # HF's GPT-2 always has these biases: zeros give the same function
            bias = torch.zeros(3 * E, dtype=sd["tok_emb.weight"].dtype)
        out[dst + "attn.c_attn.bias"] = bias
    out["transformer.ln_f.weight"] = sd["final_norm.weight"]
    out["transformer.ln_f.bias"] = sd["final_norm.bias"]
    if not _is_tied(model):
        out["lm_head.weight"] = sd["out_head.weight"]
    return {k: v.contiguous() for k, v in out.items()}


def _is_tied(model):
    return model.out_head.weight is model.tok_emb.weight


def save_hf(model, path):
    """Write ``config.json`` and ``model.safetensors`` into the folder ``path`` so that
    ``transformers.GPT2LMHeadModel.from_pretrained(path)`` loads the model."""
    path = os.fspath(path)
    if os.path.isfile(path):
        raise FileExistsError(f"save_hf writes a folder, but {path} is a file")
    os.makedirs(path, exist_ok=True)
    tensors = hf_state_dict(model)
    _C._safetensors_save(os.path.join(path, WEIGHTS_NAME), list(tensors.items()),
                         {"format": "pt"})
    config = config_to_hf(model.cfg, _is_tied(model))
    tmp = os.path.join(path, CONFIG_NAME + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    os.replace(tmp, os.path.join(path, CONFIG_NAME))
