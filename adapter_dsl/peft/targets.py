"""PEFT's target-module matching, over user-supplied patterns that are data.

PEFT matches module names with Python's ``re``; a pattern such as ``(.*)*x`` makes that
backtracking engine take exponential time. Here every user-supplied regular expression
(``target_modules``, ``exclude_modules``, ``layers_pattern``) runs on RE2, whose matching time is
linear in the name, and is bounded in length. RE2 accepts PEFT's patterns with the same meaning
except lookarounds and backreferences, which no linear-time engine has: such a pattern is a
``ConfigError`` (a deliberate difference from PEFT, stated in README.md). Patterns written by
:func:`adapter_dsl.to_peft` use neither (:func:`index_except` spells "any layer index but these"
without a lookahead).

:class:`Targeting` validates the matching keys of a PEFT dict once, with located problems, and
then answers PEFT's ``check_target_module_exists`` for one module name.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError, Location, Problem

__all__ = ["MAX_PATTERN_LENGTH", "Targeting", "index_except", "shown"]

#: Longest regular expression accepted (PEFT patterns are a few hundred characters at most).
MAX_PATTERN_LENGTH = 10_000
#: Longest list of module names accepted in target_modules / exclude_modules.
MAX_NAMES = 10_000


def shown(value: Any, limit: int = 80) -> str:
    """``repr(value)`` for a message, cut at ``limit``; safe for huge ints and deep nesting."""
    try:
        text = repr(value)
    except (ValueError, RecursionError):  # ints past the digit limit, absurd nesting
        text = f"a {type(value).__name__} too large to show"
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _Pattern:
    """A compiled RE2 pattern with ``re``'s ``fullmatch``/``match`` (as PEFT calls them)."""

    def __init__(self, compiled: Any) -> None:
        self._compiled = compiled

    def fullmatch(self, name: str) -> bool:
        return self._compiled.fullmatch(name) is not None

    def index(self, name: str) -> int | None:
        match = self._compiled.match(name)
        return None if match is None else int(match.group("idx"))


def _problem(key: str, message: str, value: Any, **kw: Any) -> Problem:
    return Problem(
        message, Location(path=(key,)), found=shown(value), code=kw.pop("code", "type"), **kw
    )


def compile_pattern(pattern: str, key: str, wrap: str = "{}") -> _Pattern:
    """``pattern`` (inserted into ``wrap``) compiled with RE2, or a ConfigError at ``key``."""
    import re2

    if len(pattern) > MAX_PATTERN_LENGTH:
        raise ConfigError(
            [
                _problem(
                    key,
                    f"{key} is too long to be a module pattern",
                    f"{len(pattern)} characters",
                    expected=f"at most {MAX_PATTERN_LENGTH:,} characters",
                    code="too_long",
                )
            ]
        )
    options = re2.Options()
    options.log_errors = False
    try:
        return _Pattern(re2.compile(wrap.format(pattern), options))
    except re2.error as exc:
        reason = exc.args[0] if exc.args else ""
        reason = reason.decode("utf-8", "replace") if isinstance(reason, bytes) else str(reason)
        reason = reason.split(":", 1)[0]  # RE2 appends the whole pattern; it is shown as found
        unsupported = "perl operator" in reason or "escape sequence" in reason
        raise ConfigError(
            [
                _problem(
                    key,
                    f"{key} is not a regular expression that can be matched in linear time "
                    f"({reason})"
                    if unsupported
                    else f"{key} is not a valid regular expression ({reason})",
                    pattern,
                    expected="a regular expression without lookarounds or backreferences"
                    if unsupported
                    else "a regular expression",
                    suggestion="list the module names instead" if unsupported else None,
                    code="regex",
                )
            ]
        ) from None


def _names(value: Any) -> tuple[str, ...] | None:
    """A list of module names (PEFT also takes a set), or None when ``value`` is not one."""
    if not isinstance(value, list | tuple | set | frozenset):
        return None
    if len(value) > MAX_NAMES or not all(isinstance(v, str) for v in value):
        return None
    return tuple(value)


def _layer_indexes(data: Any) -> int | frozenset[int] | None:
    value = data.get("layers_to_transform")
    if value is None or (isinstance(value, list) and not value):
        return None  # PEFT: not using layer indexes
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if (
        isinstance(value, list)
        and len(value) <= MAX_NAMES
        and all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in value)
    ):
        return frozenset(value)
    raise ConfigError(
        [
            _problem(
                "layers_to_transform",
                "layers_to_transform must be a layer index or a list of them",
                value,
                expected="an integer ≥ 0, a list of them, or null",
            )
        ]
    )


@dataclass
class Targeting:
    """The validated matching keys of a PEFT dict: which module names PEFT would adapt."""

    target: _Pattern | frozenset[str]
    exclude: _Pattern | frozenset[str] = frozenset()
    layer_indexes: int | frozenset[int] | None = None
    layer_patterns: tuple[_Pattern, ...] = ()
    _seen: dict[str, bool] = field(default_factory=dict, repr=False)

    @classmethod
    def of(cls, data: Any, target: str | list[str]) -> Targeting:
        """From a PEFT dict whose ``target_modules`` has been read as ``target``."""
        problems: list[Problem] = []
        compiled: _Pattern | frozenset[str] = frozenset()
        if isinstance(target, str):
            try:
                compiled = compile_pattern(target, "target_modules")
            except ConfigError as exc:
                problems.extend(exc.problems)
        elif len(target) > MAX_NAMES:
            problems.append(
                _problem(
                    "target_modules",
                    "target_modules lists too many module names",
                    f"{len(target)} names",
                    expected=f"at most {MAX_NAMES:,}",
                    code="too_long",
                )
            )
        else:
            compiled = frozenset(target)
        exclude: _Pattern | frozenset[str] = frozenset()
        raw = data.get("exclude_modules")
        if isinstance(raw, str) and raw:
            try:
                exclude = compile_pattern(raw, "exclude_modules")
            except ConfigError as exc:
                problems.extend(exc.problems)
        elif raw:
            names = _names(raw)
            if names is None:
                problems.append(
                    _problem(
                        "exclude_modules",
                        "exclude_modules must be a regular expression or a list of module names",
                        raw,
                        expected="a string, a list of strings, or null",
                    )
                )
            else:
                exclude = frozenset(names)
        indexes: int | frozenset[int] | None = None
        try:
            indexes = _layer_indexes(data)
        except ConfigError as exc:
            problems.extend(exc.problems)
        patterns: list[_Pattern] = []
        raw = data.get("layers_pattern")
        raw_list = [raw] if isinstance(raw, str) else raw
        if raw_list:
            names = _names(raw_list)
            if names is None:
                problems.append(
                    _problem(
                        "layers_pattern",
                        "layers_pattern must be a regular expression or a list of them",
                        raw,
                        expected="a string, a list of strings, or null",
                    )
                )
            else:
                for p in names:
                    try:
                        # PEFT: re.match(rf"(?:^|.*?\.){pattern}\.(?P<idx>\d+)\.", key)
                        patterns.append(
                            compile_pattern(p, "layers_pattern", r"(?:^|.*?\.){}\.(?P<idx>\d+)\.")
                        )
                    except ConfigError as exc:
                        problems.extend(exc.problems)
        if problems:
            raise ConfigError(problems)
        return cls(compiled, exclude, indexes, tuple(patterns))

    def matches(self, name: str) -> bool:
        """PEFT's ``check_target_module_exists`` for one module name (memoised)."""
        seen = self._seen.get(name)
        if seen is None:
            seen = self._seen[name] = self._matches(name)
        return seen

    def _matches(self, name: str) -> bool:
        if isinstance(self.exclude, _Pattern):
            if self.exclude.fullmatch(name):
                return False
        elif _listed(self.exclude, name):
            return False
        if isinstance(self.target, _Pattern):
            return self.target.fullmatch(name)
        if not _listed(self.target, name):
            return False
        if self.layer_indexes is None:
            return True
        index = _layer_index(name, self.layer_patterns)
        if index is None:
            return False
        if isinstance(self.layer_indexes, int):
            return index == self.layer_indexes
        return index in self.layer_indexes


def _listed(names: frozenset[str], name: str) -> bool:
    """PEFT's ``name in names or any(name.endswith(f".{n}") for n in names)``; for long lists
    through the name's dotted suffixes, in time independent of ``len(names)``."""
    if name in names:
        return True
    if len(names) <= 16:
        return any(name.endswith(f".{n}") for n in names)
    return any(name[i + 1 :] in names for i, ch in enumerate(name) if ch == ".")


def _layer_index(name: str, patterns: tuple[_Pattern, ...]) -> int | None:
    if not patterns:
        # PEFT: re.match(r".*?\.[^.]*\.(?P<idx>\d+)\.", key), the first numbered segment.
        parts = name.split(".")
        for i in range(2, len(parts) - 1):
            if parts[i].isdecimal():  # what re's \d matches
                return int(parts[i])
        return None
    for pattern in patterns:
        index = pattern.index(name)
        if index is not None:
            return index
    return None


def index_except(excluded: Iterable[int]) -> str:
    """A regex for a decimal layer index (``\\d+``) other than the ``excluded`` ones.

    Built from the digits' trie instead of a negative lookahead, so that RE2 (and any engine)
    accepts it: for {1, 3} it is ``(?:[02456789]\\d*|1\\d+|3\\d+)``.
    """
    words = {str(i) for i in excluded}
    if not words:
        return r"\d+"
    return _not_in(words, "", nonempty=True)


def _not_in(words: set[str], prefix: str, *, nonempty: bool) -> str:
    # Digit strings that extend `prefix` and are not in `words`.
    ends_here = not nonempty and prefix not in words
    longer = (w for w in words if len(w) > len(prefix) and w.startswith(prefix))
    children = sorted({w[len(prefix)] for w in longer})
    if not children:
        return r"\d*" if ends_here else r"\d+"
    others = "".join(d for d in "0123456789" if d not in children)
    branches = [(f"[{others}]" if len(others) > 1 else others) + r"\d*"] if others else []
    branches += [d + _not_in(words, prefix + d, nonempty=False) for d in children]
    body = "(?:" + "|".join(branches) + ")"
    return body + "?" if ends_here else body
