"""One GPT-2 written against the torch API, built for either framework, for the benchmarks.

``build(torch)`` returns a ``GPTModel`` class made from the given module (``ferrotorch`` or
``torch``), so both frameworks run the very same code. The model follows "LLMs from scratch"
ch. 4 (module names ``tok_emb``, ``trf_blocks.{i}.att.W_query``, ``ff.layers``, ``final_norm``,
``out_head``) and adds a key/value cache for generation: a list holding one ``(keys, values)``
pair per layer, grown with ``torch.cat(..., dim=2)``.

>>> import ferrotorch
>>> GPTModel = build(ferrotorch)
>>> model = GPTModel(GPT_QUICK)
>>> model(ferrotorch.zeros(2, 5, dtype=ferrotorch.int64)).shape
torch.Size([2, 5, 1000])
"""

GPT_124M = {
    "vocab_size": 50257,
    "context_length": 1024,
    "emb_dim": 768,
    "n_heads": 12,
    "n_layers": 12,
    "drop_rate": 0.1,
    "qkv_bias": False,
}

# A small config for smoke runs (``--quick``).
GPT_QUICK = dict(GPT_124M, vocab_size=1000, context_length=64, emb_dim=64, n_heads=2, n_layers=2)


def build(torch):
    """The ``GPTModel`` class written with ``torch``'s API (ferrotorch or torch)."""
    nn = torch.nn
    F = torch.nn.functional

    class MultiHeadAttention(nn.Module):
        def __init__(self, d_in, d_out, dropout, num_heads, qkv_bias=False):
            super().__init__()
            self.d_out, self.num_heads, self.head_dim = d_out, num_heads, d_out // num_heads
            self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
            self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
            self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
            self.out_proj = nn.Linear(d_out, d_out)
            self.dropout = dropout

        def _heads(self, x, b, num_tokens):
            return x.view(b, num_tokens, self.num_heads, self.head_dim).transpose(1, 2)

        def forward(self, x, past=None):
            """The attention output and this layer's (keys, values), ``past`` included.

            Without ``past`` the tokens attend causally to each other (training, prefill); with
            it, ``x`` holds one new token per sequence, which may see every cached position.
            """
            b, num_tokens, _ = x.shape
            queries = self._heads(self.W_query(x), b, num_tokens)
            keys = self._heads(self.W_key(x), b, num_tokens)
            values = self._heads(self.W_value(x), b, num_tokens)
            dropout_p = self.dropout if self.training else 0.0
            if past is None:
                context = F.scaled_dot_product_attention(queries, keys, values,
                                                         dropout_p=dropout_p, is_causal=True)
            else:
                keys = torch.cat([past[0], keys], dim=2)
                values = torch.cat([past[1], values], dim=2)
                context = F.scaled_dot_product_attention(queries, keys, values,
                                                         dropout_p=dropout_p)
            context = context.transpose(1, 2).contiguous().view(b, num_tokens, self.d_out)
            return self.out_proj(context), (keys, values)

    class FeedForward(nn.Module):
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
        def __init__(self, cfg):
            super().__init__()
            self.att = MultiHeadAttention(cfg["emb_dim"], cfg["emb_dim"], cfg["drop_rate"],
                                          cfg["n_heads"], cfg["qkv_bias"])
            self.ff = FeedForward(cfg)
            self.norm1 = nn.LayerNorm(cfg["emb_dim"])
            self.norm2 = nn.LayerNorm(cfg["emb_dim"])
            self.drop_shortcut = nn.Dropout(cfg["drop_rate"])

        def forward(self, x, past=None):
            attended, kv = self.att(self.norm1(x), past)
            x = x + self.drop_shortcut(attended)
            x = x + self.drop_shortcut(self.ff(self.norm2(x)))
            return x, kv

    class GPTModel(nn.Module):
        def __init__(self, cfg):
            super().__init__()
            self.tok_emb = nn.Embedding(cfg["vocab_size"], cfg["emb_dim"])
            self.pos_emb = nn.Embedding(cfg["context_length"], cfg["emb_dim"])
            self.drop_emb = nn.Dropout(cfg["drop_rate"])
            self.trf_blocks = nn.Sequential(*[TransformerBlock(cfg)
                                              for _ in range(cfg["n_layers"])])
            self.final_norm = nn.LayerNorm(cfg["emb_dim"])
            self.out_head = nn.Linear(cfg["emb_dim"], cfg["vocab_size"], bias=False)

        def new_cache(self):
            """An empty key/value cache: one slot per layer."""
            return [None] * len(self.trf_blocks)

        def forward(self, in_idx, cache=None):
            """Logits (B, T, vocab). With a ``cache`` each layer's keys and values are kept in
            it, and ``in_idx`` continues the sequence cached so far."""
            _, seq_len = in_idx.shape
            start = 0 if cache is None or cache[0] is None else cache[0][0].shape[2]
            positions = torch.arange(start, start + seq_len, device=in_idx.device)
            x = self.drop_emb(self.tok_emb(in_idx) + self.pos_emb(positions))
            for i, block in enumerate(self.trf_blocks):
                x, kv = block(x, None if cache is None else cache[i])
                if cache is not None:
                    cache[i] = kv
            return self.out_head(self.final_norm(x))

    return GPTModel


def generate_greedy(torch, model, prompt, max_new_tokens):
    """Greedy decoding with a key/value cache: one pass over ``prompt``, then one token a step."""
    cache = model.new_cache()
    tokens = [prompt]
    with torch.no_grad():
        logits = model(prompt, cache)
        for step in range(max_new_tokens):
            next_token = logits[:, -1].argmax(dim=-1, keepdim=True)
            tokens.append(next_token)
            if step + 1 < max_new_tokens:
                logits = model(next_token, cache)
    return torch.cat(tokens, dim=1)
