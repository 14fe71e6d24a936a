"""The command's options and status line, and the token check, without starting Ray."""

from __future__ import annotations

import pytest

from yipyap_jupyter.serve.cli import parse, status_line

pytest.importorskip("starlette", reason="the serve extra is not installed: pip install 'yipyap-jupyter[serve]'")
from yipyap_jupyter.serve.manners import token_of


def test_options_are_checked_before_anything_starts(capsys: pytest.CaptureFixture[str]) -> None:
    args = parse(["--model", "tiny", "--replicas", "2", "--port", "8000", "--token", "T", "--gpus-per-replica", "1",
                  "--autoscale", "1:4", "--max-ongoing-requests", "8"])
    assert (args.replicas, args.port, args.token, args.gpus_per_replica, args.autoscale) == (2, 8000, "T", 1.0, (1, 4))
    assert args.host == "127.0.0.1"  # loopback unless told otherwise
    for bad in (["--autoscale", "4:1"], ["--autoscale", "many"], ["--replicas", "0"]):
        with pytest.raises(SystemExit) as refused:
            parse(bad)
        assert refused.value.code == 2, bad
    assert "--autoscale" in capsys.readouterr().err


def test_status_line_names_each_replica_its_node_and_devices() -> None:
    reports = [{"replica": "DiffusionReplica#a", "node": "10.0.0.5", "models": [
                   {"model": "tiny", "id": "tiny", "loaded": True, "device": "cuda:0"}]},
               {"replica": "DiffusionReplica#b", "node": "10.0.0.6", "models": [{"model": "tiny", "loaded": False}]}]
    line = status_line("http://127.0.0.1:8000", "as given", "10.0.0.5:6379", reports)
    assert line == ("yipyap-serve: http://127.0.0.1:8000/api/diffusion (token as given) · Ray 10.0.0.5:6379 · 2 replicas:"
                    " DiffusionReplica#a (10.0.0.5): tiny on cuda:0; DiffusionReplica#b (10.0.0.6): nothing loaded")


def test_the_token_is_read_as_jupyter_and_bearer_clients_send_it() -> None:
    assert token_of("token abc") == token_of("Bearer abc") == token_of("bearer  abc ") == "abc"
    assert token_of("abc") == token_of("Basic abc") == token_of("") == ""
