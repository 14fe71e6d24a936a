"""The registry finds weights in the package, the Hugging Face cache or a local directory, and never downloads."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from checkpoints import add_to_hub_cache, make_dream_checkpoint, serve_as_hub, shard_checkpoint
from safetensors import safe_open

from yipyap_jupyter.engine import families, specs
from yipyap_jupyter.engine import registry as registry_module
from yipyap_jupyter.engine.model import DiffusionModel
from yipyap_jupyter.engine.registry import ModelRegistry, hub_cache_dir
from yipyap_jupyter.errors import ModelUnavailableError, NetworkError
from yipyap_jupyter.service.plan import make_plan
from yipyap_jupyter.service.schemas import GenerateRequest
from yipyap_jupyter.settings import UserSettings

LLADA_REPO = "GSAI-ML/LLaDA-8B-Instruct"


def tensor_count(directory: Path) -> int:
    """Parameters counted by reading every tensor, to check the header-only count against."""
    total = 0
    for path in directory.glob("*.safetensors"):
        with safe_open(str(path), framework="pt") as handle:
            total += sum(handle.get_tensor(name).numel() for name in handle.keys())
    return total


def test_known_model_resolves_to_its_snapshot_in_the_cache(hub_cache: Path, tiny_llada_dir: Path) -> None:
    snapshot = add_to_hub_cache(hub_cache, LLADA_REPO, tiny_llada_dir, revision="a" * 40)
    spec, path = ModelRegistry().resolve("llada-8b-instruct")
    assert spec.id == "llada-8b-instruct" and spec.repo_id == LLADA_REPO
    assert path == snapshot
    assert ModelRegistry().resolve(LLADA_REPO)[1] == snapshot


#: The Dream-shaped code models: repository, and (max_new_tokens, steps, temperature, top_p) of their READMEs,
#: and the tokens their text ends at.
CODE_MODELS = {
    "diffucoder-7b-instruct": ("apple/DiffuCoder-7B-Instruct", (256, 256, 0.4, 0.95), {"<|dlm_pad|>", "<|im_end|>"}),
    "dream-coder-7b-instruct": ("Dream-org/Dream-Coder-v0-Instruct-7B", (768, 768, 0.1, 0.95),
                                {"<|endoftext|>", "<|im_end|>"}),
}


@pytest.mark.parametrize("model_id", CODE_MODELS)
def test_code_models_resolve_from_the_cache_and_plan_with_their_readme_settings(
    hub_cache: Path, tmp_path: Path, model_id: str
) -> None:
    repo_id, settings, ends = CODE_MODELS[model_id]
    spec = families.KNOWN_MODELS[model_id]
    checkpoint = make_dream_checkpoint(tmp_path / "checkpoint", tokens=spec.tokens)
    snapshot = add_to_hub_cache(hub_cache, repo_id, checkpoint)
    assert ModelRegistry().resolve(model_id) == (spec, snapshot)
    assert families.detect(snapshot).name == spec.family == "dream"

    plan = make_plan(GenerateRequest(prompt="def add(a, b):", fix_punctuation=True), spec, UserSettings())
    options = plan.options
    assert (options.max_new_tokens, options.steps, options.temperature, options.top_p) == settings
    assert (options.alg, options.alg_temp, plan.fix_punctuation) == ("entropy", 0.0, False)

    model = DiffusionModel.load(spec, snapshot)
    assert set(model.tokenizer.convert_ids_to_tokens(sorted(model.ids.stops))) == ends
    assert model.tokenizer.convert_ids_to_tokens(model.ids.mask_id) == "<|mask|>"


def test_cache_location_is_read_at_call_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_llada_dir: Path
) -> None:
    registry = ModelRegistry()
    with pytest.raises(ModelUnavailableError):
        registry.resolve("llada-8b-instruct")
    home = tmp_path / "hf-home"
    snapshot = add_to_hub_cache(home / "hub", LLADA_REPO, tiny_llada_dir)
    monkeypatch.delenv("HF_HUB_CACHE")
    monkeypatch.setenv("HF_HOME", str(home))
    assert hub_cache_dir() == home / "hub"
    assert registry.resolve("llada-8b-instruct")[1] == snapshot


def test_model_missing_from_cache_says_what_to_download(hub_cache: Path) -> None:
    with pytest.raises(ModelUnavailableError) as caught:
        ModelRegistry().resolve("dream-v0-instruct-7b")
    assert caught.value.error_type == "model_unavailable"
    assert "hf download Dream-org/Dream-v0-Instruct-7B" in caught.value.message
    assert str(hub_cache) in caught.value.message
    assert list(hub_cache.iterdir()) == []  # nothing was fetched


def test_partly_downloaded_model_is_unavailable(hub_cache: Path, tiny_llada_dir: Path) -> None:
    add_to_hub_cache(hub_cache, LLADA_REPO, tiny_llada_dir, skip=("model.safetensors",))
    registry = ModelRegistry()
    with pytest.raises(ModelUnavailableError, match="partly on disk.*model.safetensors"):
        registry.resolve("llada-8b-instruct")
    info = registry.info(families.KNOWN_MODELS["llada-8b-instruct"])
    assert not info.cached and info.parameters is None and info.size_on_disk > 0


def test_unknown_id_lists_the_known_models() -> None:
    with pytest.raises(ModelUnavailableError, match="unknown model 'gpt-9'.*llada-8b-instruct"):
        ModelRegistry().resolve("gpt-9")


@pytest.mark.parametrize(
    ("fixture", "family", "capabilities"),
    [
        ("tiny_llada_dir", "llada", ("generate", "infill", "variable_infill")),
        ("tiny_dream_dir", "dream", ("generate", "infill")),
        ("tiny_dreamon_dir", "dreamon", ("infill", "variable_infill")),
    ],
)
def test_local_directory_is_a_model_of_its_detected_family(
    request: pytest.FixtureRequest, fixture: str, family: str, capabilities: tuple[str, ...]
) -> None:
    directory: Path = request.getfixturevalue(fixture)
    spec, path = ModelRegistry().resolve(str(directory))
    assert (spec.family, spec.capabilities, path) == (family, capabilities, directory.resolve())
    assert spec.id == str(directory.resolve())


def test_local_directory_without_weights_is_unavailable(tmp_path: Path, tiny_llada_dir: Path) -> None:
    shutil.copytree(tiny_llada_dir, tmp_path / "m")
    (tmp_path / "m" / "model.safetensors").unlink()
    with pytest.raises(ModelUnavailableError, match="missing model.safetensors"):
        ModelRegistry().resolve(str(tmp_path / "m"))


def test_tiny_resolves_to_the_package_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny_llada_dir: Path
) -> None:
    monkeypatch.setattr(specs, "SHIPPED_MODELS_DIR", tmp_path / "absent")
    with pytest.raises(ModelUnavailableError, match="reinstall"):
        ModelRegistry().resolve("tiny")
    shutil.copytree(tiny_llada_dir, tmp_path / "tiny")
    monkeypatch.setattr(specs, "SHIPPED_MODELS_DIR", tmp_path)
    spec, path = ModelRegistry().resolve("tiny")
    assert spec.id == "tiny" and path == tmp_path / "tiny"


def test_info_reports_size_and_parameters_without_loading(hub_cache: Path, tiny_llada_dir: Path) -> None:
    snapshot = add_to_hub_cache(hub_cache, LLADA_REPO, tiny_llada_dir)
    info = ModelRegistry().info(families.KNOWN_MODELS["llada-8b-instruct"])
    assert info.cached and info.path == str(snapshot)
    assert info.size_on_disk == sum(p.stat().st_size for p in tiny_llada_dir.iterdir())
    assert info.parameters == tensor_count(tiny_llada_dir) > 0
    assert not info.loaded and info.device is None


def test_parameters_of_a_sharded_checkpoint(tmp_path: Path, tiny_dream_dir: Path) -> None:
    expected = tensor_count(tiny_dream_dir)
    directory = shard_checkpoint(Path(shutil.copytree(tiny_dream_dir, tmp_path / "sharded")), shards=3)
    spec, path = ModelRegistry().resolve(str(directory))
    info = ModelRegistry().info(spec, path)
    assert info.cached and info.parameters == expected
    (directory / "model-00002-of-00003.safetensors").unlink()
    with pytest.raises(ModelUnavailableError, match="model-00002-of-00003"):
        ModelRegistry().resolve(str(directory))


def test_uncached_model_info(hub_cache: Path) -> None:
    info = ModelRegistry().info(families.KNOWN_MODELS["dreamon-v0-7b"])
    assert (info.cached, info.size_on_disk, info.parameters, info.path) == (False, 0, None, None)
    assert info.capabilities == ["infill", "variable_infill"]


def test_download_is_refused_offline_and_for_unknown_ids(hub_cache: Path) -> None:
    with pytest.raises(NetworkError, match="HF_HUB_OFFLINE"):
        ModelRegistry().download("llada-8b-instruct")
    with pytest.raises(ModelUnavailableError):
        ModelRegistry().download("gpt-9")
    assert list(hub_cache.iterdir()) == []


def test_download_fills_the_cache_and_reports_bytes(
    hub_online: None, hub_cache: Path, tiny_llada_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reports: list[tuple[int, int]] = []
    with serve_as_hub(LLADA_REPO, tiny_llada_dir) as endpoint:
        monkeypatch.setenv("HF_ENDPOINT", endpoint)
        path = ModelRegistry().download("llada-8b-instruct", lambda done, total: reports.append((done, total)))
    assert path == ModelRegistry().resolve("llada-8b-instruct")[1]
    assert path.is_relative_to(hub_cache / "models--GSAI-ML--LLaDA-8B-Instruct")
    total = sum(p.stat().st_size for p in tiny_llada_dir.iterdir())
    assert reports[-1] == (total, total)
    assert [done for done, _ in reports] == sorted(done for done, _ in reports)


def test_download_failures_are_categorised(
    hub_online: None, hub_cache: Path, tiny_llada_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with serve_as_hub("someone/else", tiny_llada_dir) as endpoint:
        monkeypatch.setenv("HF_ENDPOINT", endpoint)
        with pytest.raises(ModelUnavailableError, match="not found on the hub"):
            ModelRegistry().download("llada-8b-instruct")
    with pytest.raises(NetworkError) as caught:  # the server is gone: unreachable
        ModelRegistry().download("llada-8b-instruct")
    assert caught.value.retryable


def test_progress_class_reports_bytes_written(tmp_path: Path) -> None:
    """The adapter follows the hub's bytes-written bar and ignores its file counter and transfer bar."""
    reports: list[tuple[int, int]] = []
    bar_class = registry_module._byte_progress_class(lambda done, total: reports.append((done, total)))
    files = bar_class(total=2, desc="Fetching 2 files")
    transfer = bar_class(total=0, unit="B", desc="Downloading bytes")
    written = bar_class(total=0, unit="B", desc="Reconstructing (incomplete total...)")
    written.total = 300
    for bar in (files, transfer, written):
        bar.update(100)
    written.update(200)
    assert reports == [(100, 300), (300, 300)]


def test_an_id_naming_an_unknown_home_directory_is_an_unknown_model() -> None:
    """`~nosuchuser` cannot be expanded: it is an unknown model (404), not a crash (the fuzzer found it)."""
    with pytest.raises(ModelUnavailableError, match="unknown model"):
        ModelRegistry().resolve("~nosuchuser-0f3c")
