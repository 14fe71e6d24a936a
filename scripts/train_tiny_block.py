"""Train the embedded `tiny-block` model (SDAR format: Qwen3 layers, block diffusion) on a CPU.

The data are `train_tiny.py`'s (the standard library split by top-level module, the
held-out modules never trained on) and the tokenizer is the shipped `tiny`'s, so the two
models read and write the same tokens. The recipe is SDAR's in miniature:

1. a causal warm-up (`--ar-steps`): next-token prediction with causal attention, which a
   small network learns far faster than any masked objective;
2. block diffusion: each row is `[noisy | clean]` (2L positions, as BD3-LM and SDAR train).
   A noisy block sees itself both ways and the clean blocks before it; a clean block sees
   the clean blocks up to itself. Every block of the noisy half is masked at its own ratio
   t ~ U(eps, 1], and each masked position predicts its own token (loss weighted 1/t), which
   is what the block sampler asks of the network at every step.

Deterministic for a seed and a step count (one checkpointed torch.Generator draws all data
and masks); `--minutes` is only a safety cap, `--stop-step` replays a cut-short run. The
defaults reproduce the shipped weights:

    python scripts/train_tiny_block.py --out runs/tiny-block            # exports to the package
    python scripts/train_tiny_block.py --out runs/tiny-block --resume   # continue / re-export
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shutil
import sys
import time
from pathlib import Path

import torch
from torch.nn import functional as F

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run from a checkout without installing the package
sys.path.insert(0, str(REPO / "scripts"))

from tiny_objectives import SpecialIds
from train_tiny import SHIP_DIR as TINY_DIR
from train_tiny import build_data, lr_at, run_record, save_state, start_or_resume

from yipyap_jupyter.engine.layers import rotary_tables

SHIP_DIR = REPO / "yipyap_jupyter" / "models" / "tiny-block"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=REPO / "runs" / "tiny-block", help="run directory (checkpoints, log)")
    p.add_argument("--export-dir", type=Path, default=SHIP_DIR, help="where the final model + tokenizer go")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=3600, help="optimizer steps; the LR schedule spans these")
    p.add_argument("--ar-steps", type=int, default=1200, help="first steps: causal next-token warm-up")
    p.add_argument("--minutes", type=float, default=100.0, help="wall-clock cap for this invocation")
    p.add_argument("--stop-step", type=int, default=None,
                   help="stop (and export) at this step, schedule unchanged: replays a run the time cap cut short")
    p.add_argument("--resume", action="store_true", help="continue from the run directory's last checkpoint")
    p.add_argument("--threads", type=int, default=1,
                   help="one thread keeps its pace on a shared machine (two OpenMP threads stall beside any other process)")
    p.add_argument("--hidden-size", type=int, default=256)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--kv-heads", type=int, default=2)
    p.add_argument("--intermediate-size", type=int, default=768)
    p.add_argument("--block-size", type=int, default=4, help="training block length (SDAR's `block_size`)")
    p.add_argument("--seq-len", type=int, default=192)
    p.add_argument("--batch-size", type=int, default=12)
    p.add_argument("--mask-eps", type=float, default=0.1, help="smallest mask ratio of a block")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--checkpoint-minutes", type=float, default=5.0)
    p.add_argument("--no-export", action="store_true", help="train only (smoke runs)")
    return p.parse_args(argv)


def build_network(args: argparse.Namespace, vocab_size: int, ids: SpecialIds):
    """The shipped network: our SDARModel (transformers' Qwen3 layers), initialised as GPT-2 does."""
    from yipyap_jupyter.engine.families.sdar.network import SDARConfig, SDARModel

    config = SDARConfig(
        vocab_size=vocab_size, hidden_size=args.hidden_size, intermediate_size=args.intermediate_size,
        num_hidden_layers=args.layers, num_attention_heads=args.heads, num_key_value_heads=args.kv_heads,
        head_dim=args.hidden_size // args.heads, max_position_embeddings=512, rms_norm_eps=1e-6,
        rope_theta=10000.0, tie_word_embeddings=False, block_size=args.block_size,
        mask_token_id=ids.mask, bos_token_id=ids.bos, eos_token_id=ids.eos, pad_token_id=ids.eos,
    )
    network = SDARModel(config).to_empty(device="cpu")
    std = 0.02
    residual_std = std / math.sqrt(2 * args.layers)
    for name, param in network.named_parameters():
        if param.dim() == 1:
            torch.nn.init.ones_(param)  # RMSNorm weights
        else:
            torch.nn.init.normal_(param, std=residual_std if name.endswith(("o_proj.weight", "down_proj.weight")) else std)
    return network


def training_forward(network, input_ids: torch.Tensor, positions: torch.Tensor, mask: torch.Tensor | None):
    """Logits of `input_ids` at `positions` under `mask` ((L, L) bool, True attends; None: causal).

    The layers attend through PyTorch's scaled_dot_product_attention with the explicit mask, which
    trains far faster than the shipped block-cache attention; `check_training_forward` compares the two.
    """
    x = network.model.embed_tokens(input_ids)
    config = network.config
    cos, sin = rotary_tables(positions, config.head_size, config.rope_theta, lambda op, t: op(t))
    rope = (cos[:, 0], sin[:, 0])  # as the shipped forward computes them
    attention_mask = None if mask is None else mask[None, None].expand(input_ids.shape[0], 1, -1, -1)
    layers_config = network.model.layers[0].self_attn.config  # one config object, shared by every layer
    shipped, layers_config._attn_implementation = layers_config._attn_implementation, "sdpa"
    try:
        for layer in network.model.layers:
            x = layer(x, attention_mask=attention_mask, position_embeddings=rope, position_ids=positions)
    finally:
        layers_config._attn_implementation = shipped
    return network.lm_head(network.model.norm(x))


def block_diffusion_mask(length: int, block: int) -> torch.Tensor:
    """(2L, 2L) attention of `[noisy | clean]`: noisy block b sees noisy b and clean < b; clean b sees clean <= b."""
    b = torch.arange(length) // block
    same = b[:, None] == b[None, :]
    before = b[:, None] > b[None, :]
    upto = b[:, None] >= b[None, :]
    top = torch.cat((same, before), dim=1)
    bottom = torch.cat((torch.zeros(length, length, dtype=torch.bool), upto), dim=1)
    return torch.cat((top, bottom), dim=0)


def windows(stream: torch.Tensor, n_rows: int, length: int, gen: torch.Generator) -> torch.Tensor:
    starts = torch.randint(0, stream.numel() - length, (n_rows,), generator=gen)
    return torch.stack([stream[s : s + length] for s in starts.tolist()])


def mask_blocks(clean: torch.Tensor, block: int, mask_id: int, eps: float, gen: torch.Generator):
    """Each block of each row masked at its own ratio t ~ U(eps, 1]: (noisy, masked, t per position)."""
    rows, length = clean.shape
    t = eps + (1 - eps) * torch.rand(rows, length // block, generator=gen)
    t = t.repeat_interleave(block, dim=1)
    masked = torch.rand(rows, length, generator=gen) < t
    return torch.where(masked, mask_id, clean), masked, t


def diffusion_loss(network, clean: torch.Tensor, args: argparse.Namespace, ids: SpecialIds, gen: torch.Generator,
                   attention: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Block-diffusion loss (masked tokens, weighted 1/t, per token of the batch) and masked-token accuracy."""
    length = clean.shape[1]
    noisy, masked, t = mask_blocks(clean, args.block_size, ids.mask, args.mask_eps, gen)
    positions = torch.arange(length).repeat(2)[None].expand(clean.shape[0], -1)
    logits = training_forward(network, torch.cat((noisy, clean), dim=1), positions, attention)[:, :length]
    ce = F.cross_entropy(logits[masked].float(), clean[masked], reduction="none")
    loss = (ce / t[masked]).sum() / clean.numel()
    accuracy = (logits[masked].argmax(-1) == clean[masked]).float().mean()
    return loss, accuracy


def causal_loss(network, stream: torch.Tensor, args: argparse.Namespace, gen: torch.Generator) -> torch.Tensor:
    rows = windows(stream, args.batch_size, args.seq_len + 1, gen)
    positions = torch.arange(args.seq_len)[None].expand(rows.shape[0], -1)
    logits = training_forward(network, rows[:, :-1], positions, None)
    return F.cross_entropy(logits.float().flatten(0, 1), rows[:, 1:].flatten())


@torch.no_grad()
def held_out(network, held: torch.Tensor, args: argparse.Namespace, ids: SpecialIds) -> tuple[float, float]:
    """Block-diffusion loss and masked-token accuracy on fixed held-out windows (same windows and masks every time)."""
    gen = torch.Generator().manual_seed(1234)
    clean = windows(held, 16, args.seq_len, gen)
    network.eval()
    loss, accuracy = diffusion_loss(network, clean, args, ids, gen, block_diffusion_mask(args.seq_len, args.block_size))
    network.train()
    return loss.item(), accuracy.item()


@torch.no_grad()
def check_training_forward(network, args: argparse.Namespace) -> float:
    """Largest gap between the training forward and the shipped block-cache forward on one block-causal row."""
    ids = torch.randint(4, network.config.vocab_size, (1, 4 * args.block_size), generator=torch.Generator().manual_seed(0))
    b = torch.arange(ids.shape[1]) // args.block_size
    positions = torch.arange(ids.shape[1])[None]
    training = training_forward(network, ids, positions, b[:, None] >= b[None, :])
    shipped = network(ids, block_length=args.block_size)
    return (training - shipped).abs().max().item()


def export(network, tokenizer_dir: Path, export_dir: Path, meta: dict) -> None:
    """SDAR's checkpoint layout in fp16 (config.json + model.safetensors) plus the tokenizer files, written whole."""
    from yipyap_jupyter.engine.checkpoint.weights import save_checkpoint

    staging = export_dir.with_name(export_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    save_checkpoint(network, staging, dtype=torch.float16,
                    extra_config={"architectures": ["SDARForCausalLM"], "model_type": "sdar"})
    (staging / "model.safetensors").chmod(0o644)  # readable once installed as package data
    for name in TOKENIZER_FILES:
        shutil.copy(tokenizer_dir / name, staging / name)
    (staging / "training.json").write_text(json.dumps(meta, indent=2) + "\n")
    card = export_dir / "MODEL_CARD.md"
    if card.exists():  # the card is written by hand from eval_tiny_block.py's figures: keep it
        shutil.copy(card, staging / card.name)
    shutil.rmtree(export_dir, ignore_errors=True)
    staging.rename(export_dir)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    run_dir = args.out
    (run_dir / "tokenizer").mkdir(parents=True, exist_ok=True)
    for name in TOKENIZER_FILES:  # tiny's tokenizer: build_data loads it instead of training one
        shutil.copy(TINY_DIR / name, run_dir / "tokenizer" / name)
    ckpt = run_dir / "last.pt"

    t0 = time.time()
    tokenizer, ids, docs, stream, held, _ = build_data(args, run_dir)
    print(f"data: {len(docs)} train files, {stream.numel():,} train tokens, {held.numel():,} held-out tokens, "
          f"vocab {tokenizer.get_vocab_size()} ({time.time() - t0:.1f}s)", flush=True)

    network = build_network(args, tokenizer.get_vocab_size(), ids)
    n_params = sum(p.numel() for p in network.parameters())
    optimizer, gen, step, elapsed_before = start_or_resume(network, args, ckpt)
    print(f"network: {n_params:,} parameters, config {network.config.to_dict()}", flush=True)
    print(f"training forward vs shipped forward: max |logit gap| {check_training_forward(network, args):.2e}", flush=True)

    attention = block_diffusion_mask(args.seq_len, args.block_size)
    start = last_ckpt = window_start = time.time()
    network.train()
    last_step = min(args.steps, args.stop_step or args.steps)
    while step < last_step and (time.time() - start) < args.minutes * 60:
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, args)
        if step < args.ar_steps:
            loss, phase = causal_loss(network, stream, args, gen), "causal"
        else:
            loss, _ = diffusion_loss(network, windows(stream, args.batch_size, args.seq_len, gen), args, ids, gen,
                                     attention)
            phase = "block"
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(network.parameters(), 1.0)
        optimizer.step()
        step += 1
        if step % 25 == 0 or step == last_step:
            now = time.time()
            line = (f"step {step}/{args.steps} {phase} loss {loss.item():.3f} gnorm {grad_norm:.2f} "
                    f"lr {lr_at(step, args):.2e} s/step {(now - window_start) / 25:.2f} "
                    f"elapsed {(elapsed_before + now - start) / 60:.1f}min")
            if step % 100 == 0 or step == last_step:
                h_loss, h_acc = held_out(network, held, args, ids)
                line += f" | held-out block loss {h_loss:.3f} acc {h_acc:.3f}"
            print(line, flush=True)
            window_start = time.time()
        if time.time() - last_ckpt > args.checkpoint_minutes * 60:
            save_state(ckpt, network, optimizer, step, gen, elapsed_before + time.time() - start, args)
            last_ckpt = time.time()
    elapsed = elapsed_before + time.time() - start
    save_state(ckpt, network, optimizer, step, gen, elapsed, args)
    print(f"stopped at step {step} after {elapsed / 60:.1f} min of training", flush=True)
    if args.no_export:
        return 0

    h_loss, h_acc = held_out(network, held, args, ids)
    meta = {
        **run_record(argv, step, args.steps, elapsed, n_params, args),
        "held_out_block_loss": round(h_loss, 4),
        "held_out_masked_accuracy": round(h_acc, 4),
        "training_vs_shipped_forward_max_gap": check_training_forward(network, args),
    }
    export(network, run_dir / "tokenizer", args.export_dir, meta)
    print(f"exported to {args.export_dir}: {json.dumps(meta)}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
