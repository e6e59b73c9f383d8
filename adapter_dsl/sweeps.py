"""Sweep expressions: hyper-parameter sweeps written in the config language.

``lora[r=choice(4, 8, 16), alpha=range(8, 33, 8)]|seq_bn[reduction_factor=choice(8, 16)]``
uses Hydra's sweep vocabulary as values:

- ``choice(a, b, ...)``: these values (any literals, lists included);
- ``range(start, stop[, step])``: ``start, start + step, ...`` below ``stop`` (ints or floats);
- ``interval(low, high)``: a continuous range; ``log_interval(low, high)`` on a log scale.

:func:`sweep` expands the grid (choices and ranges) into validated configs, reporting every
invalid point at once, each located in the text, before anything runs; intervals have no grid
and are refused there. :func:`suggest` asks an Optuna trial for one value of each swept key
(intervals included) and returns the validated config. No optuna import: a trial is used
through its ``suggest_*`` methods.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, replace
from typing import Any

from .canonical import format_value
from .errors import ConfigError, Location, Problem, did_you_mean
from .methods.base import AdapterConfig
from .semantics import build
from .syntax.ast import Call, ConfigText, Span
from .syntax.parser import parse_sweep_text

__all__ = ["MAX_POINTS", "SWEEP_FUNCTIONS", "Dimension", "dimensions", "suggest", "sweep"]

MAX_POINTS = 10_000  # a grid larger than this is a mistake, not a sweep

# name → (min args, max args, what it takes); the single table of the sweep vocabulary.
SWEEP_FUNCTIONS: dict[str, tuple[int, int, str]] = {
    "choice": (1, 10_000, "one or more values"),
    "range": (1, 3, "range(stop), range(start, stop) or range(start, stop, step) of numbers"),
    "interval": (2, 2, "interval(low, high) of numbers, low < high"),
    "log_interval": (2, 2, "log_interval(low, high) of numbers, 0 < low < high"),
}


@dataclass(frozen=True)
class Dimension:
    """One swept value: where it is (method, argument), its call, and its grid values
    (``None`` for a continuous interval)."""

    name: str  # the trial parameter name: the key, qualified by the method when needed
    method: int
    arg: int
    call: Call
    values: tuple[Any, ...] | None

    @property
    def span(self) -> Span:
        return self.call.span


def _problem(message: str, span: Span, **kw: Any) -> Problem:
    return Problem(message, Location(span=span), code=kw.pop("code", "sweep"), **kw)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _values(call: Call) -> tuple[tuple[Any, ...] | None, list[Problem]]:
    """The grid values of a call (None for intervals), or the problems with its arguments."""
    spec = SWEEP_FUNCTIONS.get(call.name)
    if spec is None:
        return None, [
            _problem(
                f"unknown sweep function '{call.name}'",
                call.name_span,
                expected="one of " + ", ".join(SWEEP_FUNCTIONS),
                found=repr(call.name),
                suggestion=did_you_mean(call.name, SWEEP_FUNCTIONS),
            )
        ]
    low, high, takes = spec
    args = call.args
    nested = [s for a, s in zip(args, call.arg_spans, strict=True) if _has_call(a)]
    if nested:
        return None, [_problem("a sweep cannot be nested in a sweep", nested[0], expected=takes)]
    if not low <= len(args) <= high:
        return None, [
            _problem(
                f"{call.name}() takes {takes}",
                call.span,
                expected=takes,
                found=f"{len(args)} argument{'s' if len(args) != 1 else ''}",
            )
        ]
    if call.name == "choice":
        return tuple(args), []
    bad = [(a, s) for a, s in zip(args, call.arg_spans, strict=True) if not _is_number(a)]
    if bad:
        return None, [
            _problem(
                f"{call.name}() takes numbers", bad[0][1], expected=takes, found=repr(bad[0][0])
            )
        ]
    if call.name == "range":
        start, stop, step = (0, args[0], 1) if len(args) == 1 else (*args[:2], 1)
        if len(args) == 3:
            step = args[2]
        if step == 0:
            return None, [_problem("range() step cannot be 0", call.arg_spans[-1], expected=takes)]
        count = max(0, math.ceil((stop - start) / step))
        if count > MAX_POINTS:
            return None, [
                _problem(
                    f"range() has {count} values",
                    call.span,
                    expected=f"at most {MAX_POINTS}",
                    code="sweep_too_large",
                )
            ]
        values = tuple(_clean(start + i * step) for i in range(count))
        if not values:
            return None, [_problem("range() is empty", call.span, expected="start < stop")]
        return values, []
    lo, hi = args
    if not lo < hi or (call.name == "log_interval" and lo <= 0):
        return None, [
            _problem(
                f"{call.name}() needs {'0 < ' if call.name == 'log_interval' else ''}low < high",
                call.span,
                expected=takes,
                found=f"low={lo!r}, high={hi!r}",
            )
        ]
    return None, []


def _clean(value: int | float) -> int | float:
    # 3 * 0.1 is 0.30000000000000004: float steps are rounded to 12 significant digits.
    return float(f"{value:.12g}") if isinstance(value, float) else value


def _has_call(value: Any) -> bool:
    if isinstance(value, Call):
        return True
    if isinstance(value, list):
        return any(_has_call(v) for v in value)
    if isinstance(value, dict):
        return any(_has_call(v) for v in value.values())
    return False


def dimensions(text: str) -> tuple[ConfigText, list[Dimension]]:
    """Parse a sweep expression: its tree and its swept values, or one ConfigError with every
    problem of its calls (unknown function, wrong arguments, a call inside a list)."""
    tree = parse_sweep_text(text)
    found: list[Dimension] = []
    problems: list[Problem] = []
    keys = [(m.name, a.key) for m in tree.methods for a in m.args if isinstance(a.value, Call)]
    for i, method in enumerate(tree.methods):
        for j, arg in enumerate(method.args):
            if isinstance(arg.value, Call):
                values, bad = _values(arg.value)
                problems.extend(bad)
                name = arg.key
                if sum(1 for _, k in keys if k == arg.key) > 1:
                    name = f"{method.name}.{arg.key}"
                    if sum(1 for m, k in keys if (m, k) == (method.name, arg.key)) > 1:
                        name = f"{i}.{name}"
                found.append(Dimension(name, i, j, arg.value, values))
            elif _has_call(arg.value):
                problems.append(
                    _problem(
                        "a sweep must be the whole value of a key",
                        arg.value_span,
                        expected=f"{arg.key}=choice(...) over whole values, e.g. "
                        "attn_matrices=choice(['q', 'v'], ['q', 'k', 'v'])",
                    )
                )
    if problems:
        raise ConfigError(problems, source=text)
    return tree, found


def _point(tree: ConfigText, dims: list[Dimension], values: tuple[Any, ...]) -> ConfigText:
    methods = list(tree.methods)
    for dim, value in zip(dims, values, strict=True):
        method = methods[dim.method]
        args = list(method.args)
        args[dim.arg] = args[dim.arg]._replace(value=value)
        methods[dim.method] = method._replace(args=tuple(args))
    return tree._replace(methods=tuple(methods))


def _label(dims: list[Dimension], values: tuple[Any, ...]) -> str:
    return ", ".join(f"{d.name}={format_value(v)}" for d, v in zip(dims, values, strict=True))


def sweep(text: str) -> list[AdapterConfig]:
    """Every config of the grid of a sweep expression, in order (the last key varies fastest).

    Raises one ConfigError before returning anything: every invalid grid point's problems,
    each located in ``text`` and prefixed with the point (``for r=1, alpha=8: ...``).
    """
    tree, dims = dimensions(text)
    continuous = [d for d in dims if d.values is None]
    if continuous:
        raise ConfigError(
            [
                _problem(
                    f"{d.call.name}() is continuous: a grid cannot list its values",
                    d.span,
                    expected="choice(...) or range(...) in a grid",
                    found=f"{d.name}={d.call.name}(...)",
                    suggestion="sample it with adapter_dsl.suggest(trial, text) (Optuna)",
                    code="sweep_continuous",
                )
                for d in continuous
            ],
            source=text,
        )
    grids = [d.values or () for d in dims]
    size = math.prod(len(g) for g in grids)
    if size > MAX_POINTS:
        raise ConfigError(
            [
                _problem(
                    f"the grid has {size} points",
                    (0, len(text)),
                    expected=f"at most {MAX_POINTS}",
                    code="sweep_too_large",
                )
            ],
            source=text,
        )
    configs: list[AdapterConfig] = []
    problems: list[Problem] = []
    for values in itertools.product(*grids):
        try:
            configs.append(build(_point(tree, dims, values)))
        except ConfigError as exc:
            label = _label(dims, values)
            problems.extend(replace(p, message=f"for {label}: {p.message}") for p in exc.problems)
    if problems:
        raise ConfigError(problems, source=text)
    return configs


def suggest(trial: Any, text: str) -> AdapterConfig:
    """The config of ``text`` with each swept value asked of an Optuna ``trial``.

    ``choice`` → ``suggest_categorical`` (values that are not plain scalars are offered by their
    literal text), ``range`` → ``suggest_int`` (or a categorical of its float values),
    ``interval`` / ``log_interval`` → ``suggest_int`` for int bounds, else ``suggest_float``
    (``log=True`` for ``log_interval``). An invalid point raises ConfigError, located.
    """
    tree, dims = dimensions(text)
    values = tuple(_ask(trial, d) for d in dims)
    try:
        return build(_point(tree, dims, values))
    except ConfigError as exc:
        label = _label(dims, values)
        raise ConfigError(
            [replace(p, message=f"for {label}: {p.message}") for p in exc.problems], source=text
        ) from None


def _ask(trial: Any, dim: Dimension) -> Any:
    call, name = dim.call, dim.name
    if call.name in ("interval", "log_interval"):
        lo, hi = call.args
        log = call.name == "log_interval"
        if isinstance(lo, int) and isinstance(hi, int):
            return trial.suggest_int(name, lo, hi, log=log)
        return trial.suggest_float(name, float(lo), float(hi), log=log)
    values = dim.values or ()
    if call.name == "range" and all(isinstance(v, int) for v in values):
        step = values[1] - values[0] if len(values) > 1 else 1
        if step > 0:
            return trial.suggest_int(name, values[0], values[-1], step=step)
    scalar = all(v is None or isinstance(v, bool | int | float | str) for v in values)
    if scalar:
        return trial.suggest_categorical(name, list(values))
    by_text = {format_value(v): v for v in values}
    return by_text[trial.suggest_categorical(name, list(by_text))]
