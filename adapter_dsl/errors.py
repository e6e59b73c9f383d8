"""The one error type of adapter_dsl, and the problems it carries.

Every failure to read, validate or apply a config raises :class:`ConfigError` (a ``ValueError``)
holding one or more :class:`Problem` objects. A problem says *where* (a character span in a config
string, a JSON pointer in a dict, a line and column in a file), *what* was wrong, what was
*expected*, what was *found*, and a *suggestion* where one exists.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from pydantic_core.core_schema import ErrorType

__all__ = [
    "MAX_RENDERED",
    "ConfigError",
    "ConfigWarning",
    "ErrorCode",
    "Location",
    "Problem",
    "did_you_mean",
    "json_pointer",
    "printable",
    "quote",
]

Path = tuple[str | int, ...]

#: Every ``Problem.code`` this package produces: a closed set, as pydantic-core's ``ErrorType``
#: (``tests/test_error_codes.py`` checks that each code used is listed and each listed is used).
#: Problems translated from pydantic's own errors carry its ``ErrorType`` value instead.
ErrorCode = Literal[
    "already_merged",
    "ambiguous_model_type",
    "bad_checkpoint",
    "config_mismatch",
    "conflict",
    "dropped_key",
    "duplicate_adapter",
    "duplicate_family",
    "duplicate_fusion",
    "duplicate_key",
    "duplicate_model_type",
    "duplicate_name",
    "empty_block",
    "empty_union",
    "file_not_found",
    "file_too_large",
    "file_unreadable",
    "frozen",
    "interpolation",
    "invalid",
    "invalid_average",
    "invalid_checkpoint",
    "invalid_child",
    "invalid_fusion",
    "invalid_fusion_file",
    "invalid_interface",
    "invalid_json",
    "invalid_keyword",
    "invalid_limit",
    "invalid_name",
    "invalid_nesting",
    "invalid_reduction_factor",
    "invalid_setup",
    "invalid_setup_file",
    "invalid_type",
    "json_syntax",
    "merged",
    "missing",
    "missing_default",
    "missing_file",
    "missing_key",
    "missing_keyword",
    "missing_module",
    "missing_shared",
    "missing_task_ids",
    "missing_tensor",
    "model_config",
    "model_mismatch",
    "no_fusion",
    "no_match",
    "no_setup",
    "not_expressible",
    "not_found",
    "not_in_reference",
    "not_mergeable",
    "not_merged",
    "num_layers",
    "path_in_data",
    "placed_nowhere",
    "regex",
    "repeated_child",
    "rule",
    "setup_size",
    "shape_mismatch",
    "sweep",
    "sweep_continuous",
    "sweep_in_config",
    "sweep_too_large",
    "syntax",
    "toml_syntax",
    "too_deep",
    "too_large",
    "too_long",
    "type",
    "union_member",
    "union_size",
    "unknown_activation",
    "unknown_adapter",
    "unknown_architecture",
    "unknown_block",
    "unknown_dialect",
    "unknown_field",
    "unknown_format",
    "unknown_fusion",
    "unknown_identifier",
    "unknown_key",
    "unknown_keyword",
    "unknown_member",
    "unknown_module_path",
    "unknown_parameter",
    "unknown_peft_type",
    "unknown_task",
    "unsupported_composition",
    "unsupported_config",
    "unsupported_method",
    "unsupported_model",
    "unsupported_peft_type",
    "unsupported_setting",
    "usage",
    "wrong_class",
    "yaml_syntax",
]

# ``str(err)`` lists this many problems and counts the rest ("… and 3,990 more"); every one is
# still in ``err.problems`` and ``err.to_list()``.
MAX_RENDERED = 20
_QUOTE_LIMIT = 60  # characters of a quoted value shown in a message


def printable(text: str) -> str:
    r"""``text`` safe to print on a terminal: control, format (bidi overrides, zero-width),
    surrogate and other non-printable characters are written as escapes (``\x1b``, ``\u202e``).

    Messages quote user input (keys, values, file names, the config string itself); printed
    raw, an ESC or OSC sequence would drive the terminal and a bidi override would reorder what
    the reader sees.
    """
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _escape_char(c) for c in text)


def _escape_char(c: str) -> str:
    code = ord(c)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def quote(value: Any, limit: int = _QUOTE_LIMIT) -> str:
    """``repr(value)`` for a message, shortened to ``limit`` characters; never raises (an integer
    past Python's digit limit or absurdly nested data is described, not printed)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 4000:
        return f"an integer of about {int(value.bit_length() * 0.30103)} digits"
    try:
        text = repr(value)
    except RecursionError:  # absurdly nested input: say what it is, not all of it
        text = f"a deeply nested {type(value).__name__}"
    except ValueError:  # a huge integer inside a container
        text = f"a {type(value).__name__} holding a number too large to show"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def json_pointer(path: Path) -> str:
    """RFC 6901 pointer for a path of keys and indices (``("configs", 0, "r")`` → ``/configs/0/r``)."""
    if not path:
        return ""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in path)


@dataclass(frozen=True)
class Location:
    """Where a problem is: a span in a text, a path in a structure, a line and column in a file."""

    path: Path = ()
    span: tuple[int, int] | None = None  # [start, end) character offsets in ``source``
    line: int | None = None  # 1-based, for files
    column: int | None = None  # 1-based, for files
    file: str | None = None

    @property
    def pointer(self) -> str:
        return json_pointer(self.path)

    def describe(self) -> str:
        """A short human description: ``file.json:3:7 at /config/r`` or ``column 6``."""
        parts: list[str] = []
        if self.file is not None:
            where = self.file
            if self.line is not None:
                where += f":{self.line}"
                if self.column is not None:
                    where += f":{self.column}"
            parts.append(where)
        elif self.line is not None:
            parts.append(f"line {self.line}, column {self.column}")
        elif self.span is not None:
            parts.append(f"column {self.span[0] + 1}")
        if self.path:
            parts.append(f"at {self.pointer}")
        return printable(" ".join(parts))


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a config, with enough context to fix it."""

    message: str
    location: Location = field(default_factory=Location)
    expected: str | None = None
    found: str | None = None
    suggestion: str | None = None
    code: ErrorCode | ErrorType = "invalid"

    def with_location(self, **changes: Any) -> Problem:
        return replace(self, location=replace(self.location, **changes))

    def prefixed(self, prefix: Path) -> Problem:
        """The same problem, located one level deeper inside ``prefix``."""
        return self.with_location(path=tuple(prefix) + self.location.path)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; the texts meant for people are :func:`printable`, the location is data."""
        loc = self.location
        return {
            "code": self.code,
            "message": printable(self.message),
            "pointer": loc.pointer,
            "path": list(loc.path),
            "span": list(loc.span) if loc.span is not None else None,
            "line": loc.line,
            "column": loc.column,
            "file": loc.file,
            "expected": _printable_or_none(self.expected),
            "found": _printable_or_none(self.found),
            "suggestion": _printable_or_none(self.suggestion),
        }

    def summary(self) -> str:
        """One line: location, message, expected/found and suggestion (:func:`printable`)."""
        return printable(self._summary())

    def _summary(self) -> str:
        text = self.message
        details = []
        if self.expected is not None:
            details.append(f"expected {self.expected}")
        if self.found is not None:
            details.append(f"found {self.found}")
        if details:
            text += f" ({', '.join(details)})"
        if self.suggestion:
            text += f"; {self.suggestion}"
        where = self.location.describe()
        return f"{where}: {text}" if where else text


def _printable_or_none(text: str | None) -> str | None:
    return None if text is None else printable(text)


DEFAULT_HEADING = "invalid adapter config"


class ConfigError(ValueError):
    """Raised for every invalid config; ``problems`` lists everything found, not only the first.

    ``str(err)`` shows the first :data:`MAX_RENDERED` problems, each with its source line and
    carets, in time linear in the source's length; it is rendered on first use, not when the
    error is built (errors are re-located and re-raised on their way out).

    ``heading`` is the first line of the message: "invalid adapter config" for a bad config,
    ``subject`` names another kind of input ("adapter setup" → "invalid adapter setup"), or the
    heading says what failed for a valid config that an operation could not apply ("cannot add
    adapter 'x' to BertModel").
    """

    def __init__(
        self,
        problems: Sequence[Problem],
        source: str | None = None,
        heading: str = DEFAULT_HEADING,
        *,
        subject: str | None = None,
    ) -> None:
        if not problems:
            raise ValueError("ConfigError needs at least one problem")
        self.problems: tuple[Problem, ...] = tuple(problems)
        self.source = source
        self.heading = f"invalid {subject}" if subject is not None else heading
        self._rendered: str | None = None
        super().__init__()

    @property
    def subject(self) -> str | None:
        """What was invalid ("adapter config", "adapter setup"), when the heading says so."""
        return (
            self.heading.removeprefix("invalid ") if self.heading.startswith("invalid ") else None
        )

    @classmethod
    def single(
        cls,
        message: str,
        *,
        expected: str | None = None,
        found: str | None = None,
        suggestion: str | None = None,
        code: ErrorCode = "invalid",
        path: Path = (),
        span: tuple[int, int] | None = None,
        source: str | None = None,
    ) -> ConfigError:
        """Build an error with one problem (a convenience for callers outside the config layer)."""
        problem = Problem(
            message,
            Location(path=path, span=span),
            expected=expected,
            found=found,
            suggestion=suggestion,
            code=code,
        )
        return cls([problem], source=source)

    def with_source(self, source: str | None) -> ConfigError:
        return ConfigError(self.problems, source=source, heading=self.heading)

    def headed(self, heading: str) -> ConfigError:
        """The same problems under another first line (what operation failed)."""
        return ConfigError(self.problems, source=self.source, heading=heading)

    def located(self, **changes: Any) -> ConfigError:
        """The same error with every problem's location updated (e.g. ``file=...``)."""
        return ConfigError(
            [p.with_location(**changes) for p in self.problems],
            source=self.source,
            heading=self.heading,
        )

    def to_list(self) -> list[dict[str, Any]]:
        return [p.to_dict() for p in self.problems]

    def _render(self) -> str:
        n = len(self.problems)
        head = self.heading + (f" ({n:,} problems)" if n > 1 else "")
        lines = [head]
        for problem in self.problems[:MAX_RENDERED]:
            loc = problem.location
            if self.source and loc.span is not None and loc.line is None and "\n" in self.source:
                # A multi-line string: say line and column, not an offset into the whole text.
                start = min(loc.span[0], len(self.source))
                line = self.source.count("\n", 0, start) + 1
                column = start - (self.source.rfind("\n", 0, start) + 1) + 1
                problem = problem.with_location(line=line, column=column)
            lines.append("  - " + problem.summary())
            lines.extend("    " + row for row in _caret_lines(self.source, problem.location))
        if n > MAX_RENDERED:
            lines.append(f"  … and {n - MAX_RENDERED:,} more")
        return "\n".join(lines)

    def __str__(self) -> str:
        if self._rendered is None:
            self._rendered = self._render()
        return self._rendered

    def __reduce__(self) -> tuple[Any, ...]:  # picklable across processes (e.g. DDP, xdist)
        return (ConfigError, (self.problems, self.source, self.heading))


class ConfigWarning(UserWarning):
    """Issued in lenient mode for something that was dropped; ``problem`` says what and where."""

    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        super().__init__(problem.summary())


def _caret_lines(source: str | None, location: Location) -> list[str]:
    """The source line under a problem with a caret run beneath the offending span."""
    if source is None or location.span is None:
        return []
    start, end = location.span
    start = max(0, min(start, len(source)))
    end = max(start + 1, min(end, len(source) + 1))
    line_start = source.rfind("\n", 0, start) + 1
    line_end = source.find("\n", start)
    if line_end == -1:
        line_end = len(source)
    # Long lines: show a window around the start of the span (at most _WINDOW characters of
    # it) so the caret stays readable and each problem costs the same however long the text.
    offset = start - line_start
    width = max(1, min(end, line_end + 1) - start)
    lo, hi = 0, None
    if line_end - line_start > 100:
        width = min(width, _WINDOW)
        lo = max(0, offset - 40)
        hi = min(line_end - line_start, offset + width + 40)
    text = source[line_start + lo : line_end if hi is None else line_start + hi]
    before = printable(text[: offset - lo])
    under = printable(text[offset - lo : offset - lo + width])
    if lo > 0:
        text, before = "…" + text, "…" + before
    if hi is not None and line_start + hi < line_end:
        text += "…"
    # Escapes are wider than the characters they stand for: measure the carets on the escaped
    # text so they stay under the span.
    return [printable(text), " " * len(before) + "^" * max(1, len(under))]


_WINDOW = 60  # characters of a long span that get carets


def did_you_mean(word: str, candidates: Iterable[str], *, n: int = 1) -> str | None:
    """A "did you mean ...?" suggestion for a misspelt name, also for wrong case (``LoRA``)."""
    choices = list(candidates)
    by_lower = {c.lower(): c for c in choices}
    if word.lower() in by_lower and by_lower[word.lower()] != word:
        return f"did you mean '{by_lower[word.lower()]}'?"
    close = difflib.get_close_matches(word.lower(), list(by_lower), n=n, cutoff=0.6)
    if not close:
        return None
    names = " or ".join(f"'{by_lower[c]}'" for c in close)
    return f"did you mean {names}?"
