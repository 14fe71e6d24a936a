"""Tokenizers from the checkpoint directory, with no remote code, and their special-token ids."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ModelLoadingError
from .specs import ModelSpec


@dataclass(frozen=True)
class SpecialIds:
    """Ids of the tokens the samplers need, read from the tokenizer (and config for the mask).

    `mask` is None for a family without one (uniform-state diffusion).
    """

    mask: int | None
    eos: int
    eot: int | None
    bos: int | None
    expand: int | None
    ends: tuple[int, ...] = ()

    @property
    def mask_id(self) -> int:
        """The mask id, for the samplers of masked families (whose checkpoints all have one)."""
        if self.mask is None:
            raise ModelLoadingError("this model has no mask token")
        return self.mask

    @property
    def stops(self) -> frozenset[int]:
        """Tokens that end a generation (with those the checkpoint's generation config names): after them is padding."""
        return frozenset(i for i in (self.eos, self.eot, *self.ends) if i is not None)


def load_tokenizer(directory: Path) -> Any:
    """`AutoTokenizer` from the local snapshot; Dream's custom tokenizer class falls back to Qwen2's."""
    # transformers 5 keeps Qwen2TokenizerFast as a lazy alias of Qwen2Tokenizer, absent from its type stubs
    from transformers import AutoTokenizer, Qwen2TokenizerFast  # type: ignore[attr-defined, unused-ignore]
    from transformers.utils import logging as hf_logging

    # transformers warns that our model types are unknown to it: true, and irrelevant for a tokenizer
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        return AutoTokenizer.from_pretrained(str(directory), trust_remote_code=False, local_files_only=True)
    except Exception as first:  # noqa: BLE001 - transformers raises many kinds here
        try:
            return Qwen2TokenizerFast.from_pretrained(str(directory), local_files_only=True)
        except Exception:  # noqa: BLE001
            raise ModelLoadingError(f"cannot load the tokenizer in {directory}: {first}") from None
    finally:
        hf_logging.set_verbosity(verbosity)


def special_ids(tokenizer: Any, spec: ModelSpec, config: dict[str, Any], ends: tuple[int, ...] = ()) -> SpecialIds:
    """Resolve the family's special tokens to ids; the mask id comes from config.json when present, else from the
    family's mask token, else from the tokenizer's declared mask token.

    `ends`: further end tokens, those the checkpoint's generation config names.
    """

    def lookup(token: str | None) -> int | None:
        if token is None:
            return None
        token_id = tokenizer.convert_tokens_to_ids(token)
        if token_id is None or token_id == tokenizer.unk_token_id:
            return None
        return int(token_id)

    mask = config.get("mask_token_id") or lookup(spec.tokens.mask)
    if mask is None and spec.tokens.mask is not None and getattr(tokenizer, "mask_token_id", None) is not None:
        mask = tokenizer.mask_token_id  # the tokenizer's own mask token, under another name than the family's usual
    eos = lookup(spec.tokens.eos)
    if eos is None and tokenizer.eos_token_id is not None:
        eos = int(tokenizer.eos_token_id)
    if (mask is None and spec.tokens.mask is not None) or eos is None:
        raise ModelLoadingError(f"tokenizer lacks the {spec.family} mask or end-of-text token")
    return SpecialIds(
        mask=None if mask is None else int(mask), eos=eos, eot=lookup(spec.tokens.eot), bos=lookup(spec.tokens.bos),
        expand=lookup(spec.tokens.expand), ends=ends,
    )
