"""DiffusionGemma's uniform-state canvas diffusion as a program: one decoder pass per step.

No mask token: a canvas of `canvas_length` tokens starts uniformly random. Each step the
decoder predicts every position (the previous step's logits fed back as self-conditioning),
a linear temperature schedule scales the logits (`t_max` at the first step down to `t_min`),
a denoiser canvas is drawn from them, the entropy-bound rule accepts the lowest-entropy
positions, and every position not accepted is re-noised with fresh random tokens. A canvas
ends after `steps` steps, or earlier when its argmax canvas has been stable for
`stability_threshold` steps and the mean entropy is under `confidence_threshold`; its
argmax canvas is appended to the output. Canvases follow one another until
`max_new_tokens` (rounded up to whole canvases) or a canvas holding an end token.

The schedule, the sampler and the stopping rule are transformers' own public classes
(`LinearTemperatureScheduleLogitsProcessor`, `EntropyBoundSampler`,
`StableAndConfidentStoppingCriteria`); the loop follows `DiffusionGemmaForBlockDiffusion.generate`
pass for pass, so a run gives the tokens of `torch.manual_seed(seed); model.generate(...)` with
the same options and the same number of decoder passes. The one difference: every random
draw (the canvases, the denoiser's tokens) comes from the request's own generator, never
torch's global one, so concurrent requests never share random state.

Each step shows the argmax canvas (the draft): positions accepted this step as settled, the
rest unsettled (real tokens that may still change); finished canvases are settled and final.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import torch

from ....errors import ValidationError
from ...samplers.base import SETTLED, UNSETTLED, Forward, Program, SamplerStep, make_generator

if TYPE_CHECKING:
    from ...model import DiffusionModel
    from ...options import SamplingOptions
    from .network import DiffusionGemmaNetwork


def _seeded_sampler(generator: torch.Generator, entropy_bound: float, canvas_length: int, vocab_size: int,
                    steps: int) -> Any:
    """transformers' `EntropyBoundSampler`, drawing its random canvases from `generator`."""
    from transformers import EntropyBoundSampler, EntropyBoundSamplerConfig

    class SeededEntropyBoundSampler(EntropyBoundSampler):
        def initialize_canvas(self, batch_size: int, device: torch.device) -> torch.LongTensor:
            drawn = torch.randint(0, int(self.vocab_size), (batch_size, int(self.canvas_length)), device=device,
                                  generator=generator)
            return cast(torch.LongTensor, drawn)

    return SeededEntropyBoundSampler(EntropyBoundSamplerConfig(entropy_bound=float(entropy_bound)), canvas_length,
                                     vocab_size, steps)


@torch.no_grad()
def diffusiongemma_program(
    network: DiffusionGemmaNetwork,
    prompt: torch.Tensor,
    *,
    max_new_tokens: int,
    steps: int,
    entropy_bound: float,
    t_min: float,
    t_max: float,
    stability_threshold: int,
    confidence_threshold: float,
    eos_ids: tuple[int, ...] = (),
    pad_id: int | None = None,
    generator: torch.Generator | None = None,
) -> Program:
    """Canvases after `prompt` (1, P), on the network's device; one `Forward` and one `SamplerStep` per step.

    Args:
        network: the library's model behind `DiffusionGemmaNetwork`.
        prompt: the prompt's ids.
        max_new_tokens: the output is this many tokens rounded up to whole canvases.
        steps: the most denoising steps per canvas (`max_denoising_steps`).
        entropy_bound, t_min, t_max, stability_threshold, confidence_threshold: as transformers names them.
        eos_ids: end tokens (the generation config's): a canvas holding one is the last, and what
            follows the first becomes `pad_id`.
        generator: the source of every random draw.

    Yields:
        `Forward`s, and one `SamplerStep` per step: the canvas is the prompt, the finished
        canvases and the current argmax canvas; `changed` the positions accepted this step (at
        a canvas's last step, also those no step accepted: they become final there).

    Raises:
        ValidationError: bad arguments.
    """
    from transformers import LinearTemperatureScheduleLogitsProcessor, StableAndConfidentStoppingCriteria

    if steps < 1:
        raise ValidationError(f"steps must be >= 1, got {steps}")
    if not (entropy_bound > 0 and t_min > 0 and t_max > 0):
        raise ValidationError("entropy_bound, t_min and t_max must be > 0")
    if stability_threshold < 0 or confidence_threshold < 0:
        raise ValidationError("stability_threshold and confidence_threshold must be >= 0")
    canvas_length = int(network.model.config.canvas_length)
    vocab_size = int(network.config.vocab_size)
    canvases = -(-max_new_tokens // canvas_length)
    device = prompt.device
    start = prompt.shape[1]
    generator = generator or make_generator(None, device)
    sampler = _seeded_sampler(generator, entropy_bound, canvas_length, vocab_size, steps)
    schedule: Any = LinearTemperatureScheduleLogitsProcessor(t_min=t_min, t_max=t_max, max_denoising_steps=steps)
    stopping: Any = StableAndConfidentStoppingCriteria(stability_threshold=stability_threshold,
                                                  confidence_threshold=confidence_threshold)
    ends = torch.tensor(eos_ids, device=device)
    session = network.session(prompt)
    output = prompt
    step = 0
    for canvas_index in range(canvases):
        current = sampler.initialize_canvas(1, device)
        conditioning: torch.Tensor | None = None
        stopping.reset()
        ever_accepted = torch.zeros(canvas_length, dtype=torch.bool, device=device)
        for cur_step in range(steps, 0, -1):  # steps *remaining*, as the library counts them
            logits = yield Forward(current, inputs={"session": session, "self_conditioning": conditioning})
            assert logits is not None
            remaining = torch.tensor(cur_step, device=device, dtype=torch.int32)
            scaled = schedule(output, logits, remaining)
            probs = torch.softmax(scaled, dim=-1, dtype=torch.float32)
            denoised = torch.multinomial(probs.view(-1, vocab_size), 1, generator=generator)
            denoised = denoised.view(1, canvas_length)
            draft = torch.argmax(scaled, dim=-1)
            accepted = sampler.accept_canvas(current, denoised, scaled, remaining).clone()
            current = sampler.renoise_canvas(accepted, remaining).clone()
            finished = bool(stopping(draft, scaled).all())
            conditioning = scaled.to(network.embedding_dtype)
            step += 1
            canvas_over = finished or cur_step == 1
            last = canvas_over and (canvas_index == canvases - 1 or bool(torch.isin(draft, ends).any()))
            accepted_now = sampler.accepted_token_mask[0]
            ever_accepted |= accepted_now
            # a finished canvas is final everywhere: positions no step accepted become final at this one
            chosen = (accepted_now | ~ever_accepted if canvas_over else accepted_now).nonzero().flatten()
            states = torch.full((start + canvas_length * (canvas_index + 1),), SETTLED, dtype=torch.int8)
            if not canvas_over:
                states[output.shape[1]:] = torch.where(accepted_now.cpu(), SETTLED, UNSETTLED)
            shown = torch.cat([output, draft], dim=1)[0]
            if last and eos_ids and pad_id is not None:
                shown = _pad_after_end(shown, start + canvas_length * canvas_index, ends, pad_id)
            left = 0 if last else (cur_step - 1 if not canvas_over else 0) + steps * (canvases - canvas_index - 1)
            yield SamplerStep(
                step=step,
                total_steps=step + left,
                canvas=shown.to("cpu", copy=True),
                changed=(chosen + output.shape[1]).cpu(),
                confidences=probs[0, chosen].max(dim=-1).values.float().cpu(),
                span=(start, shown.numel()),
                states=states,
                settled_end=shown.numel() if canvas_over else output.shape[1],
                progress=1.0 if last else (canvas_index + (1.0 if canvas_over else 0.0)) / canvases,
            )
            if canvas_over:
                output = torch.cat([output, draft], dim=1)
                break
        if last:
            return
        session.append(output[:, -canvas_length:])


def _pad_after_end(tokens: torch.Tensor, canvas_start: int, ends: torch.Tensor, pad_id: int) -> torch.Tensor:
    """Everything after the first end token of the last canvas becomes `pad_id`, as `generate` returns it."""
    tokens = tokens.clone()
    canvas = tokens[canvas_start:]
    is_end = torch.isin(canvas, ends)
    seen = is_end.cumsum(dim=-1)
    canvas[(seen > 0) & ~((seen == 1) & is_end)] = pad_id
    return tokens


def model_program(model: DiffusionModel, before: list[int], after: list[int], options: SamplingOptions) -> Program:
    """The program of a resolved request on a loaded model: canvases after the prompt `before`."""
    from .network import DiffusionGemmaNetwork

    network = model.network
    assert isinstance(network, DiffusionGemmaNetwork), "a DiffusionGemma model runs the library's class"
    canvas_length = int(network.model.config.canvas_length)
    canvases = -(-options.max_new_tokens // canvas_length)
    prompt = model.canvas(before, growth=canvases * canvas_length)
    generation = network.model.generation_config
    eos = generation.eos_token_id
    return diffusiongemma_program(
        network, prompt, max_new_tokens=options.max_new_tokens, steps=options.steps,
        entropy_bound=options.entropy_bound, t_min=options.t_min, t_max=options.t_max,
        stability_threshold=options.stability_threshold, confidence_threshold=options.confidence_threshold,
        eos_ids=() if eos is None else tuple(eos) if isinstance(eos, list) else (eos,),
        pad_id=generation.pad_token_id, generator=make_generator(options.seed, model.device),
    )
