"""Config → canonical config string: the closest identifier plus only the keys that differ.

Canonical strings are minimal, stable (keys in field order) and use Python literal syntax
(quoted strings, ``True``/``False``/``None``), so ``parse(dumps(c)) == c``. Two dialects:

* ``"adapter_dsl"`` (the default): this package's language. It may address union members with
  dotted keys (``mam[adapter.reduction_factor=4]``) and set fields that adapters 1.3.0 lacks
  (``random_uniform_scale``, ``subtract_projection``); the reference's parser rejects both.
* ``"reference"``: only what adapters 1.3.0's ``AdapterConfig.load`` parses to the same
  ``to_dict()``. A changed preset union is written member by member (``a[...]|b[...]``), never
  with dotted keys; fields the reference lacks are refused with a ConfigError; and in strings
  ``|`` and ``=`` are written as ``\\x7c`` / ``\\x3d`` escapes, because the reference splits the
  whole text at ``|`` and rewrites every ``word=`` before evaluating the literals.
  ``tests/fixtures/reference/dialect_corpus.json`` records the reference parsing such strings.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

from .composition import AdapterCompositionBlock, dumps_setup
from .errors import ConfigError, Location, Problem
from .methods.base import AdapterConfig
from .methods.fusion import AdapterFusionConfig
from .methods.union import ConfigUnion
from .registry import FUSION_IDENTIFIERS, IDENTIFIERS, preset_config

__all__ = ["DIALECTS", "Dialect", "diff", "dumps", "format_value"]

Dialect = Literal["adapter_dsl", "reference"]
DIALECTS: tuple[Dialect, ...] = ("adapter_dsl", "reference")


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


def _dump_fusion(config: AdapterFusionConfig) -> str:
    # The fusion identifier whose preset differs from the config in the fewest keys.
    candidates = [(ident, diff(config, p.cls())) for ident, p in FUSION_IDENTIFIERS.items()]
    ident, changes = min(candidates, key=lambda c: len(c[1]))
    return _render(ident, changes)


def _single_best_diff(config: AdapterConfig) -> dict[str, Any]:
    return min((c[1] for c in _single_candidates(config)), key=len)


def dumps(
    config: AdapterConfig | AdapterCompositionBlock, *, dialect: Dialect = "adapter_dsl"
) -> str:
    """The canonical string of a config object or of an adapter setup (``Stack(a, b)``), in
    ``dialect`` (see the module docstring): ``"adapter_dsl"`` (this package's language) or
    ``"reference"`` (what adapters 1.3.0 parses to the same ``to_dict()``, or a ConfigError
    saying why it cannot; setups and fusion configs are written in the reference's own Python
    notation, so the dialects agree on them)."""
    if not isinstance(config, AdapterConfig | AdapterCompositionBlock):
        from .errors import quote

        kind = "config string or dict" if isinstance(config, str | Mapping) else "value"
        raise ConfigError.single(
            f"dumps() takes a config object, not a {kind}",
            expected="a config object (from load(), parse() or a config class) or an adapter setup",
            found=f"{type(config).__name__} {quote(config)}",
            suggestion="load it first: dumps(load(spec))",
            code="type",
        )
    if dialect not in DIALECTS:
        raise ConfigError.single(
            f"unknown dialect {dialect!r}",
            expected=" or ".join(repr(d) for d in DIALECTS),
            found=repr(dialect)[:60],
            code="unknown_dialect",
        )
    if isinstance(config, AdapterCompositionBlock):
        return dumps_setup(config)
    if isinstance(config, AdapterFusionConfig):
        return _dump_fusion(config)
    if dialect == "reference":
        return _dump_reference(config)
    if isinstance(config, ConfigUnion):
        return _dump_union(config)
    return _dump_single(config)


# -- the reference's dialect -------------------------------------------------------------------


def _dump_reference(config: AdapterConfig) -> str:
    if not isinstance(config, ConfigUnion):
        return _reference_single(config, ())
    for ident, preset in IDENTIFIERS.items():
        union = not preset.deprecated and issubclass(preset.cls, ConfigUnion)
        if union and preset_config(ident) == config:
            return ident
    # No dotted keys in the reference: a changed union is written member by member.
    return "|".join(_reference_single(m, ("configs", i)) for i, m in enumerate(config.configs))


def _reference_single(config: AdapterConfig, where: tuple[str | int, ...]) -> str:
    extension = type(config)._extension_fields
    candidates = [c for c in _single_candidates(config) if not set(c[1]) & extension]
    if not candidates:
        field = next(k for k in _single_best_diff(config) if k in extension)
        raise ConfigError(
            [
                Problem(
                    f"adapters 1.3.0 has no field '{field}', so no string it parses sets it",
                    Location(path=(*where, field)),
                    expected=f"{field}={format_value(type(config).model_fields[field].default)}"
                    " (its default)",
                    found=f"{field}={format_value(getattr(config, field))}",
                    suggestion=f"leave {field} at its default for a config that adapters "
                    "1.3.0 can load",
                    code="not_in_reference",
                )
            ]
        )
    ident, changes = min(candidates, key=lambda c: len(c[1]))
    if not changes:
        return ident
    parts = [f"{k}={_reference_literal(v, (*where, k))}" for k, v in changes.items()]
    return ident + "[" + ", ".join(parts) + "]"


def _reference_literal(value: Any, where: tuple[str | int, ...]) -> str:
    """A Python literal that survives the reference's ``|`` split and ``word=`` rewriting."""
    if isinstance(value, str):
        return repr(value).replace("|", "\\x7c").replace("=", "\\x3d")
    if isinstance(value, float) and not math.isfinite(value):
        if math.isnan(value):
            raise ConfigError(
                [
                    Problem(
                        "NaN has no literal that the reference's parser reads",
                        Location(path=where),
                        found="nan",
                        code="not_in_reference",
                    )
                ]
            )
        return "1e999" if value > 0 else "-1e999"  # literal_eval reads these as ±inf
    if isinstance(value, Mapping):
        items = sorted(value.items(), key=lambda kv: (not str(kv[0]).isdigit(), _order(kv[0])))
        return (
            "{"
            + ", ".join(
                f"{_reference_literal(k, where)}: {_reference_literal(v, (*where, str(k)))}"
                for k, v in items
            )
            + "}"
        )
    if isinstance(value, list | tuple):
        return (
            "[" + ", ".join(_reference_literal(v, (*where, i)) for i, v in enumerate(value)) + "]"
        )
    return format_value(value)
