"""Setups from every input the reference accepts (their canonical string: ``dumps_setup``).

``load_setup`` takes a block, a setup string (``"Stack(a, Fuse(b, c))"``), a bare adapter name
(``Stack(name)``, as the reference's ``parse_composition`` makes it), a list (the reference's
deprecated form: a list is a Stack, a list inside it a Fuse) or the reference's JSON form (also
inside an ``adapter_setup.json`` envelope). Every problem is reported at once, located by span in
a string and by JSON pointer in a dict.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from functools import lru_cache, wraps
from pathlib import Path as FilePath
from typing import Any

from ..errors import ConfigError, Location, Path, Problem, did_you_mean
from ..jsonpos import line_col, locate_problems
from ..syntax.ast import Span
from ..syntax.setup import Call, Keyword, Name, parse_setup_text
from .blocks import (
    BLOCKS,
    MAX_NESTING,
    SUBJECT,
    AdapterCompositionBlock,
    Fuse,
    Stack,
    block_from_dict,
    dumps_setup,
    is_single,
    structure_problems,
    too_deep_input,
    with_structure,
)

__all__ = [
    "SETUP_FILE",
    "dumps_setup",
    "is_single",
    "load_setup",
    "load_setup_file",
    "parse_setup",
]

SETUP_FILE = "adapter_setup.json"  # what the reference's save_adapter_setup writes


def _setup_errors(
    fn: Callable[[Any], AdapterCompositionBlock],
) -> Callable[[Any], AdapterCompositionBlock]:
    """Errors of a setup say so on their first line ("invalid adapter setup")."""

    @wraps(fn)
    def wrapper(spec: Any) -> AdapterCompositionBlock:
        try:
            return fn(spec)
        except ConfigError as exc:
            if exc.subject == SUBJECT:
                raise
            raise ConfigError(exc.problems, exc.source, subject=SUBJECT) from None

    return wrapper


@_setup_errors
def parse_setup(text: str) -> AdapterCompositionBlock:
    """Parse and validate a setup string; a bare adapter name is ``Stack(name)``."""
    if not isinstance(text, str):
        raise ConfigError.single(
            "parse_setup() takes a setup string", expected="str", found=type(text).__name__
        )
    return _parse_cached(text)


@lru_cache(maxsize=256)
def _parse_cached(text: str) -> AdapterCompositionBlock:  # blocks are immutable: safe to share
    tree = parse_setup_text(text)
    spans: dict[Path, Span] = {}
    key_spans: dict[Path, Span] = {}
    problems: list[Problem] = []
    if isinstance(tree, Name):  # a bare name: that adapter alone
        return Stack(tree.name)
    block = _from_call(tree, (), spans, key_spans, problems)
    # An unknown block stands in as a Stack: its own nesting is not judged.
    unknown = [p.location.path for p in problems if p.code == "unknown_block"]
    problems += [
        p for p in structure_problems(block) if not any(_about(p.location.path, u) for u in unknown)
    ]
    if problems:
        raise ConfigError([_locate(p, spans, key_spans) for p in problems], source=text)
    return block


def _about(path: Path, block: Path) -> bool:
    """Whether a problem at ``path`` is about the block at ``block`` or its direct children."""
    return path == block or (
        path[: len(block) + 1] == (*block, "children") and len(path) <= len(block) + 2
    )


def _from_call(
    call: Call,
    path: Path,
    spans: dict[Path, Span],
    key_spans: dict[Path, Span],
    problems: list[Problem],
) -> AdapterCompositionBlock:
    spans[path] = call.span
    spans[(*path, "type")] = call.name_span
    cls = BLOCKS.get(call.name)
    if cls is None:
        cls = Stack
        problems.append(
            Problem(
                f"unknown composition block {call.name!r}",
                Location(path=path, span=call.name_span),
                expected="one of " + ", ".join(BLOCKS),
                found=repr(call.name),
                suggestion=did_you_mean(call.name, BLOCKS),
                code="unknown_block",
            )
        )
    children: list[Any] = []
    kwargs: dict[str, Any] = {}
    keyword_seen = False
    for item in call.items:
        if isinstance(item, Keyword):
            keyword_seen = True
            at = (*path, "kwargs", item.key)
            if item.key in kwargs:
                problems.append(
                    Problem(
                        f"argument {item.key!r} is given twice",
                        Location(span=item.key_span),
                        found=f"a second {item.key}=",
                        code="duplicate_key",
                    )
                )
                continue
            kwargs[item.key] = item.value
            spans[at] = item.value_span
            key_spans[at] = item.key_span
            for i, span in enumerate(item.element_spans):
                spans[(*at, i)] = span
            continue
        at = (*path, "children", len(children))
        if keyword_seen:
            problems.append(
                Problem(
                    "an adapter follows a keyword argument",
                    Location(span=item.span),
                    expected="adapters first, then keyword arguments",
                    found=repr(item.name) if isinstance(item, Name) else item.name,
                    suggestion="move the keyword arguments to the end",
                    code="syntax",
                )
            )
        if isinstance(item, Name):
            spans[at] = item.span
            children.append(item.name)
        else:
            children.append(_from_call(item, at, spans, key_spans, problems))
    block, own = cls.assemble(children, kwargs)
    problems += [p.prefixed(path) for p in own]
    return block


def _locate(problem: Problem, spans: dict[Path, Span], key_spans: dict[Path, Span]) -> Problem:
    """A problem located by path in the block tree, located by span in the text instead."""
    loc = problem.location
    if loc.span is not None:
        return problem.with_location(path=())
    path = loc.path
    if problem.code == "unknown_keyword" and path in key_spans:
        return problem.with_location(path=(), span=key_spans[path])
    if problem.code == "missing_keyword":
        path = path[:-2]  # at the block that lacks it
    while path not in spans and path:
        path = path[:-1]
    return problem.with_location(path=(), span=spans.get(path))


@_setup_errors
def load_setup(spec: Any) -> AdapterCompositionBlock:
    """A validated setup from a block, a setup string or name, a list or the reference's JSON form."""
    if isinstance(spec, AdapterCompositionBlock):
        return spec  # validated when built
    if isinstance(spec, str):
        return parse_setup(spec)
    if isinstance(spec, os.PathLike):
        return load_setup_file(spec)
    if isinstance(spec, Mapping):
        data: Any = spec
        prefix: Path = ()
        if "adapter_setup" in spec:  # an adapter_setup.json file's content
            data, prefix = spec["adapter_setup"], ("adapter_setup",)
            if isinstance(data, str):
                return parse_setup(data)
        block, problems = block_from_dict(data, ())
        problems = with_structure(problems, block)
        if problems:
            raise ConfigError([p.prefixed(prefix) for p in problems])
        return block
    if isinstance(spec, list | tuple):
        problems = []
        top = _from_list(spec, 0, (), problems)
        assert isinstance(top, AdapterCompositionBlock)  # a list is never a name
        problems = with_structure(problems, top)
        if problems:
            raise ConfigError(problems)
        return top
    raise ConfigError.single(
        "cannot read an adapter setup from this value",
        expected="a setup string, an adapter name, a block, a list or a dict",
        found=type(spec).__name__,
        code="invalid_type",
    )


@_setup_errors
def load_setup_file(path: str | os.PathLike[str]) -> AdapterCompositionBlock:
    """The setup of an ``adapter_setup.json`` file (or of the directory holding one); problems
    carry the file, line and column."""
    p = FilePath(path)
    if p.is_dir():
        p = p / SETUP_FILE
    name = str(p)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError.single(f"no such setup file: {name}", code="file_not_found") from None
    except (OSError, ValueError) as exc:
        raise ConfigError.single(f"cannot read {name}: {exc}", code="file_unreadable") from None
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        pos = getattr(exc, "pos", 0)
        line, column = line_col(text, pos)
        problem = Problem(
            f"invalid JSON: {getattr(exc, 'msg', 'nested too deeply')}",
            Location(span=(pos, pos + 1), line=line, column=column, file=name),
            code="json_syntax",
        )
        raise ConfigError([problem], source=text) from None
    if not isinstance(data, Mapping):
        raise ConfigError.single(
            f"{name} does not hold an adapter setup",
            expected='an object such as {"adapter_setup": {"type": "Stack", ...}}',
            found=f"a JSON {type(data).__name__}",
            code="invalid_type",
        )
    try:
        return load_setup(data)
    except ConfigError as exc:
        raise ConfigError(locate_problems(exc.problems, text, name), source=text) from None


def _from_list(
    spec: Any, level: int, path: Path, problems: list[Problem]
) -> str | AdapterCompositionBlock:
    # The reference's rule: a list is a Stack, except at the second level, where it is a Fuse.
    if isinstance(spec, str | AdapterCompositionBlock):
        return spec
    if level > MAX_NESTING:
        problems.append(too_deep_input(path))
        return "<adapter>"
    if not isinstance(spec, list | tuple):
        problems.append(
            Problem(
                "an adapter setup list holds adapter names, blocks and lists",
                Location(path=path),
                expected="a name, a block or a list",
                found=type(spec).__name__,
                code="invalid_child",
            )
        )
        return "<adapter>"
    cls = Fuse if level == 1 else Stack
    children = [
        _from_list(c, level + 1, (*path, "children", i), problems) for i, c in enumerate(spec)
    ]
    block, own = cls.assemble(children, {})
    problems += [p.prefixed(path) for p in own]
    return block
