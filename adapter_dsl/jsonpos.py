"""Positions in JSON text: where does the value at a JSON path start and end?

The standard ``json`` module reports positions only for syntax errors; validation problems are
found later on plain dicts. This small scanner walks the text along a path so that a problem at
``/config/r`` can be shown at its line and column with a caret.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

__all__ = ["line_col", "locate"]

_WS = re.compile(r"[ \t\n\r]*")
_SCALAR = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null")


def line_col(text: str, pos: int) -> tuple[int, int]:
    """1-based line and column of a character offset."""
    line = text.count("\n", 0, pos) + 1
    return line, pos - (text.rfind("\n", 0, pos) + 1) + 1


def _skip_ws(text: str, pos: int) -> int:
    m = _WS.match(text, pos)
    return m.end() if m else pos


def _value_end(text: str, pos: int) -> int:
    """The offset just after the JSON value that starts at ``pos``."""
    c = text[pos : pos + 1]
    if c == '"':
        return json.decoder.scanstring(text, pos + 1)[1]  # type: ignore[attr-defined]
    if c in ("{", "["):
        depth = 0
        i = pos
        while i < len(text):
            ch = text[i]
            if ch == '"':
                i = json.decoder.scanstring(text, i + 1)[1]  # type: ignore[attr-defined]
                continue
            if ch in "{[":
                depth += 1
            elif ch in "}]":
                depth -= 1
                if depth == 0:
                    return i + 1
            i += 1
        return len(text)
    m = _SCALAR.match(text, pos)
    return m.end() if m else pos + 1


def locate(text: str, path: Sequence[str | int], *, key: bool = False) -> tuple[int, int]:
    """Span of the value at ``path`` (of its key, with ``key=True``); for a missing key, the
    span of the deepest object found.

    Assumes ``text`` is valid JSON (it has been parsed already).
    """
    pos = _skip_ws(text, 0)
    for depth, part in enumerate(path):
        c = text[pos : pos + 1]
        found = None
        if c == "{":
            i = _skip_ws(text, pos + 1)
            while i < len(text) and text[i] == '"':
                key_start = i
                name, i = json.decoder.scanstring(text, i + 1)  # type: ignore[attr-defined]
                key_end = i
                i = _skip_ws(text, i)
                i = _skip_ws(text, i + 1)  # past ':'
                if name == str(part):
                    if key and depth == len(path) - 1:
                        return key_start, key_end
                    found = i
                    break
                i = _skip_ws(text, _value_end(text, i))
                if text[i : i + 1] == ",":
                    i = _skip_ws(text, i + 1)
        elif c == "[" and isinstance(part, int):
            i = _skip_ws(text, pos + 1)
            index = 0
            while i < len(text) and text[i] != "]":
                if index == part:
                    found = i
                    break
                i = _skip_ws(text, _value_end(text, i))
                if text[i : i + 1] == ",":
                    i = _skip_ws(text, i + 1)
                index += 1
        if found is None:
            return pos, _value_end(text, pos)
        pos = found
    return pos, _value_end(text, pos)
