"""load_adapter opens only regular files of bounded size: a FIFO or a huge config is refused."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from adapter_dsl import ConfigError, loading
from adapter_dsl.backend import add_adapter, load_adapter, save_adapter
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
    monkeypatch.setattr(loading, "MAX_FILE_BYTES", 64)
    with pytest.raises(ConfigError, match="too large to be a config file"):
        load_adapter(make_model("bert"), tmp_path / "a")
