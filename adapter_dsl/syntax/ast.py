"""The syntax tree of a config string: methods, their arguments and source spans.

Nothing semantic lives here: identifiers and keys are plain strings, values are Python values
(``int``, ``float``, ``bool``, ``None``, ``str``, ``list``, ``dict``) decoded from literals.
"""

from __future__ import annotations

from typing import Any, NamedTuple

__all__ = ["Arg", "Call", "ConfigText", "Method", "Span"]

Span = tuple[int, int]  # [start, end) character offsets in the source text


# NamedTuples: immutable like frozen dataclasses, and much cheaper to build on the parse path.
class Call(NamedTuple):
    """``name(args)``, a sweep over a value; only sweep expressions have them."""

    name: str
    name_span: Span
    args: tuple[Any, ...]
    arg_spans: tuple[Span, ...]
    span: Span


class Arg(NamedTuple):
    """``key=value``; ``key`` may be qualified (``lora.r``)."""

    key: str
    key_span: Span
    value: Any
    value_span: Span


class Method(NamedTuple):
    """``identifier[args]`` (``has_brackets`` tells ``lora`` from ``lora[]``)."""

    name: str
    name_span: Span
    args: tuple[Arg, ...]
    span: Span
    has_brackets: bool = False


class ConfigText(NamedTuple):
    """A whole config string: one method, or several joined by ``|``."""

    methods: tuple[Method, ...]
    source: str
