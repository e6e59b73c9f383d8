"""``save_pretrained`` carries the adapters; ``from_pretrained``/``restore_adapters`` bring them back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from adapter_dsl import ConfigError
from adapter_dsl.backend import (
    add_adapter,
    delete_adapter,
    list_adapters,
    merge_adapter,
    set_active,
)
from adapter_dsl.backend.pretrained import from_pretrained, restore_adapters
from adapter_dsl.backend.state import PRETRAINED_KEY, peek_state
from tests.backend.conftest import make_model, run

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


def _perturb(model: Any) -> None:
    state = peek_state(model)
    assert state is not None
    with torch.no_grad():
        for entry in state.adapters.values():
            for p in entry.parameters():
                p.add_(torch.rand_like(p) * 0.2 - 0.1)


def _adapted(kind: str, configs: dict[str, str], active: list[str]) -> Any:
    model = make_model(kind)
    for name, config in configs.items():
        add_adapter(model, name, config)
    set_active(model, active)
    _perturb(model)
    return model


@pytest.mark.parametrize(
    ("kind", "configs"),
    [
        ("bert", {"a": "seq_bn", "b": "lora", "c": "prefix_tuning"}),
        ("bert", {"p": "prompt_tuning", "r": "loreft"}),
        ("llama", {"a": "seq_bn_inv", "b": "dora", "c": "prefix_tuning"}),
    ],
)
def test_save_pretrained_round_trip(tmp_path: Path, kind: str, configs: dict[str, str]) -> None:
    active = list(configs)[:2]
    model = _adapted(kind, configs, active)
    expected = run(model, kind)
    model.save_pretrained(tmp_path)
    assert not hasattr(model.config, PRETRAINED_KEY)  # written to the file only
    saved = json.loads((tmp_path / "config.json").read_text())[PRETRAINED_KEY]
    assert list(saved["adapters"]) == list(configs)
    assert saved["active"] == active

    loaded = from_pretrained(type(model), tmp_path)
    assert list_adapters(loaded) == list(configs)
    assert peek_state(loaded).active == tuple(active)  # type: ignore[union-attr]
    assert torch.equal(run(loaded.eval(), kind), expected)
    assert not hasattr(loaded.config, PRETRAINED_KEY)


def test_plain_from_pretrained_then_restore(tmp_path: Path) -> None:
    model = _adapted("bert", {"a": "seq_bn", "b": "ia3"}, ["b"])
    expected = run(model, "bert")
    model.save_pretrained(tmp_path, safe_serialization=True)
    bare = transformers.BertModel.from_pretrained(tmp_path).eval()
    assert list_adapters(bare) == []
    assert restore_adapters(bare, tmp_path) == ["a", "b"]
    assert torch.equal(run(bare, "bert"), expected)
    assert restore_adapters(bare, tmp_path) == []  # nothing carried any more


def test_merged_adapter_is_saved_as_weights(tmp_path: Path) -> None:
    model = _adapted("bert", {"a": "lora", "b": "seq_bn"}, ["a"])
    expected = run(model, "bert")
    merge_adapter(model, "a")
    model.save_pretrained(tmp_path)
    loaded = from_pretrained(transformers.BertModel, tmp_path).eval()
    assert list_adapters(loaded) == ["b"]
    assert torch.allclose(run(loaded, "bert"), expected, atol=1e-5)


def test_failed_restore_leaves_the_model_bare(tmp_path: Path) -> None:
    model = _adapted("bert", {"a": "seq_bn", "b": "lora"}, ["a"])
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config[PRETRAINED_KEY]["adapters"]["b"]["r"] = 4  # no longer matches the saved tensors
    (tmp_path / "config.json").write_text(json.dumps(config))
    bare = transformers.BertModel.from_pretrained(tmp_path)
    names = [n for n, _ in bare.named_modules()]
    with pytest.raises(ConfigError) as info:
        restore_adapters(bare, tmp_path)
    assert str(info.value).startswith(f"cannot restore the adapters saved in '{tmp_path}'")
    assert "has shape" in str(info.value)
    assert list_adapters(bare) == []
    assert [n for n, _ in bare.named_modules()] == names


def test_deleting_every_adapter_restores_plain_save_pretrained() -> None:
    model = make_model("bert")
    add_adapter(model, "a", "lora")
    assert "save_pretrained" in model.__dict__
    delete_adapter(model, "a")
    assert "save_pretrained" not in model.__dict__


def test_round_trip_where_transformers_saves_historic_names(tmp_path: Path) -> None:
    """transformers 5 writes ViT under its checkpoints' old names (``encoder.layer.0.attention.
    attention.query`` for ``layers.0.attention.q_proj``), the adapters' tensors included, and
    renames them back on load; restoring takes the same renamings."""
    from safetensors import safe_open

    from tests.backend.families import family_outputs, make_family_model

    model = make_family_model("vit")
    add_adapter(model, "a", "lora")
    add_adapter(model, "b", "seq_bn")
    set_active(model, ["a", "b"])
    _perturb(model)
    with torch.no_grad():
        expected = family_outputs(model, "vit")["last_hidden_state"]
    model.save_pretrained(tmp_path)
    with safe_open(str(tmp_path / "model.safetensors"), framework="pt") as f:
        assert any(".attention.attention.query.loras.a." in k for k in f.keys())  # noqa: SIM118
    loaded = from_pretrained(type(model), tmp_path).eval()  # was: "lacks 8 tensor(s)"
    assert list_adapters(loaded) == ["a", "b"]
    with torch.no_grad():
        got = family_outputs(loaded, "vit")["last_hidden_state"]  # SDPA now: not bit-equal
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
