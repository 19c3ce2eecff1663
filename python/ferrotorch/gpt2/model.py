"""The GPT-2 model as readable ``ferrotorch.nn`` code, in the style of "LLMs from scratch" ch. 4.

Module names follow the book (``tok_emb``, ``trf_blocks.{i}.att.W_query``, ``ff.layers.0``,
``final_norm``, ``out_head``) so its state dicts load; ``weights.py`` maps them to the Hugging Face
layout. Layers are created in the book's order with torch's default initialisation, so the same
seed gives the same weights as the book's torch code.

>>> import ferrotorch as torch
>>> from ferrotorch.gpt2 import GPTModel
>>> model = GPTModel("tiny")
>>> model(torch.zeros(2, 5, dtype=torch.int64)).shape
torch.Size([2, 5, 50257])
"""

import ferrotorch as torch
from ferrotorch import nn
from ferrotorch.gpt2.config import get_config
from ferrotorch.nn import functional as F

__all__ = ["GPTModel", "TransformerBlock", "MultiHeadAttention", "FeedForward", "KVCache"]


class LayerCache:
    """Keys and values one attention layer has seen: (batch, heads, length, head_dim)."""

    def __init__(self):
        self.keys = None
        self.values = None

    @property
    def length(self):
        return 0 if self.keys is None else self.keys.shape[2]

    def append(self, keys, values):
        if self.keys is not None:
            keys = torch.cat([self.keys, keys], dim=2)
            values = torch.cat([self.values, values], dim=2)
        self.keys, self.values = keys, values
        return keys, values


class KVCache:
    """Per-layer key/value cache for incremental decoding (``GPTModel.new_cache()``).

    ``length`` is the number of positions already processed; the next ``forward(idx, cache)``
    continues at that position.
    """

    def __init__(self, n_layers):
        self.layers = [LayerCache() for _ in range(n_layers)]

    @property
    def length(self):
        return self.layers[0].length if self.layers else 0

    def __repr__(self):
        return f"KVCache(layers={len(self.layers)}, length={self.length})"


class MultiHeadAttention(nn.Module):
    """Causal multi-head self-attention through the fused ``scaled_dot_product_attention``."""

    def __init__(self, d_in, d_out, context_length, dropout, num_heads, qkv_bias=False):
        super().__init__()
        if d_out % num_heads:
            raise ValueError(f"emb_dim must be divisible by n_heads ({d_out} % {num_heads} != 0)")
        self.d_out, self.num_heads, self.head_dim = d_out, num_heads, d_out // num_heads
        self.context_length = context_length
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.out_proj = nn.Linear(d_out, d_out)
        self.dropout = dropout  # applied to the attention weights, as in the book

    def _heads(self, x, b, num_tokens):
        # (b, T, d_out) -> (b, heads, T, head_dim)
        return x.view(b, num_tokens, self.num_heads, self.head_dim).transpose(1, 2)

    def forward(self, x, layer_cache=None):
        b, num_tokens, _ = x.shape
        queries = self._heads(self.W_query(x), b, num_tokens)
        keys = self._heads(self.W_key(x), b, num_tokens)
        values = self._heads(self.W_value(x), b, num_tokens)

        past = 0
        if layer_cache is not None:
            past = layer_cache.length
            keys, values = layer_cache.append(keys, values)
        dropout_p = self.dropout if self.training else 0.0
        if past == 0:
            context = F.scaled_dot_product_attention(queries, keys, values, dropout_p=dropout_p,
                                                     is_causal=True)
        elif num_tokens == 1:
            # one new query may attend every cached position: no mask at all
            context = F.scaled_dot_product_attention(queries, keys, values, dropout_p=dropout_p)
        else:
            # is_causal is aligned top-left; a block of queries at offset `past` needs
            # query i to see keys 0..past+i
            mask = torch.ones(num_tokens, past + num_tokens, dtype=torch.bool,
                              device=queries.device).tril(past)
            context = F.scaled_dot_product_attention(queries, keys, values, attn_mask=mask,
                                                     dropout_p=dropout_p)
        context = context.transpose(1, 2).contiguous().view(b, num_tokens, self.d_out)
        return self.out_proj(context)


class FeedForward(nn.Module):
    """Linear(emb, 4 emb) -> GELU(tanh) -> Linear(4 emb, emb)."""

    def __init__(self, cfg):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(cfg["emb_dim"], 4 * cfg["emb_dim"]),
            nn.GELU(approximate="tanh"),
            nn.Linear(4 * cfg["emb_dim"], cfg["emb_dim"]),
        )

    def forward(self, x):
        return self.layers(x)


class TransformerBlock(nn.Module):
    """Pre-LayerNorm block: x + drop(att(norm1(x))), then x + drop(ff(norm2(x)))."""

    def __init__(self, cfg):
        super().__init__()
        self.att = MultiHeadAttention(
            d_in=cfg["emb_dim"], d_out=cfg["emb_dim"], context_length=cfg["context_length"],
            dropout=cfg["drop_rate"], num_heads=cfg["n_heads"], qkv_bias=cfg["qkv_bias"])
        self.ff = FeedForward(cfg)
        self.norm1 = nn.LayerNorm(cfg["emb_dim"], eps=1e-5)
        self.norm2 = nn.LayerNorm(cfg["emb_dim"], eps=1e-5)
        self.drop_shortcut = nn.Dropout(cfg["drop_rate"])

    def forward(self, x, layer_cache=None):
        shortcut = x
        x = self.drop_shortcut(self.att(self.norm1(x), layer_cache))
        x = x + shortcut
        shortcut = x
        x = self.drop_shortcut(self.ff(self.norm2(x)))
        return x + shortcut


class GPTModel(nn.Module):
    """GPT-2: token + position embeddings, ``n_layers`` transformer blocks, final LayerNorm and a
    linear output head (tied to the token embedding when ``cfg["tie_weights"]``).

    ``cfg`` is a config dict (see ``ferrotorch.gpt2.config``) or a preset name.
    """

    def __init__(self, cfg):
        super().__init__()
        cfg = get_config(cfg)
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg["vocab_size"], cfg["emb_dim"])
        self.pos_emb = nn.Embedding(cfg["context_length"], cfg["emb_dim"])
        self.drop_emb = nn.Dropout(cfg["drop_rate"])
        self.trf_blocks = nn.Sequential(*[TransformerBlock(cfg) for _ in range(cfg["n_layers"])])
        self.final_norm = nn.LayerNorm(cfg["emb_dim"], eps=1e-5)
        self.out_head = nn.Linear(cfg["emb_dim"], cfg["vocab_size"], bias=False)
        if cfg["tie_weights"]:
            self.out_head.weight = self.tok_emb.weight
        if cfg["dtype"] != "float32":
            self.to(getattr(torch, cfg["dtype"]))

    @property
    def context_length(self):
        return self.cfg["context_length"]

    def new_cache(self):
        """An empty key/value cache for ``forward(idx, cache)`` (``cache.length == 0``)."""
        return KVCache(len(self.trf_blocks))

    def forward(self, in_idx, cache=None):
        """Logits (B, T, vocab) for token ids ``in_idx`` (B, T). With a ``cache`` the tokens are
        positions ``cache.length ..`` of a longer sequence; their keys/values are appended and
        only their logits are returned."""
        if in_idx.dim() != 2:
            raise ValueError(f"GPTModel expects token ids of shape (batch, seq_len), got shape "
                             f"{tuple(in_idx.shape)}")
        batch_size, seq_len = in_idx.shape
        start = 0 if cache is None else cache.length
        if start + seq_len > self.context_length:
            where = f" after {start} cached positions" if start else ""
            raise ValueError(f"sequence of {seq_len} tokens{where} exceeds the context length "
                             f"{self.context_length}: crop the input to the last "
                             f"{self.context_length - start} tokens")
        positions = torch.arange(start, start + seq_len, device=in_idx.device)
        x = self.tok_emb(in_idx) + self.pos_emb(positions)
        x = self.drop_emb(x)
        for i, block in enumerate(self.trf_blocks):
            x = block(x, None if cache is None else cache.layers[i])
        x = self.final_norm(x)
        return self.out_head(x)

    def num_parameters(self):
        """Distinct parameters (a tied head counts once)."""
        return sum(p.numel() for p in self.parameters())

    @classmethod
    def from_hf(cls, path, config=None):
        """A model with the weights of a Hugging Face ``GPT2LMHeadModel``: ``path`` is a
        ``save_pretrained`` folder or a ``model.safetensors`` file (then ``config`` gives the
        config: dict, preset name or JSON path; by default ``config.json`` beside the file)."""
        from ferrotorch.gpt2.weights import load_hf
        return load_hf(path, config)

    def save_hf(self, path):
        """Write ``config.json`` + ``model.safetensors`` in the Hugging Face GPT-2 layout."""
        from ferrotorch.gpt2.weights import save_hf
        save_hf(self, path)
