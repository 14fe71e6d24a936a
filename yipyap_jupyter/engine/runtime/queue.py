"""The request queue: loads and generations take turns in arrival order.

A waiting request learns how many are ahead of it (as `Status` messages) and, when it is
right behind the front, may offer itself to the front's open batch instead of waiting
for it to finish (`join`). The front holds its `Turn` until it calls `release()`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from .status import Status, StatusCallback, quiet

if TYPE_CHECKING:
    from ...cancel import CancelToken

#: How often a queued request re-checks its cancel token while it waits.
QUEUE_POLL_SECONDS = 0.1


class Turn:
    """The front of the line, held by one request until it calls `release()` (once or more)."""

    def __init__(self, queue: RequestQueue, ticket: object) -> None:
        self._queue = queue
        self.ticket = ticket

    def release(self) -> None:
        """Leave the line, letting the next request have its turn (a second call does nothing)."""
        self._queue._leave(self.ticket)


class RequestQueue:
    """First come, first served: one request runs at a time, the others wait and learn their place.

    Not tied to a thread: a generation may be iterated step by step from different
    executor threads and still release its turn from whichever thread ends it.
    """

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._changes = 0  # counts every change a waiter may be waiting for
        self._line: list[object] = []
        #: requests right behind the front that were offered the front's ticket and could not join
        self._declined: dict[object, object] = {}

    @property
    def length(self) -> int:
        """Requests running or waiting."""
        with self._changed:
            return len(self._line)

    def gather(self, holder: object, timeout: float) -> None:
        """Let the requests in line behind `holder` join the batch it has just opened on its ticket.

        Wakes them, and waits until every one that can has joined: until the request right
        behind `holder` has declined, or nobody is left behind it (at most `timeout` seconds).
        So requests that were already waiting share the batch's first pass.
        """
        with self._changed:
            self._declined = {t: h for t, h in self._declined.items() if h is not holder}  # offered no batch yet
            self._notify()
            self._changed.wait_for(
                lambda: len(self._line) < 2 or self._line[0] is not holder or self._declined.get(self._line[1]) is holder,
                timeout,
            )

    def wait(
        self, cancel: CancelToken | None = None, *, ticket: object | None = None,
        join: Callable[[object], bool] | None = None,
    ) -> Generator[Status, None, Turn | None]:
        """Join the line; yield "queued: N requests ahead" whenever N changes; return the `Turn`.

        With `join`, a request with only one entry ahead of it offers itself to that entry's
        `ticket`: when `join(ticket)` accepts, the request leaves the line and the generator
        returns None. `join` runs outside the queue's lock (it may tokenize a prompt).
        Closing the generator before it returns leaves the line.

        Raises:
            GenerationCancelled: `cancel` was cancelled while waiting (the request leaves the line).
        """
        ticket = object() if ticket is None else ticket
        with self._changed:
            self._line.append(ticket)
        turn = Turn(self, ticket)
        try:
            reported = 0
            while True:
                with self._changed:
                    seen = self._changes
                    ahead = self._line.index(ticket)
                    front = self._line[0] if ahead == 1 else None
                if front is not None and join is not None and join(front):
                    turn.release()
                    return None
                with self._changed:
                    if front is not None and self._declined.get(ticket) is not front:
                        self._declined[ticket] = front
                        self._notify()  # a gather waits for this answer
                        seen = self._changes
                    if ahead == reported and ahead > 0:
                        self._wait_for_change(seen, QUEUE_POLL_SECONDS if cancel is not None else None)
                    ahead = self._line.index(ticket)
                if cancel is not None:
                    cancel.raise_if_cancelled(0)
                if ahead == 0:
                    return turn
                if ahead != reported:
                    reported = ahead
                    yield Status(f"queued: {ahead} request{'s' if ahead > 1 else ''} ahead")
        except BaseException:  # cancelled, failed, or closed by a caller that stopped listening
            turn.release()
            raise

    @contextmanager
    def turn(self, on_status: StatusCallback = quiet, cancel: CancelToken | None = None) -> Iterator[Turn]:
        """The turn as a `with` block, for work that reports through a callback (load, unload)."""
        line = self.wait(cancel)
        try:
            while True:
                on_status(next(line))
        except StopIteration as reached:
            turn: Turn = reached.value
        finally:
            line.close()
        try:
            yield turn
        finally:
            turn.release()

    # -- internals ----------------------------------------------------------------

    def _notify(self) -> None:
        """Wake every waiter (the caller holds the condition)."""
        self._changes += 1
        self._changed.notify_all()

    def _wait_for_change(self, seen: int, timeout: float | None) -> None:
        """Wait until something changed after the `seen`-th change (the caller holds the condition)."""
        self._changed.wait_for(lambda: self._changes != seen, timeout)

    def _leave(self, ticket: object) -> None:
        with self._changed:
            if ticket in self._line:
                self._line.remove(ticket)
                self._declined.pop(ticket, None)
                self._notify()
