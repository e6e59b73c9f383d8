"""Saving and loading adapters (our directory format, plus the reference's weight files).

A saved adapter is a directory with

* ``adapter_config.json``: ``{"config": <to_dict()>, "hidden_size", "model_class", "model_name",
  "model_type", "name", "version": "adapter_dsl.<version>"}`` (sorted keys, indent 2: the
  reference's envelope with our version tag);
* ``adapter_model.safetensors``: the adapter's own tensors under the model's state-dict keys
  (e.g. ``encoder.layer.0.output.adapters.<name>.adapter_down.0.weight``).

Saving writes into a temporary sibling directory and renames it into place, so a crash never
leaves a half-written adapter. Loading checks the envelope, the config, the model type and hidden
size, then every tensor name and shape against a freshly built adapter, and only then copies the
weights; on any failure the model is left exactly as it was.

Reference directories (``version`` ``adapters.*``; ``adapter.safetensors`` or
``pytorch_adapter.bin``) load too, with their keys taken as they are. Because the reference never
saves shared parameters of bare base models (Compacter's ``phm_rule``), missing
``shared_parameters.*`` keys are tolerated for those files only (they keep their initial values).

File handling shared with the other libraries' formats (atomic writes, tensor files, envelopes)
is in :mod:`adapter_dsl.backend.io`; directories those libraries wrote are loaded by
:mod:`adapter_dsl.backend.interop`, which never imports this module.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

from adapter_dsl.backend import core
from adapter_dsl.backend.architectures import base_model_of, model_type_of
from adapter_dsl.backend.core import provisional_adapter
from adapter_dsl.backend.io import (
    CONFIG_FILE,
    REFERENCE_WEIGHTS,
    WEIGHTS_FILE,
    bad_checkpoint,
    check_saved_for,
    read_envelope,
    rename_adapter_key,
    saved_config,
    write_directory_atomically,
)
from adapter_dsl.backend.sharding import gathered, writes_here
from adapter_dsl.backend.state import adapter_state_dict, require_adapter
from adapter_dsl.errors import ConfigError

__all__ = ["CONFIG_FILE", "WEIGHTS_FILE", "adapter_state_dict", "load_adapter", "save_adapter"]


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("adapter-dsl")
    except Exception:  # not installed (source checkout)
        return "0.1.0"


def save_adapter(
    model: nn.Module,
    name: str,
    directory: str | os.PathLike[str],
    *,
    format: str = "adapter_dsl",
) -> Path:
    """Write adapter ``name`` to ``directory`` (created or replaced atomically); returns it.

    Besides the config and the weights, a ``README.md`` model card for the Hub is written.

    ``format="adapters"`` writes the reference library's layout instead (see
    :mod:`adapter_dsl.backend.interop.reference`), ``format="peft"`` a PEFT directory (see
    :mod:`adapter_dsl.backend.interop.peft_save`).
    """
    from safetensors.torch import save_file

    if format != "adapter_dsl":
        from adapter_dsl.backend.interop.reference import save_adapter_as

        return save_adapter_as(model, name, directory, format=format)

    _, entry = require_adapter(model, name)
    if entry.merged:
        raise ConfigError.single(
            f"adapter '{name}' is merged; unmerge_adapter() it before saving", code="merged"
        )
    target = Path(directory)
    cfg = model.config
    envelope = {
        "config": entry.config.to_dict(),
        "hidden_size": getattr(cfg, "hidden_size", None),
        "model_class": type(model).__name__,
        "model_name": getattr(cfg, "name_or_path", "") or "",
        "model_type": model_type_of(model),
        "name": name,
        "version": f"adapter_dsl.{_version()}",
    }
    # Shards of a fully_shard model are gathered on every rank; rank 0 writes.
    tensors, sharded = gathered(adapter_state_dict(model, entry))
    if not writes_here(sharded):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    from adapter_dsl.backend.hub import CARD_FILE, describe, model_card

    card = model_card(
        name=name, files=[CONFIG_FILE, WEIGHTS_FILE, CARD_FILE], **describe(model, entry)
    )

    def write(tmp: Path) -> None:
        (tmp / CONFIG_FILE).write_text(
            json.dumps(envelope, indent=2, sort_keys=True) + "\n", encoding="utf-8"
        )
        save_file(tensors, str(tmp / WEIGHTS_FILE), metadata={"format": "pt"})
        (tmp / CARD_FILE).write_text(card, encoding="utf-8")  # the Hub's model card

    write_directory_atomically(target, write)
    return target


def _weights_file(directory: Path) -> Path:
    for candidate in (WEIGHTS_FILE, *REFERENCE_WEIGHTS):
        if (directory / candidate).is_file():
            return directory / candidate
    raise bad_checkpoint(
        f"'{directory}' holds no adapter weights",
        expected=" or ".join((WEIGHTS_FILE, *REFERENCE_WEIGHTS)),
        found=", ".join(sorted(p.name for p in directory.iterdir())) or "an empty directory",
    )


class _Weights:
    """Lazy access to a weights file: names and shapes first, tensor data on demand."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._bin: dict[str, Tensor] | None = None
        try:
            if path.suffix == ".safetensors":
                from safetensors import safe_open

                with safe_open(str(path), framework="pt") as f:
                    self.shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118
            else:
                loaded = torch.load(str(path), map_location="cpu", weights_only=True)
                if not isinstance(loaded, Mapping) or not all(
                    isinstance(v, Tensor) for v in loaded.values()
                ):
                    raise ValueError("not a mapping of tensors")
                self._bin = dict(loaded)
                self.shapes = {k: tuple(v.shape) for k, v in self._bin.items()}
        except ConfigError:
            raise
        except Exception as exc:
            raise bad_checkpoint(
                f"the weights file {path} is unreadable or corrupt: {exc}"
            ) from exc

    def tensors(self, keys: list[str]) -> dict[str, Tensor]:
        if self._bin is not None:
            return {k: self._bin[k] for k in keys}
        from safetensors import safe_open

        try:
            with safe_open(str(self.path), framework="pt") as f:
                return {k: f.get_tensor(k) for k in keys}
        except Exception as exc:
            raise bad_checkpoint(f"the weights file {self.path} is corrupt: {exc}") from exc


def _strip_base_prefix(model: nn.Module, keys: list[str], expected: set[str]) -> dict[str, str]:
    """Map file keys onto model keys, accepting a head model's ``base_model_prefix`` (``bert.``)."""
    mapping: dict[str, str] = {}
    prefix = getattr(base_model_of(model), "base_model_prefix", "")
    for key in keys:
        if key not in expected and prefix and key.startswith(prefix + "."):
            stripped = key[len(prefix) + 1 :]
            if stripped in expected:
                mapping[key] = stripped
                continue
        if key not in expected and prefix and f"{prefix}.{key}" in expected:
            mapping[key] = f"{prefix}.{key}"
            continue
        mapping[key] = key
    return mapping


def load_adapter(
    model: nn.Module,
    directory: str | os.PathLike[str],
    *,
    load_as: str | None = None,
    set_active: bool = True,
) -> str:
    """Load a saved adapter into ``model``; returns its name and (by default) activates it.

    ``directory`` is a saved adapter's directory or a Hub id (``"org/name"``) already in the
    local Hugging Face cache (never downloaded).

    Raises ``ConfigError`` (with the model unchanged) for a missing or corrupt file, an invalid
    config, another model type or hidden size, a name already in use, or any tensor whose name
    or shape differs from what the config builds on this model.
    """
    from adapter_dsl.backend.hub import resolve_location

    directory = resolve_location(directory)
    # Directories saved by the reference library or by PEFT are handled in interop/.
    from adapter_dsl.backend.interop import load_foreign

    foreign = load_foreign(model, directory, load_as=load_as, set_active=set_active)
    if foreign is not None:
        return foreign
    envelope = read_envelope(directory)
    weights_path = _weights_file(directory)
    check_saved_for(model, directory, envelope)
    saved_name = envelope.get("name")
    name = load_as or saved_name
    if not isinstance(name, str):
        raise bad_checkpoint("the saved adapter has no name; pass load_as=", found=repr(saved_name))
    cfg = saved_config(directory / CONFIG_FILE, envelope)
    weights = _Weights(weights_path)

    # Build the adapter to learn the exact expected keys; undone on any problem.
    with provisional_adapter(model, name, cfg) as own:
        file_keys = [rename_adapter_key(k, str(saved_name), name) for k in weights.shapes]
        original = dict(zip(file_keys, weights.shapes, strict=True))
        mapping = _strip_base_prefix(model, file_keys, set(own))
        problems: list[str] = []
        by_model_key: dict[str, str] = {}
        for file_key, model_key in mapping.items():
            if model_key not in own:
                problems.append(f"unexpected tensor '{file_key}'")
                continue
            shape = weights.shapes[original[file_key]]
            if tuple(own[model_key].shape) != shape:
                problems.append(
                    f"'{model_key}' has shape {list(shape)}, the model expects "
                    f"{list(own[model_key].shape)}"
                )
            by_model_key[model_key] = original[file_key]
        missing = [k for k in own if k not in by_model_key]
        problems.extend(f"missing tensor '{k}'" for k in missing)
        if problems:
            shown = "; ".join(problems[:5]) + (
                f"; … {len(problems) - 5} more" if len(problems) > 5 else ""
            )
            raise bad_checkpoint(
                f"the weights in '{weights_path}' do not match the adapter config: {shown}",
                expected=f"{len(own)} tensors built by the config",
                found=f"{len(weights.shapes)} tensors in the file",
            )
        data = weights.tensors(list(by_model_key.values()))
        with torch.no_grad():
            for model_key, file_key in by_model_key.items():
                target = own[model_key]
                target.copy_(data[file_key].to(dtype=target.dtype, device=target.device))
    if set_active:
        core.set_active(model, name)
    return name
