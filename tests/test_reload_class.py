"""Reloading a dict gives the class it was written from: legacy keys in both modes, preset unions."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from adapter_dsl import (
    ConfigError,
    ConfigUnion,
    MAMConfig,
    SeqBnInvConfig,
    UniPELTConfig,
    dumps,
    load,
    load_lenient,
)
from tests.test_properties import field_strategy


def _legacy_inv_dict() -> dict[str, Any]:
    data = load("seq_bn").to_dict()
    del data["inv_adapter"], data["inv_adapter_reduction_factor"]
    data["invertible_adapter"] = {"block_type": "nice", "reduction_factor": 2}
    return {"config": data}


def test_lenient_mode_translates_the_legacy_invertible_key() -> None:
    strict = load(_legacy_inv_dict())
    lenient, dropped = load_lenient(_legacy_inv_dict())
    assert dropped == []
    assert type(strict) is type(lenient) is SeqBnInvConfig
    assert lenient == strict == load("seq_bn_inv")
    assert dumps(load(_legacy_inv_dict(), strict=False)) == "seq_bn_inv"


def test_lenient_mode_still_drops_unknown_keys_next_to_the_legacy_key() -> None:
    data = _legacy_inv_dict()
    data["config"]["invertible_adaptr"] = 1
    config, dropped = load_lenient(data)
    assert config == load("seq_bn_inv")
    assert [p.location.pointer for p in dropped] == ["/config/invertible_adaptr"]
    assert dropped[0].suggestion == "did you mean 'invertible_adapter'?"


def test_preset_union_dicts_come_back_as_the_preset() -> None:
    mam = load(load("mam").to_dict())
    assert type(mam) is MAMConfig
    assert mam.replace(**{"adapter.reduction_factor": 4}).configs[1].reduction_factor == 4
    assert type(load(load("unipelt").to_dict())) is UniPELTConfig
    # Other shapes stay plain unions; an explicit class is honoured.
    assert type(load(load("lora|seq_bn").to_dict())) is ConfigUnion
    assert type(ConfigUnion.from_dict(load("mam").to_dict())) is ConfigUnion


@st.composite
def preset_unions(draw: st.DrawFn) -> ConfigUnion:
    base = load(draw(st.sampled_from(["mam", "unipelt"])))
    assert isinstance(base, ConfigUnion)
    changes: dict[str, Any] = {}
    for name, member in zip(base.member_names, base.configs, strict=True):
        fields = [f for f in type(member).model_fields if f != "architecture"]
        for field in draw(st.lists(st.sampled_from(fields), unique=True, max_size=3)):
            changes[f"{name}.{field}"] = draw(field_strategy(type(member), field))
    try:
        return base.replace(**changes)
    except ConfigError:
        assume(False)
        raise


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(preset_unions())
def test_random_preset_unions_keep_their_class_through_a_dict(config: ConfigUnion) -> None:
    again = load(config.to_dict())
    assert type(again) is type(config)
    assert again == config
