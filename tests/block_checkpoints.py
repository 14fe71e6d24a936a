"""Tiny random LLaDA 2.x (`llada2_moe`) and SDAR (`sdar`) networks and checkpoints in the official formats.

`llada2_config` / `sdar_config` are `config.json` dictionaries with the official field
names (the released checkpoints' shapes, scaled down); the networks are built from them
and written as `config.json` + `model.safetensors` with the official parameter names.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from yipyap_jupyter.engine.checkpoint.weights import official_state
from yipyap_jupyter.engine.families.llada2.config import LLaDA2Config
from yipyap_jupyter.engine.families.llada2.network import LLaDA2Model
from yipyap_jupyter.engine.families.sdar.network import SDARConfig, SDARModel


def llada2_config(vocab_size: int = 48, **changes: Any) -> dict[str, Any]:
    """LLaDA2.0-mini's config.json, tiny: a dense first layer, then 8 experts in 4 groups, 2 per token, one shared."""
    return {
        "architectures": ["LLaDA2MoeModelLM"], "model_type": "llada2_moe", "vocab_size": vocab_size,
        "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 3, "num_attention_heads": 4,
        "num_key_value_heads": 2, "head_dim": 16, "hidden_act": "silu", "use_qkv_bias": False, "use_qk_norm": True,
        "use_bias": False, "rms_norm_eps": 1e-6, "tie_word_embeddings": False, "max_position_embeddings": 512,
        "rope_theta": 600000.0, "partial_rotary_factor": 0.5, "num_experts": 8, "num_shared_experts": 1,
        "num_experts_per_tok": 2, "n_group": 4, "topk_group": 2, "routed_scaling_factor": 2.5,
        "moe_intermediate_size": 16, "first_k_dense_replace": 1, "score_function": "sigmoid",
        "norm_topk_prob": True, "torch_dtype": "float32", **changes,
    }


def sdar_config(vocab_size: int = 48, **changes: Any) -> dict[str, Any]:
    """SDAR-4B-Chat's config.json, tiny."""
    return {
        "architectures": ["SDARForCausalLM"], "model_type": "sdar", "vocab_size": vocab_size, "hidden_size": 32,
        "intermediate_size": 48, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
        "head_dim": 16, "hidden_act": "silu", "attention_bias": False, "rms_norm_eps": 1e-6, "rope_theta": 1e6,
        "max_position_embeddings": 512, "tie_word_embeddings": False, "use_sliding_window": False,
        "block_size": 4, "torch_dtype": "float32", **changes,
    }


def llada2_network(config: dict[str, Any], seed: int = 0, lively: bool = False) -> LLaDA2Model:
    """A random LLaDA2 network; its expert biases random too (they only choose experts).

    `lively`: see `liven`; in float64, so the comparisons with the restated official loops stay off rounding.
    """
    torch.manual_seed(seed)
    network = LLaDA2Model(LLaDA2Config.from_dict(config))
    with torch.no_grad():
        for name, buffer in network.named_buffers():
            if name.endswith("expert_bias"):
                buffer.copy_(torch.rand_like(buffer) * 0.2)
    return liven(network).double() if lively else network.eval()


def sdar_network(config: dict[str, Any], seed: int = 0, lively: bool = False) -> SDARModel:
    """A random SDAR network (norm weights random too, so they are checked); `lively` as `llada2_network`'s."""
    torch.manual_seed(seed)
    network = SDARModel(SDARConfig.from_dict(config))
    with torch.no_grad():
        for name, parameter in network.named_parameters():
            if name.endswith("norm.weight"):
                parameter.copy_(1 + 0.2 * torch.randn_like(parameter))
    return liven(network).double() if lively else network.eval()


def liven(network: torch.nn.Module, head: float = 6.0) -> torch.nn.Module:
    """Quieter embeddings, sharper attention (query/key norm weights) and a head `head` times sharper, in place.

    A random network otherwise predicts nearly one token everywhere: the masks' embedding
    outweighs what attention brings. Lively, its predictions vary along the canvas and are
    often confident enough for a threshold to commit several at once.
    """
    with torch.no_grad():
        for name, parameter in network.named_parameters():
            if "embed" in name:
                parameter.mul_(0.1)
            elif any(part in name for part in ("query_layernorm", "key_layernorm", "q_norm", "k_norm")):
                parameter.mul_(4.0)
            elif name == "lm_head.weight":
                parameter.mul_(head)
    return network.eval()


def save_official(network: torch.nn.Module, config: dict[str, Any], directory: Path) -> Path:
    """Write `config.json` (the official dictionary) and `model.safetensors` (the official names)."""
    directory.mkdir(parents=True, exist_ok=True)
    state = {name: t.detach().contiguous() for name, t in official_state(network).items()}
    save_file(state, str(directory / "model.safetensors"), metadata={"format": "pt"})
    (directory / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    return directory


def make_block_checkpoint(family: str, directory: Path, *, seed: int = 0, tokens: Any = None) -> Path:
    """A lively float64 checkpoint directory of `family` ("llada2" or "sdar"): config.json, model.safetensors and a
    word-level tokenizer with the family's special tokens, or `tokens` (as `checkpoints.save_tokenizer` writes them)."""
    from checkpoints import save_tokenizer

    from yipyap_jupyter.engine.families import family as family_of

    tokens = tokens or family_of(family).tokens
    vocab = save_tokenizer(directory, tokens)
    if family == "llada2":
        config = llada2_config(vocab_size=len(vocab), torch_dtype="float64")
        network: torch.nn.Module = llada2_network(config, seed=seed, lively=True)
    else:
        config = sdar_config(vocab_size=len(vocab), torch_dtype="float64", mask_token_id=vocab[tokens.mask])
        network = sdar_network(config, seed=seed, lively=True)
    return save_official(network, config, directory)
