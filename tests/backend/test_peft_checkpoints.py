"""PEFT LoRA/IA³ directories load through adapter_dsl.backend.load_adapter with equal outputs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

peft = pytest.importorskip("peft")
transformers = pytest.importorskip("transformers")

from adapter_dsl import ConfigError, to_peft  # noqa: E402
from adapter_dsl.backend import load_adapter  # noqa: E402
from adapter_dsl.backend.interop import detect_format  # noqa: E402

SIZES = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, vocab_size=99)


def _bert() -> Any:
    cfg = transformers.BertConfig(intermediate_size=37, **SIZES)
    return transformers.BertModel(cfg)


def _llama() -> Any:
    cfg = transformers.LlamaConfig(intermediate_size=37, num_key_value_heads=2, **SIZES)
    return transformers.LlamaModel(cfg)


def _with_biases(model: Any) -> Any:
    # Non-zero biases, so that IA³'s treatment of the bias matters.
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.Linear) and module.bias is not None:
                module.bias.copy_(torch.randn(module.bias.shape, generator=gen) * 0.5)
    return model


def _peft_dir(tmp: Path, build: Any, config: Any) -> tuple[Path, dict[str, Any], Any]:
    torch.manual_seed(0)
    base = _with_biases(build())
    state = {k: v.clone() for k, v in base.state_dict().items()}
    model = peft.get_peft_model(base, config)
    gen = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_" in name or "ia3_l" in name:
                param.add_(torch.randn(param.shape, generator=gen) * 0.3)
    model.save_pretrained(str(tmp))
    return tmp, state, model.eval()


def _ours(build: Any, state: dict[str, Any], directory: Path) -> Any:
    torch.manual_seed(123)
    model = build()
    model.load_state_dict(state)
    assert load_adapter(model, directory) == "default"
    return model.eval()


IDS = torch.tensor([[1, 5, 7, 9, 11, 3], [2, 4, 6, 8, 10, 12]])

CASES = {
    "bert-lora": (
        _bert,
        lambda: peft.LoraConfig(
            r=4, lora_alpha=12, lora_dropout=0.1, target_modules=["query", "key", "value"]
        ),
    ),
    "bert-ia3": (
        _bert,
        lambda: peft.IA3Config(target_modules=["key", "value"], feedforward_modules=[]),
    ),
    "llama-lora": (
        _llama,
        lambda: peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]),
    ),
    "llama-ia3": (
        _llama,
        lambda: peft.IA3Config(target_modules=["k_proj", "v_proj"], feedforward_modules=[]),
    ),
    "llama-dora": (
        _llama,
        lambda: peft.LoraConfig(r=4, lora_alpha=4, target_modules=["q_proj"], use_dora=True),
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_outputs_equal_peft(case: str, tmp_path: Path) -> None:
    build, make_config = CASES[case]
    directory, state, reference = _peft_dir(tmp_path / case, build, make_config())
    assert detect_format(directory) == "peft"
    ours = _ours(build, state, directory)
    with torch.no_grad():
        expected = reference(input_ids=IDS).last_hidden_state
        got = ours(input_ids=IDS).last_hidden_state
        plain = build()
        plain.load_state_dict(state)
        unadapted = plain.eval()(input_ids=IDS).last_hidden_state
    assert not torch.allclose(expected, unadapted, atol=1e-3)  # the adapter does something
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_to_peft_configs_are_accepted_by_peft(tmp_path: Path) -> None:
    import adapter_dsl

    for spec, cls in (("lora[r=4,output_lora=True]", peft.LoraConfig), ("ia3", peft.IA3Config)):
        data = to_peft(adapter_dsl.parse(spec), "bert")
        config = cls(**{k: v for k, v in data.items() if k != "peft_type"})
        model = peft.get_peft_model(_bert(), config)
        adapted = {n for n, _ in model.named_modules() if n.endswith(("lora_A", "ia3_l"))}
        assert not any("attention.output.dense" in n for n in adapted)


def test_bad_shapes_leave_the_model_unchanged(tmp_path: Path) -> None:
    config = peft.LoraConfig(r=4, lora_alpha=8, target_modules=["query", "value"])
    directory, _, _ = _peft_dir(tmp_path / "d", _bert, config)
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(directory / "adapter_model.safetensors"))
    key = next(k for k in tensors if k.endswith("lora_A.weight"))
    tensors[key] = torch.zeros(3, 32)
    save_file(tensors, str(directory / "adapter_model.safetensors"))
    model = _bert()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ConfigError, match="has shape"):
        load_adapter(model, directory)
    after = model.state_dict()
    assert set(after) == set(before)
    assert all(torch.equal(after[k], before[k]) for k in before)


def test_feedforward_ia3_scales_inputs(tmp_path: Path) -> None:
    config = peft.IA3Config(
        target_modules=["key", "value", "output.dense"], feedforward_modules=["output.dense"]
    )
    directory, state, reference = _peft_dir(tmp_path / "d", _bert, config)
    saved = json.loads((directory / "adapter_config.json").read_text())
    assert saved["feedforward_modules"]
    ours = _ours(_bert, state, directory)
    with torch.no_grad():
        expected = reference(input_ids=IDS).last_hidden_state
        got = ours(input_ids=IDS).last_hidden_state
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    unit = ours.encoder.layer[0].output.dense.loras["default"]
    assert unit.lora_B.shape == (37, 1)  # the input of output.dense
