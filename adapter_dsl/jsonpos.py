"""Positions in JSON text: where does the value at a JSON path start and end?

The standard ``json`` module reports positions only for syntax errors; validation problems are
found later on plain dicts. This small scanner walks the text along the paths of the problems so
that a problem at ``/config/r`` can be shown at its line and column with a caret. All problems
of a text are located in one pass (:func:`locate_all`, :class:`Lines`): the cost is linear in
the text's length however many problems it has.
"""

from __future__ import annotations

import json
import re
from bisect import bisect_right
from collections.abc import Sequence

from .errors import Problem

__all__ = ["Lines", "line_col", "locate", "locate_all", "locate_problems"]

_WS = re.compile(r"[ \t\n\r]*")
_SCALAR = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null")

Span = tuple[int, int]


class Lines:
    """1-based line and column of character offsets, each found by bisection."""

    def __init__(self, text: str) -> None:
        self._starts = [0] + [m.end() for m in re.finditer("\n", text)]

    def line_col(self, pos: int) -> tuple[int, int]:
        line = bisect_right(self._starts, pos)
        return line, pos - self._starts[line - 1] + 1


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


class _Node:
    """A step of the wanted paths: its children by key and by index, and, once the text has
    been scanned, the spans found for it."""

    __slots__ = ("by_index", "by_key", "key", "value")

    def __init__(self) -> None:
        self.by_key: dict[str, _Node] = {}
        self.by_index: dict[int, _Node] = {}
        self.key: Span | None = None
        self.value: Span | None = None

    def child(self, part: str | int) -> _Node:
        node = self.by_key.setdefault(str(part), _Node())
        if isinstance(part, int):
            self.by_index.setdefault(part, node)
        return node


def _scan(text: str, pos: int, node: _Node) -> int:
    """Record the spans of ``node`` (whose value starts at ``pos``) and of its descendants;
    return the offset after the value. Values no path goes into are skipped, never walked."""
    c = text[pos : pos + 1]
    end: int
    if c == "{" and node.by_key:
        i = _skip_ws(text, pos + 1)
        while i < len(text) and text[i] == '"':
            key_start = i
            name, i = json.decoder.scanstring(text, i + 1)  # type: ignore[attr-defined]
            key_end = i
            i = _skip_ws(text, _skip_ws(text, i) + 1)  # past ':'
            child = node.by_key.get(name)
            if child is not None:
                child.key = (key_start, key_end)
                i = _scan(text, i, child)
            else:
                i = _value_end(text, i)
            i = _skip_ws(text, i)
            if text[i : i + 1] == ",":
                i = _skip_ws(text, i + 1)
        end = i + 1 if text[i : i + 1] == "}" else _value_end(text, pos)
    elif c == "[" and node.by_index:
        i = _skip_ws(text, pos + 1)
        index = 0
        while i < len(text) and text[i] != "]":
            item = node.by_index.get(index)
            i = _scan(text, i, item) if item is not None else _value_end(text, i)
            i = _skip_ws(text, i)
            if text[i : i + 1] == ",":
                i = _skip_ws(text, i + 1)
            index += 1
        end = i + 1 if text[i : i + 1] == "]" else _value_end(text, pos)
    else:
        end = _value_end(text, pos)
    node.value = (pos, end)
    return end


def locate_all(text: str, wanted: Sequence[tuple[Sequence[str | int], bool]]) -> list[Span]:
    """For each ``(path, key)``: the span of the value at ``path`` (of its key, with ``key``
    true); for a missing key, the span of the deepest value found on the way. One pass over
    ``text``, which must be valid JSON (it has been parsed already)."""
    root = _Node()
    for path, _ in wanted:
        node = root
        for part in path:
            node = node.child(part)
    _scan(text, _skip_ws(text, 0), root)
    spans: list[Span] = []
    for path, key in wanted:
        node, deepest = root, root
        for part in path:
            node = node.child(part)
            if node.value is None:
                break
            deepest = node
        else:
            if key and path and node.key is not None:
                spans.append(node.key)
                continue
        assert deepest.value is not None
        spans.append(deepest.value)
    return spans


def locate(text: str, path: Sequence[str | int], *, key: bool = False) -> Span:
    """Span of the value at ``path`` (of its key, with ``key=True``); for a missing key, the
    span of the deepest object found (see :func:`locate_all`)."""
    return locate_all(text, [(path, key)])[0]


def locate_problems(problems: Sequence[Problem], text: str, file: str) -> list[Problem]:
    """``problems`` (found on the value parsed from ``text``) located in ``text`` by span, line
    and column, in one pass however many there are. A key that should not be there is shown at
    the key; other problems at the value."""
    if not problems:
        return []
    wanted = [(p.location.path, p.code in ("unknown_key", "dropped_key")) for p in problems]
    lines = Lines(text)
    out = []
    for problem, (start, end) in zip(problems, locate_all(text, wanted), strict=True):
        line, column = lines.line_col(start)
        out.append(problem.with_location(span=(start, end), line=line, column=column, file=file))
    return out
