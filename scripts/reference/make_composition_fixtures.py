"""Record the reference's composition blocks and AdapterFusion configs for the language tests.

Run from the repository root, inside the reference virtual environment (see README.md here):

    .venv-ref/bin/python scripts/reference/make_composition_fixtures.py

It writes ``tests/fixtures/reference/composition_corpus.json`` (a few seconds, no model, no
download, deterministic):

* ``setups``: Python expressions building blocks (``Stack("a", Fuse("b", "c"))``) evaluated
  with the reference's classes, with ``to_dict()``, ``first()``, ``last()``, ``flatten()``,
  ``parallel_channels``, the Fuse name, and whether ``parse_composition`` (the validation that
  ``set_active_adapters`` runs) accepts the block or its exception;
* ``lists``: the deprecated list forms and what ``parse_composition`` makes of them;
* ``fusion``: ``AdapterFusionConfig.load(spec, **kwargs)`` for identifiers, config strings and
  dicts, with ``to_dict()`` or the exception.
"""

from __future__ import annotations

import itertools
import json
import re
import warnings
from pathlib import Path
from typing import Any

import adapters
from adapters import AdapterFusionConfig
from adapters.composition import (
    AdapterCompositionBlock,
    Average,
    BatchSplit,
    Fuse,
    MultiTask,
    Parallel,
    Split,
    Stack,
    parse_composition,
)

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "fixtures" / "reference" / "composition_corpus.json"
NAMESPACE = {
    "Stack": Stack,
    "Fuse": Fuse,
    "Split": Split,
    "BatchSplit": BatchSplit,
    "Parallel": Parallel,
    "Average": Average,
    "MultiTask": MultiTask,
}

# One instance of each kind, to put inside every parent (the nesting table).
_KINDS = {
    "name": '"x"',
    "Stack": 'Stack("x", "y")',
    "Fuse": 'Fuse("x", "y")',
    "Split": 'Split("x", "y", splits=[1, 1])',
    "BatchSplit": 'BatchSplit("x", "y", batch_sizes=[1, 1])',
    "Parallel": 'Parallel("x", "y")',
    "Average": 'Average("x", "y")',
    "MultiTask": 'MultiTask("x", "y")',
}
_PARENTS = {
    "Stack": 'Stack("a", {})',
    "Fuse": 'Fuse("a", {})',
    "Split": 'Split("a", {}, splits=[2, 2])',
    "BatchSplit": 'BatchSplit("a", {}, batch_sizes=[2, 2])',
    "Parallel": 'Parallel("a", {})',
    "Average": 'Average("a", {})',
    "MultiTask": 'MultiTask("a", {})',
}

SETUPS = [
    *(
        parent.format(child)
        for parent, child in itertools.product(_PARENTS.values(), _KINDS.values())
    ),
    # Depth: below level 1 only Stack or a name.
    'Stack("a", Fuse("b", Stack("c", "d")))',
    'Stack("a", Fuse("b", Stack("c", Fuse("d", "e"))))',
    'Parallel(Stack("a", BatchSplit("b", "c", batch_sizes=1)), "d")',
    'Parallel(Stack("a", "b"), BatchSplit(Stack("c", "d"), "e", batch_sizes=[1, 1]))',
    'Average(Split("a", Stack("b", "c"), splits=[1, 2]), "d")',
    'Split(Split("a", Split("b", "c", splits=1), splits=[1, 2]), "d", splits=[3, 1])',
    'Stack("a", Parallel("b", Stack("c", "d")), Fuse("e", Stack("f", "g")))',
    # Keyword arguments as the reference stores them.
    'Split("a", "b", splits=3)',
    'Split("a", "b", "c", splits=[1, 2, 3])',
    'BatchSplit("a", "b", batch_sizes=4)',
    'Average("a", "b", "c")',
    'Average("a", "b", weights=[1, 3])',
    'Average("a", "b", weights=[0.3, 0.7])',
    'Average("a", "b", "c", weights=[0.1, 0.2, 0.4])',
    'Average("a", "b", weights=[2, 2], normalize_weights=False)',
    'Fuse("a", "b", "c")',
    'Fuse("a", Stack("b", "x"), name="custom")',
    'Fuse(Stack("a", "b"), Stack("c", "d"))',
    'MultiTask("a", "b", "c")',
    'Parallel("a", "b", "c", "d")',
    'Stack("a")',
    'Stack("a", "b", "c")',
    'Stack(Parallel("a", "b"), "c")',
    'Stack("a", Parallel("b", "c", "d"))',
    # The reference accepts these; adapter_dsl refuses them (see the tests).
    "Stack()",
    'Fuse("a", "a")',
    'Parallel("a", "a")',
    'Split("a", "b", splits=0)',
    'BatchSplit("a", "b", batch_sizes=[2, -1])',
    'Average("a", "a")',
]

LISTS: list[Any] = [
    ["a"],
    ["a", "b"],
    ["a", ["b", "c"]],
    [["a", "b"], "c"],
    ["a", ["b", ["c", "d"]]],
]

FUSION: list[tuple[Any, dict[str, Any]]] = [
    ("dynamic", {}),
    ("static", {}),
    ("dynamic", {"temperature": True}),
    ("static", {"temperature": True}),
    ("dynamic", {"residual_before": True, "dropout_prob": 0.1}),
    ("dynamic", {"dropout_prob": None}),
    ("static", {"value": True, "value_initialized": True}),
    ("dynamic[temperature=True]", {}),
    ("static[residual_before=True, dropout_prob=0.1]", {}),
    ("dynamic[query_before_ln=True, value_before_softmax=False]", {}),
    ("dinamic", {}),
    ("dynamic|static", {}),
    (
        {
            "key": True,
            "query": True,
            "value": False,
            "query_before_ln": True,
            "regularization": False,
            "residual_before": False,
            "temperature": True,
            "value_before_softmax": True,
            "value_initialized": False,
            "dropout_prob": 0.2,
        },
        {},
    ),
    ({"key": True}, {}),
]

_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def _error(exc: BaseException) -> dict[str, Any]:
    return {"ok": False, "error": type(exc).__name__, "message": _ADDRESS.sub("", str(exc))}


def _describe(block: AdapterCompositionBlock) -> dict[str, Any]:
    out: dict[str, Any] = {"to_dict": block.to_dict()}
    if len(block) == 0:
        return out
    out["first"] = block.first()
    out["last"] = block.last()
    out["flatten"] = sorted(block.flatten())
    out["parallel_channels"] = block.parallel_channels
    if isinstance(block, Fuse):
        out["name"] = block.name
    return out


def setups() -> list[dict[str, Any]]:
    rows = []
    for expr in SETUPS:
        block = eval(expr, dict(NAMESPACE))
        row: dict[str, Any] = {"expr": expr, **_describe(block)}
        try:
            parse_composition(block)
            row["valid"] = True
        except (ValueError, TypeError) as exc:
            row["valid"] = False
            row["error"] = _error(exc)
        rows.append(row)
    return rows


def lists() -> list[dict[str, Any]]:
    rows = []
    for spec in LISTS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            block = parse_composition(spec)
        rows.append({"list": spec, "to_dict": block.to_dict()})
    return rows


def fusion() -> list[dict[str, Any]]:
    rows = []
    for spec, kwargs in FUSION:
        row: dict[str, Any] = {"spec": spec, "kwargs": kwargs}
        try:
            config = AdapterFusionConfig.load(spec, **kwargs)
            row.update(ok=True, to_dict=config.to_dict())
        except Exception as exc:  # recorded, whatever it is
            row.update(_error(exc))
        rows.append(row)
    return rows


def main() -> None:
    data = {
        "versions": {"adapters": adapters.__version__},
        "setups": setups(),
        "lists": lists(),
        "fusion": fusion(),
    }
    OUT.write_text(json.dumps(data, indent=1) + "\n")
    print(
        f"wrote {OUT.relative_to(ROOT)}: {len(data['setups'])} setups, {len(data['fusion'])} fusion configs"
    )


if __name__ == "__main__":
    main()
