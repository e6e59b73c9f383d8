"""adapter_dsl.peft: PEFT adapter_config.json dicts to configs and back."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

import adapter_dsl
from adapter_dsl import ConfigError, from_peft, load, parse, to_peft

ROUND_TRIPS = [
    ("lora", "bert"),
    ("lora[r=4, alpha=16, dropout=0.1, attn_matrices=['q','k','v']]", "llama"),
    ("lora[intermediate_lora=True, output_lora=True]", "bert"),
    ("lora[leave_out=[0, 11]]", "bert"),
    ("lora[leave_out=[1, 2], output_lora=True]", "bart"),
    ("lora[selfattn_lora=False, output_lora=True]", "gpt2"),
    ("ia3", "bert"),
    ("ia3[attn_matrices=['q','k','v']]", "gpt2"),
    ("ia3", "llama"),
    ("dora[r=16, alpha=16]", "llama"),
    ("prefix_tuning[prefix_length=20, bottleneck_size=64, shift_positions=True]", "bert"),
    ("prefix_tuning_flat[shift_positions=True]", "gpt2"),
    ("prompt_tuning[prompt_length=5, before_embeddings=True]", "bert"),
    (
        "prompt_tuning[prompt_init='from_string', prompt_init_text='Hello', before_embeddings=True]",
        "bert",
    ),
]


@pytest.mark.parametrize(("spec", "model_type"), ROUND_TRIPS)
def test_round_trip(spec: str, model_type: str) -> None:
    cfg = parse(spec)
    counts = (6, 6) if model_type == "bart" else None
    data = to_peft(cfg, model_type, num_layers=counts)
    assert data["peft_type"] in ("LORA", "IA3", "PREFIX_TUNING", "PROMPT_TUNING")
    assert from_peft(data, model_type, num_layers=counts) == cfg


def test_field_mapping() -> None:
    data = to_peft(parse("lora[r=4, alpha=16, dropout=0.1]"), "llama")
    assert (data["r"], data["lora_alpha"], data["lora_dropout"]) == (4, 16, 0.1)
    assert data["target_modules"] == ["q_proj", "v_proj"]
    # LLaMA: the reference's "intermediate" is down_proj.
    assert to_peft(parse("ia3"), "llama")["target_modules"] == ["down_proj", "k_proj", "v_proj"]
    assert to_peft(parse("ia3"), "llama")["feedforward_modules"] == []
    prefix = to_peft(parse("prefix_tuning[shift_positions=True]"), "bert")
    assert prefix["prefix_projection"] and prefix["encoder_hidden_size"] == 512
    prompt = to_peft(
        parse(
            "prompt_tuning[prompt_init='from_string', prompt_init_text='x', before_embeddings=True]"
        ),
        "bert",
    )
    assert (prompt["prompt_tuning_init"], prompt["prompt_tuning_init_text"]) == ("TEXT", "x")


def test_output_dense_is_anchored() -> None:
    target = to_peft(parse("lora[selfattn_lora=False, output_lora=True]"), "bert")["target_modules"]
    assert isinstance(target, str)
    assert re.fullmatch(target, "bert.encoder.layer.3.output.dense")
    assert re.fullmatch(target, "encoder.layer.0.output.dense")
    assert not re.fullmatch(target, "encoder.layer.0.attention.output.dense")
    # A plain suffix also adapts the attention output projection (attn_output_lora).
    both = from_peft({"peft_type": "LORA", "target_modules": ["output.dense"]}, "bert")
    assert both == parse("lora[selfattn_lora=False, output_lora=True, attn_output_lora=True]")


def test_leave_out_regex_keeps_other_indices() -> None:
    target = to_peft(parse("lora[leave_out=[1]]"), "llama")["target_modules"]
    assert not re.fullmatch(target, "model.layers.1.self_attn.q_proj")
    assert re.fullmatch(target, "model.layers.11.self_attn.q_proj")


def test_layers_to_transform_is_read() -> None:
    data = {
        "peft_type": "LORA",
        "target_modules": ["q_proj", "v_proj"],
        "layers_to_transform": [0, 2],
    }
    assert from_peft(data, "llama", num_layers=4) == parse("lora[leave_out=[1, 3]]")
    with pytest.raises(ConfigError, match="layer count"):
        from_peft(data, "llama")


def test_rslora_becomes_alpha() -> None:
    data = {"peft_type": "LORA", "target_modules": ["query"], "r": 4, "lora_alpha": 2}
    cfg = from_peft({**data, "use_rslora": True}, "bert")
    assert cfg.alpha / cfg.r == pytest.approx(2 / 4**0.5)


def test_model_type_inference() -> None:
    data = {"peft_type": "LORA", "target_modules": ["q_proj", "v_proj"], "r": 4}
    assert from_peft(data) == parse("lora[r=4]")
    with pytest.raises(ConfigError, match="different things on different model types"):
        from_peft({"peft_type": "LORA", "target_modules": ["down_proj"]})


def test_load_converts_peft_dicts(tmp_path: object) -> None:
    data = {"peft_type": "LORA", "target_modules": ["query", "value"], "r": 16, "lora_alpha": 32}
    assert load(data) == parse("lora[r=16, alpha=32]")
    with pytest.raises(ConfigError) as info:
        load({"peft_type": "LORA", "target_modules": ["query"], "lora_alpha": -1})
    assert info.value.problems[0].location.pointer == "/lora_alpha"


INEXPRESSIBLE = [
    ("seq_bn", "bert", "bottleneck adapters"),
    ("lora|seq_bn", "bert", "unions"),
    ("loreft", "bert", "ReFT"),
    ("vera", "bert", "full vera_D"),
    ("lora[use_gating=True]", "bert", "gated"),
    ("lora[init_weights_seed=3]", "bert", "seed"),
    ("lora", "gpt2", "shares one lora_A"),
    ("ia3", "gpt2", "cannot scale only some"),
    ("ia3[alpha=2]", "bert", "no scaling factor"),
    ("prefix_tuning[dropout=0.1]", "bert", "no dropout"),
    ("prompt_tuning[combine='prefix_after_bos']", "bert", "virtual tokens first"),
    ("prompt_tuning", "bert", "before the embedding layer"),
    ("lora[leave_out=[3]]", "bart", "layer counts"),
]


@pytest.mark.parametrize(("spec", "model_type", "text"), INEXPRESSIBLE)
def test_to_peft_errors(spec: str, model_type: str, text: str) -> None:
    with pytest.raises(ConfigError, match=text):
        to_peft(parse(spec), model_type)


FROM_ERRORS = [
    (
        {"peft_type": "IA3", "target_modules": ["k_proj", "v"], "feedforward_modules": ["k_proj"]},
        "/feedforward_modules",
        "scale the input of 'self_attn.k_proj'",
    ),
    ({"peft_type": "LORA", "target_modules": ["q_proj"], "bias": "all"}, "/bias", "biases"),
    ({"peft_type": "LORA", "target_modules": ["q_proj", "lm_head"]}, "/target_modules", "lm_head"),
    (
        {"peft_type": "LORA", "target_modules": ["q_proj"], "rank_pattern": {"q": 2}},
        "/rank_pattern",
        "no counterpart",
    ),
    ({"peft_type": "LOHA", "target_modules": ["q_proj"]}, "/peft_type", "no counterpart"),
    (
        {"peft_type": "LORA", "target_modules": ["self_attn.q_proj"]},
        "/target_modules",
        "cross-attention",
    ),
    (
        {"peft_type": "PROMPT_TUNING", "prompt_tuning_init": "SAMPLE_VOCAB"},
        "/prompt_tuning_init",
        "no counterpart",
    ),
]


@pytest.mark.parametrize(("data", "pointer", "text"), FROM_ERRORS)
def test_from_peft_errors(data: dict[str, object], pointer: str, text: str) -> None:
    model_type = "bart" if "self_attn" in str(data) else "llama"
    with pytest.raises(ConfigError, match=text) as info:
        from_peft(data, model_type)
    assert info.value.problems[0].location.pointer == pointer


def test_lazy_export_and_no_torch_import() -> None:
    assert "to_peft" in dir(adapter_dsl)
    code = (
        "import sys, adapter_dsl.peft, adapter_dsl; adapter_dsl.to_peft;"
        "assert not {'torch', 'transformers', 'peft'} & set(sys.modules), sys.modules.keys()"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_module_names_are_derived_from_the_model_type_table() -> None:
    from adapter_dsl.model_types import MODEL_TYPES
    from adapter_dsl.peft import MODULES

    # The PEFT table covers a subset of the model types, with the rows' own paths.
    assert set(MODULES) <= set(MODEL_TYPES)
    for model_type, mine in MODULES.items():
        row = MODEL_TYPES[model_type]
        assert len(mine.stacks) == len(row.groups), model_type
        for stack, group in zip(mine.stacks, row.groups, strict=True):
            assert stack.layers == group.layers, model_type
            assert stack.roles["intermediate"] == tuple(group.intermediate.split("|"))
            assert stack.roles["output"] == tuple(group.output.split("|")), model_type
            assert stack.roles.get("gate") == (group.gate and (group.gate,)), model_type
            attns = [a for a in (group.self_attention, group.cross_attention) if a is not None]
            for key in ("q", "k", "v", "qkv", "o"):
                backend = tuple(getattr(a, key) for a in attns if getattr(a, key))
                assert stack.roles.get(key, ()) == backend, (model_type, key)
    # What the rows do not say: BERT's cross-attention is optional, GPT-2's q/k/v are one
    # fused projection.
    (bert,) = MODULES["bert"].stacks
    assert bert.optional == {
        "crossattention.self.query",
        "crossattention.self.key",
        "crossattention.self.value",
        "crossattention.output.dense",
    }
    llama = MODULES["llama"].stacks[0].roles
    assert (llama["o"], llama["gate"]) == (("self_attn.o_proj",), ("mlp.gate_proj",))
    assert MODULES["t5"].stacks[0].roles["intermediate"] == (
        "layer.1.DenseReluDense.wi",
        "layer.1.DenseReluDense.wi_1",
    )
    assert MODULES["qwen2"].stacks[0].roles["intermediate"] == ("mlp.up_proj",)
    assert MODULES["gpt2"].fused_qkv and not MODULES["bart"].fused_qkv
    assert not MODULES["bart"].stacks[1].optional  # BART's decoder always cross-attends


LLAMA_Q = {"peft_type": "LORA", "target_modules": ["q_proj"]}

ESCAPES = [
    ({**LLAMA_Q, "use_rslora": True, "r": 2**1100}, {}, "/r", "too large"),
    ({**LLAMA_Q, "use_rslora": True, "r": -4}, {}, "/r", "greater than or equal to 1"),
    ({**LLAMA_Q, "exclude_modules": "("}, {}, "/exclude_modules", "not a valid regular"),
    (
        {**LLAMA_Q, "layers_pattern": "(", "layers_to_transform": [0]},
        {},
        "/layers_pattern",
        "not a valid regular",
    ),
    ({**LLAMA_Q, "exclude_modules": 5}, {}, "/exclude_modules", "list of module names"),
    ({**LLAMA_Q, "layers_to_transform": "0"}, {}, "/layers_to_transform", "layer index"),
    ({**LLAMA_Q, "target_modules": "(?!x).*q_proj"}, {}, "/target_modules", "linear time"),
    ({**LLAMA_Q, "peft_type": 10**5000}, {}, "/peft_type", "too large to show"),
    ({**LLAMA_Q, "bias": 10**5000}, {}, "/bias", "changes the base model"),
    (LLAMA_Q, {"model_type": []}, "", "model type []"),
    (LLAMA_Q, {"num_layers": "x"}, "", "one count per stack"),
    (LLAMA_Q, {"num_layers": 10**6}, "", "from 0 to 4096"),
    (LLAMA_Q, {"num_layers": True}, "", "layer count"),
]


@pytest.mark.parametrize(("data", "kwargs", "pointer", "text"), ESCAPES)
def test_bad_peft_input_is_a_located_config_error(
    data: dict[str, object], kwargs: dict[str, object], pointer: str, text: str
) -> None:
    kwargs = {"model_type": "llama", **kwargs}
    with pytest.raises(ConfigError, match=re.escape(text)) as info:
        from_peft(data, **kwargs)  # type: ignore[arg-type]
    assert info.value.problems[0].location.pointer == pointer


def test_a_catastrophic_pattern_is_matched_in_linear_time() -> None:
    # (.*)*x backtracks exponentially in Python's re on a 30-character name; RE2 cannot.
    with pytest.raises(ConfigError, match="matches no adaptable module"):
        from_peft({"peft_type": "LORA", "target_modules": "(.*)*x"})
    data = {"peft_type": "LORA", "target_modules": "(.*)*q_proj", "exclude_modules": "(.*)*x"}
    assert from_peft(data, "llama") == parse("lora[attn_matrices=['q']]")


@pytest.mark.parametrize("key", ["use_dora", "use_rslora"])
def test_peft_booleans_are_strict(key: str) -> None:
    assert from_peft({**LLAMA_Q, key: False}, "llama") == from_peft(LLAMA_Q, "llama")
    with pytest.raises(ConfigError, match=f"'{key}' must be true or false") as info:
        from_peft({**LLAMA_Q, key: "false"}, "llama")
    assert info.value.problems[0].location.pointer == f"/{key}"


def test_prefix_projection_is_strict() -> None:
    flat = {"peft_type": "PREFIX_TUNING", "num_virtual_tokens": 30}
    assert from_peft({**flat, "prefix_projection": False}) == parse(
        "prefix_tuning_flat[shift_positions=True]"
    )
    with pytest.raises(ConfigError, match="must be true or false"):
        from_peft({**flat, "prefix_projection": "false"})


def test_load_of_a_peft_file_reports_the_same_problem(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "adapter_config.json"
    path.write_text('{"peft_type": "LORA", "target_modules": ["q_proj"], "use_dora": "false"}')
    with pytest.raises(ConfigError, match="must be true or false"):
        load(path)


@pytest.mark.parametrize("excluded", [[1], [0, 11], [1, 10, 100], list(range(12))])
def test_leave_out_patterns_need_no_lookahead(excluded: list[int]) -> None:
    from adapter_dsl.peft.targets import index_except

    pattern = index_except(excluded)
    assert "(?" not in pattern.replace("(?:", "")
    for n in range(1200):
        assert bool(re.fullmatch(pattern, str(n))) == (n not in excluded)


def test_long_lists_of_full_module_names_match_as_in_peft() -> None:
    from adapter_dsl.peft.targets import MAX_NAMES

    names = [f"model.layers.{i}.self_attn.{m}" for i in range(64) for m in ("q_proj", "v_proj")]
    noise = [f"unrelated.module_{i}" for i in range(2000)]
    assert from_peft({"peft_type": "LORA", "target_modules": names + noise}, "llama") == parse(
        "lora"
    )
    with pytest.raises(ConfigError, match="too many module names"):
        from_peft({"peft_type": "LORA", "target_modules": ["q_proj"] * (MAX_NAMES + 1)}, "llama")


def test_peft_conversion_is_declared_by_the_method_families() -> None:
    from adapter_dsl.registry import method_families

    readers = {t for f in method_families() for t, _ in f.peft.reads}
    assert readers == {"LORA", "IA3", "PREFIX_TUNING", "PROMPT_TUNING"}
    writers = {f.architecture for f in method_families() if f.peft.writes is not None}
    assert writers == {"lora", "prefix_tuning", "prompt_tuning"}
    with pytest.raises(ConfigError) as info:
        to_peft("double_seq_bn", "bert")
    text = str(info.value)
    assert text.splitlines()[0] == "cannot write DoubleSeqBnConfig as a PEFT config"
    assert "PEFT cannot express bottleneck adapters as the reference defines them" in text
    assert "expected a config of a family PEFT can express: Prefix tuning" in text
    with pytest.raises(ConfigError) as info:  # a writer's refusal is headed the same way
        to_peft("lora[init_weights_seed=3]", "bert")
    assert str(info.value).splitlines()[0] == "cannot write LoRAConfig as a PEFT config"
    assert "seed torch before creating the PEFT model" in str(info.value)
