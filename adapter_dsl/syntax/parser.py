"""Config string → :class:`~adapter_dsl.syntax.ast.ConfigText`, with located syntax errors.

The grammar (``adapter_config.lark``, a copy of ``grammar/adapter_config.lark`` kept identical by
a test) is compiled once, lazily, on the first parse: ``import adapter_dsl`` stays cheap.
"""

from __future__ import annotations

import ast as pyast
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, Location, Problem
from .ast import Arg, ConfigText, Method, Span

if TYPE_CHECKING:
    from lark import Lark

__all__ = ["MAX_DEPTH", "MAX_LENGTH", "grammar_text", "parse_text"]

MAX_LENGTH = 20_000  # characters; longer strings are not configs
MAX_DEPTH = 16  # nesting of brackets and braces

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


def grammar_text() -> str:
    """The grammar the package ships (identical to ``grammar/adapter_config.lark``)."""
    return resources.files(__package__).joinpath("adapter_config.lark").read_text("utf-8")


@cache
def _parser() -> Lark:
    from lark import Lark

    return Lark(
        grammar_text(),
        parser="lalr",
        lexer="contextual",
        transformer=_ToAst(),
        keep_all_tokens=True,
        maybe_placeholders=False,
    )


class _Value:
    """A decoded value with its span, used only while parsing."""

    __slots__ = ("end", "start", "value")

    def __init__(self, value: Any, start: int, end: int) -> None:
        self.value = value
        self.start = start
        self.end = end


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
        # The token matched the STRING pattern, so literal_eval only ever sees one string literal.
        return _Value(pyast.literal_eval(str(tok)), tok.start_pos, tok.end_pos)

    def number(self, children: list[Any]) -> _Value:
        (tok,) = children
        text = str(tok)
        value: int | float = float(text) if any(c in text for c in ".eE") else int(text)
        return _Value(value, tok.start_pos, tok.end_pos)

    def word(self, children: list[Any]) -> _Value:
        (tok,) = children
        text = str(tok)
        return _Value(_CONSTANTS.get(text, text), tok.start_pos, tok.end_pos)

    def list(self, children: list[Any]) -> _Value:
        start, end = _punct(children)
        return _Value([c.value for c in children if isinstance(c, _Value)], start, end)

    def dict(self, children: list[Any]) -> _Value:
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
        return ("".join(str(t) for t in children), _punct(children))

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
    from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, VisitError

    try:
        methods = _parser().parse(text)
    except (VisitError, _DuplicateKey) as exc:
        original = exc.orig_exc if isinstance(exc, VisitError) else exc
        if isinstance(original, _DuplicateKey):
            raise ConfigError(
                [
                    Problem(
                        f"key {original.key!r} appears twice in a dict",
                        Location(span=original.span),
                        code="duplicate_key",
                    )
                ],
                source=text,
            ) from None
        raise _syntax_error(text, len(text), "invalid value", None) from None
    except UnexpectedCharacters as exc:
        raise _unexpected_character(text, exc.pos_in_stream, exc.allowed) from None
    except UnexpectedEOF as exc:
        raise _unexpected_end(text, set(exc.expected)) from None
    except UnexpectedInput as exc:  # UnexpectedToken
        token = getattr(exc, "token", None)
        expected = set(getattr(exc, "expected", ()) or ())
        if token is not None and token.type == "$END":
            raise _unexpected_end(text, expected) from None
        pos = token.start_pos if token is not None else len(text)
        end = token.end_pos if token is not None and token.end_pos else pos + 1
        raise _syntax_error(
            text, pos, f"unexpected {_describe_token(token)}", expected, end=end
        ) from None
    return ConfigText(methods, text)


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
    if len(text) > MAX_LENGTH:
        raise ConfigError(
            [
                Problem(
                    f"config string too long ({len(text)} characters)",
                    Location(span=(MAX_LENGTH, len(text))),
                    expected=f"at most {MAX_LENGTH} characters",
                    code="too_long",
                )
            ],
        )
    depth = 0
    quote: str | None = None
    escaped = False
    for i, c in enumerate(text):
        if quote is not None:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == quote:
                quote = None
            continue
        if c in "'\"":
            quote = c
        elif c in "[{":
            depth += 1
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
        elif c in "]}":
            depth -= 1


def _describe_token(token: Any) -> str:
    if token is None:
        return "input"
    if token.type in ("IDENT", "KEYPART", "WORD"):
        return f"word {str(token)!r}"
    if token.type in ("NUMBER", "STRING"):
        return f"{token.type.lower()} {str(token)}"
    return repr(str(token))


_CLOSERS = {"[": "RSQB", "{": "RBRACE"}


def _innermost_open(text: str, pos: int) -> str | None:
    """The innermost bracket still open at ``pos`` (strings skipped)."""
    stack: list[str] = []
    quote: str | None = None
    escaped = False
    for c in text[:pos]:
        if quote is not None:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == quote:
                quote = None
        elif c in "'\"":
            quote = c
        elif c in "[{":
            stack.append(c)
        elif c in "]}" and stack:
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
    names = sorted({_TERMINALS.get(t, t) for t in expected if not t.startswith("__")})
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
        return _syntax_error(text, pos, "unterminated string", None, end=len(text), suggestion=suggestion)
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
