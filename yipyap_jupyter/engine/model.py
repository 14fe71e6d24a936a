"""A loaded diffusion model: network + tokenizer + spec, turning text requests into sampler runs.

This is where a prompt becomes a canvas (chat template, masks, prefix/suffix),
where the family picks its sampler, and where each `SamplerStep` becomes a
`GenerationStep` the service can show: decoded pieces, settled text, canvas.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from ..constants import MASK_GLYPH
from ..errors import ValidationError
from .checkpoint import load_network
from .checks import check_model
from .layout import read_config
from ..cancel import CancelToken
from .samplers.base import SamplerStep, make_generator
from .specs import ModelSpec
from .tokenizer import SpecialIds, load_tokenizer, special_ids

LLADA_REMASKING = ("low_confidence", "random")
DREAM_ALGS = ("origin", "maskgit_plus", "topk_margin", "entropy")
#: Variable-length infilling starts from this share of `max_new_tokens` masks and grows or shrinks from there.
VARIABLE_INFILL_START_FRACTION = 4


@dataclass(frozen=True)
class SamplingOptions:
    """How to sample; a field left None takes the model spec's default."""

    max_new_tokens: int | None = None
    steps: int | None = None
    block_length: int | None = None
    temperature: float | None = None
    remasking: str | None = None
    cfg_scale: float = 0.0
    top_p: float | None = None
    top_k: int | None = None
    alg_temp: float | None = None
    seed: int | None = None
    chat: bool | None = None
    threshold: float | None = None


@dataclass(frozen=True)
class GenerationStep:
    """One denoising step, decoded. `tokens` is the generated region (the middle for infilling).

    `text_tokens` counts the tokens of `text` (the region without end-of-text padding);
    `ended` says the model committed an end-of-text token, so what follows it is padding.
    """

    step: int
    total_steps: int
    tokens: tuple[int, ...]
    pieces: tuple[str, ...]
    changed: tuple[int, ...]
    settled_text: str
    canvas: str
    text: str
    progress: float
    text_tokens: int
    ended: bool


class _WithoutTokens(torch.nn.Module):
    """The network with some tokens never predicted.

    Fixed-length sampling has no use for `<|expand|>` or the start token, which a model
    trained for variable-length infilling (like `tiny`) can otherwise emit mid-text.
    """

    def __init__(self, network: torch.nn.Module, banned: list[int]) -> None:
        super().__init__()
        self.network = network
        self.banned = banned

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                position_ids: torch.Tensor | None = None) -> torch.Tensor:
        logits = self.network(input_ids, attention_mask, position_ids)
        logits[..., self.banned] = -torch.inf
        return logits


class DiffusionModel:
    """One model resident on one device."""

    def __init__(self, spec: ModelSpec, network: torch.nn.Module, tokenizer: Any, ids: SpecialIds) -> None:
        self.spec = spec
        self.network = network
        self.tokenizer = tokenizer
        self.ids = ids
        # end-of-text tokens are padding after the text: shown as nothing
        self._pieces: dict[int, str] = {ids.mask: MASK_GLYPH, **{stop: "" for stop in ids.stops}}

    @classmethod
    def load(
        cls, spec: ModelSpec, directory: Path | str, device: torch.device | str = "cpu", dtype: torch.dtype | None = None
    ) -> "DiffusionModel":
        """Load weights and tokenizer from a local directory (raises ModelLoadingError / ModelUnavailableError)."""
        directory = Path(directory)
        config = read_config(directory)
        tokenizer = load_tokenizer(directory)
        network = load_network(directory, device=device, dtype=dtype)
        model = cls(spec, network, tokenizer, special_ids(tokenizer, spec, config))
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

    def generate(
        self, prompt: str, options: SamplingOptions, cancel: CancelToken | None = None
    ) -> Iterator[GenerationStep]:
        """Continue `prompt` (through the chat template for chat models unless `options.chat` is False)."""
        self._require("generate")
        opts = self._resolve(options)
        chat = self.spec.chat if opts.chat is None else opts.chat
        if chat and getattr(self.tokenizer, "chat_template", None):
            text = self.tokenizer.apply_chat_template(
                [{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=False
            )
            prompt_ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        else:
            prompt_ids = self.tokenizer(prompt)["input_ids"]
        canvas = list(prompt_ids) + [self.ids.mask] * opts.max_new_tokens
        return self._decode_steps(self._fixed_length_steps(canvas, opts, cancel), cut_at_stop=True)

    def infill(
        self,
        prefix: str,
        suffix: str,
        options: SamplingOptions,
        length: int | None = None,
        cancel: CancelToken | None = None,
    ) -> Iterator[GenerationStep]:
        """Fill between `prefix` and `suffix`, which are kept verbatim.

        With `length`, exactly that many tokens (fixed length, every family). Without, variable
        length: the model may expand a mask into two or delete it, up to `max_new_tokens`.
        """
        opts = self._resolve(options)
        encode = lambda s: self.tokenizer(s, add_special_tokens=False)["input_ids"] if s else []  # noqa: E731
        head = [self.ids.bos] if self.ids.bos is not None else []
        if length is not None:
            self._require("infill")
            if length < 1:
                raise ValidationError("length must be at least 1")
            canvas = head + encode(prefix) + [self.ids.mask] * length + encode(suffix)
            opts = replace(opts, max_new_tokens=length, block_length=length, steps=min(opts.steps, length))
            return self._decode_steps(self._fixed_length_steps(canvas, opts, cancel), cut_at_stop=False)
        self._require("variable_infill")
        start = max(1, opts.max_new_tokens // VARIABLE_INFILL_START_FRACTION)
        canvas = head + encode(prefix) + [self.ids.mask] * start + encode(suffix) + [self.ids.eos]
        return self._decode_steps(self._variable_steps(canvas, opts, cancel), cut_at_stop=False)

    # -- internals ----------------------------------------------------------------

    def _require(self, capability: str) -> None:
        if capability not in self.spec.capabilities:
            raise ValidationError(f"model {self.spec.id} does not support {capability.replace('_', ' ')}")

    def _resolve(self, options: SamplingOptions) -> SamplingOptions:
        """Fill defaults from the spec and check ranges and the family's algorithm names."""
        d = self.spec.defaults
        opts = replace(
            options,
            max_new_tokens=options.max_new_tokens or d.max_new_tokens,
            temperature=d.temperature if options.temperature is None else options.temperature,
            remasking=options.remasking or d.remasking,
            top_p=options.top_p if options.top_p is not None else d.top_p,
            top_k=options.top_k if options.top_k is not None else d.top_k,
            alg_temp=options.alg_temp or 0.0,
        )
        n = opts.max_new_tokens
        if n < 1:
            raise ValidationError("max_new_tokens must be at least 1")
        block = opts.block_length or (d.block_length if n % d.block_length == 0 else n)
        if block < 1 or n % block:
            raise ValidationError(f"block_length {block} must divide max_new_tokens {n}")
        blocks = n // block
        steps = opts.steps or min(d.steps, n)
        if opts.steps is None:
            steps = max(blocks, steps // blocks * blocks)
        if not 1 <= steps <= n:
            raise ValidationError(f"steps must be between 1 and max_new_tokens ({n})")
        if opts.temperature < 0:
            raise ValidationError("temperature must be >= 0")
        if opts.threshold is not None and self.spec.family != "llada":
            raise ValidationError("threshold (parallel) decoding is available for LLaDA-architecture models")
        allowed = LLADA_REMASKING if self.spec.family == "llada" else DREAM_ALGS
        if opts.remasking not in allowed:
            raise ValidationError(f"remasking must be one of {', '.join(allowed)} for {self.spec.family} models")
        return replace(opts, block_length=block, steps=steps)

    def _tensor(self, ids: list[int]) -> torch.Tensor:
        return torch.tensor([ids], dtype=torch.long, device=self.device)

    def _fixed_length_steps(
        self, canvas: list[int], opts: SamplingOptions, cancel: CancelToken | None
    ) -> Iterator[SamplerStep]:
        generator = make_generator(opts.seed, self.device)
        banned = [i for i in (self.ids.expand, self.ids.bos) if i is not None]
        network = _WithoutTokens(self.network, banned) if banned else self.network
        if self.spec.family == "llada":
            from .samplers.llada import llada_sample

            return llada_sample(
                network, self._tensor(canvas), mask_id=self.ids.mask, steps=opts.steps,
                block_length=opts.block_length, temperature=opts.temperature, cfg_scale=opts.cfg_scale,
                remasking=opts.remasking, threshold=opts.threshold, generator=generator, cancel=cancel,
            )
        from .samplers.dream import dream_sample

        return dream_sample(
            network, self._tensor(canvas), mask_id=self.ids.mask, steps=opts.steps, alg=opts.remasking,
            alg_temp=opts.alg_temp, temperature=opts.temperature, top_p=opts.top_p, top_k=opts.top_k,
            generator=generator, cancel=cancel,
        )

    def _variable_steps(
        self, canvas: list[int], opts: SamplingOptions, cancel: CancelToken | None
    ) -> Iterator[SamplerStep]:
        from .samplers.variable_infill import variable_infill

        remasking = opts.remasking if opts.remasking in DREAM_ALGS else "entropy"
        return variable_infill(
            self.network, self._tensor(canvas), mask_id=self.ids.mask, delete_id=self.ids.eos,
            expand_id=self.ids.expand, max_new_tokens=opts.max_new_tokens, alg=remasking,
            temperature=opts.temperature, top_p=opts.top_p, top_k=opts.top_k, alg_temp=opts.alg_temp,
            shift_logits=self.spec.shift_logits, generator=make_generator(opts.seed, self.device), cancel=cancel,
        )

    def _decode_steps(self, steps: Iterator[SamplerStep], *, cut_at_stop: bool) -> Iterator[GenerationStep]:
        """Decode each sampler step's region: per-token pieces, settled prefix text, canvas, text."""
        mask, stops = self.ids.mask, self.ids.stops
        for s in steps:
            tokens = tuple(int(t) for t in s.canvas[s.span[0] : s.span[1]].tolist())
            end = len(tokens)
            if cut_at_stop:
                end = next((i for i, t in enumerate(tokens) if t in stops), end)
            shown = tokens[:end]
            kept = [t for t in shown if t != mask and t not in stops]
            pieces = tuple(self._piece(t) for t in tokens)
            first_mask = next((i for i, t in enumerate(shown) if t == mask), len(shown))
            changed = tuple(int(i) - s.span[0] for i in s.changed.tolist())
            yield GenerationStep(
                step=s.step,
                total_steps=s.total_steps,
                tokens=tokens,
                pieces=pieces,
                changed=changed,
                settled_text=self._text(shown[:first_mask]),
                canvas=self._canvas(shown),
                text=self._text(shown),
                progress=min(1.0, s.step / s.total_steps),
                text_tokens=len(kept),
                ended=end < len(tokens),
            )

    def _piece(self, token: int) -> str:
        if token not in self._pieces:
            self._pieces[token] = self.tokenizer.decode([token])
        return self._pieces[token]

    def _text(self, tokens: tuple[int, ...]) -> str:
        kept = [t for t in tokens if t != self.ids.mask and t not in self.ids.stops]
        return self.tokenizer.decode(kept, skip_special_tokens=True)

    def _canvas(self, tokens: tuple[int, ...]) -> str:
        """Decode runs of committed tokens together (multi-byte characters stay whole); a glyph per mask."""
        parts: list[str] = []
        run: list[int] = []
        for t in tokens:
            if t == self.ids.mask:
                parts.append(self._text(tuple(run)) + MASK_GLYPH)
                run = []
            else:
                run.append(t)
        parts.append(self._text(tuple(run)))
        return "".join(parts)
