"""The adapted model as a Python object: deep copies are independent, whole-model pickles work."""

from __future__ import annotations

import copy
import io
from typing import Any

import pytest

from adapter_dsl.backend import (
    add_adapter,
    delete_adapter,
    list_adapters,
    merge_adapter,
    unmerge_adapter,
)
from adapter_dsl.backend.state import Ledger, peek_state
from tests.backend.conftest import make_model, run

torch = pytest.importorskip("torch")

# One config per backend family and hook kind (wrappers, residual sites, invertible adapters,
# shared parameters, prefix pools, prompt embeddings, parametrised ReFT units).
CONFIGS = {
    "bert": [
        "lora",
        "dora",
        "ia3",
        "vera",
        "seq_bn",
        "double_seq_bn_inv",
        "par_bn",
        "compacter[phm_dim=2, reduction_factor=4]",
        "prefix_tuning",
        "prompt_tuning",
        "loreft",
        "mam",
        "unipelt",
    ],
    "llama": ["lora", "seq_bn_inv", "prefix_tuning", "loreft", "direft"],
}
CASES = [(kind, cfg) for kind, cfgs in CONFIGS.items() for cfg in cfgs]


def _adapted(kind: str, config: str) -> Any:
    model = make_model(kind)
    add_adapter(model, "a", config, set_active=True)
    with torch.no_grad():
        # Identity-initialised adapters (zeros, IA3's ones) would hide one that does not act.
        for p in peek_state(model).adapters["a"].parameters():  # type: ignore[union-attr]
            p.add_(torch.rand_like(p) * 0.2 - 0.1)
    return model


def _close(a: Any, b: Any, atol: float = 1e-6) -> bool:
    """Same shape (prompt tuning lengthens the sequence) and values within ``atol``."""
    return bool(a.shape == b.shape and torch.allclose(a, b, atol=atol))


def _pickled(model: Any) -> Any:
    buffer = io.BytesIO()
    torch.save(model, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=False)


@pytest.mark.parametrize(("kind", "config"), CASES)
def test_deepcopy_is_independent(kind: str, config: str) -> None:
    model = _adapted(kind, config)
    bare = run(make_model(kind), kind)
    adapted = run(model, kind)
    assert not _close(adapted, bare)
    clone = copy.deepcopy(model)
    assert torch.equal(run(clone, kind), adapted)
    delete_adapter(clone, "a")
    assert list_adapters(clone) == []
    assert _close(run(clone, kind), bare)
    # The original keeps its adapter, its outputs and its own ability to delete it.
    assert list_adapters(model) == ["a"]
    assert torch.equal(run(model, kind), adapted)
    delete_adapter(model, "a")
    assert _close(run(model, kind), bare)


@pytest.mark.parametrize(("kind", "config"), CASES)
def test_whole_model_pickle(kind: str, config: str) -> None:
    model = _adapted(kind, config)
    adapted = run(model, kind)
    loaded = _pickled(model)
    assert list_adapters(loaded) == ["a"]
    assert torch.equal(run(loaded, kind), adapted)
    delete_adapter(loaded, "a")
    assert _close(run(loaded, kind), run(make_model(kind), kind))
    assert torch.equal(run(model, kind), adapted)


@pytest.mark.parametrize("config", ["lora", "dora", "ia3", "vera"])
def test_pickled_model_still_merges(config: str) -> None:
    loaded = _pickled(_adapted("bert", config))
    adapted = run(loaded, "bert")
    merge_adapter(loaded, "a")
    assert torch.allclose(run(loaded, "bert"), adapted, atol=1e-5)
    unmerge_adapter(loaded, "a")  # merging deactivated it: the bare model's outputs are back
    assert torch.allclose(run(loaded, "bert"), run(make_model("bert"), "bert"), atol=1e-6)


def test_ledger_refuses_closures() -> None:
    ledger = Ledger()
    with pytest.raises(TypeError, match="local function"):
        ledger.on_undo(lambda: None)
