"""A loaded diffusion model: network + tokenizer + spec, turning text requests into sampler runs.

This is where a prompt becomes a canvas (chat template, masks, prefix/suffix, checked
against the model's context length), where the options pick the sampler, and where
the sampler's token ids go through the one `IncrementalDecoder`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..cancel import CancelToken
from ..constants import MASK_GLYPH
from ..errors import ValidationError
from .checkpoint.checks import check_model
from .checkpoint.files import context_length, generation_ends, read_config
from .checkpoint.weights import load_network
from .decoder import GenerationStep, IncrementalDecoder
from .options import Job, SamplingOptions, resolve, sampler_for
from .samplers.base import Program
from .specs import ModelSpec
from .tokenizer import SpecialIds, load_tokenizer, special_ids

__all__ = ["DiffusionModel", "GenerationStep", "PreparedRun", "SamplingOptions"]


class _WithoutTokens(torch.nn.Module):
    """The network with some tokens never predicted.

    Fixed-length sampling has no use for `<|expand|>` or the start token, which a model
    trained for variable-length infilling (like `tiny`) can otherwise emit mid-text. They get
    the lowest finite logit, not -inf: classifier-free guidance subtracts two passes' logits,
    and -inf - -inf would be NaN.
    """

    def __init__(self, network: torch.nn.Module, banned: list[int]) -> None:
        super().__init__()
        self.network = network
        self.banned = banned

    @property
    def packs(self) -> bool:
        """Whether the network packs rows into one pass (see `engine.batch`)."""
        return bool(getattr(self.network, "packs", True))

    def forward(self, input_ids: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        logits = self.network(input_ids, **kwargs)
        logits[..., self.banned] = torch.finfo(logits.dtype).min
        return logits


@dataclass(frozen=True)
class PreparedRun:
    """A fixed-length request made ready to decode: its sampler program and the decoder of its steps.

    `tokens` is its canvas size (twice that under classifier-free guidance): what it adds to
    a decoding batch's passes.
    """

    program: Program
    decoder: IncrementalDecoder
    tokens: int


class DiffusionModel:
    """One model resident on one device."""

    def __init__(
        self, spec: ModelSpec, network: torch.nn.Module, tokenizer: Any, ids: SpecialIds, context_length: int | None = None
    ) -> None:
        self.spec = spec
        self.network = network
        self.tokenizer = tokenizer
        self.ids = ids
        self.context_length = context_length

    @classmethod
    def load(
        cls, spec: ModelSpec, directory: Path | str, device: torch.device | str = "cpu", dtype: torch.dtype | None = None
    ) -> DiffusionModel:
        """Load weights and tokenizer from a local directory (raises ModelLoadingError / ModelUnavailableError)."""
        directory = Path(directory)
        config = read_config(directory)
        tokenizer = load_tokenizer(directory)
        network = load_network(directory, device=device, dtype=dtype)
        ids = special_ids(tokenizer, spec, config, generation_ends(directory))
        model = cls(spec, network, tokenizer, ids, context_length(directory))
        check_model(model)
        return model

    @property
    def device(self) -> torch.device:
        return next(self.network.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.network.parameters()).dtype

    @property
    def parameters(self) -> int:
        return sum(p.numel() for p in self.network.parameters())

    def to(self, device: torch.device | str) -> None:
        """Move the network in place (used for the out-of-memory fallback to CPU)."""
        self.network.to(device)

    # -- requests -----------------------------------------------------------------

    @property
    def fixed_length_network(self) -> torch.nn.Module:
        """What the fixed-length samplers run: the network that never predicts `<|expand|>` or the start token."""
        banned = [i for i in (self.ids.expand, self.ids.bos) if i is not None]
        return _WithoutTokens(self.network, banned) if banned else self.network

    def generate(
        self, prompt: str, options: SamplingOptions, cancel: CancelToken | None = None, *, mask_glyph: str = MASK_GLYPH
    ) -> Iterator[GenerationStep]:
        """Continue `prompt` (through the chat template for chat models unless `options.chat` is False)."""
        return self._alone(self.prepare_generate(prompt, options, mask_glyph=mask_glyph), cancel)

    def prepare_generate(self, prompt: str, options: SamplingOptions, *, mask_glyph: str = MASK_GLYPH) -> PreparedRun:
        """`generate` made ready for a decoding batch (raises ValidationError for a request it cannot run)."""
        opts = resolve(options, self.spec, "generate")
        if opts.chat and getattr(self.tokenizer, "chat_template", None):
            text = self.tokenizer.apply_chat_template(
                [{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=False
            )
            prompt_ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        else:
            prompt_ids = self.tokenizer(prompt)["input_ids"]
        return self._prepared("generate", list(prompt_ids), [], opts, cut_at_stop=True, mask_glyph=mask_glyph)

    def infill(
        self,
        prefix: str,
        suffix: str,
        options: SamplingOptions,
        length: int | None = None,
        cancel: CancelToken | None = None,
        *,
        variable: bool = False,
        mask_glyph: str = MASK_GLYPH,
    ) -> Iterator[GenerationStep]:
        """Fill between `prefix` and `suffix`, which are kept verbatim.

        Fixed length: exactly `length` tokens (default `max_new_tokens`). With `variable`, the
        model may expand a mask into two or delete it, up to `max_new_tokens`.
        """
        if not variable:
            return self._alone(self.prepare_infill(prefix, suffix, options, length, mask_glyph=mask_glyph), cancel)
        if length is not None:
            raise ValidationError("give either length or variable, not both")
        opts = resolve(options, self.spec, "variable_infill")
        head, encode = self._infill_parts()
        sampler = sampler_for(self.spec, "variable_infill")
        assert sampler.alone is not None, "variable-length infilling runs alone"
        steps = sampler.alone(self, head + encode(prefix), encode(suffix), opts, cancel)
        return self._decoder(mask_glyph, cut_at_stop=False, exact_total=False).decode(steps)

    def prepare_infill(
        self, prefix: str, suffix: str, options: SamplingOptions, length: int | None = None, *,
        mask_glyph: str = MASK_GLYPH,
    ) -> PreparedRun:
        """Fixed-length `infill` made ready for a decoding batch (raises ValidationError)."""
        if length is not None and length < 1:
            raise ValidationError("length must be at least 1")
        opts = resolve(options, self.spec, "infill", length)
        head, encode = self._infill_parts()
        return self._prepared("infill", head + encode(prefix), encode(suffix), opts, cut_at_stop=False,
                              mask_glyph=mask_glyph)

    def canvas(self, ids: list[int], growth: int = 0) -> torch.Tensor:
        """`ids` as a (1, L) tensor on the model's device, refused when it (grown by `growth`) exceeds the context.

        Raises:
            ValidationError: longer than the model's context length.
        """
        needed = len(ids) + growth
        if self.context_length is not None and needed > self.context_length:
            raise ValidationError(
                f"the text and the tokens to generate ({needed} tokens) exceed the context length of "
                f"{self.spec.id} ({self.context_length} tokens): shorten the text or ask for fewer tokens"
            )
        return torch.tensor([ids], dtype=torch.long, device=self.device)

    # -- internals ----------------------------------------------------------------

    def _infill_parts(self) -> tuple[list[int], Any]:
        """The start token (if the model has one) and the encoder of a prefix or suffix (no special tokens)."""
        encode = lambda s: self.tokenizer(s, add_special_tokens=False)["input_ids"] if s else []
        return ([self.ids.bos] if self.ids.bos is not None else []), encode

    def _alone(self, run: PreparedRun, cancel: CancelToken | None) -> Iterator[GenerationStep]:
        from .runtime.batch import run_alone

        return run.decoder.decode(run_alone(self.fixed_length_network, run.program, cancel))

    def _decoder(self, mask_glyph: str, *, cut_at_stop: bool, exact_total: bool) -> IncrementalDecoder:
        return IncrementalDecoder(self.tokenizer, self.ids, mask_glyph=mask_glyph, cut_at_stop=cut_at_stop,
                                  exact_total=exact_total)

    def _prepared(self, job: Job, before: list[int], after: list[int], opts: SamplingOptions, *, cut_at_stop: bool,
                  mask_glyph: str) -> PreparedRun:
        sampler = sampler_for(self.spec, job)
        assert sampler.program is not None, f"{job} runs in a decoding batch"
        program = sampler.program(self, before, after, opts)
        decoder = self._decoder(mask_glyph, cut_at_stop=cut_at_stop, exact_total=opts.threshold is None)
        sequences = 2 if opts.cfg_scale else 1
        return PreparedRun(program, decoder, (len(before) + opts.max_new_tokens + len(after)) * sequences)
