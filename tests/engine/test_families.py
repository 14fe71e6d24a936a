"""The families' registry: each checkpoint finds its family, each option is declared once and offered everywhere."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from yipyap_jupyter.engine.checkpoint.files import read_config
from yipyap_jupyter.engine.families import FAMILIES, KNOWN_MODELS, all_options, detect, family
from yipyap_jupyter.engine.options import SamplingOptions, resolve
from yipyap_jupyter.errors import ModelLoadingError, ValidationError
from yipyap_jupyter.kernel.arguments import add_sampler_arguments, sampler_values
from yipyap_jupyter.kernel.magics import cell_parser
from yipyap_jupyter.service.plan import OPTION_FIELDS
from yipyap_jupyter.service.schemas import GenerateRequest


def test_each_checkpoint_directory_is_recognised_by_exactly_one_family(
    tiny_llada_dir: Path, tiny_dream_dir: Path, tiny_dreamon_dir: Path
) -> None:
    for directory, name in ((tiny_llada_dir, "llada"), (tiny_dream_dir, "dream"), (tiny_dreamon_dir, "dreamon")):
        config = read_config(directory)
        assert [f.name for f in FAMILIES if f.recognises(config, directory)] == [name]
        assert detect(directory).name == name


def test_an_unknown_model_type_names_the_supported_families(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"model_type": "gpt2"}', encoding="utf-8")
    with pytest.raises(ModelLoadingError, match="unsupported model_type 'gpt2'.*llada, dream, dreamon"):
        detect(tmp_path)


def test_every_known_model_names_a_family_whose_samplers_do_its_jobs() -> None:
    for spec in KNOWN_MODELS.values():
        samplers = family(spec.family).samplers
        assert set(spec.capabilities) <= set(samplers), spec.id


def test_options_are_declared_once_and_shared_by_name() -> None:
    names = [option.name for option in all_options()]
    assert len(names) == len(set(names))
    assert family("llada").samplers["generate"].reads("threshold")
    assert family("dream").samplers["generate"].reads("threshold")
    # the same declaration, not two that could drift apart
    llada_threshold = next(o for o in family("llada").samplers["generate"].options if o.name == "threshold")
    dream_threshold = next(o for o in family("dream").samplers["generate"].options if o.name == "threshold")
    assert llada_threshold is dream_threshold


def test_every_option_is_a_request_field_a_plan_field_and_an_argument() -> None:
    names = {option.name for option in all_options()}
    assert names <= set(GenerateRequest.model_fields)
    assert names <= set(OPTION_FIELDS)
    parser = argparse.ArgumentParser()
    add_sampler_arguments(parser)
    assert {action.dest for action in parser._actions} - {"help"} == names


def test_the_magic_offers_the_options_it_used_to_lack() -> None:
    args = cell_parser().parse_args("--cfg-scale 1.5 --top-p 0.9 --top-k 20 --alg-temp 0.1".split())
    assert sampler_values(args) == {"cfg_scale": 1.5, "top_p": 0.9, "top_k": 20, "alg_temp": 0.1}


def test_an_option_of_another_family_is_refused_by_name() -> None:
    with pytest.raises(ValidationError, match="cfg_scale does not apply to dream models"):
        resolve(SamplingOptions(cfg_scale=1.0), KNOWN_MODELS["dream-v0-instruct-7b"], "generate")
    with pytest.raises(ValidationError, match="unknown option colour"):
        resolve(SamplingOptions(colour=1), KNOWN_MODELS["tiny"], "generate")
