"""Config string → :class:`~adapter_dsl.syntax.ast.ConfigText`, with located syntax errors.

The package ships the grammar (``adapter_config.lark``, generated from
``grammar/adapter_config.lark`` by ``make grammar``) with its LALR tables; they are read once,
lazily, on the first parse: ``import adapter_dsl`` stays cheap and parsing never imports lark.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, Location, Problem
from ..limits import DEFAULT_MAX_LENGTH, ENV_VAR, max_length
from .ast import Arg, ConfigText, Method, Span

if TYPE_CHECKING:
    from .lalr import TableParser

__all__ = ["MAX_DEPTH", "MAX_LENGTH", "grammar_text", "parse_text"]

MAX_LENGTH = DEFAULT_MAX_LENGTH  # characters, unless $ADAPTER_DSL_MAX_LENGTH says otherwise
MAX_DEPTH = 16  # nesting of brackets and braces
# Python refuses to convert longer digit strings to int (sys.int_info.default_max_str_digits).
_MAX_DIGITS = 4300

_CONSTANTS: dict[str, Any] = {
    "True": True,
    "False": False,
    "None": None,
    "true": True,
    "false": False,
    "null": None,
}

# Terminal names → words for "expected ..." in messages.
_TERMINALS = {
    "IDENT": "an adapter identifier",
    "KEYPART": "a key",
    "WORD": "a word",
    "NUMBER": "a number",
    "STRING": "a quoted string",
    "LSQB": "'['",
    "RSQB": "']'",
    "LBRACE": "'{'",
    "RBRACE": "'}'",
    "COMMA": "','",
    "EQUAL": "'='",
    "COLON": "':'",
    "DOT": "'.'",
    "VBAR": "'|'",
    "$END": "the end of the text",
}

# Characters that people try and that the language does not have, with a hint.
_HINTS = {
    "(": "calls and parentheses are not allowed; write the value as a literal, e.g. [0, 1, 2]",
    "*": "arithmetic is not allowed; write the computed value",
    "/": "arithmetic is not allowed; write the computed value",
    "#": "comments are not allowed in config strings",
    ";": "separate keys with ',' and methods with '|'",
    ":": "keys are set with '=', e.g. lora[r=8]",
}


GRAMMAR = "adapter_config"


def grammar_text() -> str:
    """The grammar the package ships (a generated copy of ``grammar/adapter_config.lark``)."""
    return resources.files(__package__).joinpath(f"{GRAMMAR}.lark").read_text("utf-8")


@cache
def _parser() -> TableParser:
    from .lalr import TableParser, shipped_tables

    return TableParser(shipped_tables(__package__, GRAMMAR), callbacks())


def callbacks() -> dict[str, Any]:
    """Rule (or alias) name → function building the syntax tree from the rule's children."""
    h = _ToAst()
    return {
        "string": h.string,
        "number": h.number,
        "word": h.word,
        "list": h.list_value,
        "dict": h.dict_value,
        "pair": h.pair,
        "key": h.key,
        "arg": h.arg,
        "args": h.args,
        "method": h.method,
        "start": h.start,
    }


class _Value:
    """A decoded value with its span, used only while parsing."""

    __slots__ = ("end", "start", "value")

    def __init__(self, value: Any, start: int, end: int) -> None:
        self.value = value
        self.start = start
        self.end = end


_ESCAPE = re.compile(r"\\(U[0-9a-fA-F]{8}|u[0-9a-fA-F]{4}|x[0-9a-fA-F]{2}|.)", re.DOTALL)
_SIMPLE_ESCAPES = {"\\": "\\", "'": "'", '"': '"', "n": "\n", "t": "\t", "r": "\r", "0": "\0"}


class _BadEscape(Exception):
    def __init__(self, text: str, span: Span) -> None:
        self.text = text
        self.span = span


def _unescape(literal: str, offset: int) -> str:
    r"""The value of a quoted string token; escapes: \\ \' \" \n \t \r \0 \xHH \uHHHH \UHHHHHHHH."""

    def replace(m: re.Match[str]) -> str:
        code = m.group(1)
        if code in _SIMPLE_ESCAPES:
            return _SIMPLE_ESCAPES[code]
        if len(code) > 1 and int(code[1:], 16) <= 0x10FFFF:
            return chr(int(code[1:], 16))
        start = offset + 1 + m.start()
        raise _BadEscape(m.group(0), (start, start + len(m.group(0))))

    return _ESCAPE.sub(replace, literal[1:-1])


class _HugeNumber(Exception):
    def __init__(self, span: Span) -> None:
        self.span = span


class _DuplicateKey(Exception):
    def __init__(self, key: Any, span: Span) -> None:
        self.key = key
        self.span = span


def _punct(children: list[Any]) -> Span:
    """Span from the first to the last token among children (brackets included)."""
    return (children[0].start_pos, children[-1].end_pos)


class _ToAst:
    """Inline LALR callbacks (no parse tree is built): rule or alias name → handler.

    The parser keeps all tokens, so brackets and separators arrive as children and give exact
    spans; handlers pick out what they need.
    """

    def string(self, children: list[Any]) -> _Value:
        (tok,) = children
        return _Value(_unescape(str(tok), tok.start_pos), tok.start_pos, tok.end_pos)

    def number(self, children: list[Any]) -> _Value:
        (tok,) = children
        text = tok.value
        is_float = "." in text or "e" in text or "E" in text
        if not is_float and len(text) > _MAX_DIGITS:
            raise _HugeNumber((tok.start_pos, tok.end_pos))
        value: int | float = float(text) if is_float else int(text)
        return _Value(value, tok.start_pos, tok.end_pos)

    def word(self, children: list[Any]) -> _Value:
        (tok,) = children
        text = tok.value
        return _Value(_CONSTANTS.get(text, text), tok.start_pos, tok.end_pos)

    def list_value(self, children: list[Any]) -> _Value:
        start, end = _punct(children)
        return _Value([c.value for c in children if isinstance(c, _Value)], start, end)

    def dict_value(self, children: list[Any]) -> _Value:
        out: dict[Any, Any] = {}
        for key, value in (c for c in children if isinstance(c, tuple)):
            if isinstance(key.value, list | dict) or key.value in out:
                raise _DuplicateKey(key.value, (key.start, key.end))
            out[key.value] = value.value
        start, end = _punct(children)
        return _Value(out, start, end)

    def pair(self, children: list[Any]) -> tuple[_Value, _Value]:
        return (children[0], children[2])

    def key(self, children: list[Any]) -> tuple[str, Span]:
        if len(children) == 1:  # the common, unqualified key
            (tok,) = children
            return (tok.value, (tok.start_pos, tok.end_pos))
        return ("".join(t.value for t in children), _punct(children))

    def arg(self, children: list[Any]) -> Arg:
        (key, key_span), _, value = children
        return Arg(key, key_span, value.value, (value.start, value.end))

    def args(self, children: list[Any]) -> tuple[tuple[Arg, ...], Span]:
        return (tuple(c for c in children if isinstance(c, Arg)), _punct(children))

    def method(self, children: list[Any]) -> Method:
        tok = children[0]
        name_span = (tok.start_pos, tok.end_pos)
        if len(children) == 1:
            return Method(str(tok), name_span, (), name_span, has_brackets=False)
        args, (_, end) = children[1]
        return Method(str(tok), name_span, args, (name_span[0], end), has_brackets=True)

    def start(self, children: list[Any]) -> tuple[Method, ...]:
        return tuple(c for c in children if isinstance(c, Method))


def parse_text(text: str) -> ConfigText:
    """Parse a config string; raise ConfigError with the offending span on bad syntax."""
    _check_limits(text)
    from .lalr import ParseFailure

    try:
        methods = _parser().parse(text)
    except ParseFailure as exc:
        raise _parse_failure(text, exc) from None
    except (_DuplicateKey, _BadEscape, _HugeNumber) as exc:
        raise _value_error(text, exc) from None
    return ConfigText(methods, text)


def _parse_failure(text: str, failure: Any) -> ConfigError:
    expected = set(failure.expected)
    token = failure.token
    if token is None and failure.pos >= len(text):
        return _unexpected_end(text, expected)
    if token is None:
        return _unexpected_character(text, failure.pos, expected)
    return _syntax_error(
        text,
        failure.pos,
        f"unexpected {_describe_token(token)}",
        expected,
        end=failure.end,
        suggestion=_HINTS.get(str(token)),
    )


def _value_error(text: str, error: Exception) -> ConfigError:
    if isinstance(error, _BadEscape):
        problem = Problem(
            f"invalid escape sequence {error.text!r} in a string",
            Location(span=error.span),
            expected=r"one of \\ \' \" \n \t \r \0 \xHH \uHHHH \UHHHHHHHH",
            found=repr(error.text),
            suggestion="write a backslash as \\\\",
            code="syntax",
        )
    elif isinstance(error, _HugeNumber):
        start, end = error.span
        problem = Problem(
            "number too large",
            Location(span=error.span),
            expected=f"at most {_MAX_DIGITS} digits (integer fields: at most 2**31 - 1)",
            found=f"an integer of {end - start} digits",
            code="too_large",
        )
    else:
        assert isinstance(error, _DuplicateKey)
        problem = Problem(
            f"key {error.key!r} appears twice in a dict",
            Location(span=error.span),
            code="duplicate_key",
        )
    return ConfigError([problem], source=text)


def _check_limits(text: str) -> None:
    if not isinstance(text, str):
        raise ConfigError.single(
            "a config string must be a str",
            expected="str",
            found=type(text).__name__,
        )
    if not text.strip():
        raise ConfigError.single(
            "empty config string",
            expected="an adapter identifier such as 'lora' or 'seq_bn[reduction_factor=8]'",
            code="syntax",
        )
    limit = max_length()
    if len(text) > limit:
        raise ConfigError(
            [
                Problem(
                    f"config string too long ({len(text):,} characters)",
                    Location(span=(limit, len(text))),
                    expected=f"at most {limit:,} characters",
                    suggestion=f"set {ENV_VAR} to allow longer input",
                    code="too_long",
                )
            ],
        )
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return  # cannot be nested too deep: skip the scan
    depth = 0
    for i, c in _brackets(text, len(text)):
        depth += 1 if c in "[{" else -1
        if depth > MAX_DEPTH:
            raise ConfigError(
                [
                    Problem(
                        f"values nested more than {MAX_DEPTH} levels deep",
                        Location(span=(i, i + 1)),
                        expected=f"at most {MAX_DEPTH} levels of brackets",
                        code="too_deep",
                    )
                ],
                source=text,
            )


def _brackets(text: str, stop: int) -> Iterator[tuple[int, str]]:
    """Offsets and characters of the brackets and braces in ``text[:stop]``, strings skipped."""
    quote: str | None = None
    escaped = False
    for i, c in enumerate(text[:stop]):
        if quote is not None:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == quote:
                quote = None
        elif c in "'\"":
            quote = c
        elif c in "[]{}":
            yield i, c


def _describe_token(token: Any) -> str:
    if token is None:
        return "input"
    if token.type in ("IDENT", "KEYPART", "WORD"):
        return f"word {str(token)!r}"
    if token.type in ("NUMBER", "STRING"):
        return f"{token.type.lower()} {token!s}"
    return repr(str(token))


_CLOSERS = {"[": "RSQB", "{": "RBRACE"}


def _innermost_open(text: str, pos: int) -> str | None:
    """The innermost bracket still open at ``pos`` (strings skipped)."""
    stack: list[str] = []
    for _, c in _brackets(text, pos):
        if c in "[{":
            stack.append(c)
        elif stack:
            stack.pop()
    return stack[-1] if stack else None


def _filter_closers(text: str, pos: int, expected: set[str] | None) -> set[str] | None:
    # LALR merges look-ahead sets of states shared by lists, dicts and arguments, so a closer
    # may be listed that cannot close anything here; keep only the one that matches.
    if not expected:
        return expected
    open_ = _innermost_open(text, pos)
    keep = _CLOSERS.get(open_) if open_ else None
    return {t for t in expected if t not in _CLOSERS.values() or t == keep}


def _expected_words(expected: set[str] | None) -> str | None:
    if not expected:
        return None
    # Parse tables list nonterminals (lower case) next to terminals: only terminals are input.
    names = sorted({_TERMINALS.get(t, t) for t in expected if t.isupper() or t == "$END"})
    if not names:
        return None
    return names[0] if len(names) == 1 else "one of " + ", ".join(names)


def _syntax_error(
    text: str,
    pos: int,
    message: str,
    expected: set[str] | None,
    *,
    end: int | None = None,
    suggestion: str | None = None,
) -> ConfigError:
    found = repr(text[pos : end or pos + 1]) if pos < len(text) else "the end of the text"
    expected = _filter_closers(text, pos, expected)
    return ConfigError(
        [
            Problem(
                message,
                Location(span=(pos, end or pos + 1)),
                expected=_expected_words(expected),
                found=found,
                suggestion=suggestion,
                code="syntax",
            )
        ],
        source=text,
    )


def _unexpected_character(text: str, pos: int, allowed: set[str] | None) -> ConfigError:
    char = text[pos]
    suggestion = _HINTS.get(char)
    if char in "'\"":
        suggestion = "close the string with a matching quote"
        return _syntax_error(
            text, pos, "unterminated string", None, end=len(text), suggestion=suggestion
        )
    return _syntax_error(
        text, pos, f"unexpected character {char!r}", allowed, suggestion=suggestion
    )


def _unexpected_end(text: str, expected: set[str]) -> ConfigError:
    suggestion = None
    expected = _filter_closers(text, len(text), expected) or set()
    if "RSQB" in expected:
        suggestion = "add the missing ']'"
    elif "RBRACE" in expected:
        suggestion = "add the missing '}'"
    elif "IDENT" in expected and text.rstrip().endswith("|"):
        suggestion = "remove the trailing '|' or add another method after it"
    pos = len(text)
    return _syntax_error(
        text, pos, "the config string ends too early", expected, suggestion=suggestion
    )
