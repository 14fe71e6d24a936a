"""DreamOn's variable-length infilling: expand / delete edits of the canvas, the span, the caps, seeds, bad input.

The edits are driven by `ScriptedNetwork`: each step's logits make the sampler
commit exactly the tokens the script names, at the masks it names.
"""

from __future__ import annotations

import pytest
import torch
from sampler_networks import BOS, EOS, EXPAND, MASK, ScriptedNetwork

from yipyap_jupyter.cancel import CancelToken
from yipyap_jupyter.engine.families.dreamon.sampler import variable_infill
from yipyap_jupyter.engine.samplers.base import make_generator
from yipyap_jupyter.errors import GenerationCancelled, ValidationError

PREFIX = [BOS, 1, 2]
SUFFIX = [3, EOS]
GREEDY = dict(alg="entropy", temperature=0.0, top_p=None)


def _canvas(n_masks: int) -> torch.Tensor:
    return torch.tensor([[*PREFIX, *[MASK] * n_masks, *SUFFIX]])


def _run(script, n_masks: int = 2, *, shift: bool = True, **kwargs):
    network = ScriptedNetwork(script, shift=shift)
    options = {**GREEDY, "max_new_tokens": 8, **kwargs}
    steps = list(variable_infill(network, _canvas(n_masks), mask_id=MASK, delete_id=EOS, expand_id=EXPAND,
                                 shift_logits=shift, **options))
    return steps, network


@pytest.mark.parametrize("shift", [True, False])
def test_expand_adds_a_mask_and_delete_removes_the_position(shift: bool) -> None:
    script = [
        [(0, (EXPAND,))],  # [M M] -> [M M M]
        [(1, (EOS,))],     # the middle mask is deleted -> [M M]
        [(1, (7,))],       # -> [M 7]
        [(0, (5,))],       # -> [5 7]
    ]
    steps, _ = _run(script, shift=shift)
    canvases = [s.canvas.tolist() for s in steps]
    assert canvases == [
        [*PREFIX, MASK, MASK, MASK, *SUFFIX],
        [*PREFIX, MASK, MASK, *SUFFIX],
        [*PREFIX, MASK, 7, *SUFFIX],
        [*PREFIX, 5, 7, *SUFFIX],
    ]
    assert [s.span for s in steps] == [(3, 6), (3, 5), (3, 5), (3, 5)]
    assert [s.changed.tolist() for s in steps] == [[], [], [4], [3]]
    assert [len(s.confidences) for s in steps] == [0, 0, 1, 1]
    assert [s.step for s in steps] == [1, 2, 3, 4]
    # DreamOn's bound: max_length 13 = 5 + 8, room from the first mask 10, budget 2 * 10
    assert {s.total_steps for s in steps} == {2 * 10 + 2 * 20}


def test_the_network_sees_the_padded_canvas_with_a_window_mask_and_window_positions() -> None:
    _, network = _run([[(0, (EXPAND,))], [(0, (4,))], [(0, (4,))], [(0, (4,))]])
    ids, attention_mask, position_ids = network.calls[1]
    max_length = len(PREFIX) + len(SUFFIX) + 8
    assert ids.shape == (1, max_length)
    assert attention_mask.tolist() == [[True] * 8 + [False] * 5]
    assert position_ids.tolist() == [list(range(8)) + [1] * 5]


def test_deleting_every_mask_leaves_an_empty_middle() -> None:
    steps, _ = _run([[(0, (EOS,))], [(0, (EOS,))]])
    assert steps[-1].canvas.tolist() == PREFIX + SUFFIX
    assert steps[-1].span == (3, 3)
    assert len(steps) == 2


def test_expand_is_blocked_at_max_new_tokens() -> None:
    # two masks and max_new_tokens 3: the first expansion fits, the second falls back to token 6
    steps, _ = _run([[(0, (EXPAND, 6))], [(0, (EXPAND, 6))], [(0, (4,))], [(0, (4,))]], max_new_tokens=3)
    assert steps[0].span == (3, 6)
    assert steps[1].canvas.tolist() == [*PREFIX, 6, MASK, MASK, *SUFFIX]
    assert steps[-1].span == (3, 6)


def test_expand_is_blocked_once_the_budget_is_spent() -> None:
    script = [[(0, (EXPAND, 6))], [(0, (EXPAND, 6))], [(0, (4,))], [(0, (4,))]]
    steps, _ = _run(script, expand_budget=1)
    assert [s.span[1] - s.span[0] for s in steps] == [3, 3, 3, 3]
    assert steps[-1].canvas.tolist() == [*PREFIX, 6, 4, 4, *SUFFIX]
    none_allowed, _ = _run(script[1:] + [[(0, (4,))]], expand_budget=0)
    assert none_allowed[0].canvas.tolist() == [*PREFIX, 6, MASK, *SUFFIX]


def test_several_tokens_per_step_and_expansions_beyond_the_cap_stay_masks() -> None:
    # three masks, room for one more token: of two expansions in one step only the left one applies
    script = [[(0, (EXPAND,)), (2, (EXPAND,))], [(0, (5,)), (1, (6,))], [(0, (7,)), (1, (8,))]]
    steps, _ = _run(script, n_masks=3, max_new_tokens=4, number_transfer_tokens=2)
    assert steps[0].canvas.tolist() == [*PREFIX, MASK, MASK, MASK, MASK, *SUFFIX]
    assert steps[0].span == (3, 7)
    assert [len(s.changed) for s in steps] == [0, 2, 2]
    assert steps[-1].canvas.tolist() == [*PREFIX, 5, 6, 7, 8, *SUFFIX]


def test_a_seed_fixes_the_sample_and_the_ends_stay_verbatim(tiny_dream) -> None:
    def run(seed: int) -> list[int]:
        steps = variable_infill(tiny_dream, _canvas(6), mask_id=MASK, delete_id=EOS, expand_id=EXPAND,
                                max_new_tokens=12, temperature=1.0, top_p=0.95, generator=make_generator(seed, "cpu"))
        final = list(steps)[-1]
        text = final.canvas.tolist()
        assert text[:3] == PREFIX and text[-2:] == SUFFIX
        assert final.span == (3, len(text) - 2)
        assert 0 <= final.span[1] - final.span[0] <= 12
        assert MASK not in text and EXPAND not in text
        return text

    assert run(0) == run(0)
    assert run(0) != run(1)


def test_cancel_stops_before_the_next_step() -> None:
    cancel = CancelToken()
    network = ScriptedNetwork([[(0, (4,))], [(0, (4,))]], shift=True)
    steps = variable_infill(network, _canvas(2), mask_id=MASK, delete_id=EOS, expand_id=EXPAND, max_new_tokens=4,
                            cancel=cancel, **GREEDY)
    next(steps)
    cancel.cancel()
    with pytest.raises(GenerationCancelled) as raised:
        next(steps)
    assert raised.value.step == 2
    assert len(network.calls) == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(max_new_tokens=3), "at least the number of masks"),
        (dict(alg="origin"), "alg must be one of"),
        (dict(expand_id=EOS), "three different tokens"),
        (dict(number_transfer_tokens=0), "number_transfer_tokens"),
        (dict(expand_budget=-1), "expand_budget"),
        (dict(alg_temp=-0.5), "alg_temp"),
        (dict(top_p=1.5), "top_p"),
    ],
)
def test_bad_arguments_are_validation_errors(tiny_dream, kwargs, message: str) -> None:
    options = dict(mask_id=MASK, delete_id=EOS, expand_id=EXPAND, max_new_tokens=8, **GREEDY)
    options.update(kwargs)
    with pytest.raises(ValidationError, match=message):
        next(variable_infill(tiny_dream, _canvas(4), **options))
