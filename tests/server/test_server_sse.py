"""The SSE writer: a client that reads slower than steps arrive gets merged step frames, exact in sum."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from server_helpers import check_steps, sse_events

from yipyap_jupyter.server.sse import KEEPALIVE_FRAME, EventStream, coalesce
from yipyap_jupyter.service.events import CompleteEvent, StatusEvent, StepEvent

TOTAL = 256


def dechunk(raw: bytes) -> bytes:
    """The body of a chunked HTTP/1.1 response."""
    head, _, rest = raw.partition(b"\r\n\r\n")
    assert b"transfer-encoding: chunked" in head.lower(), head
    body = b""
    while True:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            return body
        body, rest = body + rest[:size], rest[size + 2:]


def step(number: int, text: str, canvas: str, changed: list[int]) -> StepEvent:
    return StepEvent(step=number, total_steps=3, text=text, canvas=canvas, progress=number / 3, pieces=list(canvas),
                     changed=changed)


def test_coalesce_merges_only_runs_of_steps() -> None:
    status = StatusEvent(message="out of memory on cuda:0; continuing on cpu")
    events = [step(1, "a", "a__", [0]), step(2, "b", "ab_", [1]), status, step(1, "x", "x__", [0]),
              step(2, "", "x_z", [2]), step(3, "yz", "xyz", [1])]
    merged = coalesce(events)
    assert [type(e).__name__ for e in merged] == ["StepEvent", "StatusEvent", "StepEvent"]
    assert (merged[0].step, merged[0].text, merged[0].canvas, merged[0].changed) == (2, "ab", "ab_", [0, 1])
    assert (merged[2].step, merged[2].text, merged[2].canvas, merged[2].changed) == (3, "xyz", "xyz", [0, 1, 2])


async def test_a_slow_reader_gets_merged_frames_with_exact_text(
    jp_fetch, jp_http_port: int, jp_base_url: str, jp_auth_header: dict, tmp_path: Path
) -> None:
    await jp_fetch("api", "diffusion", "generate", method="POST",  # the model is loaded and the server listening
                   body=json.dumps({"prompt": "x", "max_new_tokens": 4, "steps": 2}))
    body = json.dumps({"prompt": "once upon a time", "max_new_tokens": TOTAL, "steps": TOTAL, "seed": 5}).encode()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a reader that takes little at a time
    sock.connect(("127.0.0.1", jp_http_port))
    sock.setblocking(False)
    reader, writer = await asyncio.open_connection(sock=sock)
    head = (f"POST {jp_base_url}api/diffusion/generate/stream HTTP/1.1\r\nHost: 127.0.0.1:{jp_http_port}\r\n"
            f"Authorization: {jp_auth_header['Authorization']}\r\nContent-Type: application/json\r\n"
            f"X-Correlation-ID: slow-reader\r\nConnection: close\r\nContent-Length: {len(body)}\r\n\r\n")
    writer.write(head.encode() + body)
    await writer.drain()
    received = await reader.read(1024)
    log = tmp_path / "yipyap-logs" / "structured.log"
    for _ in range(1200):  # read nothing more until the whole generation has run
        if any(json.loads(line)["message"] == "generate finished" and json.loads(line)["correlation_id"] ==
               "slow-reader" for line in log.read_text().splitlines()):
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the generation never finished")
    while chunk := await reader.read(1 << 16):
        received += chunk
    writer.close()

    events = sse_events(dechunk(received))
    check_steps(events, last_step=TOTAL)  # however many were merged (that depends on the socket buffers)
    reference = sse_events((await jp_fetch("api", "diffusion", "generate", "stream", method="POST", body=body)).body)
    assert events[-1]["raw_text"] == reference[-1]["raw_text"] and events[-1]["history"] == reference[-1]["history"]


class HeldHandler:
    """A request handler whose flushes wait until the test lets them through: a client that does not read."""

    def __init__(self) -> None:
        self.written: list[str] = []
        self.release = asyncio.Event()

    def set_header(self, name: str, value: str) -> None:
        pass

    def write(self, text: str) -> None:
        self.written.append(text)

    async def flush(self) -> None:
        await self.release.wait()


async def test_steps_that_queue_behind_a_slow_client_go_out_as_one_frame() -> None:
    handler = HeldHandler()
    stream = EventStream(handler, ThreadPoolExecutor(1), keepalive_seconds=60)  # type: ignore[arg-type]
    posted = threading.Event()

    def events(cancel: object) -> Iterator[object]:
        yield StatusEvent(message="Starting text generation...")
        for n in range(1, 4):
            yield step(n, "abc"[n - 1], "abc"[:n] + "_" * (3 - n), [n - 1])
        posted.set()

    run = asyncio.ensure_future(stream.run(events))
    # every step is in the queue (posted is set after the last one) while the first frame is still held
    assert await asyncio.get_running_loop().run_in_executor(None, posted.wait, 60)
    handler.release.set()
    await run
    frames = [json.loads(line[len("data: "):]) for text in handler.written for line in text.splitlines() if line]
    assert [f["type"] for f in frames] == ["status", "step"]
    assert (frames[1]["step"], frames[1]["text"], frames[1]["canvas"]) == (3, "abc", "abc")


class StillClock:
    """Event-loop time that moves only when the test moves it (then it wakes the loop to look at its timers)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.loop: ClockedLoop | None = None

    def advance(self, seconds: float) -> None:
        self.now += seconds
        assert self.loop is not None
        self.loop.call_soon_threadsafe(lambda: None)


class ClockedLoop(asyncio.SelectorEventLoop):
    """An event loop whose `time()` is a StillClock: frame intervals and keep-alives pass when the test says."""

    def __init__(self, clock: StillClock) -> None:
        super().__init__()
        self.clock = clock
        self.wakeups = 0  # calls from other threads
        clock.loop = self

    def time(self) -> float:
        return self.clock.now

    def call_soon_threadsafe(self, *args: Any, **kwargs: Any) -> asyncio.Handle:
        self.wakeups += 1
        return super().call_soon_threadsafe(*args, **kwargs)


def run_with(clock: StillClock, stream: EventStream, events: Callable[[Any], Iterator[Any]]) -> None:
    """`stream.run(events)` on a ClockedLoop; cancelled after 60 real seconds, so a broken stream fails, not hangs."""
    loop = ClockedLoop(clock)
    task = loop.create_task(stream.run(events))
    watchdog = threading.Timer(60, lambda: loop.call_soon_threadsafe(task.cancel))
    watchdog.start()
    try:
        loop.run_until_complete(task)
    finally:
        watchdog.cancel()
        loop.close()


class RecordingHandler(HeldHandler):
    """A client that reads at once: each write is one wake-up of the reader, noted with the loop's clock time.

    The generation can wait for a write (`wait_for_writes`), so each event reaches the loop when the test means it to.
    """

    def __init__(self, clock: StillClock) -> None:
        super().__init__()
        self.clock = clock
        self.times: list[float] = []
        self._wrote = threading.Condition()

    def write(self, text: str) -> None:
        with self._wrote:
            super().write(text)
            self.times.append(self.clock.now)
            self._wrote.notify_all()

    def wait_for_writes(self, count: int, counted: Callable[[str], bool] = lambda text: True) -> None:
        """Block until `count` writes (of those `counted`) have reached the client."""
        with self._wrote:
            done = self._wrote.wait_for(lambda: sum(map(counted, self.written)) >= count, timeout=60)
            assert done, self.written

    async def flush(self) -> None:
        pass


def test_steps_faster_than_the_frame_interval_share_a_write_each_its_own_frame() -> None:
    clock = StillClock()  # never moves: the 5 s interval cannot pass, only the complete event ends the wait
    handler = RecordingHandler(clock)
    stream = EventStream(handler, ThreadPoolExecutor(1), keepalive_seconds=60, frame_interval=5.0)  # type: ignore[arg-type]
    wakeups: list[int] = []

    def events(cancel: object) -> Iterator[object]:
        assert clock.loop is not None
        yield StatusEvent(message="Starting text generation...")
        handler.wait_for_writes(1)
        yield step(1, "a", "a__", [0])
        handler.wait_for_writes(2)  # the first step goes out as it comes
        before = clock.loop.wakeups
        yield step(2, "b", "ab_", [1])
        yield step(3, "c", "abc", [2])  # when this yield returns, both steps are in the mailbox
        wakeups.append(clock.loop.wakeups - before)
        yield CompleteEvent(text="abc", raw_text="abc", generation_time=0.2, model_used="tiny", device="cpu",
                            tokens=3, steps=3)

    run_with(clock, stream, events)
    assert wakeups == [0], "steps within the frame interval do not wake the loop"
    writes = [[json.loads(line[len("data: "):]) for line in text.splitlines() if line] for text in handler.written]
    # the next two steps wait for the interval and leave with the complete event, each its own frame
    assert [[f["type"] for f in frames] for frames in writes] == [["status"], ["step"], ["step", "step", "complete"]]
    assert [f["step"] for frames in writes for f in frames if f["type"] == "step"] == [1, 2, 3]


def test_a_silent_generation_gets_keep_alives_and_slow_steps_go_out_as_they_come() -> None:
    clock = StillClock()
    handler = RecordingHandler(clock)
    stream = EventStream(handler, ThreadPoolExecutor(1), keepalive_seconds=0.3, frame_interval=0.05)  # type: ignore[arg-type]
    posted: list[float] = []

    def events(cancel: object) -> Iterator[object]:
        while handler.written.count(KEEPALIVE_FRAME) < 2:  # loading, say: nothing to send for a while
            clock.advance(0.1)
            time.sleep(0.01)
        for n in range(1, 4):
            clock.advance(0.2)  # a slow model: each step comes after the frame interval
            posted.append(clock.now)
            yield step(n, "abc"[n - 1], "abc"[:n] + "_" * (3 - n), [n - 1])
            handler.wait_for_writes(n, counted=lambda text: text != KEEPALIVE_FRAME)

    run_with(clock, stream, events)
    assert handler.written[:2] == [KEEPALIVE_FRAME] * 2
    steps = [(text, at) for text, at in zip(handler.written, handler.times, strict=True) if text != KEEPALIVE_FRAME]
    assert [json.loads(text[len("data: "):])["step"] for text, _ in steps] == [1, 2, 3]  # one write each
    assert [at for _, at in steps] == posted, "no step waits for the next: each goes out at the time it came"
