"""Find the Jupyter server that started this kernel, so the kernel can share its model.

A kernel started by jupyter_server has the server as its parent process (the
launcher also records it in `JPY_PARENT_PID`), and every running server writes
`jpserver-<pid>.json` (url, token, pid) to Jupyter's runtime dir. Matching the
two finds our server and its token without asking the user. `YIPYAP_SERVER_URL`
(and `YIPYAP_SERVER_TOKEN`) name a server explicitly, e.g. for a remote kernel.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

#: Environment variables that name the server explicitly.
SERVER_URL_ENV = "YIPYAP_SERVER_URL"
SERVER_TOKEN_ENV = "YIPYAP_SERVER_TOKEN"

#: How far up the process tree a kernel may sit below its server (wrappers such as conda run).
MAX_ANCESTORS = 8


@dataclass(frozen=True)
class ServerInfo:
    """Where a Jupyter server listens: `url` ends with its base_url and a slash."""

    url: str
    token: str = ""
    sock: str | None = None
    pid: int | None = None

    @classmethod
    def from_runtime(cls, info: dict) -> ServerInfo:
        """From the JSON of a `jpserver-*.json` runtime file."""
        sock = info.get("sock") or None
        if sock:
            url = "http://localhost" + _with_slashes(info.get("base_url") or "/")
        else:
            url = info["url"] if info["url"].endswith("/") else info["url"] + "/"
        return cls(url=url, token=info.get("token") or "", sock=sock, pid=info.get("pid"))

    @property
    def api_url(self) -> str:
        """The extension's root, `{url}api/diffusion`."""
        return f"{self.url}api/diffusion"

    def __repr__(self) -> str:
        # The token stays out of reprs: they end up in notebook outputs.
        where = f"{self.url} via {self.sock}" if self.sock else self.url
        return f"ServerInfo({where}, pid={self.pid})"


def _with_slashes(path: str) -> str:
    return "/" + path.strip("/") + "/" if path.strip("/") else "/"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def runtime_dir() -> Path:
    from jupyter_core.paths import jupyter_runtime_dir

    return Path(jupyter_runtime_dir())


def running_servers(directory: Path | None = None) -> list[dict]:
    """The runtime files of servers whose process is still alive (stale files are skipped)."""
    directory = directory or runtime_dir()
    servers = []
    for path in sorted(directory.glob("jpserver-*.json")):
        try:
            info = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(info, dict) and isinstance(info.get("pid"), int) and info.get("url") and _alive(info["pid"]):
            servers.append(info)
    return servers


def _parent_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return os.getppid() if pid == os.getpid() else None
    # The command name (field 2) may contain spaces and parentheses; the ppid follows the last ')'.
    return int(stat.rsplit(")", 1)[1].split()[1])


def ancestor_pids(pid: int | None = None) -> list[int]:
    """`JPY_PARENT_PID` (set by Jupyter's kernel launcher), then our parent, grandparent, ..."""
    pids = []
    launcher = os.environ.get("JPY_PARENT_PID", "")
    if launcher.isdigit():
        pids.append(int(launcher))
    current: int | None = pid or os.getpid()
    for _ in range(MAX_ANCESTORS):
        current = _parent_of(current) if current else None
        if not current or current == 1:
            break
        if current not in pids:
            pids.append(current)
    return pids


def find_server(directory: Path | None = None) -> ServerInfo | None:
    """The server named by the environment, else the running server this kernel descends from."""
    url = os.environ.get(SERVER_URL_ENV)
    if url:
        return ServerInfo(url=url if url.endswith("/") else url + "/", token=os.environ.get(SERVER_TOKEN_ENV, ""))
    family = ancestor_pids()
    for info in running_servers(directory):
        if info["pid"] in family:
            return ServerInfo.from_runtime(info)
    return None
