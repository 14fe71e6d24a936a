"""Child processes in tests: each wait has a deadline, and a child that outlives it is killed, not left behind."""

from __future__ import annotations

import queue
import subprocess
import threading
import time
from typing import IO


def finish(process: subprocess.Popen, timeout: float = 120.0) -> tuple[str, str]:
    """`process.communicate(timeout=...)`; past the timeout the process is killed and the test fails with its output."""
    try:
        return process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        raise AssertionError(f"still running after {timeout:g} s, killed; "
                             f"stdout ends {str(out)[-2000:]!r}, stderr ends {str(err)[-2000:]!r}") from None


def wait_for_line(process: subprocess.Popen, stream: IO[str], wanted: str, timeout: float = 120.0) -> list[str]:
    """Read `stream` up to the first line that starts with `wanted` (leading blanks aside); the lines read.

    Past the timeout, or if the stream ends first, the process is killed and the test fails with the lines seen.
    The reading thread stops at the wanted line (the rest stays for `finish`) or when the killed process's
    stream closes.
    """
    lines: queue.SimpleQueue[str | None] = queue.SimpleQueue()

    def read() -> None:
        for line in stream:
            lines.put(line)
            if line.lstrip().startswith(wanted):
                return
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while True:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            line = None
        if line is None:
            process.kill()
            process.wait()
            raise AssertionError(f"no line starting {wanted!r} within {timeout:g} s; the last lines: {seen[-20:]}")
        seen.append(line)
        if line.lstrip().startswith(wanted):
            return seen
