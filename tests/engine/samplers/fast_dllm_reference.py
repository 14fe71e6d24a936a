"""Fast-dLLM's sampling loops restated plainly, with the key/value cache as explicit tensors.

A test oracle for the block-wise caches: `forward` recomputes a network's layers
from its weights (explicit attention, explicit rotary embedding) and takes the
cached keys/values of a full pass as tensors, combining them as Fast-dLLM's
modelling code does: the prefix cache concatenates the cached prefix with the
window's fresh keys/values, the dual cache writes the window's over the cached
ones. `llada_loop` and `dream_block_loop` restate `generate` /
`generate_with_prefix_cache` / `generate_with_dual_cache` (greedy) and Dream's
`generation_utils_block._sample` (greedy), and log what every forward pass committed.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from yipyap_jupyter.engine.families.dream.network import DreamModel

KV = list[tuple[torch.Tensor, torch.Tensor]]


def _rms(norm: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return norm.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + norm.eps))


def _rotate(x: torch.Tensor, positions: torch.Tensor, theta: float) -> torch.Tensor:
    half = x.shape[-1] // 2
    inv_freq = 1.0 / theta ** (torch.arange(0, 2 * half, 2, dtype=torch.float64) / (2 * half))
    angles = positions.double()[:, None] * inv_freq
    cos, sin = torch.cat([angles.cos()] * 2, -1).to(x.dtype), torch.cat([angles.sin()] * 2, -1).to(x.dtype)
    return x * cos + torch.cat([-x[..., half:], x[..., :half]], -1) * sin


def _layers(network: nn.Module) -> list[dict[str, nn.Module]]:
    if isinstance(network, DreamModel):
        return [
            dict(norm1=layer.input_layernorm, q=layer.self_attn.q_proj, k=layer.self_attn.k_proj,
                 v=layer.self_attn.v_proj, o=layer.self_attn.o_proj, norm2=layer.post_attention_layernorm,
                 gate=layer.mlp.gate_proj, up=layer.mlp.up_proj, down=layer.mlp.down_proj)
            for layer in network.model.layers
        ]
    return [
        dict(norm1=b.attn_norm, q=b.q_proj, k=b.k_proj, v=b.v_proj, o=b.attn_out, norm2=b.ff_norm, gate=b.ff_proj,
             up=b.up_proj, down=b.ff_out)
        for b in network.model.transformer["blocks"]
    ]


def forward(
    network: nn.Module, ids: torch.Tensor, start: int = 0, past: KV | None = None, mode: str = "full", mask_id: int = -1
) -> tuple[torch.Tensor, KV]:
    """Logits (seq, vocab) of canvas positions start.. for `ids` (1-D), and each layer's (keys, values).

    `past`: the keys/values of a full pass; "prefix" concatenates past[:start] with the
    window's, "dual" writes the window's over past at start.. (Fast-dLLM's two caches).
    The mask token's logit is pushed down, like the sampler tests' networks do.
    """
    dream = isinstance(network, DreamModel)
    config = network.config
    heads = config.num_attention_heads if dream else config.n_heads
    kv_heads = config.num_key_value_heads if dream else config.kv_heads
    theta = config.rope_theta
    x = (network.model.embed_tokens if dream else network.model.transformer["wte"])(ids)
    positions = torch.arange(start, start + ids.numel())
    present: KV = []
    for index, layer in enumerate(_layers(network)):
        h = _rms(layer["norm1"], x)
        q, k, v = (layer[name](h).view(ids.numel(), -1, x.shape[-1] // heads).transpose(0, 1) for name in "qkv")
        q, k = _rotate(q, positions, theta), _rotate(k, positions, theta)
        if mode == "prefix":
            k, v = torch.cat([past[index][0][:, :start], k], 1), torch.cat([past[index][1][:, :start], v], 1)
        elif mode == "dual":
            past_k, past_v = past[index][0].clone(), past[index][1].clone()
            past_k[:, start : start + ids.numel()], past_v[:, start : start + ids.numel()] = k, v
            k, v = past_k, past_v
        present.append((k, v))
        k, v = k.repeat_interleave(heads // kv_heads, 0), v.repeat_interleave(heads // kv_heads, 0)
        weights = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(q.shape[-1]), dim=-1)
        x = x + layer["o"]((weights @ v).transpose(0, 1).reshape(ids.numel(), -1))
        m = _rms(layer["norm2"], x)
        x = x + layer["down"](nn.functional.silu(layer["gate"](m)) * layer["up"](m))
    x = _rms(network.model.norm if dream else network.model.transformer["ln_f"], x)
    logits = (network.lm_head if dream else network.model.transformer["ff_out"])(x)
    logits[:, mask_id] = -1e4
    return logits, present


def _llada_transfer(logits, mask_index, count, threshold):
    """Fast-dLLM's get_transfer_index, greedy: (x0, positions to commit)."""
    p = torch.softmax(logits.double(), -1)
    x0_p, x0 = p.max(-1)
    confidence = torch.where(mask_index, x0_p, -torch.inf)
    k = int(mask_index.sum()) if threshold is not None else count
    ranked, order = torch.topk(confidence, k)
    keep = [int(order[0])] if k else []
    keep += [int(order[j]) for j in range(1, k) if threshold is None or ranked[j] >= threshold]
    return x0, sorted(keep)


def llada_loop(network, canvas, *, mask_id, steps, block_length, threshold=None, cache="none"):
    """LLaDA under Fast-dLLM (greedy, low confidence): (final canvas, what each forward pass committed)."""
    x = canvas[0].clone()
    start = int((x == mask_id).nonzero()[0])
    gen_length = x.numel() - start
    steps_per_block = steps // (gen_length // block_length)
    passes: list[list[int]] = []
    for block_start in range(start, x.numel(), block_length):
        block_end = block_start + block_length
        n = int((x[block_start:block_end] == mask_id).sum())
        schedule = [n // steps_per_block + (1 if i < n % steps_per_block else 0) for i in range(steps_per_block)]
        i = 0
        past = None
        while True:
            if cache == "none" or i == 0:
                window_start, window_end = 0, x.numel()
                logits, present = forward(network, x, mask_id=mask_id)
                past = present if past is None else past
            else:
                window_start, window_end = block_start, x.numel() if cache == "prefix" else block_end
                logits, _ = forward(network, x[window_start:window_end], window_start, past, cache, mask_id)
            mask_index = x[window_start:window_end] == mask_id
            mask_index[block_end - window_start :] = False
            x0, chosen = _llada_transfer(logits, mask_index, schedule[i] if threshold is None else None, threshold)
            for j in chosen:
                x[window_start + j] = x0[j]
            passes.append([window_start + j for j in chosen])
            i += 1
            if cache == "none" and (x[block_start:block_end] == mask_id).sum() == 0:
                break
            if cache != "none" and i > 1 and (x[block_start:block_end] == mask_id).sum() == 0:
                break  # the cached loops test for a full block only after their second pass
    return x, passes


def _shift(logits: torch.Tensor) -> torch.Tensor:
    """Dream: row i predicts position i + 1 (the first row keeps its own)."""
    return torch.cat([logits[:1], logits[:-1]])


def dream_block_loop(network, canvas, *, mask_id, steps, block_length, threshold=None, cache="none", eps=1e-3):
    """Dream's block sampler under Fast-dLLM (greedy, negative-entropy ranking or `threshold`)."""
    x = canvas[0].clone()
    start = int((x == mask_id).nonzero()[0])
    steps_per_block = steps // ((x.numel() - start) // block_length)
    timesteps = torch.linspace(1, eps, steps_per_block + 1)
    passes: list[list[int]] = []
    for block_start in range(start, x.numel(), block_length):
        block_end = block_start + block_length
        logits, past = forward(network, x, mask_id=mask_id)
        x[block_start] = torch.softmax(_shift(logits)[block_start], -1).argmax()
        passes.append([block_start])
        i = 1
        while True:
            if cache == "none":
                window_start, window_end = 0, x.numel()
                logits, _ = forward(network, x, mask_id=mask_id)
            else:
                window_start, window_end = block_start, x.numel() if cache == "prefix" else block_end
                logits, _ = forward(network, x[window_start:window_end], window_start, past, cache, mask_id)
            probs = torch.softmax(_shift(logits), -1)
            mask_index = x[window_start:window_end] == mask_id
            mask_index[block_end - window_start :] = False
            if threshold is not None:
                confidence = torch.where(mask_index, probs.max(-1).values, -torch.inf)
                k = int(mask_index.sum())
                ranked, order = torch.topk(confidence, k)
                chosen = [int(order[0])] + [int(order[j]) for j in range(1, k) if ranked[j] >= threshold]
            else:
                if i == steps_per_block:
                    break
                t, s = timesteps[i], timesteps[i + 1]
                n = mask_index.sum() / 1
                count = int(n * (1 - s / t)) if i < steps_per_block - 1 else int(n)
                neg_entropy = (probs * torch.log(probs + 1e-10)).sum(-1)
                confidence = torch.where(mask_index, neg_entropy, -torch.inf)
                chosen = torch.topk(confidence, count).indices.tolist() if count else []
                i += 1
            for j in chosen:
                x[window_start + j] = probs[j].argmax()
            passes.append(sorted(window_start + j for j in chosen))
            if (x[block_start:block_end] == mask_id).sum() == 0:
                break
    return x, passes
