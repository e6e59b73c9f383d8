"""Bad arguments to the model-level operations: a ConfigError saying what failed, model untouched."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from adapter_dsl import ConfigError
from adapter_dsl.backend import add_adapter, list_adapters, set_active, train_adapter
from adapter_dsl.backend.state import peek_state
from tests.backend.conftest import make_model

torch = pytest.importorskip("torch")
nn = torch.nn


def _snapshot(model: Any) -> tuple[Any, ...]:
    state = peek_state(model)
    return (
        [n for n, _ in model.named_modules()],
        {k: v.clone() for k, v in model.state_dict().items()},
        list_adapters(model),
        state.active if state is not None else None,
        [p.requires_grad for p in model.parameters()],
    )


def _assert_same(before: tuple[Any, ...], after: tuple[Any, ...]) -> None:
    assert before[0] == after[0]
    assert before[1].keys() == after[1].keys()
    assert all(
        v.is_meta or torch.equal(v, after[1][k]) for k, v in before[1].items()
    )  # meta tensors hold no values to compare
    assert before[2:] == after[2:]


def _fails(model: Any, action: Callable[[], Any], *fragments: str) -> ConfigError:
    before = _snapshot(model)
    with pytest.raises(ConfigError) as info:
        action()
    _assert_same(before, _snapshot(model))
    text = str(info.value)
    for fragment in fragments:
        assert fragment in text
    return info.value


@pytest.fixture
def model() -> Any:
    m = make_model("bert")
    add_adapter(m, "a", "lora", set_active=True)
    return m


@pytest.mark.parametrize("names", [5, [None], ["a", 3], 1.5])
def test_set_active_refuses_non_names(model: Any, names: Any) -> None:
    _fails(
        model,
        lambda: set_active(model, names),
        f"cannot activate {names!r} on BertModel",
        "not an adapter setup",
    )


def test_train_adapter_refuses_non_names(model: Any) -> None:
    _fails(model, lambda: train_adapter(model, 5), "cannot train 5 on BertModel")


@pytest.mark.parametrize("name", ["training", "forward", "keys", "_modules", "state_dict"])
@pytest.mark.parametrize("config", ["lora", "seq_bn", "prefix_tuning", "loreft"])
def test_container_attribute_names_are_refused(model: Any, name: str, config: str) -> None:
    error = _fails(
        model,
        lambda: add_adapter(model, name, config),
        f"cannot add adapter '{name}' to BertModel",
        f"'{name}' cannot be an adapter name",
    )
    assert error.problems[0].code == "invalid_name"


class _NotBert(nn.Module):
    """Says it is a BERT model but has no BERT layers."""

    def __init__(self) -> None:
        super().__init__()
        self.config = type("Config", (), {"model_type": "bert", "hidden_size": 32})()
        self.dense = nn.Linear(3, 3)


@pytest.mark.parametrize("config", ["seq_bn", "lora", "prefix_tuning", "loreft"])
def test_model_without_the_rows_layers(config: str) -> None:
    model = _NotBert()
    _fails(
        model,
        lambda: add_adapter(model, "x", config),
        "cannot add adapter 'x' to _NotBert",
        "reports model_type 'bert' but has none of its layers",
        "'encoder.layer'",
    )


def test_dora_on_meta_device_is_refused() -> None:
    transformers = pytest.importorskip("transformers")
    with torch.device("meta"):
        model = transformers.BertModel(
            transformers.BertConfig(
                hidden_size=32,
                num_hidden_layers=2,
                num_attention_heads=4,
                intermediate_size=37,
                vocab_size=99,
            )
        )
    _fails(
        model,
        lambda: add_adapter(model, "x", "dora"),
        "cannot add adapter 'x' to BertModel",
        "its weight is on the meta device",
    )
    add_adapter(model, "y", "lora")  # plain LoRA needs no weights to start from


def test_runtime_failures_say_what_failed(model: Any) -> None:
    error = _fails(
        model,
        lambda: add_adapter(model, "b", "prefix_tuning[leave_out=[0, 1]]"),
        "adds a prefix to no attention module",
    )
    assert str(error).splitlines()[0] == "cannot add adapter 'b' to BertModel"
    error = _fails(model, lambda: add_adapter(model, "b", "seq_bn[reduction_factor=x]"))
    assert str(error).startswith("invalid adapter config")  # the config itself is bad


def test_heading_survives_pickling() -> None:
    import pickle

    error = ConfigError.single("boom").headed("cannot add adapter 'x' to BertModel")
    again = pickle.loads(pickle.dumps(error))
    assert str(again) == str(error)
    assert again.heading == error.heading
