"""Trainable parameter counts of random multi-field configs against the reference's.

The ``counts`` part of tests/fixtures/reference/differential_corpus.json (written by
scripts/reference/make_differential_corpus.py): for each tiny model and config string, what
adapters 1.3.0 counted after add_adapter + train_adapter, and whether its forward pass ran.
Where the reference adds parameters and runs, the same count here; where it adds none, or
fails at any step, a ConfigError before the model changes, or an adapter that works.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from adapter_dsl import ConfigError
from tests.backend.conftest import make_model

torch = pytest.importorskip("torch")
backend = pytest.importorskip("adapter_dsl.backend")

COUNTS = json.loads(
    (
        Path(__file__).resolve().parents[1] / "fixtures" / "reference" / "differential_corpus.json"
    ).read_text()
)["counts"]
CASES = [
    pytest.param(model, spec, entry, id=f"{model}-{spec}")
    for model, results in COUNTS["results"].items()
    for spec, entry in results.items()
]


@pytest.mark.parametrize(("kind", "spec", "reference"), CASES)
def test_trainable_count_as_the_reference(kind: str, spec: str, reference: dict[str, Any]) -> None:
    model = make_model(kind)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    works_there = "error" not in reference and reference["trainable"] > 0
    try:
        backend.add_adapter(model, "a", spec)
    except ConfigError as exc:
        assert not works_there, f"refused a config the reference runs: {exc}"
        after = model.state_dict()
        assert after.keys() == before.keys()
        assert all(torch.equal(after[k], before[k]) for k in before)
        return
    backend.train_adapter(model, "a")
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert trainable > 0, "an adapter without parameters is refused, not added"
    if "trainable" in reference and reference["trainable"] > 0:
        assert trainable == reference["trainable"]


def test_the_sample_has_working_and_failing_cases() -> None:
    entries = [e for results in COUNTS["results"].values() for e in results.values()]
    assert sum("error" not in e and e["trainable"] > 0 for e in entries) > len(entries) // 2
    assert any("error" in e for e in entries)
