"""Generation in ``ferrotorch.gpt2``: greedy and sampled tokens equal a torch reference (full
recomputation of our model's logits, then torch/Hugging Face's temperature, top-k and top-p
warpers and ``torch.multinomial`` with the same seed), with and without the KV cache."""


import ferrotorch as ft
import pytest
import torch
from ferrotorch import nn
from ferrotorch.gpt2.generate import generate, generate_text
from ferrotorch.gpt2.model import GPTModel
from ferrotorch.gpt2.tokenizer import get_tokenizer
from transformers.generation.logits_process import (
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

CTX = 12
TINY = dict(vocab_size=64, context_length=CTX, emb_dim=16, n_heads=2, n_layers=2, drop_rate=0.1,
            qkv_bias=True)


@pytest.fixture(scope="module")
def model():
    ft.manual_seed(0)
    return GPTModel(TINY).eval()


def prompt(batch, length, seed=0, vocab=TINY["vocab_size"]):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, vocab, (batch, length), generator=g)


def to_torch(t):
    return torch.from_numpy(t.detach().cpu().numpy().copy())


def last_logits(model, tokens, ctx=CTX):
    """Our model's logits for the next token, recomputed from the whole window, as torch."""
    with ft.no_grad():
        return to_torch(model(ft.tensor(tokens[:, -ctx:].numpy()))[:, -1, :])


def torch_pick(logits, temperature, top_k, top_p, generator):
    if temperature == 0 or top_k == 1:
        return logits.argmax(-1, keepdim=True)
    scores = TemperatureLogitsWarper(temperature)(None, logits)
    if top_k is not None:
        scores = TopKLogitsWarper(top_k)(None, scores)
    if top_p is not None:
        scores = TopPLogitsWarper(top_p)(None, scores)
    return torch.multinomial(scores.softmax(-1), 1, generator=generator)


def reference(model, idx, n, temperature=0.0, top_k=None, top_p=None, eos_id=None, seed=None,
              ctx=CTX):
    """The generation loop with full recomputation and torch's sampling (``model`` needs only
    ``forward(idx)``)."""
    generator = None if seed is None else torch.Generator().manual_seed(seed)
    tokens, finished = idx, None
    for _ in range(n):
        nxt = torch_pick(last_logits(model, tokens, ctx), temperature, top_k, top_p, generator)
        if finished is not None:
            nxt = nxt.masked_fill(finished, eos_id)
        tokens = torch.cat([tokens, nxt], dim=1)
        if eos_id is not None:
            finished = (nxt == eos_id) if finished is None else finished | (nxt == eos_id)
            if finished.all():
                break
    return tokens


def ours(model, idx, n, **kw):
    out = generate(model, ft.tensor(idx.numpy()), n, **kw)
    assert isinstance(out, ft.Tensor) and out.dtype == ft.int64
    return to_torch(out)


# *** greedy and sampled tokens ***

@pytest.mark.parametrize("use_cache", [True, False])
def test_greedy_equals_argmax_over_full_recomputation(model, use_cache):
    idx = prompt(2, 5)
    expected = reference(model, idx, 15)  # 20 tokens: the window slides past the context of 12
    assert torch.equal(ours(model, idx, 15, use_cache=use_cache), expected)
    # top_k == 1 is greedy at any temperature and draws no random numbers
    assert torch.equal(ours(model, idx, 15, temperature=0.8, top_k=1, use_cache=use_cache),
                       expected)


@pytest.mark.parametrize("temperature,top_k,top_p", [(1.0, None, None), (0.7, 5, None),
                                                     (1.3, None, 0.8), (0.9, 10, 0.9)])
@pytest.mark.parametrize("use_cache", [True, False])
def test_seeded_sampling_equals_torch(model, temperature, top_k, top_p, use_cache):
    idx = prompt(2, 4, seed=1)
    kw = dict(temperature=temperature, top_k=top_k, top_p=top_p, seed=123)
    expected = reference(model, idx, 14, **kw)
    assert torch.equal(ours(model, idx, 14, use_cache=use_cache, **kw), expected)


def test_sampling_without_seed_follows_the_global_generator(model):
    idx = prompt(1, 3, seed=2)
    ft.manual_seed(42)
    got = ours(model, idx, 10, temperature=1.0)
    torch.manual_seed(42)
    assert torch.equal(got, reference(model, idx, 10, temperature=1.0))


def test_same_seed_same_tokens_other_seed_other_tokens(model):
    idx = prompt(1, 3, seed=3)
    a = ours(model, idx, 20, temperature=1.5, seed=7)
    assert torch.equal(a, ours(model, idx, 20, temperature=1.5, seed=7))
    assert not torch.equal(a, ours(model, idx, 20, temperature=1.5, seed=8))


def test_cache_and_recomputation_give_identical_tokens(model):
    idx = prompt(3, 6, seed=4)
    for kw in (dict(), dict(temperature=1.0, top_k=20, top_p=0.95, seed=5)):
        assert torch.equal(ours(model, idx, 16, use_cache=True, **kw),
                           ours(model, idx, 16, use_cache=False, **kw))


class RecordingGPT(GPTModel):
    """Records (tokens fed, cache length before) of each forward call."""

    def forward(self, idx, cache=None):
        self.calls.append((idx.shape[1], None if cache is None else cache.length))
        return super().forward(idx, cache)


def test_each_cached_step_feeds_one_position():
    ft.manual_seed(0)
    m = RecordingGPT(TINY).eval()
    m.calls = []
    out = generate(m, ft.tensor(prompt(1, 5).numpy()), 10)
    # the prompt once, then one token a step until the 12 positions are full; after that the
    # window of the last 12 tokens is run again for each new token
    assert m.calls == [(5, 0)] + [(1, n) for n in range(5, CTX)] + [(CTX, 0)] * 2
    m.calls = []
    assert torch.equal(to_torch(generate(m, ft.tensor(prompt(1, 5).numpy()), 10,
                                         use_cache=False)), to_torch(out))
    assert m.calls == [(n, None) for n in range(5, CTX + 1)] + [(CTX, None)] * 2


# *** top-k / top-p support ***

class FixedLogits(nn.Module):
    """The same next-token logits after any context (and no KV cache: the plain path)."""

    def __init__(self, logits):
        super().__init__()
        self.logits = nn.Parameter(logits)

    def forward(self, idx):
        return self.logits.expand(idx.shape[0], idx.shape[1], self.logits.shape[0])


@pytest.mark.parametrize("top_k,top_p", [(4, None), (None, 0.6), (6, 0.7)])
def test_top_k_and_top_p_restrict_the_support(top_k, top_p):
    logits = torch.randn(20, generator=torch.Generator().manual_seed(9), dtype=torch.float64) * 2
    model = FixedLogits(ft.tensor(logits.numpy()))
    n = 4000
    got = ours(model, torch.zeros(n, 1, dtype=torch.int64), 1, temperature=0.8, top_k=top_k,
               top_p=top_p, seed=11)[:, 1]
    scores = TemperatureLogitsWarper(0.8)(None, logits[None])
    if top_k is not None:
        scores = TopKLogitsWarper(top_k)(None, scores)
    if top_p is not None:
        scores = TopPLogitsWarper(top_p)(None, scores)
    probs = scores.softmax(-1)[0]
    support = set(torch.nonzero(probs).flatten().tolist())
    assert 1 < len(support) < 20
    counts = torch.bincount(got, minlength=20).double() / n
    assert set(torch.nonzero(counts).flatten().tolist()) == support
    assert (counts - probs).abs().max() < 0.03


# *** stopping, streaming, limits ***

class NextToken(nn.Module):
    """A bigram model whose most likely next token after t is t + 1 (mod vocab)."""

    def __init__(self, vocab=16):
        super().__init__()
        table = torch.zeros(vocab, vocab, dtype=torch.float64)
        table[torch.arange(vocab), (torch.arange(vocab) + 1) % vocab] = 10.0
        self.table = nn.Embedding(vocab, vocab, _weight=ft.tensor(table.float().numpy()))

    def forward(self, idx):
        return self.table(idx)


def test_eos_stops_each_row_and_pads_finished_rows():
    model = NextToken()
    streamed = []
    out = ours(model, torch.tensor([[1, 5]]), 10, eos_id=8, on_token=streamed.append)
    assert out.tolist() == [[1, 5, 6, 7, 8]]
    assert streamed == [6, 7, 8]
    streamed = []
    out = ours(model, torch.tensor([[1, 5], [1, 2]]), 10, eos_id=8, on_token=streamed.append)
    expected = reference(model, torch.tensor([[1, 5], [1, 2]]), 10, eos_id=8)
    assert out.tolist() == expected.tolist() == [[1, 5, 6, 7, 8, 8, 8, 8],
                                                 [1, 2, 3, 4, 5, 6, 7, 8]]
    assert streamed == expected[:, 2:].T.tolist()
    assert ours(model, torch.tensor([[1, 5]]), 4, eos_id=15).tolist() == [[1, 5, 6, 7, 8, 9]]


def test_eos_on_the_gpt_model(model):
    idx = prompt(1, 4, seed=6)
    full = reference(model, idx, 10)[0, 4:].tolist()
    j = next(j for j in range(1, 10) if full[j] not in full[:j])  # a first occurrence
    out = ours(model, idx, 10, eos_id=full[j])
    assert out[0, 4:].tolist() == full[:j + 1]


def test_on_token_streams_every_token(model):
    seen = []
    out = ours(model, prompt(1, 3), 9, temperature=1.0, seed=3, on_token=seen.append)
    assert all(isinstance(t, int) for t in seen) and seen == out[0, 3:].tolist()
    seen = []
    out = ours(model, prompt(2, 3), 5, on_token=seen.append)
    assert seen == out[:, 3:].T.tolist()


def test_prompt_longer_than_the_context_is_a_clear_error(model):
    with pytest.raises(ValueError, match="13 tokens, more than the model's context length of 12"):
        ours(model, prompt(1, CTX + 1), 3)
    idx = prompt(2, CTX)  # exactly full: every new token slides the window
    for use_cache in (True, False):
        assert torch.equal(ours(model, idx, 4, use_cache=use_cache), reference(model, idx, 4))


def test_a_shorter_context_can_be_given(model):
    idx = prompt(2, 3, seed=12)
    kw = dict(temperature=1.0, top_p=0.9, seed=1)
    expected = reference(model, idx, 9, ctx=5, **kw)
    for use_cache in (True, False):
        assert torch.equal(ours(model, idx, 9, context_length=5, use_cache=use_cache, **kw),
                           expected)
    with pytest.raises(ValueError, match="3 tokens, more than the model's context length of 2"):
        ours(model, idx, 1, context_length=2)


def test_eval_mode_and_no_grad_during_generation_then_mode_restored():
    ft.manual_seed(1)
    m = GPTModel({**TINY, "drop_rate": 0.5})
    m.train()
    idx = prompt(1, 4, seed=8)
    out = ours(m, idx, 8)
    assert m.training and all(sub.training for sub in m.modules())
    m.eval()
    assert torch.equal(out, reference(m, idx, 8))  # no dropout was applied
    assert not m.training

    def fails(token):
        assert not ft.is_grad_enabled()
        raise KeyboardInterrupt

    m.train()
    m.trf_blocks[0].eval()  # a mixed model comes back mixed
    with pytest.raises(KeyboardInterrupt):
        generate(m, ft.tensor(idx.numpy()), 3, on_token=fails)
    assert m.training and ft.is_grad_enabled()
    assert [sub.training for sub in m.modules()] == [
        not any(sub is s for s in m.trf_blocks[0].modules()) for sub in m.modules()]


def test_one_dimensional_prompt_and_zero_new_tokens(model):
    idx = prompt(1, 5, seed=10)
    out = generate(model, ft.tensor(idx[0].numpy()), 4)
    assert tuple(out.shape) == (9,)
    assert out.tolist() == reference(model, idx, 4)[0].tolist()
    assert generate(model, ft.tensor(idx.numpy()), 0).tolist() == idx.tolist()


@pytest.mark.parametrize("kw,error,match", [
    (dict(temperature=-1.0), ValueError, "temperature"),
    (dict(top_k=0), ValueError, "top_k"),
    (dict(top_p=0.0), ValueError, "top_p"),
    (dict(top_p=1.5), ValueError, "top_p"),
])
def test_bad_sampling_arguments(model, kw, error, match):
    with pytest.raises(error, match=match):
        generate(model, ft.tensor([[1, 2]]), 3, **kw)


def test_bad_prompts(model):
    with pytest.raises(TypeError, match="integers"):
        generate(model, ft.tensor([[1.0, 2.0]]), 3)
    with pytest.raises(TypeError, match="tensor"):
        generate(model, [[1, 2]], 3)
    with pytest.raises(ValueError, match=r"at least one token.*\(1, 0\)"):
        generate(model, ft.zeros(1, 0, dtype=ft.int64), 3)
    with pytest.raises(ValueError, match="max_new_tokens"):
        generate(model, ft.tensor([[1, 2]]), -1)


# *** text in, text out ***

@pytest.fixture(scope="module")
def byte_model():
    ft.manual_seed(2)
    return GPTModel(dict(vocab_size=257, context_length=16, emb_dim=16, n_heads=2, n_layers=1,
                         drop_rate=0.0, qkv_bias=False))


def test_generate_text_with_bytes_streams_the_continuation(byte_model):
    tok = get_tokenizer("bytes")
    kw = dict(temperature=1.0, top_k=50, seed=4)
    pieces = []
    text = generate_text(byte_model, "bytes", "Héllo", 20, on_text=pieces.append, **kw)
    ids = tok.encode("Héllo")
    out = ours(byte_model, torch.tensor([ids]), 20, **kw)[0].tolist()
    assert text == tok.decode(out)
    assert "".join(pieces) == text[len("Héllo"):]
    # an empty prompt starts from the end-of-text token, which the text leaves out
    out = ours(byte_model, torch.tensor([[256]]), 6, top_k=1)[0, 1:].tolist()
    assert generate_text(byte_model, tok, "", 6, top_k=1) == tok.decode(out)


def test_generate_text_stops_at_eos(byte_model):
    tok = get_tokenizer("bytes")
    full = ours(byte_model, torch.tensor([tok.encode("ab")]), 12)[0, 2:].tolist()
    j = next(j for j in range(1, 12) if full[j] not in full[:j])
    pieces = []
    text = generate_text(byte_model, tok, "ab", 12, eos_id=full[j], on_text=pieces.append)
    assert text == "ab" + tok.decode(full[:j])
    assert "".join(pieces) == tok.decode(full[:j])


def test_generate_text_with_gpt2_bpe(tiktoken_cache):
    ft.manual_seed(3)
    m = GPTModel(dict(vocab_size=50257, context_length=32, emb_dim=16, n_heads=2, n_layers=1,
                      drop_rate=0.0, qkv_bias=False))
    tok = get_tokenizer("gpt2")
    text = generate_text(m, "gpt2", "Hello world", 5, top_k=1)
    out = ours(m, torch.tensor([[15496, 995]]), 5, top_k=1)[0].tolist()
    assert text == tok.decode(out) and text.startswith("Hello world")
