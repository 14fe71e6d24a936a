"""Dream sampler: the eps schedule, the logit shift, the ranking algorithms, seeds, cancellation, bad input,
and Fast-dLLM's block sampler with its caches and threshold (against the loop restated in fast_dllm_reference)."""

from __future__ import annotations

import pytest
import torch
from alone import dream_sample
from fast_dllm_reference import dream_block_loop
from sampler_networks import MASK, VOCAB, FixedLogits

from yipyap_jupyter.cancel import CancelToken
from yipyap_jupyter.engine.samplers.base import make_generator
from yipyap_jupyter.errors import GenerationCancelled, ValidationError

PROMPT = [1, 2, 3, 4]


def _canvas(n_masks: int, suffix: tuple[int, ...] = ()) -> torch.Tensor:
    return torch.tensor([[*PROMPT, *[MASK] * n_masks, *suffix]])


@pytest.mark.parametrize("alg", ["maskgit_plus", "topk_margin", "entropy"])
def test_commits_follow_the_eps_schedule_and_fill_every_mask(tiny_dream, alg: str) -> None:
    # t = linspace(1, 1e-3, 5): int(8 * (1 - t1/t0)) = 1, int(7 * (1 - t2/t1)) = 2, int(5 * ...) = 2, the rest = 3
    steps = list(dream_sample(tiny_dream, _canvas(8), mask_id=MASK, steps=4, alg=alg))
    assert [s.step for s in steps] == [1, 2, 3, 4]
    assert all(s.total_steps == 4 and s.span == (4, 12) for s in steps)
    assert [len(s.changed) for s in steps] == [1, 2, 2, 3]
    assert [int((s.canvas == MASK).sum()) for s in steps] == [7, 5, 3, 0]
    assert all(0 < float(c) <= 1 for s in steps for c in s.confidences)


def test_position_i_reads_the_prediction_made_at_i_minus_1() -> None:
    logits = torch.full((1, 6, VOCAB), -5.0)
    for row in range(6):
        logits[0, row, row] = 5.0  # output row r predicts token r
    canvas = torch.full((1, 6), MASK)
    final = list(dream_sample(FixedLogits(logits), canvas, mask_id=MASK, steps=2))[-1]
    # position 0 keeps its own row; every later position gets the row before it
    assert final.canvas.tolist() == [0, 0, 1, 2, 3, 4]


@pytest.mark.parametrize(("alg", "first"), [("maskgit_plus", 4), ("entropy", 4), ("topk_margin", 5)])
def test_each_algorithm_ranks_positions_its_own_way(alg: str, first: int) -> None:
    # position 4 (row 3): p(top) 0.72, p(second) 0.26 -> highest top probability, lowest entropy, margin 0.46
    # position 5 (row 4): p(top) 0.62, the rest spread thin -> margin 0.59, the largest
    logits = torch.zeros(1, 8, VOCAB)
    logits[0, 3, 0], logits[0, 3, 1] = 6.2, 5.17
    logits[0, 4, 2] = 3.2
    steps = list(dream_sample(FixedLogits(logits), _canvas(4), mask_id=MASK, steps=2, alg=alg))
    assert steps[0].changed.tolist() == [first]


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(alg="maskgit_plus", temperature=0.8, top_p=0.9),
        dict(alg="entropy", temperature=1.0, top_k=4, alg_temp=0.5),
        dict(alg="origin", temperature=1.0),
    ],
)
def test_a_seed_fixes_the_sample_and_another_seed_changes_it(tiny_dream, kwargs) -> None:
    def run(seed: int) -> list[int]:
        steps = dream_sample(tiny_dream, _canvas(16, (9, 9)), mask_id=MASK, steps=8,
                             generator=make_generator(seed, "cpu"), **kwargs)
        final = list(steps)[-1]
        assert final.canvas[:4].tolist() == PROMPT and final.canvas[-2:].tolist() == [9, 9]
        assert MASK not in final.canvas.tolist()
        return final.canvas.tolist()

    assert run(0) == run(0)
    assert run(0) != run(1)


def test_cancel_stops_before_the_next_step(tiny_dream) -> None:
    cancel = CancelToken()
    steps = dream_sample(tiny_dream, _canvas(8), mask_id=MASK, steps=4, cancel=cancel)
    next(steps)
    cancel.cancel()
    with pytest.raises(GenerationCancelled) as raised:
        next(steps)
    assert raised.value.step == 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(steps=0), "steps"),
        (dict(steps=4, alg="greedy"), "alg must be one of"),
        (dict(steps=4, alg_temp=-1.0), "alg_temp"),
        (dict(steps=4, eps=0.0), "eps"),
        (dict(steps=4, temperature=-0.1), "temperature"),
        (dict(steps=4, top_p=0.0), "top_p"),
        (dict(steps=4, top_k=0), "top_k"),
        (dict(steps=4, cache="dual"), "need block_length"),
        (dict(steps=4, threshold=0.9), "need block_length"),
        (dict(steps=4, block_length=4, cache="full"), "cache must be one of"),
        (dict(steps=4, block_length=4, threshold=1.5), "threshold"),
        (dict(steps=4, block_length=3), "does not divide"),
        (dict(steps=2, block_length=4), "at least two per block"),
        (dict(steps=3, block_length=4), "multiple of the number of blocks"),
        (dict(steps=4, block_length=4, alg="origin"), "origin"),
    ],
)
def test_bad_arguments_are_validation_errors(tiny_dream, kwargs, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        next(dream_sample(tiny_dream, _canvas(8), mask_id=MASK, **kwargs))


def test_a_canvas_without_one_run_of_masks_is_a_validation_error(tiny_dream) -> None:
    with pytest.raises(ValidationError, match="contiguous"):
        next(dream_sample(tiny_dream, torch.tensor([[MASK, 1, MASK]]), mask_id=MASK, steps=2))
    with pytest.raises(ValidationError, match="no mask"):
        next(dream_sample(tiny_dream, torch.tensor([PROMPT]), mask_id=MASK, steps=2))


@pytest.mark.parametrize(
    ("cache", "threshold"),
    [("none", None), ("none", 0.5), ("prefix", None), ("prefix", 0.5), ("dual", None), ("dual", 0.5), ("dual", 0.9)],
)
def test_the_block_sampler_commits_what_fast_dllm_commits(sure_dream, cache: str, threshold) -> None:
    canvas = torch.tensor([[1, 2, 3, 4, 5, *[MASK] * 24]])
    reference, passes = dream_block_loop(sure_dream, canvas, mask_id=MASK, steps=12, block_length=8,
                                         threshold=threshold, cache=cache)
    steps = list(dream_sample(sure_dream, canvas, mask_id=MASK, steps=12, block_length=8, alg="entropy",
                              threshold=threshold, cache=cache))
    assert steps[-1].canvas.tolist() == reference.tolist()
    assert [s.changed.tolist() for s in steps] == passes  # one forward pass per step
    assert all(s.total_steps == (12 if threshold is None else 24) for s in steps)


def test_each_block_starts_with_its_first_token_from_the_full_pass(sure_dream) -> None:
    steps = list(dream_sample(sure_dream, _canvas(8), mask_id=MASK, steps=4, block_length=4, cache="dual"))
    assert [s.changed.tolist()[:1] for s in steps[::2]] == [[4], [8]]
    assert [len(s.changed) for s in steps] == [1, 3, 1, 3]


@pytest.mark.parametrize("cache", ["prefix", "dual"])
def test_block_caches_change_nothing_where_they_are_exact(one_layer_dream, cache: str) -> None:
    canvas = torch.tensor([[1, 2, 3, 4, 5, *[MASK] * 24]])
    kwargs = dict(mask_id=MASK, steps=12, block_length=8, alg="maskgit_plus")
    plain = list(dream_sample(one_layer_dream, canvas, **kwargs))
    cached = list(dream_sample(one_layer_dream, canvas, cache=cache, **kwargs))
    assert [s.changed.tolist() for s in cached] == [s.changed.tolist() for s in plain]
    assert cached[-1].canvas.tolist() == plain[-1].canvas.tolist()


def test_the_block_sampler_keeps_sampled_runs_seeded(sure_dream) -> None:
    def run(seed: int) -> list[int]:
        steps = dream_sample(sure_dream, _canvas(16), mask_id=MASK, steps=8, block_length=8, cache="prefix",
                             temperature=1.0, top_p=0.9, alg_temp=0.5, generator=make_generator(seed, "cpu"))
        return list(steps)[-1].canvas.tolist()

    assert run(0) == run(0)
    assert run(0) != run(1)
    assert MASK not in run(0)
