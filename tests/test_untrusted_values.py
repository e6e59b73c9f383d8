"""Nothing but ConfigError escapes: huge numbers, odd arguments, pydantic's JSON entry point; and
the size limit is generous and configurable."""

from __future__ import annotations

import json

import pytest

import adapter_dsl
from adapter_dsl import ConfigError, LoRAConfig, dumps, load
from adapter_dsl.fieldtypes import MAX_COUNT, MAX_SEED
from adapter_dsl.limits import DEFAULT_MAX_LENGTH, ENV_VAR
from adapter_dsl.loading import load_json_text

HUGE = 10**5000  # past Python's 4,300-digit int/str conversion limit


def problem_of(spec: object) -> adapter_dsl.Problem:
    with pytest.raises(ConfigError) as info:
        load(spec)
    str(info.value)  # rendering never raises either
    return info.value.problems[0]


# -- huge numbers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "path"),
    [
        ({"architecture": "lora", "r": HUGE}, ("r",)),
        ({"architecture": "lora", "alpha": -HUGE}, ("alpha",)),
        ({"reduction_factor": {"default": HUGE}}, ("reduction_factor", "default")),
        ({"leave_out": [0, HUGE]}, ("leave_out", 1)),
        ({"architecture": HUGE}, ("architecture",)),
        ({"config": {"architecture": "lora", "r": HUGE}}, ("config", "r")),
        (
            {"architecture": "union", "configs": [{"architecture": "lora", "r": HUGE}]},
            ("configs", 0, "r"),
        ),
    ],
)
def test_huge_numbers_in_dicts_are_located(spec: object, path: tuple[object, ...]) -> None:
    problem = problem_of(spec)
    assert problem.code == "too_large"
    assert problem.location.path == path


def test_huge_numbers_in_strings_are_located() -> None:
    text = "lora[r=" + "9" * 5000 + "]"
    problem = problem_of(text)
    assert (problem.code, problem.location.span) == ("too_large", (7, 5007))
    assert problem.found == "an integer of 5000 digits"
    # Under Python's limit but over the field's bound: the field's own message.
    problem = problem_of("lora[r=" + "9" * 4000 + "]")
    assert "less than or equal to 2147483647" in problem.message
    assert problem.found == "an integer of about 4000 digits"


def test_huge_numbers_in_json_text_are_located() -> None:
    text = '{"architecture": "lora",\n "r": ' + "9" * 5000 + "}"
    with pytest.raises(ConfigError) as info:
        load_json_text(text)
    (problem,) = info.value.problems
    assert (problem.code, problem.location.line, problem.location.column) == ("too_large", 2, 7)


@pytest.mark.parametrize(
    "value",
    [HUGE, -HUGE, [HUGE], {HUGE: 1}, {"r": [HUGE]}],
    ids=["int", "neg", "list", "key", "dict"],
)
def test_huge_values_of_the_wrong_kind_are_config_errors(value: object) -> None:
    found = problem_of(value).found or ""
    assert "digits" in found or "bits" in found or "too large to show" in found


@pytest.mark.parametrize(
    ("field", "bound"),
    [("r", MAX_COUNT), ("init_weights_seed", MAX_SEED)],
)
def test_integer_fields_have_upper_bounds(field: str, bound: int) -> None:
    assert LoRAConfig(**{field: bound}).to_dict()[field] == bound
    with pytest.raises(ConfigError, match=f"less than or equal to {bound}"):
        LoRAConfig(**{field: bound + 1})
    schema = adapter_dsl.json_schema("config")
    assert f'"maximum": {bound}' in json.dumps(schema)


@pytest.mark.parametrize("value", [10**308, float(10**308), 2**1023], ids=["int", "float", "pow2"])
def test_the_largest_accepted_numbers_print_hash_and_convert(value: float) -> None:
    for config in (load({"architecture": "lora", "alpha": value}), load("lora", alpha=value)):
        assert load(dumps(config)) == config
        hash(config), repr(config), json.dumps(config.to_dict())
    with pytest.raises(ConfigError, match="fit a 64-bit float"):
        LoRAConfig(alpha=10**309)


# -- other entry points ------------------------------------------------------------------------


def test_model_validate_json_raises_config_errors() -> None:
    assert LoRAConfig.model_validate_json('{"r": 4}') == LoRAConfig(r=4)
    assert LoRAConfig.model_validate_json(b'{"r": 4}') == LoRAConfig(r=4)
    with pytest.raises(ConfigError) as info:
        LoRAConfig.model_validate_json('{"r": 0}')
    (problem,) = info.value.problems
    assert (problem.location.path, problem.location.line, problem.location.column) == (("r",), 1, 7)
    for bad in ("{", b"\xff", '{"architecture": "prefix_tuning"}', 5):
        with pytest.raises(ConfigError):
            LoRAConfig.model_validate_json(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "value", [None, "lora", {}, {"architecture": "lora"}, 3, HUGE], ids=lambda v: type(v).__name__
)
def test_dumps_takes_only_config_objects(value: object) -> None:
    with pytest.raises(ConfigError) as info:
        dumps(value)  # type: ignore[arg-type]
    (problem,) = info.value.problems
    assert problem.message.startswith("dumps() takes a config object")
    assert problem.suggestion == "load it first: dumps(load(spec))"


# -- the size limit ----------------------------------------------------------------------------


def test_a_100_kb_prompt_init_text_loads_as_string_dict_and_json() -> None:
    text = "word " * 20_000
    config = load(f"prompt_tuning[prompt_init='from_string', prompt_init_text='{text}']")
    assert config.prompt_init_text == text
    assert load(config.to_dict()) == config
    assert load_json_text(json.dumps(config.to_dict())) == config
    assert load(dumps(config)) == config


def test_the_limit_is_at_least_1_mib_and_configurable(monkeypatch: pytest.MonkeyPatch) -> None:
    assert DEFAULT_MAX_LENGTH >= 1 << 20
    spec = "lora[r=16]" + " " * 1000
    monkeypatch.setenv(ENV_VAR, "1000")
    with pytest.raises(ConfigError) as info:
        load(spec)
    (problem,) = info.value.problems
    assert problem.code == "too_long"
    assert problem.expected == "at most 1,000 characters"
    assert problem.suggestion == f"set {ENV_VAR} to allow longer input"
    with pytest.raises(ConfigError, match="too long"):
        load_json_text('{"architecture": "lora"}' + " " * 1000)
    monkeypatch.setenv(ENV_VAR, "2_000")
    assert load(spec).r == 16
    monkeypatch.setenv(ENV_VAR, "lots")
    with pytest.raises(ConfigError, match=f"invalid {ENV_VAR}"):
        load(spec)


def test_files_obey_the_same_limit(tmp_path: object, monkeypatch: pytest.MonkeyPatch) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "big.json"
    path.write_text('{"architecture": "lora"}' + " " * 2000)
    assert load(path).r == 8
    monkeypatch.setenv(ENV_VAR, "1000")
    with pytest.raises(ConfigError, match="too large to be a config file"):
        load(path)


def test_the_nesting_guard_stays() -> None:
    with pytest.raises(ConfigError, match="nested more than 16 levels"):
        load("lora[r=" + "[" * 17 + "]" * 17 + "]")
    deep: object = 1
    for _ in range(40):
        deep = [deep]
    with pytest.raises(ConfigError, match="nested more than 32 levels"):
        load({"architecture": "lora", "r": deep})
