"""A small, fast driver for the LALR(1) tables that lark compiles from the grammar.

lark turns a grammar into terminal patterns and a parse table at build time
(:mod:`adapter_dsl.syntax.tables`, run by ``make grammar``); this module reads them as the
package ships them (:func:`shipped_tables`) and runs them (:class:`TableParser`), without lark.
Config strings are short and parsed often, and lark's general-purpose lexer and parser
spend most of their time on bookkeeping this language does not need (line counters, token
objects with a dozen fields, interactive state). The driver keeps the grammar the single source
of truth and applies lark's own tree-shaping rules: ``_``-prefixed helper rules are spliced into
their parent, ``?rule`` passes a single child through, and an ``-> alias`` names the callback.
A test checks that it builds exactly what lark itself builds.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from importlib import resources
from typing import Any

__all__ = ["ParseFailure", "StaleTablesError", "TableParser", "Tok", "shipped_tables"]


class Tok:
    """A token: terminal name, text and [start, end) offsets (the attributes lark's Token has)."""

    __slots__ = ("end_pos", "start_pos", "type", "value")

    def __init__(self, type_: str, value: str, start: int, end: int) -> None:
        self.type = type_
        self.value = value
        self.start_pos = start
        self.end_pos = end

    def __str__(self) -> str:
        return self.value

    def __repr__(self) -> str:
        return f"Tok({self.type}, {self.value!r}, {self.start_pos})"


class ParseFailure(Exception):
    """Where parsing stopped: offsets, the token found (None for a bad character or the end),
    and the terminal names the grammar allowed there."""

    def __init__(self, pos: int, end: int, token: Tok | None, expected: frozenset[str]) -> None:
        self.pos = pos
        self.end = end
        self.token = token
        self.expected = expected
        super().__init__(f"unexpected input at {pos}")


class _State:
    """A parser state: its actions (terminal → next _State or a reduction), its gotos
    (nonterminal → _State) and, built on first use, the lexer for the terminals it accepts."""

    __slots__ = ("actions", "gotos", "id", "lexer")

    def __init__(self, id_: int) -> None:
        self.id = id_
        self.actions: dict[str, Any] = {}
        self.gotos: dict[str, _State] = {}
        self.lexer: re.Pattern[str] | None = None


class _Splice:
    """The children of a ``_``-prefixed helper rule, to be spliced into the parent's."""

    __slots__ = ("items",)

    def __init__(self, items: list[Any]) -> None:
        self.items = items


_Reduction = tuple[int, str, "Callable[[list[Any]], Any] | None", bool, bool]


class StaleTablesError(RuntimeError):
    """The shipped parse tables were not generated from the shipped grammar (a packaging
    defect: run ``make grammar``), or are missing."""


def grammar_digest(text: str) -> str:
    """SHA-256 of a grammar's text: ties shipped tables to the grammar they came from."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def shipped_tables(package: str, grammar: str) -> dict[str, Any]:
    """The tables ``<grammar>.tables.json`` that ``package`` ships beside ``<grammar>.lark``,
    checked against the grammar's digest. Stale tables are an error, never silently recompiled:
    a parser that quietly differs from its grammar is worse than none."""
    files = resources.files(package)
    try:
        text = files.joinpath(f"{grammar}.lark").read_text("utf-8")
        tables = json.loads(files.joinpath(f"{grammar}.tables.json").read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise StaleTablesError(f"cannot read the parse tables of {grammar}.lark: {exc}") from exc
    if not isinstance(tables, dict) or tables.get("grammar_sha256") != grammar_digest(text):
        raise StaleTablesError(
            f"{package}/{grammar}.tables.json was not generated from {grammar}.lark; "
            "run `make grammar`"
        )
    return tables


class TableParser:
    """Run compiled LALR tables (see :mod:`adapter_dsl.syntax.tables`) over text, calling
    ``callbacks[rule](children)`` to build values."""

    def __init__(
        self, tables: Mapping[str, Any], callbacks: Mapping[str, Callable[[list[Any]], Any]]
    ) -> None:
        self._start: int = tables["start"]
        self._end: int = tables["end"]
        self._patterns = [(name, regex) for name, regex in tables["terminals"]]
        self._ignore = frozenset(tables["ignore"])
        # Ignored text (whitespace) is skipped inside each token's match rather than returned as
        # tokens of its own: one regex match per real token. The repetition is possessive: an
        # ignored pattern is itself a repetition (WS is ``[ \t\f\r\n]+``), and a backtracking
        # ``(?:WS)*`` tries every way of splitting a run of blanks when the token after it fails
        # to match, which is exponential in the run's length. No token starts with ignored text,
        # so giving nothing back loses no match.
        ignored = "|".join(regex for name, regex in self._patterns if name in self._ignore)
        self._skip = f"(?:{ignored})*+" if ignored else ""
        self._skip_re = re.compile(self._skip)
        self._any = self._compile(name for name, _ in self._patterns)
        reductions: list[_Reduction] = []
        for size, origin, callback_name, passthrough, splices in tables["rules"]:
            callback = callbacks.get(callback_name) if callback_name else None
            if callback_name and callback is None and not passthrough:
                raise KeyError(f"no callback for grammar rule {callback_name!r}")
            reductions.append((size, origin, callback, passthrough, splices))
        # One _State object per parser state, linked directly: a shift action *is* the next
        # state object and a goto maps a nonterminal to one, so the loop does no table lookups
        # beyond the action itself.
        states = {int(state): _State(int(state)) for state in tables["actions"]}
        for state, row in tables["actions"].items():
            states[int(state)].actions = {
                symbol: reductions[step[1]] if isinstance(step, list) else states[step]
                for symbol, step in row.items()
            }
        for state, row in tables["gotos"].items():
            states[int(state)].gotos = {symbol: states[target] for symbol, target in row.items()}
        self._states = states

    def _compile(self, names: Any) -> re.Pattern[str]:
        wanted = set(names) - self._ignore
        alternatives = "|".join(
            f"(?P<{name}>{regex})" for name, regex in self._patterns if name in wanted
        )
        return re.compile(f"{self._skip}(?:{alternatives})")

    def _lexer(self, state: _State) -> re.Pattern[str]:
        if state.lexer is None:
            state.lexer = self._compile(state.actions)
        return state.lexer

    def parse(self, text: str) -> Any:
        end_state = self._states[self._end]
        stack: list[_State] = [self._states[self._start]]
        values: list[Any] = []
        pos = 0
        length = len(text)
        while True:
            state = stack[-1]
            if pos < length:
                m = (state.lexer or self._lexer(state)).match(text, pos)
                if m is None:
                    pos = self._skip_re.match(text, pos).end()  # type: ignore[union-attr]
                    if pos < length:
                        raise self._failure(text, pos, state)
                    continue  # only ignored text was left: the end comes next
                kind = m.lastgroup
                end = m.end()
                start = m.start(kind)  # type: ignore[arg-type]
                token: Tok | None = Tok(kind, text[start:end], start, end)  # type: ignore[arg-type]
            else:
                kind, token, end = "$END", None, pos
            while True:
                step = stack[-1].actions.get(kind)  # type: ignore[arg-type]
                if step is None:
                    raise ParseFailure(pos, end, token, frozenset(stack[-1].actions))
                if type(step) is _State:
                    stack.append(step)
                    values.append(token)
                    break
                size, origin, callback, passthrough, splices = step
                if size:
                    children = values[-size:]
                    del values[-size:]
                    del stack[-size:]
                    if splices:
                        # Repetitions are left-recursive helper rules, so the first child is
                        # the splice of everything repeated so far: extend its list in place
                        # (it is consumed here) rather than copy it, or a list of n values
                        # would cost n²/2 copies.
                        first = children[0]
                        flat: list[Any] = first.items if type(first) is _Splice else [first]
                        for child in children[1:]:
                            if type(child) is _Splice:
                                flat.extend(child.items)
                            else:
                                flat.append(child)
                        children = flat
                else:
                    children = []
                if passthrough and len(children) == 1:
                    value: Any = children[0]
                elif callback is not None:
                    value = callback(children)
                else:
                    value = _Splice(children)
                values.append(value)
                stack.append(stack[-1].gotos[origin])
                if token is None and stack[-1] is end_state:
                    return values[-1]
            pos = end

    def _failure(self, text: str, pos: int, state: _State) -> ParseFailure:
        """What stopped the lexer at ``pos`` (past any ignored text): a token of the wrong
        kind for this state, or a character no terminal starts with."""
        expected = frozenset(state.actions)
        m = self._any.match(text, pos)
        if m is None:
            return ParseFailure(pos, pos + 1, None, expected)
        kind = m.lastgroup
        assert kind is not None
        return ParseFailure(pos, m.end(), Tok(kind, m.group(kind), pos, m.end()), expected)
