"""Tokenizers for the GPT-2 runner: GPT-2's byte-level BPE (through ``tiktoken``) and a
byte tokenizer that needs no files.

Both have the same small surface: ``encode(str) -> list[int]``, ``decode(list[int]) -> str``,
``n_vocab``, ``eot_token`` and ``name``. The text ``<|endoftext|>`` is always encoded as the
end-of-text token, so documents can be joined with it before tokenizing.
"""

import os
import tempfile

__all__ = ["ByteTokenizer", "GPT2Tokenizer", "get_tokenizer", "TOKENIZERS"]

END_OF_TEXT = "<|endoftext|>"

_OFFLINE_HINT = (
    "without internet, point TIKTOKEN_CACHE_DIR at a folder holding the GPT-2 BPE files "
    "(`python shared/gpt2-bpe/make_tiktoken_cache.py DIR` lays one out), "
    "or use the byte tokenizer (get_tokenizer('bytes'), --tokenizer bytes)"
)


def _tiktoken_cache_dir():
    """The folder tiktoken reads its BPE files from (its own lookup order)."""
    for var in ("TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR"):
        if os.environ.get(var):
            return f"{os.environ[var]} (${var})"
    return os.path.join(tempfile.gettempdir(), "data-gym-cache")


def _as_id_list(ids):
    """A list of Python ints from a list, tuple, numpy array or 1-D tensor of token ids."""
    if hasattr(ids, "tolist"):
        ids = ids.tolist()
    ids = list(ids)
    if ids and isinstance(ids[0], list):
        raise ValueError(
            f"decode expects one sequence of token ids, got a batch of {len(ids)}: "
            "decode each row separately"
        )
    return [int(i) for i in ids]


class GPT2Tokenizer:
    """GPT-2's byte-level BPE (50257 tokens, end-of-text 50256), computed by ``tiktoken``.

    >>> tok = GPT2Tokenizer()                       # doctest: +SKIP
    >>> tok.encode("Hello world")                   # doctest: +SKIP
    [15496, 995]
    >>> tok.decode([15496, 995])                    # doctest: +SKIP
    'Hello world'
    """

    name = "gpt2"

    def __init__(self, encoding="gpt2"):
        try:
            import tiktoken
        except ImportError:
            raise RuntimeError(
                "the GPT-2 tokenizer needs the `tiktoken` package: install it with "
                "`pip install tiktoken`, or use the byte tokenizer (get_tokenizer('bytes'), "
                "--tokenizer bytes)"
            ) from None
        try:
            self._enc = tiktoken.get_encoding(encoding)
        except Exception as e:  # network errors, hash mismatches, unreadable cache files
            cause = " ".join(f"{type(e).__name__}: {e}".split())
            if len(cause) > 200:
                cause = cause[:197] + "..."
            raise RuntimeError(
                f"could not load the {encoding!r} BPE files through tiktoken ({cause}); they "
                f"were neither in its cache folder {_tiktoken_cache_dir()} nor downloadable; "
                + _OFFLINE_HINT
            ) from None
        self.n_vocab = self._enc.n_vocab
        self.eot_token = self._enc.eot_token

    def encode(self, text):
        """Token ids of ``text``; ``<|endoftext|>`` becomes the end-of-text token."""
        return self._enc.encode(text, allowed_special={END_OF_TEXT})

    def decode(self, ids):
        """The text of a sequence of token ids (invalid UTF-8 pieces become U+FFFD)."""
        ids = _as_id_list(ids)
        bad = [i for i in ids if not 0 <= i < self.n_vocab]
        if bad:
            raise ValueError(
                f"token id {bad[0]} is outside the {self.name} vocabulary (0..{self.n_vocab - 1})"
            )
        return self._enc.decode(ids, errors="replace")

    def __repr__(self):
        return f"GPT2Tokenizer(n_vocab={self.n_vocab}, eot_token={self.eot_token})"


class ByteTokenizer:
    """UTF-8 bytes as tokens 0..255, plus an end-of-text token 256 (``n_vocab`` 257).

    Needs no files, so it works everywhere; a model trained with it predicts raw bytes.

    >>> tok = ByteTokenizer()
    >>> tok.encode("hé<|endoftext|>")
    [104, 195, 169, 256]
    >>> tok.decode([104, 195, 169, 256])
    'hé<|endoftext|>'
    """

    name = "bytes"
    n_vocab = 257
    eot_token = 256

    def encode(self, text):
        """The UTF-8 bytes of ``text``; ``<|endoftext|>`` becomes token 256."""
        ids = []
        for i, piece in enumerate(text.split(END_OF_TEXT)):
            if i:
                ids.append(self.eot_token)
            ids.extend(piece.encode("utf-8"))
        return ids

    def decode(self, ids):
        """The text of the bytes (invalid UTF-8 becomes U+FFFD; token 256 is ``<|endoftext|>``)."""
        pieces, run = [], bytearray()
        for i in _as_id_list(ids):
            if 0 <= i < 256:
                run.append(i)
            elif i == self.eot_token:
                pieces.append(run.decode("utf-8", errors="replace") + END_OF_TEXT)
                run = bytearray()
            else:
                raise ValueError(f"token id {i} is outside the byte vocabulary (0..256)")
        pieces.append(run.decode("utf-8", errors="replace"))
        return "".join(pieces)

    def __repr__(self):
        return "ByteTokenizer(n_vocab=257, eot_token=256)"


TOKENIZERS = {"gpt2": GPT2Tokenizer, "bytes": ByteTokenizer}


def get_tokenizer(name="gpt2"):
    """The tokenizer called ``name``: ``"gpt2"`` (BPE through tiktoken) or ``"bytes"``.

    A tokenizer object (anything with ``encode`` and ``decode``) is returned as it is.

    >>> tok = get_tokenizer("bytes")
    >>> tok.n_vocab, tok.eot_token
    (257, 256)
    """
    if not isinstance(name, str):
        if hasattr(name, "encode") and hasattr(name, "decode"):
            return name
        raise TypeError(f"get_tokenizer expects a name or a tokenizer, got {type(name).__name__}")
    key = name.strip().lower()
    if key not in TOKENIZERS:
        raise ValueError(
            f"unknown tokenizer {name!r}: choose one of {', '.join(sorted(TOKENIZERS))}"
        )
    return TOKENIZERS[key]()
