"""Whole adapted models through transformers' ``save_pretrained``/``from_pretrained``.

``model.save_pretrained(d)`` on an adapted model writes the adapters' tensors with the model's
and their configs into ``config.json`` (see :class:`~adapter_dsl.backend.state.SavePretrained`).
A plain ``AutoModel.from_pretrained(d)`` cannot know about them: it returns the bare model and
reports the adapter tensors as unexpected keys. :func:`from_pretrained` (or
:func:`restore_adapters` on a model already loaded from ``d``) rebuilds them.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from adapter_dsl.backend import core
from adapter_dsl.backend.core import provisional_adapter
from adapter_dsl.backend.serialization import _strip_base_prefix
from adapter_dsl.backend.state import PRETRAINED_KEY
from adapter_dsl.errors import ConfigError

__all__ = ["from_pretrained", "restore_adapters"]

SAFE_FILE = "model.safetensors"
SAFE_INDEX = "model.safetensors.index.json"
BIN_FILE = "pytorch_model.bin"


def from_pretrained(cls: Any, directory: str | os.PathLike[str], **kwargs: Any) -> Any:
    """``cls.from_pretrained(directory, **kwargs)`` with the saved adapters rebuilt and active."""
    with _quiet_unexpected_keys():
        model = cls.from_pretrained(directory, **kwargs)
    restore_adapters(model, directory)
    return model


def restore_adapters(model: nn.Module, directory: str | os.PathLike[str]) -> list[str]:
    """Rebuild the adapters that ``model.config`` carries (from ``save_pretrained``) with their
    tensors from ``directory``'s checkpoint; returns their names. All or nothing: on any problem
    the adapters already rebuilt are deleted again and a ``ConfigError`` says what failed."""
    carried = getattr(model.config, PRETRAINED_KEY, None)
    if carried is None:
        return []
    adapters = carried.get("adapters") if isinstance(carried, dict) else None
    if not isinstance(adapters, dict):
        raise ConfigError.single(
            f"config.json carries a malformed '{PRETRAINED_KEY}' entry",
            expected='{"adapters": {name: config}, "active": [names]}',
            found=repr(carried)[:80],
            code="invalid_checkpoint",
        )
    done: list[str] = []
    with core.failing_as(f"cannot restore the adapters saved in '{directory}'"):
        checkpoint = _Checkpoint(Path(directory))
        try:
            for name, config in adapters.items():
                with provisional_adapter(model, name, config) as own:
                    _fill(model, own, checkpoint, name)
                done.append(name)
            core.set_active(model, [n for n in carried.get("active", []) if n in adapters])
        except BaseException:
            for name in reversed(done):
                core.delete_adapter(model, name)
            raise
    delattr(model.config, PRETRAINED_KEY)  # rebuilt: a later save writes the current adapters
    return done


def _fill(model: nn.Module, own: dict[str, Tensor], checkpoint: _Checkpoint, name: str) -> None:
    mapping = {v: k for k, v in _strip_base_prefix(model, checkpoint.keys, set(own)).items()}
    missing = [k for k in own if k not in mapping]
    if missing:
        raise ConfigError.single(
            f"the checkpoint lacks {len(missing)} tensor(s) of adapter '{name}'",
            expected=f"'{missing[0]}'",
            found=f"{len(checkpoint.keys)} tensors in {checkpoint.where}",
            code="missing_tensor",
        )
    data = checkpoint.tensors([mapping[k] for k in own])
    with torch.no_grad():
        for key, target in own.items():
            value = data[mapping[key]]
            if tuple(value.shape) != tuple(target.shape):
                raise ConfigError.single(
                    f"'{key}' has shape {list(value.shape)} in the checkpoint",
                    expected=f"shape {list(target.shape)}",
                    code="shape_mismatch",
                )
            target.copy_(value.to(dtype=target.dtype, device=target.device))


class _Checkpoint:
    """The tensors of a ``save_pretrained`` directory (safetensors, sharded or not, or .bin)."""

    def __init__(self, directory: Path) -> None:
        self.files: dict[str, Path] = {}
        if (directory / SAFE_INDEX).is_file():
            index = json.loads((directory / SAFE_INDEX).read_text(encoding="utf-8"))
            self.files = {k: directory / f for k, f in index["weight_map"].items()}
        elif (directory / SAFE_FILE).is_file():
            from safetensors import safe_open

            with safe_open(str(directory / SAFE_FILE), framework="pt") as f:
                self.files = dict.fromkeys(f.keys(), directory / SAFE_FILE)
        elif (directory / BIN_FILE).is_file():
            self._bin = torch.load(directory / BIN_FILE, map_location="cpu", weights_only=True)
            self.files = dict.fromkeys(self._bin, directory / BIN_FILE)
        else:
            raise ConfigError.single(
                f"'{directory}' holds no model checkpoint",
                expected=f"{SAFE_FILE}, {SAFE_INDEX} or {BIN_FILE}",
                code="missing_file",
            )
        self.keys = list(self.files)
        self.where = str(directory)

    def tensors(self, keys: list[str]) -> dict[str, Tensor]:
        if hasattr(self, "_bin"):
            return {k: self._bin[k] for k in keys}
        from safetensors import safe_open

        out: dict[str, Tensor] = {}
        for path in sorted({self.files[k] for k in keys}):
            with safe_open(str(path), framework="pt") as f:
                out.update({k: f.get_tensor(k) for k in keys if self.files[k] == path})
        return out


@contextmanager
def _quiet_unexpected_keys() -> Any:
    """transformers reports the adapter tensors as unexpected keys; they are used here."""
    from transformers.utils import logging

    level = logging.get_verbosity()
    logging.set_verbosity_error()
    try:
        yield
    finally:
        logging.set_verbosity(level)
