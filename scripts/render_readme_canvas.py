"""Screenshots of the README's `%%diffuse` example from a real generation of the default model (`tiny-block`).

Runs the README's example cell (`%%diffuse --seed 0` on `def fibonacci(n):`), stops at one step,
renders exactly the display data the cell shows then (the kernel's `live_bundle`), and photographs it with headless Chromium;
with `--decode-order`, runs it to the end and photographs `result.decode_order()`:

    python scripts/render_readme_canvas.py docs/live-canvas.png --step 30
    python scripts/render_readme_canvas.py docs/decode-order.png --decode-order
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
from pathlib import Path

from yipyap_jupyter.kernel.client import generate_request
from yipyap_jupyter.kernel.live.cell import live_bundle
from yipyap_jupyter.kernel.live.state import LiveGeneration
from yipyap_jupyter.kernel.render import Context
from yipyap_jupyter.service.service import DiffusionLLMService

PROMPT = "def fibonacci(n):"
MAGIC = "%%diffuse --seed 0"
PAGE = """<!doctype html><meta charset="utf-8">
<body style="margin:0;padding:12px;background:#fff;font-family:sans-serif">
<div style="font:13px monospace;color:#555;margin-bottom:6px">{magic}<br>{prompt}</div>
{html}</body>"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", type=Path)
    p.add_argument("--step", type=int, default=30)
    p.add_argument("--decode-order", action="store_true", help="the finished run's decode-order view instead")
    p.add_argument("--chromium", default="chromium")
    args = p.parse_args()

    generation = LiveGeneration()
    generation.begin(Context(before=PROMPT))
    request = generate_request(PROMPT, seed=0)  # the default model (tiny-block) at its defaults
    for event in DiffusionLLMService().generate_events(request):
        generation.feed(event)
        if event.type == "step" and event.step == args.step and not args.decode_order:
            break
    if args.decode_order:
        generation.finish(None)
        html, height = generation.result.decode_order()._repr_html_(), 540
    else:
        html, height = live_bundle(generation)["text/html"], 330
    with tempfile.TemporaryDirectory() as scratch:
        page = Path(scratch) / "canvas.html"
        page.write_text(PAGE.format(magic=MAGIC, prompt=PROMPT, html=html), encoding="utf-8")
        subprocess.run(
            [args.chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={scratch}/profile",
             f"--screenshot={args.out.resolve()}", f"--window-size=760,{height}", "--hide-scrollbars", page.as_uri()],
            check=True, capture_output=True,
        )
    print(f"wrote {args.out}" + ("" if args.decode_order else f" (step {args.step})"))


if __name__ == "__main__":
    main()
