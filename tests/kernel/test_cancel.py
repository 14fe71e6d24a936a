"""The kernel's cancel token: the engine's interface plus abort callbacks."""

from __future__ import annotations

import pytest

from yipyap_jupyter.errors import GenerationCancelled
from yipyap_jupyter.kernel.cancel import StreamCancel


def test_callbacks_run_once_on_cancel_and_at_once_when_late() -> None:
    token = StreamCancel()
    calls: list[str] = []
    token.on_cancel(lambda: calls.append("early"))
    token.raise_if_cancelled(1)
    token.cancel()
    token.cancel()
    token.on_cancel(lambda: calls.append("late"))
    assert calls == ["early", "late"]
    assert token.cancelled
    with pytest.raises(GenerationCancelled) as stopped:
        token.raise_if_cancelled(7)
    assert stopped.value.step == 7
