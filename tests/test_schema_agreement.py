"""The committed JSON Schemas and ``load()`` agree: a generated dict loads iff the schema accepts it.

Dicts are generated from every preset's ``to_dict()`` by a few mutations (a value from a pool of
near-misses, a deleted or an unknown key, a nested or an extra union member, a saved-adapter
envelope around it), so most are invalid and many are valid. Where JSON Schema cannot state what
``load()`` checks, the case is named in :func:`_beyond_json_schema`; the generator leaves out the
legacy spellings that ``load()`` rewrites before validating (the ``invertible_adapter`` key, and
``gelu_orig`` in files without a version), which a schema of the current format does not offer.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import adapter_dsl
from adapter_dsl import ConfigError
from adapter_dsl.methods.union import ConfigUnion
from adapter_dsl.registry import IDENTIFIERS

SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"
T = TypeVar("T")
Choose = Callable[[Sequence[T]], T]

BASES: dict[str, dict[str, Any]] = {
    ident: adapter_dsl.load(ident).to_dict()
    for ident, preset in IDENTIFIERS.items()
    if not preset.deprecated
}

# Near-misses and valid values of every JSON type; each is tried on every field.
VALUES: list[Any] = [
    None, True, False, 0, 1, 2, 8, -1, 0.0, 1.0, 2.0, 0.5, -0.5, 1.5, 100000,
    "", "x", "relu", "ReLU", "GELU_NEW", "gelu_orig_", "all", "add", "scale", "vera", "lora",
    "bert", "ia3", "post_add", "nice", "glow", "learned", "channel", "float16", "from_string",
    "Classify:", "prefix_after_bos", "singular_values",
    [], [0], [0, 1], [1, 1], [1.0], [-1], ["q"], ["q", "v"], ["q", "q"], ["q", "o"], "qv",
    {}, {"default": 2}, {"default": 2, "0": 4}, {"default": 2, "01": 4}, {"0": 4},
    {"default": 0}, {"default": 2, "1": 1.5},
]  # fmt: skip
VERSIONS: list[Any] = ["adapters.1.3.0", "adapters.1.0.0", "3.2.1", 5, None]


def _members(data: dict[str, Any]) -> list[dict[str, Any]]:
    return list(data["configs"]) if data.get("architecture") == "union" else [data]


FIELDS = sorted(
    {key for base in BASES.values() for m in _members(base) for key in m} | {"rank", "$schema"}
)
ENVELOPE = ["hidden_size", "model_class", "model_name", "model_type", "name", "type", "$schema"]


def _mutate_member(data: dict[str, Any], choose: Choose[Any]) -> dict[str, Any]:
    out = dict(data)
    action = choose(["set", "set", "set", "delete", "architecture"])
    if action == "set":
        out[choose([*out, *FIELDS])] = choose(VALUES)
    elif action == "delete" and out:
        del out[choose(sorted(out))]
    elif action == "architecture":
        out["architecture"] = choose([None, "bottleneck", "lora", "mtl_lora", "reft", "union"])
    return out


def _mutate(data: dict[str, Any], choose: Choose[Any]) -> dict[str, Any]:
    if data.get("architecture") != "union" or not isinstance(data.get("configs"), list):
        return _mutate_member(data, choose)
    configs = list(data["configs"])
    action = choose(["member", "member", "add", "nest", "top"])
    if action == "member":
        i = choose(range(len(configs)))
        if isinstance(configs[i], dict):
            configs[i] = _mutate_member(configs[i], choose)
    elif action == "add":
        configs.append(choose(list(BASES.values())))
    elif action == "nest":  # a member becomes a union of itself and another config
        i = choose(range(len(configs)))
        configs[i] = {
            "architecture": "union",
            "configs": [configs[i], choose(list(BASES.values()))],
        }
    else:
        return _mutate_member(data, choose)
    return {**data, "configs": configs}


def generate(choose: Choose[Any]) -> dict[str, Any]:
    """A dict derived from a preset by up to three mutations, maybe inside a saved-adapter file."""
    data = choose(list(BASES.values()))
    for _ in range(choose([0, 1, 1, 2, 3])):
        data = _mutate(data, choose)
    wrap = choose(["none", "none", "none", "saved", "string"])
    if wrap == "saved":
        data = {"config": data, "name": "a", "version": choose(VERSIONS)}
        if data["version"] is None:
            del data["version"]
        if choose([False, True]):
            data[choose(ENVELOPE)] = choose([*VALUES, "text_task", 768])
    elif wrap == "string":
        data = {"config": choose(["lora[r=16]", "seq_bn|prefix_tuning", "lora[r=0]", "nope"])}
    return data


def _loads(data: dict[str, Any]) -> bool:
    try:
        adapter_dsl.load(data)
    except ConfigError:
        return False
    return True


def _positive(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


def _single_methods(config: Any) -> list[Any] | None:
    """The members of a union dict, nested unions flattened (None if it is not one)."""
    if not (isinstance(config, dict) and config.get("architecture") == "union"):
        return None
    if not isinstance(config.get("configs"), list):
        return None
    out = []
    for member in config["configs"]:
        nested = _single_methods(member)
        out.extend([member] if nested is None else nested)
    return out


def _beyond_json_schema(data: dict[str, Any]) -> str | None:
    """Why the schema cannot judge ``data`` as load() does, or None when it can."""
    config = data.get("config", data)
    if isinstance(config, str) and not _loads(data):
        return "a config string inside a saved file is checked by the parser, not the schema"
    if data.get("version") == "adapters.1.0.0" and isinstance(config, dict):
        loras = [m for m in _single_methods(config) or [config] if isinstance(m, dict)]
        if any(m.get("architecture") == "lora" and not _positive(m.get("alpha", 1)) for m in loras):
            # The reference's fix-up for files before 1.1.0 replaces alpha by r, whatever alpha
            # was; the schema describes the current format.
            return "an invalid alpha in a LoRA file older than 1.1.0, which load() replaces"
    members = _single_methods(config)
    if members and len(members) > 1:
        # Members that are fine one by one but clash as a pair (the reference's ConfigUnion
        # rule: same architecture, bottleneck locations, leave_out), at any depth of nesting:
        # JSON Schema cannot compare two array items field by field.
        try:
            configs = [adapter_dsl.load(m) for m in members]
        except ConfigError:
            return None
        try:
            ConfigUnion(*configs)
        except ConfigError:
            return "union members that clash as a pair"
    return None


@pytest.fixture(scope="module")
def validators() -> dict[str, jsonschema.Draft202012Validator]:
    out = {}
    for kind, name in (("config", "adapter-config"), ("saved-adapter", "saved-adapter")):
        schema = json.loads((SCHEMAS / f"{name}.schema.json").read_text(encoding="utf-8"))
        out[kind] = jsonschema.Draft202012Validator(schema)
    return out


def _check(validators: dict[str, jsonschema.Draft202012Validator], data: dict[str, Any]) -> None:
    kind = "saved-adapter" if "config" in data else "config"
    accepted = validators[kind].is_valid(data)
    loaded = _loads(data)
    if accepted != loaded and _beyond_json_schema(data) is None:
        raise AssertionError(
            f"the {kind} schema {'accepts' if accepted else 'refuses'} and load() "
            f"{'accepts' if loaded else 'refuses'}: {json.dumps(data)}"
        )


@st.composite
def generated(draw: st.DrawFn) -> dict[str, Any]:
    return generate(lambda seq: draw(st.sampled_from(list(seq))))


@settings(
    max_examples=400,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(data=generated())
def test_schema_accepts_exactly_what_load_accepts(
    validators: dict[str, jsonschema.Draft202012Validator], data: dict[str, Any]
) -> None:
    _check(validators, data)


# The disagreements found by this generator before the schema was derived from the rules (each
# row was accepted by one side and refused by the other).
LORA = BASES["lora"]
MEASURED: list[tuple[str, dict[str, Any]]] = [
    ("vera_d alone", {"architecture": "lora", "vera_d": 0.1}),
    ("vera_b alone", {**LORA, "vera_b": 0.0}),
    (
        "VeRA with scale",
        {"architecture": "lora", "vera_d": 0.1, "vera_b": 0.0, "composition_mode": "scale", "r": 1},
    ),
    ("ReFT without positions", {**BASES["loreft"], "prefix_positions": 0}),
    ("ReFT without layers", {**BASES["loreft"], "layers": []}),
    ("PHM with mam_adapter init", {**BASES["compacter"], "init_weights": "mam_adapter"}),
    ("integral float for an integer", {**LORA, "r": 16.0}),
    ("integral float in a layer list", {**LORA, "leave_out": [1.0]}),
    ("reduction factor key 01", {**BASES["seq_bn"], "reduction_factor": {"default": 2, "01": 4}}),
    ("activation in capitals", {**BASES["seq_bn"], "non_linearity": "ReLU"}),
    ("activation with a kelvin sign", {**BASES["seq_bn"], "non_linearity": "lea\u212ayrelu"}),
    (
        "nested union",
        {
            "architecture": "union",
            "configs": [BASES["lora"], {"architecture": "union", "configs": [BASES["seq_bn"]]}],
        },
    ),
    ("saved file with a config string", {"config": "lora[r=16]"}),
    ("saved file with a numeric version", {"config": LORA, "version": 5}),
    (
        "old LoRA file without r",
        {"config": {"architecture": "lora", "alpha": 4}, "version": "adapters.1.0.0"},
    ),
    ("schema key that is not a string", {**LORA, "$schema": 5}),
    ("a number beyond a float", {**LORA, "alpha": 10**309}),
    ("a layer index beyond the bound", {**LORA, "leave_out": [2**31]}),
    ("saved file with a text hidden size", {"config": LORA, "hidden_size": "768"}),
]


@pytest.mark.parametrize(("name", "data"), MEASURED, ids=[m[0] for m in MEASURED])
def test_measured_disagreements_are_gone(
    validators: dict[str, jsonschema.Draft202012Validator], name: str, data: dict[str, Any]
) -> None:
    _check(validators, data)


def test_pairwise_union_rules_are_the_one_exception(
    validators: dict[str, jsonschema.Draft202012Validator],
) -> None:
    two_loras = {"architecture": "union", "configs": [LORA, {**LORA, "r": 4}]}
    assert validators["config"].is_valid(two_loras)
    assert not _loads(two_loras)
    assert _beyond_json_schema(two_loras) == "union members that clash as a pair"
    assert (
        _beyond_json_schema({"architecture": "union", "configs": [LORA, BASES["seq_bn"]]}) is None
    )


if __name__ == "__main__":  # measure: how many of 1,000 generated dicts disagree, by kind
    import random
    import sys

    rng = random.Random(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
    found: dict[str, int] = {}
    loaded_count = 0
    vals = {
        k: jsonschema.Draft202012Validator(
            json.loads((SCHEMAS / f"{n}.schema.json").read_text(encoding="utf-8"))
        )
        for k, n in (("config", "adapter-config"), ("saved-adapter", "saved-adapter"))
    }
    for _ in range(int(sys.argv[2]) if len(sys.argv) > 2 else 1000):
        case = generate(lambda seq: rng.choice(list(seq)))
        loaded_count += _loads(case)
        try:
            _check(vals, case)
        except AssertionError as exc:
            key = str(exc).split(":")[0]
            found[key] = found.get(key, 0) + 1
    print(f"{_ + 1} generated, {loaded_count} valid; disagreements: {sum(found.values())} {found}")
