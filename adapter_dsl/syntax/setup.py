"""Setup string → syntax tree (:class:`Call`, :class:`Name`, :class:`Keyword`) with source spans.

The grammar is ``adapter_setup.lark`` (a copy of ``grammar/adapter_setup.lark``, kept identical
by a test), run by the same table-driven LALR parser as config strings from tables shipped in
``adapter_setup.tables.json`` (``make grammar`` regenerates them; parsing never imports lark).
Syntax only: which block names, keywords and values are valid is decided by
:mod:`adapter_dsl.composition`.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any, NamedTuple

from ..errors import ConfigError, Location, Problem
from .ast import Span

# One string-literal decoder for both languages (the escapes config strings accept).
from .parser import _BadEscape, _unescape

if TYPE_CHECKING:
    from lark import Lark

    from .lalr import TableParser

__all__ = [
    "GRAMMAR_FILE",
    "MAX_SETUP_LENGTH",
    "TABLES_FILE",
    "Call",
    "Keyword",
    "Name",
    "StaleSetupTables",
    "build_tables",
    "grammar_text",
    "parse_setup_text",
]

GRAMMAR_FILE = "adapter_setup.lark"
TABLES_FILE = "adapter_setup.tables.json"
MAX_SETUP_LENGTH = 20_000
MAX_SETUP_DEPTH = 32  # nesting of parentheses and brackets


class Name(NamedTuple):
    """An adapter name (bare word or quoted string)."""

    name: str
    span: Span


class Keyword(NamedTuple):
    """``key=value``; ``element_spans`` are the spans of a list value's elements."""

    key: str
    key_span: Span
    value: Any
    value_span: Span
    element_spans: tuple[Span, ...] = ()


class Call(NamedTuple):
    """``Block(item, ...)``: adapter names, nested calls and keywords in written order."""

    name: str
    name_span: Span
    items: tuple[Name | Call | Keyword, ...]
    span: Span


_CONSTANTS: dict[str, Any] = {"True": True, "False": False, "None": None}

_TERMINALS = {
    "NAME": "an adapter name or block",
    "NUMBER": "a number",
    "STRING": "a quoted string",
    "LPAR": "'('",
    "RPAR": "')'",
    "LSQB": "'['",
    "RSQB": "']'",
    "COMMA": "','",
    "EQUAL": "'='",
    "$END": "the end of the text",
}

_HINTS = {
    "[": "blocks take their adapters in parentheses, e.g. Stack(a, b)",
    "|": "'|' joins adapter configs; a setup combines adapters with blocks such as Stack(a, b)",
    ":": "keyword arguments are written with '=', e.g. splits=[3, 4]",
    ";": "separate adapters with ','",
}


def grammar_text() -> str:
    """The setup grammar the package ships (identical to ``grammar/adapter_setup.lark``)."""
    return resources.files(__package__).joinpath(GRAMMAR_FILE).read_text("utf-8")


def lark_parser() -> Lark:
    from lark import Lark

    return Lark(
        grammar_text(),
        parser="lalr",
        lexer="contextual",
        keep_all_tokens=True,
        maybe_placeholders=False,
        cache=True,
    )


def grammar_digest() -> str:
    return hashlib.sha256(grammar_text().encode("utf-8")).hexdigest()


def build_tables() -> dict[str, Any]:
    """Compile the setup grammar with lark into the tables the parser runs (build time only:
    ``make grammar``)."""
    from .lalr import compile_tables

    return {"grammar_sha256": grammar_digest(), **compile_tables(lark_parser())}


class StaleSetupTables(RuntimeError):
    """The shipped tables were not generated from the shipped grammar (a packaging mistake)."""


def _load_tables() -> dict[str, Any]:
    # Stale tables are an error, never silently recompiled: parsing never needs lark, and a
    # parser that quietly differs from its grammar is worse than none.
    try:
        shipped = json.loads(resources.files(__package__).joinpath(TABLES_FILE).read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise StaleSetupTables(f"cannot read {TABLES_FILE}: {exc}; run `make grammar`") from exc
    if not isinstance(shipped, dict) or shipped.get("grammar_sha256") != grammar_digest():
        raise StaleSetupTables(
            f"{TABLES_FILE} was not generated from {GRAMMAR_FILE}; run `make grammar`"
        )
    return shipped


def callbacks() -> dict[str, Any]:
    """Rule (or alias) name → function building the syntax tree from the rule's children."""
    return {
        "start": lambda c: c[0],
        "call": _call,
        "keyword": _keyword,
        "name": _name,
        "number": _number,
        "string": _string,
        "word": _word,
        "list": _list,
    }


@cache
def _parser() -> TableParser:
    from .lalr import TableParser

    return TableParser(_load_tables(), callbacks())


class _Value(NamedTuple):
    value: Any
    span: Span
    element_spans: tuple[Span, ...] = ()


def _tok_span(tok: Any) -> Span:
    return (tok.start_pos, tok.end_pos)


def _number(children: list[Any]) -> _Value:
    (tok,) = children
    text = tok.value
    value = float(text) if any(c in text for c in ".eE") else int(text)
    return _Value(value, _tok_span(tok))


def _string(children: list[Any]) -> _Value:
    (tok,) = children
    return _Value(_unescape(tok.value, tok.start_pos), _tok_span(tok))


def _word(children: list[Any]) -> _Value:
    (tok,) = children
    return _Value(_CONSTANTS.get(tok.value, tok.value), _tok_span(tok))


def _list(children: list[Any]) -> _Value:
    values = [c for c in children if isinstance(c, _Value)]
    span = (children[0].start_pos, children[-1].end_pos)
    return _Value([v.value for v in values], span, tuple(v.span for v in values))


def _name(children: list[Any]) -> Name:
    (tok,) = children
    text = _unescape(tok.value, tok.start_pos) if tok.type == "STRING" else tok.value
    return Name(text, _tok_span(tok))


def _keyword(children: list[Any]) -> Keyword:
    key, _, value = children
    return Keyword(key.value, _tok_span(key), value.value, value.span, value.element_spans)


def _call(children: list[Any]) -> Call:
    head = children[0]
    items = tuple(c for c in children[2:] if isinstance(c, Name | Call | Keyword))
    return Call(head.value, _tok_span(head), items, (head.start_pos, children[-1].end_pos))


def parse_setup_text(text: str) -> Name | Call:
    """Parse a setup string; raise ConfigError with the offending span on bad syntax."""
    _check_limits(text)
    from .lalr import ParseFailure

    try:
        tree: Name | Call = _parser().parse(text)
    except ParseFailure as failure:
        raise _failure(text, failure) from None
    except _BadEscape as exc:
        problem = Problem(
            f"invalid escape sequence {exc.text!r} in a string",
            Location(span=exc.span),
            expected=r"one of \\ \' \" \n \t \r \0 \xHH \uHHHH \UHHHHHHHH",
            found=repr(exc.text),
            code="syntax",
        )
        raise ConfigError([problem], source=text) from None
    return tree


def _check_limits(text: str) -> None:
    if not isinstance(text, str):
        raise ConfigError.single(
            "an adapter setup string must be a str", expected="str", found=type(text).__name__
        )
    if not text.strip():
        raise ConfigError.single(
            "empty adapter setup",
            expected="an adapter name or a block such as Stack(a, b)",
            found="an empty string",
            code="syntax",
        )
    if len(text) > MAX_SETUP_LENGTH:
        raise ConfigError.single(
            f"adapter setup too long ({len(text)} characters)",
            expected=f"at most {MAX_SETUP_LENGTH} characters",
            span=(MAX_SETUP_LENGTH, len(text)),
            code="too_long",
        )
    depth = 0
    quote: str | None = None
    for i, c in enumerate(text):
        if quote:
            quote = None if c == quote else quote
        elif c in "'\"":
            quote = c
        elif c in "([":
            depth += 1
            if depth > MAX_SETUP_DEPTH:
                raise ConfigError.single(
                    f"adapter setup nested more than {MAX_SETUP_DEPTH} levels deep",
                    expected=f"at most {MAX_SETUP_DEPTH} levels of parentheses",
                    span=(i, i + 1),
                    source=text,
                    code="too_deep",
                )
        elif c in ")]":
            depth -= 1


def _expected_words(expected: frozenset[str]) -> str | None:
    names = sorted({_TERMINALS.get(t, t) for t in expected if t.isupper() or t == "$END"})
    if not names:
        return None
    return names[0] if len(names) == 1 else "one of " + ", ".join(names)


def _failure(text: str, failure: Any) -> ConfigError:
    pos, end, token = failure.pos, failure.end, failure.token
    expected = set(failure.expected)
    suggestion: str | None = None
    if pos >= len(text):
        message = "the adapter setup ends too early"
        found = "the end of the text"
        opened = text.count("(") - text.count(")")
        if "RPAR" in expected and opened > 0:
            suggestion = "add the missing ')'" if opened == 1 else f"add the {opened} missing ')'"
        elif "RSQB" in expected:
            suggestion = "add the missing ']'"
        end = pos + 1
    elif token is None:
        char = text[pos]
        if char in "'\"":
            message, suggestion, end = (
                "unterminated string",
                "close the string with a matching quote",
                len(text),
            )
            expected = set()
        else:
            message = f"unexpected character {char!r}"
            suggestion = _HINTS.get(char)
        found = repr(text[pos:end])
    else:
        what = f"word {token.value!r}" if token.type == "NAME" else repr(token.value)
        if token.type in ("NUMBER", "STRING"):
            what = f"{token.type.lower()} {token.value}"
        message = f"unexpected {what}"
        found = repr(text[pos:end])
        suggestion = _HINTS.get(token.value)
        if token.type == "LPAR" and text[:pos].rstrip().endswith(")"):
            suggestion = "a block is followed by ',' or ')', not by '('"
        elif token.type in ("NAME", "STRING", "NUMBER") and "COMMA" in expected:
            suggestion = "separate adapters with ','"
        elif token.type == "RPAR" and "RPAR" not in expected:
            suggestion = "remove the extra ')'"
    return ConfigError(
        [
            Problem(
                message,
                Location(span=(pos, end)),
                expected=_expected_words(frozenset(expected)),
                found=found,
                suggestion=suggestion,
                code="syntax",
            )
        ],
        source=text,
    )
