"""AdapterFusion configs, AdapterConfig.load and ConfigUnion as a sequence (the reference's API)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import adapter_dsl
from adapter_dsl import (
    AdapterConfig,
    AdapterFusionConfig,
    ConfigError,
    DynamicAdapterFusionConfig,
    StaticAdapterFusionConfig,
    dumps,
    load,
    load_fusion_config,
)


def test_presets_and_overrides() -> None:
    assert isinstance(load_fusion_config(), DynamicAdapterFusionConfig)  # the reference's default
    assert load_fusion_config("static") == StaticAdapterFusionConfig()
    config = load_fusion_config("dynamic[temperature=True, residual_before=True]")
    assert config.temperature and config.residual_before and config.value
    assert load_fusion_config("dynamic", temperature=True) == DynamicAdapterFusionConfig(
        temperature=True
    )
    # The reference's AdapterFusionConfig.load sets every keyword, None included.
    assert AdapterFusionConfig.load("static", dropout_prob=0.1).dropout_prob == 0.1
    assert (
        AdapterFusionConfig.load("static[dropout_prob=0.1]", dropout_prob=None).dropout_prob is None
    )


def test_fusion_configs_are_frozen_and_print_canonically() -> None:
    config = load_fusion_config("static[temperature=True]")
    with pytest.raises(ConfigError, match="immutable"):
        config.temperature = False  # type: ignore[misc]
    assert dumps(config) == "static[temperature=True]"
    assert str(config) == "static[temperature=True]"
    # The closest preset wins: this is static with one change, not dynamic with three.
    assert (
        dumps(StaticAdapterFusionConfig(value_initialized=True)) == "static[value_initialized=True]"
    )
    assert hash(load_fusion_config("dynamic")) == hash(DynamicAdapterFusionConfig())


def test_dicts_and_saved_files(tmp_path: Path) -> None:
    config = load_fusion_config("static[query_before_ln=True]")
    assert load_fusion_config(config.to_dict()) == config
    assert type(load_fusion_config(config.to_dict())) is StaticAdapterFusionConfig
    saved = {"config": config.to_dict(), "model_type": "bert", "name": "a,b", "hidden_size": 32}
    (tmp_path / "adapter_fusion_config.json").write_text(json.dumps(saved))
    assert load_fusion_config(tmp_path) == config
    assert load_fusion_config(str(tmp_path / "adapter_fusion_config.json")) == config
    assert AdapterFusionConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize(
    ("spec", "message", "suggestion"),
    [
        ("dinamic", "unknown fusion config 'dinamic'", "did you mean 'dynamic'?"),
        ("Dynamic", "unknown fusion config 'Dynamic'", "did you mean 'dynamic'?"),
        ("lora", "unknown fusion config 'lora'", None),
        ("dynamic|static", "a fusion config is one identifier, not a union", None),
        ("dynamic[tempreature=True]", "unknown key 'tempreature'", "did you mean 'temperature'?"),
        ("static[temperature=1]", "input should be a valid boolean", None),
        ("static[dropout_prob=1.0]", "must be in [0, 1)", None),
        ("dynamic[temperature=True, temperature=False]", "key 'temperature' is set twice", None),
    ],
)
def test_located_messages(spec: str, message: str, suggestion: str | None) -> None:
    with pytest.raises(ConfigError) as info:
        load_fusion_config(spec)
    assert message in str(info.value)
    if suggestion:
        assert info.value.problems[0].suggestion == suggestion
    assert info.value.problems[0].location.span is not None


def test_partial_dicts_name_every_missing_field() -> None:
    with pytest.raises(ConfigError) as info:
        load_fusion_config({"key": True})
    assert len(info.value.problems) == 9
    with pytest.raises(ConfigError) as info:
        load_fusion_config({"config": {**DynamicAdapterFusionConfig().to_dict(), "value": "yes"}})
    assert info.value.problems[0].location.pointer == "/config/value"


def test_fusion_configs_do_not_mix_with_adapter_configs() -> None:
    with pytest.raises(ConfigError, match="cannot join a union"):
        load_fusion_config("dynamic") | load("lora")  # type: ignore[operator]
    with pytest.raises(ConfigError, match="unknown adapter identifier 'dynamic'") as info:
        load("dynamic[temperature=True]")
    assert info.value.problems[0].suggestion == (
        "'dynamic' is an AdapterFusion config: use load_fusion_config()"
    )
    with pytest.raises(ConfigError, match="cannot load a fusion config"):
        load_fusion_config(3)


def test_adapter_config_load_as_in_the_reference() -> None:
    assert AdapterConfig.load("lora", r=4) == load("lora[r=4]")
    # Keywords set to None are ignored, and a falsy config is None, as in the reference.
    assert AdapterConfig.load("lora", r=None) == load("lora")
    assert AdapterConfig.load(None) is None
    assert AdapterConfig.load("") is None
    assert AdapterConfig.load({}) is None
    assert AdapterConfig.load({"architecture": "lora", "r": 2}) == load("lora[r=2]")
    assert adapter_dsl.LoRAConfig.load("lora[alpha=2]") == load("lora[alpha=2]")
    with pytest.raises(ConfigError, match="unknown key 'rr'"):
        AdapterConfig.load("lora", rr=4)


def test_config_union_is_a_sequence_of_its_members() -> None:
    union = load("mam")
    prefix, adapter = union  # iteration yields the members
    assert union[0] == prefix == load("prefix_tuning[bottleneck_size=800]")
    assert union[1] == adapter == load("par_bn")
    assert union[-1] == adapter
    assert len(union) == 2
    assert list(union) == [prefix, adapter]
    assert union[0:1] == (prefix,)
    assert load("par_bn") in union
    # The reference's "<member>.<field>" keys, by index or member name.
    assert union["0.bottleneck_size"] == 800
    assert union["adapter.reduction_factor"] == 2
    assert union["configs"] == (prefix, adapter)
    with pytest.raises(KeyError):
        union["5.r"]
    with pytest.raises(IndexError):
        union[2]
    assert len(load("lora|seq_bn")) == 2


def test_fusion_file_problems_have_line_and_column(tmp_path: Path) -> None:
    data = {"config": {**DynamicAdapterFusionConfig().to_dict(), "dropout_prob": 3}}
    path = tmp_path / "adapter_fusion_config.json"
    path.write_text(json.dumps(data, indent=2))
    with pytest.raises(ConfigError) as info:
        load_fusion_config(tmp_path)
    problem = info.value.problems[0]
    assert problem.location.file == str(path)
    assert problem.location.line == 12 and problem.location.pointer == "/config/dropout_prob"


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    st.fixed_dictionaries(
        {name: st.booleans() for name in AdapterFusionConfig.model_fields if name != "dropout_prob"}
        | {"dropout_prob": st.one_of(st.none(), st.floats(0, 0.99, allow_nan=False))}
    )
)
def test_fusion_round_trips(values: dict[str, object]) -> None:
    config = AdapterFusionConfig(**values)
    assert load_fusion_config(dumps(config)) == config
    assert load_fusion_config(config.to_dict()) == config
    assert (
        load_fusion_config(json.loads(json.dumps(config.to_dict()))).to_dict() == config.to_dict()
    )
    assert dumps(load_fusion_config(dumps(config))) == dumps(config)


def test_errors_say_what_was_invalid() -> None:
    import pickle

    with pytest.raises(ConfigError) as info:
        load_fusion_config("dinamic")
    assert str(info.value).startswith("invalid AdapterFusion config\n")
    with pytest.raises(ConfigError) as setup_info:
        adapter_dsl.parse_setup("Stak(a)")
    assert str(setup_info.value).startswith("invalid adapter setup\n")
    with pytest.raises(ConfigError) as block_info:
        adapter_dsl.Stack()
    assert str(block_info.value).startswith("invalid adapter setup\n")
    again = pickle.loads(pickle.dumps(setup_info.value))
    assert str(again) == str(setup_info.value)
    assert str(pickle.loads(pickle.dumps(info.value))) == str(info.value)
    with pytest.raises(ConfigError) as config_info:
        load("lora[r=0]")
    assert str(config_info.value).startswith("invalid adapter config\n")
