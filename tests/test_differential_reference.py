"""Random multi-field configs, fusion configs and setups against what the reference recorded.

The cases (tests/fixtures/reference/differential_corpus.json, written by
scripts/reference/make_differential_corpus.py) set several fields at once. Every result the
reference returned must come back here exactly, JSON types included, with one deliberate
normalisation (FLOAT_FIELDS); every refusal here of an input the reference accepts must be one
of the documented deliberate refusals (REFUSED), and every input it rejects is rejected here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import adapter_dsl
from adapter_dsl import ConfigError, load, load_fusion_config, load_setup
from adapter_dsl.composition import Average
from tests.test_compat_corpus import _without_extensions
from tests.test_composition_reference import _build, _same

CORPUS: dict[str, Any] = json.loads(
    (Path(__file__).parent / "fixtures" / "reference" / "differential_corpus.json").read_text()
)

# Fields declared float: the reference's dataclasses keep an int given there (``dropout=0``
# stays ``0``); here it is the float (``0.0``), and it means the same everywhere except where
# the reference tests ``isinstance(value, float)``: ``scaling=2`` fails there when the adapter
# is added, and int ``vera_d``/``vera_b`` silently build a plain LoRA (README, "Where we differ").
FLOAT_FIELDS = frozenset({"dropout", "stochastic_depth", "scaling", "vera_d", "vera_b"})
FUSION_FLOAT_FIELDS = frozenset({"dropout_prob"})
# Fields declared int: an integral float (``r=8.0``) is that int here, kept a float there (README).
INT_FIELDS = frozenset(
    {"r", "prefix_length", "prompt_length", "bottleneck_size", "init_weights_seed", "phm_dim"}
)

# Accepted by the reference, refused here: each fails later there, or adds nothing.
REFUSED: dict[str, str] = {
    "needs a numeric inv_adapter_reduction_factor": "the reference fails building the block",
    "VeRA needs both vera_d and vera_b": "one of them None: the reference fails at forward",
    "invalid value for 'init_weights'": "a LoRA/IA³ init on a bottleneck (or the reverse) "
    "raises when the reference adds the adapter",
    "learns one vector per module, so r must be 1": "IA³ with r > 1 fails at forward there",
    "needs a prompt_init_text": "from_string without text fails at add there",
    "the adapter is placed nowhere": "every location off: the reference adds nothing",
    "the intervention touches no position": "ReFT with no position does nothing there",
    "cannot initialise PHM layers": "the reference raises when it builds the PHM layer",
    "needs original_ln_before=True": "post_add without the original LN fails at forward there",
    "does not support dropout": "IA³ ignores dropout in the reference",
    "needs composition_mode='add'": "DoRA or VeRA on IA³: the reference ignores them",
    "cannot initialise an IA³": "the reference raises on these inits for IA³",
    "both wrap the same linear layers": "lora|mtl_lora fails when the reference adds it",
    "the combination has no effect": "the reference adds an adapter that does nothing",
    "MTL-LoRA has no DoRA variant": "the reference fails adding it (KeyError 'w_o')",
    "should be a valid boolean": "1/0 or a string for a flag: the reference takes its truth "
    "value (value_initialized='False' is true there)",
    "should be a valid integer": "True for a count is 1 to the reference",
    # Python literals and bounds: the reference passes them through, and they fail later or
    # mean nothing (a tuple is refused with the hint to write the list in brackets).
    "unexpected '('": "a Python tuple such as leave_out=(0, 1): write [0, 1]",
    "must be in [0, 1)": "dropout=1.0 drops everything",
    "must be greater than 0": "a negative reduction factor has no bottleneck",
    "greater than or equal to 1": "r=0 or prompt_length=0 builds nothing usable",
    "greater than or equal to 0": "a negative layer index in leave_out",
    "is listed twice": "a layer listed twice in leave_out",
    "is neither 'learned' nor 'channel'": "a number in quotes fails at add there",
    "NoneType is not a number": "dropout=None fails building the dropout there",
}


def _number_as_here(key: str, value: Any, floats: frozenset[str]) -> Any:
    if key in floats and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if key in INT_FIELDS and isinstance(value, float) and value.is_integer():
        return int(value)
    return _as_here(value, floats)


def _as_here(value: Any, floats: frozenset[str]) -> Any:
    """The reference's dict with its numbers in the type the field declares."""
    if isinstance(value, dict):
        return {k: _number_as_here(k, v, floats) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_here(v, floats) for v in value]
    return value


def _typed(value: Any) -> str:
    # JSON text tells 0 from 0.0 and True from 1, which == on Python values does not.
    return json.dumps(value, sort_keys=True)


def _assert_deliberate(error: ConfigError) -> None:
    for problem in error.problems:
        assert any(fragment in problem.message for fragment in REFUSED), problem.message


def _load(case: dict[str, Any]) -> Any:
    if case["kind"] == "kwargs":
        spec = case["input"]
        return adapter_dsl.AdapterConfig.load(spec["name"], **spec["kwargs"])
    return load(case["input"])


@pytest.mark.parametrize("case", CORPUS["configs"], ids=lambda c: c["id"])
def test_configs_as_the_reference_loads_them(case: dict[str, Any]) -> None:
    if not case["ok"]:
        with pytest.raises(ConfigError):
            _load(case)
        return
    try:
        config = _load(case)
    except ConfigError as exc:
        _assert_deliberate(exc)
        return
    expected = _as_here(case["to_dict"], FLOAT_FIELDS)
    # Fields the reference holds as class attributes are left out, as in test_compat_corpus.
    assert _typed(_without_extensions(config.to_dict())) == _typed(expected)


@pytest.mark.parametrize(
    "row", CORPUS["fusion"], ids=lambda r: json.dumps([r["spec"], r["kwargs"]])
)
def test_fusion_configs_as_the_reference_loads_them(row: dict[str, Any]) -> None:
    if not row["ok"]:
        with pytest.raises(ConfigError):
            load_fusion_config(row["spec"], **row["kwargs"])
        return
    try:
        config = load_fusion_config(row["spec"], **row["kwargs"])
    except ConfigError as exc:
        _assert_deliberate(exc)
        return
    assert _typed(config.to_dict()) == _typed(_as_here(row["to_dict"], FUSION_FLOAT_FIELDS))


@pytest.mark.parametrize("row", CORPUS["setups"], ids=lambda r: r["expr"])
def test_setups_as_the_reference_builds_them(row: dict[str, Any]) -> None:
    if not row["valid"]:
        with pytest.raises(ConfigError):
            _build(row["expr"])
        return
    try:
        block = _build(row["expr"])
    except ConfigError as exc:
        # Fuse("a", "a") and Parallel("a", "a") run one adapter twice (README).
        assert all("twice" in p.message for p in exc.problems), str(exc)
        return
    assert _same(block.to_dict(), row["to_dict"])
    assert (block.first(), block.last()) == (row["first"], row["last"])
    assert sorted(block.flatten()) == row["flatten"]
    assert block.parallel_channels == row["parallel_channels"]
    again = load_setup(row["to_dict"])
    if isinstance(block, Average):
        assert again.weights == pytest.approx(block.weights)  # type: ignore[attr-defined]
    else:
        assert again == block


def test_the_corpus_covers_every_kind() -> None:
    kinds = {c["kind"] for c in CORPUS["configs"]}
    assert kinds == {"string", "dict", "partial", "kwargs", "format", "union", "union_dict"}
    assert sum(c["ok"] for c in CORPUS["configs"]) > len(CORPUS["configs"]) // 2
    assert any(r["valid"] for r in CORPUS["setups"])


def test_mtl_lora_with_dora_is_refused_at_the_flag() -> None:
    # The reference accepts the config and then fails in add_adapter (KeyError 'w_o').
    with pytest.raises(ConfigError) as info:
        load("mtl_lora[r=4, use_dora=True]")
    (problem,) = info.value.problems
    assert problem.location.pointer == "/use_dora"
    assert problem.message == "MTL-LoRA has no DoRA variant (use_dora=True)"
    assert problem.suggestion == "drop use_dora, or use dora[...]"
    assert load("mtl_lora[use_dora=False]").to_dict()["use_dora"] is False


def test_ints_in_float_fields_are_floats_here() -> None:
    config = load("lora[vera_d=1, vera_b=0, dropout=0]")
    assert _typed([config.vera_d, config.vera_b, config.dropout]) == "[1.0, 0.0, 0.0]"
    assert load("seq_bn[scaling=2]").to_dict()["scaling"] == 2.0


def test_a_python_tuple_is_refused_with_the_list_to_write() -> None:
    # The reference's literal parser takes (0, 1) as the list [0, 1].
    with pytest.raises(ConfigError) as info:
        load("seq_bn[leave_out=(0, 1)]")
    (problem,) = info.value.problems
    assert problem.location.span == (17, 18)
    assert "write the value as a literal, e.g. [0, 1, 2]" in str(problem.suggestion)
