"""Every config the reference fixtures cover × every architecture: build, train, count.

For each (config, model) pair recorded from adapters 1.3.0 (tests/fixtures/reference/
param_counts.json): where the reference works, the adapter builds here in milliseconds, a
forward and backward pass reaches only adapter parameters, and the trainable parameter count
equals the reference's. Where the reference fails (at add, or later at forward), we either
refuse with a ConfigError before touching the model, or build an adapter that works.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from adapter_dsl import ConfigError
from tests.backend.conftest import make_model, model_inputs

torch = pytest.importorskip("torch")
backend = pytest.importorskip("adapter_dsl.backend")

COUNTS = json.loads(
    (
        Path(__file__).resolve().parent.parent / "fixtures" / "reference" / "param_counts.json"
    ).read_text()
)
CASES = [
    pytest.param(model, spec, COUNTS["results"][model][spec], id=f"{model}-{spec}")
    for model in COUNTS["models"]
    for spec in COUNTS["identifiers"]
]


def _train_step(model: Any, kind: str) -> None:
    model.train()
    out = model(**model_inputs(kind)).last_hidden_state
    out.float().pow(2).mean().backward()


@pytest.mark.parametrize(("kind", "spec", "reference"), CASES)
def test_build_train_and_count(kind: str, spec: str, reference: dict[str, Any]) -> None:
    model = make_model(kind)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    reference_failed = "error" in reference
    try:
        backend.add_adapter(model, "a", spec)
    except ConfigError as exc:
        # Refusing is right only where the reference cannot run the pair either, and it must
        # happen before anything changes.
        assert reference_failed, f"refused a pair the reference runs: {exc}"
        after = model.state_dict()
        assert after.keys() == before.keys()
        assert all(torch.equal(after[k], before[k]) for k in before)
        return
    backend.train_adapter(model, "a")
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    assert trainable, "the adapter has no trainable parameters"
    if not reference_failed or "trainable" in reference:
        assert sum(p.numel() for p in trainable.values()) == reference["trainable"]
    _train_step(model, kind)
    for name, param in model.named_parameters():
        if param.requires_grad:
            continue
        assert param.grad is None, f"a frozen parameter received a gradient: {name}"
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in trainable.values())
