"""Cross-field rules declared once, field types that carry their schema, and the decisions that
make the JSON Schema and load() agree (integral floats, case-insensitive activations, the
saved-adapter envelope)."""

from __future__ import annotations

import re
import sys

import jsonschema
import pytest

import adapter_dsl
from adapter_dsl import ConfigError
from adapter_dsl.fieldtypes import ACTIVATIONS, RuleViolation
from adapter_dsl.methods.lora import LoRAConfig
from adapter_dsl.methods.rules import REQUIRED, Is, Rule, same, violations
from adapter_dsl.schema import build_schema

# -- conditions: one declaration, two readings --------------------------------------------


def test_is_requires_the_key_only_when_the_default_differs() -> None:
    assert Is("r", 1).schema({"r": 8}) == {
        "properties": {"r": {"const": 1}},
        "required": ["r"],
    }
    assert Is("r", 8).schema({"r": 8}) == {"properties": {"r": {"const": 8}}}
    assert Is("r", 8).schema({"r": REQUIRED})["required"] == ["r"]
    assert Is("leave_out", []).schema({"leave_out": ()}) == {
        "properties": {"leave_out": {"const": []}}
    }


def test_conditions_compile_and_evaluate_alike() -> None:
    cond = ~Is("vera_d", None) & (Is("r", 1) | Is("use_dora", True))
    defaults = {
        name: REQUIRED if info.is_required() else info.default
        for name, info in LoRAConfig.model_fields.items()
    }
    validator = jsonschema.Draft202012Validator(cond.schema(defaults))
    for changes in (
        {},
        {"vera_d": 0.1, "vera_b": 0.0},
        {"vera_d": 0.1, "vera_b": 0.0, "r": 1},
        {"vera_d": 0.1, "vera_b": 0.0, "use_dora": True},
        {"r": 1, "use_dora": True},
    ):
        assert validator.is_valid(changes) == cond.holds(LoRAConfig(**changes)), changes


def test_equality_is_json_schemas() -> None:
    assert same(1, 1.0)
    assert same([], [])
    assert not same(True, 1)
    assert not same(0, False)
    assert not same("1", 1)
    assert same({"a": [1]}, {"a": [1.0]})


class _Values:
    def __init__(self, **values: object) -> None:
        self.__dict__.update(values)

    def field_values(self) -> dict[str, object]:
        return dict(self.__dict__)


def test_a_broken_rule_is_a_located_violation_with_its_message() -> None:
    rule = Rule(
        when=Is("composition_mode", "scale"),
        require=Is("r", 1),
        field="r",
        message="r must be 1, found {r}",
        expected="r=1",
    )
    cfg = adapter_dsl.load("lora[r=4]")
    assert violations(cfg, (rule,)) == []
    # Rules read attributes and field_values(); a plain object stands in for an IA³ config
    # with r=4, which LoRAConfig itself would refuse.
    scaled = _Values(composition_mode="scale", r=4)
    assert rule.broken_by(scaled)
    (found,) = violations(scaled, (rule,))
    assert isinstance(found, RuleViolation)
    assert (found.field, found.message, found.expected) == ("r", "r must be 1, found 4", "r=1")


def test_compiled_rules_agree_with_their_conditions() -> None:
    from adapter_dsl.schema import _variants

    samples = [adapter_dsl.load(i) for i in ("lora", "ia3", "vera", "seq_bn", "loreft")]
    samples += [adapter_dsl.load(i) for i in ("compacter", "seq_bn_inv", "prompt_tuning")]
    for _name, _tag, cls, _title in _variants():
        for rule in cls.cross_field_rules:
            for cfg in samples:
                if all(hasattr(cfg, f) for f in cls.model_fields):
                    assert rule.broken_by(cfg) == rule.broken_by_holds(cfg), (rule.field, cfg)
    # Configs that break rules, built without validation: both readings say so.
    broken = LoRAConfig.model_construct(**{**LoRAConfig().field_values(), "vera_d": 0.1})
    flagged = [r.field for r in LoRAConfig.cross_field_rules if r.broken_by(broken)]
    assert flagged == [r.field for r in LoRAConfig.cross_field_rules if r.broken_by_holds(broken)]
    assert flagged == ["vera_b"]


def test_every_family_rule_is_in_its_schema_variant() -> None:
    from adapter_dsl.schema import _variants

    defs = build_schema("config")["$defs"]
    for name, _tag, cls, _title in _variants():
        assert len(defs[name].get("allOf", [])) == len(cls.cross_field_rules), name


# -- the decisions that make schema and load() agree ---------------------------------------


def test_integral_floats_are_integers() -> None:
    cfg = adapter_dsl.load({"architecture": "lora", "r": 16.0, "leave_out": [1.0]})
    assert cfg.r == 16 and type(cfg.r) is int
    assert cfg.leave_out == (1,) and type(cfg.leave_out[0]) is int
    assert cfg == adapter_dsl.load("lora[r=16, leave_out=[1]]")
    assert adapter_dsl.dumps(adapter_dsl.load("lora[r=16.0]")) == "lora[r=16]"
    with pytest.raises(ConfigError, match="valid integer"):
        adapter_dsl.load({"architecture": "lora", "r": 16.5})
    with pytest.raises(ConfigError, match="listed twice"):
        adapter_dsl.load({"architecture": "lora", "leave_out": [1, 1.0]})


def _case_pattern() -> re.Pattern[str]:
    nl = build_schema("config")["$defs"]["bottleneck"]["properties"]["non_linearity"]
    return re.compile(nl["anyOf"][1]["pattern"])


def test_activation_pattern_matches_every_spelling_that_lower_cases_to_a_name() -> None:
    pattern = _case_pattern()
    # Every character that str.lower() maps to one ASCII letter is a spelling of that letter.
    spellings: dict[str, set[str]] = {}
    for code in range(sys.maxunicode + 1):
        char = chr(code)
        low = char.lower()
        if len(low) == 1 and low.isascii() and low.isalpha():
            spellings.setdefault(low, set()).add(char)
    for name in ACTIVATIONS:
        for variant in (name, name.upper(), name.title()):
            assert pattern.fullmatch(variant), variant
        for i, c in enumerate(name):
            for other in spellings.get(c, ()):
                assert pattern.fullmatch(name[:i] + other + name[i + 1 :]), (name, other)
    assert pattern.fullmatch("lea\u212ayrelu")
    assert adapter_dsl.load({**adapter_dsl.load("seq_bn").to_dict(), "non_linearity": "ReLU"})
    assert not pattern.fullmatch("relux")
    assert not pattern.fullmatch("re lu")


def test_envelope_values_are_checked_with_located_messages() -> None:
    lora = adapter_dsl.load("lora").to_dict()
    with pytest.raises(ConfigError) as info:
        adapter_dsl.load({"config": lora, "version": 5, "hidden_size": "768"})
    problems = {p.location.path: p for p in info.value.problems}
    assert set(problems) == {("version",), ("hidden_size",)}
    assert problems[("version",)].message == (
        "invalid value for 'version' in a saved adapter's adapter_config.json"
    )
    assert problems[("version",)].expected == "a string such as 'adapters.1.3.0'"
    assert problems[("version",)].found == "5"
    assert adapter_dsl.load({"config": lora, "hidden_size": 768.0, "version": "adapters.1.3.0"})
    assert adapter_dsl.load({"config": "lora[r=16]"}) == adapter_dsl.load("lora[r=16]")


def test_schema_key_belongs_on_the_top_level_only() -> None:
    mam = adapter_dsl.load("mam").to_dict()
    mam["configs"][0]["$schema"] = "x"
    with pytest.raises(ConfigError) as info:
        adapter_dsl.load(mam)
    (problem,) = info.value.problems
    assert problem.location.path == ("configs", 0, "$schema")
    assert "top level" in problem.message
    with pytest.raises(ConfigError, match="'\\$schema'"):
        adapter_dsl.load({"$schema": 5, "architecture": "lora"})
