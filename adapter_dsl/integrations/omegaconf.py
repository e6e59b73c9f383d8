"""OmegaConf (and so Hydra) containers as config input: plain data, interpolations resolved.

``adapter_dsl.load(cfg.adapter)`` accepts a ``DictConfig`` (a config dict) or a string value;
this module turns a container into plain dicts and lists first. It imports omegaconf only when
given one of its containers, and never imports the rest of adapter_dsl (``loading`` calls it).
"""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError, Location, Problem

__all__ = ["is_container", "to_plain"]


def is_container(value: Any) -> bool:
    """Whether ``value`` is an OmegaConf container (checked without importing omegaconf)."""
    return type(value).__module__.startswith("omegaconf.") and hasattr(value, "_get_node")


def to_plain(container: Any) -> Any:
    """The container's data as dicts and lists, interpolations resolved; a failed
    interpolation or a missing value (``???``) is a located ConfigError."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        return OmegaConf.to_container(container, resolve=True, throw_on_missing=True)
    except OmegaConfBaseException as exc:
        key = str(getattr(exc, "full_key", "") or "")
        # full_key is counted from the root of the whole config; the path is from ``container``.
        here = str(container._get_full_key(None) or "")
        if here and key.startswith(here + "."):
            key = key[len(here) + 1 :]
        path = tuple(int(p) if p.isdigit() else p for p in key.split(".") if p)
        message = str(getattr(exc, "msg", None) or exc).splitlines()[0]
        raise ConfigError(
            [
                Problem(
                    f"cannot resolve the OmegaConf value: {message}",
                    Location(path=path),
                    code="interpolation",
                )
            ]
        ) from None
