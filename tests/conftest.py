"""Fixtures every test folder shares: an offline, empty Hugging Face cache per test, tiny checkpoints, a pretend GPU.

Torch is imported inside the fixtures that need it, so test folders that do not stay quick to collect.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread() -> None:
    """Tests share two cores with other work, and tiny networks run fastest on one thread."""
    import torch

    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test runs offline against a cache of its own: nothing reaches a hub or reads the user's cache."""
    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    return cache


@pytest.fixture
def hub_online(monkeypatch: pytest.MonkeyPatch) -> None:
    """Downloads allowed, for tests that serve a local hub (`checkpoints.serve_as_hub`) at HF_ENDPOINT.

    The hub client read HF_HUB_OFFLINE=1 when first imported, so its constant is switched too.
    """
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


@pytest.fixture(scope="session")
def tiny_llada_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random LLaDA-architecture checkpoint with the tiny model's tokens (read-only: copy it to damage it)."""
    from checkpoints import make_llada_checkpoint

    return make_llada_checkpoint(tmp_path_factory.mktemp("llada"))


@pytest.fixture(scope="session")
def other_llada_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second, differently seeded LLaDA checkpoint, for switching models."""
    from checkpoints import make_llada_checkpoint

    return make_llada_checkpoint(tmp_path_factory.mktemp("llada-other"), seed=1)


@pytest.fixture(scope="session")
def tiny_dream_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from checkpoints import make_dream_checkpoint

    return make_dream_checkpoint(tmp_path_factory.mktemp("dream"))


@pytest.fixture(scope="session")
def tiny_dreamon_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from checkpoints import make_dream_checkpoint

    return make_dream_checkpoint(tmp_path_factory.mktemp("dreamon"), dreamon=True)


@pytest.fixture(scope="session")
def tiny_gemma_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random DiffusionGemma checkpoint as transformers' `save_pretrained` writes it, canvases of 8 tokens."""
    from checkpoints import make_diffusiongemma_checkpoint

    return make_diffusiongemma_checkpoint(tmp_path_factory.mktemp("gemma"), generation={"max_denoising_steps": 6})


@dataclass
class PretendCuda:
    """What torch reports about the one pretend GPU; tests change `free` to make models fit or not."""

    free: int = 80 * 2**30
    total: int = 80 * 2**30


@pytest.fixture
def fake_cuda(monkeypatch: pytest.MonkeyPatch) -> PretendCuda:
    """torch's CUDA queries answer as on a machine with one bf16-capable GPU (and no MPS).

    Only the queries are pretended: nothing is ever placed on it. Tests that load a model
    "on cuda" also replace the loader (see tests/engine/test_manager.py).
    """
    import torch

    from yipyap_jupyter.engine import devices

    gpu = PretendCuda()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda *args: (gpu.free, gpu.total))
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: True)
    monkeypatch.setattr(devices, "_mps_available", lambda: False)
    return gpu
