"""The layers, kept by a test: every import of every module, read with `ast`, against the rules below.

Every `import` and `from ... import` counts, at module level, inside functions and under
`if TYPE_CHECKING:` alike (a lazy import is still a dependency). An import names its
module: for `from X import y`, `X.y` when y is a module, else `X`.

The rules (A imports B = some module under A imports B or a module under it):

1. `engine.families` imports neither the runtime (`engine.runtime`) nor the service: a family
   describes checkpoints and samplers; the runtime runs them.
2. `engine` imports none of the service or the views (`service`, `server`, `kernel`, `serve`):
   the service drives the engine, never the reverse.
3. `service` imports none of the views (`server`, `kernel`, `serve`).
4. `kernel` (the magics and panels) talks to the service only through its backends
   (`kernel.local_backend`: the service in this process; `kernel.server_backend`: over HTTP;
   `kernel.downloads`: the download follower both share).
   Every other kernel module may import from the service only its wire vocabulary
   (`service.schemas`, `service.events`, `service.validation`: data, not the service), and
   nothing of the engine.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import yipyap_jupyter

PACKAGE = Path(yipyap_jupyter.__file__).parent
ROOT = "yipyap_jupyter"
VIEWS = ("server", "kernel", "serve")
KERNEL_BACKENDS = ("kernel.local_backend", "kernel.server_backend", "kernel.downloads")  # the last: what both share
WIRE = ("service.schemas", "service.events", "service.validation")


def under(module: str, layer: str) -> bool:
    """`module` is the layer `layer` (a path below the package, such as "engine.runtime") or inside it."""
    full = f"{ROOT}.{layer}"
    return module == full or module.startswith(full + ".")


def imports(module: str, source: str, *, package: bool) -> list[str]:
    """Every module that `source` (the text of `module`; `package`: an `__init__.py`) imports, resolved."""
    found: list[str] = []
    parts = module.split(".") if package else module.split(".")[:-1]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base_parts = parts[: len(parts) - (node.level - 1)] if node.level else []
            base = ".".join([*base_parts, *([node.module] if node.module else [])])
            found += [_module_of(f"{base}.{alias.name}") if alias.name != "*" else base for alias in node.names]
    return found


def broken_rule(module: str, target: str) -> str | None:
    """Which rule `module` importing `target` breaks, or None."""
    if under(module, "engine.families") and (under(target, "engine.runtime") or under(target, "service")):
        return "1: a family imports neither the runtime nor the service"
    if under(module, "engine") and any(under(target, layer) for layer in ("service", *VIEWS)):
        return "2: the engine imports neither the service nor the views"
    if under(module, "service") and any(under(target, layer) for layer in VIEWS):
        return "3: the service imports none of the views"
    if under(module, "kernel") and not any(under(module, backend) for backend in KERNEL_BACKENDS):
        if under(target, "engine") or (under(target, "service") and not any(under(target, w) for w in WIRE)):
            return "4: the kernel reaches the service only through its backends, and only its wire types elsewhere"
    return None


def violations(module: str, source: str, *, package: bool = False) -> list[tuple[str, str, str]]:
    """(module, import, rule) for each import of `source` that breaks a rule, each import once."""
    found: dict[str, str] = {}
    for target in imports(module, source, package=package):
        rule = broken_rule(module, target)
        if rule is not None:
            found.setdefault(target, rule)
    return [(module, target, rule) for target, rule in found.items()]


def _module_of(target: str) -> str:
    """The module `from X import y` imports: `X.y` when y is a module of the package, else `X`."""
    parts = target.split(".")
    while len(parts) > 1 and not (PACKAGE.parent.joinpath(*parts).is_dir()
                                  or PACKAGE.parent.joinpath(*parts[:-1], parts[-1] + ".py").is_file()):
        parts.pop()
    return ".".join(parts)


def package_modules() -> list[tuple[str, Path]]:
    modules = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
        modules.append((".".join(parts), path))
    return modules


def test_every_module_keeps_the_layers() -> None:
    found = [
        broken
        for module, path in package_modules()
        for broken in violations(module, path.read_text(encoding="utf-8"), package=path.name == "__init__.py")
    ]
    unexpected = [f"{module} imports {target} (rule {rule})" for module, target, rule in found]
    assert not unexpected, "imports against the layering:\n" + "\n".join(unexpected)


def test_the_scan_sees_the_whole_package() -> None:
    names = {module for module, _ in package_modules()}
    assert {"yipyap_jupyter.engine.runtime.scheduler", "yipyap_jupyter.engine.families.llada",
            "yipyap_jupyter.kernel.local_backend", "yipyap_jupyter.service.service"} <= names


@pytest.mark.parametrize(
    ("module", "source", "package", "expected"),
    [
        # a family's sampler running its program on the runtime's batch, inside a function
        ("yipyap_jupyter.engine.families.llada.sampler",
         "def sample():\n    from ...runtime.batch import run_alone\n", False, "yipyap_jupyter.engine.runtime.batch"),
        # a family's package importing the service for type checking only
        ("yipyap_jupyter.engine.families.dream",
         "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ....service.schemas import ModelInfo\n",
         True, "yipyap_jupyter.service.schemas"),
        # the engine importing a view, absolutely
        ("yipyap_jupyter.engine.registry", "import yipyap_jupyter.kernel.magics\n", False,
         "yipyap_jupyter.kernel.magics"),
        # the engine importing the service by `from package import module`
        ("yipyap_jupyter.engine.model", "from .. import service\n", False, "yipyap_jupyter.service"),
        # the service importing the server
        ("yipyap_jupyter.service.service", "from ..server import handlers\n", False, "yipyap_jupyter.server.handlers"),
        # a panel calling the service itself rather than its backend
        ("yipyap_jupyter.kernel.panels.generator", "from ...service.service import DiffusionLLMService\n", False,
         "yipyap_jupyter.service.service"),
        # a kernel module reaching into the engine
        ("yipyap_jupyter.kernel.magics", "from ..engine.runtime import DiffusionModelManager\n", False,
         "yipyap_jupyter.engine.runtime"),
    ],
)
def test_the_checker_refuses_a_forbidden_import(module: str, source: str, package: bool, expected: str) -> None:
    assert [target for _, target, _ in violations(module, source, package=package)] == [expected]


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("yipyap_jupyter.engine.families.llada", "from ..options import Option\nfrom ...errors import ValidationError\n"),
        ("yipyap_jupyter.engine.runtime.scheduler", "from ..families import detect\n"),
        ("yipyap_jupyter.kernel.local_backend", "from ..service.service import DiffusionLLMService\n"),
        ("yipyap_jupyter.kernel.panels.generator", "from ...service.schemas import GenerateRequest\n"),
        ("yipyap_jupyter.service.service", "from ..engine.runtime import DiffusionModelManager\n"),
    ],
)
def test_the_checker_lets_allowed_imports_pass(module: str, source: str) -> None:
    assert violations(module, source) == []
