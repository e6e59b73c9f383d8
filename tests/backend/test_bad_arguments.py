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


def _operations(model: Any, tmp: Any) -> dict[str, Callable[[Any], Any]]:
    """Model-level operations taking adapter names, each called with a bad ``names`` value."""
    from adapter_dsl.backend import (
        add_fusion,
        average_adapter,
        delete_adapter,
        delete_fusion,
        merge_adapter,
        save_adapter,
        save_fusion,
        unmerge_adapter,
    )
    from adapter_dsl.backend.training import prepare_for_training

    return {
        "delete_adapter": lambda n: delete_adapter(model, n),
        "merge_adapter": lambda n: merge_adapter(model, n),
        "unmerge_adapter": lambda n: unmerge_adapter(model, n),
        "save_adapter": lambda n: save_adapter(model, n, tmp / "x"),
        "average_adapter": lambda n: average_adapter(model, "avg", n),
        "add_fusion": lambda n: add_fusion(model, n),
        "delete_fusion": lambda n: delete_fusion(model, n),
        "save_fusion": lambda n: save_fusion(model, n, tmp / "y"),
        "prepare_for_training": lambda n: prepare_for_training(model, n),
    }


@pytest.mark.parametrize("names", [5, None, 1.5, ["a", 5], b"a"])
def test_operations_refuse_non_names(model: Any, tmp_path: Any, names: Any) -> None:
    for operation, call in _operations(model, tmp_path).items():
        if names is None and operation == "prepare_for_training":
            continue  # None: the active or only adapter
        if isinstance(names, list) and operation in ("delete_fusion", "save_fusion"):
            continue  # a list names a fusion ('a,5'): unknown, refused below
        error = _fails(model, lambda: call(names))  # noqa: B023 (called at once)
        assert error.problems[0].code == "invalid_name", (operation, str(error))
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_failures_of_other_operations_say_what_failed(model: Any, tmp_path: Any) -> None:
    from adapter_dsl.backend import (
        add_fusion,
        average_adapter,
        load_adapter,
        save_adapter,
        train_fusion,
    )
    from adapter_dsl.backend.fusion_io import save_fusion
    from adapter_dsl.backend.methods.fusion import delete_fusion
    from adapter_dsl.backend.training import load_trainable

    add_adapter(model, "b", "seq_bn")
    headings = {
        "cannot save adapter 'zz' of BertModel": lambda: save_adapter(model, "zz", tmp_path),
        f"cannot load an adapter from '{tmp_path}' into BertModel": lambda: load_adapter(
            model, tmp_path
        ),
        "cannot average adapters into 'avg' on BertModel": lambda: average_adapter(
            model, "avg", ["a", "b"]
        ),
        "cannot add a fusion of ['a', 'b'] to BertModel": lambda: add_fusion(model, ["a", "b"]),
        "cannot delete fusion 'a,b' from BertModel": lambda: delete_fusion(model, "a,b"),
        "cannot save fusion 'a,b' of BertModel": lambda: save_fusion(model, "a,b", tmp_path),
        "cannot train the fusion of 'a' on BertModel": lambda: train_fusion(model, "a"),
        f"cannot load the checkpoint '{tmp_path}' into BertModel": lambda: load_trainable(
            model, tmp_path
        ),
    }
    for heading, call in headings.items():
        error = _fails(model, call)
        assert str(error).splitlines()[0] == heading


@pytest.mark.parametrize(
    ("operation", "heading"),
    [
        ("list_adapters", "cannot list the adapters of int"),
        ("adapter_summary", "cannot summarise the adapters of int"),
        ("delete_adapter", "cannot delete adapter 'a' from int"),
        ("set_active", "cannot activate 'a' on int"),
        ("merge_adapter", "cannot merge adapter 'a' into int"),
    ],
)
def test_operations_on_something_that_is_not_a_module(operation: str, heading: str) -> None:
    from adapter_dsl import backend

    args = () if operation in ("list_adapters", "adapter_summary") else ("a",)
    with pytest.raises(ConfigError) as info:
        getattr(backend, operation)(5, *args)
    assert str(info.value).splitlines()[0] == heading
    assert info.value.problems[0].code == "unsupported_model"
    assert "expected a torch.nn.Module" in str(info.value)


@pytest.mark.parametrize("name", ["/outside", "a\\b"])
def test_checkpoint_folders_stay_inside_the_checkpoint(
    model: Any, tmp_path: Any, name: str
) -> None:
    from adapter_dsl.backend.training import save_trainable

    add_adapter(model, name, "lora")
    target = tmp_path / "ckpt"
    error = _fails(model, lambda: save_trainable(model, target, [name]), "cannot be a folder")
    assert error.problems[0].code == "invalid_name"
    assert not target.exists()
