"""Tensors the reference stores under two names (``ln_before``: ``adapter_norm_before`` and
``adapter_down.0``; an encoder-decoder model's shared parameters, also under each half): both
accepted on load when they agree, both written with format="adapters"."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from adapter_dsl import ConfigError
from adapter_dsl.backend import add_adapter, load_adapter, save_adapter
from adapter_dsl.backend.state import peek_state
from tests.backend.test_reference_checkpoints import ROOT, fresh

torch = pytest.importorskip("torch")

CASE = "seq_bn__ln_before_True_ln_after_True_residual_before_ln_post_add_scaling_channel"
NORM = "encoder.layer.0.output.adapters.a.adapter_norm_before.weight"
DOWN = "encoder.layer.0.output.adapters.a.adapter_down.0.weight"


def _copy(tmp_path: Path, change: dict[str, float]) -> Path:
    target = tmp_path / "case"
    shutil.copytree(ROOT / "bert" / CASE, target)
    weights = target / "pytorch_adapter.bin"
    tensors = torch.load(str(weights), weights_only=True)
    assert torch.equal(tensors[NORM], tensors[DOWN])  # the reference wrote one tensor twice
    tensors = {k: v.clone() for k, v in tensors.items()}
    for key, delta in change.items():
        tensors[key] += delta
    torch.save(tensors, str(weights))
    return target


def test_disagreeing_alias_copies_are_refused(tmp_path: Path) -> None:
    net = fresh("bert")
    names = [n for n, _ in net.named_modules()]
    with pytest.raises(ConfigError, match=r"the copies '.*' and '.*' differ"):
        load_adapter(net, _copy(tmp_path, {NORM: 0.5}))
    assert [n for n, _ in net.named_modules()] == names


def test_either_copy_alone_is_enough(tmp_path: Path) -> None:
    target = _copy(tmp_path, {})
    weights = target / "pytorch_adapter.bin"
    tensors = torch.load(str(weights), weights_only=True)
    torch.save({k: v for k, v in tensors.items() if ".adapter_norm_before." not in k}, weights)
    net = fresh("bert")
    load_adapter(net, target)
    state = peek_state(net)
    assert state is not None and list(state.adapters) == ["a"]


@pytest.mark.parametrize("ln_before", [True, False])
def test_reference_format_writes_both_names(tmp_path: Path, ln_before: bool) -> None:
    net = fresh("bert")
    add_adapter(net, "a", f"double_seq_bn[ln_before={ln_before}]")
    save_adapter(net, "a", tmp_path / "out", format="adapters")
    keys = set(torch.load(str(tmp_path / "out" / "pytorch_adapter.bin"), weights_only=True))
    norms = {k for k in keys if ".adapter_norm_before." in k}
    downs = {k.replace(".adapter_norm_before.", ".adapter_down.0.") for k in norms}
    assert downs <= keys
    # Two locations × two layers × (weight, bias), and none without a LayerNorm there.
    assert len(norms) == (8 if ln_before else 0)
    again = fresh("bert")
    load_adapter(again, tmp_path / "out")


# The reference adapts each half of an EncoderDecoderModel as a model of its own: the shared
# parameters (VeRA's random matrices) are one tensor under the model's name and each half's.
HALVES = ROOT.parent / "families" / "encoder-decoder"


def _encoder_decoder() -> Any:
    transformers = pytest.importorskip("transformers")
    return transformers.EncoderDecoderModel.from_pretrained(
        str(HALVES / "base"), attn_implementation="eager"
    ).eval()


def test_disagreeing_copies_of_the_halves_shared_parameters_are_refused(tmp_path: Path) -> None:
    target = tmp_path / "vera"
    shutil.copytree(HALVES / "vera", target)
    weights = target / "pytorch_adapter.bin"
    tensors = torch.load(str(weights), weights_only=True)
    key = "decoder.bert.shared_parameters.a.lora_A"
    assert torch.equal(tensors[key], tensors["encoder.shared_parameters.a.lora_A"])
    tensors[key] = tensors[key] + 0.5
    torch.save(tensors, str(weights))
    net = _encoder_decoder()
    names = [n for n, _ in net.named_modules()]
    with pytest.raises(ConfigError, match=r"the copies '.*shared_parameters.a.lora_A' and '.*'"):
        load_adapter(net, target)
    assert [n for n, _ in net.named_modules()] == names


def test_reference_format_writes_the_halves_shared_parameters(tmp_path: Path) -> None:
    net = _encoder_decoder()
    load_adapter(net, HALVES / "vera")  # was: "unexpected tensor 'encoder.shared_parameters…'"
    save_adapter(net, "a", tmp_path / "out", format="adapters")
    saved = torch.load(str(tmp_path / "out" / "pytorch_adapter.bin"), weights_only=True)
    for half in ("encoder", "decoder.bert"):
        for matrix in ("lora_A", "lora_B"):
            key = f"{half}.shared_parameters.a.{matrix}"
            assert torch.equal(saved[key], saved[f"shared_parameters.a.{matrix}"]), key
