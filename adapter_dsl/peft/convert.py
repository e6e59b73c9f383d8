"""The two entry points, :func:`to_peft` and :func:`from_peft`: they read their argument and
hand it to the converter its method family declares (``MethodFamily.peft``: :mod:`.lora`,
:mod:`.prompts`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import ConfigError, did_you_mean
from ..lazy import resolve
from ..methods.base import AdapterConfig
from ..methods.family import MethodFamily, family_of_class
from ..registry import method_families
from .common import problem
from .models import Counts
from .targets import shown

__all__ = ["from_peft", "to_peft"]


def _readers() -> dict[str, str]:
    """PEFT ``peft_type`` → its reader, over the registered families (in their order)."""
    return {t: ref for f in method_families() for t, ref in f.peft.reads}


def _writers() -> list[MethodFamily]:
    return [f for f in method_families() if f.peft.writes is not None]


def to_peft(
    cfg: AdapterConfig | str | Mapping[str, Any], model_type: str, *, num_layers: Counts = None
) -> dict[str, Any]:
    """The PEFT ``adapter_config.json`` dict that computes what ``cfg`` computes on ``model_type``.

    ``cfg`` is a config object, or an identifier, config string or dict that ``load`` reads.

    ``num_layers`` (an int, or one count per stack such as ``(6, 6)`` for BART) is needed only
    when ``leave_out`` names decoder layers of an encoder-decoder model. Raises ``ConfigError``
    listing everything PEFT cannot express.
    """
    cfg = _as_config(cfg)
    heading = f"cannot write {type(cfg).__name__} as a PEFT config"
    family = family_of_class(type(cfg))
    if family is not None and family.peft.writes is not None:
        try:
            result: dict[str, Any] = resolve(family.peft.writes)(cfg, model_type, num_layers)
        except ConfigError as exc:  # the config is valid: say what could not be done with it
            raise exc.headed(heading) from None
        return result
    architecture = family.architecture if family is not None else type(cfg).__name__
    what = (
        family.peft.name if family is not None and family.peft.name else f"'{architecture}' configs"
    )
    raise ConfigError(
        [
            problem(
                "architecture",
                f"PEFT cannot express {what}",
                expected="a config of a family PEFT can express: "
                + ", ".join(f.title or f.architecture for f in _writers()),
                found="a bottleneck config" if architecture == "bottleneck" else repr(architecture),
            )
        ],
        heading=heading,
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
    readers = _readers()
    if not isinstance(peft_type, str) or peft_type not in readers:
        raise ConfigError(
            [
                problem(
                    "peft_type",
                    f"PEFT method {shown(peft_type)} has no counterpart here",
                    expected="one of " + ", ".join(repr(t) for t in readers),
                    found=shown(peft_type),
                    suggestion=did_you_mean(peft_type, list(readers))
                    if isinstance(peft_type, str)
                    else None,
                    code="unknown_peft_type",
                )
            ]
        )
    config: AdapterConfig = resolve(readers[peft_type])(data, peft_type, model_type, num_layers)
    return config
