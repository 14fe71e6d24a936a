"""A loaded diffusion model: network + tokenizer + spec, turning text requests into sampler runs.

This is where a prompt becomes a canvas (chat template, masks, prefix/suffix, checked
against the model's context length), where the options pick the sampler, and where
the sampler's token ids go through the one `IncrementalDecoder`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch

from ..cancel import CancelToken
from ..constants import MASK_GLYPH
from ..errors import ValidationError
from .checkpoint import load_network
from .checks import check_model
from .decoder import GenerationStep, IncrementalDecoder
from .layout import context_length, read_config
from .options import VARIABLE_INFILL_START_FRACTION, SamplingOptions, resolve
from .samplers.base import Program, SamplerStep, make_generator
from .specs import ModelSpec
from .tokenizer import SpecialIds, load_tokenizer, special_ids

__all__ = ["DiffusionModel", "GenerationStep", "PreparedRun", "SamplingOptions"]

_T = TypeVar("_T")


def _resolved(value: _T | None) -> _T:
    """An option after `resolve`, which sets every option the sampler that runs reads."""
    assert value is not None, "a sampler read an option resolve left unset"
    return value


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
        model = cls(spec, network, tokenizer, special_ids(tokenizer, spec, config), context_length(directory))
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
        canvas = self._checked(list(prompt_ids) + [self.ids.mask] * _resolved(opts.max_new_tokens))
        return self._prepared(canvas, opts, cut_at_stop=True, mask_glyph=mask_glyph)

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

        Fixed length: exactly `length` tokens (default `max_new_tokens`), every family. With
        `variable`, the model may expand a mask into two or delete it, up to `max_new_tokens`.
        """
        if not variable:
            return self._alone(self.prepare_infill(prefix, suffix, options, length, mask_glyph=mask_glyph), cancel)
        if length is not None:
            raise ValidationError("give either length or variable, not both")
        opts = resolve(options, self.spec, "variable_infill")
        n = _resolved(opts.max_new_tokens)
        head, encode = self._infill_parts()
        start = max(1, n // VARIABLE_INFILL_START_FRACTION)
        middle = [self.ids.mask] * start
        # the middle may grow up to max_new_tokens: that length must fit too
        canvas = self._checked(head + encode(prefix) + middle + encode(suffix) + [self.ids.eos],
                               growth=n - start)
        decoder = self._decoder(mask_glyph, cut_at_stop=False, exact_total=False)
        return decoder.decode(self._variable_steps(canvas, opts, cancel))

    def prepare_infill(
        self, prefix: str, suffix: str, options: SamplingOptions, length: int | None = None, *,
        mask_glyph: str = MASK_GLYPH,
    ) -> PreparedRun:
        """Fixed-length `infill` made ready for a decoding batch (raises ValidationError)."""
        if length is not None and length < 1:
            raise ValidationError("length must be at least 1")
        opts = resolve(options, self.spec, "infill", length)
        head, encode = self._infill_parts()
        canvas = self._checked(head + encode(prefix) + [self.ids.mask] * _resolved(opts.max_new_tokens) + encode(suffix))
        return self._prepared(canvas, opts, cut_at_stop=False, mask_glyph=mask_glyph)

    # -- internals ----------------------------------------------------------------

    def _infill_parts(self) -> tuple[list[int], Any]:
        """The start token (if the model has one) and the encoder of a prefix or suffix (no special tokens)."""
        encode = lambda s: self.tokenizer(s, add_special_tokens=False)["input_ids"] if s else []
        return ([self.ids.bos] if self.ids.bos is not None else []), encode

    def _alone(self, run: PreparedRun, cancel: CancelToken | None) -> Iterator[GenerationStep]:
        from .batch import run_alone

        return run.decoder.decode(run_alone(self.fixed_length_network, run.program, cancel))

    def _checked(self, canvas: list[int], growth: int = 0) -> torch.Tensor:
        """The canvas as a (1, L) tensor, refused when it (grown by `growth`) is longer than the model's context."""
        needed = len(canvas) + growth
        if self.context_length is not None and needed > self.context_length:
            raise ValidationError(
                f"the text and the tokens to generate ({needed} tokens) exceed the context length of "
                f"{self.spec.id} ({self.context_length} tokens): shorten the text or ask for fewer tokens"
            )
        return torch.tensor([canvas], dtype=torch.long, device=self.device)

    def _decoder(self, mask_glyph: str, *, cut_at_stop: bool, exact_total: bool) -> IncrementalDecoder:
        return IncrementalDecoder(self.tokenizer, self.ids, mask_glyph=mask_glyph, cut_at_stop=cut_at_stop,
                                  exact_total=exact_total)

    def _prepared(self, canvas: torch.Tensor, opts: SamplingOptions, *, cut_at_stop: bool, mask_glyph: str) -> PreparedRun:
        decoder = self._decoder(mask_glyph, cut_at_stop=cut_at_stop, exact_total=opts.threshold is None)
        sequences = 2 if opts.cfg_scale else 1
        return PreparedRun(self._program(canvas, opts), decoder, canvas.numel() * sequences)

    def _program(self, canvas: torch.Tensor, opts: SamplingOptions) -> Program:
        generator = make_generator(opts.seed, self.device)
        if self.spec.family == "llada":
            from .samplers.llada import llada_program

            return llada_program(
                canvas, mask_id=self.ids.mask, steps=_resolved(opts.steps),
                block_length=_resolved(opts.block_length), temperature=_resolved(opts.temperature),
                cfg_scale=_resolved(opts.cfg_scale), remasking=_resolved(opts.remasking),
                threshold=opts.threshold, cache=_resolved(opts.cache), generator=generator,
            )
        from .samplers.dream import dream_program

        whole_span = opts.block_length == opts.max_new_tokens and opts.cache == "none" and opts.threshold is None
        return dream_program(
            canvas, mask_id=self.ids.mask, steps=_resolved(opts.steps), alg=_resolved(opts.alg),
            alg_temp=_resolved(opts.alg_temp), temperature=_resolved(opts.temperature), top_p=opts.top_p,
            top_k=opts.top_k, block_length=None if whole_span else opts.block_length, cache=_resolved(opts.cache),
            threshold=opts.threshold, generator=generator,
        )

    def _variable_steps(
        self, canvas: torch.Tensor, opts: SamplingOptions, cancel: CancelToken | None
    ) -> Iterator[SamplerStep]:
        from .samplers.variable_infill import variable_infill

        if self.ids.expand is None:
            raise ValidationError(f"model {self.spec.id} cannot infill variable-length: its tokenizer has no"
                                  f" {self.spec.tokens.expand or 'expand'} token")
        return variable_infill(
            self.network, canvas, mask_id=self.ids.mask, delete_id=self.ids.eos,
            expand_id=self.ids.expand, max_new_tokens=_resolved(opts.max_new_tokens), alg=_resolved(opts.alg),
            temperature=_resolved(opts.temperature), top_p=opts.top_p, top_k=opts.top_k,
            alg_temp=_resolved(opts.alg_temp), shift_logits=self.spec.shift_logits,
            generator=make_generator(opts.seed, self.device), cancel=cancel,
        )
