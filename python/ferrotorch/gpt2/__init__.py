"""The GPT-2 config runner: build a model from a config dict, describe what it costs, pretrain it,
generate text and load/save the real GPT-2 weights (Hugging Face layout).

>>> from ferrotorch.gpt2 import GPTModel, describe
>>> describe("gpt2-small").params_tied
124412160
"""

from ferrotorch.gpt2.config import (
    GPT_CONFIG_124M,
    PRESETS,
    Description,
    describe,
    get_config,
    validate_config,
)
from ferrotorch.gpt2.data import SlidingWindowDataset, default_corpus, load_text, make_loaders
from ferrotorch.gpt2.generate import generate, generate_text
from ferrotorch.gpt2.model import GPTModel, KVCache
from ferrotorch.gpt2.tokenizer import get_tokenizer
from ferrotorch.gpt2.train import load_checkpoint, save_checkpoint, train

# Imported eagerly: a name shared with its submodule (`generate`, `train`) must be bound to the
# function before anything imports the submodule. tiktoken, tqdm and matplotlib are imported
# only inside the functions that need them, so `import ferrotorch.gpt2` stays light.

__all__ = [
    "GPT_CONFIG_124M", "PRESETS", "Description", "describe", "get_config", "validate_config",
    "GPTModel", "KVCache", "get_tokenizer", "SlidingWindowDataset", "load_text", "default_corpus",
    "make_loaders", "generate", "generate_text", "train", "save_checkpoint", "load_checkpoint",
]

