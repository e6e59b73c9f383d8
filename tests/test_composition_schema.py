"""The schemas of adapter_setup.json and adapter_fusion_config.json agree with the loaders."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from adapter_dsl import ConfigError, load_fusion_config, load_setup
from adapter_dsl.composition import BLOCKS
from adapter_dsl.schema import build_schema

ROOT = Path(__file__).resolve().parent.parent
CORPUS = json.loads(
    (ROOT / "tests" / "fixtures" / "reference" / "composition_corpus.json").read_text()
)
SETUP = jsonschema.Draft202012Validator(build_schema("adapter-setup"))
FUSION = jsonschema.Draft202012Validator(build_schema("fusion-config"))


def _setup_file(setup: Any) -> dict[str, Any]:
    return {"adapter_setup": setup, "head_setup": None, "version": "adapters.1.3.0"}


def _loads(spec: Any) -> bool:
    try:
        load_setup(spec)
    except ConfigError:
        return False
    return True


@pytest.mark.parametrize("row", CORPUS["setups"], ids=lambda r: r["expr"])
def test_setup_schema_agrees_with_load_setup_on_the_reference_corpus(row: dict[str, Any]) -> None:
    data = _setup_file(row["to_dict"])
    ok = SETUP.is_valid(data)
    loads = _loads(data)
    if "too deep" in row.get("error", {}).get("message", ""):
        # The depth rule is load_setup's: the schema checks the nesting table only.
        assert ok and not loads
    elif row["expr"].startswith(("Split(", "BatchSplit(")) and "=0" in row["expr"]:
        assert not ok and not loads
    elif 'Fuse("a", "a")' in row["expr"] or 'Parallel("a", "a")' in row["expr"]:
        assert ok and not loads  # repeated children: load_setup's rule
    else:
        assert ok == loads, (ok, loads)


def test_setup_schema_rejects_what_load_setup_rejects() -> None:
    good = {"type": "Stack", "children": [{"type": "single", "children": ["a"]}]}
    assert SETUP.is_valid(_setup_file(good))
    for bad in [
        {"type": "Stak", "children": [{"type": "single", "children": ["a"]}]},
        {"type": "Split", "children": [{"type": "single", "children": ["a"]}]},
        {**good, "kwargs": {"splits": [1]}},
        {"type": "Average", "children": good["children"], "kwargs": {"weight": [1]}},
        {"type": "Stack", "children": []},
        {"type": "Stack", "children": ["a"]},
    ]:
        assert not SETUP.is_valid(_setup_file(bad)), bad
        assert not _loads(bad), bad


def test_every_block_has_a_definition() -> None:
    defs = build_schema("adapter-setup")["$defs"]
    assert set(BLOCKS) | {"single", "setup"} == set(defs)


@pytest.mark.parametrize(
    "row", CORPUS["fusion"], ids=lambda r: json.dumps([r["spec"], r["kwargs"]])
)
def test_fusion_schema_accepts_every_reference_fusion_config(row: dict[str, Any]) -> None:
    if row["ok"]:
        saved = {
            "config": row["to_dict"],
            "model_type": "bert",
            "name": "a,b",
            "version": "adapters.1.3.0",
        }
        assert FUSION.is_valid(saved)
        assert load_fusion_config(saved).to_dict() == row["to_dict"]


def test_fusion_schema_rejects_what_the_loader_rejects() -> None:
    good = load_fusion_config("dynamic").to_dict()
    for bad in [
        {**good, "dropout_prob": 1.5},
        {**good, "temperature": 1},
        {**good, "tempreature": True},
        {k: v for k, v in good.items() if k != "key"},
    ]:
        assert not FUSION.is_valid({"config": bad})
        with pytest.raises(ConfigError):
            load_fusion_config({"config": bad})
