"""Test helpers for untrusted input: a hang guard and a regex-shape check.

The hang guard is a generous wall-clock limit on cases that take milliseconds when the code is
linear and would never finish otherwise; it is not a timing assertion.
"""

from __future__ import annotations

import re
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from re import _constants as C  # type: ignore[attr-defined]
from re import _parser as sre  # type: ignore[attr-defined]
from typing import Any

HANG_LIMIT_S = 10.0


class Hang(AssertionError):
    pass


@contextmanager
def hang_guard(seconds: float = HANG_LIMIT_S) -> Iterator[None]:
    """Fail (instead of hanging the suite) if the body runs longer than ``seconds``."""

    def fire(signum: int, frame: Any) -> None:
        raise Hang(f"did not finish within {seconds} s: not linear")

    previous = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


_BACKTRACKING = (C.MAX_REPEAT, C.MIN_REPEAT)


def _children(op: Any, av: Any) -> list[Any]:
    """The sub-patterns of one parsed node."""
    if op in _BACKTRACKING or op == C.POSSESSIVE_REPEAT:
        return [av[2]]
    if op == C.SUBPATTERN:
        return [av[3]]
    if op == C.BRANCH:
        return list(av[1])
    if op in (C.ASSERT, C.ASSERT_NOT):
        return [av[1]]
    if op == C.ATOMIC_GROUP:
        return [av]
    if op == C.GROUPREF_EXISTS:
        return [p for p in av[1:] if p is not None]
    return []


def _has_backtracking_star(items: Any) -> bool:
    """Whether an unbounded, backtracking repetition occurs inside ``items`` (atomic groups and
    possessive repetitions never give characters back, so they do not count)."""
    for op, av in items:
        if op in _BACKTRACKING and av[1] == C.MAXREPEAT:
            return True
        if op in (C.ATOMIC_GROUP, C.POSSESSIVE_REPEAT):
            continue
        if any(_has_backtracking_star(child) for child in _children(op, av)):
            return True
    return False


def nested_quantifiers(pattern: str) -> list[str]:
    """The unbounded, backtracking repetitions of ``pattern`` whose body holds another one: the
    shape (``(?:a+)*``, ``(a|b+)+``) that backtracks exponentially when what follows fails."""
    found: list[str] = []

    def walk(items: Any) -> None:
        for op, av in items:
            if op in _BACKTRACKING and av[1] == C.MAXREPEAT and _has_backtracking_star(av[2]):
                found.append(f"{op} over {av[2]}")
            for child in _children(op, av):
                walk(child)

    walk(sre.parse(pattern))
    return found


def compiled_patterns(module: Any) -> list[re.Pattern[str]]:
    """Every compiled regular expression a module holds at its top level."""
    return [v for v in vars(module).values() if isinstance(v, re.Pattern)]
