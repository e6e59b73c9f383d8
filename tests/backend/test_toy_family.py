"""A method family added from outside the package (tests/toy_family: one config file, one
backend file) parses, validates, appears in the schema, builds on BERT, and leaves no trace
once unregistered."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from tests.backend.conftest import make_model

torch = pytest.importorskip("torch")

import adapter_dsl  # noqa: E402
from adapter_dsl import ConfigError  # noqa: E402
from adapter_dsl.backend import add_adapter, delete_adapter, save_adapter  # noqa: E402
from adapter_dsl.methods.family import unregister_family  # noqa: E402
from adapter_dsl.registry import IDENTIFIERS, method_families  # noqa: E402

TOY_MODULES = ("tests.toy_family.config", "tests.toy_family.backend")


def _forget_toy() -> None:
    unregister_family("toy")
    for name in TOY_MODULES:
        sys.modules.pop(name, None)


@pytest.fixture
def toy() -> Iterator[Any]:
    """The toy family's config module, registered for one test and removed afterwards."""
    _forget_toy()
    module = importlib.import_module("tests.toy_family.config")
    try:
        yield module
    finally:
        _forget_toy()


def _ids() -> Any:
    return torch.tensor([[2, 7, 5, 9]])


def test_toy_family_parses_validates_and_is_in_the_schema(toy: Any) -> None:
    cfg = adapter_dsl.parse("toy[scale=0.5, leave_out=[1]]")
    assert isinstance(cfg, toy.ScaledResidualConfig)
    assert cfg.to_dict() == {"architecture": "toy", "scale": 0.5, "leave_out": [1]}
    assert adapter_dsl.dumps(adapter_dsl.load("toy_half")) == "toy_half"
    assert adapter_dsl.dumps(cfg) == "toy[scale=0.5, leave_out=[1]]"
    assert adapter_dsl.load({"architecture": "toy", "scale": 2}) == toy.ScaledResidualConfig(
        scale=2
    )
    assert adapter_dsl.dumps(adapter_dsl.parse("toy|lora")) == "toy|lora"
    assert adapter_dsl.ScaledResidualConfig is toy.ScaledResidualConfig
    assert "ScaledResidualConfig" in adapter_dsl.__all__
    with pytest.raises(ConfigError) as err:
        adapter_dsl.parse("toy[scale=-1]")
    assert err.value.problems[0].location.span == (10, 12)  # the value -1
    assert "scale" in str(err.value)
    with pytest.raises(ConfigError) as err:
        adapter_dsl.parse("toy[scael=1]")
    assert err.value.problems[0].suggestion == "did you mean 'scale'?"

    schema = adapter_dsl.json_schema()
    variant = schema["$defs"]["toy"]
    assert variant["title"] == "Scaled residual (toy)"
    assert variant["properties"]["architecture"]["const"] == "toy"
    assert set(variant["properties"]) == {"$schema", "architecture", "scale", "leave_out"}
    assert {"$ref": "#/$defs/toy"} in schema["$defs"]["single_method"]["oneOf"]


def test_toy_family_builds_on_bert_and_changes_the_output(toy: Any, tmp_path: Any) -> None:
    model = make_model("bert")
    before = model(_ids()).last_hidden_state
    add_adapter(model, "t", "toy[scale=0.5]", set_active=True)
    assert "t" in dict(model.named_modules())["encoder.layer.0.toy_gates"]
    after = model(_ids()).last_hidden_state
    assert not torch.allclose(before, after)
    save_adapter(model, "t", tmp_path / "t")
    delete_adapter(model, "t")
    assert torch.equal(model(_ids()).last_hidden_state, before)
    assert not any("toy_gates" in k for k in model.state_dict())


def test_an_unregistered_family_leaves_no_trace(toy: Any) -> None:
    from adapter_dsl.backend.methods.base import HANDLERS, name_containers
    from adapter_dsl.loading import FAMILIES

    assert "toy" in IDENTIFIERS and toy.ScaledResidualConfig in HANDLERS
    assert "toy_gates" in name_containers() and "toy" in FAMILIES
    adapter_dsl.parse("toy")  # cached, and the cache must forget it
    _forget_toy()
    assert "toy" not in IDENTIFIERS and "toy_half" not in IDENTIFIERS
    assert toy.ScaledResidualConfig not in HANDLERS and "toy" not in FAMILIES
    assert "toy_gates" not in name_containers()
    assert "toy" not in adapter_dsl.json_schema()["$defs"]
    assert "ScaledResidualConfig" not in adapter_dsl.__all__
    with pytest.raises(AttributeError):
        adapter_dsl.ScaledResidualConfig  # noqa: B018
    with pytest.raises(ConfigError, match="unknown adapter identifier 'toy'"):
        adapter_dsl.parse("toy")
    with pytest.raises(ConfigError, match="unknown architecture 'toy'"):
        adapter_dsl.load({"architecture": "toy"})


def test_a_family_cannot_take_an_existing_tag_or_identifier(toy: Any) -> None:
    from adapter_dsl.methods.family import MethodFamily, preset, register_family

    with pytest.raises(ConfigError, match="family 'toy' is already registered"):
        register_family(MethodFamily("toy", toy.ScaledResidualConfig, title="again"))
    with pytest.raises(ConfigError, match="identifier 'lora' is already used"):
        register_family(
            MethodFamily(
                "toy2",
                toy.ScaledResidualConfig,
                presets=(preset("lora", toy.ScaledResidualConfig, "clash"),),
            )
        )
    assert "toy2" not in {f.architecture for f in method_families()}
