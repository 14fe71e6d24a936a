"""`yipyap-diffuse`: watch a diffusion model write, in a terminal.

The command-line view of the service's events: one line per denoising step
(the canvas, masks shown), then the final text and timing. Without `--model`
it uses the embedded `tiny` model, so it works offline on any CPU.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .constants import DEFAULT_MODEL_ID


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="yipyap-diffuse", description=__doc__.splitlines()[0])
    p.add_argument("prompt", help="text to continue (with --suffix: the prefix to infill after)")
    p.add_argument("--model", default=DEFAULT_MODEL_ID, help="model id or local checkpoint directory")
    p.add_argument("--device", default=None, choices=("auto", "cuda", "mps", "cpu"))
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--steps", type=int, default=32)
    p.add_argument("--block-length", type=int)
    p.add_argument("--temperature", type=float)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threshold", type=float, help="parallel decoding: commit every position at least this confident")
    p.add_argument("--suffix", help="infill between PROMPT and this suffix")
    p.add_argument("--variable", action="store_true", help="variable-length infill (with --suffix)")
    p.add_argument("--quiet", action="store_true", help="print only the final text")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from .service.events import CompleteEvent, ErrorEvent, StatusEvent, StepEvent
    from .service.service import DiffusionLLMService

    service = DiffusionLLMService()
    sampling = {"max_new_tokens": args.max_new_tokens, "seed": args.seed, "temperature": args.temperature,
                "block_length": args.block_length, "model": args.model}
    if args.suffix is None:
        events = service.generate_events({"prompt": args.prompt, "steps": args.steps, "threshold": args.threshold, **sampling})
    elif args.variable:
        events = service.infill_events({"prefix": args.prompt, "suffix": args.suffix, "variable": True, **sampling})
    else:
        events = service.infill_events({"prefix": args.prompt, "suffix": args.suffix, "steps": args.steps, **sampling})
    if args.device:
        from .errors import DiffusionError

        try:
            service.load_model(args.model, {"device": args.device})
        except DiffusionError as error:
            print(f"error ({error.error_type}): {error.message}", file=sys.stderr)
            return 1
    for event in events:
        if isinstance(event, StatusEvent) and not args.quiet:
            print(f"· {event.message}", file=sys.stderr)
        elif isinstance(event, StepEvent) and not args.quiet:
            canvas = event.canvas.replace("\n", "⏎")
            print(f"{event.step:>4}/{event.total_steps:<4} {canvas}", file=sys.stderr)
        elif isinstance(event, CompleteEvent):
            print(event.text)
            if not args.quiet:
                print(f"· {event.tokens} tokens · {event.steps} steps · {event.generation_time:.2f} s · "
                      f"{event.model_used} · {event.device}", file=sys.stderr)
        elif isinstance(event, ErrorEvent):
            print(f"error ({event.error_type}): {event.message}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
