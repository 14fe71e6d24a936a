"""Corpus and tokenizer for the embedded `tiny` model.

The text is the standard library source of the interpreter that runs the
script, so every machine can rebuild it and nothing is downloaded or committed.
Held-out text is whole top-level modules chosen by a hash of the module name,
so the split is the same on every run and no held-out module leaks into training.
"""

from __future__ import annotations

import hashlib
import json
import sysconfig
from pathlib import Path

BOS = "<|startoftext|>"
EOS = "<|endoftext|>"
MASK = "<|mdm_mask|>"
EXPAND = "<|expand|>"
SPECIAL_TOKENS = [EOS, MASK, EXPAND, BOS]

HELD_OUT_PERCENT = 5
# Folders that hold tests, third-party code, build configuration or generated tables rather than library code.
EXCLUDED_DIRS = {"test", "tests", "idle_test", "site-packages", "__pycache__", "encodings"}
EXCLUDED_PREFIXES = ("config-", "_sysconfigdata")


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def top_level_module(path: Path, root: Path) -> str:
    """`json/decoder.py` -> `json`; `argparse.py` -> `argparse`."""
    first = path.relative_to(root).parts[0]
    return first[:-3] if first.endswith(".py") else first


def is_held_out(module: str) -> bool:
    """Deterministic ~5% split by top-level module name (stable across runs and machines)."""
    digest = hashlib.sha256(module.encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") % 100 < HELD_OUT_PERCENT


def corpus_files(root: Path | None = None) -> list[Path]:
    """Every stdlib `.py` file outside the excluded folders, in a stable order."""
    root = root or stdlib_root()
    files = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).parts
        if any(part in EXCLUDED_DIRS for part in rel[:-1]):
            continue
        if rel[0].startswith(EXCLUDED_PREFIXES):
            continue
        files.append(path)
    return files


def split_corpus(root: Path | None = None) -> tuple[list[Path], list[Path]]:
    """(train files, held-out files)."""
    root = root or stdlib_root()
    train, held = [], []
    for path in corpus_files(root):
        (held if is_held_out(top_level_module(path, root)) else train).append(path)
    return train, held


def read_text(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")


def train_tokenizer(texts: list[str], vocab_size: int):
    """Byte-level BPE over the training text, special tokens first so their ids are 0..3."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    # "\n" is always a token of its own, so text split at a line break (an infill prefix
    # ending in "\n", a middle starting with indentation) tokenizes exactly as the joined text.
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex("\n"), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return tokenizer


def save_tokenizer(tokenizer, directory: Path) -> None:
    """tokenizer.json + the config files `transformers.AutoTokenizer` needs to load it offline."""
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(directory / "tokenizer.json"))
    added = {
        str(tokenizer.token_to_id(tok)): {
            "content": tok,
            "lstrip": False,
            "normalized": False,
            "rstrip": False,
            "single_word": False,
            "special": True,
        }
        for tok in SPECIAL_TOKENS
    }
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": BOS,
        "eos_token": EOS,
        "pad_token": EOS,
        "mask_token": MASK,
        "additional_special_tokens": [EXPAND],
        "added_tokens_decoder": added,
        "model_max_length": 512,
        "clean_up_tokenization_spaces": False,
    }
    (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
    special_map = {
        "bos_token": BOS,
        "eos_token": EOS,
        "pad_token": EOS,
        "mask_token": MASK,
        "additional_special_tokens": [EXPAND],
    }
    (directory / "special_tokens_map.json").write_text(json.dumps(special_map, indent=2) + "\n")
