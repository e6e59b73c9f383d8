"""Writing an adapter as a PEFT directory (``save_adapter(..., format="peft")``).

``adapter_config.json`` is :func:`adapter_dsl.to_peft` of the adapter's config for the model's
type and layer counts; ``adapter_model.safetensors`` holds PEFT's tensor names
(``base_model.model.<path>.lora_A.weight``, ``lora_B.weight``, ``lora_magnitude_vector``,
``ia3_l``), so ``peft.PeftModel.from_pretrained(base, directory)`` computes what the adapter
computes here. The inverse of :mod:`adapter_dsl.backend.interop.peft`: IA³ on an input is PEFT's
feed-forward ``ia3_l`` of shape (1, in), DoRA's magnitude (out, 1) PEFT's (out,) vector.
Prompt tuning with ``before_embeddings=True`` is a ``PROMPT_TUNING`` directory
(``prompt_embeddings``; ``task_type`` from the model class, so that PEFT builds the model class
that joins the prompts, and prompts for the encoder only); prefix tuning with
``shift_positions=True`` a ``PREFIX_TUNING`` one (the generator's output, which PEFT loads in
inference mode whether or not it has a projection).

Everything PEFT cannot express is a ``ConfigError`` before anything is written: what
``to_peft`` refuses (bottleneck adapters, unions, ReFT, VeRA, gating, LoRA on a fused q/k/v
projection, …), a merged adapter, and DoRA where PEFT's formula differs from the reference's
(``alpha != r``, or an adapted projection with a bias).
"""

from __future__ import annotations

import json
import os
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from adapter_dsl.backend.architectures import (
    base_model_of,
    get_model_spec,
    iter_layers,
    model_type_of,
)
from adapter_dsl.backend.interop.peft_files import CONFIG_FILE, PEFT_PREFIX
from adapter_dsl.backend.io import write_directory_atomically
from adapter_dsl.backend.methods.lora_layers import IA3Input, LoRAWrapper
from adapter_dsl.backend.state import require_adapter
from adapter_dsl.errors import ConfigError
from adapter_dsl.methods.base import AdapterConfig

__all__ = ["WEIGHTS_FILE", "peft_state_dict", "save_peft_adapter"]

WEIGHTS_FILE = "adapter_model.safetensors"


# ConfigError.single with this module's default code (a call may pass another).
_fail = partial(ConfigError.single, code="not_expressible")


def _layer_counts(model: nn.Module) -> tuple[int, ...]:
    spec = get_model_spec(model)
    counts = dict.fromkeys((g.name for g in spec.groups), 0)
    for ref in iter_layers(model, spec):
        counts[ref.group.name] += 1
    return tuple(counts.values())


def peft_state_dict(model: nn.Module, name: str) -> dict[str, Tensor]:
    """The tensors of LoRA-family adapter ``name`` under PEFT's names (copies, contiguous)."""
    out: dict[str, Tensor] = {}
    for path, module in model.named_modules():
        if not isinstance(module, LoRAWrapper) or name not in module.loras:
            continue
        unit = module.unit(name)
        key = f"{PEFT_PREFIX}{path}."
        if unit.composition_mode == "scale" or isinstance(unit, IA3Input):
            vector = unit.lora_B.detach()
            out[key + "ia3_l"] = vector.reshape(1, -1) if isinstance(unit, IA3Input) else vector
            continue
        out[key + "lora_A.weight"] = unit.lora_A.detach()
        out[key + "lora_B.weight"] = unit.lora_B.detach()
        if unit.use_dora:
            out[key + "lora_magnitude_vector"] = unit.m.weight.detach().reshape(-1)
    return {k: v.clone().contiguous() for k, v in out.items()}


def _check_dora(model: nn.Module, name: str, config: AdapterConfig) -> None:
    if not getattr(config, "use_dora", False):
        return
    biased = [
        path
        for path, module in model.named_modules()
        if isinstance(module, LoRAWrapper) and name in module.loras and module.bias is not None
    ]
    alpha, r = getattr(config, "alpha", None), getattr(config, "r", None)
    if alpha != r or biased:
        found = f"alpha={alpha}, r={r}" if alpha != r else f"'{biased[0]}' has a bias"
        raise _fail(
            "PEFT's DoRA normalises W + (lora_alpha/r)·BA and leaves the bias unscaled, the "
            "reference's (this package's) normalises W + BA and rescales the bias; PEFT would "
            "compute something else",
            expected="alpha == r and adapted projections without bias",
            found=found,
        )


def _task_type(model: nn.Module) -> str:
    kind = type(model).__name__
    if kind.endswith("ForCausalLM"):
        return "CAUSAL_LM"
    if kind.endswith("ForConditionalGeneration"):
        return "SEQ_2_SEQ_LM"
    return "FEATURE_EXTRACTION"


def _prompt_directory(
    model: nn.Module, name: str, data: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Tensor]]:
    from adapter_dsl.backend.methods.prompt_tuning import POOL_ATTR, PromptTuning

    prompt = base_model_of(model).get_submodule(f"{POOL_ATTR}.prompt_tunings.{name}")
    assert isinstance(prompt, PromptTuning)
    weight = prompt.prompt_embedding.weight.detach().clone().contiguous()
    extra = {
        "task_type": _task_type(model),
        "token_dim": int(weight.shape[1]),
        "num_transformer_submodules": 1,
        "num_layers": sum(1 for _ in iter_layers(model, get_model_spec(model))),
    }
    return {**data, **extra}, {"prompt_embeddings": weight}


def _prefix_directory(
    model: nn.Module, name: str, data: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Tensor]]:
    from adapter_dsl.backend.methods.prefix_tuning import POOL_ATTR, PrefixGenerator

    group = base_model_of(model).get_submodule(f"{POOL_ATTR}.prefix_tunings.{name}")
    (generator,) = group.children()  # shift_positions: single-stack models, one location
    assert isinstance(generator, PrefixGenerator)
    with torch.no_grad():
        weight = generator.raw().detach().clone().contiguous()
    extra = {
        "task_type": _task_type(model),
        "inference_mode": True,  # PEFT then loads the saved output, projection or not
        "num_layers": generator.n_layers,
        "num_attention_heads": generator.n_heads,
        "token_dim": generator.n_heads * generator.head_dim,
        "num_transformer_submodules": 1,
    }
    return {**data, **extra}, {"prompt_embeddings": weight}


def save_peft_adapter(model: nn.Module, name: str, directory: str | os.PathLike[str]) -> Path:
    """Write adapter ``name`` as a PEFT directory (atomically); returns the directory."""
    from adapter_dsl.peft import to_peft

    _, entry = require_adapter(model, name)
    if entry.merged:
        raise ConfigError.single(
            f"adapter '{name}' is merged; unmerge_adapter() it before saving", code="merged"
        )
    config = entry.config
    data = to_peft(config, model_type_of(model), num_layers=_layer_counts(model))
    if data["peft_type"] == "PROMPT_TUNING":
        data, tensors = _prompt_directory(model, name, data)
    elif data["peft_type"] == "PREFIX_TUNING":
        data, tensors = _prefix_directory(model, name, data)
    else:
        _check_dora(model, name, config)
        tensors = peft_state_dict(model, name)
    data = {**data, "base_model_name_or_path": getattr(model.config, "name_or_path", None) or None}
    target = Path(directory)

    def write(tmp: Path) -> None:
        from safetensors.torch import save_file

        (tmp / CONFIG_FILE).write_text(json.dumps(data, indent=2, sort_keys=True), "utf-8")
        save_file(tensors, str(tmp / WEIGHTS_FILE), metadata={"format": "pt"})

    write_directory_atomically(target, write)
    return target
