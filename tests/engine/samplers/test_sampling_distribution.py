"""Sampling at temperature > 0 draws from the distribution the papers define, checked against one written here.

A network with fixed logits over a few tokens and one masked position: over many seeds, the
committed token's frequencies must match the reference distribution (total variation under
TOLERANCE). LLaDA samples by Gumbel noise, which draws from softmax(logits / T); Dream divides by T,
keeps the most probable tokens up to cumulative probability top_p (the one that crosses it included)
and the top_k most probable, and samples from what is left. Seeds are fixed, so each run draws the
same samples: the test cannot flake, and a wrong rule (no noise, T applied the wrong way, top-p
without its crossing token, top-k off by one) moves the frequencies far past the tolerance.
"""

from __future__ import annotations

import pytest
import torch
from alone import dream_sample, llada_sample
from sampler_networks import MASK, VOCAB, FixedLogits

from yipyap_jupyter.engine.samplers.base import make_generator

PROMPT = [1, 2, 3, 4]
#: Logits of tokens 0..4; every other token is out of reach.
PREFERENCES = [2.0, 1.5, 1.0, 0.5, 0.0]
SEEDS = range(3000)
#: Largest total variation allowed between the frequencies and the reference (about 3x what 3000 draws show).
TOLERANCE = 0.04


def fixed_logits() -> FixedLogits:
    logits = torch.full((1, len(PROMPT) + 1, VOCAB), -1e4)
    logits[..., : len(PREFERENCES)] = torch.tensor(PREFERENCES)
    return FixedLogits(logits)


def reference(temperature: float, top_p: float | None = None, top_k: int | None = None) -> list[float]:
    """The distribution of the sampled token, from the definitions (not from the package's code)."""
    scaled = [value / temperature for value in PREFERENCES]
    order = sorted(range(len(scaled)), key=lambda token: -scaled[token])
    total = sum(torch.tensor(scaled).exp().tolist())
    probability = [float(torch.tensor(value).exp()) / total for value in scaled]
    kept = []
    mass = 0.0
    for token in order:
        if top_p is not None and mass > top_p:
            break
        kept.append(token)
        mass += probability[token]
    if top_k is not None:
        kept = kept[:top_k]
    norm = sum(probability[token] for token in kept)
    return [probability[token] / norm if token in kept else 0.0 for token in range(len(PREFERENCES))]


def frequencies(sample) -> list[float]:  # type: ignore[no-untyped-def]
    counts = [0] * len(PREFERENCES)
    for seed in SEEDS:
        token = int(sample(make_generator(seed, "cpu")))
        counts[token] += 1
    return [count / len(SEEDS) for count in counts]


def total_variation(p: list[float], q: list[float]) -> float:
    return sum(abs(a - b) for a, b in zip(p, q, strict=True)) / 2


def test_the_reference_itself() -> None:
    assert reference(1.0) == pytest.approx(torch.softmax(torch.tensor(PREFERENCES), 0).tolist())
    assert [p > 0 for p in reference(0.8, top_p=0.7)] == [True, True, False, False, False]  # .49, then .26 crosses
    assert [p > 0 for p in reference(0.8, top_k=3)] == [True, True, True, False, False]


@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.0])
def test_llada_gumbel_noise_samples_softmax_of_logits_over_temperature(temperature: float) -> None:
    network, canvas = fixed_logits(), torch.tensor([[*PROMPT, MASK]])

    def sample(generator: torch.Generator) -> int:
        steps = list(llada_sample(network, canvas, mask_id=MASK, steps=1, block_length=1, temperature=temperature,
                                  generator=generator))
        return int(steps[-1].canvas[-1])

    seen, expected = frequencies(sample), reference(temperature)
    assert total_variation(seen, expected) < TOLERANCE, (seen, expected)


@pytest.mark.parametrize(("temperature", "top_p", "top_k"), [(0.8, None, None), (0.8, 0.7, None), (0.8, None, 3),
                                                              (1.5, 0.9, 2)])
def test_dream_samples_the_temperature_top_p_top_k_distribution(temperature: float, top_p, top_k) -> None:
    network, canvas = fixed_logits(), torch.tensor([[*PROMPT, MASK]])

    def sample(generator: torch.Generator) -> int:
        steps = list(dream_sample(network, canvas, mask_id=MASK, steps=1, temperature=temperature, top_p=top_p,
                                  top_k=top_k, generator=generator))
        return int(steps[-1].canvas[-1])

    seen, expected = frequencies(sample), reference(temperature, top_p, top_k)
    assert total_variation(seen, expected) < TOLERANCE, (seen, expected)
