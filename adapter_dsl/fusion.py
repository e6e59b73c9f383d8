"""AdapterFusion configs from every input the reference accepts, and their canonical string.

``load_fusion_config`` is to fusion configs what ``load`` is to adapter configs: an identifier
(``dynamic``, ``static``), a config string (``dynamic[temperature=True]``), a dict (a config's
``to_dict()`` or a saved ``adapter_fusion_config.json``), a path to such a file or a config
object, with keyword overrides validated like every field.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import ConfigError, Location, Problem, did_you_mean
from .jsonpos import locate_problems
from .methods.base import AdapterConfig
from .methods.fusion import AdapterFusionConfig
from .registry import DEFAULT_FUSION_IDENTIFIER, FUSION_IDENTIFIERS
from .syntax.ast import Method
from .syntax.parser import parse_text

__all__ = ["FUSION_FILE", "fusion_from_dict", "load_fusion_config"]

FUSION_FILE = "adapter_fusion_config.json"
# Keys of a saved adapter_fusion_config.json around the config itself.
_ENVELOPE_KEYS = frozenset(
    {"config", "adapter_names", "hidden_size", "model_class", "model_name", "model_type", "name"}
    | {"version"}
)


def load_fusion_config(
    spec: Any = DEFAULT_FUSION_IDENTIFIER, /, **overrides: Any
) -> AdapterFusionConfig:
    """Resolve ``spec`` to a validated fusion config and apply ``overrides`` (validated too)."""
    try:
        config = _resolve(spec)
        return config.replace(**overrides) if overrides else config
    except ConfigError as exc:
        raise ConfigError(exc.problems, exc.source, subject="AdapterFusion config") from None


def _resolve(spec: Any) -> AdapterFusionConfig:
    if isinstance(spec, AdapterFusionConfig):
        return spec
    if isinstance(spec, Mapping):
        return fusion_from_dict(spec)
    if isinstance(spec, os.PathLike):
        return _load_file(Path(spec))
    if isinstance(spec, str):
        if spec in FUSION_IDENTIFIERS:
            return _build(FUSION_IDENTIFIERS[spec].cls, {})
        if "[" not in spec and (spec.endswith(".json") or os.sep in spec or os.path.exists(spec)):
            return _load_file(Path(spec))
        return _parse(spec)
    raise ConfigError.single(
        "cannot load a fusion config from this value",
        expected="'dynamic', 'static', a config string, a dict, a JSON file or a fusion config",
        found=type(spec).__name__,
        code="invalid_type",
    )


def _parse(text: str) -> AdapterFusionConfig:
    tree = parse_text(text)
    if len(tree.methods) > 1:
        start, end = tree.methods[1].span[0], tree.methods[-1].span[1]
        raise ConfigError(
            [
                Problem(
                    "a fusion config is one identifier, not a union",
                    Location(span=(start, end)),
                    expected="'dynamic' or 'static' with optional [key=value, ...]",
                    found=repr(text[start:end]),
                    code="syntax",
                )
            ],
            source=text,
        )
    method = tree.methods[0]
    preset = FUSION_IDENTIFIERS.get(method.name)
    problems: list[Problem] = []
    if preset is None:
        problems.append(
            Problem(
                f"unknown fusion config {method.name!r}",
                Location(span=method.name_span),
                expected="'dynamic' or 'static'",
                found=repr(method.name),
                suggestion=did_you_mean(method.name, FUSION_IDENTIFIERS),
                code="unknown_identifier",
            )
        )
        raise ConfigError(problems, source=text)
    values: dict[str, Any] = {}
    for arg in method.args:
        if arg.key in values:
            problems.append(
                Problem(
                    f"key '{arg.key}' is set twice",
                    Location(span=arg.key_span),
                    expected="each key at most once",
                    suggestion="remove one of them",
                    code="duplicate_key",
                )
            )
        values[arg.key] = arg.value
    try:
        config = _build(preset.cls, values)
    except ConfigError as exc:
        problems += [_locate(p, method) for p in exc.problems]
    if problems:
        raise ConfigError(problems, source=text)
    return config


def _locate(problem: Problem, method: Method) -> Problem:
    path = problem.location.path
    arg = next((a for a in method.args if path and a.key == path[0]), None)
    if arg is None:
        return problem.with_location(span=method.span)
    span = arg.key_span if problem.code == "unknown_key" else arg.value_span
    return problem.with_location(span=span)


def fusion_from_dict(data: Mapping[str, Any]) -> AdapterFusionConfig:
    """A fusion config from its ``to_dict()`` or a saved ``adapter_fusion_config.json``.

    Every field is required, as in the reference; the result is the preset class whose
    defaults the values match best (``dynamic`` on a tie), so a saved dynamic config reloads
    as a :class:`DynamicAdapterFusionConfig`.
    """
    prefix: tuple[str | int, ...] = ()
    fields = dict(data)
    fields.pop("$schema", None)
    if isinstance(fields.get("config"), Mapping) and set(fields) <= _ENVELOPE_KEYS:
        fields, prefix = dict(fields["config"]), ("config",)
    try:
        config = AdapterFusionConfig(**fields)
    except ConfigError as exc:
        raise ConfigError([p.prefixed(prefix) for p in exc.problems]) from None
    values = config.field_values()

    def distance(cls: type[AdapterConfig]) -> int:
        preset = cls().field_values()
        return sum(values[k] != preset[k] for k in values)

    best = min((p.cls for p in FUSION_IDENTIFIERS.values()), key=distance)  # ties: table order
    return _build(best, values)


def _build(cls: type[AdapterConfig], values: dict[str, Any]) -> AdapterFusionConfig:
    config = cls(**values)
    assert isinstance(config, AdapterFusionConfig)  # the table holds fusion classes only
    return config


def _load_file(path: Path) -> AdapterFusionConfig:
    if path.is_dir():
        path = path / FUSION_FILE
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError.single(
            f"no such fusion config file: {name}", code="file_not_found"
        ) from None
    except (OSError, ValueError) as exc:
        raise ConfigError.single(f"cannot read {name}: {exc}", code="file_unreadable") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            [
                Problem(
                    f"invalid JSON: {exc.msg}",
                    Location(
                        span=(exc.pos, exc.pos + 1), line=exc.lineno, column=exc.colno, file=name
                    ),
                    code="json_syntax",
                )
            ],
            source=text,
        ) from None
    if not isinstance(data, Mapping):
        raise ConfigError.single(
            "a fusion config file holds a JSON object", found=type(data).__name__
        ).located(file=name)
    try:
        return fusion_from_dict(data)
    except ConfigError as exc:
        raise ConfigError(locate_problems(exc.problems, text, name), source=text) from None
