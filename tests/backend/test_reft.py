"""ReFT (LoReft, NoReft, DiReft) on every supported architecture."""

from __future__ import annotations

from typing import Any

import pytest

torch = pytest.importorskip("torch")

from adapter_dsl import load  # noqa: E402
from adapter_dsl.backend import add_adapter, delete_adapter, train_adapter  # noqa: E402
from adapter_dsl.backend.methods.reft import ReftModule, ReftUnit  # noqa: E402
from adapter_dsl.errors import ConfigError  # noqa: E402
from tests.backend._method_helpers import (  # noqa: E402
    KINDS,
    adapter_keys,
    assert_deep_copy_is_independent,
    assert_save_load_round_trip,
    one_thread,  # noqa: F401  (autouse fixture)
    reference,
    trainable,
)
from tests.backend.conftest import make_model, model_inputs  # noqa: E402

IDENTIFIERS = ["loreft", "noreft", "direft"]


def hidden(model: Any, kind: str, **inputs: Any) -> Any:
    return model(**(inputs or model_inputs(kind))).last_hidden_state


@pytest.mark.parametrize("identifier", IDENTIFIERS)
@pytest.mark.parametrize("kind", KINDS)
def test_counts_keys_and_gradients(kind: str, identifier: str) -> None:
    model = make_model(kind)
    add_adapter(model, "a", identifier)
    train_adapter(model, "a")
    ref = reference(kind, identifier)
    n_layers = 4 if kind == "bart" else 2
    assert trainable(model) == 130 * n_layers  # 2 units × (33 + 32) per layer; §5.1: 260 on BERT
    if ref is not None:
        assert trainable(model) == ref["trainable"]
        assert adapter_keys(model, ".refts.a.") == ref["saved_keys"]
    model.eval()
    hidden(model, kind).pow(2).sum().backward()
    for name, p in model.named_parameters():
        if ".refts.a." in name:
            assert p.requires_grad and p.grad is not None, name
        else:
            assert p.grad is None, name


def test_orthogonality_and_subtract_projection() -> None:
    model = make_model("bert")
    add_adapter(model, "lo", "loreft[r=3]")
    add_adapter(model, "di", "direft[r=3]")
    lo = model.encoder.layer[0].reft_layer.refts["lo"].units[0]
    di = model.encoder.layer[0].reft_layer.refts["di"].units[0]
    weight = lo.projection.weight
    torch.testing.assert_close(weight @ weight.t(), torch.eye(3), rtol=0, atol=1e-5)
    assert lo.subtract_projection and not di.subtract_projection
    assert not hasattr(di.projection, "parametrizations")
    assert load("direft").subtract_projection is False


def test_unit_math() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 3, 8)
    for subtract in (True, False):
        unit = ReftUnit(
            8,
            2,
            orthogonal=True,
            subtract_projection=subtract,
            non_linearity="relu",
            dropout=0.0,
            dtype=None,
        )
        w_s, b_s, r = unit.learned_source.weight, unit.learned_source.bias, unit.projection.weight
        source = torch.relu(x @ w_s.t() + b_s) - (x @ r.t() if subtract else 0.0)
        torch.testing.assert_close(unit(x), x + source @ r)


def test_only_prefix_and_suffix_positions_change() -> None:
    """Interventions on the last layer only: the final states differ exactly at the chosen positions."""
    model = make_model("bert")
    inputs = model_inputs("bert", batch=2, length=8)
    inputs["attention_mask"][1, :2] = 0  # second example left-padded by 2
    before = hidden(model, "bert", **inputs)
    add_adapter(
        model,
        "a",
        "loreft[layers=[1], prefix_positions=2, suffix_positions=1, dropout=0.0]",
        set_active=True,
    )
    changed = (hidden(model, "bert", **inputs) - before).abs().amax(dim=-1) > 1e-6
    assert changed[0].nonzero().flatten().tolist() == [0, 1, 7]
    assert changed[1].nonzero().flatten().tolist() == [2, 3, 7]


def test_tied_weights_use_one_unit_for_both_ends() -> None:
    torch.manual_seed(0)
    module = ReftModule(
        8, load("loreft[prefix_positions=1, suffix_positions=1, tied_weights=True, dropout=0.0]")
    )
    assert len(module.units) == 1
    x = torch.randn(1, 4, 8)
    first, last = torch.tensor([0]), torch.tensor([4])
    out = module(x, first, last)
    unit = module.units[0]
    torch.testing.assert_close(out[:, [0, 3]], unit(x[:, [0, 3]]))
    torch.testing.assert_close(out[:, 1:3], x[:, 1:3])


def test_dropout_hits_the_whole_intervened_state_in_training() -> None:
    model = make_model("bert")
    add_adapter(model, "a", "noreft[dropout=0.5, layers=[1]]", set_active=True)
    model.train()
    torch.manual_seed(0)
    out = hidden(model, "bert")
    assert (out[:, :3] == 0).any()  # dropped elements of the intervened positions
    model.eval()


def test_layer_selection_and_errors() -> None:
    model = make_model("bart")
    add_adapter(model, "a", "loreft[layers=[0, 3]]")
    assert hasattr(model.encoder.layers[0], "reft_layer") and hasattr(
        model.decoder.layers[1], "reft_layer"
    )
    assert not hasattr(model.encoder.layers[1], "reft_layer")
    with pytest.raises(ConfigError, match="no layer"):
        add_adapter(model, "b", "loreft[layers=[7]]")


def test_delete_restores_the_model() -> None:
    model = make_model("gpt2")
    keys = list(model.state_dict())
    before = hidden(model, "gpt2")
    add_adapter(model, "a", "loreft", set_active=True)
    add_adapter(model, "b", "noreft")
    assert (hidden(model, "gpt2") - before).abs().max() > 1e-4
    delete_adapter(model, "a")
    delete_adapter(model, "b")
    assert list(model.state_dict()) == keys
    assert not model.h[0]._forward_hooks and not model._forward_pre_hooks
    torch.testing.assert_close(hidden(model, "gpt2"), before, rtol=0, atol=0)


def test_half_precision_keeps_the_orthogonal_projection_in_float32() -> None:
    model = make_model("llama").to(torch.bfloat16)
    add_adapter(model, "a", "loreft[suffix_positions=1]", set_active=True)
    unit = model.layers[0].reft_layer.refts["a"].units[0]
    assert unit.learned_source.weight.dtype == torch.bfloat16
    assert unit.projection.weight.dtype == torch.float32  # no half-precision orthogonal kernels
    out = hidden(model, "llama")
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()


@pytest.mark.parametrize("identifier", ["loreft[suffix_positions=2]", "direft"])
def test_save_load_round_trip(identifier: str, tmp_path: Any) -> None:
    assert_save_load_round_trip("gpt2", identifier, (".refts.a.",), tmp_path)


def test_deep_copy_is_independent() -> None:
    assert_deep_copy_is_independent("llama", "loreft[suffix_positions=2]", (".refts.a.",))
