"""Device choice, dtype choice, and recognising accelerator out-of-memory."""

from __future__ import annotations

import gc
import weakref

import pytest
import torch

from yipyap_jupyter.engine import devices
from yipyap_jupyter.engine.devices import default_dtype, free_accelerator_memory, is_out_of_memory, resolve_device
from yipyap_jupyter.errors import ModelLoadingError, ValidationError

GIB = 2**30


@pytest.fixture
def no_accelerator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(devices, "_mps_available", lambda: False)


def test_auto_is_cpu_without_an_accelerator(no_accelerator: None) -> None:
    assert resolve_device("auto", 16 * GIB) == torch.device("cpu")
    assert resolve_device("CPU", 16 * GIB) == torch.device("cpu")


@pytest.mark.parametrize("requested", ["cuda", "cuda:0", "mps"])
def test_missing_accelerator_is_a_clear_validation_error(no_accelerator: None, requested: str) -> None:
    with pytest.raises(ValidationError, match=f"'{requested.split(':')[0]}' was requested") as caught:
        resolve_device(requested, GIB)
    assert caught.value.error_type == "validation"


@pytest.mark.parametrize("requested", ["tpu", "", "cuda:x", "cuda:1"])
def test_unknown_devices_are_rejected(fake_cuda: object, requested: str) -> None:
    with pytest.raises(ValidationError):
        resolve_device(requested, GIB)


def test_auto_takes_cuda_only_when_the_model_fits(fake_cuda) -> None:
    fake_cuda.free = 20 * GIB
    assert resolve_device("auto", 16 * GIB) == torch.device("cuda", 0)
    assert resolve_device("auto", 19 * GIB) == torch.device("cpu")  # no room for the headroom
    fake_cuda.free = 4 * GIB
    assert resolve_device("auto", 16 * GIB, reclaimable_bytes=15 * GIB) == torch.device("cuda", 0)
    assert resolve_device("cuda", 16 * GIB) == torch.device("cuda", 0)  # explicit: the user's call


def test_auto_falls_through_to_mps_when_it_fits(no_accelerator: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(devices, "_mps_available", lambda: True)
    monkeypatch.setattr(devices, "_mps_free_bytes", lambda: 32 * GIB)
    assert resolve_device("auto", 16 * GIB) == torch.device("mps")
    assert resolve_device("auto", 40 * GIB) == torch.device("cpu")


def test_default_dtypes(fake_cuda, monkeypatch: pytest.MonkeyPatch) -> None:
    assert default_dtype(torch.device("cpu")) == torch.float32
    assert default_dtype(torch.device("mps")) == torch.float16
    assert default_dtype(torch.device("cuda", 0)) == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert default_dtype(torch.device("cuda", 0)) == torch.float16


def test_out_of_memory_is_recognised_also_when_wrapped() -> None:
    assert is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert is_out_of_memory(RuntimeError("MPS backend out of memory (MPS allocated: 17.00 GB)"))
    try:
        try:
            raise torch.OutOfMemoryError("CUDA out of memory")
        except RuntimeError:
            raise ModelLoadingError("corrupt weight file model.safetensors") from None
    except ModelLoadingError as wrapped:
        assert is_out_of_memory(wrapped)
    assert not is_out_of_memory(RuntimeError("shape mismatch"))
    assert not is_out_of_memory(ValueError("out of range"))


def test_free_accelerator_memory_collects_unreachable_objects() -> None:
    class Node:
        pass

    node = Node()
    node.cycle = node  # only the cycle collector can free it
    alive = weakref.ref(node)
    gc.disable()
    try:
        del node
        assert alive() is not None
        free_accelerator_memory(torch.device("cpu"))
        assert alive() is None
    finally:
        gc.enable()
