"""The files of a PEFT adapter directory: their names and reading the weights (shared by the
PEFT loaders and the writer)."""

from __future__ import annotations

import os
from pathlib import Path

from torch import Tensor

from adapter_dsl.backend.io import read_tensor_file
from adapter_dsl.errors import ConfigError

__all__ = ["CONFIG_FILE", "PEFT_PREFIX", "WEIGHT_FILES", "read_peft_weights"]

CONFIG_FILE = "adapter_config.json"
WEIGHT_FILES = ("adapter_model.safetensors", "adapter_model.bin")
#: What PEFT puts before a module path in saved tensor names.
PEFT_PREFIX = "base_model.model."


def read_peft_weights(directory: str | os.PathLike[str]) -> tuple[Path, dict[str, Tensor]]:
    """The tensors of a PEFT directory's ``adapter_model.safetensors`` (or ``.bin``)."""
    directory = Path(directory)
    for name in WEIGHT_FILES:
        path = directory / name
        if not path.is_file():
            continue
        return path, read_tensor_file(path)
    raise ConfigError.single(
        f"'{directory}' holds no PEFT adapter weights",
        expected=" or ".join(WEIGHT_FILES),
        found=", ".join(sorted(p.name for p in directory.iterdir())) if directory.is_dir() else "",
        code="bad_checkpoint",
    )
