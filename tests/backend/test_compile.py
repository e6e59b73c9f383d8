"""torch.compile traces every method in one graph (``torch._dynamo.explain``: no graph break, no
second frame), and the compiled forward ≡ eager.

``explain(model)`` compiles the model as ``torch.compile(model)`` does: the module's own hooks run
outside the compiled frame, so a hook on the root module would show up as a second graph. Its
graphs run as traced (like the ``eager`` backend, no kernels generated), which keeps the test
fast; the output of that compiled run is compared with eager.
"""

from __future__ import annotations

from typing import Any

import pytest

from adapter_dsl.backend import add_adapter
from adapter_dsl.backend.state import peek_state
from adapter_dsl.errors import ConfigError
from tests.backend.conftest import make_model, model_inputs

torch = pytest.importorskip("torch")

# Every method, in few models: unions put several hook kinds into one compiled forward (LoRA-family
# wrappers, bottleneck sites, invertible adapters, shared parameters, prefix routing, prompt
# embeddings and masks, ReFT interventions, gates). Prompt tuning is BERT-style only (as in the
# reference; refused on LLaMA below).
METHODS = {
    "bert": [
        "lora|seq_bn|loreft",
        "dora|double_seq_bn_inv",
        "vera|prefix_tuning_flat",
        "ia3|compacter[phm_dim=2, reduction_factor=4]",
        "unipelt",
        "mam",
        "prompt_tuning|par_bn",
    ],
    "llama": [
        "unipelt",
        "dora|seq_bn_inv|direft",
        "ia3|noreft",
        "mam",
        "loreft|prefix_tuning_flat",
    ],
}
CASES = [(kind, method) for kind, methods in METHODS.items() for method in methods]


def _adapted(kind: str, config: str) -> Any:
    model = make_model(kind)
    add_adapter(model, "a", config, set_active=True)
    with torch.no_grad():  # away from identity initialisations, so the adapter matters
        for p in peek_state(model).adapters["a"].parameters():  # type: ignore[union-attr]
            p.add_(torch.rand_like(p) * 0.2 - 0.1)
    return model


def explained(model: Any, inputs: dict[str, Any]) -> tuple[Any, Any]:
    """``torch._dynamo.explain(model)(**inputs)`` and the output of that compiled run."""
    outputs: list[Any] = []
    # Outside dynamo: the capture itself must not add a frame to the count.
    capture = torch._dynamo.disable(lambda module, args, output: outputs.append(output))
    handle = model.register_forward_hook(capture)
    try:
        explanation = torch._dynamo.explain(model)(**inputs)
    finally:
        handle.remove()
    return explanation, outputs[0]


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "config"), CASES)
def test_compiles_in_one_graph_and_matches_eager(kind: str, config: str) -> None:
    model = _adapted(kind, config)
    inputs = model_inputs(kind)
    with torch.no_grad():
        eager = model(**inputs).last_hidden_state
        explanation, output = explained(model, inputs)
    assert explanation.graph_break_count == 0, explanation.break_reasons
    assert explanation.graph_count == 1
    torch.testing.assert_close(output.last_hidden_state, eager, atol=1e-5, rtol=0)


def test_prompt_tuning_is_refused_on_llama_with_the_model_untouched() -> None:
    model = make_model("llama")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ConfigError, match="'prompt_tuning' adapters are not supported on 'llama'"):
        add_adapter(model, "a", "prompt_tuning")
    state = peek_state(model)
    assert "forward" not in model.__dict__ and (state is None or not state.adapters)
    after = model.state_dict()
    assert set(after) == set(before) and all(torch.equal(after[k], before[k]) for k in before)
