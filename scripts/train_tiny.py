"""Train the embedded `tiny` model (LLaDA architecture) on the Python standard library, on a CPU.

Deterministic for a seed and a step count: data sampling and masking draw from
one torch.Generator whose state is checkpointed, so a resumed run continues the
same sequence. `--minutes` is a safety cap: if it is reached first the run
stops at that step and exports what it has (the learning-rate schedule follows
`--steps`, so pick `--steps` to fit the budget; `--stop-step N` replays such a
cut-short run exactly on a faster or slower machine).

The defaults are the recipe of the shipped model (45 min on a 2-core CPU):

    python scripts/train_tiny.py --out runs/tiny --export-dir runs/export   # then eval_tiny.py, then ship
    python scripts/train_tiny.py --out runs/tiny --export-dir runs/export --resume   # continue / re-export
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import random
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run from a checkout without installing the package

from tiny_data import BOS, EOS, EXPAND, MASK, read_text, save_tokenizer, split_corpus, train_tokenizer
from tiny_objectives import SpecialIds, autoregressive_loss, batch_loss, make_batch

SHIP_DIR = REPO / "yipyap_jupyter" / "models" / "tiny"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=REPO / "runs" / "tiny", help="run directory (checkpoints, log, tokenizer)")
    p.add_argument("--export-dir", type=Path, default=SHIP_DIR, help="where the final model + tokenizer go")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=7000, help="optimizer steps; the LR schedule spans these")
    p.add_argument("--minutes", type=float, default=85.0, help="wall-clock cap for this invocation")
    p.add_argument("--stop-step", type=int, default=None,
                   help="stop (and export) at this step, schedule unchanged: replays a run that the time cap cut short")
    p.add_argument("--resume", action="store_true", help="continue from the run directory's last checkpoint")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--vocab-size", type=int, default=6000)
    p.add_argument("--d-model", type=int, default=192)
    p.add_argument("--n-layers", type=int, default=4)
    p.add_argument("--n-heads", type=int, default=4)
    p.add_argument("--mlp-hidden", type=int, default=528)
    p.add_argument("--seq-len", type=int, default=192)
    p.add_argument("--batch-size", type=int, default=12)
    p.add_argument("--ar-steps", type=int, default=1500,
                   help="first steps train next-token prediction with causal attention (warm-up), then masked diffusion")
    p.add_argument("--infill-steps", type=int, default=1000,
                   help="after --steps, this many infill-heavy steps at the final learning rate (DreamOn-style SFT)")
    p.add_argument("--infill-steps-rows", type=int, default=8, help="infill rows per batch in those steps")
    p.add_argument("--infill-steps-weight", type=float, default=0.7, help="infill share of the loss in those steps")
    p.add_argument("--infill-rows", type=int, default=4, help="rows per batch from the DreamOn objective")
    p.add_argument("--infill-weight", type=float, default=0.3, help="share of the loss from infill rows")
    p.add_argument("--lr", type=float, default=1.5e-3)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--checkpoint-minutes", type=float, default=5.0)
    p.add_argument("--no-export", action="store_true", help="train only (smoke runs)")
    return p.parse_args(argv)


def build_data(args: argparse.Namespace, run_dir: Path):
    """Tokenizer (trained once per run directory) and the tokenised training and held-out text."""
    from tokenizers import Tokenizer

    train_files, held_files = split_corpus()
    train_texts = [read_text(p) for p in train_files]
    tok_path = run_dir / "tokenizer" / "tokenizer.json"
    if tok_path.exists():
        tokenizer = Tokenizer.from_file(str(tok_path))
    else:
        tokenizer = train_tokenizer(train_texts, args.vocab_size)
        save_tokenizer(tokenizer, tok_path.parent)
    ids = SpecialIds(*(tokenizer.token_to_id(t) for t in (EOS, MASK, EXPAND, BOS)))
    docs = [torch.tensor(e.ids, dtype=torch.long) for e in tokenizer.encode_batch(train_texts)]
    docs = [d for d in docs if d.numel() >= 16]
    stream = torch.cat([torch.cat((torch.tensor([ids.bos]), d, torch.tensor([ids.eos]))) for d in docs])
    held = torch.cat(
        [torch.tensor(e.ids, dtype=torch.long) for e in tokenizer.encode_batch([read_text(p) for p in held_files])]
    )
    vocab = tokenizer.get_vocab()
    line_end = torch.zeros(tokenizer.get_vocab_size(), dtype=torch.bool)
    for token, index in vocab.items():
        line_end[index] = "Ċ" in token  # byte-level BPE spells "\n" as "Ċ"
    return tokenizer, ids, docs, stream, held, line_end


def build_network(args: argparse.Namespace, vocab_size: int, ids: SpecialIds):
    from yipyap_jupyter.engine.families.llada.config import LLaDAConfig
    from yipyap_jupyter.engine.families.llada.network import LLaDAModel

    config = LLaDAConfig(
        d_model=args.d_model,
        n_heads=args.n_heads,
        n_kv_heads=args.n_heads,
        n_layers=args.n_layers,
        mlp_hidden_size=args.mlp_hidden,
        mlp_ratio=max(1, round(args.mlp_hidden / args.d_model)),
        vocab_size=vocab_size,
        embedding_size=vocab_size,
        rope_theta=10000.0,
        rms_norm_eps=1e-5,
        weight_tying=False,
        max_sequence_length=512,
        mask_token_id=ids.mask,
        eos_token_id=ids.eos,
        pad_token_id=ids.eos,
    )
    network = LLaDAModel(config)
    std = 0.02
    residual_std = std / math.sqrt(2 * args.n_layers)
    for name, param in network.named_parameters():
        if param.dim() == 1:
            continue  # RMSNorm weights stay at one
        is_residual_out = name.endswith(("attn_out.weight", "ff_out.weight")) and ".blocks." in name
        torch.nn.init.normal_(param, std=residual_std if is_residual_out else std)
    return network


def lr_at(step: int, args: argparse.Namespace) -> float:
    """Linear warm-up then cosine decay to 10% of the peak over `--steps`."""
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    progress = min(1.0, (step - args.warmup) / max(1, args.steps - args.warmup))
    return args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


@torch.no_grad()
def held_out_loss(network, held: torch.Tensor, ids: SpecialIds, length: int) -> tuple[float, float]:
    """Masked-token loss and accuracy on fixed held-out windows at mask ratio 0.5 (same windows every time)."""
    gen = torch.Generator().manual_seed(1234)
    starts = torch.randint(0, held.numel() - length, (8,), generator=gen).tolist()
    clean = torch.stack([held[s : s + length] for s in starts])
    masked = torch.rand(clean.shape, generator=gen) < 0.5
    noisy = torch.where(masked, ids.mask, clean)
    labels = torch.where(masked, clean, -100)
    network.eval()
    logits = network(noisy)
    network.train()
    sel = labels != -100
    loss = torch.nn.functional.cross_entropy(logits[sel].float(), labels[sel]).item()
    acc = (logits[sel].argmax(-1) == labels[sel]).float().mean().item()
    return loss, acc


def start_or_resume(network, args: argparse.Namespace, ckpt: Path):
    """AdamW (norm weights not decayed), the run's one generator, and the step and training time to go on from.

    With `--resume` and a checkpoint, the network, optimizer and generator continue where it stopped,
    so a resumed run ends with the weights of an uninterrupted one.
    """
    decay = [p for p in network.parameters() if p.dim() >= 2]
    no_decay = [p for p in network.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": args.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=args.lr, betas=(0.9, 0.95), eps=1e-8,
    )
    gen = torch.Generator().manual_seed(args.seed)
    step, elapsed = 0, 0.0
    if args.resume and ckpt.exists():
        state = torch.load(ckpt, weights_only=False)
        network.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        gen.set_state(state["generator"])
        step, elapsed = state["step"], state["elapsed"]
        print(f"resumed at step {step} ({elapsed / 60:.1f} min trained so far)", flush=True)
    return optimizer, gen, step, elapsed


def run_record(argv: list[str] | None, step: int, planned_steps: int, elapsed: float, parameters: int,
               args: argparse.Namespace) -> dict:
    """What an export records of the run that made it: the command, steps, time, size, machine and seed."""
    return {
        "command": "python " + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])]),
        "steps": step,
        "planned_steps": planned_steps,
        "training_minutes": round(elapsed / 60, 1),
        "parameters": parameters,
        "hardware": f"{platform.machine()} CPU, {args.threads} threads, torch {torch.__version__}",
        "seed": args.seed,
    }


def save_state(path: Path, network, optimizer, step: int, gen: torch.Generator, elapsed: float, args) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(
        {
            "model": network.state_dict(),
            "optimizer": optimizer.state_dict(),
            "step": step,
            "generator": gen.get_state(),
            "elapsed": elapsed,
            "args": {k: str(v) for k, v in vars(args).items()},
        },
        tmp,
    )
    tmp.replace(path)


def export(network, tokenizer_dir: Path, export_dir: Path, meta: dict) -> None:
    """Official LLaDA checkpoint layout in fp16 (config.json + model.safetensors) plus the tokenizer files."""
    import shutil

    from yipyap_jupyter.engine.checkpoint.weights import save_checkpoint

    export_dir.mkdir(parents=True, exist_ok=True)
    half = network.to(torch.float16)
    save_checkpoint(half, export_dir, extra_config={"torch_dtype": "float16", "bos_token_id": meta["bos_token_id"],
                                                    "expand_token_id": meta["expand_token_id"]})
    network.to(torch.float32)
    (export_dir / "model.safetensors").chmod(0o644)  # readable once installed as package data
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(tokenizer_dir / name, export_dir / name)
    (export_dir / "training.json").write_text(json.dumps(meta, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    run_dir = args.out
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt = run_dir / "last.pt"

    t0 = time.time()
    tokenizer, ids, docs, stream, held, line_end = build_data(args, run_dir)
    print(f"data: {len(docs)} train files, {stream.numel():,} train tokens, {held.numel():,} held-out tokens, "
          f"vocab {tokenizer.get_vocab_size()}, ids {ids} ({time.time() - t0:.1f}s)", flush=True)

    doc_starts = (stream[: stream.numel() - args.seq_len] == ids.bos).nonzero().flatten()
    network = build_network(args, tokenizer.get_vocab_size(), ids)
    n_params = sum(p.numel() for p in network.parameters())
    optimizer, gen, step, elapsed_before = start_or_resume(network, args, ckpt)
    print(f"network: {n_params:,} parameters, config {network.config.to_dict()}", flush=True)

    start = time.time()
    last_ckpt = start
    tokens_seen = 0
    window_start, window_tokens = time.time(), 0
    network.train()
    total_steps = args.steps + args.infill_steps
    last_step = min(total_steps, args.stop_step or total_steps)
    while step < last_step and (time.time() - start) < args.minutes * 60:
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, args)
        if step < args.ar_steps:
            loss = autoregressive_loss(network, stream, args.batch_size, args.seq_len, gen)
        elif step < args.steps:
            batch = make_batch(stream, docs, line_end, args.batch_size, args.infill_rows, args.seq_len, ids, gen,
                               doc_starts=doc_starts)
            loss = batch_loss(network, batch, args.infill_rows, args.infill_weight)
        else:
            batch = make_batch(stream, docs, line_end, args.batch_size, args.infill_steps_rows, args.seq_len, ids, gen,
                               doc_starts=doc_starts)
            loss = batch_loss(network, batch, args.infill_steps_rows, args.infill_steps_weight)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(network.parameters(), 1.0)
        optimizer.step()
        step += 1
        n_tok = args.batch_size * args.seq_len
        tokens_seen += n_tok
        window_tokens += n_tok
        if step % 25 == 0 or step == last_step:
            now = time.time()
            line = (f"step {step}/{total_steps} loss {loss.item():.3f} gnorm {grad_norm:.2f} lr {lr_at(step, args):.2e} "
                    f"tok/s {window_tokens / (now - window_start):.0f} elapsed {(elapsed_before + now - start) / 60:.1f}min")
            if step % 50 == 0 or step == last_step:
                h_loss, h_acc = held_out_loss(network, held, ids, args.seq_len)
                line += f" | held-out@0.5 loss {h_loss:.3f} acc {h_acc:.3f}"
            print(line, flush=True)
            window_start, window_tokens = time.time(), 0
        if time.time() - last_ckpt > args.checkpoint_minutes * 60:
            save_state(ckpt, network, optimizer, step, gen, elapsed_before + time.time() - start, args)
            last_ckpt = time.time()
    elapsed = elapsed_before + time.time() - start
    save_state(ckpt, network, optimizer, step, gen, elapsed, args)
    print(f"stopped at step {step} after {elapsed / 60:.1f} min of training ({tokens_seen:,} tokens this invocation)",
          flush=True)

    if args.no_export:
        return 0
    h_loss, h_acc = held_out_loss(network, held, ids, args.seq_len)
    meta = {
        **run_record(argv, step, total_steps, elapsed, n_params, args),
        "held_out_loss_at_0.5": round(h_loss, 4),
        "held_out_accuracy_at_0.5": round(h_acc, 4),
        "bos_token_id": ids.bos,
        "expand_token_id": ids.expand,
    }
    export(network, run_dir / "tokenizer", args.export_dir, meta)
    print(f"exported to {args.export_dir}: {json.dumps(meta)}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
