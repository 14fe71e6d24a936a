"""The block sampler (LLaDA 2.0 / 2.1, SDAR) against the official loops restated in block_reference: the same
tokens and the same forward passes committing the same positions, with the block cache and without."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from block_checkpoints import llada2_config, llada2_network, sdar_config, sdar_network
from block_reference import llada2_forward, llada20_generate, llada21_generate, sdar_forward, sdar_generate

from yipyap_jupyter.engine.checkpoint.weights import official_state
from yipyap_jupyter.engine.families.llada2.sampler import llada2_program
from yipyap_jupyter.engine.families.sdar.sampler import sdar_program
from yipyap_jupyter.engine.runtime.batch import DecodingBatch, run_alone
from yipyap_jupyter.engine.samplers.base import SamplerStep
from yipyap_jupyter.engine.samplers.block import block_program, transfer_schedule
from yipyap_jupyter.errors import ValidationError

MASK, EOS = 47, 46
PROMPTS = {"tail": [5, 9, 2], "whole blocks": [5, 9, 2, 7, 1, 3, 8, 6], "blocks and a tail": list(range(1, 12))}


def _never_predicts_mask(logits: torch.Tensor) -> torch.Tensor:
    """Like a trained model, which gives the mask token no probability (official and ours alike)."""
    logits[..., MASK] = -1e4
    return logits


def _pair(family: str) -> tuple[torch.nn.Module, Callable[..., Any]]:
    config = llada2_config() if family == "llada2" else sdar_config()
    network = (llada2_network if family == "llada2" else sdar_network)(config, lively=True)
    network.register_forward_hook(lambda module, args, out: _never_predicts_mask(out))
    weights = {name: t.double() for name, t in official_state(network).items()}
    reference = llada2_forward if family == "llada2" else sdar_forward

    def official(block_length: int) -> Callable[..., Any]:
        def forward(ids: torch.Tensor, start: int, past: Any) -> Any:
            logits, present = reference(weights, config, ids, start, past, block_length)
            return _never_predicts_mask(logits), present
        return forward

    return network, official


@pytest.fixture(scope="module")
def llada2() -> tuple[torch.nn.Module, Callable[..., Any]]:
    return _pair("llada2")


@pytest.fixture(scope="module")
def sdar() -> tuple[torch.nn.Module, Callable[..., Any]]:
    return _pair("sdar")


def _run(network: torch.nn.Module, program: Any) -> list[SamplerStep]:
    return list(run_alone(network, program))


def _canvas(prompt: list[int], gen_length: int) -> torch.Tensor:
    return torch.tensor([prompt + [MASK] * gen_length])


def _generated(steps: list[SamplerStep], stop: int | None = None) -> list[int]:
    """The generated tokens of the last step, cut after the first `stop` (what LLaDA 2.x's generate returns)."""
    start, end = steps[-1].span
    tokens = steps[-1].canvas[start:end].tolist()
    return tokens[:tokens.index(stop) + 1] if stop in tokens else tokens


def _passes(steps: list[SamplerStep]) -> list[list[int]]:
    return [s.changed.tolist() for s in steps]


def _inside(passes: list[list[int]], end: int) -> list[list[int]]:
    """The reference's passes, positions past the canvas dropped (what a step reports)."""
    return [[p for p in positions if p < end] for positions in passes]


def test_the_schedule_gives_the_remainder_to_the_first_steps() -> None:
    assert transfer_schedule(32, 32) == [1] * 32
    assert transfer_schedule(8, 3) == [3, 3, 2]
    assert transfer_schedule(4, 6) == [1, 1, 1, 1, 0, 0]


@pytest.mark.parametrize("cache", ["none", "prefix"])
@pytest.mark.parametrize("prompt", PROMPTS)
@pytest.mark.parametrize("steps, threshold", [(8, 0.95), (3, 0.3), (8, 0.15)])
def test_llada20_commits_what_the_official_generate_commits(llada2, cache, prompt, steps, threshold) -> None:
    network, official = llada2
    tokens, block_length, gen_length = PROMPTS[prompt], 8, 20
    expected, passes = llada20_generate(official(block_length), tokens, gen_length=gen_length,
                                        block_length=block_length, steps=steps, threshold=threshold, mask_id=MASK,
                                        eos_id=EOS)
    ours = _run(network, llada2_program(_canvas(tokens, gen_length), mask_id=MASK, eos_id=EOS,
                                        block_length=block_length, steps=steps, threshold=threshold, cache=cache))
    assert _generated(ours, EOS) == expected
    assert _passes(ours) == _inside(passes, len(tokens) + gen_length)
    assert any(len(p) > 1 for p in passes) or threshold > 0.5  # low thresholds commit several at once


def _token_of_second_block(steps: list[SamplerStep], block_length: int) -> int:
    """A token a run without end tokens writes in its second generated block and not before it: made the end
    token, it stops the run after that block."""
    start = steps[-1].span[0]
    second = (start // block_length + 1) * block_length
    before = steps[-1].canvas[start:second].tolist()
    return next(t for t in steps[-1].canvas[second:second + block_length].tolist() if t not in before)


@pytest.mark.parametrize("eos_early_stop", [False, True])
@pytest.mark.parametrize("cache", ["none", "prefix"])
def test_llada20_stops_at_the_end_token_as_the_official_generate(llada2, eos_early_stop, cache) -> None:
    network, official = llada2
    prompt = PROMPTS["tail"]
    free = _run(network, llada2_program(_canvas(prompt, 24), mask_id=MASK, eos_id=MASK, block_length=8, steps=4,
                                        threshold=0.3))
    eos = _token_of_second_block(free, 8)
    expected, passes = llada20_generate(official(8), prompt, gen_length=24, block_length=8, steps=4, threshold=0.3,
                                        mask_id=MASK, eos_id=eos, eos_early_stop=eos_early_stop)
    ours = _run(network, llada2_program(_canvas(prompt, 24), mask_id=MASK, eos_id=eos, block_length=8, steps=4,
                                        threshold=0.3, eos_early_stop=eos_early_stop, cache=cache))
    assert _generated(ours, eos) == expected
    assert _passes(ours) == passes
    assert len(expected) < 24 and (MASK in ours[-1].canvas.tolist())  # stopped before the last block


@pytest.mark.parametrize("cache", ["none", "prefix"])
@pytest.mark.parametrize("prompt", ["tail", "blocks and a tail"])
@pytest.mark.parametrize("max_post_steps", [16, 0])
def test_llada21_edits_as_the_official_generate(llada2, cache, prompt, max_post_steps) -> None:
    network, official = llada2
    tokens = PROMPTS[prompt]
    expected, passes = llada21_generate(official(8), tokens, gen_length=20, block_length=8, threshold=0.3,
                                        editing_threshold=0.25, max_post_steps=max_post_steps, mask_id=MASK,
                                        eos_id=EOS)
    ours = _run(network, llada2_program(_canvas(tokens, 20), mask_id=MASK, eos_id=EOS, block_length=8,
                                        threshold=0.3, editing_threshold=0.25, max_post_steps=max_post_steps,
                                        cache=cache))
    assert _generated(ours, EOS) == expected
    assert _passes(ours) == _inside(passes, len(tokens) + 20)
    changed = [p for positions in passes for p in positions]
    assert len(changed) > len(set(changed))  # some positions were edited after their commit


@pytest.mark.parametrize("eos_early_stop", [False, True])
def test_llada21_stops_at_the_end_token_only_when_asked(llada2, eos_early_stop) -> None:
    network, official = llada2
    prompt, options = PROMPTS["tail"], dict(block_length=8, threshold=0.3, editing_threshold=0.25, max_post_steps=2)
    free = _run(network, llada2_program(_canvas(prompt, 24), mask_id=MASK, eos_id=MASK, **options))
    eos = _token_of_second_block(free, 8)
    expected, passes = llada21_generate(official(8), prompt, gen_length=24, mask_id=MASK, eos_id=eos,
                                        eos_early_stop=eos_early_stop, **options)
    ours = _run(network, llada2_program(_canvas(prompt, 24), mask_id=MASK, eos_id=eos, eos_early_stop=eos_early_stop,
                                        **options))
    assert _generated(ours, eos) == expected
    assert _passes(ours) == _inside(passes, len(prompt) + 24)
    assert (MASK in ours[-1].canvas.tolist()) == eos_early_stop  # without it, 2.1 writes every block


@pytest.mark.parametrize("cache", ["none", "prefix"])
def test_llada2_sampling_draws_as_the_official_generate(llada2, cache) -> None:
    network, official = llada2
    prompt, options = PROMPTS["tail"], dict(temperature=0.8, top_k=12, top_p=0.9)
    expected, passes = llada20_generate(official(8), prompt, gen_length=20, block_length=8, steps=8, threshold=0.5,
                                        mask_id=MASK, eos_id=EOS, generator=torch.Generator().manual_seed(3),
                                        **options)
    ours = _run(network, llada2_program(_canvas(prompt, 20), mask_id=MASK, eos_id=EOS, block_length=8, steps=8,
                                        threshold=0.5, generator=torch.Generator().manual_seed(3), cache=cache,
                                        **options))
    assert _generated(ours, EOS) == expected
    assert _passes(ours) == _inside(passes, len(prompt) + 20)
    greedy = _run(network, llada2_program(_canvas(prompt, 20), mask_id=MASK, eos_id=EOS, block_length=8, steps=8,
                                          threshold=0.5, cache=cache))
    assert _generated(greedy, EOS) != expected


@pytest.mark.parametrize("cache", ["none", "prefix"])
@pytest.mark.parametrize("remasking", ["low_confidence_dynamic", "low_confidence_static", "sequential"])
@pytest.mark.parametrize("prompt, block_length, steps", [("tail", 4, 4), ("whole blocks", 4, 2),
                                                         ("blocks and a tail", 8, 3)])
def test_sdar_commits_what_block_diffusion_generate_commits(sdar, cache, remasking, prompt, block_length,
                                                             steps) -> None:
    network, official = sdar
    tokens = PROMPTS[prompt]
    x, passes, stores = sdar_generate(official(block_length), tokens, gen_length=16, block_length=block_length,
                                      steps=steps, mask_id=MASK, remasking=remasking, threshold=0.5,
                                      stop_ids=(EOS,))
    ours = _run(network, sdar_program(_canvas(tokens, 16), mask_id=MASK, stop_ids=frozenset({EOS}),
                                      block_length=block_length, steps=steps, remasking=remasking, threshold=0.5,
                                      cache=cache))
    assert ours[-1].canvas.tolist() == x[:len(tokens) + 16].tolist()
    # the same denoising passes; the official's passes that only store keys/values ride along with ours
    assert _passes(ours) == _inside(passes, len(tokens) + 16)
    blocks = len({p // block_length for positions in passes for p in positions})
    assert stores == (len(tokens) >= block_length) + blocks  # the prompt's, then one after every block


@pytest.mark.parametrize("cache", ["none", "prefix"])
def test_sdar_stops_after_the_block_with_a_stop_token(sdar, cache) -> None:
    network, official = sdar
    prompt = PROMPTS["tail"]
    free = _run(network, sdar_program(_canvas(prompt, 24), mask_id=MASK, stop_ids=frozenset(), block_length=4,
                                      steps=4, threshold=0.5))
    stop = _token_of_second_block(free, 4)
    x, passes, _ = sdar_generate(official(4), prompt, gen_length=24, block_length=4, steps=4, mask_id=MASK,
                                 threshold=0.5, stop_ids=(stop,))
    ours = _run(network, sdar_program(_canvas(prompt, 24), mask_id=MASK, stop_ids=frozenset({stop}), block_length=4,
                                      steps=4, threshold=0.5, cache=cache))
    assert ours[-1].canvas.tolist() == x[:len(prompt) + 24].tolist()
    assert _passes(ours) == passes
    assert MASK in ours[-1].canvas.tolist()


def test_sdar_sampling_draws_as_block_diffusion_generate(sdar) -> None:
    network, official = sdar
    prompt = PROMPTS["tail"]
    x, passes, _ = sdar_generate(official(4), prompt, gen_length=16, block_length=4, steps=4, mask_id=MASK,
                                 threshold=0.6, temperature=0.7, top_k=10, top_p=0.95,
                                 generator=torch.Generator().manual_seed(5))
    ours = _run(network, sdar_program(_canvas(prompt, 16), mask_id=MASK, stop_ids=frozenset(), block_length=4,
                                      steps=4, threshold=0.6, temperature=0.7, top_k=10, top_p=0.95,
                                      generator=torch.Generator().manual_seed(5)))
    assert ours[-1].canvas.tolist() == x[:len(prompt) + 16].tolist()
    assert _passes(ours) == _inside(passes, len(prompt) + 16)


def test_the_prefix_cache_runs_only_new_blocks_and_the_current_one(sdar) -> None:
    network, _ = sdar
    windows: list[tuple[int, int]] = []

    def record(module: torch.nn.Module, args: tuple, kwargs: dict) -> None:
        (segment,) = kwargs["packing"].segments
        windows.append((segment.start, segment.start + segment.length))

    handle = network.register_forward_pre_hook(record, with_kwargs=True)
    try:
        steps = _run(network, sdar_program(_canvas(list(range(1, 11)), 6), mask_id=MASK, stop_ids=frozenset(),
                                           block_length=4, steps=4, threshold=1.0))
    finally:
        handle.remove()
    assert len(steps) == len(windows) == 2 + 4  # one mask per step: the third block's two, the fourth's four
    # the prompt's two whole blocks with the third, the third, then the third (stored) with the fourth, the fourth
    assert windows == [(0, 12), (8, 12), (8, 16), (12, 16), (12, 16), (12, 16)]


@pytest.mark.parametrize(("temperature", "whole_block"), [(0.0, False), (0.7, True)])
def test_a_greedy_step_gets_logits_only_where_masks_are(llada2, temperature: float, whole_block: bool) -> None:
    network, _ = llada2
    asked: list[tuple[list[int], list[int]]] = []  # (window positions with logits, the window's masks)

    def record(module: torch.nn.Module, args: tuple, kwargs: dict) -> None:
        (segment,) = kwargs["packing"].segments
        at = segment.logits_at
        positions = list(range(*at)) if isinstance(at, tuple) else at.tolist()
        asked.append((positions, (args[0][0] == MASK).nonzero().flatten().tolist()))

    handle = network.register_forward_pre_hook(record, with_kwargs=True)
    try:
        _run(network, llada2_program(_canvas(PROMPTS["tail"], 16), mask_id=MASK, eos_id=MASK, block_length=8,
                                     steps=8, threshold=0.9, temperature=temperature,
                                     generator=torch.Generator().manual_seed(0)))
    finally:
        handle.remove()
    assert len(asked) > 4
    for positions, masks in asked:
        block = list(range(positions[0] - positions[0] % 8, positions[0] - positions[0] % 8 + 8))
        # a sampled step draws at every position of its block, as the official loop does
        assert positions == (block if whole_block else masks)
    assert whole_block or any(len(masks) < 8 for _, masks in asked)  # steps after the first had fewer


@pytest.mark.parametrize("family", ["llada2", "sdar"])
def test_rows_in_one_batch_give_their_solo_runs(llada2, sdar, family: str) -> None:
    network = (llada2 if family == "llada2" else sdar)[0]

    def programs() -> list:
        if family == "sdar":
            return [sdar_program(_canvas(PROMPTS["tail"], 12), mask_id=MASK, stop_ids=frozenset(), threshold=0.5),
                    sdar_program(_canvas(PROMPTS["blocks and a tail"], 9), mask_id=MASK, stop_ids=frozenset(),
                                 block_length=8, steps=3, remasking="sequential", cache="none"),
                    sdar_program(_canvas(PROMPTS["whole blocks"], 8), mask_id=MASK, stop_ids=frozenset(),
                                 temperature=0.7, top_k=10, generator=torch.Generator().manual_seed(2))]
        return [llada2_program(_canvas(PROMPTS["tail"], 20), mask_id=MASK, eos_id=EOS, block_length=8, steps=4,
                               threshold=0.3),
                llada2_program(_canvas(PROMPTS["blocks and a tail"], 12), mask_id=MASK, eos_id=EOS, block_length=4,
                               steps=4, threshold=0.3, cache="none"),
                llada2_program(_canvas(PROMPTS["whole blocks"], 12), mask_id=MASK, eos_id=EOS, block_length=8,
                               threshold=0.3, editing_threshold=0.25)]

    solo = [_run(network, program) for program in programs()]
    batch = DecodingBatch(network)
    rows = [batch.add(program) for program in programs()]
    while any(not row.done for row in rows):
        batch.step()
    for row, alone in zip(rows, solo, strict=True):
        together = [item for item in row.take() if isinstance(item, SamplerStep)]
        assert _passes(together) == _passes(alone)
        assert together[-1].canvas.tolist() == alone[-1].canvas.tolist()


@pytest.mark.parametrize("options, message", [
    (dict(block_length=0), "block_length"),
    (dict(steps=0), "steps"),
    (dict(threshold=1.5), "threshold"),
    (dict(cache="dual"), "cache"),
    (dict(temperature=-1.0), "temperature"),
    (dict(top_p=0.0), "top_p"),
    (dict(top_k=0), "top_k"),
    (dict(rule="entropy_bounded"), "rule"),
])
def test_bad_arguments_are_validation_errors(options: dict, message: str) -> None:
    arguments: dict[str, Any] = dict(mask_id=MASK, block_length=4, steps=4, threshold=0.9) | options
    with pytest.raises(ValidationError, match=message):
        next(block_program(_canvas([1, 2], 4), **arguments))


def test_an_unknown_sdar_remasking_is_a_validation_error() -> None:
    with pytest.raises(ValidationError, match="remasking"):
        sdar_program(_canvas([1, 2], 4), mask_id=MASK, stop_ids=frozenset(), remasking="entropy_bounded")


def test_masks_must_end_the_canvas() -> None:
    with pytest.raises(ValidationError, match="end the canvas"):
        next(block_program(torch.tensor([[1, MASK, MASK, 2]]), mask_id=MASK, block_length=4, steps=4, threshold=0.9))

