"""Saving and loading AdapterFusion layers in the reference's layout.

A fusion directory holds ``adapter_fusion_config.json`` (``adapter_names``, ``config``, ``name``,
model fields, ``version``) and the fusion's tensors, keyed as in ``model.state_dict()`` (e.g.
``encoder.layer.0.output.adapter_fusion_layer.a,b.query.weight``), in
``model_adapter_fusion.safetensors`` (written by default) or ``pytorch_model_adapter_fusion.bin``
(the reference's default; ``format="adapters"``). Both files are read.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from adapter_dsl.backend.architectures import base_model_of, model_type_of
from adapter_dsl.backend.io import read_tensor_file, write_directory_atomically
from adapter_dsl.backend.methods.fusion import add_fusion, delete_fusion, fusion_of
from adapter_dsl.backend.state import peek_state
from adapter_dsl.errors import ConfigError

__all__ = ["CONFIG_FILE", "load_fusion", "save_fusion"]

CONFIG_FILE = "adapter_fusion_config.json"
SAFETENSORS_FILE = "model_adapter_fusion.safetensors"
BIN_FILE = "pytorch_model_adapter_fusion.bin"


def _fusion_tensors(model: nn.Module, fname: str) -> dict[str, Tensor]:
    state = peek_state(model)
    assert state is not None
    owned = {id(m) for m in state.fusions[fname].ledger.owned_modules}
    out: dict[str, Tensor] = {}
    for qual, module in model.named_modules():
        if id(module) in owned:
            for key, tensor in module.state_dict(prefix=f"{qual}.", keep_vars=True).items():
                out[key] = tensor
    return out


def save_fusion(
    model: nn.Module,
    adapters: Any,
    directory: str | os.PathLike[str],
    *,
    format: str = "adapter_dsl",
) -> Path:
    """Write the fusion named by ``adapters`` (``"a,b"``, names or a ``Fuse``) to ``directory``."""
    state, fname = fusion_of(model, adapters)
    if format not in ("adapter_dsl", "adapters"):
        raise ConfigError.single(
            "unknown fusion file format", expected="'adapter_dsl' or 'adapters'", found=repr(format)
        )
    entry = state.fusions[fname]
    cfg = model.config
    version = "adapters.1.3.0" if format == "adapters" else "adapter_dsl"
    envelope = {
        "adapter_names": list(entry.adapters),
        "config": entry.config.to_dict(),
        "hidden_size": getattr(cfg, "hidden_size", None),
        "model_class": type(model).__name__,
        "model_name": getattr(cfg, "name_or_path", "") or "",
        "model_type": model_type_of(model),
        "name": fname,
        "version": version,
    }
    tensors = {
        k: v.detach().to("cpu").contiguous().clone()
        for k, v in _fusion_tensors(model, fname).items()
    }

    def write(tmp: Path) -> None:
        (tmp / CONFIG_FILE).write_text(
            json.dumps(envelope, indent=2, sort_keys=True) + "\n", encoding="utf-8"
        )
        if format == "adapters":
            torch.save(tensors, str(tmp / BIN_FILE))
        else:
            from safetensors.torch import save_file

            save_file(tensors, str(tmp / SAFETENSORS_FILE), metadata={"format": "pt"})

    target = Path(directory)
    write_directory_atomically(target, write)
    return target


def _fail(message: str, **kw: Any) -> ConfigError:
    return ConfigError.single(message, code=kw.pop("code", "invalid_fusion_file"), **kw)


def load_fusion(model: nn.Module, directory: str | os.PathLike[str]) -> str:
    """Add the fusion saved in ``directory`` (ours or the reference's) and load its weights;
    returns its name. The fused adapters must be on the model already. On any mismatch the
    model is left as it was."""
    path = Path(directory)
    config_path = path / CONFIG_FILE
    try:
        envelope = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise _fail(f"cannot read {config_path}: {exc}", expected=f"a {CONFIG_FILE}") from exc
    if not isinstance(envelope, dict) or "config" not in envelope:
        raise _fail(f"{config_path} is not a fusion config file", expected="a 'config' key")
    names = envelope.get("adapter_names") or str(envelope.get("name", "")).split(",")
    fname = str(envelope.get("name") or ",".join(names))
    weights = next((path / f for f in (SAFETENSORS_FILE, BIN_FILE) if (path / f).exists()), None)
    if weights is None:
        raise _fail(f"{path} holds no fusion weights", expected=f"{SAFETENSORS_FILE} or {BIN_FILE}")
    saved = read_tensor_file(weights)
    add_fusion(model, list(names), envelope["config"], name=fname)
    try:
        _load_tensors(model, fname, saved, weights)
    except BaseException:
        delete_fusion(model, fname)
        raise
    return fname


def _load_tensors(model: nn.Module, fname: str, saved: dict[str, Tensor], source: Path) -> None:
    expected = _fusion_tensors(model, fname)
    prefix = ""
    base = base_model_of(model)
    if base is not model:
        for qual, module in model.named_modules():
            if module is base:
                prefix = f"{qual}."
                break
    lookup = dict(saved)
    for key in list(saved):
        # Files written from a model with a head carry its base-model prefix, bare ones none.
        if prefix and not key.startswith(prefix):
            lookup.setdefault(prefix + key, saved[key])
        elif prefix and key.startswith(prefix):
            lookup.setdefault(key[len(prefix) :], saved[key])
    missing = [k for k in expected if k not in lookup]
    if missing:
        raise _fail(
            f"{source} lacks {len(missing)} of the fusion's tensors, e.g. '{missing[0]}'",
            expected="a fusion saved for this model type and these adapters",
        )
    used = {k for k in expected}
    extra = [
        k
        for k in saved
        if k not in used and (prefix + k) not in used and k[len(prefix) :] not in used
    ]
    if extra:
        raise _fail(
            f"{source} holds tensors this fusion does not have, e.g. '{extra[0]}'",
            expected="a fusion saved for this model type and these adapters",
        )
    with torch.no_grad():
        for key, param in expected.items():
            value = lookup[key]
            if tuple(value.shape) != tuple(param.shape):
                raise _fail(
                    f"tensor '{key}' has shape {tuple(value.shape)}, the model's {tuple(param.shape)}"
                )
        for key, param in expected.items():
            param.copy_(lookup[key].to(dtype=param.dtype, device=param.device))
