"""The model manager: one resident model, turns in arrival order, failed loads change nothing, OOM goes to CPU.

There is no GPU here, so `PretendGpu` plays one: a model loaded "on cuda:0" really sits on
the CPU, and the pretend GPU raises `torch.OutOfMemoryError` when more models are put on it
than it holds. Everything else (checkpoints, tokenizers, networks, samplers) is real.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest
import torch
from checkpoints import add_to_hub_cache, serve_as_hub
from pretend_gpu import PretendGpu, fail_forward, full_while_on_gpu

from yipyap_jupyter.cancel import CancelToken
from yipyap_jupyter.engine import families
from yipyap_jupyter.engine.model import DiffusionModel, SamplingOptions
from yipyap_jupyter.engine.runtime import DiffusionModelManager, Status
from yipyap_jupyter.engine.runtime import batch as batch_module
from yipyap_jupyter.engine.runtime.queue import RequestQueue, Turn
from yipyap_jupyter.engine.runtime.shared_batch import SharedBatch
from yipyap_jupyter.errors import (
    GenerationCancelled,
    GenerationError,
    ModelLoadingError,
    ModelUnavailableError,
    NoModelLoadedError,
    ValidationError,
)

OPTIONS = SamplingOptions(max_new_tokens=8, steps=4, block_length=8, seed=3)
#: Long enough for any thread handoff in these tests; reaching it means the test failed.
WAIT_SECONDS = 120


def damaged_copy(source: Path, destination: Path, damage: str) -> Path:
    shutil.copytree(source, destination)
    weights, config = destination / "model.safetensors", destination / "config.json"
    if damage == "corrupt":
        weights.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{not js" + weights.read_bytes()[16:])
    elif damage == "truncated":
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    elif damage == "shape":
        raw = json.loads(config.read_text())
        config.write_text(json.dumps({**raw, "mlp_hidden_size": raw["mlp_hidden_size"] // 2}))
    elif damage == "missing":
        weights.unlink()
    return destination


def final_tokens(steps: list[Any]) -> tuple[int, ...]:
    return steps[-1].tokens


@pytest.fixture
def manager() -> DiffusionModelManager:
    return DiffusionModelManager()


def test_load_then_generate_on_cpu(
    manager: DiffusionModelManager, tiny_llada_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="yipyap_jupyter.engine.runtime.residency")
    statuses: list[str] = []
    info = manager.load(str(tiny_llada_dir), device="cpu", on_status=lambda status: statuses.append(status.message))
    model_id = str(tiny_llada_dir.resolve())
    assert (info.id, info.loaded, info.device, info.dtype, info.fallback) == (model_id, True, "cpu", "float32", None)
    assert info.parameters == manager.loaded_model.parameters
    assert statuses == [f"loading {model_id} on cpu", f"loaded {model_id} on cpu"]
    assert manager.current() == info

    steps = list(manager.generate("secret words", OPTIONS))
    assert [s.step for s in steps] == [1, 2, 3, 4]
    assert steps[-1].progress == 1.0 and len(steps[-1].tokens) == 8
    assert manager.loaded_model.ids.mask not in steps[-1].tokens
    assert any("loaded" in r.getMessage() for r in caplog.records if r.name == "yipyap_jupyter.engine.runtime.residency")
    assert "secret" not in caplog.text


def test_infill_through_the_manager(manager: DiffusionModelManager, tiny_llada_dir: Path) -> None:
    manager.load(str(tiny_llada_dir), device="cpu")
    steps = list(manager.infill("def x", "return y", SamplingOptions(steps=4, seed=3), length=4))
    assert len(steps[-1].tokens) == 4 and manager.loaded_model.ids.mask not in steps[-1].tokens


def test_known_model_loads_from_the_cache_by_id(
    manager: DiffusionModelManager, hub_cache: Path, tiny_llada_dir: Path
) -> None:
    snapshot = add_to_hub_cache(hub_cache, "GSAI-ML/LLaDA-8B-Base", tiny_llada_dir)
    info = manager.load("llada-8b-base", device="cpu")
    assert (info.id, info.path, info.cached, info.repo_id) == (
        "llada-8b-base",
        str(snapshot),
        True,
        "GSAI-ML/LLaDA-8B-Base",
    )
    listed = {m.id: m for m in manager.models()}
    assert listed["llada-8b-base"].loaded and not listed["llada-8b-instruct"].loaded
    assert set(listed) == set(families.KNOWN_MODELS)


def test_download_then_load(
    manager: DiffusionModelManager,
    hub_online: None,
    hub_cache: Path,
    tiny_dream_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert not {m.id: m for m in manager.models()}["dream-v0-base-7b"].cached
    with serve_as_hub("Dream-org/Dream-v0-Base-7B", tiny_dream_dir) as endpoint:
        monkeypatch.setenv("HF_ENDPOINT", endpoint)
        info = manager.download("dream-v0-base-7b")
    assert info.cached and not info.loaded and info.parameters and Path(info.path).is_relative_to(hub_cache)
    assert {m.id: m for m in manager.models()}["dream-v0-base-7b"].cached
    assert manager.load("dream-v0-base-7b", device="cpu").loaded


def test_models_marks_a_loaded_local_directory(manager: DiffusionModelManager, tiny_dream_dir: Path) -> None:
    manager.load(str(tiny_dream_dir), device="cpu")
    listed = manager.models()
    assert [m.id for m in listed if m.loaded] == [str(tiny_dream_dir.resolve())]
    assert len(listed) == len(families.KNOWN_MODELS) + 1


def test_generating_with_nothing_loaded(manager: DiffusionModelManager) -> None:
    with pytest.raises(NoModelLoadedError) as caught:
        list(manager.generate("hello", OPTIONS))
    assert caught.value.error_type == "model_unavailable"


def test_reloading_the_same_model_keeps_it(manager: DiffusionModelManager, tiny_llada_dir: Path) -> None:
    manager.load(str(tiny_llada_dir), device="cpu")
    model = manager.loaded_model
    statuses: list[str] = []
    manager.load(str(tiny_llada_dir), device="auto", on_status=lambda status: statuses.append(status.message))
    assert manager.loaded_model is model and statuses == [f"{tiny_llada_dir.resolve()} is already loaded on cpu"]
    manager.load(str(tiny_llada_dir), device="cpu", dtype="bf16")
    assert manager.loaded_model is not model and manager.current().dtype == "bfloat16"


@pytest.mark.parametrize(
    ("damage", "error", "message"),
    [
        ("corrupt", ModelLoadingError, "corrupt weight file"),
        ("truncated", ModelLoadingError, "corrupt weight file"),
        ("shape", ModelLoadingError, "shape mismatch"),
        ("missing", ModelUnavailableError, "missing model.safetensors"),
    ],
)
def test_failed_load_leaves_the_previous_model_answering(
    manager: DiffusionModelManager,
    tiny_llada_dir: Path,
    other_llada_dir: Path,
    tmp_path: Path,
    damage: str,
    error: type[Exception],
    message: str,
) -> None:
    before = manager.load(str(tiny_llada_dir), device="cpu")
    model = manager.loaded_model
    expected = final_tokens(list(manager.generate("def x", OPTIONS)))
    broken = damaged_copy(other_llada_dir, tmp_path / "broken", damage)
    with pytest.raises(error, match=message):
        manager.load(str(broken), device="cpu")
    assert manager.current() == before and manager.loaded_model is model
    assert final_tokens(list(manager.generate("def x", OPTIONS))) == expected


@pytest.mark.parametrize(("device", "dtype"), [("tpu", None), ("cuda", None), ("cpu", "int8")])
def test_bad_device_or_dtype_is_rejected_and_changes_nothing(
    manager: DiffusionModelManager, tiny_llada_dir: Path, other_llada_dir: Path, device: str, dtype: str | None
) -> None:
    before = manager.load(str(tiny_llada_dir), device="cpu")
    with pytest.raises(ValidationError):
        manager.load(str(other_llada_dir), device=device, dtype=dtype)
    assert manager.current() == before


def test_out_of_memory_at_load_falls_back_to_cpu(
    manager: DiffusionModelManager,
    fake_cuda: Any,
    monkeypatch: pytest.MonkeyPatch,
    tiny_llada_dir: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    PretendGpu(monkeypatch, capacity=0)
    statuses: list[str] = []
    info = manager.load(str(tiny_llada_dir), device="auto", on_status=lambda status: statuses.append(status.message))
    fallback = "out of memory on cuda:0 at load; running on cpu"
    assert (info.device, info.fallback) == ("cpu", fallback)
    assert info.dtype == "bfloat16"  # the accelerator's dtype is kept: half the host memory of fp32
    assert statuses[0].startswith("loading") and fallback in statuses
    assert any(r.levelname == "WARNING" and fallback in r.getMessage() for r in caplog.records)
    assert len(list(manager.generate("def x", OPTIONS))) == 4


def test_switching_on_a_full_gpu_moves_the_previous_model_aside(
    manager: DiffusionModelManager,
    fake_cuda: Any,
    monkeypatch: pytest.MonkeyPatch,
    tiny_llada_dir: Path,
    other_llada_dir: Path,
) -> None:
    gpu = PretendGpu(monkeypatch, capacity=1)
    assert manager.load(str(tiny_llada_dir)).device == "cuda:0"
    statuses: list[str] = []
    info = manager.load(str(other_llada_dir), on_status=lambda status: statuses.append(status.message))
    assert (info.id, info.device, info.fallback) == (str(other_llada_dir.resolve()), "cuda:0", None)
    assert "out of memory on cuda:0; moving the previous model to cpu to make room" in statuses
    assert list(gpu.resident) == [manager.loaded_model]


def test_failed_switch_on_a_full_gpu_puts_the_previous_model_back(
    manager: DiffusionModelManager,
    fake_cuda: Any,
    monkeypatch: pytest.MonkeyPatch,
    tiny_llada_dir: Path,
    other_llada_dir: Path,
    tmp_path: Path,
) -> None:
    gpu = PretendGpu(monkeypatch, capacity=1)
    before = manager.load(str(tiny_llada_dir))
    model = manager.loaded_model
    with pytest.raises(ModelLoadingError):
        manager.load(str(damaged_copy(other_llada_dir, tmp_path / "broken", "shape")))
    assert manager.current() == before and before.device == "cuda:0"
    assert list(gpu.resident) == [model]
    assert len(list(manager.generate("def x", OPTIONS))) == 4


def test_out_of_memory_mid_generation_continues_on_cpu(
    manager: DiffusionModelManager, fake_cuda: Any, monkeypatch: pytest.MonkeyPatch, tiny_llada_dir: Path
) -> None:
    gpu = PretendGpu(monkeypatch, capacity=1)
    reference = DiffusionModelManager()
    reference.load(str(tiny_llada_dir), device="cpu", dtype="float32")
    expected = final_tokens(list(reference.generate("def x", OPTIONS)))

    assert manager.load(str(tiny_llada_dir), dtype="float32").device == "cuda:0"
    fail_forward(
        manager.loaded_model, torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), on_call=2
    )
    items = list(manager.generate("def x", OPTIONS))
    statuses = [item.message for item in items if isinstance(item, Status)]
    steps = [item for item in items if not isinstance(item, Status)]

    numbers = [s.step for s in steps]
    assert numbers[0] == 1 and numbers[-4:] == [1, 2, 3, 4] and len(numbers) > 4  # restarted from step 1
    restart = next(i for i, item in enumerate(items) if isinstance(item, Status) and item.restart)
    assert [s.step for s in items[restart + 1:]] == [1, 2, 3, 4]  # announced right before the new run
    assert final_tokens(steps) == expected  # same seed, same result
    assert statuses == ["out of memory on cuda:0; continuing on cpu"]
    current = manager.current()
    assert (current.device, current.fallback) == ("cpu", "out of memory on cuda:0 during generation; running on cpu")
    assert list(gpu.resident) == []


def test_out_of_memory_in_a_batch_moves_the_model_once_and_every_request_finishes_on_cpu(
    manager: DiffusionModelManager, fake_cuda: Any, monkeypatch: pytest.MonkeyPatch, tiny_llada_dir: Path
) -> None:
    PretendGpu(monkeypatch, capacity=1)
    other = SamplingOptions(max_new_tokens=8, steps=4, block_length=8, seed=4)
    reference = DiffusionModelManager()
    reference.load(str(tiny_llada_dir), device="cpu", dtype="float32")
    expected = [final_tokens(list(reference.generate(p, o))) for p, o in (("def x", OPTIONS), ("import y", other))]
    manager.load(str(tiny_llada_dir), dtype="float32")
    moves: list[str] = []
    real_move = manager.residency._move_to_cpu
    monkeypatch.setattr(manager.residency, "_move_to_cpu",
                        lambda resident, why: (moves.append(why), real_move(resident, why)))
    holder = manager.generate("def x", OPTIONS)
    first = next(holder)  # its batch is open, and nobody reads it for now
    full = full_while_on_gpu(manager, manager.loaded_model)
    in_batch = threading.Event()
    real_join = SharedBatch.join

    def join(batch: SharedBatch, run: Any, cancel: Any) -> Any:
        row = real_join(batch, run, cancel)
        if row is not None:
            in_batch.set()
        return row

    monkeypatch.setattr(SharedBatch, "join", join)
    joined: list[Any] = []
    joiner = threading.Thread(target=lambda: joined.extend(manager.generate("import y", other)))
    full.set()  # from now on every pass on the GPU fails: that of both rows, and its halves
    joiner.start()
    assert in_batch.wait(WAIT_SECONDS), "the second request joins the open batch"
    held = [first, *holder]
    joiner.join()
    for items, tokens in zip((held, joined), expected, strict=True):
        assert "out of memory on cuda:0; continuing on cpu" in [i.message for i in items if isinstance(i, Status)]
        assert final_tokens([i for i in items if not isinstance(i, Status)]) == tokens
    assert len(moves) == 1 and manager.current().device == "cpu"


def test_other_failures_mid_generation_are_generation_errors(
    manager: DiffusionModelManager, tiny_llada_dir: Path
) -> None:
    manager.load(str(tiny_llada_dir), device="cpu")
    fail_forward(manager.loaded_model, RuntimeError("expected all tensors to be on the same device"), on_call=2)
    with pytest.raises(GenerationError, match="same device") as caught:
        list(manager.generate("def x", OPTIONS))
    assert not caught.value.retryable  # a deterministic failure: retrying cannot help
    assert len(list(manager.generate("def x", OPTIONS))) == 4  # the failed run gave its turn back


def test_a_load_waits_for_the_generation_in_flight(
    manager: DiffusionModelManager, tiny_llada_dir: Path, other_llada_dir: Path
) -> None:
    first = manager.load(str(tiny_llada_dir), device="cpu")
    generation = manager.generate("def x", OPTIONS)
    steps = [next(generation)]  # the generation now holds the manager's turn
    queued = threading.Event()
    statuses: list[str] = []
    outcome: dict[str, Any] = {}

    def on_status(status: Status) -> None:
        statuses.append(status.message)
        if status.message.startswith("queued"):
            queued.set()

    def switch() -> None:
        try:
            outcome["info"] = manager.load(str(other_llada_dir), device="cpu", on_status=on_status)
        except Exception as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=switch)
    thread.start()
    assert queued.wait(WAIT_SECONDS)
    assert statuses == ["queued: 1 request ahead"]
    assert manager.current() == first  # no switch while the generation runs
    steps += list(generation)
    thread.join(WAIT_SECONDS)
    assert not thread.is_alive() and "error" not in outcome
    assert [s.step for s in steps] == [1, 2, 3, 4]
    assert manager.current() == outcome["info"] and outcome["info"].id == str(other_llada_dir.resolve())


def turn_of(line: Generator[Status, None, Turn | None]) -> Turn:
    """The turn a wait in line ends with (its statuses unread)."""
    while True:
        try:
            next(line)
        except StopIteration as reached:
            assert reached.value is not None, "a request that joins no batch gets its turn"
            return reached.value


def test_a_gather_ends_when_the_request_behind_cannot_join() -> None:
    queue = RequestQueue()
    holder = object()
    asked = threading.Event()

    def wait_in_line() -> None:
        def join(ahead: object) -> bool:
            asked.set()
            return False  # say, a request for another model

        turn_of(queue.wait(ticket=object(), join=join)).release()

    turn = turn_of(queue.wait(ticket=holder))
    thread = threading.Thread(target=wait_in_line, daemon=True)
    thread.start()
    assert asked.wait(WAIT_SECONDS)
    started = time.monotonic()
    queue.gather(holder, timeout=WAIT_SECONDS)  # the refusal ends it, not the timeout
    assert time.monotonic() - started < WAIT_SECONDS / 2
    turn.release()
    thread.join(WAIT_SECONDS)
    assert not thread.is_alive() and queue.length == 0


def test_a_request_offers_itself_to_the_batch_ahead_outside_the_queues_lock() -> None:
    """Joining may tokenize a prompt: the other requests keep the queue meanwhile."""
    queue = RequestQueue()
    front = turn_of(queue.wait(ticket=object()))
    seen: list[int] = []

    def join(ahead: object) -> bool:
        reader = threading.Thread(target=lambda: seen.append(queue.length))  # takes the queue's lock
        reader.start()
        reader.join(WAIT_SECONDS)
        return True

    with pytest.raises(StopIteration) as joined:
        next(queue.wait(join=join))
    assert joined.value.value is None, "a request that joins the batch ahead gets no turn of its own"
    assert seen == [2] and queue.length == 1
    front.release()
    front.release()  # a second release does nothing
    assert queue.length == 0


def test_a_cancelled_request_leaves_the_queue() -> None:
    queue = RequestQueue()
    cancel = CancelToken()
    statuses: list[str] = []
    outcome: dict[str, Any] = {}

    def on_status(status: Status) -> None:
        statuses.append(status.message)
        cancel.cancel()

    def wait_in_line() -> None:
        try:
            with queue.turn(on_status, cancel):
                outcome["ran"] = True
        except GenerationCancelled as exc:
            outcome["cancelled"] = exc

    with queue.turn():
        thread = threading.Thread(target=wait_in_line)
        thread.start()
        thread.join(WAIT_SECONDS)
        assert not thread.is_alive()
        assert statuses == ["queued: 1 request ahead"] and "cancelled" in outcome and "ran" not in outcome
        assert queue.length == 1
    assert queue.length == 0


def test_queue_positions_count_down_in_arrival_order() -> None:
    queue = RequestQueue()
    order: list[str] = []
    reports: dict[str, list[str]] = {"second": [], "third": []}
    lined_up = {name: threading.Event() for name in reports}
    third_moved_up = threading.Event()

    def request(name: str) -> None:
        def on_status(status: Status) -> None:
            reports[name].append(status.message)
            lined_up[name].set()
            if name == "third" and status.message == "queued: 1 request ahead":
                third_moved_up.set()

        with queue.turn(on_status):
            order.append(name)
            if name == "second":
                third_moved_up.wait(WAIT_SECONDS)  # hold the turn until the third has seen its place change

    with queue.turn():
        threads = {}
        for name in ("second", "third"):
            threads[name] = threading.Thread(target=request, args=(name,))
            threads[name].start()
            assert lined_up[name].wait(WAIT_SECONDS)
        order.append("first")
    for thread in threads.values():
        thread.join(WAIT_SECONDS)
    assert order == ["first", "second", "third"]
    assert reports == {
        "second": ["queued: 1 request ahead"],
        "third": ["queued: 2 requests ahead", "queued: 1 request ahead"],
    }


def test_requests_waiting_in_line_share_the_first_pass_of_the_batch_they_open(
    manager: DiffusionModelManager, tiny_llada_dir: Path, other_llada_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manager.load(str(tiny_llada_dir), device="cpu")
    loading, finish_load = threading.Event(), threading.Event()
    real_load = DiffusionModel.load.__func__  # type: ignore[attr-defined]

    def slow_load(cls: type, *args: Any) -> DiffusionModel:
        loading.set()
        finish_load.wait(WAIT_SECONDS)
        return real_load(cls, *args)

    monkeypatch.setattr(DiffusionModel, "load", classmethod(slow_load))
    rows_per_pass: list[int] = []
    real_packing = batch_module.Packing
    monkeypatch.setattr(batch_module, "Packing", lambda segments: (rows_per_pass.append(len(segments)),
                                                                     real_packing(segments))[1])
    loader = threading.Thread(target=manager.load, args=(str(other_llada_dir),), kwargs={"device": "cpu"})
    loader.start()
    assert loading.wait(WAIT_SECONDS)
    queued = [threading.Event() for _ in range(3)]
    results: list[list[Any]] = [[] for _ in queued]

    def request(i: int) -> None:
        options = SamplingOptions(max_new_tokens=8, steps=4, block_length=8, seed=i)
        for item in manager.generate(f"def f{i}():", options):
            results[i].append(item)
            if isinstance(item, Status) and item.message.startswith("queued"):
                queued[i].set()

    threads = []
    for i, event in enumerate(queued):  # one after another, so each is queued behind the last
        threads.append(threading.Thread(target=request, args=(i,)))
        threads[-1].start()
        assert event.wait(WAIT_SECONDS)
    finish_load.set()  # the first request opens a batch on the new model; the other two were waiting
    for thread in [loader, *threads]:
        thread.join(WAIT_SECONDS)
    assert [len([i for i in items if not isinstance(i, Status)]) for items in results] == [4, 4, 4]
    assert rows_per_pass == [3, 3, 3, 3]


def test_unload_frees_the_model(manager: DiffusionModelManager, tiny_llada_dir: Path) -> None:
    manager.load(str(tiny_llada_dir), device="cpu")
    network = weakref.ref(manager.loaded_model.network)
    manager.unload()
    assert network() is None
    assert manager.current() is None and manager.loaded_model is None
    assert not any(m.loaded for m in manager.models())
    with pytest.raises(NoModelLoadedError):
        list(manager.generate("def x", OPTIONS))


def test_importing_the_manager_does_not_import_torch() -> None:
    code = "import sys, yipyap_jupyter.engine.runtime; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_auto_refuses_before_loading_a_model_that_fits_neither_gpu_nor_host(
    manager: DiffusionModelManager, monkeypatch: pytest.MonkeyPatch, tiny_llada_dir: Path
) -> None:
    from yipyap_jupyter.engine import devices
    from yipyap_jupyter.errors import ModelLoadingError

    monkeypatch.setattr(devices, "host_available_bytes", lambda: 1000)
    with pytest.raises(ModelLoadingError, match=r"does not fit: it needs about .* GiB on a GPU \(no GPU on this "
                                                r"machine\) or about .* GiB of memory on the CPU in float32"):
        manager.load(str(tiny_llada_dir), device="auto")
    assert manager.current() is None
    assert manager.load(str(tiny_llada_dir), device="cpu").device == "cpu"  # asked for: not second-guessed
