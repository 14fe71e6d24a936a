"""Checks a checkpoint must pass before it replaces the served model.

A damaged checkpoint can load without an error and then answer garbage: a config
whose mask id lies outside the vocabulary, weights overwritten with noise, a
missing tokenizer replaced by an empty one. `check_config` refuses a config that
is not what its family's schema says (types, ranges, special ids inside the
vocabulary); `check_model` refuses a loaded model whose tokenizer disagrees with
its network, whose weights are not finite, or whose first forward pass does not
give finite logits. Every refusal is a `ModelLoadingError`, raised before the
runtime swaps models, so the previous model keeps answering.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from typing import TYPE_CHECKING, Any

from ...errors import ModelLoadingError

if TYPE_CHECKING:
    from ..model import DiffusionModel

#: Pairs (a, b) of config fields where a must divide b (attention heads split the width evenly).
DIVIDES = (("n_heads", "d_model"), ("n_kv_heads", "n_heads"),
           ("num_attention_heads", "hidden_size"), ("num_key_value_heads", "num_attention_heads"))
#: Elements checked for finiteness at a time, so the check never needs much extra memory.
FINITE_CHUNK = 1 << 24
#: Length of the smoke forward pass's input.
SMOKE_TOKENS = 8


def known_fields(cls: type, raw: dict[str, Any]) -> dict[str, Any]:
    """The entries of a raw `config.json` that the config dataclass `cls` has a field for (None left out)."""
    names = {field.name for field in dataclasses.fields(cls)}
    return {key: value for key, value in raw.items() if key in names and value is not None}


def check_config(config: Any) -> None:
    """Validate a parsed `config.json` dataclass (`LLaDAConfig`, `DreamConfig`) against its fields' types.

    Integers must be integers (not booleans) of at least 1, floats finite and positive,
    `*_token_id` fields inside `[0, vocab_size)`, and head counts must divide the width.
    """
    hints = typing.get_type_hints(type(config))
    problems = []
    for field in dataclasses.fields(config):
        value: Any = getattr(config, field.name)
        allowed = typing.get_args(hints[field.name]) or (hints[field.name],)
        if value is None and type(None) in allowed:
            continue
        kind = next((t for t in (bool, int, float, str) if t in allowed), None)
        if kind is None:
            continue
        if _wrong_type(value, kind):
            problems.append(f"{field.name} must be {'a number' if kind is float else kind.__name__},"
                            f" not {type(value).__name__}")
        elif field.name.endswith("_token_id"):
            if not 0 <= value < config.vocab_size:
                problems.append(f"{field.name} {value} is outside the vocabulary (0..{config.vocab_size - 1})")
        elif kind is int and value < 1:
            problems.append(f"{field.name} must be at least 1, not {value}")
        elif kind is float and not (math.isfinite(value) and value > 0):
            problems.append(f"{field.name} must be a positive finite number, not {value}")
    if not problems:
        names = {field.name for field in dataclasses.fields(config)}
        for part, whole in DIVIDES:
            if {part, whole} <= names and getattr(config, part) and getattr(config, whole) % getattr(config, part):
                problems.append(f"{part} {getattr(config, part)} does not divide {whole} {getattr(config, whole)}")
    if problems:
        raise ModelLoadingError(f"config.json does not fit the {type(config).__name__} schema: {'; '.join(problems)}")


def _wrong_type(value: Any, kind: type) -> bool:
    """Whether `value` is not a `kind` as JSON means it: booleans are not numbers, integers are floats."""
    return isinstance(value, bool) != (kind is bool) or not isinstance(value, (int, float) if kind is float else kind)


def check_model(model: DiffusionModel) -> None:
    """Refuse a loaded model that would answer garbage (tokenizer, weights, first forward pass)."""
    vocab_size: int = typing.cast(Any, model.network).config.vocab_size  # our networks carry their config.json
    _check_tokenizer(model, vocab_size)
    _check_weights(model)
    _check_forward(model)


def _check_tokenizer(model: DiffusionModel, vocab_size: int) -> None:
    """The tokenizer must fit the network's vocabulary and know the special tokens where the config puts them."""
    tokens = len(model.tokenizer)
    if tokens > vocab_size:
        raise ModelLoadingError(f"the tokenizer has {tokens} tokens, more than the model's vocabulary of {vocab_size}")
    ids = model.ids
    for name in ("mask", "eos", "eot", "bos", "expand"):
        token_id = getattr(ids, name)
        if token_id is not None and not 0 <= token_id < tokens:
            raise ModelLoadingError(f"the {name} token id {token_id} is not in the tokenizer ({tokens} tokens):"
                                    " the tokenizer is missing or does not belong to these weights")
    mask = model.spec.tokens.mask
    if mask is None:  # a family without a mask token
        return
    known = model.tokenizer.convert_tokens_to_ids(mask)
    if known is not None and known != model.tokenizer.unk_token_id and known != ids.mask:
        raise ModelLoadingError(f"config.json says the mask token is id {ids.mask}, the tokenizer says {mask} is {known}")


def _check_weights(model: DiffusionModel) -> None:
    import torch

    for name, parameter in model.network.named_parameters():
        if not parameter.is_floating_point():
            raise ModelLoadingError(f"weight {name} is {parameter.dtype}, not floating point")
        if not all(torch.isfinite(chunk).all() for chunk in parameter.detach().reshape(-1).split(FINITE_CHUNK)):
            raise ModelLoadingError(f"weight {name} holds NaN or infinite values: the weight file is corrupt")


def _check_forward(model: DiffusionModel) -> None:
    """One forward pass over a few masks (end tokens for a family without masks) must give finite logits."""
    import torch

    from ..devices import is_out_of_memory

    filler = model.ids.eos if model.ids.mask is None else model.ids.mask
    ids = torch.tensor([[model.ids.eos] + [filler] * (SMOKE_TOKENS - 1)], device=model.device)
    try:
        with torch.no_grad():
            logits = model.network(ids)
    except Exception as error:
        if is_out_of_memory(error):
            raise  # the runtime's fallback handles it (`runtime.residency`)
        raise ModelLoadingError(f"the model's first forward pass failed: {type(error).__name__}: {error}") from None
    if not torch.isfinite(logits).all():
        raise ModelLoadingError("the model's first forward pass gave NaN or infinite logits: the weights are corrupt")
