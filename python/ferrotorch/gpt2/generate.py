"""Text generation for GPT-style models: greedy decoding or sampling (temperature, top-k,
top-p), with a key/value cache so that each new token costs one position.

Works with any model whose ``forward(idx)`` returns logits (B, T, vocab); a model that also has
``new_cache()`` and ``forward(idx, cache)`` (like ``GPTModel``) decodes incrementally.
"""

import numbers

import ferrotorch
from ferrotorch.gpt2.tokenizer import get_tokenizer

__all__ = ["generate", "generate_text"]


def generate(model, idx, max_new_tokens, temperature=0.0, top_k=None, top_p=None, eos_id=None,
             seed=None, use_cache=True, on_token=None, *, context_length=None):
    """``idx`` (B, T) int64 followed by up to ``max_new_tokens`` generated tokens: (B, T + new).

    - ``temperature == 0`` (or ``top_k == 1``) picks the most likely token (greedy); otherwise
      the logits are divided by ``temperature``, cut to the ``top_k`` most likely tokens and to
      the smallest set whose probability reaches ``top_p``, and a token is drawn with
      ``ferrotorch.multinomial`` -- from a generator seeded with ``seed`` when it is given (the
      same seed gives the same tokens), else from the global generator.
    - ``eos_id``: generation stops once it is produced (it is kept in the output); with several
      rows, finished rows are padded with ``eos_id`` until every row has produced it.
    - ``on_token(token)`` is called with each new token as soon as it is chosen: an ``int``
      for one row, a list of ints (one per row) for several.
    - ``use_cache``: run the prompt once through ``model.new_cache()`` and then feed one token at a
      time. When the context is full, the window slides: the last ``context_length`` tokens are
      run again, exactly as a full recomputation sees them.
    - ``context_length``: the model's context (found on the model when not given); a prompt
      longer than it is a ``ValueError``.

    The model runs in eval mode under ``no_grad``; its training mode is restored afterwards.

    >>> import ferrotorch as torch
    >>> from ferrotorch.gpt2 import GPTModel
    >>> model = GPTModel("tiny")
    >>> out = generate(model, torch.tensor([[15496, 995]]), max_new_tokens=3, top_k=40,
    ...                temperature=1.0, seed=123)
    >>> tuple(out.shape)
    (1, 5)
    """
    squeeze = _check_ids(idx)
    if squeeze:
        idx = idx.unsqueeze(0)
    if idx.dtype != ferrotorch.int64:
        idx = idx.long()
    max_new_tokens = _count("max_new_tokens", max_new_tokens)
    temperature, top_k, top_p = _check_sampling(temperature, top_k, top_p)
    context = _find_context_length(model, context_length)
    if context is not None and idx.shape[1] > context:
        raise ValueError(
            f"the prompt has {idx.shape[1]} tokens, more than the model's context length of "
            f"{context}: shorten it to at most {context} tokens"
        )
    generator = None if seed is None else ferrotorch.Generator().manual_seed(int(seed))
    step = _CachedStep(model, context) if use_cache and hasattr(model, "new_cache") else None

    # each submodule's own mode, so a model with some parts frozen in eval comes back as it was
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with ferrotorch.no_grad():
            tokens = idx
            finished = None
            for _ in range(max_new_tokens):
                if step is not None:
                    logits = step(tokens)
                else:
                    window = tokens if context is None else tokens[:, -context:]
                    logits = model(window)[:, -1, :]
                next_ids = _pick(logits, temperature, top_k, top_p, generator)
                if finished is not None:
                    next_ids = next_ids.masked_fill(finished, eos_id)
                tokens = ferrotorch.cat([tokens, next_ids], dim=1)
                if on_token is not None:
                    flat = next_ids[:, 0].tolist()
                    on_token(flat[0] if len(flat) == 1 else flat)
                if eos_id is not None:
                    hit = next_ids == eos_id
                    finished = hit if finished is None else finished.logical_or(hit)
                    if bool(finished.all()):
                        break
    finally:
        for m, training in modes:
            m.training = training
    return tokens[0] if squeeze else tokens


class _CachedStep:
    """Logits of the next token from a key/value cache: the prompt once, then one token a step;
    once the cache holds ``context`` positions it is rebuilt from the last ``context`` tokens."""

    def __init__(self, model, context):
        self.model = model
        self.context = context
        self.cache = None

    def __call__(self, tokens):
        full = self.context is not None and self.cache is not None and \
            self.cache.length >= self.context
        if self.cache is None or full:
            self.cache = self.model.new_cache()
            window = tokens if self.context is None else tokens[:, -self.context:]
            return self.model(window, cache=self.cache)[:, -1, :]
        return self.model(tokens[:, -1:], cache=self.cache)[:, -1, :]


def _pick(logits, temperature, top_k, top_p, generator):
    """The next token of each row, (B, 1) int64, from last-position logits (B, vocab)."""
    if logits.dtype not in (ferrotorch.float32, ferrotorch.float64):
        logits = logits.float()  # half-precision models sample in float32
    if temperature == 0 or top_k == 1:
        return logits.argmax(dim=-1, keepdim=True)
    logits = logits / temperature
    vocab = logits.shape[-1]
    if top_k is not None and top_k < vocab:
        kth = ferrotorch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1:
        ordered, order = logits.sort(dim=-1, descending=True)
        probs = ordered.softmax(dim=-1)
        # the probability of all tokens ranked above each one; the top token always stays
        above = ferrotorch.cat([probs.new_zeros(probs.shape[0], 1), probs.cumsum(dim=-1)[:, :-1]],
                               dim=-1)
        drop = (above >= top_p).gather(-1, order.argsort(dim=-1))
        logits = logits.masked_fill(drop, float("-inf"))
    probs = logits.softmax(dim=-1)
    device = probs.device
    if generator is not None and device.type != "cpu":
        return ferrotorch.multinomial(probs.cpu(), 1, generator=generator).to(device)
    return ferrotorch.multinomial(probs, 1, generator=generator)


def _check_ids(idx):
    if not isinstance(idx, ferrotorch.Tensor):
        raise TypeError(
            f"generate expects token ids as a tensor of shape (batch, seq_len), got "
            f"{type(idx).__name__}: use torch.tensor([ids])"
        )
    if idx.dtype.is_floating_point or idx.dtype == ferrotorch.bool:
        raise TypeError(f"token ids must be integers, got dtype {idx.dtype}")
    if idx.dim() not in (1, 2) or idx.shape[-1] == 0:
        raise ValueError(
            f"generate expects token ids of shape (batch, seq_len) with at least one token, got "
            f"shape {tuple(idx.shape)}"
        )
    return idx.dim() == 1


def _count(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return int(value)


def _check_sampling(temperature, top_k, top_p):
    if not isinstance(temperature, numbers.Real) or not temperature >= 0:
        raise ValueError(f"temperature must be a number >= 0 (0 is greedy), got {temperature!r}")
    if top_k is not None:
        if isinstance(top_k, bool) or not isinstance(top_k, numbers.Integral) or top_k < 1:
            raise ValueError(f"top_k must be a positive integer or None, got {top_k!r}")
        top_k = int(top_k)
    if top_p is not None:
        if not isinstance(top_p, numbers.Real) or not 0 < top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1] or None, got {top_p!r}")
        top_p = float(top_p)
    return float(temperature), top_k, top_p


def _find_context_length(model, given):
    """The number of positions the model can see, or None when it does not say."""
    if given is not None:
        if _count("context_length", given) == 0:
            raise ValueError("context_length must be a positive integer, got 0")
        return int(given)
    value = getattr(model, "context_length", None)
    if isinstance(value, numbers.Integral):
        return int(value)
    for attr in ("cfg", "config"):
        cfg = getattr(model, attr, None)
        if isinstance(cfg, dict) and "context_length" in cfg:
            return int(cfg["context_length"])
    pos_emb = getattr(model, "pos_emb", None)
    weight = getattr(pos_emb, "weight", None)
    return None if weight is None else int(weight.shape[0])


def generate_text(model, tokenizer, prompt, max_new_tokens=50, on_text=None, **kw):
    """``prompt`` and its continuation as text (keywords as in :func:`generate`).

    ``tokenizer`` is a tokenizer or its name (``"gpt2"``, ``"bytes"``). An empty prompt starts
    from the end-of-text token (GPT-2's unconditional start), which is not part of the result.
    A final ``eos_id`` token is left out of the text. ``on_text(piece)`` streams the
    continuation: each piece is printed as soon as its bytes form complete characters.

    >>> from ferrotorch.gpt2 import GPTModel
    >>> model = GPTModel(dict(vocab_size=257, context_length=16, emb_dim=8, n_heads=2,
    ...                       n_layers=1, drop_rate=0.0, qkv_bias=False))
    >>> text = generate_text(model, "bytes", "Hi", max_new_tokens=4, top_k=1)
    >>> text.startswith("Hi")
    True
    """
    tokenizer = get_tokenizer(tokenizer)
    prompt_ids = tokenizer.encode(prompt)
    start = prompt_ids or [tokenizer.eot_token]
    idx = ferrotorch.tensor([start], dtype=ferrotorch.int64)
    params = next(iter(model.parameters()), None) if hasattr(model, "parameters") else None
    if params is not None and params.device.type != "cpu":
        idx = idx.to(params.device)

    new_ids, shown = [], [""]
    user_on_token = kw.pop("on_token", None)

    def on_token(token):
        if user_on_token is not None:
            user_on_token(token)
        if on_text is None:
            return
        new_ids.append(token)
        text = _visible(tokenizer, new_ids, kw.get("eos_id"))
        # a multi-byte character split over tokens decodes to U+FFFD until its last byte
        if not text.endswith("\ufffd") and len(text) > len(shown[0]):
            on_text(text[len(shown[0]):])
            shown[0] = text

    out = generate(model, idx, max_new_tokens, on_token=on_token, **kw)[0].tolist()
    generated = out[len(start):]
    text = _visible(tokenizer, generated, kw.get("eos_id"))
    if on_text is not None and len(text) > len(shown[0]):
        on_text(text[len(shown[0]):])  # whatever was held back waiting for more bytes
    return tokenizer.decode(prompt_ids) + text


def _visible(tokenizer, ids, eos_id):
    if eos_id is not None and eos_id in ids:
        ids = ids[:ids.index(eos_id)]
    return tokenizer.decode(ids)
