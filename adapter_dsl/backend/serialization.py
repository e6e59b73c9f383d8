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
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from adapter_dsl.backend import core
from adapter_dsl.backend.architectures import (
    base_model_of,
    get_architecture,
    group_config,
    model_type_of,
)
from adapter_dsl.backend.headings import heads_failures
from adapter_dsl.backend.sharding import gathered, writes_here
from adapter_dsl.backend.state import AdapterEntry, peek_state
from adapter_dsl.errors import ConfigError
from adapter_dsl.loading import read_config_file

__all__ = ["CONFIG_FILE", "WEIGHTS_FILE", "adapter_state_dict", "load_adapter", "save_adapter"]

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


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("adapter-dsl")
    except Exception:  # not installed (source checkout)
        return "0.1.0"


def _qualified_names(model: nn.Module) -> dict[int, str]:
    names: dict[int, str] = {}
    for qual, module in model.named_modules(remove_duplicate=False):
        names.setdefault(id(module), qual)
    return names


def adapter_state_dict(model: nn.Module, entry: AdapterEntry) -> dict[str, Tensor]:
    """The adapter's own tensors, keyed as in ``model.state_dict()``."""
    names = _qualified_names(model)
    out: dict[str, Tensor] = {}
    for module in entry.owned_modules():
        qual = names.get(id(module))
        if qual is None:
            continue
        prefix = f"{qual}." if qual else ""
        for key, tensor in module.state_dict(prefix=prefix, keep_vars=True).items():
            out.setdefault(key, tensor)
    return out


@heads_failures("cannot save adapter {name!r} of {cls}")
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
    :mod:`adapter_dsl.backend.interop.reference`).
    """
    from safetensors.torch import save_file

    if format != "adapter_dsl":
        from adapter_dsl.backend.interop.reference import save_adapter_as

        return save_adapter_as(model, name, directory, format=format)

    _, entry = core._entry(model, name)
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
        raise _fail(f"the weights file {path} is unreadable or corrupt: {exc}") from exc
    return dict(loaded)


def _fail(message: str, **kw: Any) -> ConfigError:
    return ConfigError.single(message, code=kw.pop("code", "bad_checkpoint"), **kw)


def _read_envelope(directory: Path) -> dict[str, Any]:
    path = directory / CONFIG_FILE
    if not path.is_file():
        raise _fail(
            f"'{directory}' is not a saved adapter: {CONFIG_FILE} is missing",
            expected=f"a directory with {CONFIG_FILE} and {WEIGHTS_FILE}",
            found=str(directory),
        )
    try:
        data = json.loads(read_config_file(path, str(path)))  # bounded, regular files only
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _fail(f"cannot read {path}: {exc}", found=str(path)) from exc
    if not isinstance(data, dict) or not isinstance(data.get("config"), dict):
        raise _fail(
            f"{path} has no 'config' object", expected='{"config": {...}, ...}', found=str(path)
        )
    return data


def _saved_config(path: Path, envelope: dict[str, Any]) -> Any:
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


def _weights_file(directory: Path) -> Path:
    for candidate in (WEIGHTS_FILE, *REFERENCE_WEIGHTS):
        if (directory / candidate).is_file():
            return directory / candidate
    raise _fail(
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
            raise _fail(f"the weights file {path} is unreadable or corrupt: {exc}") from exc

    def tensors(self, keys: list[str]) -> dict[str, Tensor]:
        if self._bin is not None:
            return {k: self._bin[k] for k in keys}
        from safetensors import safe_open

        try:
            with safe_open(str(self.path), framework="pt") as f:
                return {k: f.get_tensor(k) for k in keys}
        except Exception as exc:
            raise _fail(f"the weights file {self.path} is corrupt: {exc}") from exc


def rename_adapter_key(key: str, old: str, new: str) -> str:
    """A state-dict key with the adapter name ``old`` (after a name container) replaced."""
    if old == new:
        return key
    parts = key.split(".")
    for i in range(1, len(parts)):
        if parts[i] == old and parts[i - 1] in NAME_CONTAINERS:
            parts[i] = new
    return ".".join(parts)


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


@contextmanager
def provisional_adapter(model: nn.Module, name: str, config: Any) -> Iterator[dict[str, Tensor]]:
    """Add adapter ``name`` and yield its own state dict for filling; if anything in the block
    fails, the adapter is deleted and the previous active setup restored. The RNG is forked so
    that a failed load leaves even the random state untouched."""
    state_before = peek_state(model)
    active_before = state_before.active if state_before is not None else ()
    with torch.random.fork_rng(devices=[]):
        core.add_adapter(model, name, config)
    try:
        yield adapter_state_dict(model, core._entry(model, name)[1])
    except BaseException:
        core.delete_adapter(model, name)
        state_after = peek_state(model)
        if state_after is not None:
            state_after.active = active_before
        raise


def check_saved_for(model: nn.Module, directory: Path, envelope: Mapping[str, Any]) -> None:
    """Raise ConfigError unless the envelope's model type and hidden size (when given) match."""
    arch = get_architecture(model)
    model_type = model_type_of(model)
    saved_type = envelope.get("model_type")
    if saved_type is not None and saved_type != model_type:
        raise _fail(
            f"the adapter in '{directory}' was saved for '{saved_type}' models, not '{model_type}'",
            expected=repr(model_type),
            found=repr(saved_type),
            code="model_mismatch",
        )
    hidden = getattr(group_config(model, arch.groups[0]), "hidden_size", None)
    saved_hidden = envelope.get("hidden_size")
    if saved_hidden is not None and saved_hidden != hidden:
        raise _fail(
            f"the adapter in '{directory}' was saved for hidden size {saved_hidden}, the model "
            f"has {hidden}",
            expected=str(hidden),
            found=str(saved_hidden),
            code="model_mismatch",
        )


@heads_failures("cannot load an adapter from '{directory}' into {cls}")
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
    envelope = _read_envelope(directory)
    weights_path = _weights_file(directory)
    check_saved_for(model, directory, envelope)
    saved_name = envelope.get("name")
    name = load_as or saved_name
    if not isinstance(name, str):
        raise _fail("the saved adapter has no name; pass load_as=", found=repr(saved_name))
    cfg = _saved_config(directory / CONFIG_FILE, envelope)
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
            raise _fail(
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
