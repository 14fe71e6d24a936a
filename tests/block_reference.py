"""The block-diffusion families' official code restated plainly: networks from raw weights, and the loops.

A test oracle. `llada2_forward` and `sdar_forward` compute the official networks
(`LLaDA2MoeModelLM`, `SDARForCausalLM`) from a state dict with the official
parameter names, in float64, one token at a time where the official code batches
(the mixture of experts routes each token on its own, every expert a plain matrix
product), with explicit block-causal attention over optional cached keys/values
(`past`, the official `DynamicCache`).

`llada20_generate`, `llada21_generate` and `sdar_generate` restate the official
`generate` of LLaDA 2.0 and 2.1 (`modeling_llada2_moe.py`) and SDAR's
`block_diffusion_generate` (`JetAstra/SDAR` `generate.py`), and log what every forward
pass committed. Where the official code is wrong, the restatement keeps the fix the
project makes, said where it is: greedy is the argmax with its probability at
temperature 1 (LLaDA 2.0 samples at temperature 0; SDAR divides by zero), LLaDA 2.0's
early stop looks for the end token after the prompt, and SDAR never commits more masks
than are left (its top-k would rewrite committed and prompt tokens).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

F64 = torch.float64
KV = list[tuple[torch.Tensor, torch.Tensor]]
#: forward(ids (1-D), start, past) -> (logits (n, vocab), present keys/values)
Forward = Callable[[torch.Tensor, int, "KV | None"], tuple[torch.Tensor, KV]]


def _rms(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    return weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def _rope(x: torch.Tensor, positions: torch.Tensor, dims: int, theta: float) -> torch.Tensor:
    """Rotate the first `dims` dimensions of each head of x (heads, n, head_dim), halves style."""
    inv = 1.0 / theta ** (torch.arange(0, dims, 2, dtype=F64) / dims)
    angles = positions.to(F64)[:, None] * inv
    cos, sin = torch.cat([angles.cos()] * 2, -1), torch.cat([angles.sin()] * 2, -1)
    part, half = x[..., :dims], dims // 2
    turned = part * cos + torch.cat([-part[..., half:], part[..., :half]], -1) * sin
    return torch.cat([turned, x[..., dims:]], -1)


def _attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, start: int, block_length: int | None) -> torch.Tensor:
    """Block-causal attention of queries at start.. over keys at 0..; (n, heads * head_dim)."""
    k, v = (t.repeat_interleave(q.shape[0] // k.shape[0], 0) for t in (k, v))
    scores = q @ k.transpose(1, 2) / math.sqrt(q.shape[-1])
    if block_length is not None:
        query_block = torch.arange(start, start + q.shape[1]) // block_length
        key_block = torch.arange(k.shape[1]) // block_length
        scores = scores.masked_fill(key_block[None, None, :] > query_block[None, :, None], -torch.inf)
    return (torch.softmax(scores, -1) @ v).transpose(0, 1).reshape(q.shape[1], -1)


def _swiglu(x: torch.Tensor, w: dict[str, torch.Tensor], prefix: str) -> torch.Tensor:
    gate, up, down = (w[f"{prefix}{name}_proj.weight"] for name in ("gate", "up", "down"))
    return (torch.nn.functional.silu(x @ gate.T) * (x @ up.T)) @ down.T


def _linear(x: torch.Tensor, w: dict[str, torch.Tensor], name: str) -> torch.Tensor:
    bias = w.get(f"{name}.bias")
    return x @ w[f"{name}.weight"].T + (0 if bias is None else bias)


def _moe(m: torch.Tensor, w: dict[str, torch.Tensor], prefix: str, c: dict[str, Any]) -> torch.Tensor:
    """The official mixture of experts, token by token: sigmoid router, group-limited choice, shared experts."""
    scores = torch.sigmoid(m @ w[f"{prefix}gate.weight"].T)
    routing = scores + w[f"{prefix}gate.expert_bias"]
    experts, groups = routing.shape[1], c["n_group"]
    size = experts // groups
    out = torch.zeros_like(m)
    for t in range(m.shape[0]):
        group_scores = [sorted(routing[t, g * size:(g + 1) * size].tolist(), reverse=True)[:2] for g in range(groups)]
        best = sorted(range(groups), key=lambda g: -sum(group_scores[g]))[:c["topk_group"]]
        candidates = [e for g in best for e in range(g * size, (g + 1) * size)]
        chosen = sorted(candidates, key=lambda e: -float(routing[t, e]))[:c["num_experts_per_tok"]]
        weights = scores[t, chosen]
        if len(chosen) > 1:
            weights = weights / weights.sum()
        for e, weight in zip(chosen, weights * c["routed_scaling_factor"], strict=True):
            out[t] += weight * _swiglu(m[t:t + 1], w, f"{prefix}experts.{e}.")[0]
    if c.get("num_shared_experts"):
        out = out + _swiglu(m, w, f"{prefix}shared_experts.")
    return out


def llada2_forward(
    w: dict[str, torch.Tensor], c: dict[str, Any], ids: torch.Tensor, start: int = 0, past: KV | None = None,
    block_length: int | None = None,
) -> tuple[torch.Tensor, KV]:
    """LLaDA2MoeModelLM: logits (n, vocab) of `ids` at canvas positions start.., and the layers' keys/values."""
    heads, kv_heads = c["num_attention_heads"], c["num_key_value_heads"]
    head_dim = c["head_dim"]
    eps = c["rms_norm_eps"]
    positions = torch.arange(start, start + ids.numel())
    x = w["model.word_embeddings.weight"][ids]
    present: KV = []
    for i in range(c["num_hidden_layers"]):
        p = f"model.layers.{i}."
        h = _rms(x, w[p + "input_layernorm.weight"], eps)
        qkv = _linear(h, w, p + "attention.query_key_value").view(ids.numel(), heads + 2 * kv_heads, head_dim)
        q, k, v = (qkv[:, a:b].transpose(0, 1) for a, b in ((0, heads), (heads, heads + kv_heads),
                                                              (heads + kv_heads, heads + 2 * kv_heads)))
        if c.get("use_qk_norm", True):
            q = _rms(q, w[p + "attention.query_layernorm.weight"], eps)
            k = _rms(k, w[p + "attention.key_layernorm.weight"], eps)
        dims = int(head_dim * c["partial_rotary_factor"])
        q, k = _rope(q, positions, dims, c["rope_theta"]), _rope(k, positions, dims, c["rope_theta"])
        if past is not None:
            k, v = torch.cat([past[i][0], k], 1), torch.cat([past[i][1], v], 1)
        present.append((k, v))
        x = x + _linear(_attend(q, k, v, start, block_length), w, p + "attention.dense")
        m = _rms(x, w[p + "post_attention_layernorm.weight"], eps)
        moe = c.get("num_experts") and i >= c.get("first_k_dense_replace", 0)
        x = x + (_moe(m, w, p + "mlp.", c) if moe else _swiglu(m, w, p + "mlp."))
    x = _rms(x, w["model.norm.weight"], eps)
    return x @ w["lm_head.weight"].T, present


def sdar_forward(
    w: dict[str, torch.Tensor], c: dict[str, Any], ids: torch.Tensor, start: int = 0, past: KV | None = None,
    block_length: int | None = None,
) -> tuple[torch.Tensor, KV]:
    """SDARForCausalLM (Qwen3 layers): logits (n, vocab) at canvas positions start.., and the keys/values."""
    heads, kv_heads, head_dim = c["num_attention_heads"], c["num_key_value_heads"], c["head_dim"]
    eps = c["rms_norm_eps"]
    positions = torch.arange(start, start + ids.numel())
    x = w["model.embed_tokens.weight"][ids]
    present: KV = []
    for i in range(c["num_hidden_layers"]):
        p = f"model.layers.{i}."
        h = _rms(x, w[p + "input_layernorm.weight"], eps)
        q, k, v = (_linear(h, w, p + f"self_attn.{n}_proj").view(ids.numel(), count, head_dim).transpose(0, 1)
                   for n, count in (("q", heads), ("k", kv_heads), ("v", kv_heads)))
        q, k = _rms(q, w[p + "self_attn.q_norm.weight"], eps), _rms(k, w[p + "self_attn.k_norm.weight"], eps)
        q, k = _rope(q, positions, head_dim, c["rope_theta"]), _rope(k, positions, head_dim, c["rope_theta"])
        if past is not None:
            k, v = torch.cat([past[i][0], k], 1), torch.cat([past[i][1], v], 1)
        present.append((k, v))
        x = x + _linear(_attend(q, k, v, start, block_length), w, p + "self_attn.o_proj")
        x = x + _swiglu(_rms(x, w[p + "post_attention_layernorm.weight"], eps), w, p + "mlp.")
    x = _rms(x, w["model.norm.weight"], eps)
    return x @ w["lm_head.weight"].T, present


# -- the official loops -----------------------------------------------------------------------


def _top_k(logits: torch.Tensor, k: int | None) -> torch.Tensor:
    if not k or k <= 0:
        return logits
    kth = torch.topk(logits, k).values[..., -1, None]
    return torch.where(logits < kth, torch.full_like(logits, -torch.inf), logits)


def _top_p(logits: torch.Tensor, p: float | None) -> torch.Tensor:
    if p is None or p >= 1:
        return logits
    ordered, order = torch.sort(logits, descending=True)
    remove = torch.cumsum(torch.softmax(ordered, -1), -1) > p
    remove[..., 1:] = remove[..., :-1].clone()
    remove[..., 0] = False
    return logits.masked_fill(torch.scatter(torch.zeros_like(logits, dtype=torch.bool), -1, order, remove), -torch.inf)


def sample(logits: torch.Tensor, temperature: float, top_k: int | None, top_p: float | None,
           generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The official `_sample_with_temperature_topk_topp` (LLaDA 2.1's greedy branch for temperature 0)."""
    if temperature == 0:
        token = logits.argmax(-1, keepdim=True)
        return token[:, 0], torch.softmax(logits, -1).gather(-1, token)[:, 0]
    if temperature != 1:
        logits = logits / temperature
    probs = torch.softmax(_top_p(_top_k(logits, top_k), top_p), -1)
    token = torch.multinomial(probs, 1, generator=generator)
    return token[:, 0], probs.gather(-1, token)[:, 0]


def schedule(block_length: int, steps: int) -> list[int]:
    return [block_length // steps + (1 if i < block_length % steps else 0) for i in range(steps)]


def _canvas(prompt: list[int], gen_length: int, block_length: int, mask_id: int) -> torch.Tensor:
    blocks = (len(prompt) + gen_length + block_length - 1) // block_length
    x = torch.full((blocks * block_length,), mask_id, dtype=torch.long)
    x[:len(prompt)] = torch.tensor(prompt)
    return x


def _cut_at_eos(x: torch.Tensor, prompt_length: int, gen_length: int, eos_id: int) -> list[int]:
    generated = x[prompt_length:prompt_length + gen_length].tolist()
    return generated[:generated.index(eos_id) + 1] if eos_id in generated else generated


def llada20_generate(
    forward: Forward, prompt: list[int], *, gen_length: int, block_length: int, steps: int, threshold: float,
    mask_id: int, eos_id: int, temperature: float = 0.0, top_k: int | None = None, top_p: float | None = None,
    eos_early_stop: bool = False, generator: torch.Generator | None = None,
) -> tuple[list[int], list[list[int]]]:
    """LLaDA 2.0 `generate`: (what it returns: the generation cut after its first EOS, what each pass committed)."""
    steps = min(steps, gen_length)
    p = len(prompt)
    x = _canvas(prompt, gen_length, block_length, mask_id)
    plan = schedule(block_length, steps)
    passes: list[list[int]] = []
    for block in range(p // block_length, x.numel() // block_length):
        end = (block + 1) * block_length
        for step in range(steps):
            active = x[end - block_length:end] == mask_id
            if not active.any():
                break
            logits, _ = forward(x[:end], 0, None)
            x0, x0_p = sample(logits[-block_length:], temperature, top_k, top_p, generator)
            confidence = torch.where(active, x0_p, -torch.inf)
            high = confidence > threshold
            transfer = torch.zeros_like(active)
            if int(high.sum()) >= plan[step]:
                transfer = high
            else:
                transfer[torch.topk(confidence, min(plan[step], int(active.sum()))).indices] = True
            x[end - block_length:end][transfer] = x0[transfer]
            passes.append((transfer.nonzero().flatten() + end - block_length).tolist())
            if eos_early_stop and (x0[transfer] == eos_id).any():
                eos_at = (x[p:] == eos_id).nonzero()  # the official searches from position 0
                if len(eos_at) and not (x[p:p + int(eos_at[0])] == mask_id).any():
                    return x[p:p + int(eos_at[0]) + 1].tolist(), passes
        if (x[p:end] == eos_id).any():
            break
    return _cut_at_eos(x, p, gen_length, eos_id), passes


def llada21_generate(
    forward: Forward, prompt: list[int], *, gen_length: int, block_length: int, threshold: float,
    editing_threshold: float, max_post_steps: int, mask_id: int, eos_id: int, temperature: float = 0.0,
    top_k: int | None = None, top_p: float | None = None, eos_early_stop: bool = False,
    generator: torch.Generator | None = None, num_to_transfer: int = 1,
) -> tuple[list[int], list[list[int]]]:
    """LLaDA 2.1 `generate` (token editing): (the generation cut after its first EOS, what each pass changed)."""
    p = len(prompt)
    x = _canvas(prompt, gen_length, block_length, mask_id)
    passes: list[list[int]] = []
    for block in range(p // block_length, x.numel() // block_length):
        start, end = block * block_length, (block + 1) * block_length
        post_steps = 0
        while True:
            old = x[start:end].clone()
            active = old == mask_id
            if not active.any():
                post_steps += 1
            if post_steps > max_post_steps:
                break
            in_prompt = torch.arange(start, end) < p
            logits, _ = forward(x[:end], 0, None)
            x0, x0_p = sample(logits[-block_length:], temperature, top_k, top_p, generator)
            transfer = torch.zeros_like(active)
            if active.any():
                confidence = torch.where(active, x0_p, -torch.inf)
                high = (confidence > threshold) & active
                if int(high.sum()) >= num_to_transfer:
                    transfer = high
                else:
                    transfer[torch.topk(confidence, min(num_to_transfer, int(active.sum()))).indices] = True
            editable = ~active & ~in_prompt
            edit = editable & (torch.where(editable, x0_p, -torch.inf) > editing_threshold) & (x0 != old)
            changed = transfer | edit
            x[start:end][changed] = x0[changed]
            passes.append((changed.nonzero().flatten() + start).tolist())
            if not active.any() and not edit.any():
                break
        if eos_early_stop and not (x[p:end] == mask_id).any() and (x[p:end] == eos_id).any():
            break
    return _cut_at_eos(x, p, gen_length, eos_id), passes


def sdar_generate(
    forward: Forward, prompt: list[int], *, gen_length: int, block_length: int, steps: int, mask_id: int,
    remasking: str = "low_confidence_dynamic", threshold: float = 0.85, temperature: float = 0.0,
    top_k: int = 0, top_p: float = 1.0, stop_ids: tuple[int, ...] = (), generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, list[list[int]], int]:
    """SDAR `block_diffusion_generate`: (the canvas, what each denoising pass committed, the key/value store passes)."""
    p = len(prompt)
    x = _canvas(prompt, gen_length, block_length, mask_id)
    prefill = p // block_length * block_length
    past: KV | None = None
    stores = 0
    if prefill:
        _, past = forward(x[:prefill], 0, None)
        stores += 1
    plan = schedule(block_length, steps)
    passes: list[list[int]] = []
    for block in range(p // block_length, x.numel() // block_length):
        start, end = block * block_length, (block + 1) * block_length
        for step in range(steps + 1):
            active = x[start:end] == mask_id
            if not active.any():
                _, past = forward(x[start:end], start, past)
                stores += 1
                break
            logits, _ = forward(x[start:end], start, past)
            x0, x0_p = sample(logits, temperature, top_k, top_p, generator)
            count = min(plan[step], int(active.sum()))  # the official asks top-k for plan[step] even when fewer are left
            transfer = torch.zeros_like(active)
            if remasking == "sequential":
                first = int(active.nonzero()[0])
                transfer[first:first + plan[step]] = True
            else:
                confidence = torch.where(active, x0_p, -torch.inf)
                high = confidence > threshold
                if remasking == "low_confidence_dynamic" and int(high.sum()) >= plan[step]:
                    transfer = high
                else:
                    transfer[torch.topk(confidence, count).indices] = True
            x[start:end][transfer] = x0[transfer]
            passes.append((transfer.nonzero().flatten() + start).tolist())
        if any(stop in x[p:].tolist() for stop in stop_ids):
            break
    return x, passes, stores
