"""The GPU run's parts for what may not exist yet: DiffusionGemma, the block families, Ray Serve.

Each part first asks whether its subject exists here, and otherwise is skipped with the answer:
- a family: a random checkpoint in the family's official format (written by transformers' own
  classes, as `save_pretrained` writes the released ones) is handed to the engine's model
  registry, which reads its `config.json` and names the family or refuses the `model_type`.
  Once the engine registers the family, the same check passes and the part runs, unedited.
- Ray Serve: the `ray` package and `benchmarks/bench_serve.py`; the script is then run as it is,
  within the part's budget, and the end of its output kept (so is `bench_block.py`'s, which the
  block families' part runs on the device once the engine has them).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from gpu_parts import PROMPT, Budget, Context, Part, Skipped, gpu_memory_mib, millions, serve

BENCHMARKS = Path(__file__).resolve().parent

#: DiffusionGemma text shapes: toy (dry run) and ~0.8B (GPU), the released model's vocabulary.
GEMMA_TEXT = {
    "dry": dict(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=2, head_dim=16, global_head_dim=16, num_experts=4, top_k_experts=2,
                moe_intermediate_size=64, sliding_window=64, layer_types=["sliding_attention", "full_attention"]),
    "gpu": dict(vocab_size=262144, hidden_size=1024, intermediate_size=2048, num_hidden_layers=16,
                num_attention_heads=8, num_key_value_heads=4, head_dim=128, global_head_dim=128, num_experts=8,
                top_k_experts=2, moe_intermediate_size=1024),
}
GEMMA_CANVAS = {"dry": 16, "gpu": 256}
GEMMA_VISION = dict(model_type="gemma4_vision", hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                    intermediate_size=64)
#: SDAR is Qwen3-shaped: toy and ~1B (GPU), Qwen3's vocabulary.
SDAR_SHAPE = {
    "dry": dict(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=2, head_dim=16, max_position_embeddings=512),
    "gpu": dict(vocab_size=151936, hidden_size=2048, intermediate_size=6144, num_hidden_layers=12,
                num_attention_heads=16, num_key_value_heads=8, head_dim=128, max_position_embeddings=4096),
}
SDAR_BLOCK = 4


def engine_knows(directory: Path) -> None:
    """Raise `Skipped` with the engine's own words when its registry refuses the checkpoint's family."""
    from yipyap_jupyter.engine.runtime import DiffusionModelManager
    from yipyap_jupyter.errors import ModelLoadingError

    try:
        DiffusionModelManager().spec(str(directory))
    except ModelLoadingError as refused:
        raise Skipped(f"the engine has no such family yet ({refused})") from None


def size(ctx: Context) -> str:
    return "dry" if ctx.dry_run else "gpu"


def tokens_of(vocab: dict[str, int], **names: str) -> dict[str, int]:
    return {key: vocab[token] for key, token in names.items()}


def gemma_checkpoint(directory: Path, shape: dict, canvas: int, device: str, dtype: Any) -> Path:
    """A random DiffusionGemma checkpoint, written by transformers' own class."""
    import torch
    from checkpoints import save_tokenizer
    from transformers import DiffusionGemmaConfig, DiffusionGemmaForBlockDiffusion

    from yipyap_jupyter.engine.specs import FamilyTokens

    vocab = save_tokenizer(directory, FamilyTokens(mask="<mask>", eos="<eos>", bos="<bos>"), shape["vocab_size"])
    ids = tokens_of(vocab, eos_token_id="<eos>", bos_token_id="<bos>", pad_token_id="<eos>")
    top = shape["vocab_size"]
    config = DiffusionGemmaConfig(text_config={**shape, **ids}, vision_config=GEMMA_VISION, canvas_length=canvas,
                                  boi_token_id=top - 3, eoi_token_id=top - 2, image_token_id=top - 1, **ids)
    torch.manual_seed(0)
    with torch.device(device):
        model = DiffusionGemmaForBlockDiffusion(config)
    model.to(dtype).save_pretrained(directory)
    return directory


def sdar_checkpoint(directory: Path, shape: dict, device: str, dtype: Any) -> Path:
    """A random SDAR checkpoint: Qwen3 weights under their own names, `model_type` sdar with its block and mask."""
    import torch
    from checkpoints import save_tokenizer
    from transformers import Qwen3Config, Qwen3ForCausalLM

    from yipyap_jupyter.engine.specs import FamilyTokens

    vocab = save_tokenizer(directory, FamilyTokens(mask="<|MASK|>", eos="<|endoftext|>", eot="<|im_end|>"),
                           shape["vocab_size"])
    torch.manual_seed(0)
    with torch.device(device):
        model = Qwen3ForCausalLM(Qwen3Config(**shape, **tokens_of(vocab, eos_token_id="<|endoftext|>",
                                                                  pad_token_id="<|endoftext|>")))
    model.to(dtype).save_pretrained(directory)
    config_file = directory / "config.json"
    config = json.loads(config_file.read_text(encoding="utf-8"))
    config.update(model_type="sdar", architectures=["SDARForCausalLM"], block_size=SDAR_BLOCK,
                  mask_token_id=vocab["<|MASK|>"])
    config_file.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return directory


def timed(service: Any, body: dict) -> tuple[float, str]:
    """(seconds, text) of one generation through the service, after one to warm up."""
    from bench_batching import through_service

    through_service(service, [body])
    wall, _, texts, _ = through_service(service, [body])
    return wall, texts[0]


def diffusion_gemma(ctx: Context, budget: Budget, part: Part) -> None:
    """Our stepwise DiffusionGemma run through the service against transformers' `generate` on the same weights."""
    import torch
    import transformers

    if not hasattr(transformers, "DiffusionGemmaForBlockDiffusion"):
        raise Skipped(f"transformers {transformers.__version__} has no DiffusionGemma (it came in 5.25)")
    toy = gemma_checkpoint(ctx.scratch / "gemma-toy", GEMMA_TEXT["dry"], GEMMA_CANVAS["dry"], "cpu", torch.float32)
    engine_knows(toy)
    directory = toy if ctx.dry_run else gemma_checkpoint(ctx.scratch / "gemma", GEMMA_TEXT["gpu"],
                                                         GEMMA_CANVAS["gpu"], ctx.device, ctx.dtype)
    tokens = GEMMA_CANVAS[size(ctx)] * (1 if ctx.dry_run else 2)  # on the GPU, two canvases
    manager, service, info = serve(ctx, directory)
    try:
        ours, _ = timed(service, {"prompt": PROMPT, "max_new_tokens": tokens, "seed": 0})
    finally:
        manager.unload()
    model = transformers.DiffusionGemmaForBlockDiffusion.from_pretrained(directory, dtype=ctx.dtype).to(ctx.device)
    ids = transformers.AutoTokenizer.from_pretrained(directory)(PROMPT, return_tensors="pt").input_ids.to(ctx.device)
    seconds: list[float] = []
    try:
        for _ in range(2):  # the first warms up
            if seconds:
                budget.check(seconds[0], "transformers generate after its warm-up")
            torch.manual_seed(0)
            started = time.perf_counter()
            model.generate(ids, max_new_tokens=tokens)
            if ctx.device == "cuda":
                torch.cuda.synchronize()
            seconds.append(time.perf_counter() - started)
    except Skipped as skipped:
        part.skip(Skipped(f"{skipped}: its figure is the warm-up run's"))
    setting = f"DiffusionGemma {millions(info.parameters)}, {tokens} tokens"
    part.row(f"{setting}: ours, a step event per pass", tokens_per_s=tokens / ours, ratio=1.0, peak_mib=gpu_memory_mib())
    part.row(f"{setting}: transformers generate", tokens_per_s=tokens / seconds[-1], ratio=ours / seconds[-1])


def block_families(ctx: Context, budget: Budget, part: Part) -> None:
    """The block families' exact cache (`cache="prefix"`) against their recomputing loop (`cache="none"`).

    SDAR through the service on a random ~1B checkpoint; then `bench_block.py` (both families,
    LLaDA 2.x included, at its own ~30M sizes) on this device, where that script exists.
    """
    import torch

    toy = sdar_checkpoint(ctx.scratch / "sdar-toy", SDAR_SHAPE["dry"], "cpu", torch.float32)
    engine_knows(toy)
    directory = toy if ctx.dry_run else sdar_checkpoint(ctx.scratch / "sdar", SDAR_SHAPE["gpu"], ctx.device, ctx.dtype)
    tokens = 16 if ctx.dry_run else 256
    manager, service, info = serve(ctx, directory)
    try:
        results = {}
        for cache in ("none", "prefix"):
            if results:
                budget.check(2 * results["none"][0], f"SDAR cache={cache}")
            results[cache] = timed(service, {"prompt": PROMPT, "max_new_tokens": tokens, "cache": cache, "seed": 0})
    except Skipped as skipped:
        part.skip(skipped)
    finally:
        manager.unload()
    for cache, (seconds, text) in results.items():
        part.row(f"SDAR {millions(info.parameters)}, {tokens} tokens: cache={cache}", tokens_per_s=tokens / seconds,
                 ratio=results["none"][0] / seconds, same=text == results["none"][1], peak_mib=gpu_memory_mib())
    dtype = str(ctx.dtype).removeprefix("torch.")
    lengths = ["16"] if ctx.dry_run else ["256", "1024"]
    run_script("bench_block.py", ["--device", ctx.device, "--dtype", dtype, "--runs", "1", "--tokens", *lengths],
               budget, ctx, part)


def ray_serve(ctx: Context, budget: Budget, part: Part) -> None:
    """`benchmarks/bench_serve.py` as it is, where Ray and the script exist (the dry run only asks for its usage:
    a Ray instance is not a toy)."""
    if importlib.util.find_spec("ray") is None:
        raise Skipped("Ray is not installed (pip install 'ray[serve]')")
    run_script("bench_serve.py", ["--help"] if ctx.dry_run else [], budget, ctx, part)


def run_script(name: str, arguments: list[str], budget: Budget, ctx: Context, part: Part) -> None:
    """Run `benchmarks/{name}` within the part's budget and keep the end of its output (skipped if it is absent)."""
    script = BENCHMARKS / name
    if not script.is_file():
        raise Skipped(f"no {name} in benchmarks/ yet")
    process = subprocess.Popen([sys.executable, str(script), *arguments], cwd=BENCHMARKS, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    ctx.children.append(process)
    try:
        output, _ = process.communicate(timeout=budget.left())
    except subprocess.TimeoutExpired:
        process.terminate()  # lets the script stop what it started (a Ray instance)
        try:
            output, _ = process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
        part.skip(Skipped(f"{name} passed the part's budget and was stopped"))
    finally:
        ctx.children.remove(process)
    part.details[name] = {"arguments": arguments, "exit": process.returncode, "output": output[-4000:]}
    part.note(f"{name} {' '.join(arguments)} exited {process.returncode}; its output is in the JSON"
              f" (details[{name!r}])")
