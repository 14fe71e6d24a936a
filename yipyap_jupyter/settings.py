"""User settings shared by the server (`/settings`) and the kernel (magics, panels).

One JSON file in the Jupyter config dir, the notebook's counterpart of a browser's
localStorage. Writes are atomic so a reader never sees half a file, and an update's
read-modify-write holds a file lock beside it, so the server and kernels (separate
processes) changing different keys never lose each other's changes.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any, Literal

from filelock import FileLock
from pydantic import BaseModel, ConfigDict, Field

from .errors import ValidationError
from .service.validation import validate

log = logging.getLogger(__name__)

#: Environment variable that moves the settings file (tests, shared machines).
SETTINGS_PATH_ENV = "YIPYAP_SETTINGS_PATH"


class UserSettings(BaseModel):
    """What a user may set once and have every request use as its default."""

    model_config = ConfigDict(extra="forbid")

    auto_trim: bool = True
    fix_punctuation: bool = True
    max_new_tokens: int | None = Field(default=None, ge=1, le=4096, description="None: each model's own default")
    request_timeout: float = Field(default=300.0, ge=1, le=3600)
    preferred_device: Literal["auto", "cuda", "mps", "cpu"] = "auto"


def default_settings_path() -> Path:
    """`$YIPYAP_SETTINGS_PATH`, else `<jupyter config dir>/yipyap_jupyter/settings.json`."""
    override = os.environ.get(SETTINGS_PATH_ENV)
    if override:
        return Path(override)
    from jupyter_core.paths import jupyter_config_dir

    return Path(jupyter_config_dir()) / "yipyap_jupyter" / "settings.json"


class SettingsStore:
    """Load, validate and atomically save `UserSettings` at one path."""

    def __init__(self, path: Path | str | None = None) -> None:
        self.path = Path(path) if path is not None else default_settings_path()
        self._lock = FileLock(self.path.with_name(self.path.name + ".lock"))

    def load(self) -> UserSettings:
        """The saved settings; defaults when the file is missing or unreadable."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            return validate(UserSettings, data)
        except FileNotFoundError:
            return UserSettings()
        except (OSError, ValueError) as error:
            log.warning("settings file %s unreadable, using defaults: %s", self.path, error)
            return UserSettings()

    def save(self, settings: UserSettings) -> None:
        """Write through a temporary file and `os.replace`, so the file is always whole."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=".settings-", suffix=".json", dir=self.path.parent)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as file:
                json.dump(settings.model_dump(), file, indent=2)
                file.write("\n")
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def update(self, changes: dict[str, Any]) -> UserSettings:
        """Apply `changes` to the saved settings; `ValidationError` leaves the file untouched."""
        if not isinstance(changes, dict):
            raise ValidationError(f"expected a JSON object, got {type(changes).__name__}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:  # every process's update, not just this one's threads
            merged = {**self.load().model_dump(), **changes}
            settings = validate(UserSettings, merged)
            self.save(settings)
            return settings
