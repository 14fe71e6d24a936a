"""The block families' networks (LLaDA 2.x MoE, SDAR on Qwen3 layers): the official names load, the logits
match the official networks restated in block_reference, the block cache is exact, experts run grouped."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from block_checkpoints import llada2_config, llada2_network, save_official, sdar_config, sdar_network
from block_reference import llada2_forward, sdar_forward
from safetensors.torch import load_file

from yipyap_jupyter.engine.block_cache import BlockCache
from yipyap_jupyter.engine.checkpoint.weights import load_network, save_checkpoint
from yipyap_jupyter.engine.families.llada2.config import LLaDA2Config
from yipyap_jupyter.engine.families.llada2.network import LLaDA2Model, LLaDA2MoE
from yipyap_jupyter.engine.families.sdar.network import SDARConfig, SDARModel
from yipyap_jupyter.engine.packing import Packing, Segment
from yipyap_jupyter.errors import ModelLoadingError

FAMILIES = {
    "llada2": (llada2_config, llada2_network, llada2_forward, LLaDA2Model, LLaDA2Config),
    "sdar": (sdar_config, sdar_network, sdar_forward, SDARModel, SDARConfig),
}


def _ids(length: int, seed: int = 1, vocab: int = 48) -> torch.Tensor:
    return torch.randint(0, vocab, (1, length), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("block_length", [4, 5, None])
def test_logits_match_the_official_network_restated(family: str, block_length: int | None, tmp_path: Path) -> None:
    make_config, make_network, reference, model_class, config_class = FAMILIES[family]
    config = make_config()
    directory = save_official(make_network(config), config, tmp_path)
    network = load_network(directory)  # what a checkpoint directory holds, loaded by name
    assert isinstance(network, model_class)
    ids = _ids(13)
    with torch.no_grad():
        ours = network(ids, block_length=block_length)[0]
    state = {name: t.double() for name, t in load_file(str(directory / "model.safetensors")).items()}
    expected, _ = reference(state, config, ids[0], block_length=block_length)
    assert (ours.double() - expected).abs().max() < 1e-4


@pytest.mark.parametrize(("shared", "tensors"), [(0, 3), (None, 0)])
def test_llada2_shared_experts_as_the_official_block_builds_them(shared: int | None, tensors: int, tmp_path: Path) -> None:
    # the official block has shared experts unless the config says null: 0 (its default) gives empty tensors
    config = llada2_config(num_shared_experts=shared)
    directory = save_official(llada2_network(config), config, tmp_path)
    weights = load_file(str(directory / "model.safetensors"))
    shared_tensors = [name for name in weights if "shared_experts" in name]
    assert len(shared_tensors) == tensors * 2  # two MoE layers
    assert all(weights[name].numel() == 0 for name in shared_tensors)
    network = load_network(directory)
    ids = _ids(9)
    with torch.no_grad():
        ours = network(ids, block_length=4)[0]
    expected, _ = llada2_forward({n: t.double() for n, t in weights.items()}, config, ids[0], block_length=4)
    assert (ours.double() - expected).abs().max() < 1e-4


@pytest.mark.parametrize("family", FAMILIES)
def test_a_block_sees_the_blocks_before_it_and_not_after(family: str) -> None:
    make_config, make_network, *_ = FAMILIES[family]
    network = make_network(make_config())
    ids = _ids(12)
    later, earlier = ids.clone(), ids.clone()
    later[0, 9] = (later[0, 9] + 1) % 48
    earlier[0, 2] = (earlier[0, 2] + 1) % 48
    with torch.no_grad():
        base, changed_later, changed_earlier = (network(x, block_length=4)[0] for x in (ids, later, earlier))
    # blocks 0 and 1 never see block 2 (to rounding: its tokens change which rows an expert's product holds)
    torch.testing.assert_close(changed_later[:8], base[:8], rtol=1e-5, atol=1e-5)
    assert (changed_later[8:] - base[8:]).abs().max() > 1e-3
    assert (changed_earlier[4:] - base[4:]).abs().max() > 1e-3  # later blocks see block 0


def _packed(network: torch.nn.Module, rows: list[tuple[torch.Tensor, int, BlockCache, tuple[int, int]]]) -> list:
    packing = Packing([Segment(ids.shape[1], start, 1, cache, at) for ids, start, cache, at in rows])
    with torch.no_grad():
        return packing.split(network(torch.cat([ids for ids, *_ in rows], dim=1), packing=packing))


@pytest.mark.parametrize("family", FAMILIES)
def test_the_block_cache_gives_the_logits_of_the_whole_pass(family: str) -> None:
    make_config, make_network, *_ = FAMILIES[family]
    network = make_network(make_config())
    ids = _ids(20)
    with torch.no_grad():
        whole = network(ids, block_length=4)[0]
    cache = BlockCache(4, 20)
    # the prompt's two whole blocks with the third block, then the third alone, then two more blocks at once
    for start, end in ((0, 12), (8, 12), (8, 20)):
        (logits,) = _packed(network, [(ids[:, start:end], start, cache, (end - 4 - start, end - start))])
        torch.testing.assert_close(logits[0], whole[end - 4:end], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
def test_packed_rows_give_their_solo_logits(family: str) -> None:
    make_config, make_network, *_ = FAMILIES[family]
    network = make_network(make_config())
    a, b = _ids(12, seed=2), _ids(7, seed=3)
    first = _packed(network, [(a, 0, BlockCache(4, 12), (8, 12)), (b, 0, BlockCache(4, 8, keep=False), (4, 7))])
    solo_a = _packed(network, [(a, 0, BlockCache(4, 12), (8, 12))])[0]
    solo_b = _packed(network, [(b, 0, BlockCache(4, 8, keep=False), (4, 7))])[0]
    # MoE rows share each expert's matrix product with the other row's tokens: equal to rounding
    torch.testing.assert_close(first[0], solo_a, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(first[1], solo_b, rtol=1e-5, atol=1e-5)


def test_each_expert_runs_only_over_the_tokens_routed_to_it() -> None:
    config = llada2_config()
    network = llada2_network(config)
    hidden, size = config["hidden_size"], config["moe_intermediate_size"]
    with torch.no_grad(), torch.profiler.profile(record_shapes=True) as profile:
        network(_ids(10))
    # the experts' gate-and-up products: (tokens routed to the expert, hidden) @ (hidden, 2 * size)
    rows = [shapes[0][0] for event in profile.events() if event.name == "aten::mm"
            for shapes in [event.input_shapes] if shapes[1] == [hidden, 2 * size]]
    moe_layers = sum(isinstance(layer.mlp, LLaDA2MoE) for layer in network.model.layers)
    assert sum(rows) == moe_layers * 10 * 2  # each token through its 2 experts, never through all 8
    assert max(rows) < 10 and len(rows) > 2 * moe_layers


def test_the_stacked_experts_read_and_write_the_official_names(tmp_path: Path) -> None:
    config = llada2_config()
    network = llada2_network(config)
    directory = save_checkpoint(network, tmp_path)  # the package's own writer
    written = load_file(str(directory / "model.safetensors"))
    expert = "model.layers.1.mlp.experts.3."
    experts = network.model.layers[1].mlp.experts
    size = config["moe_intermediate_size"]
    assert written[expert + "gate_proj.weight"].shape == (size, config["hidden_size"])
    assert torch.equal(written[expert + "gate_proj.weight"], experts.gate_up[3, :, :size].T)
    assert torch.equal(written[expert + "up_proj.weight"], experts.gate_up[3, :, size:].T)
    assert torch.equal(written[expert + "down_proj.weight"], experts.down[3].T)
    assert not any(name.endswith(("gate_up", "down")) for name in written)
    loaded = load_network(directory)
    assert all(torch.equal(loaded.state_dict()[name], t) for name, t in network.state_dict().items())


def test_expert_bias_chooses_experts_but_does_not_weigh_them() -> None:
    config = llada2_config(num_hidden_layers=2)
    network = llada2_network(config)
    moe = network.model.layers[1].mlp
    x = torch.randn(6, 32, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        moe.gate.expert_bias.zero_()
        chosen, weights = moe.gate(x)
        moe.gate.expert_bias.fill_(0.5)  # the same bias everywhere changes no choice and no weight
        torch.testing.assert_close(moe.gate(x)[1], weights)
        moe.gate.expert_bias.zero_()
        moe.gate.expert_bias[3] = 100.0  # expert 3 chosen by every token
        biased_chosen, _ = moe.gate(x)
    assert (biased_chosen == 3).any(dim=1).all()
    assert torch.allclose(weights.sum(dim=1), torch.full((6,), 2.5))  # normalised, times routed_scaling_factor


@pytest.mark.parametrize("change, message", [
    ({"n_group": 3}, "groups"),
    ({"rope_scaling": {"type": "linear", "factor": 2}}, "rope_scaling"),
    ({"hidden_act": "gelu"}, "hidden_act"),
    ({"num_key_value_heads": 3}, "num_key_value_heads"),
    ({"first_k_dense_replace": -1}, "first_k_dense_replace"),
])
def test_unsupported_llada2_configs_are_loading_errors(change: dict, message: str) -> None:
    with pytest.raises(ModelLoadingError, match=message):
        LLaDA2Config.from_dict(llada2_config(**change))


@pytest.mark.parametrize("change, message", [
    ({"use_sliding_window": True}, "use_sliding_window"),
    ({"rope_scaling": {"type": "yarn", "factor": 4}}, "rope_scaling"),
    ({"mask_token_id": 99}, "outside the vocabulary"),
])
def test_unsupported_sdar_configs_are_loading_errors(change: dict, message: str) -> None:
    with pytest.raises(ModelLoadingError, match=message):
        SDARConfig.from_dict(sdar_config(**change))
