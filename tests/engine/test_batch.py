"""Requests decoded together: each row of a `DecodingBatch` gives exactly what it gives alone."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from yipyap_jupyter.cancel import CancelToken
from yipyap_jupyter.constants import TINY_MODEL_DIR
from yipyap_jupyter.engine.model import DiffusionModel, PreparedRun, SamplingOptions
from yipyap_jupyter.engine.registry import ModelRegistry
from yipyap_jupyter.engine.runtime.batch import DecodingBatch, run_alone
from yipyap_jupyter.engine.runtime.status import Status
from yipyap_jupyter.engine.samplers.base import SamplerStep
from yipyap_jupyter.errors import GenerationCancelled

PROMPTS = ["def add(a, b):", "import os\n", "class Stack:\n    def push(self, item):", "for i in range(10):",
           "# read a file\nwith open(path) as f:", "x = [", "def main():\n    args = parse()", "while True:"]
#: One request per prompt, each with other settings: the batch shares passes, never settings.
LLADA_OPTIONS = [
    SamplingOptions(max_new_tokens=32, steps=16, block_length=16, seed=0),
    SamplingOptions(max_new_tokens=32, steps=32, block_length=32, temperature=0.8, seed=1),
    SamplingOptions(max_new_tokens=32, steps=16, block_length=16, cache="dual", seed=2),
    SamplingOptions(max_new_tokens=32, steps=16, block_length=16, cache="prefix", threshold=0.9, seed=3),
    SamplingOptions(max_new_tokens=16, steps=8, block_length=16, remasking="random", temperature=0.5, seed=4),
    SamplingOptions(max_new_tokens=32, steps=16, block_length=16, cfg_scale=1.0, seed=5),
    SamplingOptions(max_new_tokens=48, steps=24, block_length=16, threshold=0.7, temperature=1.0, seed=6),
    SamplingOptions(max_new_tokens=32, steps=8, block_length=32, seed=7),
]


@pytest.fixture(scope="module")
def tiny() -> DiffusionModel:
    spec, path = ModelRegistry().resolve(str(TINY_MODEL_DIR))
    return DiffusionModel.load(spec, path)


@pytest.fixture(scope="module")
def dream(tiny_dream_dir) -> DiffusionModel:
    spec, path = ModelRegistry().resolve(str(tiny_dream_dir))
    return DiffusionModel.load(spec, path)


@pytest.fixture(params=[1, 2], ids=["1-thread", "2-threads"])
def threads(request: pytest.FixtureRequest) -> Iterator[int]:
    """Both thread counts: with two, torch splits element-wise loops at other places than with one."""
    before = torch.get_num_threads()
    torch.set_num_threads(request.param)
    yield request.param
    torch.set_num_threads(before)


def _canvases(steps: list[SamplerStep]) -> list[list[int]]:
    return [s.canvas.tolist() for s in steps]


def _alone(model: DiffusionModel, run: PreparedRun) -> list[SamplerStep]:
    return list(run_alone(model.fixed_length_network, run.program))


def _together(model: DiffusionModel, runs: list[PreparedRun], **batch: int) -> list[list[SamplerStep]]:
    """Every run in one batch, stepped until all are done; each row's steps."""
    decoding = DecodingBatch(model.fixed_length_network, **batch)
    rows = [decoding.add(run.program, tokens=run.tokens) for run in runs]
    while decoding.rows:
        decoding.step()
    assert all(row.error is None for row in rows)
    return [[s for s in row.take() if isinstance(s, SamplerStep)] for row in rows]


def test_every_llada_row_is_its_solo_run_step_for_step(tiny: DiffusionModel, threads: int) -> None:
    alone = [_canvases(_alone(tiny, tiny.prepare_generate(p, o))) for p, o in zip(PROMPTS, LLADA_OPTIONS, strict=True)]
    together = _together(tiny, [tiny.prepare_generate(p, o) for p, o in zip(PROMPTS, LLADA_OPTIONS, strict=True)])
    assert [_canvases(steps) for steps in together] == alone


def test_dream_rows_whole_span_and_blocks_are_their_solo_runs(dream: DiffusionModel, threads: int) -> None:
    options = [
        SamplingOptions(max_new_tokens=24, steps=12, temperature=0.7, seed=0),
        SamplingOptions(max_new_tokens=32, steps=16, block_length=16, cache="dual", seed=1),
        SamplingOptions(max_new_tokens=16, steps=16, alg="topk_margin", seed=2),
        SamplingOptions(max_new_tokens=32, block_length=16, threshold=0.5, cache="prefix", temperature=0.4, seed=3),
    ]
    alone = [_canvases(_alone(dream, dream.prepare_generate(p, o))) for p, o in zip(PROMPTS, options, strict=False)]
    together = _together(dream, [dream.prepare_generate(p, o) for p, o in zip(PROMPTS, options, strict=False)])
    assert [_canvases(steps) for steps in together] == alone


class OnePassPerRow(torch.nn.Module):
    """A network that cannot pack (like a library's class): it takes one row's ids, and counts its passes."""

    packs = False

    def __init__(self, network: torch.nn.Module) -> None:
        super().__init__()
        self.network = network
        self.passes: list[int] = []

    def forward(self, ids: torch.Tensor, logits_at: tuple[int, int] | None = None, **inputs: object) -> torch.Tensor:
        assert not inputs and ids.shape[0] == 1, "one row, no packing"
        self.passes.append(ids.shape[1])
        return self.network(ids, logits_at=logits_at)


def test_a_network_that_cannot_pack_runs_each_row_on_its_own_pass(tiny: DiffusionModel) -> None:
    options = [SamplingOptions(max_new_tokens=16, steps=8, seed=i) for i in range(3)]
    runs = lambda: [tiny.prepare_generate(p, o) for p, o in zip(PROMPTS, options, strict=False)]
    alone = [_canvases(_alone(tiny, run)) for run in runs()]
    network = OnePassPerRow(tiny.fixed_length_network)
    decoding = DecodingBatch(network)
    rows = [decoding.add(run.program, tokens=run.tokens) for run in runs()]
    while decoding.rows:
        decoding.step()
    assert [_canvases([s for s in row.take() if isinstance(s, SamplerStep)]) for row in rows] == alone
    assert len(network.passes) == 3 * 8  # one pass per row per step


def test_infilling_rows_join_generation_rows(tiny: DiffusionModel) -> None:
    runs = lambda: [tiny.prepare_infill("def f(x):\n", "\n    return y", SamplingOptions(steps=8, seed=0), length=16),
                    tiny.prepare_generate("import sys", SamplingOptions(max_new_tokens=16, steps=8, seed=1))]
    assert [_canvases(s) for s in _together(tiny, runs())] == [_canvases(_alone(tiny, r)) for r in runs()]


def test_a_row_that_joins_late_or_is_cancelled_leaves_the_others_alone(tiny: DiffusionModel) -> None:
    make = lambda i: tiny.prepare_generate(PROMPTS[i], LLADA_OPTIONS[i])
    alone = [_canvases(_alone(tiny, make(i))) for i in range(3)]
    decoding = DecodingBatch(tiny.fixed_length_network)
    cancel = CancelToken()
    first = decoding.add(make(0).program)
    doomed = decoding.add(make(1).program, cancel)
    for _ in range(3):
        decoding.step()
    late = decoding.add(make(2).program)
    decoding.step()
    cancel.cancel()
    while decoding.rows:
        decoding.step()
    assert isinstance(doomed.error, GenerationCancelled)
    assert doomed.error.step == 5
    assert len(doomed.take()) == 4
    steps = [[s for s in row.take() if isinstance(s, SamplerStep)] for row in (first, late)]
    assert [_canvases(s) for s in steps] == [alone[0], alone[2]]


def test_a_token_cap_splits_the_pass_and_changes_nothing(tiny: DiffusionModel) -> None:
    runs = lambda: [tiny.prepare_generate(p, SamplingOptions(max_new_tokens=32, steps=8, seed=i))
                    for i, p in enumerate(PROMPTS[:4])]
    passes: list[int] = []
    hook = tiny.network.register_forward_pre_hook(lambda module, args: passes.append(args[0].numel()))
    try:
        capped = _together(tiny, runs(), max_tokens=100)
    finally:
        hook.remove()
    assert max(passes) <= 100 and len(passes) > 8
    assert [_canvases(s) for s in capped] == [_canvases(s) for s in _together(tiny, runs())]


class _SmallDevice(torch.nn.Module):
    """The network on a device that holds a pass of at most `capacity` positions (out of memory beyond)."""

    def __init__(self, network: torch.nn.Module, capacity: int) -> None:
        super().__init__()
        self.network, self.capacity = network, capacity

    def forward(self, input_ids: torch.Tensor, **kwargs: object) -> torch.Tensor:
        if input_ids.numel() > self.capacity:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return self.network(input_ids, **kwargs)


def test_out_of_memory_halves_the_pass_says_so_and_loses_no_row(tiny: DiffusionModel) -> None:
    runs = lambda: [tiny.prepare_generate(p, SamplingOptions(max_new_tokens=32, steps=8, seed=i))
                    for i, p in enumerate(PROMPTS)]
    expected = [_canvases(s) for s in _together(tiny, runs())]
    decoding = DecodingBatch(_SmallDevice(tiny.fixed_length_network, capacity=200))
    rows = [decoding.add(run.program) for run in runs()]
    while decoding.rows:
        decoding.step()
    assert decoding.max_tokens is not None and decoding.max_tokens <= 200
    taken = [row.take() for row in rows]
    notices = [item.message for item in taken[0] if isinstance(item, Status)]
    assert notices and "out of memory with 8 requests in one pass" in notices[0]
    assert all(row.error is None for row in rows)
    assert [_canvases([s for s in items if isinstance(s, SamplerStep)]) for items in taken] == expected


def test_a_row_too_big_for_the_device_fails_every_row_with_out_of_memory(tiny: DiffusionModel) -> None:
    decoding = DecodingBatch(_SmallDevice(tiny.fixed_length_network, capacity=10))
    rows = [decoding.add(tiny.prepare_generate(p, SamplingOptions(max_new_tokens=16, steps=4)).program)
            for p in PROMPTS[:3]]
    assert not decoding.exhausted
    decoding.step()
    assert not decoding.rows and decoding.exhausted
    assert all(isinstance(row.error, torch.OutOfMemoryError) for row in rows)
