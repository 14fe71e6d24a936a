"""Prompts never reach a log record: by field name at any depth, by value, and at DEBUG by message."""

from __future__ import annotations

import contextvars
import json
import logging
from pathlib import Path

import pytest

from yipyap_jupyter.service.correlation import (
    choose_correlation_id,
    correlation_id,
    in_current_context,
)
from yipyap_jupyter.service.logs import (
    configure_log_files,
    get_logger,
    remove_log_files,
)
from yipyap_jupyter.service.redaction import redact, register_sensitive

CANARY = "CANARY-redaction-51d2"


def test_fields_are_redacted_at_any_depth() -> None:
    value = {"a": [{"prompt": CANARY}], "suffix": 12345, "keep": "fine", "nested": {"prefix": ["x"]}}
    assert redact(value) == {"a": [{"prompt": "[redacted 21 chars]"}], "suffix": "[redacted 5 chars]",
                             "keep": "fine", "nested": {"prefix": "[redacted 5 chars]"}}


def test_log_files_never_see_the_canary(tmp_path: Path) -> None:
    configure_log_files(tmp_path, level=logging.DEBUG)
    log = get_logger("yipyap_jupyter.tests.redaction")
    log.setLevel(logging.DEBUG)

    def emit() -> None:
        correlation_id.set("cid-1")
        register_sensitive([CANARY])
        log.info("body %s", {"prompt": CANARY}, extra={"fields": {"deep": {"suffix": CANARY}}})
        log.warning("value seen in a message: %s", f"xx{CANARY}yy")
        log.debug("generated text %s", "anything at all")
        try:
            raise RuntimeError(f"tokenizer choked on {CANARY}")
        except RuntimeError:
            log.exception("failed")

    try:
        contextvars.copy_context().run(emit)
    finally:
        remove_log_files()
    structured = (tmp_path / "structured.log").read_text()
    backend = (tmp_path / "backend.log").read_text()
    assert CANARY not in structured and CANARY not in backend
    records = [json.loads(line) for line in structured.splitlines()]
    assert {r["correlation_id"] for r in records} == {"cid-1"}
    assert {"timestamp", "level", "logger", "message"} <= set(records[0])
    assert records[0]["fields"]["deep"]["suffix"].startswith("[redacted")
    assert records[2]["message"].startswith("[redacted")  # DEBUG text goes entirely
    assert "RuntimeError" in records[3]["exc_info"] and "[redacted 21 chars]" in records[3]["exc_info"]
    assert "[cid-1]" in backend


def test_correlation_id_follows_work_into_threads() -> None:
    import threading

    seen: list[str] = []

    def request() -> None:
        correlation_id.set("cid-thread")
        worker = threading.Thread(target=in_current_context(lambda: seen.append(correlation_id.get())))
        worker.start()
        worker.join()

    contextvars.copy_context().run(request)
    assert seen == ["cid-thread"]


@pytest.mark.parametrize("incoming, kept", [("abc-123", True), ("bad id\n", False), ("x" * 200, False), (None, False)])
def test_incoming_correlation_ids(incoming: str | None, kept: bool) -> None:
    chosen = choose_correlation_id(incoming)
    assert (chosen == incoming) is kept and chosen
