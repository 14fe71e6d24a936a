"""`%%diffuse` and `%diffuse ...`: watch a diffusion model write, in the cell that asked.

`%load_ext yipyap_jupyter` registers one line/cell magic. As a cell magic the
body is the prompt (or, with `--infill`, a prefix and suffix split at one
marker); as a line magic it manages models, settings, panels and replays.
Bad options are argparse-style usage errors; bad values are the request type's
validation errors; failures show their category and whether a retry may help,
and a kernel interrupt shows where it stopped: one line each, never a traceback.
"""

from __future__ import annotations

import argparse
import shlex
from typing import TYPE_CHECKING, Any, NoReturn

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class

from ..constants import DEFAULT_MODEL_ID, DEVICE_CHOICES, default_model_for
from ..errors import DiffusionError
from .answers import ModelTable, ModelView, Notice, SettingsView
from .arguments import add_sampler_arguments, sampler_values
from .client import generate_request, infill_request
from .live.state import GenerationStopped
from .render import error_line

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

    from ..service.schemas import GenerateRequest, InfillRequest
    from .client import DiffusionClient
    from .result import DiffusionResult

#: Where `--infill` splits the cell body into prefix and suffix, unless `--marker` says otherwise.
DEFAULT_MARKER = "<|infill|>"


class _HelpShown(Exception):
    """argparse printed --help; the magic returns quietly."""


class MagicParser(argparse.ArgumentParser):
    """argparse that reports errors as IPython `UsageError`s (no traceback, no SystemExit)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.format_usage().rstrip()}\n{self.prog}: error: {message}")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if status:
            raise UsageError(message or f"{self.prog}: error")
        raise _HelpShown()


def _identifier(text: str) -> str:
    if not text.isidentifier():
        raise argparse.ArgumentTypeError(f"{text!r} is not a Python variable name")
    return text


def cell_parser() -> MagicParser:
    """The options of `%%diffuse`."""
    parser = MagicParser(prog="%%diffuse", description="Generate from the cell body, showing the denoising live.")
    parser.add_argument("--model", metavar="ID",
                        help="model id or local checkpoint dir (default: the loaded one, else tiny)")
    add_sampler_arguments(parser)
    parser.add_argument("--device", choices=DEVICE_CHOICES, help="load the model onto this device first")
    parser.add_argument("--infill", action="store_true", help="fill the gap at the marker between prefix and suffix")
    parser.add_argument("--marker", default=DEFAULT_MARKER, metavar="M",
                        help=f"the gap marker (default {DEFAULT_MARKER})")
    parser.add_argument("--variable", action="store_true", help="variable-length infilling (implies --infill)")
    parser.add_argument("--no-stream", action="store_true", help="show only the final result")
    parser.add_argument("--out", type=_identifier, metavar="VAR", help="also store the result in this variable")
    return parser


def line_parser() -> MagicParser:
    """The subcommands of `%diffuse`."""
    parser = MagicParser(prog="%diffuse", description="Manage diffusion models, settings and panels.")
    commands = parser.add_subparsers(dest="command", metavar="{models,load,current,unload,settings,panel,replay}")
    commands.required = True
    commands.add_parser("models", help="list known models: cached, loaded, device, size")
    load = commands.add_parser("load", help="load or switch the model")
    load.add_argument("model", metavar="ID", help="model id or local checkpoint directory")
    load.add_argument("--device", choices=DEVICE_CHOICES, help="default: the preferred device from the settings")
    load.add_argument("--dtype", choices=("float32", "float16", "bfloat16"))
    commands.add_parser("current", help="the loaded model")
    commands.add_parser("unload", help="free the model and its memory")
    settings = commands.add_parser("settings", help="show settings, change them with key=value, reset one with key=")
    settings.add_argument("changes", nargs="*", metavar="key=value")
    commands.add_parser("panel", help="the widget panel (generate, infill, models, settings)")
    commands.add_parser("replay", help="step through the last generation with a slider")
    return parser


def split_infill(body: str, marker: str) -> tuple[str, str]:
    """Prefix and suffix around exactly one `marker` (`UsageError` naming the marker otherwise)."""
    count = body.count(marker) if marker else 0
    if count != 1:
        found = "none" if count == 0 else str(count)
        raise UsageError(f"%%diffuse --infill needs exactly one {marker!r} marker in the cell; found {found}")
    prefix, suffix = body.split(marker)
    return prefix, suffix


#: Values that put a setting back to its default (`max_new_tokens=` included).
RESET_WORDS = frozenset({"", "none", "null", "default"})


def parse_changes(items: list[str]) -> dict[str, Any]:
    """`key=value` words into a dict (values stay strings; the settings model converts them).

    An empty value, `none`, `null` or `default` resets the setting to its default.
    """
    from ..settings import UserSettings

    changes: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"%diffuse settings: expected key=value, got {item!r}")
        field = UserSettings.model_fields.get(key)
        reset = value.strip().lower() in RESET_WORDS and field is not None
        changes[key] = field.default if field is not None and reset else value.strip()
    return changes


#: ANSI styles of the one line a failure or a stop shows (JupyterLab and terminals render them).
ERROR_STYLE, STOP_STYLE, RESET = "\x1b[1;31m", "\x1b[1;33m", "\x1b[0m"


def failure_line(error: DiffusionError | GenerationStopped) -> str:
    """What a cell shows for a failure or a stop: one line, the category (or the stop) styled."""
    if isinstance(error, GenerationStopped):
        return f"{STOP_STYLE}{error}{RESET}"
    line = error_line(error.error_type, error.message, error.retryable)
    category = f"{error.error_type} error"
    return f"{ERROR_STYLE}{category}{RESET}{line[len(category):]}"


def show_failure(shell: InteractiveShell, etype: type, value: BaseException, tb: object,
                 tb_offset: int | None = None) -> list[str]:
    """`set_custom_exc` handler: the cell still ends as an error ("Run All" stops), shown as one line."""
    stb = [failure_line(value)]  # type: ignore[arg-type]
    shell._showtraceback(etype, value, stb)
    return stb


@magics_class
class DiffusionMagics(Magics):
    """`%diffuse` / `%%diffuse`, over one `DiffusionClient` (auto backend unless given one)."""

    def __init__(self, shell: InteractiveShell, client: DiffusionClient | None = None) -> None:
        super().__init__(shell)
        self._client = client
        self.last: DiffusionResult | None = None

    @property
    def client(self) -> DiffusionClient:
        """The client the magics use: `DiffusionClient()` (auto backend) unless one was set."""
        if self._client is None:
            from .client import DiffusionClient

            self._client = DiffusionClient()
        return self._client

    @client.setter
    def client(self, client: DiffusionClient) -> None:
        self._client = client

    @line_cell_magic
    def diffuse(self, line: str, cell: str | None = None) -> Any:
        """`%%diffuse [options]` generates from the cell body; `%diffuse COMMAND` manages models and settings."""
        try:
            words = shlex.split(line)
        except ValueError as error:
            raise UsageError(f"%diffuse: cannot parse the options: {error}") from None
        try:
            if cell is None:
                return self._line(line_parser().parse_args(words))
            return self._cell(cell_parser().parse_args(words), cell)
        except _HelpShown:
            return None

    # -- %%diffuse ------------------------------------------------------------------------

    def _cell(self, args: argparse.Namespace, body: str) -> DiffusionResult:
        body = body.removesuffix("\n")  # the newline IPython ends every cell with
        options = {"model": args.model, **sampler_values(args)}
        request: GenerateRequest | InfillRequest
        if args.infill or args.variable:
            prefix, suffix = split_infill(body, args.marker)
            request = infill_request(prefix, suffix, variable=args.variable or None, **options)
        elif not body.strip():
            raise UsageError("%%diffuse needs a prompt in the cell body")
        else:
            request = generate_request(body, **options)
        if args.device:
            job = "infill" if isinstance(request, InfillRequest) else "generate"
            self.client.load(args.model or self._current_or_default(job), args.device)
        try:
            result = self.client.run(request, live=not args.no_stream)
        except GenerationStopped as stopped:
            self._keep(args, stopped.result)
            raise
        self._keep(args, result)
        return result

    def _keep(self, args: argparse.Namespace, result: DiffusionResult) -> None:
        """The last result (partial when stopped) for `%diffuse replay` and `--out`."""
        self.last = result
        if args.out:
            if self.shell is None:
                raise UsageError("--out needs an IPython shell to store the result in")
            self.shell.user_ns[args.out] = result

    def _current_or_default(self, job: str) -> str:
        current = self.client.current()
        return default_model_for(job, current.id if current is not None else None) or DEFAULT_MODEL_ID

    # -- %diffuse ... ---------------------------------------------------------------------

    def _line(self, args: argparse.Namespace) -> Any:
        client = self.client
        if args.command == "models":
            return ModelTable(client.models())
        if args.command == "load":
            return ModelView(client.load(args.model, args.device, args.dtype), client.backend.name)
        if args.command == "current":
            return ModelView(client.current(), client.backend.name)
        if args.command == "unload":
            current = client.current()
            client.unload()
            return Notice(f"Unloaded {current.id}." if current else "No model was loaded.")
        if args.command == "settings":
            changes = parse_changes(args.changes)
            settings = client.update_settings(**changes) if changes else client.settings()
            return SettingsView(settings, saved=bool(changes))
        if args.command == "panel":
            from .panels.text_llm import TextLLMPanel

            return TextLLMPanel(client)
        if self.last is None:
            raise UsageError("%diffuse replay: nothing to replay yet; run a %%diffuse cell first")
        return self.last.replay()


def load_ipython_extension(ipython: InteractiveShell) -> None:
    """`%load_ext yipyap_jupyter`: register `%diffuse` / `%%diffuse`, and show our failures in one line."""
    ipython.register_magics(DiffusionMagics(ipython))
    ipython.set_custom_exc((DiffusionError, GenerationStopped), show_failure)
