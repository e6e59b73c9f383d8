"""Adapters saved by AdapterHub ``adapters`` (the reference library), in both directions.

Loading (:func:`load_reference_adapter`, used by :func:`adapter_dsl.backend.load_adapter` for
every directory whose ``adapter_config.json`` does not carry our version tag):

* the config comes from the envelope through :func:`adapter_dsl.load`, so the reference's
  load-time fix-ups apply (``gelu`` renames for files without a ``version``; ``alpha = r`` for
  LoRA files older than 1.1.0);
* the weights come from ``adapter.safetensors`` or ``pytorch_adapter.bin`` (read with
  ``torch.load(weights_only=True)``, never unpickling code); head files
  (``head_config.json``, ``pytorch_model_head.bin``, ``model_head.safetensors``) and
  ``adapter_interface.json`` are ignored;
* parameter names are translated by :func:`translate_keys`: legacy container names
  (``attention_text_task_adapters`` → ``adapters``, ``invertible_lang_adapters`` →
  ``invertible_adapters``), the saved adapter name → the new one, a head model's
  ``base_model_prefix`` (``bert.``, ``transformer.``, ``model.``) on either side, and the
  reference's per-layer copies of the prefix-tuning pool
  (``<layer>.<attention>.prefix_tuning.pool.prefix_tunings.<n>.…``, n_layers+1 copies of each
  tensor) onto the one pool ``prefix_tuning.prefix_tunings.<n>.…`` (the copies must agree),
  and the second names under which the reference registers a module (:data:`ALIASES`: with
  ``ln_before`` its LayerNorm is both ``adapter_norm_before`` and ``adapter_down.0``, so its
  state dict holds both keys for one tensor; the copies must agree);
  every other name is already the reference's (the backend builds the same module paths);
* every translated name and shape is checked against a freshly built adapter before a single
  weight is copied; on any problem the model is left unchanged.

What cannot be recovered. On a bare base model (``adapters.init(BertModel(...))``) the reference
never saves *shared* parameters (its filter wants ``.shared_parameters.<n>.`` with a leading dot):
Compacter's shared ``phm_rule`` (and shared ``W``), Vera's frozen ``lora_A``/``lora_B``. They
are random values the outputs depend on, so they cannot be reconstructed. By default such a load
fails with a ``ConfigError`` naming the tensors; ``missing_shared="init"`` keeps freshly
initialised values instead (with a warning: the adapter then does not compute what was trained).
Files saved from a model with a head (``BertAdapterModel``: ``bert.shared_parameters.<n>.…``)
or by :func:`save_reference_adapter` contain them and load completely.

Legacy ``"type": "text_task"`` envelopes whose config asks for an invertible adapter that the
file does not contain load without it, as the reference does.

Saving (:func:`save_reference_adapter`, or ``save_adapter(model, name, dir, format="adapters")``)
writes what the reference's ``model.load_adapter(dir)`` reads: the envelope with
``"version": "adapters.1.3.0"`` and ``pytorch_adapter.bin`` (or ``adapter.safetensors`` with
``use_safetensors=True``; the reference reads that only when asked to with
``load_adapter(..., use_safetensors=True)``). Keys are the model's own plus, like the
reference's files, a copy of the prefix pool under every attention module and the alias names
of :data:`ALIASES`; shared parameters are included (so Compacter files are complete, unlike the
reference's own).
"""

from __future__ import annotations

import json
import os
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from adapter_dsl.backend import core
from adapter_dsl.backend.architectures import base_model_of, get_model_spec, model_type_of
from adapter_dsl.backend.core import provisional_adapter
from adapter_dsl.backend.io import (
    check_saved_for,
    read_envelope,
    read_tensor_file,
    rename_adapter_key,
    saved_config,
    write_directory_atomically,
)
from adapter_dsl.backend.sharding import gathered, is_sharded, writes_here
from adapter_dsl.backend.state import adapter_state_dict, require_adapter
from adapter_dsl.errors import ConfigError

__all__ = [
    "ALIASES",
    "REFERENCE_VERSION",
    "Alias",
    "ReferenceWeights",
    "is_reference_envelope",
    "load_reference_adapter",
    "read_reference_weights",
    "reference_state_dict",
    "save_adapter_as",
    "save_reference_adapter",
    "translate_keys",
]

#: The ``version`` written into saved envelopes (the reference release we are compatible with).
REFERENCE_VERSION = "adapters.1.3.0"
CONFIG_FILE = "adapter_config.json"
SAFETENSORS_FILE = "adapter.safetensors"
BIN_FILE = "pytorch_adapter.bin"
#: The reference's renames for files of its predecessor (``adapter-transformers``).
LEGACY_RENAMES = (
    ("attention_text_task_adapters", "adapters"),
    ("attention_text_lang_adapters", "adapters"),
    ("layer_text_task_adapters", "adapters"),
    ("layer_text_lang_adapters", "adapters"),
    ("invertible_lang_adapters", "invertible_adapters"),
)
#: The prefix-tuning pool on the base model (reference name, also the backend's).
POOL = "prefix_tuning"
_POOL_COPY = re.compile(r"^(?:.+\.)?prefix_tuning\.pool\.(prefix_tunings\..+)$")


@dataclass(frozen=True)
class Alias:
    """A module the reference registers under a second name inside an adapter, so that its
    state dicts (and files) hold each of its tensors twice."""

    container: str  # the adapter container, e.g. "adapters" (…adapters.<name>.…)
    alias: str  # the second name, e.g. "adapter_norm_before"
    canonical: str  # the path we build, e.g. "adapter_down.0"
    module_type: type[nn.Module]  # only then (adapter_down.0 is a Linear without ln_before)

    def _pattern(self, name: str) -> re.Pattern[str]:
        return re.compile(rf"^((?:.*\.)?{self.container}\.[^.]+\.){re.escape(name)}\.([^.]+)$")

    def to_canonical(self, key: str) -> str:
        return self._pattern(self.alias).sub(rf"\g<1>{self.canonical}.\g<2>", key)

    def alias_of(self, model: nn.Module, key: str) -> str | None:
        """The alias key of ``key``, if ``key`` is a tensor of such a module of ``model``."""
        match = self._pattern(self.canonical).match(key)
        if match is None:
            return None
        try:
            module = model.get_submodule(f"{match.group(1)}{self.canonical}")
        except AttributeError:
            return None
        if not isinstance(module, self.module_type):
            return None
        return f"{match.group(1)}{self.alias}.{match.group(2)}"


#: Every such alias of the reference, found by comparing the storage behind every key of every
#: method and option on tiny models (the prefix pool's per-layer copies are handled above).
ALIASES: tuple[Alias, ...] = (
    Alias("adapters", "adapter_norm_before", "adapter_down.0", nn.LayerNorm),
)

MissingShared = Literal["error", "init"]


def _fail(message: str, **kw: Any) -> ConfigError:
    return ConfigError.single(message, code=kw.pop("code", "bad_checkpoint"), **kw)


def is_reference_envelope(envelope: Mapping[str, Any]) -> bool:
    """Whether a saved ``adapter_config.json`` envelope comes from the reference library.

    Ours carry ``"version": "adapter_dsl.<x>"``; the reference writes ``"adapters.<x>"`` and its
    predecessor wrote no version at all.
    """
    return not str(envelope.get("version", "")).startswith("adapter_dsl.")


# -- reading -----------------------------------------------------------------------------------


class ReferenceWeights:
    """The tensors of a reference weights file (all of them: these files are small)."""

    def __init__(self, path: Path, tensors: dict[str, Tensor]) -> None:
        self.path = path
        self.tensors = tensors


def read_reference_weights(directory: str | os.PathLike[str]) -> ReferenceWeights:
    """``adapter.safetensors`` if present, else ``pytorch_adapter.bin`` (``weights_only``)."""
    directory = Path(directory)
    for name in (SAFETENSORS_FILE, BIN_FILE):
        path = directory / name
        if not path.is_file():
            continue
        return ReferenceWeights(path, read_tensor_file(path))
    present = sorted(p.name for p in directory.iterdir()) if directory.is_dir() else []
    raise _fail(
        f"'{directory}' holds no adapter weights",
        expected=f"{SAFETENSORS_FILE} or {BIN_FILE}",
        found=", ".join(present) or "an empty directory",
    )


# -- key translation -----------------------------------------------------------------------------


def _base_path(model: nn.Module) -> str:
    """The qualified name of the base model inside ``model`` (``""`` for a bare base model)."""
    base = base_model_of(model)
    if base is model:
        return ""
    for qual, module in model.named_modules():
        if module is base:
            return qual
    return ""


def translate_keys(model: nn.Module, keys: list[str], saved_name: str, name: str) -> dict[str, str]:
    """File key → model key (as in ``model.state_dict()``) for the reference's naming.

    Several file keys may map to one model key (the prefix pool's copies); the caller checks
    that their tensors agree. Keys are not checked against the model here.
    """
    base_prefix = getattr(base_model_of(model), "base_model_prefix", "") or ""
    base_path = _base_path(model)
    renames = get_model_spec(model).reference_keys
    out: dict[str, str] = {}
    for key in keys:
        new = key
        for old, repl in LEGACY_RENAMES:
            new = new.replace(old, repl)
        new = rename_adapter_key(new, saved_name, name)
        # Relative to the base model: drop a head model's prefix (``bert.encoder...``).
        if base_prefix and new.startswith(base_prefix + "."):
            new = new[len(base_prefix) + 1 :]
        match = _POOL_COPY.match(new)
        if match is not None:
            new = f"{POOL}.{match.group(1)}"
        for alias in ALIASES:
            new = alias.to_canonical(new)
        new = _rename(new, renames)
        out[key] = f"{base_path}.{new}" if base_path else new
    return out


def _rename(key: str, renames: tuple[tuple[str, str], ...], *, reverse: bool = False) -> str:
    """Apply a row's ``reference_keys`` (reference → ours, or back with ``reverse``).

    A fragment starting with ``.`` is replaced anywhere inside the key, any other one only at
    its start.
    """
    pairs = [(b, a) for a, b in reversed(renames)] if reverse else list(renames)
    for old, new in pairs:
        if old.startswith("."):
            key = f".{key}".replace(old, new)[1:]
        elif key.startswith(old):
            key = new + key[len(old) :]
    return key


# -- loading -----------------------------------------------------------------------------------


def _legacy_inv_fixup(cfg: Any, envelope: Mapping[str, Any], keys: list[str]) -> Any:
    """Old task adapters named an invertible adapter they never had: drop it (as the reference)."""
    if envelope.get("type") != "text_task" or getattr(cfg, "inv_adapter", None) is None:
        return cfg
    if any("invertible_adapters." in k or "invertible_lang_adapters." in k for k in keys):
        return cfg
    return cfg.replace(inv_adapter=None, inv_adapter_reduction_factor=None)


def _short(problems: list[str]) -> str:
    return "; ".join(problems[:5]) + (f"; … {len(problems) - 5} more" if len(problems) > 5 else "")


def load_reference_adapter(
    model: nn.Module,
    directory: str | os.PathLike[str],
    *,
    load_as: str | None = None,
    set_active: bool = True,
    missing_shared: MissingShared = "error",
    envelope: Mapping[str, Any] | None = None,
) -> str:
    """Load an adapter directory written by the reference's ``save_adapter``; returns its name.

    ``missing_shared``: what to do when the file lacks shared parameters the reference never
    saves for bare base models (see the module docstring): ``"error"`` (default) or ``"init"``.
    On any error the model is left unchanged.
    """
    if missing_shared not in ("error", "init"):
        raise ValueError(f"missing_shared must be 'error' or 'init', not {missing_shared!r}")
    directory = Path(directory)
    if envelope is None:
        envelope = read_envelope(directory)
    check_saved_for(model, directory, envelope)
    saved_name = envelope.get("name")
    name = load_as or saved_name
    if not isinstance(name, str):
        raise _fail("the saved adapter has no name; pass load_as=", found=repr(saved_name))
    weights = read_reference_weights(directory)
    cfg = saved_config(directory / CONFIG_FILE, dict(envelope))
    cfg = _legacy_inv_fixup(cfg, envelope, list(weights.tensors))
    mapping = translate_keys(model, list(weights.tensors), str(saved_name), name)

    # Build the adapter to learn the exact expected keys; undone on any problem.
    with provisional_adapter(model, name, cfg) as own:
        problems: list[str] = []
        chosen: dict[str, str] = {}  # model key -> file key
        for file_key, model_key in mapping.items():
            tensor = weights.tensors[file_key]
            if model_key not in own:
                problems.append(f"unexpected tensor '{file_key}'")
                continue
            if tuple(own[model_key].shape) != tuple(tensor.shape):
                problems.append(
                    f"'{file_key}' has shape {list(tensor.shape)}, the model expects "
                    f"{list(own[model_key].shape)}"
                )
                continue
            first = chosen.get(model_key)
            if first is None:
                chosen[model_key] = file_key
            elif not torch.equal(weights.tensors[first], tensor):
                problems.append(f"the copies '{first}' and '{file_key}' differ")
            elif file_key == model_key:  # prefer the canonical copy's name in messages
                chosen[model_key] = file_key
        missing = [k for k in own if k not in chosen]
        shared = [k for k in missing if "shared_parameters." in k]
        others = [k for k in missing if k not in shared]
        problems.extend(f"missing tensor '{k}'" for k in others)
        if problems:
            raise _fail(
                f"the weights in '{weights.path}' do not match the adapter config: "
                + _short(problems),
                expected=f"{len(own)} tensors built by the config",
                found=f"{len(weights.tensors)} tensors in the file",
            )
        if shared and missing_shared == "error":
            raise _fail(
                f"the reference checkpoint '{weights.path}' lacks the shared tensors "
                + ", ".join(f"'{k}'" for k in shared)
                + ": the reference does not save shared parameters of adapters on bare base "
                "models, and these random values cannot be reconstructed",
                expected="a file that holds them (saved from a model with a head, e.g. "
                "BertAdapterModel, or re-saved with the tensors added)",
                found=f"{len(shared)} missing shared tensors",
                suggestion="pass missing_shared='init' to "
                "adapter_dsl.backend.interop.reference.load_reference_adapter to load it with "
                "freshly initialised shared values (the outputs then differ from the trained "
                "adapter's)",
                code="missing_shared",
            )
        if shared:
            warnings.warn(
                f"{len(shared)} shared tensors are not in the reference checkpoint and keep "
                "freshly initialised values; the adapter does not compute what was trained",
                stacklevel=2,
            )
        with torch.no_grad():
            for model_key, file_key in chosen.items():
                target = own[model_key]
                target.copy_(weights.tensors[file_key].to(dtype=target.dtype, device=target.device))
    if set_active:
        core.set_active(model, name)
    return name


# -- saving ------------------------------------------------------------------------------------


def _attention_paths(model: nn.Module) -> list[str]:
    """Qualified names of the attention modules that hold a reference ``PrefixTuningLayer``."""
    from adapter_dsl.backend.architectures import iter_layers, resolve

    names = {id(m): q for q, m in model.named_modules()}
    out = []
    for ref in iter_layers(model, get_model_spec(model)):
        for spec in (ref.group.self_attention, ref.group.cross_attention):
            module = resolve(ref.module, spec.module) if spec is not None else None
            if module is not None and id(module) in names:
                out.append(names[id(module)])
    return out


def reference_state_dict(
    model: nn.Module, name: str, *, share_copies: bool = True
) -> dict[str, Tensor]:
    """Adapter ``name``'s tensors under the reference's names (CPU copies).

    Like the reference, the prefix-tuning pool is written once more under every attention
    module (``<attention>.prefix_tuning.pool.…``), so that its loader reports nothing missing.
    ``share_copies`` stores those copies as the same tensor (``torch.save`` then writes the data
    once); safetensors needs separate copies.
    """
    _, entry = require_adapter(model, name)
    tensors, _ = gathered(adapter_state_dict(model, entry))  # shards of fully_shard gathered
    base_path = _base_path(model)
    pool = f"{base_path}.{POOL}." if base_path else f"{POOL}."
    for key, tensor in list(tensors.items()):
        for alias in ALIASES:
            second = alias.alias_of(model, key)
            if second is not None:
                tensors[second] = tensor if share_copies else tensor.clone()
    pooled = {k[len(pool) :]: v for k, v in tensors.items() if k.startswith(pool)}
    if pooled:
        for attention in _attention_paths(model):
            for rest, tensor in pooled.items():
                key = f"{attention}.{POOL}.pool.{rest}"
                tensors[key] = tensor if share_copies else tensor.clone()
    renames = get_model_spec(model).reference_keys
    if renames:
        head = f"{base_path}." if base_path else ""
        tensors = {
            head + _rename(k[len(head) :], renames, reverse=True) if k.startswith(head) else k: v
            for k, v in tensors.items()
        }
    return tensors


def reference_envelope(model: nn.Module, name: str) -> dict[str, Any]:
    """The ``adapter_config.json`` content the reference writes (§1.5 of its format)."""
    _, entry = require_adapter(model, name)
    cfg = model.config
    return {
        "config": entry.config.to_dict(),
        "hidden_size": getattr(cfg, "hidden_size", None),
        "model_class": type(model).__name__,
        "model_name": getattr(cfg, "name_or_path", "") or "",
        "model_type": model_type_of(model),
        "name": name,
        "version": REFERENCE_VERSION,
    }


def save_reference_adapter(
    model: nn.Module,
    name: str,
    directory: str | os.PathLike[str],
    *,
    use_safetensors: bool = False,
) -> Path:
    """Write adapter ``name`` as the reference's ``save_adapter`` would; returns the directory.

    The reference loads it with ``model.load_adapter(dir)`` (``use_safetensors=True`` for a
    safetensors file). The write is atomic (temporary sibling directory, then a rename).
    """
    _, entry = require_adapter(model, name)
    if entry.merged:
        raise ConfigError.single(
            f"adapter '{name}' is merged; unmerge_adapter() it before saving", code="merged"
        )
    envelope = reference_envelope(model, name)
    tensors = reference_state_dict(model, name, share_copies=not use_safetensors)
    target = Path(directory)
    if not writes_here(is_sharded(model)):  # every rank gathered; rank 0 writes
        return target

    def write(tmp: Path) -> None:
        (tmp / CONFIG_FILE).write_text(
            json.dumps(envelope, indent=2, sort_keys=True), encoding="utf-8"
        )
        if use_safetensors:
            from safetensors.torch import save_file

            save_file(tensors, str(tmp / SAFETENSORS_FILE), metadata={"format": "pt"})
        else:
            torch.save(tensors, str(tmp / BIN_FILE))

    write_directory_atomically(target, write)
    return target


#: ``save_adapter(..., format=...)`` values other than our own format.
FORMATS = ("adapters", "peft")


def save_adapter_as(
    model: nn.Module, name: str, directory: str | os.PathLike[str], *, format: str
) -> Path:
    """``save_adapter`` for the foreign formats in :data:`FORMATS`."""
    if format == "adapters":
        return save_reference_adapter(model, name, directory)
    if format == "peft":
        from adapter_dsl.backend.interop.peft_save import save_peft_adapter

        return save_peft_adapter(model, name, directory)
    raise ConfigError.single(
        f"unknown adapter save format '{format}'",
        expected="'adapter_dsl' (default) or " + ", ".join(repr(f) for f in FORMATS),
        found=repr(format),
        code="unknown_format",
    )
