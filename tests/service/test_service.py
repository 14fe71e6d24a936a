"""DiffusionLLMService over a real manager and a tiny random checkpoint."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import pytest
import torch

from yipyap_jupyter.cancel import CancelToken
from yipyap_jupyter.engine.model import SamplingOptions
from yipyap_jupyter.engine.runtime import DiffusionModelManager
from yipyap_jupyter.errors import (
    GenerationCancelled,
    GenerationError,
    NoModelLoadedError,
    ValidationError,
)
from yipyap_jupyter.service.events import (
    CompleteEvent,
    ErrorEvent,
    StatusEvent,
    StepEvent,
)
from yipyap_jupyter.service.postprocess import clean
from yipyap_jupyter.service.service import DiffusionLLMService
from yipyap_jupyter.settings import SettingsStore

CANARY = "CANARY-service-0c9e once upon a time"


def check_shape(events: list) -> CompleteEvent | ErrorEvent:
    """status first, then steps, then exactly one complete or error, which is last."""
    assert isinstance(events[0], StatusEvent)
    ends = [e for e in events if isinstance(e, (CompleteEvent, ErrorEvent))]
    assert len(ends) == 1 and events[-1] is ends[0]
    return ends[0]


def test_generate_events(service: DiffusionLLMService, tiny_llada_dir: Path) -> None:
    events = list(service.generate_events({"prompt": CANARY, "max_new_tokens": 16, "steps": 8, "seed": 1}))
    end = check_shape(events)
    assert isinstance(end, CompleteEvent)
    steps = [e for e in events if isinstance(e, StepEvent)]
    assert [s.step for s in steps] == list(range(1, 9)) and steps[-1].progress == 1.0
    assert "".join(s.text for s in steps) == end.raw_text
    assert end.history == [s.canvas for s in steps]
    assert end.model_used == str(tiny_llada_dir) and end.device == "cpu" and end.steps == 8
    assert 0 < end.tokens <= 16
    assert end.text == clean(end.raw_text, trim=True, punctuation=True)


def test_defaults_come_from_settings(service: DiffusionLLMService) -> None:
    service.update_settings({"max_new_tokens": 8, "auto_trim": False, "fix_punctuation": False})
    events = list(service.generate_events({"prompt": "the cat", "steps": 4}))
    steps = [e for e in events if isinstance(e, StepEvent)]
    assert len(steps[0].pieces) == 8
    assert events[-1].text == events[-1].raw_text


def test_request_overrides_settings(service: DiffusionLLMService) -> None:
    service.update_settings({"auto_trim": False, "fix_punctuation": False})
    done = service.generate({"prompt": "the cat", "max_new_tokens": 8, "steps": 8, "auto_trim": True})
    assert done.text == clean(done.raw_text, trim=True, punctuation=False)


def test_fixed_and_variable_infill(service: DiffusionLLMService, loaded_manager: DiffusionModelManager) -> None:
    fixed = list(service.infill_events({"prefix": "def x", "suffix": "return y", "length": 6}))
    end = check_shape(fixed)
    assert isinstance(end, CompleteEvent) and len(fixed[1].pieces) == 6
    model = loaded_manager.loaded_model
    assert model is not None
    expand = model.ids.expand

    def always_expand(module: torch.nn.Module, args: tuple, logits: torch.Tensor) -> torch.Tensor:
        logits[..., expand] += 1e4
        return logits

    hook = model.network.register_forward_hook(always_expand)  # a model that would grow the gap without end
    try:
        grown = list(service.infill_events({"prefix": "def x", "suffix": "return y", "variable": True,
                                            "max_new_tokens": 12}))
    finally:
        hook.remove()
    end = check_shape(grown)
    steps = [e for e in grown if isinstance(e, StepEvent)]
    assert isinstance(end, CompleteEvent) and end.tokens == 12, end  # it grows to max_new_tokens and no further
    assert max(len(s.pieces) for s in steps) == 12 and len(steps[-1].pieces) == 12


def test_validation_error_is_an_event_without_the_prompt(service: DiffusionLLMService) -> None:
    events = list(service.generate_events({"prompt": CANARY, "steps": 0}))
    assert len(events) == 1  # refused before anything streams: no status frame first
    end = events[0]
    assert isinstance(end, ErrorEvent) and end.error_type == "validation" and CANARY not in end.message
    with pytest.raises(ValidationError):
        service.generate({"prompt": CANARY, "bogus": True})


def test_engine_validation_reaches_the_caller(service: DiffusionLLMService) -> None:
    events = list(service.generate_events({"prompt": "x", "max_new_tokens": 10, "block_length": 3}))
    assert len(events) == 1
    end = events[0]
    assert isinstance(end, ErrorEvent) and end.error_type == "validation" and "block_length" in end.message


def test_a_prompt_longer_than_the_context_is_refused_before_any_frame(service: DiffusionLLMService) -> None:
    events = list(service.generate_events({"prompt": "the cat sat " * 2000, "max_new_tokens": 8}))
    assert len(events) == 1
    assert isinstance(events[0], ErrorEvent) and "context length" in events[0].message


def test_timeout_gives_a_timeout_event(service: DiffusionLLMService) -> None:
    end = list(service.generate_events({"prompt": "x", "max_new_tokens": 64, "steps": 64, "timeout": 1e-6}))[-1]
    assert isinstance(end, ErrorEvent) and end.error_type == "timeout" and end.retryable


def test_cancel_stops_within_a_step(service: DiffusionLLMService, loaded_manager: DiffusionModelManager) -> None:
    cancel = CancelToken()
    seen = []
    with pytest.raises(GenerationCancelled):
        for event in service.generate_events({"prompt": "x", "max_new_tokens": 64, "steps": 64}, cancel):
            seen.append(event)
            if isinstance(event, StepEvent):
                cancel.cancel()
    assert len([e for e in seen if isinstance(e, StepEvent)]) < 64
    assert service.generate({"prompt": "x", "max_new_tokens": 4, "steps": 4}).steps == 4  # the turn was released


def test_queue_position_is_reported(service: DiffusionLLMService, loaded_manager: DiffusionModelManager) -> None:
    # variable-length infilling runs alone: a request behind it waits for its turn
    holder = loaded_manager.infill("x", "y", SamplingOptions(max_new_tokens=8), variable=True)
    next(holder)  # a generation in flight holds the manager's turn while it is suspended
    events: list = []
    waiter = threading.Thread(target=lambda: events.extend(service.generate_events({"prompt": "y", "max_new_tokens": 4})))
    waiter.start()
    try:
        wait_until(lambda: any(isinstance(e, StatusEvent) and "queued" in e.message for e in list(events)),
                   saw=lambda: (events, waiter.is_alive()))
    finally:
        holder.close()  # the turn is given back, so the waiter ends either way
    waiter.join(60)
    assert not waiter.is_alive(), events
    assert any(e.message == "queued: 1 request ahead" for e in events if isinstance(e, StatusEvent))
    assert isinstance(events[-1], CompleteEvent)


def test_a_request_behind_a_running_generation_joins_its_batch(
    service: DiffusionLLMService, loaded_manager: DiffusionModelManager
) -> None:
    holder = loaded_manager.generate("x", SamplingOptions(max_new_tokens=8, steps=8, seed=0))
    first = next(holder)  # in flight, and nobody is reading it
    joined = list(service.generate_events({"prompt": "y", "max_new_tokens": 4, "steps": 4, "seed": 1}))
    assert not any(isinstance(e, StatusEvent) and "queued" in e.message for e in joined)
    assert isinstance(joined[-1], CompleteEvent)
    alone = list(service.generate_events({"prompt": "y", "max_new_tokens": 4, "steps": 4, "seed": 1}))
    assert joined[-1].text == alone[-1].text
    rest = [first, *holder]  # the holder's steps were made while the other request drove the batch
    solo = list(loaded_manager.generate("x", SamplingOptions(max_new_tokens=8, steps=8, seed=0)))
    assert [getattr(s, "text", None) for s in rest] == [getattr(s, "text", None) for s in solo]


def test_no_model_loaded(tmp_path: Path) -> None:
    service = DiffusionLLMService(DiffusionModelManager(), SettingsStore(tmp_path / "s.json"), default_model=None)
    end = list(service.generate_events({"prompt": "x"}))[-1]
    assert isinstance(end, ErrorEvent) and end.error_type == "model_unavailable"
    with pytest.raises(NoModelLoadedError):
        service.generate({"prompt": "x"})


def test_request_names_a_model_and_it_is_loaded(tmp_path: Path, tiny_llada_dir: Path) -> None:
    manager = DiffusionModelManager()
    service = DiffusionLLMService(manager, SettingsStore(tmp_path / "s.json"), default_model=str(tiny_llada_dir))
    events = list(service.generate_events({"prompt": "x", "max_new_tokens": 4, "steps": 2}))
    assert any(isinstance(e, StatusEvent) and e.message.startswith("loading") for e in events)
    assert isinstance(events[-1], CompleteEvent) and manager.current() is not None
    manager.unload()


class ExplodingManager(DiffusionModelManager):
    """A manager whose generation fails with an error nobody anticipated, quoting its input."""

    def generate(self, prompt, options, cancel=None, **where):  # type: ignore[no-untyped-def]
        raise KeyError(f"internal state lost while reading {prompt}")


def test_unexpected_failure_is_generic_and_redacted(
    tmp_path: Path, tiny_llada_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    manager = ExplodingManager()
    manager.load(str(tiny_llada_dir), device="cpu")
    service = DiffusionLLMService(manager, SettingsStore(tmp_path / "s.json"), default_model=None)
    caplog.set_level(logging.DEBUG, logger="yipyap_jupyter")
    end = list(service.generate_events({"prompt": CANARY}))[-1]
    assert isinstance(end, ErrorEvent) and end.error_type == "generation" and CANARY not in end.message
    assert "KeyError" in caplog.text and "[redacted" in caplog.text and CANARY not in caplog.text
    with pytest.raises(GenerationError):
        service.generate({"prompt": CANARY})


def test_complete_carries_the_options_that_ran_and_they_rerun_to_the_same_text(service: DiffusionLLMService) -> None:
    first = service.generate({"prompt": "the cat", "max_new_tokens": 8, "temperature": 1.0})
    options = first.options
    assert options["seed"] is not None and options["steps"] and options["block_length"] == 8
    assert options["remasking"] == "low_confidence" and options["cache"] == "none" and "alg" not in options
    rerun = service.generate({"prompt": "the cat", **{k: v for k, v in options.items() if k != "model"}})
    assert rerun.raw_text == first.raw_text and rerun.options == options


def test_a_request_that_names_a_model_runs_on_it_in_the_same_turn(
    service: DiffusionLLMService, other_llada_dir: Path, tiny_llada_dir: Path
) -> None:
    events = list(service.generate_events({"prompt": "the cat", "max_new_tokens": 4, "steps": 2,
                                           "model": str(other_llada_dir)}))
    statuses = [e.message for e in events if isinstance(e, StatusEvent)]
    assert any(message.startswith("loading") for message in statuses)
    assert events[-1].model_used == str(other_llada_dir)
    service.manager.load(str(tiny_llada_dir), device="cpu")  # the module's manager goes back as it was


def test_a_request_queued_behind_an_unload_loads_its_model(
    service: DiffusionLLMService, tiny_llada_dir: Path
) -> None:
    running = service.generate_events({"prompt": "the cat", "max_new_tokens": 8, "steps": 8})
    assert not isinstance(next(e for e in running if isinstance(e, StepEvent)), ErrorEvent)  # holds the turn now
    unloading = threading.Thread(target=service.unload_model)
    unloading.start()
    wait_until(lambda: service.manager._queue.length == 2, saw=lambda: service.manager._queue.length)
    queued: list = []
    waiting = threading.Thread(target=lambda: queued.extend(
        service.generate_events({"prompt": "the dog", "max_new_tokens": 4, "steps": 2})))
    waiting.start()  # planned against the loaded model, queued behind the unload
    wait_until(lambda: service.manager._queue.length == 3, saw=lambda: service.manager._queue.length)
    list(running)
    unloading.join(30)
    waiting.join(60)
    assert not unloading.is_alive() and not waiting.is_alive(), queued
    assert isinstance(queued[-1], CompleteEvent) and queued[-1].model_used == str(tiny_llada_dir)


def wait_until(condition, seconds: float = 30.0, saw=lambda: None) -> None:  # type: ignore[no-untyped-def]
    """Poll `condition` until it holds; after `seconds` fail with what `saw()` shows."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"not within {seconds:g} s; saw {saw()!r}"
        time.sleep(0.01)


@pytest.mark.parametrize(("model", "steps"), [("tiny", 32), ("tiny-block", 4)])
@pytest.mark.parametrize("load_as", ["id", "package directory"])
def test_defaults_are_the_same_loaded_or_not(tmp_path: Path, model: str, steps: int, load_as: str) -> None:
    """A request with defaults only runs the model's own spec whether or not (and however) the model was loaded."""
    from yipyap_jupyter.constants import SHIPPED_MODELS_DIR

    service = DiffusionLLMService(DiffusionModelManager(), SettingsStore(tmp_path / "settings.json"),
                                  default_model=model)
    fresh = service.generate({"prompt": "def add(a, b):", "seed": 0})
    service.load_model(model if load_as == "id" else str(SHIPPED_MODELS_DIR / model), {"device": "cpu"})
    loaded = service.generate({"prompt": "def add(a, b):", "seed": 0})
    service.unload_model()
    again = service.generate({"prompt": "def add(a, b):", "seed": 0})
    assert fresh.options["max_new_tokens"] == 64 and fresh.options["steps"] == steps  # the model's own defaults
    assert fresh.options == loaded.options == again.options
    assert fresh.text == loaded.text == again.text and fresh.model_used == loaded.model_used == model


def test_a_registry_model_loaded_by_its_directory_keeps_its_spec(
    tmp_path: Path, hub_cache: Path, tiny_llada_dir: Path
) -> None:
    """LLaDA-8B-Instruct's snapshot named by its path still gets its own defaults (dual cache, threshold)."""
    from checkpoints import add_to_hub_cache

    snapshot = add_to_hub_cache(hub_cache, "GSAI-ML/LLaDA-8B-Instruct", tiny_llada_dir)
    service = DiffusionLLMService(DiffusionModelManager(), SettingsStore(tmp_path / "settings.json"), default_model=None)
    service.load_model(str(snapshot), {"device": "cpu"})
    plan = service.plan("generate", {"prompt": "hello", "max_new_tokens": 32})
    assert plan.model == "llada-8b-instruct"
    assert (plan.options.cache, plan.options.threshold) == ("dual", 0.9)


def test_progress_never_decreases_while_a_variable_gap_grows(tmp_path: Path) -> None:
    """Variable-length infill adds masks as the gap grows; the share shown as progress still only rises."""
    service = DiffusionLLMService(DiffusionModelManager(), SettingsStore(tmp_path / "settings.json"))
    events = list(service.infill_events({"prefix": "def add(a, b):\n", "suffix": "\n\nprint(add(1, 2))\n",
                                         "variable": True, "max_new_tokens": 32, "seed": 0}))
    steps = [e for e in events if isinstance(e, StepEvent)]
    assert len({len(s.pieces) for s in steps}) > 1, "the gap never changed size: the test shows nothing"
    progress = [s.progress for s in steps]
    assert progress == sorted(progress) and progress[-1] == 1.0
