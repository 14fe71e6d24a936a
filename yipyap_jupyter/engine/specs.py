"""The models we know by id, with each family's special tokens and sampling defaults.

Defaults follow the official demos: LLaDA (steps = gen length, block 32,
temperature 0, low-confidence remasking), Dream (entropy, temperature 0.2,
top_p 0.95, top_k 50: what the official `diffusion_generate` runs with under
transformers 4, whose legacy generation defaults carry top_k=50) and DreamOn
(entropy, temperature 0.2, top_p 0.9, one token per step).

The 7-8B models default to Fast-dLLM's dual cache with confidence threshold 0.9:
its paper measures 8x (256 tokens) to 27x (1024) the reference speed on LLaDA for
about one point of GSM8K, the trade a notebook user waiting for an answer wants.
`tiny` keeps the exact sampler (`cache="none"`, no threshold): it is rarely
confident, so a threshold saves little, and the approximate cache costs it
agreement with its own plain output.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from ..constants import TINY_MODEL_DIR

Family = Literal["llada", "dream", "dreamon"]
Capability = Literal["generate", "infill", "variable_infill"]


@dataclass(frozen=True)
class FamilyTokens:
    """Special-token strings of a family; ids are read from each checkpoint's tokenizer."""

    mask: str
    eos: str
    eot: str | None = None
    bos: str | None = None
    expand: str | None = None


@dataclass(frozen=True)
class SamplingDefaults:
    """A model's own sampling defaults (the first layer of every request's plan)."""

    max_new_tokens: int = 128
    steps: int = 128
    block_length: int = 32
    temperature: float = 0.0
    remasking: str = "low_confidence"
    alg: str = "entropy"
    top_p: float | None = None
    top_k: int | None = None
    threshold: float | None = None
    cache: str = "none"


@dataclass(frozen=True)
class ModelSpec:
    """A known model: where its weights live and how to sample it."""

    id: str
    name: str
    family: Family
    tokens: FamilyTokens
    defaults: SamplingDefaults
    capabilities: tuple[Capability, ...]
    chat: bool = False
    repo_id: str | None = None
    shift_logits: bool = False
    code: bool = False  # writes code: `fix_punctuation` would damage it, so it never applies

    @property
    def local_dir(self) -> str | None:
        """Weights shipped inside the package (only `tiny`)."""
        return str(TINY_MODEL_DIR) if self.id == "tiny" else None


LLADA_TOKENS = FamilyTokens(mask="<|mdm_mask|>", eos="<|endoftext|>", eot="<|eot_id|>", bos="<|startoftext|>")
DREAM_TOKENS = FamilyTokens(mask="<|mask|>", eos="<|endoftext|>", eot="<|im_end|>", bos="<|beginoftext|>")
DREAMON_TOKENS = FamilyTokens(mask="<|mask|>", eos="<|endoftext|>", eot="<|im_end|>", bos="<|beginoftext|>",
                              expand="<|expand|>")
TINY_TOKENS = FamilyTokens(mask="<|mdm_mask|>", eos="<|endoftext|>", bos="<|startoftext|>", expand="<|expand|>")

LLADA_DEFAULTS = SamplingDefaults(max_new_tokens=128, steps=128, block_length=32, temperature=0.0,
                                  threshold=0.9, cache="dual")
DREAM_DEFAULTS = SamplingDefaults(max_new_tokens=128, steps=128, block_length=32, temperature=0.2, top_p=0.95, top_k=50,
                                  threshold=0.9, cache="dual")
DREAMON_DEFAULTS = SamplingDefaults(max_new_tokens=64, steps=64, block_length=64, temperature=0.2, top_p=0.9)
#: A local checkpoint directory may be any size: it gets the exact sampler unless the request asks for more.
LOCAL_LLADA_DEFAULTS = replace(LLADA_DEFAULTS, threshold=None, cache="none")
LOCAL_DREAM_DEFAULTS = replace(DREAM_DEFAULTS, threshold=None, cache="none")
TINY_DEFAULTS = SamplingDefaults(max_new_tokens=64, steps=32, block_length=32, temperature=0.0)

KNOWN_MODELS: dict[str, ModelSpec] = {
    spec.id: spec
    for spec in (
        ModelSpec("tiny", "yipyap tiny (LLaDA architecture, Python stdlib)", "llada", TINY_TOKENS, TINY_DEFAULTS,
                  ("generate", "infill", "variable_infill"), code=True),
        ModelSpec("llada-8b-instruct", "LLaDA 8B Instruct", "llada", LLADA_TOKENS, LLADA_DEFAULTS,
                  ("generate", "infill"), chat=True, repo_id="GSAI-ML/LLaDA-8B-Instruct"),
        ModelSpec("llada-8b-base", "LLaDA 8B Base", "llada", LLADA_TOKENS, LLADA_DEFAULTS,
                  ("generate", "infill"), repo_id="GSAI-ML/LLaDA-8B-Base"),
        ModelSpec("llada-1.5", "LLaDA 1.5 (8B, VRPO)", "llada", LLADA_TOKENS, LLADA_DEFAULTS,
                  ("generate", "infill"), chat=True, repo_id="GSAI-ML/LLaDA-1.5"),
        ModelSpec("dream-v0-instruct-7b", "Dream v0 Instruct 7B", "dream", DREAM_TOKENS, DREAM_DEFAULTS,
                  ("generate", "infill"), chat=True, repo_id="Dream-org/Dream-v0-Instruct-7B", shift_logits=True),
        ModelSpec("dream-v0-base-7b", "Dream v0 Base 7B", "dream", DREAM_TOKENS, DREAM_DEFAULTS,
                  ("generate", "infill"), repo_id="Dream-org/Dream-v0-Base-7B", shift_logits=True),
        ModelSpec("dreamon-v0-7b", "DreamOn v0 7B (variable-length infilling)", "dreamon", DREAMON_TOKENS,
                  DREAMON_DEFAULTS, ("infill", "variable_infill"), repo_id="Dream-org/DreamOn-v0-7B", shift_logits=True),
    )
}


def spec_for_local(model_id: str, family: Family, has_expand: bool) -> ModelSpec:
    """A spec for a user's local checkpoint directory, with its family's defaults."""
    if family == "llada":
        tokens = TINY_TOKENS if has_expand else LLADA_TOKENS
        caps: tuple[Capability, ...] = ("generate", "infill", "variable_infill") if has_expand else ("generate", "infill")
        return ModelSpec(model_id, model_id, "llada", tokens, LOCAL_LLADA_DEFAULTS, caps)
    if family == "dreamon":
        return ModelSpec(model_id, model_id, "dreamon", DREAMON_TOKENS, DREAMON_DEFAULTS,
                         ("infill", "variable_infill"), shift_logits=True)
    return ModelSpec(model_id, model_id, "dream", DREAM_TOKENS, LOCAL_DREAM_DEFAULTS, ("generate", "infill"),
                     shift_logits=True)
