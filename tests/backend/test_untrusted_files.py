"""Saved adapters and checkpoints: only regular files of bounded size are read, and names in a
manifest never point outside the checkpoint."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from adapter_dsl import ConfigError
from adapter_dsl.backend import add_adapter, load_adapter, save_adapter
from adapter_dsl.backend.state import peek_state
from tests.backend.conftest import make_model


def test_a_fifo_as_the_saved_config_is_refused_without_blocking(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "adapter_config.json")
    model = make_model("bert")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ConfigError):
        load_adapter(model, tmp_path)
    assert before.keys() == model.state_dict().keys()


def test_a_saved_config_over_the_bound_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = make_model("bert")
    add_adapter(model, "a", "lora")
    save_adapter(model, "a", tmp_path / "a")
    monkeypatch.setenv("ADAPTER_DSL_MAX_LENGTH", "64")
    with pytest.raises(ConfigError, match="too large to be a config file"):
        load_adapter(make_model("bert"), tmp_path / "a")


@pytest.mark.parametrize("entry", ["../outside", "ABSOLUTE"])
def test_a_checkpoint_manifest_never_names_files_outside_the_checkpoint(
    tmp_path: Path, entry: str
) -> None:
    import json

    from adapter_dsl.backend.training import MANIFEST_FILE, load_trainable

    model = make_model("bert")
    add_adapter(model, "a", "lora")
    save_adapter(model, "a", tmp_path / "outside")  # a valid adapter, outside the checkpoint
    checkpoint = tmp_path / "checkpoint"
    checkpoint.mkdir()
    name = str(tmp_path / "outside") if entry == "ABSOLUTE" else entry
    (checkpoint / MANIFEST_FILE).write_text(json.dumps({"adapters": [name], "head": []}))
    fresh = make_model("bert")
    with pytest.raises(ConfigError, match="not a file or folder of the checkpoint") as info:
        load_trainable(fresh, checkpoint)
    assert info.value.problems[0].code == "path_in_data"
    state = peek_state(fresh)
    assert state is None or not state.adapters
