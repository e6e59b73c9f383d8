"""Syntax tree → validated config: identifiers, keys, union presets and located problems.

Every problem found is reported at once, each with the span of the text it is about.
"""

from __future__ import annotations

from .errors import ConfigError, Location, Problem
from .methods.base import AdapterConfig
from .methods.union import ConfigUnion, apply_changes
from .registry import get_preset, preset_config
from .syntax.ast import Arg, ConfigText, Method, Span

__all__ = ["build"]


def build(tree: ConfigText) -> AdapterConfig:
    """The config a parsed string denotes; a ConfigError locates every problem in the text."""
    problems: list[Problem] = []
    members: list[AdapterConfig] = []
    for method in tree.methods:
        try:
            members.append(_build_method(method))
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems, source=tree.source)
    if len(members) == 1:
        return members[0]
    try:
        return ConfigUnion(*members)
    except ConfigError as exc:
        # A rule about one member (path /configs/<i>) points at the method written for it;
        # other union rules are about the whole string: point at all of it.
        whole = (tree.methods[0].span[0], tree.methods[-1].span[1])
        written = [
            m
            for method, built in zip(tree.methods, members, strict=True)
            for m in [method] * len(built.members())
        ]

        def span_of(problem: Problem) -> Span:
            path = problem.location.path
            if len(path) >= 2 and path[0] == "configs" and isinstance(path[1], int):
                return written[path[1]].span if path[1] < len(written) else whole
            return whole

        raise ConfigError(
            [p.with_location(span=span_of(p), path=()) for p in exc.problems], source=tree.source
        ) from None


def _build_method(method: Method) -> AdapterConfig:
    try:
        preset = get_preset(method.name)
    except ConfigError as exc:
        raise ConfigError([p.with_location(span=method.name_span) for p in exc.problems]) from None
    args, problems = _unique_args(method.args)
    values = {a.key: a.value for a in args}
    spans = {a.key: a for a in args}
    try:
        if issubclass(preset.cls, ConfigUnion):
            base = preset_config(method.name)
            assert isinstance(base, ConfigUnion)
            paths: dict[str, tuple[str | int, ...]] = {k: (k,) for k in values}
            members = apply_changes(base.configs, base.member_names, values, key_paths=paths)
            config: AdapterConfig = preset.cls(configs=members)
        else:
            qualified = [a for a in args if "." in a.key]
            for a in qualified:
                problems.append(
                    Problem(
                        f"'{a.key}' addresses a union member, but {method.name} is a single method",
                        Location(span=a.key_span),
                        expected="a plain key",
                        found=repr(a.key),
                        suggestion=f"write {a.key.rpartition('.')[2]}=...",
                        code="unknown_key",
                    )
                )
            plain = {k: v for k, v in values.items() if "." not in k}
            config = preset.cls(**{**preset.values, **plain})
    except ConfigError as exc:
        problems.extend(_locate(p, method, spans) for p in exc.problems)
        raise ConfigError(problems) from None
    if problems:
        raise ConfigError(problems)
    return config


def _unique_args(args: tuple[Arg, ...]) -> tuple[list[Arg], list[Problem]]:
    """Arguments with duplicates removed; each duplicate is a problem at its second use."""
    seen: dict[str, Arg] = {}
    problems: list[Problem] = []
    for a in args:
        if a.key in seen:
            problems.append(
                Problem(
                    f"key '{a.key}' is set twice",
                    Location(span=a.key_span),
                    expected="each key at most once",
                    found=f"{a.key}={a.value!r} after {a.key}={seen[a.key].value!r}",
                    suggestion="remove one of them",
                    code="duplicate_key",
                )
            )
            continue
        seen[a.key] = a
    return list(seen.values()), problems


def _locate(problem: Problem, method: Method, args: dict[str, Arg]) -> Problem:
    """Give a model-level problem the span of the argument it is about."""
    path = problem.location.path
    key = str(path[0]) if path else None
    arg = args.get(key) if key is not None else None
    span: Span
    if arg is None:
        span = method.span  # a default value broke a rule: point at the whole method
    elif problem.code in ("unknown_key", "unknown_member", "duplicate_key"):
        span = arg.key_span
    else:
        span = arg.value_span
    return problem.with_location(span=span, path=path)
