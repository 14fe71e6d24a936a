"""What a known model is: its family, its special tokens, its sampling defaults, what it can do.

Each family declares its tokens, its defaults and its known checkpoints in its own folder
(`engine/families/<family>/`); `families.KNOWN_MODELS` gathers them.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..constants import SHIPPED_MODELS_DIR
from .options import Job, SamplingOptions


@dataclass(frozen=True)
class FamilyTokens:
    """Special-token strings of a family; ids are read from each checkpoint's tokenizer.

    `mask` is None for a family without a mask token (uniform-state diffusion).
    """

    mask: str | None
    eos: str
    eot: str | None = None
    bos: str | None = None
    expand: str | None = None


@dataclass(frozen=True)
class ModelSpec:
    """A known model (or a local checkpoint directory): where its weights live and how to sample it.

    `defaults` are the model's own sampling defaults, the first layer of every request's plan.
    """

    id: str
    name: str
    family: str
    tokens: FamilyTokens
    defaults: SamplingOptions
    capabilities: tuple[Job, ...]  # the jobs it has a sampler for
    chat: bool = False
    repo_id: str | None = None
    shift_logits: bool = False
    code: bool = False  # writes code: `fix_punctuation` would damage it, so it never applies
    context_length: int | None = None  # listed before the weights are cached (then config.json says)
    parameters: int | None = None  # listed before the weights are cached (then their headers say)
    shipped: bool = False  # the weights ship inside the package, in `models/<id>/`

    @property
    def local_dir(self) -> str | None:
        """Where the weights shipped inside the package are (`tiny`, `tiny-block`)."""
        return str(SHIPPED_MODELS_DIR / self.id) if self.shipped else None
