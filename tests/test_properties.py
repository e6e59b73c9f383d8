"""Property tests: generated valid configs round-trip; random and mutated input only ever raises
ConfigError."""

from __future__ import annotations

import json
import tempfile
import typing
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import adapter_dsl as ad
from adapter_dsl import ConfigError, dumps, load, parse
from adapter_dsl.fieldtypes import ACTIVATIONS
from adapter_dsl.registry import IDENTIFIERS, preset_config

ROUND_TRIP = settings(
    max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
FUZZ = settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])

layer_lists = st.lists(st.integers(0, 30), unique=True, max_size=4)
positive = st.one_of(st.integers(1, 64), st.floats(0.05, 64, allow_nan=False))
probability = st.floats(0, 0.95, allow_nan=False)

# Field name → strategy of valid values (Literal fields are derived from their annotation).
FIELD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "reduction_factor": st.one_of(
        positive,
        st.dictionaries(st.integers(0, 11).map(str), positive, max_size=3).map(
            lambda d: {**d, "default": 16}
        ),
    ),
    "non_linearity": st.sampled_from(ACTIVATIONS),
    "init_weights_seed": st.one_of(st.none(), st.integers(0, 2**31)),
    "scaling": st.one_of(
        st.floats(0.1, 8, allow_nan=False), st.sampled_from(["learned", "channel"])
    ),
    "residual_before_ln": st.sampled_from([True, False]),
    "inv_adapter_reduction_factor": st.one_of(st.none(), positive),
    "leave_out": layer_lists,
    "layers": st.one_of(st.just("all"), layer_lists.filter(bool)),
    "dropout": probability,
    "stochastic_depth": probability,
    "phm_dim": st.integers(1, 8),
    "phm_init_range": st.floats(1e-6, 1, allow_nan=False),
    "phm_rank": st.integers(1, 4),
    "r": st.integers(1, 64),
    "alpha": positive,
    "attn_matrices": st.lists(st.sampled_from("qkv"), unique=True, min_size=1),
    "vera_d": st.one_of(st.none(), st.floats(-1, 1, allow_nan=False)),
    "vera_b": st.one_of(st.none(), st.floats(-1, 1, allow_nan=False)),
    "prefix_length": st.integers(1, 64),
    "bottleneck_size": st.integers(1, 1024),
    "prompt_length": st.integers(1, 64),
    "prompt_init_text": st.one_of(st.none(), st.text(max_size=20)),
    "random_uniform_scale": st.floats(0.01, 2, allow_nan=False),
    "prefix_positions": st.integers(0, 8),
    "suffix_positions": st.integers(0, 8),
    "n_up_projection": st.integers(1, 4),
    "weights_sharpness": st.floats(0.01, 1, allow_nan=False),
}


def _literal_values(annotation: Any) -> list[Any]:
    values: list[Any] = []
    for arg in typing.get_args(annotation) or ():
        values.extend(_literal_values(arg))
    if typing.get_origin(annotation) is typing.Literal:
        values.extend(typing.get_args(annotation))
    if annotation is type(None):
        values.append(None)
    return values


def field_strategy(cls: type[ad.AdapterConfig], name: str) -> st.SearchStrategy[Any]:
    if name in FIELD_VALUES:
        return FIELD_VALUES[name]
    annotation = cls.model_fields[name].annotation
    if annotation is bool:
        return st.booleans()
    literals = _literal_values(annotation)
    assert literals, f"no strategy for {cls.__name__}.{name}"
    return st.sampled_from(literals)


SINGLE_IDENTIFIERS = [i for i, p in IDENTIFIERS.items() if not issubclass(p.cls, ad.ConfigUnion)]


@st.composite
def single_configs(draw: st.DrawFn) -> ad.AdapterConfig:
    base = preset_config(draw(st.sampled_from(SINGLE_IDENTIFIERS)))
    cls = type(base)
    names = [n for n in cls.model_fields if n != "architecture"]
    chosen = draw(st.lists(st.sampled_from(names), unique=True, max_size=5))
    changes = {n: draw(field_strategy(cls, n)) for n in chosen}
    try:
        return base.replace(**changes)
    except ConfigError:
        assume(False)
        raise


@st.composite
def configs(draw: st.DrawFn) -> ad.AdapterConfig:
    first = draw(single_configs())
    if draw(st.booleans()):
        return first
    second = draw(single_configs())
    try:
        return first | second
    except ConfigError:
        assume(False)
        raise


@ROUND_TRIP
@given(configs())
def test_string_round_trip(config: ad.AdapterConfig) -> None:
    text = dumps(config)
    again = parse(text)
    assert again == config
    assert dumps(again) == text


@ROUND_TRIP
@given(configs())
def test_dict_round_trip(config: ad.AdapterConfig) -> None:
    d = config.to_dict()
    assert load(d) == config
    assert load(json.loads(json.dumps(d))) == config


@settings(max_examples=200, deadline=None)
@given(configs())
def test_json_file_round_trip(config: ad.AdapterConfig) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "adapter_config.json"
        path.write_text(json.dumps({"config": config.to_dict(), "version": "adapters.1.3.0"}))
        assert load(path) == config


def _only_config_errors(spec: Any) -> None:
    try:
        load(spec)
    except ConfigError as exc:
        assert exc.problems
        str(exc)  # rendering never fails either


alphabet = st.sampled_from(list("lora[]=,|'\"{}:.0123456789-+eE_ abcdqkvTFNn\n\\()*"))


@FUZZ
@given(st.text(alphabet, max_size=40))
def test_random_text_only_raises_config_error(text: str) -> None:
    _only_config_errors(text)


@FUZZ
@given(st.text(max_size=60))
def test_arbitrary_unicode_only_raises_config_error(text: str) -> None:
    _only_config_errors(text)


@FUZZ
@given(configs(), st.data())
def test_mutated_valid_strings_only_raise_config_error(
    config: ad.AdapterConfig, data: st.DataObject
) -> None:
    text = dumps(config)
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, len(text)))
        op = data.draw(st.sampled_from(["insert", "delete", "replace"]))
        char = data.draw(alphabet)
        if op == "insert":
            text = text[:i] + char + text[i:]
        elif op == "delete":
            text = text[:i] + text[i + 1 :]
        else:
            text = text[:i] + char + text[i + 1 :]
    _only_config_errors(text)


json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-5, 100),
        st.floats(allow_nan=True),
        st.text(max_size=8),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


@FUZZ
@given(configs(), st.data())
def test_mutated_dicts_only_raise_config_error(
    config: ad.AdapterConfig, data: st.DataObject
) -> None:
    d = config.to_dict()
    target = d
    if "configs" in d and data.draw(st.booleans()):
        target = d["configs"][data.draw(st.integers(0, len(d["configs"]) - 1))]
    key = data.draw(st.one_of(st.sampled_from(sorted(target)), st.text(max_size=8)))
    target[key] = data.draw(json_values)
    _only_config_errors(d)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_random_json_only_raises_config_error(value: Any) -> None:
    if isinstance(value, str):
        return  # strings are config strings, covered above
    _only_config_errors(value)
