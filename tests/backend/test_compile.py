"""torch.compile traces every method without a graph break, and compiled ≡ eager.

``fullgraph=True`` makes any graph break an error. The ``eager`` backend runs what dynamo
traced without generating kernels, which keeps the test fast; graph breaks and tracing are the
same for every backend.
"""

from __future__ import annotations

from typing import Any

import pytest

from adapter_dsl.backend import add_adapter
from adapter_dsl.backend.state import peek_state
from tests.backend.conftest import make_model, model_inputs

torch = pytest.importorskip("torch")

# Every method, in few models: unions put several hook kinds into one compiled forward (LoRA-family
# wrappers, bottleneck sites, invertible adapters, shared parameters, prefix routing, prompt
# embeddings, ReFT interventions, gates).
METHODS = {
    "bert": [
        "lora|seq_bn|loreft",
        "dora|double_seq_bn_inv",
        "vera|prefix_tuning_flat",
        "ia3|compacter[phm_dim=2, reduction_factor=4]",
        "unipelt",
        "mam",
        "prompt_tuning",
    ],
    "llama": ["unipelt", "dora|seq_bn_inv|direft", "ia3|noreft"],
}
CASES = [(kind, method) for kind, methods in METHODS.items() for method in methods]


def _adapted(kind: str, config: str) -> Any:
    model = make_model(kind)
    add_adapter(model, "a", config, set_active=True)
    with torch.no_grad():  # away from identity initialisations, so the adapter matters
        for p in peek_state(model).adapters["a"].parameters():  # type: ignore[union-attr]
            p.add_(torch.rand_like(p) * 0.2 - 0.1)
    return model


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "config"), CASES)
def test_compiles_without_graph_breaks(kind: str, config: str) -> None:
    torch._dynamo.reset()
    model = _adapted(kind, config)
    inputs = model_inputs(kind)
    with torch.no_grad():
        eager = model(**inputs).last_hidden_state
        compiled = torch.compile(model, backend="eager", fullgraph=True)
        first = compiled(**inputs).last_hidden_state
        again = compiled(**model_inputs(kind, seed=2)).last_hidden_state
    torch.testing.assert_close(first, eager, atol=1e-5, rtol=0)
    torch.testing.assert_close(
        again, model(**model_inputs(kind, seed=2)).last_hidden_state, atol=1e-5, rtol=0
    )
