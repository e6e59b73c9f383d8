"""The syntax tree of a config string: methods, their arguments and source spans.

Nothing semantic lives here: identifiers and keys are plain strings, values are Python values
(``int``, ``float``, ``bool``, ``None``, ``str``, ``list``, ``dict``) decoded from literals.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Arg", "ConfigText", "Method", "Span"]

Span = tuple[int, int]  # [start, end) character offsets in the source text


@dataclass(frozen=True)
class Arg:
    """``key=value``; ``key`` may be qualified (``lora.r``)."""

    key: str
    key_span: Span
    value: Any
    value_span: Span


@dataclass(frozen=True)
class Method:
    """``identifier[args]`` (``has_brackets`` tells ``lora`` from ``lora[]``)."""

    name: str
    name_span: Span
    args: tuple[Arg, ...]
    span: Span
    has_brackets: bool = False


@dataclass(frozen=True)
class ConfigText:
    """A whole config string: one method, or several joined by ``|``."""

    methods: tuple[Method, ...]
    source: str
