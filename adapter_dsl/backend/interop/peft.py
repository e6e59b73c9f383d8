"""Adapters saved by PEFT (``save_pretrained``): LoRA, IA³, DoRA and prompt-tuning directories.

A PEFT directory holds ``adapter_config.json`` (with a ``peft_type`` key) and
``adapter_model.safetensors`` (or ``adapter_model.bin``, read with ``weights_only=True``).
:func:`load_adapter` (also reached through :func:`adapter_dsl.backend.load_adapter`):

* converts the config with :func:`adapter_dsl.from_peft` for the model's type and layer counts
  (so every PEFT option that this package cannot express is a ``ConfigError``);
* maps PEFT's tensor names onto the backend's: ``base_model.model.<path>.lora_A.weight`` →
  ``<path>.loras.<name>.lora_A``, ``lora_B.weight`` → ``lora_B``, ``lora_magnitude_vector``
  (out,) → ``m.weight`` (out, 1), IA³'s ``ia3_l`` → ``lora_B`` (a feed-forward module's (1, in)
  → (in, 1), IA³ on the input). ``<path>`` may carry or lack
  the base model's attribute (``bert.``, ``model.``), so a directory saved from a model with a
  head loads into the bare model and the other way round;
* GPT-2's fused ``c_attn``: PEFT's single ``lora_A`` (r, in) is shared by q, k and v; it is
  written into each of the three blocks of the backend's (3r, in) ``lora_A``, which computes
  exactly the same update;
* checks every name and shape against a freshly built adapter before a single weight is
  copied; on any problem the model is left unchanged.

Both libraries scale LoRA by ``lora_alpha / r`` (PEFT's ``use_rslora`` is converted to an
equivalent alpha), apply dropout only in training, and let IA³ scale the output of a projection
including its bias; outputs therefore agree in eval mode. DoRA loads only where the two DoRA
formulas agree, that is ``lora_alpha == r`` and no adapted module has a bias (see
:mod:`adapter_dsl.peft`); other DoRA directories are a ``ConfigError``. Prompt-tuning
directories are read by :mod:`.peft_prompts`, which refuses prefix-tuning ones (their configs
convert with ``from_peft``); ``save_adapter(..., format="peft")`` is :mod:`.peft_save`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from adapter_dsl.backend import core
from adapter_dsl.backend.architectures import (
    base_model_of,
    get_model_spec,
    iter_layers,
    model_type_of,
)
from adapter_dsl.backend.core import provisional_adapter
from adapter_dsl.backend.interop.peft_files import (
    CONFIG_FILE,
    PEFT_PREFIX,
    read_peft_weights,
)
from adapter_dsl.errors import ConfigError
from adapter_dsl.loading import read_config_file

__all__ = ["PEFT_PREFIX", "load_adapter", "load_peft_adapter", "read_peft_weights"]

#: PEFT tensor-name suffix → the backend unit's tensor name.
SUFFIXES = {
    "lora_A.weight": "lora_A",
    "lora_B.weight": "lora_B",
    "lora_magnitude_vector": "m.weight",
    "ia3_l": "lora_B",
}


def _fail(message: str, **kw: Any) -> ConfigError:
    return ConfigError.single(message, code=kw.pop("code", "bad_checkpoint"), **kw)


def _short(problems: list[str]) -> str:
    return "; ".join(problems[:5]) + (f"; … {len(problems) - 5} more" if len(problems) > 5 else "")


def _read_config(directory: Path) -> dict[str, Any]:
    path = directory / CONFIG_FILE
    try:
        data = json.loads(read_config_file(path, str(path)))  # bounded, regular files only
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, ConfigError) as exc:
        raise _fail(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict) or "peft_type" not in data:
        raise _fail(f"{path} is not a PEFT adapter config", expected="a 'peft_type' key")
    return data


def _layer_counts(model: nn.Module) -> tuple[int, ...]:
    arch = get_model_spec(model)
    counts = dict.fromkeys((g.name for g in arch.groups), 0)
    for ref in iter_layers(model, arch):
        counts[ref.group.name] += 1
    return tuple(counts.values())


def _module_path(model: nn.Module, modules: Mapping[str, nn.Module], path: str) -> str | None:
    """``path`` (relative to the model PEFT wrapped) as a path in ``model``."""
    prefix = getattr(base_model_of(model), "base_model_prefix", "") or ""
    candidates = [path]
    if prefix and path.startswith(prefix + "."):
        candidates.append(path[len(prefix) + 1 :])
    if prefix:
        candidates.append(f"{prefix}.{path}")
    return next((c for c in candidates if c in modules), None)


def _split_key(key: str) -> tuple[str, str] | None:
    if not key.startswith(PEFT_PREFIX):
        return None
    rest = key[len(PEFT_PREFIX) :]
    for suffix in SUFFIXES:
        if rest.endswith("." + suffix):
            return rest[: -len(suffix) - 1], suffix
    return None


def _check_dora(
    cfg: Any, model: nn.Module, modules: Mapping[str, nn.Module], paths: set[str]
) -> None:
    problems = []
    if cfg.alpha != cfg.r:
        problems.append(f"lora_alpha={cfg.alpha} differs from r={cfg.r}")
    with_bias = sorted(p for p in paths if getattr(modules.get(p), "bias", None) is not None)
    if with_bias:
        problems.append(f"'{with_bias[0]}' has a bias")
    if problems:
        raise _fail(
            "PEFT's DoRA normalises W + (lora_alpha/r)·BA and leaves the bias unscaled, the "
            "reference's normalises W + BA and rescales the bias; this checkpoint would compute "
            "something else here (" + "; ".join(problems) + ")",
            expected="lora_alpha == r and adapted modules without bias",
            code="not_expressible",
        )


def load_peft_adapter(
    model: nn.Module,
    directory: str | os.PathLike[str],
    *,
    load_as: str | None = None,
    set_active: bool = True,
) -> str:
    """Load a PEFT LoRA/IA³ directory into ``model`` as adapter ``load_as`` (default ``"default"``,
    PEFT's own name); returns the name. On any error the model is left unchanged."""
    from adapter_dsl.peft import from_peft

    directory = Path(directory)
    data = _read_config(directory)
    if data.get("peft_type") in ("PROMPT_TUNING", "PREFIX_TUNING"):
        from adapter_dsl.backend.interop.peft_prompts import load_peft_prompts

        return load_peft_prompts(model, directory, data, load_as=load_as, set_active=set_active)
    if data.get("peft_type") not in ("LORA", "IA3"):
        raise _fail(
            f"loading PEFT {data.get('peft_type')} weights is not supported",
            expected="a LORA, IA3, PROMPT_TUNING or PREFIX_TUNING directory",
            found=repr(data.get("peft_type")),
            suggestion="convert the config with adapter_dsl.from_peft and train it here",
            code="unsupported_peft_type",
        )
    model_type = model_type_of(model)
    try:
        cfg = from_peft(data, model_type, num_layers=_layer_counts(model))
    except ConfigError as exc:
        raise exc.located(file=str(directory / CONFIG_FILE)) from None
    name = load_as or "default"
    path, tensors = read_peft_weights(directory)
    modules = dict(model.named_modules())

    # PEFT key → (module path in model, backend tensor name).
    problems: list[str] = []
    targets: dict[str, tuple[str, str]] = {}
    for key in tensors:
        split = _split_key(key)
        module = _module_path(model, modules, split[0]) if split else None
        if split is None or module is None:
            problems.append(f"unexpected tensor '{key}'")
            continue
        targets[key] = (module, SUFFIXES[split[1]])
    if problems:
        raise _fail(
            f"the weights in '{path}' are not PEFT LoRA/IA³ weights of this model: "
            + _short(problems)
        )
    if getattr(cfg, "use_dora", False):
        _check_dora(cfg, model, modules, {m for m, _ in targets.values()})

    # Build the adapter to learn the exact expected keys; undone on any problem.
    with provisional_adapter(model, name, cfg) as own:
        chosen: dict[str, Tensor] = {}
        for key, (module, tensor_name) in targets.items():
            model_key = f"{module}.loras.{name}.{tensor_name}"
            tensor = tensors[key]
            if model_key not in own:
                problems.append(f"unexpected tensor '{key}' (no adapted module '{module}')")
                continue
            expected = tuple(own[model_key].shape)
            if tensor_name == "m.weight" and tensor.dim() == 1:
                tensor = tensor.unsqueeze(1)
            if tensor_name == "lora_B" and tensor.shape == expected[::-1] and 1 in expected:
                tensor = tensor.reshape(expected)  # IA³ on an input: PEFT's (1, in)
            if tensor_name == "lora_A" and tensor.dim() == 2 and expected[0] != tensor.shape[0]:
                # GPT-2's fused c_attn: one shared A for each of the q/k/v blocks.
                groups = expected[0] // max(tensor.shape[0], 1)
                if groups * tensor.shape[0] == expected[0]:
                    tensor = tensor.repeat(groups, 1)
            if tuple(tensor.shape) != expected:
                problems.append(
                    f"'{key}' has shape {list(tensors[key].shape)}, the model expects "
                    f"{list(expected)}"
                )
                continue
            chosen[model_key] = tensor
        problems.extend(f"missing tensor for '{k}'" for k in own if k not in chosen)
        if problems:
            raise _fail(
                f"the weights in '{path}' do not match the adapter config: " + _short(problems),
                expected=f"{len(own)} tensors built by the config",
                found=f"{len(tensors)} tensors in the file",
            )
        with torch.no_grad():
            for model_key, tensor in chosen.items():
                target = own[model_key]
                target.copy_(tensor.to(dtype=target.dtype, device=target.device))
    if set_active:
        core.set_active(model, name)
    return name


def load_adapter(
    model: nn.Module, directory: str | os.PathLike[str], *, load_as: str | None = None
) -> str:
    """Load a PEFT directory into ``model`` and activate it; see :func:`load_peft_adapter`."""
    return load_peft_adapter(model, directory, load_as=load_as)
