"""The LoRA family's extension locations: the attention output, the gate, IA³ input scaling."""

from __future__ import annotations

import jsonschema
import pytest

import adapter_dsl
from adapter_dsl import ConfigError, IA3Config, LoRAConfig, dumps, json_schema, load, parse

EXTENSIONS = ("attn_output_lora", "gate_lora", "input_scaling")


@pytest.mark.parametrize("ident", ["lora", "ia3", "dora", "vera", "mtl_lora", "unipelt", "mam"])
def test_to_dict_keeps_the_reference_shape_when_unused(ident: str) -> None:
    data = parse(ident).to_dict()
    members = data.get("configs", [data])
    assert not any(key in m for m in members for key in EXTENSIONS)


def test_extensions_appear_when_used_and_round_trip() -> None:
    cfg = parse("ia3[attn_output_lora=True, output_lora=True, input_scaling=['attn_output']]")
    data = cfg.to_dict()
    assert data["attn_output_lora"] is True
    assert data["input_scaling"] == ["attn_output"]
    assert "gate_lora" not in data
    assert load(data) == cfg
    assert parse(dumps(cfg)) == cfg
    gate = LoRAConfig(gate_lora=True, selfattn_lora=False)
    assert load(gate.to_dict()) == gate
    assert isinstance(load(data), IA3Config)


def test_a_gate_or_output_projection_alone_is_a_placement() -> None:
    assert parse("lora[selfattn_lora=False, gate_lora=True]").gate_lora
    assert parse("lora[selfattn_lora=False, attn_output_lora=True]").attn_output_lora


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("lora[input_scaling=['intermediate'], intermediate_lora=True]", "needs IA³"),
        (
            "ia3[input_scaling=['gate']]",
            "'gate', which the adapter does not adapt (gate_lora is off)",
        ),
        ("ia3[input_scaling=['output']]", "set output_lora=True"),
        ("ia3[input_scaling=['q']]", "'attn_output', 'intermediate', 'output', 'gate'"),
        ("ia3[input_scaling='output']", "a string is not a list"),
        ("ia3[feedforward_modules=['down_proj']]", "did you mean 'input_scaling'"),
    ],
)
def test_bad_extension_values_are_located(text: str, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse(text)
    assert needle in str(info.value)
    assert info.value.problems[0].location.path[0] in ("input_scaling", "feedforward_modules")


def test_the_reference_dialect_refuses_the_extensions() -> None:
    with pytest.raises(ConfigError, match="has no field 'gate_lora'"):
        dumps(parse("lora[gate_lora=True]"), dialect="reference")
    assert dumps(parse("lora[r=4]"), dialect="reference") == "lora[r=4]"


def test_schema_states_the_input_scaling_rules() -> None:
    schema = json_schema()
    good = parse("ia3[output_lora=True, input_scaling=['output']]").to_dict()
    jsonschema.validate(good, schema)
    for bad in (
        {**good, "output_lora": False},
        {**good, "composition_mode": "add", "r": 8, "init_weights": "lora"},
        {**good, "input_scaling": ["gate"]},
    ):
        with pytest.raises(ConfigError):
            adapter_dsl.load(bad)
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)
