"""Config → canonical config string: the closest identifier plus only the keys that differ.

Canonical strings are minimal, stable (keys in field order) and use only literal syntax the
reference parser accepts too (quoted strings, ``True``/``False``/``None``), so
``parse(dumps(c)) == c`` here and the same string means the same thing to the reference.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .methods.base import AdapterConfig
from .methods.union import ConfigUnion
from .registry import IDENTIFIERS, preset_config

__all__ = ["diff", "dumps", "format_value"]


def format_value(value: Any) -> str:
    """A value as a literal of the config language."""
    if value is None or isinstance(value, bool):
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, Mapping):
        # Sorted, so equal mappings print the same: layer indices ascending, then 'default'.
        items = sorted(value.items(), key=lambda kv: (not str(kv[0]).isdigit(), _order(kv[0])))
        return "{" + ", ".join(f"{format_value(k)}: {format_value(v)}" for k, v in items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    raise TypeError(f"cannot format {type(value).__name__}")  # pragma: no cover - validated input


def _order(key: Any) -> Any:
    text = str(key)
    return (int(text), "") if text.isdigit() else (0, text)


def diff(config: AdapterConfig, base: AdapterConfig) -> dict[str, Any]:
    """The fields (in declaration order) whose values differ from ``base``."""
    mine, theirs = config.frozen_dict(), base.frozen_dict()
    out: dict[str, Any] = {}
    for key, value in mine.items():
        if key == "architecture":
            continue
        # Compared by value: 16 and 16.0 are the same reduction factor.
        if key not in theirs or theirs[key] != value:
            out[key] = value
    return out


def _single_candidates(config: AdapterConfig) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for ident, preset in IDENTIFIERS.items():
        if preset.deprecated or issubclass(preset.cls, ConfigUnion):
            continue
        base = preset_config(ident)
        if base.architecture != config.architecture:
            continue
        # Keys the base class does not have cannot be written after its identifier.
        if not set(config.frozen_dict()) <= set(type(base).model_fields) | {"architecture"}:
            continue
        out.append((ident, diff(config, base)))
    return out


def _dump_single(config: AdapterConfig) -> str:
    candidates = _single_candidates(config)
    ident, changes = min(candidates, key=lambda c: len(c[1]))  # first wins ties: table order
    return _render(ident, changes)


def _render(ident: str, changes: Mapping[str, Any]) -> str:
    if not changes:
        return ident
    return ident + "[" + ", ".join(f"{k}={format_value(v)}" for k, v in changes.items()) + "]"


def _dump_union(config: ConfigUnion) -> str:
    members = config.configs
    generic = "|".join(_dump_single(m) for m in members)
    best = (sum(len(_single_best_diff(m)) for m in members), generic)
    for ident, preset in IDENTIFIERS.items():
        if preset.deprecated or not issubclass(preset.cls, ConfigUnion):
            continue
        base = preset_config(ident)
        assert isinstance(base, ConfigUnion)
        if len(base.configs) != len(members) or any(
            a.architecture != b.architecture for a, b in zip(base.configs, members, strict=True)
        ):
            continue
        changes: dict[str, Any] = {}
        for name, mine, theirs in zip(base.member_names, members, base.configs, strict=True):
            if not set(mine.frozen_dict()) <= set(type(theirs).model_fields) | {"architecture"}:
                break
            changes.update({f"{name}.{k}": v for k, v in diff(mine, theirs).items()})
        else:
            if len(changes) <= best[0]:
                best = (len(changes), _render(ident, changes))
    return best[1]


def _single_best_diff(config: AdapterConfig) -> dict[str, Any]:
    return min((c[1] for c in _single_candidates(config)), key=len)


def dumps(config: AdapterConfig) -> str:
    """The canonical config string of a config object; anything else is a ConfigError (a
    string or dict is not taken as a config: ``dumps(load(spec))`` says what is meant)."""
    if not isinstance(config, AdapterConfig):
        from .errors import ConfigError, quote

        kind = "config string or dict" if isinstance(config, str | Mapping) else "value"
        raise ConfigError.single(
            f"dumps() takes a config object, not a {kind}",
            expected="a config object (from load(), parse() or a config class)",
            found=f"{type(config).__name__} {quote(config)}",
            suggestion="load it first: dumps(load(spec))",
            code="type",
        )
    if isinstance(config, ConfigUnion):
        return _dump_union(config)
    return _dump_single(config)
