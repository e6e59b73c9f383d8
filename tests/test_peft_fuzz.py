"""Fuzzing from_peft (and load() of PEFT dicts): hostile values only ever raise ConfigError."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapter_dsl import AdapterConfig, ConfigError, from_peft, load, to_peft
from adapter_dsl.peft import MODULES

# Deterministic (derandomize) and bounded: the same examples on every machine.
FUZZ = settings(
    max_examples=250,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

PATTERNS = [
    "(",
    "(.*)*x",
    "(a|a)*b",
    "(?!x).*q_proj",
    r"(\w+)\1",
    ".*q_proj",
    r"(?:.*\.)?layers\.\d+\.self_attn\.(?:q_proj|v_proj)",
    "layers",
    "h",
    "encoder.layer",
    "",
]
NAMES = ["q_proj", "v_proj", "k_proj", "query", "value", "c_attn", "fc1", "dense", "o_proj"]

hostile = st.one_of(
    st.none(),
    st.booleans(),
    st.sampled_from(["false", "true", "0", "none", "RANDOM", "TEXT", "all-linear", "gaussian"]),
    st.sampled_from(PATTERNS),
    st.integers(-5, 70),
    st.sampled_from([2**64, 2**1100, -(2**1100), 10**5000]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([math.nan, math.inf, -math.inf, 1e308, 5e-324]),
    st.lists(st.sampled_from(NAMES + PATTERNS), max_size=4),
    st.lists(st.integers(-2, 70), max_size=4),
    st.lists(st.one_of(st.integers(), st.none(), st.booleans()), max_size=3),
    st.dictionaries(st.sampled_from(NAMES), st.integers(-2, 8), max_size=2),
    st.text(max_size=8),
)

KEYS = [
    "r",
    "lora_alpha",
    "lora_dropout",
    "use_rslora",
    "use_dora",
    "init_lora_weights",
    "bias",
    "target_modules",
    "exclude_modules",
    "layers_to_transform",
    "layers_pattern",
    "modules_to_save",
    "feedforward_modules",
    "rank_pattern",
    "num_virtual_tokens",
    "prefix_projection",
    "encoder_hidden_size",
    "prompt_tuning_init",
    "prompt_tuning_init_text",
    "fan_in_fan_out",
    "task_type",
]

peft_types = st.one_of(
    st.sampled_from(["LORA", "IA3", "PREFIX_TUNING", "PROMPT_TUNING"]),
    st.sampled_from(["LOHA", "lora", "", None, 3, 10**5000, ["LORA"]]),
)
peft_dicts = st.builds(
    lambda peft_type, fields, target: {
        "peft_type": peft_type,
        "target_modules": target,
        **fields,
    },
    peft_types,
    st.dictionaries(st.sampled_from(KEYS), hostile, max_size=6),
    st.one_of(
        st.lists(st.sampled_from(NAMES), min_size=1, max_size=3),
        st.sampled_from(PATTERNS),
        hostile,
    ),
)
model_types = st.one_of(
    st.none(), st.sampled_from(sorted(MODULES)), st.sampled_from(["t5", "", [], 3])
)
layer_counts = st.one_of(
    st.none(),
    st.integers(-1, 40),
    st.sampled_from([10**6, True, "x", 2.5, (6, 6), (6,), ("a", "b"), [3, 10**6]]),
)


def _config_or_config_error(call: Any) -> None:
    try:
        result = call()
    except ConfigError as err:
        str(err)  # the message renders, too
        err.to_list()
        return
    assert isinstance(result, AdapterConfig)


@FUZZ
@given(peft_dicts, model_types, layer_counts)
def test_from_peft_raises_only_config_error(
    data: dict[str, Any], model_type: Any, num_layers: Any
) -> None:
    _config_or_config_error(lambda: from_peft(data, model_type, num_layers=num_layers))


@FUZZ
@given(peft_dicts)
def test_load_of_peft_dicts_raises_only_config_error(data: dict[str, Any]) -> None:
    _config_or_config_error(lambda: load(data))


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    st.sampled_from(["lora", "ia3", "dora", "lora[leave_out=[0, 3]]", "prefix_tuning_flat"]),
    st.sampled_from(sorted(MODULES)),
)
def test_what_to_peft_writes_converts_back(spec: str, model_type: str) -> None:
    counts = (6, 6) if model_type == "bart" else None
    try:
        data = to_peft(load(spec), model_type, num_layers=counts)
    except ConfigError:
        return
    assert from_peft(data, model_type, num_layers=counts) == load(spec)
