"""Measure the shipped `tiny` model on held-out standard-library modules (never trained on).

(a) masked-token accuracy at mask ratios 0.15 / 0.5 / 0.9 against a unigram
    baseline (the most frequent training token predicted at every masked position);
(b) variable-length infill of a few lines in held-out functions, started from a
    wrong number of masks: how often the final middle is within 2 tokens of the
    true length and how often the whole function parses;
(c) ten example generations and infills whose prompts are fixed below; the generations go
    through `DiffusionModel`, so they are what `%%diffuse` shows for the prompt.

    python scripts/eval_tiny.py --model yipyap_jupyter/models/tiny --json runs/eval.json
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run from a checkout without installing the package

from tiny_data import read_text, split_corpus  # noqa: E402

MASK_RATIOS = (0.15, 0.5, 0.9)

# Written before any output of the model was seen; not tuned afterwards.
GENERATION_PROMPTS = [
    'def fibonacci(n):\n    """Return the n-th Fibonacci number."""\n',
    "import os\nimport sys\n\n\ndef main():\n",
    'class Stack:\n    """A last-in, first-out container."""\n\n    def __init__(self):\n',
    "    def __repr__(self):\n        return ",
    '# Copyright (C) 2001 Python Software Foundation\n"""Utilities for reading',
]
INFILL_PROMPTS = [  # (prefix, suffix, initial number of masks)
    ("def add(a, b):\n", "\n\n\ndef sub(a, b):\n    return a - b\n", 4),
    ("for i in range(10):\n    if i % 2 == 0:\n", "\n    else:\n        print('odd')\n", 12),
    ("def read_lines(path):\n    with open(path) as f:\n", "\n    return lines\n", 3),
    ("try:\n    import json\nexcept ImportError:\n", "\n", 6),
    ('def is_empty(self):\n    """', '"""\n    return len(self._items) == 0\n', 8),
]


def load(model_dir: Path):
    """The checkpoint as the package runs it (`tiny`'s spec), in fp32 as on a CPU."""
    from yipyap_jupyter.engine.families import KNOWN_MODELS
    from yipyap_jupyter.engine.model import DiffusionModel

    return DiffusionModel.load(KNOWN_MODELS["tiny"], model_dir, dtype=torch.float32)


def encode(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


@torch.no_grad()
def masked_accuracy(model, length: int, seed: int) -> dict:
    """Accuracy on masked held-out tokens, model vs. the unigram argmax, same windows and masks."""
    network, tokenizer, ids = model.network, model.tokenizer, model.ids
    train_files, held_files = split_corpus()
    counts: Counter[int] = Counter()
    for path in train_files:
        counts.update(encode(tokenizer, read_text(path)))
    unigram_token, _ = counts.most_common(1)[0]
    stream = torch.tensor(
        [t for path in held_files for t in [ids.bos, *encode(tokenizer, read_text(path)), ids.eos]]
    )
    windows = stream[: stream.numel() // length * length].view(-1, length)
    gen = torch.Generator().manual_seed(seed)
    result = {"held_out_tokens": int(stream.numel()), "windows": int(windows.shape[0]), "window_length": length,
              "unigram_token": tokenizer.convert_ids_to_tokens(unigram_token), "ratios": {}}
    for ratio in MASK_RATIOS:
        masked = torch.rand(windows.shape, generator=gen) < ratio
        noisy = torch.where(masked, ids.mask, windows)
        correct = 0
        for i in range(0, windows.shape[0], 16):
            pred = network(noisy[i : i + 16]).argmax(-1)
            correct += int((pred == windows[i : i + 16])[masked[i : i + 16]].sum())
        total = int(masked.sum())
        baseline = int((windows[masked] == unigram_token).sum())
        result["ratios"][str(ratio)] = {
            "masked_tokens": total,
            "model_accuracy": round(correct / total, 4),
            "unigram_accuracy": round(baseline / total, 4),
        }
    return result


def held_out_functions(limit: int, seed: int) -> list[str]:
    """Standalone-parsable functions of 6 to 30 lines from held-out modules, a seeded sample."""
    _, held_files = split_corpus()
    found = []
    for path in held_files:
        source = read_text(path)
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                text = ast.get_source_segment(source, node)
                if text is None:
                    continue
                text = textwrap.dedent(" " * node.col_offset + text) + "\n"
                if 6 <= text.count("\n") <= 30:
                    try:
                        ast.parse(text)
                    except SyntaxError:
                        continue
                    found.append(text)
    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(found), generator=gen).tolist()
    return [found[i] for i in order[:limit]]


def line_boundaries(tokenizer, ids: list[int]) -> list[int]:
    """Token positions right after a token containing a newline (where training also cut middles)."""
    return [i + 1 for i, tok in enumerate(tokenizer.convert_ids_to_tokens(ids[:-1])) if "Ċ" in tok]


@torch.no_grad()
def variable_infill_eval(
    model, n_functions: int, seed: int, alg: str = "entropy", max_new_tokens: int = 96
) -> dict:
    """Remove 1-3 body lines, start from half or 1.5x the true number of masks, let the sampler resize."""
    from yipyap_jupyter.engine.families.dreamon.sampler import variable_infill

    network, tokenizer, ids = model.network, model.tokenizer, model.ids
    gen = torch.Generator().manual_seed(seed)
    rows = []
    for k, function in enumerate(held_out_functions(n_functions, seed)):
        tokens = encode(tokenizer, function)
        bounds = [b for b in line_boundaries(tokenizer, tokens) if b > 0]
        if len(bounds) < 3:
            continue
        i = int(torch.randint(0, len(bounds) - 2, (1,), generator=gen))
        j = min(i + int(torch.randint(1, 4, (1,), generator=gen)), len(bounds) - 1)
        a, b = bounds[i], bounds[j]
        true_len = b - a
        if not 1 <= true_len <= 48:
            continue
        n_masks = max(1, true_len // 2) if k % 2 == 0 else true_len + max(3, true_len // 2)
        canvas = torch.tensor([[ids.bos, *tokens[:a], *[ids.mask] * n_masks, *tokens[b:], ids.eos]])
        step = None
        for step in variable_infill(  # noqa: B007 - the last step is what counts
            network, canvas, mask_id=ids.mask, delete_id=ids.eos, expand_id=ids.expand,
            max_new_tokens=max(max_new_tokens, n_masks), shift_logits=False, alg=alg,
            generator=torch.Generator().manual_seed(seed + k),
        ):
            pass
        start, end = step.span
        out = step.canvas.tolist()
        text = tokenizer.decode(out[1:-1])
        try:
            ast.parse(text)
            parses = True
        except SyntaxError:
            parses = False
        rows.append({"true_len": true_len, "initial_masks": n_masks, "final_len": end - start, "parses": parses,
                     "prefix_kept": out[1 : 1 + a] == tokens[:a], "suffix_kept": out[end:-1] == tokens[b:]})
    n = len(rows)
    return {
        "alg": alg,
        "functions": n,
        "within_2_tokens": round(sum(abs(r["final_len"] - r["true_len"]) <= 2 for r in rows) / n, 4),
        "initial_within_2_tokens": round(sum(abs(r["initial_masks"] - r["true_len"]) <= 2 for r in rows) / n, 4),
        "mean_abs_len_error": round(sum(abs(r["final_len"] - r["true_len"]) for r in rows) / n, 2),
        "initial_mean_abs_len_error": round(sum(abs(r["initial_masks"] - r["true_len"]) for r in rows) / n, 2),
        "parse_rate": round(sum(r["parses"] for r in rows) / n, 4),
        "prefix_suffix_kept": all(r["prefix_kept"] and r["suffix_kept"] for r in rows),
    }


@torch.no_grad()
def examples(model, seed: int) -> list[dict]:
    """The fixed prompts: generations as `%%diffuse` makes them (the model's defaults), then DreamOn-style infills."""
    from yipyap_jupyter.engine.families.dreamon.sampler import variable_infill
    from yipyap_jupyter.engine.model import SamplingOptions

    network, tokenizer, ids = model.network, model.tokenizer, model.ids
    out = []
    for prompt in GENERATION_PROMPTS:
        *_, last = model.generate(prompt, SamplingOptions(seed=seed))
        out.append({"kind": "generation", "prompt": prompt, "output": last.text})
    for k, (prefix, suffix, n_masks) in enumerate(INFILL_PROMPTS):
        canvas = torch.tensor(
            [[ids.bos, *encode(tokenizer, prefix), *[ids.mask] * n_masks, *encode(tokenizer, suffix), ids.eos]]
        )
        for step in variable_infill(  # noqa: B007 - the last step is what counts
            network, canvas, mask_id=ids.mask, delete_id=ids.eos, expand_id=ids.expand,
            max_new_tokens=48, shift_logits=False, generator=torch.Generator().manual_seed(seed + k),
        ):
            pass
        middle = tokenizer.decode(step.canvas[step.span[0] : step.span[1]].tolist())
        out.append({"kind": "infill", "prefix": prefix, "suffix": suffix, "initial_masks": n_masks,
                    "middle_tokens": step.span[1] - step.span[0], "middle": middle})
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, default=REPO / "yipyap_jupyter" / "models" / "tiny")
    p.add_argument("--json", type=Path, help="also write the figures and examples here")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--length", type=int, default=192, help="held-out window length for (a)")
    p.add_argument("--functions", type=int, default=60, help="held-out functions sampled for (b)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--algs", default="entropy", help="comma-separated DreamOn position rankings to measure in (b)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = load(args.model)

    t0 = time.time()
    report = {"masked_accuracy": masked_accuracy(model, args.length, args.seed)}
    print(json.dumps(report["masked_accuracy"], indent=2), f"({time.time() - t0:.0f}s)", flush=True)
    t0 = time.time()
    report["variable_infill"] = [
        variable_infill_eval(model, args.functions, args.seed, alg) for alg in args.algs.split(",")
    ]
    print(json.dumps(report["variable_infill"], indent=2), f"({time.time() - t0:.0f}s)", flush=True)
    report["examples"] = examples(model, args.seed)
    for ex in report["examples"]:
        if ex["kind"] == "generation":
            print(f"--- generation\n{ex['prompt']}\u2588{ex['output']}")
        else:
            print(f"--- infill ({ex['initial_masks']} masks -> {ex['middle_tokens']} tokens)\n"
                  f"{ex['prefix']}\u2588{ex['middle']}\u2588{ex['suffix']}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
