"""LLaDA sampler: schedule, blocks, remasking order, CFG, end-token options, seeds, cancellation, bad input,
threshold decoding and the block-wise caches (against Fast-dLLM's loops restated in fast_dllm_reference)."""

from __future__ import annotations

import pytest
import torch
from alone import llada_sample
from fast_dllm_reference import llada_loop
from sampler_networks import MASK, VOCAB, FixedLogits

from yipyap_jupyter.cancel import CancelToken
from yipyap_jupyter.engine.families.llada.sampler import num_transfer_tokens
from yipyap_jupyter.engine.packing import select_positions
from yipyap_jupyter.engine.samplers.base import make_generator
from yipyap_jupyter.errors import GenerationCancelled, ValidationError

PROMPT = [1, 2, 3, 4]


def _canvas(n_masks: int, suffix: tuple[int, ...] = ()) -> torch.Tensor:
    return torch.tensor([[*PROMPT, *[MASK] * n_masks, *suffix]])


def test_linear_schedule_gives_the_remainder_to_the_first_steps() -> None:
    assert num_transfer_tokens(8, 3) == [3, 3, 2]
    assert num_transfer_tokens(8, 8) == [1] * 8
    assert num_transfer_tokens(3, 5) == [1, 1, 1, 0, 0]


def test_one_step_per_planned_step_committing_the_scheduled_count(tiny_llada) -> None:
    steps = list(llada_sample(tiny_llada, _canvas(8), mask_id=MASK, steps=3, block_length=8))
    assert [s.step for s in steps] == [1, 2, 3]
    assert all(s.total_steps == 3 and s.span == (4, 12) for s in steps)
    assert [len(s.changed) for s in steps] == [3, 3, 2]
    assert [len(s.confidences) for s in steps] == [3, 3, 2]
    masks_left = [int((s.canvas == MASK).sum()) for s in steps]
    assert masks_left == [5, 2, 0]  # each step's canvas is its own snapshot


def test_blocks_fill_left_to_right(tiny_llada) -> None:
    steps = list(llada_sample(tiny_llada, _canvas(8), mask_id=MASK, steps=4, block_length=4))
    first_block, second_block = set(range(4, 8)), set(range(8, 12))
    assert [len(s.changed) for s in steps] == [2, 2, 2, 2]
    assert set(torch.cat([s.changed for s in steps[:2]]).tolist()) == first_block
    assert set(torch.cat([s.changed for s in steps[2:]]).tolist()) == second_block
    assert (steps[1].canvas[8:12] == MASK).all()


def test_low_confidence_commits_the_most_probable_predictions_first() -> None:
    logits = torch.zeros(1, 8, VOCAB)
    for position, strength in zip(range(4, 8), (5.0, 9.0, 7.0, 3.0), strict=True):
        logits[0, position, 2] = strength
    steps = list(llada_sample(FixedLogits(logits), _canvas(4), mask_id=MASK, steps=4, block_length=4))
    assert [s.changed.tolist() for s in steps] == [[5], [6], [4], [7]]
    confidences = [float(s.confidences[0]) for s in steps]
    assert confidences == sorted(confidences, reverse=True)
    assert steps[-1].canvas[4:].tolist() == [2, 2, 2, 2]


def test_committed_tokens_are_never_remasked_and_prompt_and_suffix_stay(tiny_llada) -> None:
    suffix = (7, 8, 9)
    steps = list(
        llada_sample(tiny_llada, _canvas(6, suffix), mask_id=MASK, steps=6, block_length=3, temperature=1.0,
                     remasking="random", generator=make_generator(3, "cpu"))
    )
    committed: dict[int, int] = {}
    for s in steps:
        assert s.canvas[:4].tolist() == PROMPT and s.canvas[-3:].tolist() == list(suffix)
        for position, token in committed.items():
            assert int(s.canvas[position]) == token
        committed.update({int(p): int(s.canvas[p]) for p in s.changed})
    assert sorted(committed) == list(range(4, 10))
    assert MASK not in steps[-1].canvas.tolist()


@pytest.mark.parametrize("remasking", ["low_confidence", "random"])
def test_a_seed_fixes_the_sample_and_another_seed_changes_it(tiny_llada, remasking: str) -> None:
    def run(seed: int) -> list[int]:
        steps = llada_sample(tiny_llada, _canvas(16), mask_id=MASK, steps=8, block_length=8, temperature=1.0,
                             remasking=remasking, generator=make_generator(seed, "cpu"))
        return list(steps)[-1].canvas.tolist()

    assert run(0) == run(0)
    assert run(0) != run(1)


def test_classifier_free_guidance_masks_the_prompt_and_suffix_in_the_unconditional_pass() -> None:
    # conditional row prefers token 0 (1.0 vs 0.9); unconditional row prefers 0 more (1.0 vs 0.5);
    # guided = un + 2 (cond - un) turns that around: token 1 scores 1.3, token 0 stays 1.0
    class TwoRows(FixedLogits):
        def forward(self, input_ids, attention_mask=None, position_ids=None, logits_at=None):
            self.inputs.append(input_ids.clone())
            out = torch.zeros(input_ids.shape[0], input_ids.shape[1], VOCAB)
            out[0, :, 0], out[0, :, 1] = 1.0, 0.9
            if input_ids.shape[0] == 2:
                out[1, :, 0], out[1, :, 1] = 1.0, 0.5
            return select_positions(out, logits_at)

    network = TwoRows(torch.zeros(0))
    canvas = _canvas(2, (7,))
    guided = list(llada_sample(network, canvas, mask_id=MASK, steps=2, block_length=2, cfg_scale=1.0))
    cond, uncond = network.inputs[0]
    assert torch.equal(cond, canvas[0])
    assert uncond.tolist() == [MASK] * 7
    assert guided[-1].canvas[4:6].tolist() == [1, 1]
    plain = list(llada_sample(network, canvas, mask_id=MASK, steps=2, block_length=2))
    assert plain[-1].canvas[4:6].tolist() == [0, 0]


def test_cancel_stops_before_the_next_step(tiny_llada) -> None:
    cancel = CancelToken()
    steps = llada_sample(tiny_llada, _canvas(8), mask_id=MASK, steps=8, block_length=8, cancel=cancel)
    assert next(steps).step == 1
    cancel.cancel()
    with pytest.raises(GenerationCancelled) as raised:
        next(steps)
    assert raised.value.step == 2


@pytest.mark.parametrize(
    ("canvas", "kwargs", "message"),
    [
        (_canvas(6), dict(steps=6, block_length=4), "block_length 4 does not divide"),
        (_canvas(8), dict(steps=3, block_length=4), "divisible by the number of blocks"),
        (_canvas(8), dict(steps=0, block_length=8), "steps must be"),
        (_canvas(8), dict(steps=4, block_length=8, remasking="highest"), "remasking"),
        (_canvas(8), dict(steps=4, block_length=8, temperature=-1.0), "temperature"),
        (_canvas(8), dict(steps=4, block_length=8, cfg_scale=-0.5), "cfg_scale"),
        (torch.tensor([PROMPT]), dict(steps=4, block_length=4), "no mask"),
        (torch.tensor([[MASK, 1, MASK]]), dict(steps=2, block_length=1), "contiguous"),
        (torch.tensor([MASK, MASK]), dict(steps=2, block_length=2), "(1, L)"),
        (torch.full((2, 4), MASK), dict(steps=2, block_length=2), "(1, L)"),
        (torch.full((1, 4), float(MASK)), dict(steps=2, block_length=2), "integer"),
    ],
)
def test_bad_arguments_are_validation_errors(tiny_llada, canvas, kwargs, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        next(llada_sample(tiny_llada, canvas, mask_id=MASK, **kwargs))


def test_threshold_commits_every_confident_position_and_at_least_one() -> None:
    # positions 4 and 6 are sure (p ~ 1), 5 and 7 are not: step 1 takes both sure ones,
    # then one uncertain position per step, the most probable first
    logits = torch.zeros(1, 8, VOCAB)
    logits[0, 4, 2] = logits[0, 6, 2] = 30.0
    logits[0, 5, 2], logits[0, 7, 2] = 2.0, 1.0
    steps = list(llada_sample(FixedLogits(logits), _canvas(4), mask_id=MASK, steps=4, block_length=4, threshold=0.9))
    assert [s.changed.tolist() for s in steps] == [[4, 6], [5], [7]]
    assert all(s.total_steps == 4 for s in steps)  # an upper bound: one token per step
    assert float(steps[0].confidences.min()) >= 0.9


def test_threshold_stays_inside_the_current_block() -> None:
    logits = torch.zeros(1, 12, VOCAB)
    logits[0, 4:12, 2] = 30.0  # everything is sure, but the second block waits for the first
    steps = list(llada_sample(FixedLogits(logits), _canvas(8), mask_id=MASK, steps=8, block_length=4, threshold=0.9))
    assert [s.changed.tolist() for s in steps] == [[4, 5, 6, 7], [8, 9, 10, 11]]


@pytest.mark.parametrize("threshold", [0.0, 1.5])
def test_threshold_out_of_range_is_a_validation_error(tiny_llada, threshold: float) -> None:
    with pytest.raises(ValidationError, match="threshold"):
        list(llada_sample(tiny_llada, _canvas(4), mask_id=MASK, steps=4, block_length=4, threshold=threshold))


CACHED = [("none", None), ("none", 0.5), ("prefix", None), ("prefix", 0.5), ("prefix", 0.9),
          ("dual", None), ("dual", 0.5), ("dual", 0.9)]


@pytest.mark.parametrize(("cache", "threshold"), CACHED)
def test_caches_and_threshold_commit_what_fast_dllm_commits(sure_llada, cache: str, threshold) -> None:
    canvas = torch.tensor([[1, 2, 3, 4, 5, *[MASK] * 24]])
    reference, passes = llada_loop(sure_llada, canvas, mask_id=MASK, steps=12, block_length=8, threshold=threshold,
                                   cache=cache)
    steps = list(llada_sample(sure_llada, canvas, mask_id=MASK, steps=12, block_length=8, threshold=threshold,
                              cache=cache))
    assert steps[-1].canvas.tolist() == reference.tolist()
    # one forward pass per step, the same passes as Fast-dLLM's, including the one that commits
    # nothing after a block's first pass has filled it
    assert [s.changed.tolist() for s in steps] == passes


def test_a_cached_block_runs_the_canvas_once_then_its_window(sure_llada) -> None:
    calls: list[tuple[int, int]] = []
    hook = sure_llada.register_forward_pre_hook(
        lambda module, args, kwargs: calls.append(
            (args[0].shape[1], kwargs["packing"].segments[0].start if "packing" in kwargs else 0)
        ),
        with_kwargs=True,
    )
    try:
        canvas = torch.tensor([[1, 2, 3, 4, *[MASK] * 8]])
        for cache in ("prefix", "dual", "none"):
            steps = list(llada_sample(sure_llada, canvas, mask_id=MASK, steps=4, block_length=4, cache=cache))
            assert len(steps) == 4
    finally:
        hook.remove()
    prefix, dual, none = calls[:4], calls[4:8], calls[8:]
    assert prefix == [(12, 0), (8, 4), (12, 0), (4, 8)]
    assert dual == [(12, 0), (4, 4), (12, 0), (4, 8)]
    assert none == [(12, 0)] * 4


@pytest.mark.parametrize("cache", ["prefix", "dual"])
@pytest.mark.parametrize("threshold", [None, 0.5])
def test_caches_change_nothing_where_they_are_exact(one_layer_llada, cache: str, threshold) -> None:
    canvas = torch.tensor([[1, 2, 3, 4, 5, *[MASK] * 24]])
    kwargs = dict(mask_id=MASK, steps=12, block_length=8, threshold=threshold)
    plain = list(llada_sample(one_layer_llada, canvas, **kwargs))
    cached = list(llada_sample(one_layer_llada, canvas, cache=cache, **kwargs))
    assert cached[-1].canvas.tolist() == plain[-1].canvas.tolist()
    # the same commits, besides the pass that commits nothing (Fast-dLLM's) after a block filled at once
    assert [s.changed.tolist() for s in cached if s.changed.numel()] == [s.changed.tolist() for s in plain]


def test_a_cache_keeps_the_sampled_run_seeded(sure_llada) -> None:
    def run(seed: int) -> list[int]:
        steps = llada_sample(sure_llada, _canvas(16), mask_id=MASK, steps=8, block_length=8, temperature=1.0,
                             cache="dual", cfg_scale=0.5, generator=make_generator(seed, "cpu"))
        return list(steps)[-1].canvas.tolist()

    assert run(0) == run(0)
    assert run(0) != run(1)
    assert MASK not in run(0)


def test_an_unknown_cache_is_a_validation_error(tiny_llada) -> None:
    with pytest.raises(ValidationError, match="cache must be one of"):
        next(llada_sample(tiny_llada, _canvas(4), mask_id=MASK, steps=4, block_length=4, cache="full"))
