"""transformers' `DiffusionGemmaForBlockDiffusion`, as our sampler programs run it: one decoder pass per call.

The model is the library's own class (native in transformers >= 5.25, kept by its
authors); this module only drives it. A `Session` holds what one request's passes share:
the encoder's key/value cache over the prompt and the finished canvases, the attention
masks and the position ids, kept as transformers' `generate` keeps them. A pass encodes
what the cache lacks (the prompt on the first pass, the last finished canvas on the first
pass of each later canvas), then runs the decoder on the current canvas with the previous
step's logits as self-conditioning.

The class cannot pack several requests into one pass (its cache and masks are per
sequence), so it says so (`packs = False`) and a decoding batch runs one pass per row.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ....errors import ModelLoadingError
from ...packing import LogitPositions, select_positions


class Session:
    """One request's encoder cache, masks and positions: what its passes share.

    Args:
        model: the library's model.
        prompt: the prompt's ids, (1, P) on the model's device.
    """

    def __init__(self, model: Any, prompt: torch.Tensor) -> None:
        from transformers import DynamicCache

        self.model = model
        self.canvas_length = int(model.config.canvas_length)
        self.cache = DynamicCache(config=model.config.get_text_config(decoder=True))
        length = prompt.shape[1]
        device = prompt.device
        self.unencoded: torch.Tensor | None = prompt  # what the next pass encodes first
        self.encoder_positions = torch.arange(0, length, dtype=torch.int32, device=device)[None]
        self.decoder_positions = torch.arange(length, length + self.canvas_length, dtype=torch.int32, device=device)[None]
        self.attention = torch.ones((1, length), dtype=torch.bool, device=device)
        self.decoder_attention = nn.functional.pad(self.attention, (0, self.canvas_length), value=True)
        self.decoder_mask: Any = None

    def append(self, canvas: torch.Tensor) -> None:
        """A finished canvas (1, C): the next pass encodes it, and the next canvas sits after it."""
        self.unencoded = canvas
        self.attention = nn.functional.pad(self.attention, (0, self.canvas_length), value=True)
        self.decoder_attention = nn.functional.pad(self.decoder_attention, (0, self.canvas_length), value=True)
        self.encoder_positions = self.decoder_positions
        end = int(self.decoder_positions[0, -1]) + 1
        self.decoder_positions = torch.arange(end, end + self.canvas_length, dtype=torch.int32,
                                              device=canvas.device)[None]
        self.decoder_mask = None

    def encode(self) -> None:
        """Run the encoder on what the cache lacks, and make the decoder's mask over the cache and a canvas."""
        if self.unencoded is None:
            return
        ids = self.unencoded.clone(memory_format=torch.contiguous_format)
        encoder = self.model.model.encoder
        shape_only = torch.empty((1, ids.shape[1], 0), dtype=self.model.dtype, device=ids.device)
        masks = encoder.create_masks_for_generate(config=self.model.config, inputs_embeds=shape_only,
                                                  attention_mask=self.attention, cache=self.cache,
                                                  position_ids=self.encoder_positions)
        self.cache = encoder(input_ids=ids, attention_mask=masks, cache=self.cache,
                             position_ids=self.encoder_positions).cache
        self.unencoded = None
        canvas_shape = torch.empty((1, self.canvas_length, 1), dtype=torch.long, device=ids.device)
        self.decoder_mask = self.model.model.decoder.create_diffusion_decoder_attention_mask(
            config=self.model.config, inputs_embeds=canvas_shape, cache=self.cache,
            decoder_attention_mask=self.decoder_attention)


class DiffusionGemmaNetwork(nn.Module):
    """The library's model behind our network interface: `network(canvas, session=..., self_conditioning=...)`.

    Returns the decoder's logits over the canvas (soft-capped, float32), as the library's
    `generate` reads them. `config` is the text config (its `vocab_size` is the vocabulary).
    """

    packs = False

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model
        self.config = model.config.text_config

    @classmethod
    def load(cls, directory: Path, device: torch.device | str, dtype: torch.dtype) -> DiffusionGemmaNetwork:
        """The checkpoint in `directory` (as `save_pretrained` writes it) on `device` in `dtype`.

        Raises:
            ModelLoadingError: files the library cannot read as this model, or that lack some of its
                weights (the library would draw those at random and answer garbage).
        """
        from transformers import DiffusionGemmaForBlockDiffusion
        from transformers.utils import logging as hf_logging

        verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
        hf_logging.set_verbosity_error()  # its load report and bar are for a terminal, not for our status events
        hf_logging.disable_progress_bar()
        try:
            loaded: Any = DiffusionGemmaForBlockDiffusion.from_pretrained(
                str(directory), dtype=dtype, local_files_only=True, output_loading_info=True)
            model, report = loaded
        except torch.OutOfMemoryError:
            raise
        except Exception as error:  # noqa: BLE001 - the library raises many kinds for a bad checkpoint
            raise ModelLoadingError(f"cannot load the DiffusionGemma checkpoint in {directory}: "
                                    f"{type(error).__name__}: {error}") from None
        finally:
            hf_logging.set_verbosity(verbosity)
            if bars:
                hf_logging.enable_progress_bar()
        missing = sorted(report["missing_keys"]) + sorted(report["mismatched_keys"])
        if missing:
            raise ModelLoadingError(f"checkpoint in {directory} does not match its config: missing or misshapen "
                                    f"{len(missing)} tensors (e.g. {', '.join(map(str, missing[:3]))})")
        return cls(model.to(device).eval())

    @classmethod
    def empty(cls, config: dict[str, Any]) -> DiffusionGemmaNetwork:
        """An uninitialised network for a `config.json` dict (on the current default device)."""
        from transformers import DiffusionGemmaConfig, DiffusionGemmaForBlockDiffusion

        fields = {key: value for key, value in config.items() if key not in ("model_type", "architectures")}
        return cls(DiffusionGemmaForBlockDiffusion(DiffusionGemmaConfig(**fields)))

    def session(self, prompt: torch.Tensor) -> Session:
        return Session(self.model, prompt)

    @property
    def embedding_dtype(self) -> torch.dtype:
        """The dtype the self-conditioning logits are fed back in (the decoder's embeddings')."""
        dtype: torch.dtype = self.model.model.decoder.embed_tokens.weight.dtype
        return dtype

    def forward(self, canvas: torch.Tensor, logits_at: LogitPositions | None = None, *, session: Session | None = None,
                self_conditioning: torch.Tensor | None = None) -> torch.Tensor:
        """The decoder's logits over `canvas` (1, C), at `logits_at` when given.

        Without a session (the load-time check) `canvas`'s first token is the prompt and its
        second, repeated, the canvas.
        """
        if session is None:
            session = self.session(canvas[:, :1])
            canvas = canvas[:, 1:2].expand(1, session.canvas_length)
        session.encode()
        output = self.model(decoder_input_ids=canvas, self_conditioning_logits=self_conditioning,
                            decoder_attention_mask=session.decoder_mask, cache=session.cache,
                            decoder_position_ids=session.decoder_positions)
        logits: torch.Tensor = output.logits
        return select_positions(logits, logits_at)
