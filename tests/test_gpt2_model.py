"""GPT-2 model, config and weights (``ferrotorch.gpt2``) against torch and ``transformers``.

A randomly initialised ``transformers.GPT2LMHeadModel`` (tiny, saved locally: no download) is
the reference for logits, loss gradients, KV-cache decoding and the Hugging Face file layout.
The book's GPT code written in torch is the reference for initialisation and parameter counts
(built on torch's ``meta`` device for the big presets, so nothing is allocated).
"""

import json
import os

import ferrotorch as ft
import numpy as np
import pytest
import torch
import transformers
from conftest import assert_same as _assert_same
from ferrotorch.gpt2 import GPT_CONFIG_124M, PRESETS, GPTModel, describe, get_config
from ferrotorch.gpt2.config import validate_config
from safetensors.torch import load_file, save_file

transformers.logging.set_verbosity_error()
torch.set_num_threads(1)

FT_DT = {"float32": ft.float32, "float64": ft.float64}
TH_DT = {"float32": torch.float32, "float64": torch.float64}
# logits/gradients of a 2-layer transformer: sums of many products
TOL = {"float32": (1e-4, 1e-4), "float64": (1e-10, 1e-10)}
HF_TINY = dict(n_embd=64, n_layer=2, n_head=4, vocab_size=100, n_positions=32,
               bos_token_id=0, eos_token_id=0)


def assert_same(ours, theirs, dtype="float32"):
    r, a = TOL[dtype]
    _assert_same(ours.detach() if isinstance(ours, ft.Tensor) else ours, theirs.detach(), r, a)


def make_hf(tied=True, dtype="float32", seed=0):
    """A random GPT2LMHeadModel; every weight perturbed so that zero-initialised biases and
    unit LayerNorm weights also test the mapping."""
    torch.manual_seed(seed)
    config = transformers.GPT2Config(**HF_TINY, tie_word_embeddings=tied)
    model = transformers.GPT2LMHeadModel(config).to(TH_DT[dtype]).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model


@pytest.fixture(scope="module")
def hf_models(tmp_path_factory):
    """(folder, in-memory model) for tied and untied heads, float32 and float64."""
    models = {}
    for tied in (True, False):
        for dtype in ("float32", "float64"):
            folder = tmp_path_factory.mktemp(f"hf_{tied}_{dtype}")
            model = make_hf(tied, dtype)
            model.save_pretrained(folder)
            models[tied, dtype] = (str(folder), model)
    return models


def tokens(shape, vocab=100, seed=0):
    values = np.random.default_rng(seed).integers(0, vocab, size=shape)
    return ft.tensor(values), torch.tensor(values)


# *** the book's GPT in torch: the reference for initialisation and parameter counts ***

class RefAttention(torch.nn.Module):
    def __init__(self, d_in, d_out, context_length, dropout, num_heads, qkv_bias=False):
        super().__init__()
        self.d_out, self.num_heads, self.head_dim = d_out, num_heads, d_out // num_heads
        self.W_query = torch.nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = torch.nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = torch.nn.Linear(d_in, d_out, bias=qkv_bias)
        self.out_proj = torch.nn.Linear(d_out, d_out)
        self.dropout = torch.nn.Dropout(dropout)

    def forward(self, x):
        b, n, _ = x.shape
        q, k, v = (w(x).view(b, n, self.num_heads, self.head_dim).transpose(1, 2)
                   for w in (self.W_query, self.W_key, self.W_value))
        scores = q @ k.transpose(2, 3)
        mask = torch.triu(torch.ones(n, n, dtype=torch.bool), diagonal=1)
        weights = torch.softmax(scores.masked_fill(mask, -torch.inf) / self.head_dim ** 0.5, -1)
        context = (self.dropout(weights) @ v).transpose(1, 2).reshape(b, n, self.d_out)
        return self.out_proj(context)


class RefBlock(torch.nn.Module):
    def __init__(self, cfg):
        super().__init__()
        E = cfg["emb_dim"]
        self.att = RefAttention(E, E, cfg["context_length"], cfg["drop_rate"], cfg["n_heads"],
                                cfg["qkv_bias"])
        self.ff = torch.nn.Module()
        self.ff.layers = torch.nn.Sequential(torch.nn.Linear(E, 4 * E),
                                             torch.nn.GELU(approximate="tanh"),
                                             torch.nn.Linear(4 * E, E))
        self.norm1, self.norm2 = torch.nn.LayerNorm(E), torch.nn.LayerNorm(E)
        self.drop_shortcut = torch.nn.Dropout(cfg["drop_rate"])

    def forward(self, x):
        x = x + self.drop_shortcut(self.att(self.norm1(x)))
        return x + self.drop_shortcut(self.ff.layers(self.norm2(x)))


class RefGPT(torch.nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.tok_emb = torch.nn.Embedding(cfg["vocab_size"], cfg["emb_dim"])
        self.pos_emb = torch.nn.Embedding(cfg["context_length"], cfg["emb_dim"])
        self.drop_emb = torch.nn.Dropout(cfg["drop_rate"])
        self.trf_blocks = torch.nn.Sequential(*[RefBlock(cfg) for _ in range(cfg["n_layers"])])
        self.final_norm = torch.nn.LayerNorm(cfg["emb_dim"])
        self.out_head = torch.nn.Linear(cfg["emb_dim"], cfg["vocab_size"], bias=False)

    def forward(self, idx):
        x = self.tok_emb(idx) + self.pos_emb(torch.arange(idx.shape[1]))
        return self.out_head(self.final_norm(self.trf_blocks(self.drop_emb(x))))


def torch_counts(cfg):
    """(untied, tied, per-component) parameter counts of the torch model, on the meta device."""
    with torch.device("meta"):
        ref = RefGPT(cfg)
    total = sum(p.numel() for p in ref.parameters())

    def count(part):
        return sum(p.numel() for name, p in ref.named_parameters() if part in name)

    components = {
        "token embedding": count("tok_emb"), "position embedding": count("pos_emb"),
        "attention": count(".att."), "feed-forward": count(".ff."),
        "layer norms": count("norm"), "output head": count("out_head"),
    }
    return total, total - ref.out_head.weight.numel(), components


# *** weights from transformers ***

@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("tied", [True, False])
def test_from_hf_logits_equal_transformers(hf_models, tied, dtype):
    folder, hf = hf_models[tied, dtype]
    model = GPTModel.from_hf(folder).eval()
    assert model.cfg["qkv_bias"] and model.cfg["tie_weights"] == tied
    assert (model.out_head.weight is model.tok_emb.weight) == tied
    assert model.tok_emb.weight.dtype == FT_DT[dtype]
    ours_x, theirs_x = tokens((3, 17))
    with torch.no_grad():
        expected = hf(theirs_x).logits
    assert_same(model(ours_x), expected, dtype)


def test_from_hf_file_with_config(hf_models, tmp_path):
    folder, hf = hf_models[True, "float32"]
    weights = os.path.join(folder, "model.safetensors")
    with open(os.path.join(folder, "config.json")) as f:
        hf_config = json.load(f)
    ours_cfg = dict(vocab_size=100, context_length=32, emb_dim=64, n_heads=4, n_layers=2,
                    drop_rate=0.0, qkv_bias=False, tie_weights=True)
    (tmp_path / "ours.json").write_text(json.dumps(ours_cfg))
    ours_x, theirs_x = tokens((2, 9), seed=1)
    with torch.no_grad():
        expected = hf(theirs_x).logits
    for config in (None, os.path.join(folder, "config.json"), hf_config, ours_cfg,
                   str(tmp_path / "ours.json")):
        model = GPTModel.from_hf(weights, config=config).eval()
        assert model.cfg["qkv_bias"]  # from the file, whatever the config said
        assert_same(model(ours_x), expected)
    # an untied config copies wte into a separate head
    model = GPTModel.from_hf(weights, dict(ours_cfg, tie_weights=False)).eval()
    assert model.out_head.weight is not model.tok_emb.weight
    assert_same(model(ours_x), expected)
    # keys without the "transformer." prefix (the hub's files), plus the old mask buffers
    state = {k.removeprefix("transformer."): v for k, v in load_file(weights).items()}
    state["h.0.attn.bias"] = torch.tril(torch.ones(1, 1, 32, 32))
    save_file(state, str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text(json.dumps(hf_config))
    assert_same(GPTModel.from_hf(tmp_path).eval()(ours_x), expected)
    # a sharded save_pretrained folder (model.safetensors.index.json)
    sharded = tmp_path / "sharded"
    sharded.mkdir()
    names = sorted(state)
    weight_map = {}
    for i, part in enumerate((names[:10], names[10:])):
        file = f"model-{i + 1:05d}-of-00002.safetensors"
        save_file({k: state[k] for k in part}, str(sharded / file))
        weight_map.update(dict.fromkeys(part, file))
    (sharded / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    (sharded / "config.json").write_text(json.dumps(hf_config))
    assert_same(GPTModel.from_hf(sharded).eval()(ours_x), expected)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("tied", [True, False])
def test_loss_gradient_equals_torch(hf_models, tied, dtype):
    folder, hf = hf_models[tied, dtype]
    model = GPTModel.from_hf(folder).eval()
    ours_x, theirs_x = tokens((2, 12), seed=2)
    hf.zero_grad()
    logits = hf(theirs_x).logits
    loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 100),
                                             theirs_x[:, 1:].reshape(-1))
    loss.backward()
    ours_logits = model(ours_x)
    ours_loss = ft.nn.functional.cross_entropy(ours_logits[:, :-1].reshape(-1, 100),
                                               ours_x[:, 1:].reshape(-1))
    ours_loss.backward()
    assert_same(ours_loss, loss, dtype)
    h = hf.transformer.h
    block = model.trf_blocks
    assert_same(model.tok_emb.weight.grad, hf.transformer.wte.weight.grad, dtype)
    assert_same(model.pos_emb.weight.grad, hf.transformer.wpe.weight.grad, dtype)
    qkv = ft.cat([block[0].att.W_query.weight.grad, block[0].att.W_key.weight.grad,
                  block[0].att.W_value.weight.grad]).t()
    assert_same(qkv, h[0].attn.c_attn.weight.grad, dtype)
    assert_same(block[1].att.W_value.bias.grad, h[1].attn.c_attn.bias.grad[128:], dtype)
    assert_same(block[1].ff.layers[0].weight.grad.t(), h[1].mlp.c_fc.weight.grad, dtype)
    assert_same(block[1].ff.layers[2].bias.grad, h[1].mlp.c_proj.bias.grad, dtype)
    assert_same(block[0].norm2.weight.grad, h[0].ln_2.weight.grad, dtype)
    assert_same(model.final_norm.bias.grad, hf.transformer.ln_f.bias.grad, dtype)
    if not tied:
        assert_same(model.out_head.weight.grad, hf.lm_head.weight.grad, dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_kv_cache_equals_full_recomputation(hf_models, dtype):
    folder, hf = hf_models[True, dtype]
    model = GPTModel.from_hf(folder).eval()
    ours_x, theirs_x = tokens((2, 20), seed=3)
    with torch.no_grad():
        expected = hf(theirs_x).logits
    with ft.no_grad():
        full = model(ours_x)
        cache = model.new_cache()
        assert cache.length == 0
        parts = [model(ours_x[:, :6], cache)]           # prefill (is_causal)
        for t in range(6, 10):                            # one token at a time (no mask)
            parts.append(model(ours_x[:, t:t + 1], cache))
        parts.append(model(ours_x[:, 10:14], cache))      # a block at an offset (explicit mask)
        for t in range(14, 20):
            parts.append(model(ours_x[:, t:t + 1], cache))
        assert cache.length == 20
        assert tuple(cache.layers[0].keys.shape) == (2, 4, 20, 16)
    stepwise = ft.cat(parts, dim=1)
    assert_same(stepwise, expected, dtype)
    assert_same(stepwise, torch.from_numpy(np.array(full.cpu().numpy())), dtype)


def test_context_length_errors():
    model = GPTModel(get_config("tiny", context_length=8, vocab_size=50)).eval()
    with pytest.raises(ValueError, match="exceeds the context length 8"):
        model(ft.zeros(1, 9, dtype=ft.int64))
    cache = model.new_cache()
    with ft.no_grad():
        model(ft.zeros(1, 6, dtype=ft.int64), cache)
        with pytest.raises(ValueError, match="after 6 cached positions exceeds"):
            model(ft.zeros(1, 3, dtype=ft.int64), cache)
        model(ft.zeros(1, 2, dtype=ft.int64), cache)
    assert cache.length == 8
    with pytest.raises(ValueError, match=r"\(batch, seq_len\)"):
        model(ft.zeros(9, dtype=ft.int64))


@pytest.mark.parametrize("tied,qkv_bias", [(True, False), (False, True)])
def test_save_hf_loads_in_transformers(tmp_path, tied, qkv_bias):
    cfg = dict(vocab_size=100, context_length=32, emb_dim=64, n_heads=4, n_layers=2,
               drop_rate=0.1, qkv_bias=qkv_bias, tie_weights=tied)
    ft.manual_seed(5)
    model = GPTModel(cfg).eval()
    model.save_hf(tmp_path / "out")
    keys = set(load_file(str(tmp_path / "out" / "model.safetensors")))
    assert ("lm_head.weight" in keys) == (not tied)
    hf = transformers.GPT2LMHeadModel.from_pretrained(tmp_path / "out").eval()
    ours_x, theirs_x = tokens((2, 11), seed=4)
    with torch.no_grad():
        expected = hf(theirs_x).logits
    assert_same(model(ours_x), expected)
    # and back: the same function
    again = GPTModel.from_hf(tmp_path / "out").eval()
    assert again.cfg["tie_weights"] == tied
    assert_same(again(ours_x), expected)


def test_from_hf_errors(hf_models, tmp_path):
    folder, _ = hf_models[True, "float32"]
    weights = os.path.join(folder, "model.safetensors")
    with pytest.raises(FileNotFoundError, match="neither a folder nor"):
        GPTModel.from_hf(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="no model.safetensors in"):
        GPTModel.from_hf(tmp_path)
    with pytest.raises(FileNotFoundError, match="no config for the weights"):
        save_file(load_file(weights), str(tmp_path / "w.safetensors"))
        GPTModel.from_hf(tmp_path / "w.safetensors")
    with pytest.raises(RuntimeError, match=r"config does not match the weights: "
                       r"wte.weight has shape \(100, 64\), expected \(50257, 128\)"):
        GPTModel.from_hf(weights, config=get_config("tiny", n_layers=2))
    small = dict(vocab_size=100, context_length=32, emb_dim=64, n_heads=4, n_layers=1,
                 drop_rate=0.0, qkv_bias=True)
    with pytest.raises(RuntimeError, match="the weights have 2 layers, the config has n_layers 1"):
        GPTModel.from_hf(weights, config=small)
    state = load_file(weights)
    state["transformer.h.0.attn.extra"] = torch.zeros(2)
    save_file(state, str(tmp_path / "extra.safetensors"))
    with pytest.raises(RuntimeError, match=r"unexpected keys: h\.0\.attn\.extra$"):
        GPTModel.from_hf(tmp_path / "extra.safetensors", config=dict(small, n_layers=2))
    state = load_file(weights)
    del state["transformer.h.1.mlp.c_fc.weight"]
    save_file(state, str(tmp_path / "model.safetensors"))
    with pytest.raises(RuntimeError, match=r"missing keys: h\.1\.mlp\.c_fc\.weight"):
        GPTModel.from_hf(tmp_path / "model.safetensors", config=dict(small, n_layers=2))
    (tmp_path / "bad.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(RuntimeError, match="cannot read GPT-2 weights"):
        GPTModel.from_hf(tmp_path / "bad.safetensors", config=small)


# *** the model against the book's torch code ***

def test_same_seed_same_weights_and_outputs_as_torch():
    cfg = get_config("tiny", vocab_size=300, context_length=16, qkv_bias=True)
    torch.manual_seed(123)
    ref = RefGPT(cfg).eval()
    ft.manual_seed(123)
    model = GPTModel(cfg).eval()
    ours, theirs = model.state_dict(), ref.state_dict()
    assert list(ours) == list(theirs)
    for name in theirs:
        _assert_same(ours[name], theirs[name], 0, 0)
    ours_x, theirs_x = tokens((2, 16), vocab=300, seed=5)
    with torch.no_grad():
        expected = ref(theirs_x)
    assert_same(model(ours_x), expected)


def test_dtype_and_tying_from_config():
    model = GPTModel(get_config("tiny", dtype="float64", tie_weights=True, vocab_size=257))
    assert model.tok_emb.weight.dtype == ft.float64 and model.trf_blocks[3].norm2.bias.dtype \
        == ft.float64
    assert model.out_head.weight is model.tok_emb.weight
    assert model.num_parameters() == describe(model.cfg).params_tied
    assert model(ft.zeros(1, 3, dtype=ft.int64)).dtype == ft.float64


@pytest.mark.parametrize("name", list(PRESETS))
def test_parameter_counts_equal_torch(name):
    cfg = get_config(name)
    untied, tied, components = torch_counts(cfg)
    d = describe(cfg)
    assert (d.params_untied, d.params_tied) == (untied, tied)
    assert d.components == components
    if name in ("tiny", "mini"):  # instantiate ours where it is cheap
        torch.manual_seed(0)
        counted = sum(p.numel() for p in RefGPT(cfg).parameters())
        assert GPTModel(cfg).num_parameters() == counted == untied


def test_gpt2_small_parameters():
    # the two numbers the book prints, from a real 124M model on both sides
    untied, tied, _ = torch_counts(GPT_CONFIG_124M)
    assert (untied, tied) == (163_009_536, 124_412_160)
    model = GPTModel(GPT_CONFIG_124M)
    assert model.num_parameters() == untied
    assert sum(p.numel() for n, p in model.named_parameters() if n != "out_head.weight") == tied


# *** describe ***

@pytest.mark.parametrize("name,batch,seq", [("gpt2-small", 1, None), ("tiny", 8, 64),
                                            ("gpt2-xl", 2, 512)])
def test_describe_numbers_by_formula(name, batch, seq):
    cfg = get_config(name)
    d = describe(cfg, batch_size=batch, seq_len=seq)
    V, C, E = cfg["vocab_size"], cfg["context_length"], cfg["emb_dim"]
    L, H = cfg["n_layers"], cfg["n_heads"]
    S = C if seq is None else seq
    untied, tied, _ = torch_counts(cfg)
    assert (d.context_length, d.emb_dim, d.hidden_dim, d.n_layers, d.n_heads) == (C, E, 4 * E, L, H)
    assert d.drop_rate == cfg["drop_rate"] and d.seq_len == S and d.batch_size == batch
    assert d.params_total == untied
    non_embedding = untied - V * E - C * E
    assert d.flops_forward == 2 * non_embedding + 2 * L * S * E
    assert d.flops_train == 3 * d.flops_forward
    assert d.memory_weights == d.memory_gradients == 4 * untied
    assert d.memory_adamw == 2 * d.memory_weights
    assert d.memory_activations == batch * S * (L * (18 * E + H * S) + 4 * E + 2 * V) * 4
    table = str(d)
    assert f"{untied:,}" in table and f"{tied:,}" in table and f"{d.flops_forward:,}" in table
    for word in ("context length", "layers", "heads", "dropout", "AdamW", "activations"):
        assert word in table
    tied_d = describe(dict(cfg, tie_weights=True, dtype="bfloat16"), batch, seq)
    assert tied_d.params_total == tied and tied_d.memory_weights == 2 * tied


def test_describe_errors():
    with pytest.raises(ValueError, match=r"seq_len must be in 1\.\.context_length \(128\)"):
        describe("tiny", seq_len=129)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        describe("tiny", batch_size=0)


# *** config ***

def test_config_presets_and_json(tmp_path):
    assert get_config(GPT_CONFIG_124M) == dict(GPT_CONFIG_124M, tie_weights=False,
                                                dtype="float32")
    assert get_config("gpt2-small") == get_config(GPT_CONFIG_124M)
    assert [get_config(n)["emb_dim"] for n in ("gpt2-medium", "gpt2-large", "gpt2-xl")] == \
        [1024, 1280, 1600]
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps(GPT_CONFIG_124M))
    assert get_config(str(path)) == get_config("gpt2-small")
    assert get_config(path, n_layers=2, drop_rate=None)["n_layers"] == 2
    assert get_config("tiny", dtype=ft.float64)["dtype"] == "float64"
    assert get_config("tiny", dtype=torch.bfloat16)["dtype"] == "bfloat16"
    cfg = dict(GPT_CONFIG_124M)
    get_config(cfg, n_layers=1)
    assert cfg == GPT_CONFIG_124M  # the caller's dict is not changed


@pytest.mark.parametrize("change,message", [
    ({"n_heads": 10}, r"^emb_dim must be divisible by n_heads \(768 % 10 != 0\)$"),
    ({"n_head": 12}, r"unknown config key 'n_head': did you mean 'n_heads'\? valid keys are "
                      r"vocab_size, context_length, emb_dim, n_heads, n_layers, drop_rate"),
    ({"n_layers": 0}, r"^n_layers must be a positive integer, got 0$"),
    ({"vocab_size": 5.0}, r"^vocab_size must be a positive integer, got 5.0$"),
    ({"n_heads": True}, r"^n_heads must be a positive integer, got True$"),
    ({"drop_rate": 1.5}, r"^drop_rate must be a number in \[0, 1\), got 1.5$"),
    ({"qkv_bias": "yes"}, r"^qkv_bias must be true or false, got 'yes'$"),
    ({"dtype": "int8"}, r"^dtype must be one of float32, float64, bfloat16, float16, got 'int8'$"),
])
def test_config_validation_errors(change, message):
    with pytest.raises(ValueError, match=message):
        validate_config(dict(GPT_CONFIG_124M, **change))


def test_config_errors(tmp_path):
    cfg = dict(GPT_CONFIG_124M)
    del cfg["n_heads"]
    with pytest.raises(ValueError, match=r"config is missing 'n_heads' \(required keys: "):
        get_config(cfg)
    with pytest.raises(ValueError, match=r"unknown preset 'gpt2-smal': did you mean "
                       r"'gpt2-small'\? valid presets are gpt2-small, gpt2-medium, gpt2-large, "
                       r"gpt2-xl, tiny, mini"):
        get_config("gpt2-smal")
    with pytest.raises(FileNotFoundError, match="config file .*missing.json' not found"):
        get_config(str(tmp_path / "missing.json"))
    (tmp_path / "bad.json").write_text("{ not json")
    with pytest.raises(ValueError, match="is not valid JSON"):
        get_config(str(tmp_path / "bad.json"))
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="must hold a JSON object, got list"):
        get_config(str(tmp_path / "list.json"))
    with pytest.raises(TypeError, match="got int"):
        get_config(3)
