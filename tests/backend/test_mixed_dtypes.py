"""A config ``dtype`` that differs from the model's: the adapter casts at its boundary.

(The reference requires the two to match; its forward pass fails otherwise.)
"""

from __future__ import annotations

from typing import Any

import pytest

from adapter_dsl.backend import add_adapter, merge_adapter
from adapter_dsl.backend.state import peek_state
from tests.backend.conftest import make_model, run

torch = pytest.importorskip("torch")

CONFIGS = [
    "lora[init_weights='bert']",
    "dora[init_weights='bert']",
    "ia3",
    "vera[vera_d=0.5, vera_b=0.5]",
    "lora[init_weights='bert', use_gating=True]",
    "loreft",
]
KINDS = {"bert": torch.float32, "gpt2": torch.float32, "llama": torch.bfloat16}


def _with_dtype(config: str, dtype: str) -> str:
    return (
        config.replace("]", f", dtype='{dtype}']")
        if "[" in config
        else f"{config}[dtype='{dtype}']"
    )


def _pair(kind: str, config: str, dtype: str) -> tuple[Any, Any]:
    """The model with the adapter in ``dtype``, and the same adapter in the model's dtype."""
    model_dtype = KINDS[kind]
    mixed = make_model(kind).to(model_dtype)
    add_adapter(mixed, "a", _with_dtype(config, dtype), set_active=True)
    same = make_model(kind).to(model_dtype)
    add_adapter(same, "a", config, set_active=True)
    with torch.no_grad():
        for (n1, p1), (n2, p2) in zip(
            mixed.named_parameters(), same.named_parameters(), strict=True
        ):
            assert n1 == n2
            if "loras" in n1 or "refts" in n1:  # away from identity initialisations
                p1.add_(torch.rand_like(p1) * 0.1)
            p2.copy_(p1.to(p2.dtype))
    return mixed, same


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_adapter_dtype_differs_from_model(kind: str, config: str) -> None:
    if kind == "gpt2" and ("dora" in config or "vera" in config):
        pytest.skip("not supported on a fused q/k/v projection")
    if kind == "llama" and "vera" in config:
        pytest.skip("Vera needs projections of one shape (llama's k/v are narrower)")
    other = "float32" if KINDS[kind] == torch.bfloat16 else "bfloat16"
    mixed, same = _pair(kind, config, other)
    state = peek_state(mixed)
    assert state is not None
    assert {p.dtype for p in state.adapters["a"].parameters()} >= {getattr(torch, other)}
    out = run(mixed, kind)
    assert out.dtype == KINDS[kind]
    assert torch.allclose(out.float(), run(same, kind).float(), atol=0.1)
    out.float().square().mean().backward()
    assert all(p.grad is not None for p in state.adapters["a"].parameters() if p.requires_grad)


@pytest.mark.parametrize("config", CONFIGS[:4])
def test_mixed_dtype_adapter_merges(config: str) -> None:
    mixed, _ = _pair("bert", config, "bfloat16")
    with torch.no_grad():
        out = run(mixed, "bert")
        merge_adapter(mixed, "a")  # also deactivates it: the weights now hold it
        assert torch.allclose(run(mixed, "bert"), out, atol=1e-2)
