"""Does a model's continuation read like Python? `tiny` and `tiny-block` side by side on 20 prompts.

Every prompt is a function or class header that is not in the standard library (the
models' training text), written before any output of either model was seen and not tuned
afterwards. Each generation runs through the service exactly as `%%diffuse` runs it (the
model's own defaults, `--option` overrides them), and is scored three ways:

- parses: the generation wrote at least one line, and prompt + generation, cut at its last
  line break, is valid Python, or becomes valid with one `pass` line closing a block left
  open at the end;
- distinct lines: distinct non-empty generated lines over all non-empty generated lines
  (repeating one line cannot look good);
- characters: non-space characters in the generation, before the cut.

    python scripts/eval_continuations.py --models tiny tiny-block --json runs/continuations.json
    python scripts/eval_continuations.py --models tiny-block --seeds 0 1 2 --option temperature=0.7
"""

from __future__ import annotations

import argparse
import ast
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run from a checkout without installing the package

# Written before any output of the models was seen; not tuned afterwards.
PROMPTS = [
    "def celsius_to_fahrenheit(celsius):\n",
    'def count_vowels(text):\n    """Return how many vowels are in text."""\n',
    "class Inventory:\n    def __init__(self):\n",
    "def merge_intervals(intervals):\n",
    'def parse_config_line(line):\n    """Split a "key = value" line into a pair."""\n',
    'class BankAccount:\n    """A simple account with a balance."""\n\n',
    "def flatten(nested):\n",
    "import json\n\n\ndef load_settings(path):\n",
    "def is_palindrome(word):\n",
    "class Matrix:\n    def __init__(self, rows, cols):\n",
    'def chunk_list(items, size):\n    """Yield successive chunks of size items."""\n',
    "def word_frequencies(text):\n",
    "class LRUCache:\n    def __init__(self, capacity):\n",
    "def validate_email(address):\n",
    "def read_csv_rows(filename):\n",
    "class Vector2D:\n    def __init__(self, x, y):\n",
    "def binary_search(items, target):\n",
    'def format_duration(seconds):\n    """Return a string like 1h 2m 3s."""\n',
    'class EventQueue:\n    """Events ordered by time."""\n\n    def __init__(self):\n',
    "def retry(func, attempts=3):\n",
]


def parses(text: str) -> bool:
    """`text` cut at its last line break parses, as it is or with one `pass` closing an open block."""
    cut = text[: text.rfind("\n") + 1]
    lines = [line for line in cut.splitlines() if line.strip()]
    if not lines:
        return False
    candidates = [cut]
    last = lines[-1]
    indent = last[: len(last) - len(last.lstrip())]
    if last.rstrip().endswith(":"):
        candidates.append(cut + indent + "    pass\n")
    for candidate in candidates:
        try:
            ast.parse(candidate)
        except (SyntaxError, ValueError):
            continue
        return True
    return False


def generated_lines(prompt: str, generation: str) -> list[str]:
    """The non-empty lines the generation wrote (the prompt's last, unfinished line counts as written)."""
    text = prompt + generation
    cut = text[: text.rfind("\n") + 1]
    written = cut[len(prompt) - len(prompt.split("\n")[-1]):] if len(cut) > len(prompt) else ""
    return [line.strip() for line in written.splitlines() if line.strip()]


def score(prompt: str, generation: str) -> dict[str, Any]:
    lines = generated_lines(prompt, generation)
    return {
        "parses": bool(lines) and parses(prompt + generation),  # an empty continuation is not one that parses
        "lines": len(lines),
        "distinct_lines": len(set(lines)),
        "characters": sum(not c.isspace() for c in generation),
    }


def evaluate(model: str, options: dict[str, Any], seeds: tuple[int, ...] = (0,)) -> dict[str, Any]:
    """Generate for every prompt and seed with `model` (its defaults, then `options`); score each continuation."""
    from yipyap_jupyter.service.service import DiffusionLLMService

    service = DiffusionLLMService(default_model=None)
    service.load_model(model, {"device": "cpu", "dtype": "float32"})
    rows = []
    for seed in seeds:
        for prompt in PROMPTS:
            start = time.perf_counter()
            done = service.generate({"prompt": prompt, "model": model, "seed": seed, **options})
            seconds = time.perf_counter() - start
            rows.append({"prompt": prompt, "seed": seed, "generation": done.text, "tokens": done.tokens,
                         "steps": done.steps, "seconds": seconds, **score(prompt, done.text)})
    lines = sum(r["lines"] for r in rows)
    return {
        "model": model,
        "options": {k: v for k, v in done.options.items() if k != "seed"},
        "parse_rate": sum(r["parses"] for r in rows) / len(rows),
        "distinct_line_share": sum(r["distinct_lines"] for r in rows) / lines if lines else 0.0,
        "mean_characters": statistics.mean(r["characters"] for r in rows),
        "tokens_per_second": sum(r["tokens"] for r in rows) / sum(r["seconds"] for r in rows),
        "mean_passes": statistics.mean(r["steps"] for r in rows),
        "rows": rows,
    }


def parse_option(text: str) -> tuple[str, Any]:
    key, _, value = text.partition("=")
    return key, json.loads(value) if value[:1] in "0123456789-.[{tfn" and value not in ("",) else value


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["tiny", "tiny-block"])
    p.add_argument("--option", action="append", default=[], type=parse_option,
                   help="KEY=VALUE over the model's defaults (JSON values: 0.9, 8, true)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="each prompt runs once per seed")
    p.add_argument("--json", type=Path, help="write every continuation and score here")
    p.add_argument("--show", action="store_true", help="print every continuation")
    args = p.parse_args(argv)

    import torch

    torch.set_num_threads(2)
    results = [evaluate(model, dict(args.option), tuple(args.seeds)) for model in args.models]
    print("| model | parses | distinct lines | non-space chars | tokens/s | passes | options |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        shown = {k: v for k, v in r["options"].items() if k != "model"}
        print(f"| {r['model']} | {r['parse_rate']:.0%} | {r['distinct_line_share']:.0%} | {r['mean_characters']:.0f} | "
              f"{r['tokens_per_second']:.0f} | {r['mean_passes']:.1f} | {json.dumps(shown)} |")
    if args.show:
        for r in results:
            for row in r["rows"]:
                print(f"--- {r['model']} (parses: {row['parses']})\n{row['prompt']}\033[1m{row['generation']}\033[0m")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
