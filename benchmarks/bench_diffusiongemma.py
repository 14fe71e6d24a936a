"""Our stepwise, streamed DiffusionGemma run against transformers' own `generate`, on one random checkpoint.

Builds a random DiffusionGemma checkpoint of about 30M parameters with transformers' config
class and `save_pretrained` (fp32, CPU), then times the same request (a) through
`DiffusionLLMService.generate_events` (every step decoded and made a `step` event, as every
view streams it) and (b) as `torch.manual_seed(seed); model.generate(...)` without a
streamer. Runs alternate so both see the same machine load; the ratio is the median over
pairs of (a) over the (b) just before it. Every pair's tokens must be identical, and so must
the decoder passes. A benchmark, not a test.

    python benchmarks/bench_diffusiongemma.py              # 11 pairs, 1 torch thread
    python benchmarks/bench_diffusiongemma.py --device cuda --dtype bfloat16
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # `gemma_reference`: the tests' library run

PROMPT = " ".join(f"w{i}" for i in range(3, 40, 3))


def build_checkpoint(directory: Path, canvas_length: int) -> Path:
    """A random DiffusionGemma checkpoint (about 30M parameters) with a word-level tokenizer."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import DiffusionGemmaConfig, DiffusionGemmaForBlockDiffusion

    specials = ["<pad>", "<eos>", "<bos>"]
    vocab = {token: i for i, token in enumerate(specials + [f"w{i}" for i in range(8192 - len(specials))])}
    tokenizer = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<pad>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.add_special_tokens(specials)
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(directory / "tokenizer.json"))
    (directory / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", "unk_token": "<pad>", "pad_token": "<pad>",
        "eos_token": "<eos>", "bos_token": "<bos>"}), encoding="utf-8")
    config = DiffusionGemmaConfig(
        text_config=dict(vocab_size=len(vocab), hidden_size=512, intermediate_size=768, num_hidden_layers=6,
                         num_attention_heads=4, num_key_value_heads=2, head_dim=64, global_head_dim=64,
                         layer_types=["sliding_attention"] * 5 + ["full_attention"], sliding_window=128,
                         num_experts=4, top_k_experts=2, moe_intermediate_size=384, max_position_embeddings=4096,
                         pad_token_id=0, eos_token_id=1, bos_token_id=2),
        vision_config=dict(model_type="gemma4_vision", hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                           num_attention_heads=2, num_key_value_heads=2, head_dim=16),
        canvas_length=canvas_length,
    )
    torch.manual_seed(0)
    model = DiffusionGemmaForBlockDiffusion(config).eval()
    model.generation_config.eos_token_id = [1]
    model.generation_config.pad_token_id = 0
    model.save_pretrained(str(directory))
    print(f"checkpoint: {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters, canvas {canvas_length}")
    return directory


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pairs", type=int, default=11)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--canvas", type=int, default=64, help="canvas length")
    p.add_argument("--new-tokens", type=int, default=128)
    p.add_argument("--steps", type=int, default=16, help="the most denoising steps per canvas")
    args = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import torch
    from gemma_reference import seeded_generate
    from transformers import DiffusionGemmaForBlockDiffusion

    from yipyap_jupyter.engine.runtime import DiffusionModelManager
    from yipyap_jupyter.kernel.client import generate_request
    from yipyap_jupyter.service.service import DiffusionLLMService
    from yipyap_jupyter.settings import SettingsStore

    torch.set_num_threads(args.threads)
    scratch = Path(tempfile.mkdtemp(prefix="bench-gemma-"))
    directory = build_checkpoint(scratch / "checkpoint", args.canvas)
    dtype = getattr(torch, args.dtype)
    options = dict(max_new_tokens=args.new_tokens, steps=args.steps, seed=0, chat=False)
    manager = DiffusionModelManager()
    manager.load(str(directory), device=args.device, dtype=args.dtype)
    service = DiffusionLLMService(manager, SettingsStore(scratch / "settings.json"), default_model=None)
    request = generate_request(PROMPT, model=str(directory), **options)
    reference = DiffusionGemmaForBlockDiffusion.from_pretrained(str(directory), dtype=dtype).to(args.device).eval()
    tokenizer = manager.loaded_model.tokenizer  # type: ignore[union-attr]
    prompt = tokenizer(PROMPT)["input_ids"]

    def ours() -> tuple[float, str, int]:
        start = time.perf_counter()
        events = list(service.generate_events(request))
        elapsed = time.perf_counter() - start
        complete: Any = events[-1]
        if complete.type != "complete":
            raise SystemExit(f"our run ended with {complete}")
        return elapsed, complete.raw_text, complete.steps

    def theirs() -> tuple[float, str, int]:
        start = time.perf_counter()
        sequence, passes = seeded_generate(reference, prompt, options["seed"], max_new_tokens=args.new_tokens,
                                           max_denoising_steps=args.steps)
        elapsed = time.perf_counter() - start
        new = sequence[len(prompt):]
        end = next((i for i, t in enumerate(new) if t == 1), len(new))
        return elapsed, tokenizer.decode(new[:end], skip_special_tokens=True), passes

    ours(), theirs()  # warm-up: first-call allocations and imports
    ratios, mine, library = [], [], []
    for _ in range(args.pairs):
        t_theirs, text_theirs, passes_theirs = theirs()
        t_ours, text_ours, steps_ours = ours()
        if (text_ours, steps_ours) != (text_theirs, passes_theirs):
            raise SystemExit(f"runs differ: {steps_ours} steps vs {passes_theirs} passes, or their texts")
        ratios.append(t_ours / t_theirs)
        mine.append(t_ours)
        library.append(t_theirs)
    print(f"{args.device} {args.dtype}, {args.threads} thread(s), {args.new_tokens} new tokens, at most {args.steps} "
          f"steps per canvas, {passes_theirs} decoder passes, {args.pairs} alternating pairs")
    print(f"transformers generate (no streamer): median {statistics.median(library):.3f} s")
    print(f"ours, stepwise and streamed:         median {statistics.median(mine):.3f} s")
    print(f"ratio (median of pairs): {statistics.median(ratios):.3f}x   texts and passes identical in every pair")


if __name__ == "__main__":
    main()
