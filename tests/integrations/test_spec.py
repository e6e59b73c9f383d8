"""AdapterSpec on a user's pydantic model and pydantic-settings class."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from pydantic import BaseModel, Field, ValidationError

import adapter_dsl
from adapter_dsl import AdapterSpec, AdapterSpecDict, LoRAConfig, load


class Job(BaseModel):
    adapter: AdapterSpec
    fallback: AdapterSpecDict | None = None
    default: AdapterSpec = Field(default="seq_bn", validate_default=True)


def test_accepts_string_dict_path_and_object(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_text(json.dumps({"architecture": "lora", "r": 4}), encoding="utf-8")
    for value in ("lora[r=4]", {"architecture": "lora", "r": 4}, path, LoRAConfig(r=4)):
        job = Job(adapter=value)
        assert job.adapter == load("lora[r=4]")
        assert isinstance(job.adapter, LoRAConfig)
    assert Job(adapter="mam").default == load("seq_bn")


def test_a_string_is_never_opened_as_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a.json").write_text('{"architecture": "lora"}', encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValidationError):
        Job(adapter="a.json")


def test_serialises_to_the_canonical_string_or_the_dict() -> None:
    job = Job(
        adapter="lora[r=16, alpha=16]", fallback="prefix_tuning[bottleneck_size=800]|parallel"
    )
    dumped = job.model_dump()
    assert dumped["adapter"] == "lora[r=16, alpha=16]"
    assert dumped["default"] == "seq_bn"
    assert dumped["fallback"] == load("mam").to_dict()
    again = Job.model_validate_json(job.model_dump_json())
    assert again == job


def test_each_problem_is_a_validation_error_entry_with_our_message() -> None:
    with pytest.raises(ValidationError) as info:
        Job(adapter="lora[r=0, compositon_mode='scale']")
    r, key = info.value.errors()
    assert (r["type"], r["loc"]) == ("adapter_config", ("adapter", "r"))
    assert r["msg"].startswith("column 8 at /r: invalid value for 'r'")
    assert key["loc"] == ("adapter", "compositon_mode")
    assert "did you mean 'composition_mode'?" in key["msg"]
    assert key["msg"].endswith("\nlora[r=0, compositon_mode='scale']\n          ^^^^^^^^^^^^^^^")
    assert key["ctx"]["problem"]["pointer"] == "/compositon_mode"
    with pytest.raises(ValidationError) as info:
        Job(adapter="lora[r=1x]")  # a syntax error is at the field itself
    (entry,) = info.value.errors()
    assert entry["loc"] == ("adapter",) and "unexpected word 'x'" in entry["msg"]


def test_braces_in_a_message_survive() -> None:
    with pytest.raises(ValidationError) as info:
        Job(adapter="seq_bn[reduction_factor={'default': 2, 'x': 3}]")
    assert "{'default': 2, 'x': 3}" in info.value.errors()[0]["msg"]


def test_json_schema_offers_the_string_or_the_config_object() -> None:
    schema = Job.model_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    assert validator.is_valid({"adapter": "lora", "fallback": {"architecture": "lora", "r": 4}})
    assert not validator.is_valid({"adapter": {"architecture": "lora", "r": "x"}})
    assert not validator.is_valid({"adapter": 3})
    out = Job.model_json_schema(mode="serialization")["properties"]
    assert out["adapter"]["type"] == "string"
    assert out["fallback"]["anyOf"][0]["$id"] == adapter_dsl.json_schema()["$id"]


def test_settings_read_an_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = pytest.importorskip("pydantic_settings")

    class Settings(settings.BaseSettings):
        adapter: AdapterSpec = load("seq_bn")
        model_config = settings.SettingsConfigDict(env_prefix="")

    monkeypatch.setenv("ADAPTER", "lora[r=16]")
    assert Settings().adapter == LoRAConfig(r=16)
    monkeypatch.setenv("ADAPTER", '{"architecture": "lora", "r": 4}')
    assert Settings().adapter == LoRAConfig(r=4)
    monkeypatch.setenv("ADAPTER", "lora[r=0]")
    with pytest.raises(ValidationError, match=r"greater than or equal to 1"):
        Settings()
