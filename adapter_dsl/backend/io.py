"""Adapter files, whichever library wrote them: atomic directory writes, tensor files, envelopes.

Shared by our own format (:mod:`adapter_dsl.backend.serialization`) and the other libraries'
(:mod:`adapter_dsl.backend.interop`), which import this module and never each other's
internals. Every problem with a file is a ``ConfigError`` with the code ``bad_checkpoint``
(``model_mismatch`` for a file saved for another model).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from adapter_dsl.backend.architectures import get_model_spec, group_config, model_type_of
from adapter_dsl.errors import ConfigError
from adapter_dsl.loading import read_config_file

__all__ = [
    "CONFIG_FILE",
    "NAME_CONTAINERS",
    "REFERENCE_WEIGHTS",
    "WEIGHTS_FILE",
    "bad_checkpoint",
    "check_saved_for",
    "read_envelope",
    "read_tensor_file",
    "rename_adapter_key",
    "saved_config",
    "write_directory_atomically",
]

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
REFERENCE_WEIGHTS = ("adapter.safetensors", "pytorch_adapter.bin")
#: Path segments after which an adapter name appears in state-dict keys (used for renaming).
NAME_CONTAINERS = frozenset(
    {
        "adapters",
        "invertible_adapters",
        "shared_parameters",
        "loras",
        "prefix_tunings",
        "prefix_gates",
        "refts",
        "prompt_tunings",
    }
)


def bad_checkpoint(message: str, **kw: Any) -> ConfigError:
    """The ``ConfigError`` for an unusable adapter file (code ``bad_checkpoint`` by default)."""
    return ConfigError.single(message, code=kw.pop("code", "bad_checkpoint"), **kw)


def write_directory_atomically(target: Path, write: Callable[[Path], None]) -> None:
    """Fill a temporary sibling directory with ``write`` and rename it to ``target``, so readers
    never see a half-written adapter; an existing ``target`` is replaced only on success."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        write(tmp)
        backup = None
        if target.exists():
            backup = target.with_name(f".{target.name}.old-{os.getpid()}")
            os.replace(target, backup)
        os.replace(tmp, target)
        if backup is not None:
            shutil.rmtree(backup, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def read_tensor_file(path: Path) -> dict[str, Tensor]:
    """All tensors of a ``.safetensors`` file or a ``torch.save``'d dict (read with
    ``weights_only=True``: no code runs); ConfigError if unreadable or not names → tensors."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            loaded: Any = load_file(str(path), device="cpu")
        else:
            loaded = torch.load(str(path), map_location="cpu", weights_only=True)
        if not isinstance(loaded, Mapping) or not all(
            isinstance(k, str) and isinstance(v, Tensor) for k, v in loaded.items()
        ):
            raise ValueError("not a mapping of names to tensors")
    except Exception as exc:
        raise bad_checkpoint(f"the weights file {path} is unreadable or corrupt: {exc}") from exc
    return dict(loaded)


def read_envelope(directory: Path) -> dict[str, Any]:
    """The JSON object of ``directory``'s ``adapter_config.json`` (which must hold a ``config``
    object), read with the config layer's bounds on size and file type."""
    path = directory / CONFIG_FILE
    if not path.is_file():
        raise bad_checkpoint(
            f"'{directory}' is not a saved adapter: {CONFIG_FILE} is missing",
            expected=f"a directory with {CONFIG_FILE} and {WEIGHTS_FILE}",
            found=str(directory),
        )
    try:
        data = json.loads(read_config_file(path, str(path)))  # bounded, regular files only
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise bad_checkpoint(f"cannot read {path}: {exc}", found=str(path)) from exc
    if not isinstance(data, dict) or not isinstance(data.get("config"), dict):
        raise bad_checkpoint(
            f"{path} has no 'config' object", expected='{"config": {...}, ...}', found=str(path)
        )
    return data


def saved_config(path: Path, envelope: dict[str, Any]) -> Any:
    """The validated config of a saved envelope, via :func:`adapter_dsl.load`.

    ``load`` unwraps the envelope and applies the reference's version-based fix-ups (``gelu``
    renames for unversioned files, ``alpha`` for LoRA files older than 1.1.0). When the envelope
    holds only known keys the file itself is loaded, so that problems point at a line and column.
    """
    from adapter_dsl import load
    from adapter_dsl.loading import ENVELOPE_KEYS

    if set(envelope) - {"$schema"} <= ENVELOPE_KEYS:
        return load(path)
    trimmed = {k: v for k, v in envelope.items() if k in ("config", "version")}
    return load(trimmed)


def check_saved_for(model: nn.Module, directory: Path, envelope: Mapping[str, Any]) -> None:
    """Raise ConfigError unless the envelope's model type and hidden size (when given) match."""
    spec = get_model_spec(model)
    model_type = model_type_of(model)
    saved_type = envelope.get("model_type")
    if saved_type is not None and saved_type != model_type:
        raise bad_checkpoint(
            f"the adapter in '{directory}' was saved for '{saved_type}' models, not '{model_type}'",
            expected=repr(model_type),
            found=repr(saved_type),
            code="model_mismatch",
        )
    hidden = getattr(group_config(model, spec.groups[0]), "hidden_size", None)
    saved_hidden = envelope.get("hidden_size")
    if saved_hidden is not None and saved_hidden != hidden:
        raise bad_checkpoint(
            f"the adapter in '{directory}' was saved for hidden size {saved_hidden}, the model "
            f"has {hidden}",
            expected=str(hidden),
            found=str(saved_hidden),
            code="model_mismatch",
        )


def rename_adapter_key(key: str, old: str, new: str) -> str:
    """A state-dict key with the adapter name ``old`` (after a name container) replaced."""
    if old == new:
        return key
    parts = key.split(".")
    for i in range(1, len(parts)):
        if parts[i] == old and parts[i - 1] in NAME_CONTAINERS:
            parts[i] = new
    return ".".join(parts)
