"""Tokenizers, the sliding-window dataset and the train/val loaders of ``ferrotorch.gpt2``,
checked against tiktoken/Hugging Face tokenizers and the book's torch ``GPTDatasetV1``."""

import sys

import ferrotorch as ft
import pytest
import torch
from conftest import BPE_DIR
from ferrotorch.gpt2 import data
from ferrotorch.gpt2.tokenizer import ByteTokenizer, get_tokenizer

TEXTS = [
    "Hello world",
    "Every effort moves you forward, doesn't it?  Spaces   and\ttabs\n\nnew lines.",
    "unicode: héllo wörld, 日本語のテキスト, emoji 🙂👍🏽, math ∑∫√",
    "first document<|endoftext|>second document",
    "",
]


# *** tokenizers ***

def test_gpt2_ids_match_tiktoken_and_hugging_face(tiktoken_cache):
    from tokenizers import ByteLevelBPETokenizer

    tok = get_tokenizer("gpt2")
    hf = ByteLevelBPETokenizer(str(BPE_DIR / "encoder.json"), str(BPE_DIR / "vocab.bpe"))
    hf.add_special_tokens(["<|endoftext|>"])
    assert (tok.name, tok.n_vocab, tok.eot_token) == ("gpt2", 50257, 50256)
    assert tok.encode("Hello world") == [15496, 995]
    for text in TEXTS:
        ids = tok.encode(text)
        assert ids == hf.encode(text).ids, text
        assert tok.decode(ids) == text
        assert tok.decode(ft.tensor(ids, dtype=ft.int64)) == text
    assert tok.encode("a<|endoftext|>b")[1] == hf.token_to_id("<|endoftext|>") == 50256


def test_gpt2_decode_replaces_broken_utf8_and_rejects_unknown_ids(tiktoken_cache):
    import tiktoken

    tok = get_tokenizer("gpt2")
    ids = tok.encode("🙂 ok")
    assert len(ids) > 2  # one emoji, several byte-level tokens
    partial = tiktoken.get_encoding("gpt2").decode_bytes(ids[:1])
    assert tok.decode(ids[:1]) == partial.decode("utf-8", errors="replace")
    assert "\ufffd" in tok.decode(ids[:1])
    with pytest.raises(ValueError, match="50257"):
        tok.decode([50257])


def test_missing_tiktoken_is_one_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "tiktoken", None)
    with pytest.raises(RuntimeError, match="pip install tiktoken") as info:
        get_tokenizer("gpt2")
    assert info.value.__suppress_context__


def test_missing_bpe_files_say_how_to_work_offline(monkeypatch):
    import tiktoken

    def offline(name):
        raise ConnectionError("Max retries exceeded with url: https://openaipublic...")

    monkeypatch.setattr(tiktoken, "get_encoding", offline)
    with pytest.raises(RuntimeError, match="TIKTOKEN_CACHE_DIR") as info:
        get_tokenizer("gpt2")
    message = str(info.value)
    assert "\n" not in message and "ConnectionError" in message and "bytes" in message
    assert info.value.__suppress_context__


def test_byte_tokenizer_round_trips_and_replaces_broken_utf8():
    tok = get_tokenizer("bytes")
    assert isinstance(tok, ByteTokenizer)
    assert (tok.name, tok.n_vocab, tok.eot_token) == ("bytes", 257, 256)
    for text in TEXTS:
        ids = tok.encode(text)
        pieces = text.split("<|endoftext|>")
        assert ids.count(256) == len(pieces) - 1
        assert [i for i in ids if i != 256] == list("".join(pieces).encode("utf-8"))
        assert tok.decode(ids) == text
    broken = "日本".encode()[:4]
    assert tok.decode(list(broken)) == broken.decode("utf-8", errors="replace")
    with pytest.raises(ValueError, match="257"):
        tok.decode([257])


def test_get_tokenizer_names():
    tok = ByteTokenizer()
    assert get_tokenizer(tok) is tok
    assert isinstance(get_tokenizer("BYTES"), ByteTokenizer)
    with pytest.raises(ValueError, match="unknown tokenizer 'sentencepiece'.*bytes.*gpt2"):
        get_tokenizer("sentencepiece")
    with pytest.raises(TypeError):
        get_tokenizer(3)


# *** the sliding-window dataset ***

class GPTDatasetV1(torch.utils.data.Dataset):
    """The book's dataset ("LLMs from scratch", ch. 2), on token ids."""

    def __init__(self, token_ids, max_length, stride):
        self.input_ids, self.target_ids = [], []
        for i in range(0, len(token_ids) - max_length, stride):
            self.input_ids.append(torch.tensor(token_ids[i:i + max_length]))
            self.target_ids.append(torch.tensor(token_ids[i + 1:i + max_length + 1]))

    def __len__(self):
        return len(self.input_ids)

    def __getitem__(self, idx):
        return self.input_ids[idx], self.target_ids[idx]


def same_ids(ours, theirs):
    assert isinstance(ours, ft.Tensor) and ours.dtype == ft.int64
    assert theirs.dtype == torch.int64
    assert ours.tolist() == theirs.tolist()


@pytest.mark.parametrize("n,length,stride", [(50, 4, 1), (50, 4, 4), (51, 8, 3), (40, 5, 7),
                                             (9, 8, 1), (100, 16, None)])
def test_windows_equal_the_books_dataset(n, length, stride):
    ids = torch.randint(0, 50257, (n,), generator=torch.Generator().manual_seed(n)).tolist()
    ours = data.SlidingWindowDataset(ids, length, stride)
    theirs = GPTDatasetV1(ids, length, length if stride is None else stride)
    assert len(ours) == len(theirs) > 0
    for i in range(len(theirs)):
        x, y = ours[i]
        same_ids(x, theirs[i][0])
        same_ids(y, theirs[i][1])
        start = i * (stride or length)  # the direct slicing reference
        assert x.tolist() == ids[start:start + length]
        assert y.tolist() == ids[start + 1:start + length + 1]
    same_ids(ours[-1][0], theirs[len(theirs) - 1][0])
    with pytest.raises(IndexError):
        ours[len(theirs)]


def test_dataset_takes_tensors_and_keeps_its_tokens():
    ids = ft.arange(30)
    ds = data.SlidingWindowDataset(ids, 6, stride=2)
    x, _ = ds[0]
    x.fill_(-1)
    assert ds[0][0].tolist() == list(range(6))


def test_dataset_too_short_says_how_many_tokens_are_needed():
    with pytest.raises(ValueError, match="has 8 tokens.*at least 9"):
        data.SlidingWindowDataset(list(range(8)), 8, 1)
    with pytest.raises(ValueError, match="stride"):
        data.SlidingWindowDataset(list(range(20)), 8, 0)
    with pytest.raises(ValueError, match="context_length"):
        data.SlidingWindowDataset(list(range(20)), 0)


# *** reading text ***

def test_default_corpus_is_pydoc_topics():
    from pydoc_data.topics import topics

    text = data.default_corpus()
    assert text == "\n\n".join(topics[k] for k in sorted(topics))
    assert len(text) > 100_000
    assert data.load_text() == text


def test_load_text_from_file_and_folder(tmp_path):
    (tmp_path / "b.txt").write_text("second", encoding="utf-8")
    (tmp_path / "a.md").write_text("first é", encoding="utf-8")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.txt").write_text("third", encoding="utf-8")
    (tmp_path / "skip.json").write_text("{}", encoding="utf-8")
    assert data.load_text(tmp_path / "a.md") == "first é"
    assert data.load_text(str(tmp_path)) == "first é<|endoftext|>second<|endoftext|>third"


def test_load_text_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing-here"):
        data.load_text(tmp_path / "nothing-here")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no .txt or .md files"):
        data.load_text(tmp_path / "empty")
    (tmp_path / "latin1.txt").write_bytes("café".encode("latin-1"))
    with pytest.raises(ValueError, match="not UTF-8"):
        data.load_text(tmp_path / "latin1.txt")


# *** loaders ***

def torch_loaders(text, tok, length, stride, batch_size, val_ratio, seed, drop_last):
    """The book's ch. 5 loaders: split the text, tokenize each part, window, load."""
    cut = int((1 - val_ratio) * len(text))
    train = GPTDatasetV1(tok.encode(text[:cut]), length, stride)
    val = GPTDatasetV1(tok.encode(text[cut:]), length, stride)
    g = torch.Generator().manual_seed(seed)
    return (torch.utils.data.DataLoader(train, batch_size, shuffle=True, drop_last=drop_last,
                                        generator=g),
            torch.utils.data.DataLoader(val, batch_size, shuffle=False, drop_last=False))


def batches(loader):
    return [(x.tolist(), y.tolist()) for x, y in loader]


@pytest.mark.parametrize("drop_last", [True, False])
def test_loaders_equal_the_books_with_the_same_seed(drop_last):
    text = data.default_corpus()[:6000]
    tok = get_tokenizer("bytes")
    train, val = data.make_loaders(text, tok, 32, stride=24, batch_size=5, val_ratio=0.2,
                                   seed=7, drop_last=drop_last)
    t_train, t_val = torch_loaders(text, tok, 32, 24, 5, 0.2, 7, drop_last)
    assert len(train) == len(t_train) and len(val) == len(t_val)
    assert batches(train) == batches(t_train)
    assert batches(train) == batches(t_train)  # the next epoch: a new order, still torch's
    assert batches(val) == batches(t_val)
    x, y = next(iter(train))
    assert x.dtype == y.dtype == ft.int64 and tuple(x.shape) == (5, 32)


def test_loaders_are_reproducible_and_seeds_differ():
    text = data.default_corpus()[:4000]
    first = batches(data.make_loaders(text, "bytes", 16, batch_size=4, seed=1)[0])
    again = batches(data.make_loaders(text, "bytes", 16, batch_size=4, seed=1)[0])
    other = batches(data.make_loaders(text, "bytes", 16, batch_size=4, seed=2)[0])
    assert first == again
    assert first != other
    assert sorted(first) != first  # shuffled


def test_loaders_on_token_ids_and_gpt2_text(tiktoken_cache):
    ids = list(range(1000))
    train, val = data.make_loaders(ids, None, 10, batch_size=4, val_ratio=0.1)
    t_train, t_val = torch_loaders(ids, ft_identity(), 10, 10, 4, 0.1, 123, True)
    assert batches(train) == batches(t_train) and batches(val) == batches(t_val)

    text = data.default_corpus()[:20000]
    tok = get_tokenizer("gpt2")
    train, val = data.make_loaders(text, "gpt2", 64, batch_size=2)
    t_train, t_val = torch_loaders(text, tok, 64, 64, 2, 0.1, 123, True)
    assert batches(train) == batches(t_train) and batches(val) == batches(t_val)


class ft_identity:
    """A "tokenizer" for token-id input, so the torch reference can share one helper."""

    def encode(self, ids):
        return list(ids)


def test_loaders_without_validation_and_clear_errors():
    text = "abcdefghij" * 30
    train, val = data.make_loaders(text, "bytes", 8, batch_size=4, val_ratio=0)
    assert val is None and len(train) == len(range(0, 300 - 8, 8)) // 4
    with pytest.raises(ValueError, match="fewer than one batch of 64"):
        data.make_loaders(text, "bytes", 8, batch_size=64)
    with pytest.raises(ValueError, match="validation split is too short.*at least 101"):
        data.make_loaders(text, "bytes", 100, batch_size=1, val_ratio=0.1)
    with pytest.raises(ValueError, match="val_ratio"):
        data.make_loaders(text, "bytes", 8, val_ratio=1.0)
