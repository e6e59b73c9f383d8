"""The Hub's conventions, offline: the model card save_adapter writes, and Hub ids resolved from
a local Hugging Face cache populated in a temporary HF_HOME (no network)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from adapter_dsl import ConfigError
from adapter_dsl.backend import add_adapter, load_adapter, save_adapter
from adapter_dsl.backend.state import peek_state

from .conftest import make_model


def front_matter(text: str) -> dict[str, object]:
    assert text.startswith("---\n")
    head, _, _ = text[4:].partition("\n---\n")
    data = yaml.safe_load(head)
    assert isinstance(data, dict)
    return data


def test_save_adapter_writes_a_model_card(tmp_path: Path) -> None:
    model = make_model("bert")
    model.config.name_or_path = "google-bert/bert-base-uncased"
    add_adapter(model, "sentiment", "lora[r=4, alpha=8]|seq_bn[reduction_factor=8]")
    out = save_adapter(model, "sentiment", tmp_path / "sentiment")
    card = (out / "README.md").read_text(encoding="utf-8")
    meta = front_matter(card)
    assert meta["library_name"] == "adapter-dsl"
    assert meta["base_model"] == "google-bert/bert-base-uncased"
    assert meta["tags"] == ["adapter-dsl", "adapters", "lora", "bottleneck", "bert"]
    state = peek_state(model)
    assert state is not None
    count = sum(p.numel() for p in state.adapters["sentiment"].trainable_parameters())
    assert f"Trainable parameters: {count:,}" in card
    assert "Config: `lora[r=4]|seq_bn[reduction_factor=8]`" in card
    for name in ("adapter_config.json", "adapter_model.safetensors", "README.md"):
        assert f"- `{name}`" in card and (out / name).is_file()
    # The directory with its card still loads.
    assert load_adapter(make_model("bert"), out) == "sentiment"


def test_a_local_base_model_is_not_named_as_base_model(tmp_path: Path) -> None:
    model = make_model("bert")
    model.config.name_or_path = str(tmp_path)  # a local folder is not a Hub id
    add_adapter(model, "a", "seq_bn")
    meta = front_matter((save_adapter(model, "a", tmp_path / "a") / "README.md").read_text())
    assert "base_model" not in meta


def populate_cache(hf_home: Path, repo_id: str, source: Path) -> Path:
    """The layout huggingface_hub keeps: models--org--name/{refs/main, snapshots/<commit>/}."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = hf_home / "hub" / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / commit
    shutil.copytree(source, snapshot)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    return snapshot


def test_load_adapter_resolves_a_hub_id_from_the_local_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # belt and braces: never the network
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.chdir(tmp_path)
    source = make_model("bert")
    add_adapter(source, "task", "lora[r=4]")
    saved = save_adapter(source, "task", tmp_path / "saved")
    populate_cache(tmp_path / "hf", "my-org/bert-task-lora", saved)
    model = make_model("bert")
    assert load_adapter(model, "my-org/bert-task-lora", load_as="hub") == "hub"
    state = peek_state(model)
    assert state is not None and state.active == ("hub",)

    with pytest.raises(ConfigError) as info:
        load_adapter(make_model("bert"), "my-org/not-downloaded")
    (problem,) = info.value.problems
    assert "no Hub repo 'my-org/not-downloaded' in the local Hugging Face cache" in problem.message
    assert "hf download my-org/not-downloaded" in (problem.suggestion or "")
