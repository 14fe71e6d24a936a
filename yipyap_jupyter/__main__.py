"""`yipyap-diffuse`: watch a diffusion model write, in a terminal.

The command-line view of the service's events: one line per denoising step
(the canvas, masks shown), then the final text and timing. Without `--model`
it uses the embedded `tiny` model, so it works offline on any CPU. Only the
options given on the command line are sent; the rest take the model's and the
user's defaults, as in the notebook. Ctrl+C stops at the next step and exits 130.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .constants import DEFAULT_MODEL_ID, default_model_for

#: Exit statuses: a failure, a usage or validation error (argparse's, whoever refused the value), a stop by Ctrl+C.
EXIT_FAILED, EXIT_USAGE, EXIT_STOPPED = 1, 2, 130


def _parser() -> argparse.ArgumentParser:
    from .kernel.arguments import add_sampler_arguments

    p = argparse.ArgumentParser(prog="yipyap-diffuse", description=__doc__.splitlines()[0])
    p.add_argument("prompt", help="text to continue (with --suffix: the prefix to infill after)")
    p.add_argument("--model", help="model id or local checkpoint directory (default: tiny)")
    p.add_argument("--device", choices=("auto", "cuda", "mps", "cpu"), help="load the model onto this device first")
    add_sampler_arguments(p)
    p.add_argument("--suffix", help="infill between PROMPT and this suffix")
    p.add_argument("--variable", action="store_true", help="variable-length infill (needs --suffix)")
    p.add_argument("--quiet", action="store_true", help="print only the final text")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    from .errors import DiffusionError, error_body
    from .kernel.arguments import sampler_values
    from .kernel.client import context_of, generate_request, infill_request
    from .kernel.live.runner import drive
    from .kernel.live.state import GenerationStopped, LiveGeneration
    from .kernel.render import error_line, shown, stopped_line
    from .service.schemas import GenerateRequest, InfillRequest
    from .service.service import DiffusionLLMService

    options = {"model": args.model, **sampler_values(args)}
    request: GenerateRequest | InfillRequest
    try:
        if args.suffix is None and not args.variable:
            request = generate_request(args.prompt, **options)
        else:
            request = infill_request(args.prompt, args.suffix or "", variable=args.variable or None, **options)
    except DiffusionError as error:
        parser.error(error.message)  # the request type's verdict, as a usage error (exit 2)

    def say(line: str) -> None:
        if not args.quiet:
            print(line, file=sys.stderr, flush=True)

    service = DiffusionLLMService()
    generation = LiveGeneration()
    generation.observe(lambda change: say(f"· {change['new']}"), names="status")
    generation.observe(lambda change: say(f"{generation.step:>4}/{generation.total_steps:<4} "
                                          f"{shown(generation.pieces, generation.states).replace(chr(10), '⏎')}"),
                       names="step")
    events = service.infill_events if isinstance(request, InfillRequest) else service.generate_events
    try:
        if args.device:
            job = "infill" if isinstance(request, InfillRequest) else "generate"
            service.load_model(args.model or default_model_for(job, None) or DEFAULT_MODEL_ID, {"device": args.device})
        generation.begin(context_of(request))
        drive(lambda cancel: events(request, cancel), generation)  # type: ignore[arg-type]
        result = generation.outcome()
    except GenerationStopped as stopped:
        print(f"· {stopped}", file=sys.stderr)
        return EXIT_STOPPED
    except KeyboardInterrupt:  # before the first step (while loading)
        print(f"· {stopped_line(0, 0)}", file=sys.stderr)
        return EXIT_STOPPED
    except Exception as error:  # noqa: BLE001 - any failure: one line with its category (error_body maps bugs too)
        body = error_body(error)
        if body["error_type"] == "validation":  # refused by the model or its sampler: a usage error all the same
            parser.error(body["message"])
        print(f"error · {error_line(body['error_type'], body['message'], body['retryable'])}", file=sys.stderr)
        return EXIT_FAILED
    print(result.text)
    say(f"· {result.summary.replace(chr(10), ' · ')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
