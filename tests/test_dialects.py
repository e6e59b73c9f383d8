"""dumps dialects: the reference dialect is what adapters 1.3.0 parses to the same config."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from adapter_dsl import AdapterConfig, ConfigError, dumps, load, parse
from tests.test_properties import configs

CORPUS = json.loads(
    (Path(__file__).parent / "fixtures" / "reference" / "dialect_corpus.json").read_text()
)
CASES = CORPUS["cases"]


def _members(config: AdapterConfig) -> tuple[AdapterConfig, ...]:
    return tuple(config.members())


@pytest.mark.parametrize("case", CASES, ids=[c["config"][:60] for c in CASES])
def test_the_reference_parses_the_reference_dialect_to_the_same_config(
    case: dict[str, Any],
) -> None:
    config = parse(case["config"])
    if "refused" in case:
        with pytest.raises(ConfigError) as info:
            dumps(config, dialect="reference")
        assert info.value.problems[0].message == case["refused"]
        assert info.value.problems[0].code == "not_in_reference"
        assert "error" in case["reference_of_dsl"]  # the reference rejects it indeed
        return
    text = dumps(config, dialect="reference")
    assert text == case["string"], "regenerate the corpus (scripts/gen_dialect_corpus.py)"
    reference = case["reference"]
    assert "error" not in reference
    ref_members = reference["configs"] if reference.get("architecture") == "union" else [reference]
    assert len(ref_members) == len(_members(config))
    for mine, theirs, attributes in zip(
        _members(config), ref_members, case["attributes"], strict=True
    ):
        # Settings the reference holds as class attributes compare as values too.
        ours = {**mine.to_dict(), **{a: getattr(mine, a) for a in attributes}}
        assert ours == {**theirs, **attributes}


def test_the_corpus_covers_what_the_default_dialect_writes_differently() -> None:
    by_config = {c["config"]: c for c in CASES}
    assert "string" in by_config["mam[adapter.reduction_factor=4]"]  # dotted keys
    assert sum("refused" in c for c in CASES) >= 2  # fields the reference lacks
    assert any("\\x7c" in c.get("string", "") for c in CASES)  # '|' inside a string
    assert sum(c["string"] != c["config"] for c in CASES if "string" in c) >= 5


def test_reference_dialect_examples() -> None:
    assert dumps(load("mam"), dialect="reference") == "mam"
    assert (
        dumps(load("mam[adapter.reduction_factor=4]"), dialect="reference")
        == "prefix_tuning[bottleneck_size=800]|par_bn[reduction_factor=4]"
    )
    text = dumps(
        load("prompt_tuning[prompt_init='from_string', prompt_init_text='a|b=c']"),
        dialect="reference",
    )
    assert "|" not in text and "=c" not in text
    with pytest.raises(ConfigError, match=r"adapters 1\.3\.0 has no field 'random_uniform_scale'"):
        dumps(load("prompt_tuning[random_uniform_scale=0.3]"), dialect="reference")
    with pytest.raises(ConfigError, match="unknown dialect") as info:
        dumps(load("lora"), dialect="peft")  # type: ignore[arg-type]
    assert info.value.problems[0].code == "unknown_dialect"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs())
def test_the_reference_dialect_round_trips_here_or_says_why_not(config: AdapterConfig) -> None:
    try:
        text = dumps(config, dialect="reference")
    except ConfigError as err:
        assert err.problems[0].code == "not_in_reference"
        return
    assert parse(text) == config
    for chunk in text.split("|"):  # what the reference does first
        assert "." not in chunk.split("[", 1)[0]
        assert "[" not in chunk or chunk.endswith("]")


def test_the_cli_formats_in_either_dialect() -> None:
    import io

    from adapter_dsl.cli import EXIT_INVALID, EXIT_OK, main

    out, err = io.StringIO(), io.StringIO()
    spec = "mam[adapter.reduction_factor=4]"
    assert main(["format", "--dialect", "reference", spec, "lora"], stdout=out, stderr=err) == 0
    assert out.getvalue() == "prefix_tuning[bottleneck_size=800]|par_bn[reduction_factor=4]\nlora\n"
    out = io.StringIO()
    assert main(["format", spec], stdout=out, stderr=err) == EXIT_OK
    assert out.getvalue() == spec + "\n"
    out, err = io.StringIO(), io.StringIO()
    code = main(
        ["format", "--dialect", "reference", "prompt_tuning[random_uniform_scale=0.3]"],
        stdout=out,
        stderr=err,
    )
    assert code == EXIT_INVALID and out.getvalue() == ""
    assert "has no field 'random_uniform_scale'" in err.getvalue()
