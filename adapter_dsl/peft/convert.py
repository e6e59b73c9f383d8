"""The two entry points, :func:`to_peft` and :func:`from_peft`: they read their argument and
hand it to the converter of its method family (:mod:`.lora`, :mod:`.prompts`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import ConfigError, did_you_mean
from ..methods.base import AdapterConfig
from .common import problem
from .lora import lora_from_peft, lora_to_peft
from .models import Counts, model_modules
from .prompts import prefix_from_peft, prefix_to_peft, prompt_from_peft, prompt_to_peft
from .targets import shown

__all__ = ["from_peft", "to_peft"]

_PEFT_TYPES = ("LORA", "IA3", "PREFIX_TUNING", "PROMPT_TUNING")


def to_peft(
    cfg: AdapterConfig | str | Mapping[str, Any], model_type: str, *, num_layers: Counts = None
) -> dict[str, Any]:
    """The PEFT ``adapter_config.json`` dict that computes what ``cfg`` computes on ``model_type``.

    ``cfg`` is a config object, or an identifier, config string or dict that ``load`` reads.

    ``num_layers`` (an int, or one count per stack such as ``(6, 6)`` for BART) is needed only
    when ``leave_out`` names decoder layers of an encoder-decoder model. Raises ``ConfigError``
    listing everything PEFT cannot express.
    """
    from ..methods.bottleneck import BnConfig
    from ..methods.lora import LoRAConfig, MTLLoRAConfig
    from ..methods.prefix_tuning import PrefixTuningConfig
    from ..methods.prompt_tuning import PromptTuningConfig

    cfg = _as_config(cfg)
    if isinstance(cfg, MTLLoRAConfig):
        raise ConfigError(
            [
                problem(
                    "architecture",
                    "PEFT cannot express MTL-LoRA (task-specific matrices and several up "
                    "projections)",
                    found="'mtl_lora'",
                )
            ]
        )
    if isinstance(cfg, LoRAConfig):
        return lora_to_peft(cfg, model_modules(model_type), num_layers)
    if isinstance(cfg, PrefixTuningConfig):
        return prefix_to_peft(cfg)
    if isinstance(cfg, PromptTuningConfig):
        return prompt_to_peft(cfg)
    bottleneck = isinstance(cfg, BnConfig)
    architecture = "bottleneck" if bottleneck else cfg.architecture
    what = {
        "bottleneck": "bottleneck adapters",
        "union": "combinations of methods (unions)",
        "reft": "ReFT interventions",
    }.get(architecture, f"'{architecture}' configs")
    raise ConfigError(
        [
            problem(
                "architecture",
                f"PEFT cannot express {what} as the reference defines them",
                expected="a LoRA, IA³, DoRA, prefix-tuning or prompt-tuning config",
                found="a bottleneck config" if bottleneck else repr(architecture),
            )
        ]
    )


def _as_config(cfg: Any) -> AdapterConfig:
    """A config object, or an identifier / config string / dict read as one (never a path)."""
    if isinstance(cfg, AdapterConfig):
        return cfg
    from ..loading import config_from_dict, parse

    if isinstance(cfg, str):
        return parse(cfg)
    if isinstance(cfg, Mapping):
        return config_from_dict(cfg)
    raise ConfigError.single(
        "to_peft() takes a config",
        expected="a config object, an identifier, a config string or a config dict",
        found=type(cfg).__name__,
        code="type",
    )


def from_peft(
    data: Mapping[str, Any], model_type: str | None = None, *, num_layers: Counts = None
) -> AdapterConfig:
    """The config that computes what a PEFT ``adapter_config.json`` dict computes.

    ``model_type`` selects the module names that ``target_modules`` is read against; without it
    every known model type is tried and they must agree (``q_proj`` means the same on BART and
    LLaMA; ``down_proj`` does not). ``num_layers``: see the module docstring. Problems carry
    JSON pointers into ``data``.
    """
    if not isinstance(data, Mapping):
        raise ConfigError.single(
            "a PEFT config must be a JSON object", expected="an object", found=type(data).__name__
        )
    bad_keys = [k for k in data if not isinstance(k, str)]
    if bad_keys:
        raise ConfigError.single(
            "PEFT config keys must be strings",
            expected="string keys",
            found=", ".join(shown(k, 40) for k in bad_keys[:3]),
            code="type",
        )
    peft_type = data.get("peft_type")
    if not isinstance(peft_type, str) or peft_type not in _PEFT_TYPES:
        raise ConfigError(
            [
                problem(
                    "peft_type",
                    f"PEFT method {shown(peft_type)} has no counterpart here",
                    expected="one of " + ", ".join(repr(t) for t in _PEFT_TYPES),
                    found=shown(peft_type),
                    suggestion=did_you_mean(peft_type, _PEFT_TYPES)
                    if isinstance(peft_type, str)
                    else None,
                    code="unknown_peft_type",
                )
            ]
        )
    if peft_type == "PREFIX_TUNING":
        return prefix_from_peft(data)
    if peft_type == "PROMPT_TUNING":
        return prompt_from_peft(data)
    return lora_from_peft(data, peft_type == "IA3", model_type, num_layers)
