"""Blocks and fusion configs against what the reference recorded (scripts/reference/
make_composition_fixtures.py → tests/fixtures/reference/composition_corpus.json)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import adapter_dsl
from adapter_dsl import ConfigError, load_fusion_config, load_setup
from adapter_dsl.composition import BLOCKS, AdapterCompositionBlock, Average

CORPUS = json.loads(
    (Path(__file__).parent / "fixtures" / "reference" / "composition_corpus.json").read_text()
)

# Accepted by the reference, refused here on purpose (each is meaningless or fails later there).
STRICTER = {
    "Stack()": "Stack has no adapters",
    'Fuse("a", "a")': "Fuse fuses a twice",
    'Parallel("a", "a")': "Parallel runs in parallel a twice",
    'Split("a", "b", splits=0)': "splits must be positive",
    'BatchSplit("a", "b", batch_sizes=[2, -1])': "batch_sizes must be positive",
}

# The reference saves no Fuse name and saves weights without normalize_weights=False.
SAVED_WITH_KWARGS = {
    'Fuse("a", Stack("b", "x"), name="custom")': {"name": "custom"},
    'Average("a", "b", weights=[2, 2], normalize_weights=False)': {
        "weights": [2.0, 2.0],
        "normalize_weights": False,
    },
}


def _same(ours: Any, theirs: Any) -> bool:
    # Normalised weights: equal up to rounding (ours are kept as given when they sum to 1).
    if isinstance(theirs, float):
        return ours == pytest.approx(theirs, rel=1e-12, abs=1e-15)
    if isinstance(theirs, dict):
        return (
            isinstance(ours, dict)
            and ours.keys() == theirs.keys()
            and all(_same(ours[k], theirs[k]) for k in theirs)
        )
    if isinstance(theirs, list):
        return (
            isinstance(ours, list)
            and len(ours) == len(theirs)
            and all(_same(a, b) for a, b in zip(ours, theirs, strict=True))
        )
    return bool(ours == theirs) and type(ours) is type(theirs)


def _build(expr: str) -> AdapterCompositionBlock:
    block = eval(expr, dict(BLOCKS))
    assert isinstance(block, AdapterCompositionBlock)
    return block


@pytest.mark.parametrize("row", CORPUS["setups"], ids=lambda r: r["expr"])
def test_setups_as_the_reference_builds_and_validates_them(row: dict[str, Any]) -> None:
    expr = row["expr"]
    if expr in STRICTER:
        assert row["valid"], "the reference accepts it"
        with pytest.raises(ConfigError, match=STRICTER[expr].replace("(", r"\(")):
            _build(expr)
        return
    if not row["valid"]:
        with pytest.raises(ConfigError) as info:
            _build(expr)
        reason = row["error"]["message"]
        codes = {p.code for p in info.value.problems}
        assert codes & ({"too_deep"} if "too deep" in reason else {"invalid_nesting"})
        return
    block = _build(expr)
    if expr in SAVED_WITH_KWARGS:
        # The reference loses these on a round trip through its own from_dict; adapter_dsl
        # saves them as kwargs, which the reference's from_dict accepts too.
        assert block.to_dict() == {**row["to_dict"], "kwargs": SAVED_WITH_KWARGS[expr]}
    else:
        assert _same(block.to_dict(), row["to_dict"])
    assert block.first() == row["first"]
    assert block.last() == row["last"]
    assert sorted(block.flatten()) == row["flatten"]
    assert block.parallel_channels == row["parallel_channels"]
    if "name" in row:
        assert block.name == row["name"]  # type: ignore[attr-defined]
    if expr not in SAVED_WITH_KWARGS:
        # What the reference wrote, adapter_dsl reads back to the same block.
        again = load_setup(row["to_dict"])
        if isinstance(block, Average):
            assert again.weights == pytest.approx(block.weights)  # type: ignore[attr-defined]
        else:
            assert again == block


@pytest.mark.parametrize("row", CORPUS["lists"], ids=lambda r: json.dumps(r["list"]))
def test_deprecated_lists_as_the_reference_reads_them(row: dict[str, Any]) -> None:
    assert load_setup(row["list"]).to_dict() == row["to_dict"]


@pytest.mark.parametrize(
    "row", CORPUS["fusion"], ids=lambda r: json.dumps([r["spec"], r["kwargs"]])
)
def test_fusion_configs_as_the_reference_loads_them(row: dict[str, Any]) -> None:
    if not row["ok"]:
        with pytest.raises(ConfigError):
            load_fusion_config(row["spec"], **row["kwargs"])
        return
    config = load_fusion_config(row["spec"], **row["kwargs"])
    assert config.to_dict() == row["to_dict"]
    assert (
        adapter_dsl.AdapterFusionConfig.load(row["spec"], **row["kwargs"]).to_dict()
        == row["to_dict"]
    )
    # Round trips: the dict and the canonical string give the same config back.
    assert load_fusion_config(config.to_dict()) == config
    assert load_fusion_config(adapter_dsl.dumps(config)) == config
