"""Messages for common mistakes: a model's config.json, PEFT's field names, to_peft of a string."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adapter_dsl import ConfigError, load, load_lenient, to_peft

MODEL_CONFIG = {
    "architectures": ["BertModel"],
    "attention_probs_dropout_prob": 0.1,
    "hidden_act": "gelu",
    "hidden_size": 32,
    "intermediate_size": 37,
    "model_type": "bert",
    "num_attention_heads": 4,
    "num_hidden_layers": 2,
    "transformers_version": "5.0.0",
    "vocab_size": 99,
}


def test_a_model_config_is_one_problem(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(MODEL_CONFIG, indent=2))
    with pytest.raises(ConfigError) as info:
        load(path)
    [problem] = info.value.problems
    assert problem.message == (
        "this looks like a model config (model_type, architectures); give the adapter's config"
    )
    assert problem.code == "model_config"
    assert "not the model's config.json" in (problem.suggestion or "")
    assert (problem.location.file, problem.location.line) == (str(path), 1)
    assert len(str(info.value)) < 800
    with pytest.raises(ConfigError, match="looks like a model config"):
        load_lenient(MODEL_CONFIG)


def test_an_adapter_dict_with_a_model_type_is_not_a_model_config() -> None:
    # Saved envelopes carry model_type beside the config; that is not a model config.
    envelope = {"config": load("lora").to_dict(), "model_type": "bert", "hidden_size": 32}
    assert load(envelope) == load("lora")


@pytest.mark.parametrize(
    ("spec", "suggestion"),
    [
        ("lora[rank=16]", "did you mean 'r'?"),
        ("lora[lora_alpha=16]", "did you mean 'alpha'?"),
        ("lora[lora_dropout=0.1]", "did you mean 'dropout'?"),
        ("lora[target_modules=['query']]", "did you mean 'attn_matrices'?"),
        ("prefix_tuning[num_virtual_tokens=4]", "did you mean 'prefix_length'?"),
        ("prompt_tuning[num_virtual_tokens=4]", "did you mean 'prompt_length'?"),
        ("unipelt[lora_alpha=4]", "did you mean 'alpha'?"),
    ],
)
def test_peft_names_suggest_the_field(spec: str, suggestion: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(spec)
    assert (info.value.problems[0].suggestion or "").startswith(suggestion)
    assert "in PEFT" in str(info.value)


def test_peft_names_in_dicts_suggest_the_field_in_both_modes() -> None:
    with pytest.raises(ConfigError, match="did you mean 'r'"):
        load({"architecture": "lora", "rank": 4})
    _, dropped = load_lenient({"architecture": "lora", "rank": 4})
    assert (dropped[0].suggestion or "").startswith("did you mean 'r'?")


def test_to_peft_reads_strings_as_configs() -> None:
    assert to_peft("lora", "bert") == to_peft(load("lora"), "bert")
    assert to_peft({"architecture": "lora", "r": 4}, "bert")["r"] == 4
    with pytest.raises(ConfigError, match="bottleneck adapters"):
        to_peft("seq_bn", "bert")
    with pytest.raises(ConfigError, match=r"combinations of methods"):
        to_peft("mam", "bert")
    with pytest.raises(ConfigError, match="takes a config"):
        to_peft(5, "bert")  # type: ignore[arg-type]
