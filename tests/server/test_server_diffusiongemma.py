"""A DiffusionGemma checkpoint directory through a real Jupyter server: the tokens of transformers' seeded
`generate`, one step frame per decoder pass, and what the family does not do refused with 400."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from gemma_reference import seeded_generate
from server_helpers import as_json, check_steps, sse_events
from tornado.httpclient import HTTPClientError
from transformers import AutoTokenizer, DiffusionGemmaForBlockDiffusion


def post(body: dict[str, Any]) -> dict[str, Any]:
    return {"method": "POST", "body": json.dumps(body)}


def transformers_text(directory: Path, prompt: str, seed: int, **options: Any) -> tuple[str, int]:
    """The text of `torch.manual_seed(seed); model.generate(...)` cut at its first end token, and its decoder passes."""
    tokenizer = AutoTokenizer.from_pretrained(str(directory))
    model = DiffusionGemmaForBlockDiffusion.from_pretrained(str(directory)).eval()
    ids = tokenizer(prompt)["input_ids"]
    sequence, passes = seeded_generate(model, ids, seed, **options)
    tokens = sequence[len(ids):]
    ends = set(model.generation_config.eos_token_id)
    end = next((i for i, t in enumerate(tokens) if t in ends), len(tokens))
    return tokenizer.decode(tokens[:end], skip_special_tokens=True), passes


async def test_a_checkpoint_directory_streams_transformers_tokens_one_frame_per_pass(
    jp_fetch, tiny_gemma_dir: Path
) -> None:
    model = str(tiny_gemma_dir)
    body = {"prompt": "the cat sat", "model": model, "seed": 4, "max_new_tokens": 16, "chat": False,
            "stability_threshold": 0, "confidence_threshold": 0.2}
    streamed = await jp_fetch("api", "diffusion", "generate", "stream", **post(body))
    events = sse_events(streamed.body)
    expected, passes = transformers_text(tiny_gemma_dir, "the cat sat", 4, max_new_tokens=16,
                                         stability_threshold=0, confidence_threshold=0.2)
    steps = check_steps(events, passes)
    complete = events[-1]
    assert complete["raw_text"] == expected and complete["steps"] == passes
    assert {"steps": 6, "entropy_bound": 0.1, "t_min": 0.4, "t_max": 0.8}.items() <= complete["options"].items()
    assert all(set(step["states"]) <= {"settled", "unsettled"} for step in steps)
    plain = as_json(await jp_fetch("api", "diffusion", "generate", **post(body)))
    assert plain["raw_text"] == expected and plain["model_used"] == model


@pytest.mark.parametrize(("route", "body", "message"), [
    ("infill", {"prefix": "a", "suffix": "b"}, "does not support infill (diffusiongemma models only generate)"),
    ("infill", {"prefix": "a", "suffix": "b", "variable": True}, "does not support variable infill"),
    ("generate", {"prompt": "a", "block_length": 8}, "block_length does not apply to diffusiongemma models"),
    ("generate", {"prompt": "a", "images": ["cat.png"]}, "text only"),
])
async def test_what_the_family_does_not_do_is_a_400(jp_fetch, tiny_gemma_dir: Path, route: str,
                                                   body: dict[str, Any], message: str) -> None:
    with pytest.raises(HTTPClientError) as refused:
        await jp_fetch("api", "diffusion", route, **post({**body, "model": str(tiny_gemma_dir)}))
    answer = json.loads(refused.value.response.body)
    assert (refused.value.code, answer["error_type"]) == (400, "validation") and message in answer["message"], answer
