"""``save_adapter(..., format="peft")``: PeftModel.from_pretrained computes what the adapter
computes here (1e-5), load_adapter reads the directory back; what PEFT cannot express is a
ConfigError before anything is written."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
peft = pytest.importorskip("peft")

from adapter_dsl import ConfigError  # noqa: E402
from adapter_dsl.backend import (  # noqa: E402
    add_adapter,
    load_adapter,
    merge_adapter,
    save_adapter,
    set_active,
)
from adapter_dsl.model_types import MODEL_TYPES  # noqa: E402

from .peft_models import peft_model, peft_outputs  # noqa: E402

#: An every-location LoRA (gate where the model has one), a DoRA, an IA³ scaling outputs and
#: the input of the feed-forward output projection (PEFT's feed-forward IA³).
SPECS = {
    "lora": "lora[r=4, alpha=8, attn_matrices=['q','k','v'], attn_output_lora=True, "
    "intermediate_lora=True, output_lora=True{gate}]",
    "dora": "dora[r=4, alpha=4, attn_output_lora=True, output_lora=True{gate}]",
    "ia3": "ia3[attn_matrices=['q','k','v'], output_lora=True, input_scaling=['output']]",
}
FAMILIES = ("bert", "bart", "gpt2", "llama", "t5", "mt5", "vit", "whisper", "clip", "qwen3")
CASES = [
    (family, method)
    for family in FAMILIES
    for method in SPECS
    # PEFT shares one lora_A across a fused q/k/v projection; DoRA needs bias-free targets.
    if not (family == "gpt2" and method != "ia3")
    and not (method == "dora" and family not in ("llama", "t5", "mt5", "qwen3"))
]


def _spec(family: str, method: str) -> str:
    gated = any(g.gate for g in MODEL_TYPES[family].groups) and family != "t5"
    return SPECS[method].format(gate=", gate_lora=True" if gated else "")


def _adapted(family: str, spec: str) -> Any:
    model = peft_model(family)
    add_adapter(model, "a", spec)
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if ".loras.a." in name:
                param.add_(torch.randn(param.shape, generator=gen) * 0.2)
    set_active(model, "a")
    return model.eval()


@pytest.mark.parametrize(("family", "method"), CASES)
def test_peft_loads_what_we_save(family: str, method: str, tmp_path: Path) -> None:
    ours = _adapted(family, _spec(family, method))
    save_adapter(ours, "a", tmp_path, format="peft")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "adapter_config.json",
        "adapter_model.safetensors",
    ]
    served = peft.PeftModel.from_pretrained(peft_model(family), str(tmp_path)).eval()
    back = peft_model(family)
    assert load_adapter(back, tmp_path, load_as="a") == "a"  # ours → PEFT → ours
    with torch.no_grad():
        expected = peft_outputs(ours, family)
        for other in (served, back.eval()):
            got = peft_outputs(other, family)
            for key in expected:
                torch.testing.assert_close(got[key], expected[key], atol=1e-5, rtol=1e-5)
    assert back.state_dict().keys() == ours.state_dict().keys()


def test_peft_to_ours_to_peft(tmp_path: Path) -> None:
    base = peft_model("llama")
    reference = peft.get_peft_model(
        copy.deepcopy(base), peft.LoraConfig(r=4, lora_alpha=4, target_modules="all-linear")
    )
    with torch.no_grad():
        for name, param in reference.named_parameters():
            if "lora_" in name:
                param.add_(torch.randn(param.shape) * 0.2)
    reference.save_pretrained(str(tmp_path / "peft"))
    load_adapter(base, tmp_path / "peft")
    save_adapter(base, "default", tmp_path / "again", format="peft")
    from safetensors.torch import load_file

    first = load_file(str(tmp_path / "peft" / "adapter_model.safetensors"))
    again = load_file(str(tmp_path / "again" / "adapter_model.safetensors"))
    assert first.keys() == again.keys()
    assert all(torch.equal(first[k], again[k]) for k in first)


@pytest.mark.parametrize(
    ("family", "spec", "needle"),
    [
        ("bert", "seq_bn", "bottleneck adapters"),
        ("gpt2", "lora", "shares one lora_A"),
        ("bert", "ia3[alpha=2]", "no scaling factor"),
        ("llama", "dora[r=4, alpha=8]", "PEFT's DoRA normalises"),
        ("bert", "dora[r=4, alpha=4]", "has a bias"),
        ("bert", "lora[use_gating=True]", "no gated"),
        ("bert", "vera", "VeRA"),
    ],
)
def test_inexpressible_adapters_write_nothing(
    family: str, spec: str, needle: str, tmp_path: Path
) -> None:
    model = peft_model(family)
    add_adapter(model, "a", spec)
    target = tmp_path / "out"
    with pytest.raises(ConfigError, match=needle):
        save_adapter(model, "a", target, format="peft")
    assert not target.exists()


def test_merged_adapter_is_refused(tmp_path: Path) -> None:
    model = peft_model("llama")
    add_adapter(model, "a", "lora")
    merge_adapter(model, "a")
    with pytest.raises(ConfigError, match="merged"):
        save_adapter(model, "a", tmp_path / "out", format="peft")


def test_config_is_peft_json(tmp_path: Path) -> None:
    model = _adapted("llama", "ia3[input_scaling=['intermediate']]")
    save_adapter(model, "a", tmp_path, format="peft")
    data = json.loads((tmp_path / "adapter_config.json").read_text())
    assert data["peft_type"] == "IA3"
    assert data["feedforward_modules"] == ["down_proj"]
    assert set(data["feedforward_modules"]) <= set(data["target_modules"])
