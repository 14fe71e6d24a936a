"""Screenshot of the live `%%diffuse` canvas for the README, from a real `tiny` generation.

Runs the same request as the `%%diffuse --seed 0 --max-new-tokens 48 --steps 48 --block-length 16`
cell of notebooks/01-quickstart.ipynb,
stops at one step, renders exactly the display data the cell shows then (the
kernel's `live_bundle`), and photographs it with headless Chromium:

    python scripts/render_readme_canvas.py docs/live-canvas.png --step 30
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

from yipyap_jupyter.kernel.live import live_bundle
from yipyap_jupyter.kernel.render import Context
from yipyap_jupyter.kernel.result import ResultBuilder
from yipyap_jupyter.service.service import DiffusionLLMService

PROMPT = "class Stack:"
PAGE = """<!doctype html><meta charset="utf-8">
<body style="margin:0;padding:12px;background:#fff;font-family:sans-serif">
<div style="font:13px monospace;color:#555;margin-bottom:6px">%%diffuse --seed 0 --max-new-tokens 48 --steps 48 --block-length 16<br>{prompt}</div>
{html}</body>"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", type=Path)
    p.add_argument("--step", type=int, default=30)
    p.add_argument("--chromium", default="chromium")
    args = p.parse_args()

    builder = ResultBuilder(Context(before=PROMPT))
    started = time.monotonic()
    request = {"prompt": PROMPT, "seed": 0, "max_new_tokens": 48, "steps": 48, "block_length": 16}
    for event in DiffusionLLMService().generate_events(request):
        builder.feed(event)
        if event.type == "step" and event.step == args.step:
            break
    bundle = live_bundle(builder, started)
    with tempfile.TemporaryDirectory() as scratch:
        page = Path(scratch) / "canvas.html"
        page.write_text(PAGE.format(prompt=PROMPT.strip(), html=bundle["text/html"]), encoding="utf-8")
        subprocess.run(
            [args.chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={scratch}/profile",
             f"--screenshot={args.out.resolve()}", "--window-size=760,300", "--hide-scrollbars", page.as_uri()],
            check=True, capture_output=True,
        )
    print(f"wrote {args.out} (step {args.step})")


if __name__ == "__main__":
    main()
