"""Reading and reporting PEFT dict values: located problems, strict numbers and booleans,
the keys that carry no meaning, and PEFT key names in problems raised by config validation."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from ..errors import ConfigError, Location, Problem
from .targets import shown

__all__ = ["at_peft_key", "flag", "number", "problem", "raise_problems", "unknown_keys"]

#: Keys of PEFT configs that carry no meaning for the computation (metadata, or settings the
#: model supplies), ignored whatever their value.
_METADATA = frozenset(
    {
        "peft_type",
        "task_type",
        "auto_mapping",
        "peft_version",
        "base_model_name_or_path",
        "revision",
        "inference_mode",
        "fan_in_fan_out",
        "megatron_core",
        "qalora_group_size",
        "token_dim",
        "num_transformer_submodules",
        "num_attention_heads",
        "num_layers",
        "tokenizer_name_or_path",
        "tokenizer_kwargs",
    }
)


def problem(path: str | tuple[str | int, ...], message: str, **kw: Any) -> Problem:
    """A problem at ``path`` (a key of the PEFT dict or of the config), by default the code
    ``not_expressible``."""
    loc = (path,) if isinstance(path, str) else path
    return Problem(message, Location(path=loc), code=kw.pop("code", "not_expressible"), **kw)


class Unsupported(NamedTuple):
    """A config field PEFT has no counterpart for: the only value PEFT can mean, and why."""

    key: str
    default: Any
    why: str
    suggestion: str | None = None


#: Every method's ``init_weights_seed``: PEFT's initialisation follows torch's global RNG.
SEED = Unsupported(
    "init_weights_seed",
    None,
    "PEFT configs carry no initialisation seed",
    "seed torch before creating the PEFT model",
)


def unsupported_values(cfg: Any, fields: tuple[tuple[Any, ...], ...]) -> list[Problem]:
    """A problem for each field (an :class:`Unsupported` or its first three values) whose value
    in ``cfg`` differs from the one PEFT can mean."""
    problems = []
    for row in (Unsupported(*f) for f in fields):
        value = getattr(cfg, row.key)
        if value != row.default:
            problems.append(
                problem(
                    row.key,
                    row.why,
                    expected=repr(row.default),
                    found=repr(value),
                    suggestion=row.suggestion,
                )
            )
    return problems


def raise_problems(problems: list[Problem]) -> None:
    """Raise one ``ConfigError`` listing ``problems``, if there are any."""
    if problems:
        raise ConfigError(problems)


def unknown_keys(data: Mapping[str, Any], handled: set[str]) -> list[Problem]:
    """Problems for the keys of ``data`` outside ``handled`` and the metadata that are set to
    anything but their default (PEFT options without a counterpart here)."""
    problems = []
    for key, value in data.items():
        if key in handled or key in _METADATA:
            continue
        if value in (None, False, "", 0) or value == {} or value == []:
            continue
        problems.append(
            problem(
                key,
                f"the PEFT option '{key}' has no counterpart here",
                expected="its default (None, False or empty)",
                found=shown(value),
            )
        )
    return problems


def number(data: Mapping[str, Any], key: str, default: Any, problems: list[Problem]) -> Any:
    """``data[key]`` (or ``default``) when it is a number; otherwise a problem and ``default``."""
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        problems.append(
            problem(key, f"'{key}' must be a number", expected="a number", found=shown(value))
        )
        return default
    return value


def flag(data: Mapping[str, Any], key: str, problems: list[Problem]) -> bool:
    """A PEFT boolean: JSON true/false (or null for false), as PEFT writes them; a string such
    as "false" is a problem, not a truthy value."""
    value = data.get(key)
    if value is None or isinstance(value, bool):
        return bool(value)
    problems.append(
        problem(
            key,
            f"'{key}' must be true or false",
            expected="true or false",
            found=shown(value),
            code="type",
        )
    )
    return False


def at_peft_key(found: Problem, keys: Mapping[str, str]) -> Problem:
    """``found`` (raised by config validation) located at the PEFT key named in ``keys``."""
    path = found.location.path
    if path and isinstance(path[0], str) and path[0] in keys:
        return found.with_location(path=(keys[path[0]], *path[1:]))
    return found
