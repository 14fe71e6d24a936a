"""The batching and threading traits on a real server, each asserted by what it does.

The first request's passes are held (tests/held_network.py) while the others arrive and join
its batch, so how full the batch gets does not depend on this machine's speed.
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

BODY = {"prompt": "the cat sat", "max_new_tokens": 8, "steps": 8, "seed": 0}


class Passes:
    """The length of each forward pass of `network` (one packed canvas per row)."""

    def __init__(self, network: Any) -> None:
        self.lengths: list[int] = []
        self._hook = network.register_forward_pre_hook(lambda module, args: self.lengths.append(args[0].numel()))

    def remove(self) -> None:
        self._hook.remove()


async def behind_a_held_request(jp_fetch, jp_serverapp, tmp_path: Path, more: int,
                                full: int) -> tuple[list[int], list[list[dict]]]:
    """One request whose passes are held while `more` identical ones arrive; then all run to the end.

    Once all have started, passes go through one at a time (each once at most one request is left in
    the line: the others have joined or been refused) until one holds `full` rows (a full batch), then
    freely. Returns the rows of each pass and every request's events (the first request's first).
    """
    manager = jp_serverapp.web_app.settings[SETTINGS_KEY].service.manager
    await jp_fetch("api", "diffusion", "generate", method="POST", body=json.dumps(BODY))  # loaded
    network = manager.loaded_model.network
    solo = Passes(network)
    await jp_fetch("api", "diffusion", "generate", method="POST", body=json.dumps(BODY))
    solo.remove()
    canvas = solo.lengths[0]
    passes = Passes(network)  # before the gate's hook, so a held pass is counted
    streams: list[list[bytes]] = [[] for _ in range(1 + more)]

    def stream(number: int) -> Any:
        return asyncio.ensure_future(jp_fetch("api", "diffusion", "generate", "stream", method="POST",
                                              body=json.dumps(BODY), streaming_callback=streams[number].append,
                                              headers={"X-Correlation-ID": f"request-{number}"}))

    log = tmp_path / "yipyap-logs" / "structured.log"

    def started() -> set[str]:
        return {r["correlation_id"] for r in map(json.loads, log.read_text().splitlines())
                if r["message"] == "generate started" and r["correlation_id"].startswith("request-")}

    line = manager._queue  # the manager's turns: the batch's holder, and requests not (yet) in the batch
    try:
        with HeldNetwork(network) as held:
            requests = [stream(0)]
            await held.held(1)
            requests += [stream(number) for number in range(1, 1 + more)]
            await eventually(lambda: len(started()) == 1 + more, started)
            while passes.lengths[-1] < full * canvas:  # the others join between passes
                assert held.arrived < BODY["steps"], f"no pass of {full} rows: {passes.lengths}, canvas {canvas}"
                await eventually(lambda: line.length <= 1 + more - (full - 1), lambda: line.length)
                held.allow(1)
                await held.held(held.arrived + 1)
        await asyncio.gather(*requests)
    finally:
        passes.remove()
    assert all(length % canvas == 0 for length in passes.lengths), (passes.lengths, canvas)
    return [length // canvas for length in passes.lengths], [sse_events(b"".join(chunks)) for chunks in streams]


async def test_a_batch_takes_max_batch_size_rows_and_the_next_request_waits(jp_fetch, jp_serverapp,
                                                                            tmp_path: Path) -> None:
    rows, events = await behind_a_held_request(jp_fetch, jp_serverapp, tmp_path, more=8, full=8)  # 9 requests, size 8
    assert all(stream[-1]["type"] == "complete" for stream in events)
    # 8 rows, never 9 while all 9 requests were in flight; the 9th waited and ran in a batch of its own
    assert max(rows) == 8 and rows[-BODY["steps"]:] == [1] * BODY["steps"], rows
    assert sum(rows) == 9 * BODY["steps"], rows


@pytest.mark.parametrize("yipyap_traits", [{"max_batch_size": 1}], indirect=True)
async def test_max_batch_size_1_turns_batching_off(jp_fetch, jp_serverapp, tmp_path: Path) -> None:
    rows, events = await behind_a_held_request(jp_fetch, jp_serverapp, tmp_path, more=2, full=1)
    assert all(stream[-1]["type"] == "complete" for stream in events)
    assert rows == [1] * (3 * BODY["steps"]), rows  # one row per pass, every step of each request


def canvas_length(tiny_llada_dir: Path) -> int:
    """Positions of BODY's canvas: its prompt's tokens and the tokens to generate."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_llada_dir))
    return len(tokenizer(BODY["prompt"])["input_ids"]) + BODY["max_new_tokens"]


@pytest.fixture
def yipyap_traits(tiny_llada_dir: Path, request: pytest.FixtureRequest) -> dict:
    """Traits for the test; `two_canvases` sets max_batch_tokens to room for two of BODY's canvases."""
    traits = dict(getattr(request, "param", {}))
    if traits.pop("two_canvases", False):
        traits["max_batch_tokens"] = 2 * canvas_length(tiny_llada_dir)
    return traits


@pytest.mark.parametrize("yipyap_traits", [{"two_canvases": True}], indirect=True)
async def test_max_batch_tokens_bounds_the_canvas_positions_of_a_batch(jp_fetch, jp_serverapp,
                                                                      tmp_path: Path) -> None:
    rows, events = await behind_a_held_request(jp_fetch, jp_serverapp, tmp_path, more=3, full=2)
    assert all(stream[-1]["type"] == "complete" for stream in events)
    assert max(rows) == 2 and sum(rows) == 4 * BODY["steps"], rows  # two canvases fit, the others wait their turn


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
