"""LoRA on the extension locations: attention output and gate projections, IA³ input scaling."""

from __future__ import annotations

from typing import Any

import pytest

torch = pytest.importorskip("torch")

from adapter_dsl import ConfigError  # noqa: E402
from adapter_dsl.backend import add_adapter, merge_adapter, set_active  # noqa: E402
from adapter_dsl.backend.architectures import get_architecture  # noqa: E402

from .conftest import make_model  # noqa: E402
from .families import family_inputs, family_outputs, make_family_model  # noqa: E402

IDS = torch.tensor([[1, 5, 7, 9, 11], [2, 4, 6, 8, 10]])


@pytest.fixture
def llama() -> Any:
    return make_model("llama")


@pytest.fixture
def bert() -> Any:
    return make_model("bert")


def _adapted(model: Any) -> set[str]:
    return {n.split(".loras.")[0] for n, _ in model.named_parameters() if ".loras." in n}


def test_llama_every_linear_of_a_layer(llama: Any) -> None:
    spec = (
        "lora[attn_matrices=['q','k','v'], attn_output_lora=True, intermediate_lora=True, "
        "output_lora=True, gate_lora=True, init_weights=bert]"
    )
    add_adapter(llama, "a", spec)
    suffixes = {p.split(".", 2)[2] for p in _adapted(llama)}
    assert suffixes == {
        "self_attn.q_proj",
        "self_attn.k_proj",
        "self_attn.v_proj",
        "self_attn.o_proj",
        "mlp.gate_proj",
        "mlp.up_proj",
        "mlp.down_proj",
    }


@pytest.mark.parametrize(
    "spec",
    [
        "lora[selfattn_lora=False, attn_output_lora=True, gate_lora=True, init_weights=bert]",
        "dora[attn_output_lora=True, gate_lora=True, init_weights=bert]",
        "ia3[intermediate_lora=True, output_lora=True, input_scaling=['intermediate'], "
        "init_weights=bert]",
    ],
)
def test_merging_reproduces_the_forward_pass(llama: Any, spec: str) -> None:
    llama.eval()
    with torch.no_grad():
        base = llama(input_ids=IDS).last_hidden_state
        add_adapter(llama, "a", spec)
        set_active(llama, "a")
        adapted = llama(input_ids=IDS).last_hidden_state
        merge_adapter(llama, "a")
        merged = llama(input_ids=IDS).last_hidden_state
    assert not torch.allclose(adapted, base, atol=1e-3)
    torch.testing.assert_close(merged, adapted, atol=1e-5, rtol=1e-5)


def test_input_scaling_scales_the_projection_input(llama: Any) -> None:
    add_adapter(llama, "a", "ia3[selfattn_lora=False, input_scaling=['intermediate']]")
    layer = llama.layers[0].mlp.down_proj  # the reference's "intermediate" on LLaMA
    unit = layer.loras["a"]
    assert unit.lora_B.shape == (layer.in_features, 1)
    with torch.no_grad():
        unit.lora_B.copy_(torch.linspace(0.5, 2.0, layer.in_features).unsqueeze(1))
    set_active(llama, "a")
    x = torch.randn(3, layer.in_features)
    expected = torch.nn.functional.linear(x * unit.lora_B.view(-1), layer.weight, layer.bias)
    torch.testing.assert_close(layer(x), expected, atol=1e-6, rtol=1e-5)


def test_gate_lora_needs_a_gate(bert: Any) -> None:
    with pytest.raises(ConfigError, match="no separate feed-forward gate projection"):
        add_adapter(bert, "a", "lora[gate_lora=True]")
    assert not _adapted(bert)


@pytest.mark.parametrize("family", ["t5", "mt5", "gptj", "distilbert", "whisper", "phi", "clip"])
def test_attention_output_projection_on_families(family: str) -> None:
    model = make_family_model(family)
    arch = get_architecture(model)
    add_adapter(model, "a", "lora[selfattn_lora=False, attn_output_lora=True, init_weights=bert]")
    outputs = {
        spec.o for g in arch.groups for spec in (g.self_attention, g.cross_attention) if spec
    }
    adapted = _adapted(model)
    assert adapted
    assert all(any(p.endswith("." + o) for o in outputs) for p in adapted), sorted(adapted)
    set_active(model, "a")
    with torch.no_grad():
        family_outputs(model, family)
    assert family_inputs(family)


def test_gate_on_gated_t5_only() -> None:
    mt5 = make_family_model("mt5")  # gated FFN (wi_0, wi_1)
    add_adapter(mt5, "a", "lora[selfattn_lora=False, gate_lora=True]")
    assert all(p.endswith("DenseReluDense.wi_0") for p in _adapted(mt5))
    t5 = make_family_model("t5")
    if t5.config.is_gated_act:
        pytest.skip("the fixture's T5 is gated")
    with pytest.raises(ConfigError, match="no separate feed-forward gate"):
        add_adapter(t5, "a", "lora[gate_lora=True]")


def test_an_interface_gate_path_is_checked_at_registration() -> None:
    from adapter_dsl.backend.architectures import register_model_type, unregister_model_type

    from .test_model_interface import INTERFACE, ToyModel

    model = ToyModel()
    model.config.model_type = "toy_gate"  # type: ignore[misc]
    bad = {**INTERFACE, "model_type": "toy_gate"}
    bad["groups"] = [{**INTERFACE["groups"][0], "gate": "gatee"}]
    with pytest.raises(ConfigError, match="'gatee' is not a submodule") as info:
        register_model_type(bad, model)
    assert info.value.problems[0].location.pointer == "/groups/0/gate"
    good = {**bad, "groups": [{**INTERFACE["groups"][0], "gate": "up"}]}
    try:
        register_model_type(good, model)
        add_adapter(model, "a", "lora[selfattn_lora=False, gate_lora=True]")
        assert _adapted(model) == {"blocks.0.up", "blocks.1.up"}
    finally:
        unregister_model_type("toy_gate")
