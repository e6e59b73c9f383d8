"""Helpers shared by the LoRA, prefix-, prompt-tuning and ReFT backend tests."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")

FIXTURE = Path(__file__).parents[1] / "fixtures" / "reference" / "param_counts.json"
REFERENCE: dict[str, Any] = json.loads(FIXTURE.read_text())["results"] if FIXTURE.is_file() else {}
KINDS = ["bert", "roberta", "gpt2", "bart", "llama"]


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """Run a test module single-threaded: tiny models only suffer from intra-op thread contention
    (several times slower on a 2-core machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def reference(kind: str, identifier: str) -> dict[str, Any] | None:
    """The reference library's figures for ``identifier`` on the tiny ``kind`` model, if recorded."""
    return REFERENCE.get(kind, {}).get(identifier)


def trainable(model: Any) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def adapter_keys(model: Any, marker: str) -> dict[str, list[int]]:
    """State-dict keys (and shapes) of ``model`` containing ``marker``."""
    return {k: list(v.shape) for k, v in model.state_dict().items() if marker in k}


def perturb(model: Any, markers: tuple[str, ...]) -> None:
    """Move every adapter parameter away from its initial value (so a lost tensor shows)."""
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if any(m in name for m in markers):
                p.add_(torch.randn(p.shape, generator=g).to(p.dtype) * 0.1)


def assert_save_load_round_trip(
    kind: str, identifier: str, markers: tuple[str, ...], tmp: Any
) -> None:
    """Saved with ``save_adapter`` and loaded into a fresh model, the adapter gives equal outputs."""
    from adapter_dsl.backend import add_adapter, load_adapter, save_adapter, set_active
    from tests.backend.conftest import make_model, run

    model = make_model(kind)
    add_adapter(model, "a", identifier, set_active=True)
    perturb(model, markers)
    expected = run(model, kind)
    save_adapter(model, "a", tmp)
    fresh = make_model(kind)  # same base weights
    torch.manual_seed(12345)  # another RNG state: nothing may come from the initialisers
    set_active(fresh, load_adapter(fresh, tmp))
    torch.testing.assert_close(run(fresh, kind), expected, rtol=0, atol=0)


def assert_deep_copy_is_independent(kind: str, identifier: str, markers: tuple[str, ...]) -> None:
    """A deep copy computes the same outputs, and changing the copy's adapter leaves the original."""
    import copy

    from adapter_dsl.backend import add_adapter
    from tests.backend.conftest import make_model, model_inputs

    model = make_model(kind)
    add_adapter(model, "a", identifier, set_active=True)
    inputs = model_inputs(kind)
    inputs["attention_mask"][1, :2] = 0  # left padding: masks must reach the copy's hooks
    expected = model(**inputs).last_hidden_state
    clone = copy.deepcopy(model)
    torch.testing.assert_close(clone(**inputs).last_hidden_state, expected, rtol=0, atol=0)
    perturb(clone, markers)
    assert (clone(**inputs).last_hidden_state - expected).abs().max() > 1e-4
    torch.testing.assert_close(model(**inputs).last_hidden_state, expected, rtol=0, atol=0)
