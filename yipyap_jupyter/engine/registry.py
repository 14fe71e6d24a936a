"""Where each model's weights are: the package's tiny model, the Hugging Face cache, or a local directory.

Resolving a model never downloads: a known model whose weights are not in the
cache is a `ModelUnavailableError` that says how to get them. `download` is the
one explicit action that reaches the hub. Nothing here imports torch, so listing
models stays cheap for the server and the kernel.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Callable
from math import prod
from pathlib import Path
from typing import Any

from ..errors import ModelUnavailableError, NetworkError
from .checkpoint.files import CONFIG_FILE, checkpoint_files, context_length
from .families import KNOWN_MODELS, detect, with_checkpoint_defaults
from .model_info import ModelInfo
from .specs import ModelSpec

#: What a download fetches: weights, configs and tokenizer files (no remote code, no duplicate .bin weights).
DOWNLOAD_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model", "*.tiktoken", "*.jinja"]
#: A safetensors header larger than this is a corrupt file, not a header.
MAX_HEADER_BYTES = 100_000_000

ProgressCallback = Callable[[int, int], None]


def _env_flag(name: str) -> bool | None:
    value = os.environ.get(name)
    return None if value is None else value.strip().upper() in {"1", "ON", "YES", "TRUE"}


def hub_cache_dir() -> Path:
    """The Hugging Face cache, read now: the hub's own constants are fixed when it is first imported."""
    from huggingface_hub import constants

    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(name):
            return Path(os.path.expandvars(os.environ[name])).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.path.expandvars(os.environ["HF_HOME"])).expanduser() / "hub"
    return Path(constants.HF_HUB_CACHE)


def hub_offline() -> bool:
    """HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) as set now, else as the hub read it at import."""
    from huggingface_hub import constants

    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        flag = _env_flag(name)
        if flag is not None:
            return flag
    return bool(constants.HF_HUB_OFFLINE)


def safetensors_parameters(files: list[Path]) -> int | None:
    """Parameter count from the safetensors headers alone (no tensor is read); None if unreadable."""
    total = 0
    for path in files:
        if not path.name.endswith(".safetensors"):
            continue
        try:
            with path.open("rb") as handle:
                (length,) = struct.unpack("<Q", handle.read(8))
                if length > MAX_HEADER_BYTES:
                    return None
                header: dict[str, Any] = json.loads(handle.read(length))
        except (OSError, ValueError, struct.error):
            return None
        total += sum(prod(entry["shape"]) for name, entry in header.items() if name != "__metadata__")
    return total


def _is_dir(path: Path) -> bool:
    """`path.is_dir()`, False for a name the file system cannot even look up (too long, bad bytes)."""
    try:
        return path.is_dir()
    except (OSError, ValueError):
        return False


def _user_path(text: str) -> Path | None:
    """`text` as a path, `~` expanded; None when it names a home directory this machine does not know."""
    try:
        return Path(text).expanduser()
    except RuntimeError:  # "~nosuchuser": no such home directory
        return None


def size_on_disk(directory: Path) -> int:
    """Bytes of the files under `directory`, following the cache's symlinks to their blobs once each."""
    seen: set[Path] = set()
    total = 0
    for path in directory.rglob("*"):
        target = path.resolve()
        if target in seen or not target.is_file():
            continue
        seen.add(target)
        total += target.stat().st_size
    return total


def _byte_progress_class(progress: ProgressCallback) -> type:
    """A tqdm class for `snapshot_download` that reports bytes written as `progress(done, total)`.

    The hub opens several bars on the class it is given: a file counter, a network-transfer bar
    ("Downloading bytes") and a bytes-written bar whose total grows as files start. We report the
    last one, whatever the transport (plain HTTP or Xet), and draw nothing.
    """
    import io

    from tqdm.std import tqdm

    class ByteProgress(tqdm):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["file"] = io.StringIO()
            super().__init__(*args, **kwargs)
            self._reports = self.unit == "B" and not str(self.desc).startswith("Downloading bytes")

        def update(self, n: float | None = 1) -> bool | None:
            shown = super().update(n)
            if self._reports:
                progress(int(self.n), int(self.total or 0))
            return shown

    return ByteProgress


class ModelRegistry:
    """Known models by id (or hub repo id), plus any local checkpoint directory."""

    def __init__(self, known: dict[str, ModelSpec] | None = None) -> None:
        self.known = dict(KNOWN_MODELS if known is None else known)

    def specs(self) -> list[ModelSpec]:
        return list(self.known.values())

    def lookup(self, model_id: str) -> ModelSpec | None:
        """A known spec by our id or by its hub repo id."""
        if model_id in self.known:
            return self.known[model_id]
        return next((s for s in self.known.values() if s.repo_id and s.repo_id.lower() == model_id.lower()), None)

    def resolve(self, model_id_or_path: str) -> tuple[ModelSpec, Path]:
        """The spec and the local directory of a model, without downloading anything.

        Raises:
            ModelUnavailableError: unknown id, or weights not (fully) in the cache.
            ModelLoadingError: a local directory whose config names no family we support.
        """
        spec = self.lookup(model_id_or_path)
        if spec is not None:
            directory = self._located(spec)
            return with_checkpoint_defaults(spec, directory), directory
        path = _user_path(model_id_or_path)
        if path is not None and _is_dir(path):
            directory = path.resolve()
            return with_checkpoint_defaults(self._known_at(directory) or self._local_spec(directory), directory), directory
        known = ", ".join(self.known)
        raise ModelUnavailableError(
            f"unknown model {model_id_or_path[:200]!r}: use one of {known}, or the path of a local checkpoint directory"
        )

    def info(self, spec: ModelSpec, path: Path | None = None) -> ModelInfo:
        """Cache state, size and parameter count of a model (`path`: its directory when already known)."""
        directory = path or self._directory(spec)
        present, missing = checkpoint_files(directory) if directory else ([], ["config.json"])
        return ModelInfo(
            id=spec.id,
            name=spec.name,
            family=spec.family,
            repo_id=spec.repo_id,
            capabilities=list(spec.capabilities),
            parameters=(safetensors_parameters(present) if not missing else None) or spec.parameters,
            size_on_disk=size_on_disk(directory) if directory else 0,
            cached=not missing,
            path=str(directory) if directory else None,
            context_length=(context_length(directory) if directory and not missing else None) or spec.context_length,
        )

    def download(self, model_id: str, progress: ProgressCallback | None = None) -> Path:
        """Fetch a known hub model into the Hugging Face cache (the only call that reaches the hub).

        Raises:
            ModelUnavailableError: unknown id, or the hub refuses the repository (gated, missing).
            NetworkError: offline mode, or the hub unreachable.
        """
        spec = self.lookup(model_id)
        if spec is None:
            raise ModelUnavailableError(
                f"unknown model {model_id[:200]!r}: only {', '.join(self.known)} can be downloaded"
            )
        if spec.repo_id is None:
            return self._located(spec)
        if hub_offline():
            raise NetworkError(f"cannot download {spec.repo_id}: HF_HUB_OFFLINE is set", retryable=False)
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError

        try:
            path = snapshot_download(
                spec.repo_id,
                cache_dir=hub_cache_dir(),
                allow_patterns=DOWNLOAD_PATTERNS,
                endpoint=os.environ.get("HF_ENDPOINT") or None,
                tqdm_class=_byte_progress_class(progress) if progress else None,
            )
        except GatedRepoError:
            raise ModelUnavailableError(
                f"{spec.repo_id} is gated: accept its terms on the hub and log in (`hf auth login`) first"
            ) from None
        except RepositoryNotFoundError:
            raise ModelUnavailableError(f"{spec.repo_id} was not found on the hub") from None
        except (HfHubHTTPError, OSError) as exc:
            raise NetworkError(f"download of {spec.repo_id} failed: {exc}") from None
        return Path(path)

    # -- internals ----------------------------------------------------------------

    def _directory(self, spec: ModelSpec) -> Path | None:
        """The model's directory if any of it is on disk (complete or not); never reaches the hub."""
        if spec.local_dir:
            return Path(spec.local_dir) if Path(spec.local_dir).is_dir() else None
        if spec.repo_id is None:
            return None
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(spec.repo_id, CONFIG_FILE, cache_dir=hub_cache_dir())
        return Path(cached).parent if isinstance(cached, str) else None

    def _located(self, spec: ModelSpec) -> Path:
        directory = self._directory(spec)
        if spec.local_dir:
            how = f"reinstall yipyap-jupyter ({spec.id} ships inside the package)"
        else:
            how = f"download it first (`hf download {spec.repo_id}`, or the model manager's download action)"
        if directory is None:
            where = f"the Hugging Face cache ({hub_cache_dir()})" if spec.repo_id else "the package"
            raise ModelUnavailableError(f"model {spec.id} is not in {where}: {how}")
        _, missing = checkpoint_files(directory)
        if missing:
            raise ModelUnavailableError(
                f"model {spec.id} is only partly on disk at {directory} (missing {', '.join(missing[:3])}): {how}"
            )
        return directory

    def _known_at(self, directory: Path) -> ModelSpec | None:
        """The known model whose weights are this directory (a model shipped in the package, a cached snapshot), if any.

        A known model named by its path gets its own spec, so the same weights get the same defaults
        whichever way they are named.
        """
        for spec in self.known.values():
            own = self._directory(spec)
            if own is not None and own.resolve() == directory:
                return spec
        return None

    def _local_spec(self, directory: Path) -> ModelSpec:
        _, missing = checkpoint_files(directory)
        if missing:
            raise ModelUnavailableError(f"{directory} is not a complete checkpoint (missing {', '.join(missing[:3])})")

        return detect(directory).local_spec(str(directory), directory)
