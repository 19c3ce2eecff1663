"""Text for the GPT-2 runner: reading a corpus, a sliding-window dataset of next-token pairs,
and train/validation loaders.

The dataset is the one of Raschka's "LLMs from scratch" (``GPTDatasetV1``): window ``i`` is
``x = ids[i:i+L]`` and ``y = ids[i+1:i+L+1]`` for ``i`` in ``range(0, len(ids) - L, stride)``.
"""

import os

import ferrotorch
from ferrotorch.gpt2.tokenizer import END_OF_TEXT, get_tokenizer
from ferrotorch.utils.data import DataLoader, Dataset

__all__ = ["SlidingWindowDataset", "default_corpus", "load_text", "make_loaders"]

TEXT_SUFFIXES = (".txt", ".md")


class SlidingWindowDataset(Dataset):
    """Windows of ``context_length`` tokens over ``token_ids``, each paired with the same
    window shifted one token ahead (the next-token targets), as int64 tensors.

    ``stride`` is the step between window starts (``None``: ``context_length``, no overlap).

    >>> ds = SlidingWindowDataset(list(range(10)), context_length=4, stride=3)
    >>> len(ds)
    2
    >>> ds[1]
    (tensor([3, 4, 5, 6]), tensor([4, 5, 6, 7]))
    """

    def __init__(self, token_ids, context_length, stride=None):
        context_length = _positive_int("context_length", context_length)
        stride = context_length if stride is None else _positive_int("stride", stride)
        if hasattr(token_ids, "tolist"):
            token_ids = token_ids.tolist()
        token_ids = list(token_ids)
        if len(token_ids) <= context_length:
            raise ValueError(
                f"the text is too short for one window: it has {len(token_ids)} tokens, and a "
                f"context of {context_length} needs at least {context_length + 1} "
                "(inputs plus the next-token target); use more text or a shorter context"
            )
        self.context_length = context_length
        self.stride = stride
        self.token_ids = ferrotorch.tensor(token_ids, dtype=ferrotorch.int64)
        self._starts = range(0, len(token_ids) - context_length, stride)

    def __len__(self):
        return len(self._starts)

    def __getitem__(self, index):
        if not isinstance(index, int):
            index = int(index)
        n = len(self._starts)
        if not -n <= index < n:
            raise IndexError(f"window {index} is out of range for a dataset of {n} windows")
        start = self._starts[index]
        end = start + self.context_length
        # clones, so a caller that edits a sample in place cannot change the corpus
        return self.token_ids[start:end].clone(), self.token_ids[start + 1:end + 1].clone()

    def __repr__(self):
        return (f"SlidingWindowDataset(windows={len(self)}, tokens={self.token_ids.numel()}, "
                f"context_length={self.context_length}, stride={self.stride})")


def _positive_int(name, value):
    if isinstance(value, bool) or int(value) != value or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def default_corpus():
    """The text of Python's own documentation topics (``pydoc_data.topics``, in the standard
    library): about 460,000 characters that every Python has offline.

    >>> len(default_corpus()) > 100_000
    True
    """
    try:
        from pydoc_data.topics import topics
    except ImportError:
        raise RuntimeError(
            "this Python has no `pydoc_data` module for the default corpus: "
            "pass a text file or folder instead (--data PATH)"
        ) from None
    return "\n\n".join(topics[key] for key in sorted(topics))


def _read(path):
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except UnicodeDecodeError as e:
        raise ValueError(f"{path} is not UTF-8 text ({e.reason} at byte {e.start})") from None


def load_text(path=None):
    """The training text: a file, a folder (all ``*.txt``/``*.md`` files in it and its
    subfolders, in sorted order, joined with ``<|endoftext|>``), or ``None`` for
    :func:`default_corpus`.

    >>> load_text() == default_corpus()
    True
    """
    if path is None:
        return default_corpus()
    path = os.fspath(path)
    if os.path.isfile(path):
        return _read(path)
    if os.path.isdir(path):
        files = sorted(
            os.path.join(root, name)
            for root, _, names in os.walk(path)
            for name in names
            if name.lower().endswith(TEXT_SUFFIXES)
        )
        if not files:
            raise ValueError(f"the folder {path} has no .txt or .md files to train on")
        return END_OF_TEXT.join(_read(f) for f in files)
    raise FileNotFoundError(f"no such file or folder: {path}")


def _split(text, val_ratio):
    if not 0 <= val_ratio < 1:
        raise ValueError(f"val_ratio must be in [0, 1), got {val_ratio}")
    # the book's split: the first (1 - val_ratio) of the text trains, the rest validates
    cut = int((1 - val_ratio) * len(text))
    return text[:cut], text[cut:]


def _windows(ids, context_length, stride, part):
    try:
        return SlidingWindowDataset(ids, context_length, stride)
    except ValueError as e:
        if len(ids) > context_length:
            raise
        raise ValueError(f"the {part} split is too short: {e}") from None


def make_loaders(text, tokenizer, context_length, stride=None, batch_size=8, val_ratio=0.1,
                 seed=123, drop_last=True):
    """(train_loader, val_loader) over ``text`` (a string or a list of token ids).

    The text is split first (the first ``1 - val_ratio`` trains, the rest validates), then each
    part is tokenized and cut into :class:`SlidingWindowDataset` windows. The train loader
    shuffles with a generator seeded by ``seed`` (the same order every run) and drops its last
    partial batch when ``drop_last``; the validation loader keeps every window in order.
    ``val_ratio=0`` gives no validation loader (``None``).

    >>> train, val = make_loaders("abcdefghij" * 20, "bytes", context_length=8, batch_size=4)
    >>> x, y = next(iter(train))
    >>> tuple(x.shape), tuple(y.shape)
    ((4, 8), (4, 8))
    """
    context_length = _positive_int("context_length", context_length)
    batch_size = _positive_int("batch_size", batch_size)
    train_part, val_part = _split(text, val_ratio)
    if isinstance(text, str):
        tokenizer = get_tokenizer(tokenizer)
        train_part = tokenizer.encode(train_part)
        val_part = tokenizer.encode(val_part) if val_ratio > 0 else []
    train_ds = _windows(train_part, context_length, stride, "training")
    if drop_last and len(train_ds) < batch_size:
        raise ValueError(
            f"the training split has {len(train_ds)} windows of {context_length} tokens, fewer "
            f"than one batch of {batch_size}: use a smaller batch size or context, or more text"
        )
    generator = ferrotorch.Generator().manual_seed(seed)
    train_loader = DataLoader(train_ds, batch_size=batch_size, shuffle=True,
                              drop_last=drop_last, generator=generator)
    if val_ratio == 0:
        return train_loader, None
    val_ds = _windows(val_part, context_length, stride, "validation")
    val_loader = DataLoader(val_ds, batch_size=batch_size, shuffle=False, drop_last=False)
    return train_loader, val_loader
