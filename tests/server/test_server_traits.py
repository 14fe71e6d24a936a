"""The batching and threading traits on a real server, each asserted by what it does.

The first request's first pass is held (tests/held_network.py) while the others arrive, so
which requests join its batch and which queue does not depend on this machine's speed.
Rows per pass are read from the packed passes' lengths: every request here has the same
canvas, so a pass of n rows is n canvases long.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from held_network import HeldNetwork
from server_helpers import eventually, sse_events

from yipyap_jupyter.server.state import SETTINGS_KEY

BODY = {"prompt": "the cat sat", "max_new_tokens": 8, "steps": 4, "seed": 0}


class Passes:
    """The length of each forward pass of `network` (one packed canvas per row)."""

    def __init__(self, network: Any) -> None:
        self.lengths: list[int] = []
        self._hook = network.register_forward_pre_hook(lambda module, args: self.lengths.append(args[0].numel()))

    def remove(self) -> None:
        self._hook.remove()


async def behind_a_held_request(jp_fetch, jp_serverapp, more: int) -> tuple[list[int], list[list[dict]]]:
    """One request whose first pass is held while `more` identical ones arrive; then all run to the end.

    Returns the rows of each pass and every request's events (the held one first). The gate opens once
    a request has queued (its stream says so): the batch had no room for it, so the others have joined.
    """
    manager = jp_serverapp.web_app.settings[SETTINGS_KEY].service.manager
    await jp_fetch("api", "diffusion", "generate", method="POST", body=json.dumps(BODY))  # loaded
    network = manager.loaded_model.network
    solo = Passes(network)
    await jp_fetch("api", "diffusion", "generate", method="POST", body=json.dumps(BODY))
    solo.remove()
    canvas = solo.lengths[0]
    passes = Passes(network)
    streams: list[list[bytes]] = [[] for _ in range(1 + more)]

    def stream(number: int) -> Any:
        return asyncio.ensure_future(jp_fetch("api", "diffusion", "generate", "stream", method="POST",
                                              body=json.dumps(BODY), streaming_callback=streams[number].append,
                                              headers={"X-Correlation-ID": f"request-{number}"}))

    def queued() -> int:
        return sum(b"queued" in b"".join(chunks) for chunks in streams)

    try:
        with HeldNetwork(network) as held:
            requests = [stream(0)]
            await held.held(1)
            requests += [stream(number) for number in range(1, 1 + more)]
            line = manager._queue  # the manager's turns: a request in it has not joined the batch
            await eventually(lambda: queued() >= 1, lambda: (queued(), line.length))
        await asyncio.gather(*requests)
    finally:
        passes.remove()
    assert all(length % canvas == 0 for length in passes.lengths), (passes.lengths, canvas)
    return [length // canvas for length in passes.lengths], [sse_events(b"".join(chunks)) for chunks in streams]


def queued_ones(events: list[list[dict]]) -> list[int]:
    return [number for number, stream in enumerate(events)
            if any(str(e.get("message", "")).startswith("queued") for e in stream)]


async def test_a_batch_takes_max_batch_size_rows_and_the_next_request_waits(jp_fetch, jp_serverapp) -> None:
    rows, events = await behind_a_held_request(jp_fetch, jp_serverapp, more=8)  # 9 requests, default size 8
    assert all(stream[-1]["type"] == "complete" for stream in events)
    assert len(queued_ones(events)) == 1  # the 9th
    # the held pass alone, then the 7 that joined with it: 8 rows, never 9; the 9th waited for the next batch
    assert rows[:2] == [1, 8] and max(rows) == 8 and rows[-BODY["steps"]:] == [1] * BODY["steps"], rows


@pytest.mark.parametrize("yipyap_traits", [{"max_batch_size": 1}], indirect=True)
async def test_max_batch_size_1_turns_batching_off(jp_fetch, jp_serverapp) -> None:
    rows, events = await behind_a_held_request(jp_fetch, jp_serverapp, more=2)
    assert all(stream[-1]["type"] == "complete" for stream in events)
    assert len(queued_ones(events)) == 2 and set(rows) == {1}, rows


async def canvas_length(tiny_llada_dir: Path) -> int:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_llada_dir))
    return len(tokenizer(BODY["prompt"])["input_ids"]) + BODY["max_new_tokens"]


@pytest.fixture
def yipyap_traits(tiny_llada_dir: Path, request: pytest.FixtureRequest) -> dict:
    """Traits for the test; `two_canvases` sets max_batch_tokens to room for two of BODY's canvases."""
    traits = dict(getattr(request, "param", {}))
    if traits.pop("two_canvases", False):
        traits["max_batch_tokens"] = 2 * asyncio.run(canvas_length(tiny_llada_dir))
    return traits


@pytest.mark.parametrize("yipyap_traits", [{"two_canvases": True}], indirect=True)
async def test_max_batch_tokens_bounds_the_canvas_positions_of_a_batch(jp_fetch, jp_serverapp) -> None:
    rows, events = await behind_a_held_request(jp_fetch, jp_serverapp, more=3)
    assert all(stream[-1]["type"] == "complete" for stream in events)
    assert rows[:2] == [1, 2] and max(rows) == 2, rows  # two canvases fit, the others wait their turn
    assert len(queued_ones(events)) == 2


@pytest.mark.parametrize("yipyap_traits", [{"worker_threads": 1}], indirect=True)
async def test_one_worker_thread_runs_one_generation_at_a_time(jp_fetch, jp_serverapp, tmp_path: Path) -> None:
    manager = jp_serverapp.web_app.settings[SETTINGS_KEY].service.manager
    await jp_fetch("api", "diffusion", "generate", method="POST", body=json.dumps(BODY))  # loaded
    with HeldNetwork(manager.loaded_model.network) as held:
        first = asyncio.ensure_future(jp_fetch("api", "diffusion", "generate", method="POST", body=json.dumps(BODY),
                                               headers={"X-Correlation-ID": "first"}))
        await held.held(1)
        second = asyncio.ensure_future(jp_fetch("api", "diffusion", "generate", method="POST", body=json.dumps(BODY),
                                                headers={"X-Correlation-ID": "second"}))
        assert (await jp_fetch("api", "diffusion", "models")).code == 200  # quick routes have threads of their own
    await asyncio.gather(first, second)
    records = [json.loads(line) for line in (tmp_path / "yipyap-logs" / "structured.log").read_text().splitlines()]
    order = [(r["correlation_id"], r["message"]) for r in records
             if r["correlation_id"] in ("first", "second") and r["message"].startswith("generate ")]
    # the second waited for the one thread: it started only after the first had finished
    assert order == [("first", "generate started"), ("first", "generate finished"),
                     ("second", "generate started"), ("second", "generate finished")], order


@pytest.fixture
def switch_interval() -> Iterator[None]:
    """The process's switch interval as it was before the test's server set its own."""
    before = sys.getswitchinterval()
    yield
    sys.setswitchinterval(before)


@pytest.mark.parametrize("yipyap_traits", [{"gil_switch_interval": 0.0025}], indirect=True)
async def test_gil_switch_interval_is_set_for_the_server_process(switch_interval: None, jp_fetch) -> None:
    await jp_fetch("api", "diffusion", "models")
    assert sys.getswitchinterval() == pytest.approx(0.0025)
