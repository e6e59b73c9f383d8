"""Cross-field rules, declared once: ``load()`` checks them and the JSON Schema states them.

A :class:`Rule` is a condition on a config's field values (``Is``, ``~``, ``&``, ``|``) with the
message of its violation. The config's model validator evaluates the condition on the validated
object; the schema generator compiles the same condition into a JSON Schema fragment, given the
family's defaults (an absent key means its default). Neither side is written by hand, so the two
cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..fieldtypes import RuleViolation

__all__ = ["REQUIRED", "Cond", "Has", "Is", "Rule", "violations"]

Json = dict[str, Any]


class _Required:
    """The default of a field that has none."""

    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()


def _json(value: Any) -> Any:
    """A field value as JSON sees it (tuples are arrays, read-only mappings objects)."""
    if isinstance(value, tuple | list):
        return [_json(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _json(v) for k, v in value.items()}
    return value


def same(a: Any, b: Any) -> bool:
    """JSON Schema's equality (``const``): 1 == 1.0, but true is not 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return bool(a == b) and isinstance(a, int | float) == isinstance(b, int | float)


class Cond:
    """A condition on field values: evaluated on a config, or compiled to a schema fragment."""

    def holds(self, config: Any) -> bool:
        raise NotImplementedError

    def source(self) -> str:
        """The condition as a Python expression on ``c`` (compiled once per rule, since rules
        run on every construction)."""
        raise NotImplementedError

    def schema(self, defaults: Mapping[str, Any]) -> Json:
        """A fragment that a dict satisfies iff the condition holds for the config it loads as
        (``defaults`` fill in absent keys; :data:`REQUIRED` marks fields without one)."""
        raise NotImplementedError

    def __invert__(self) -> Cond:
        return _Not(self)

    def __and__(self, other: Cond) -> Cond:
        return _All((*(self.conds if isinstance(self, _All) else (self,)), other))

    def __or__(self, other: Cond) -> Cond:
        return _Any((*(self.conds if isinstance(self, _Any) else (self,)), other))


@dataclass(frozen=True)
class Is(Cond):
    """The field has this JSON value (given, or by default)."""

    field: str
    value: Any

    def holds(self, config: Any) -> bool:
        # Runs on every construction: scalars are compared directly (validated bools and None
        # are singletons), only lists and mappings take the general path.
        value, want = getattr(config, self.field), self.value
        if want is None or want is True or want is False:
            return value is want
        if isinstance(want, str):
            return bool(value == want)
        if isinstance(want, int | float):
            return isinstance(value, int | float) and not isinstance(value, bool) and value == want
        return same(_json(value), want)

    def source(self) -> str:
        if not self.field.isidentifier():  # pragma: no cover - field names are identifiers
            raise ValueError(f"not a field name: {self.field!r}")
        value, want = f"c.{self.field}", repr(self.value)
        if self.value is None or isinstance(self.value, bool):
            return f"({value} is {want})"  # validated bools and None are singletons
        if isinstance(self.value, str):
            return f"({value} == {want})"
        if isinstance(self.value, int | float):
            return f"(type({value}) in (int, float) and {value} == {want})"
        return f"same(_json({value}), {want})"

    def schema(self, defaults: Mapping[str, Any]) -> Json:
        fragment: Json = {"properties": {self.field: {"const": self.value}}}
        default = defaults[self.field]
        if default is REQUIRED or not same(_json(default), self.value):
            fragment["required"] = [self.field]  # absent means the default, which differs
        return fragment


@dataclass(frozen=True)
class Has(Cond):
    """The list field (given, or by default) contains this scalar JSON value."""

    field: str
    value: str

    def holds(self, config: Any) -> bool:
        return self.value in getattr(config, self.field)

    def source(self) -> str:
        if not self.field.isidentifier():  # pragma: no cover - field names are identifiers
            raise ValueError(f"not a field name: {self.field!r}")
        return f"({self.value!r} in c.{self.field})"

    def schema(self, defaults: Mapping[str, Any]) -> Json:
        fragment: Json = {"properties": {self.field: {"contains": {"const": self.value}}}}
        default = defaults[self.field]
        if default is REQUIRED or self.value not in _json(default):
            fragment["required"] = [self.field]  # absent means the default, which lacks it
        return fragment


@dataclass(frozen=True)
class _Not(Cond):
    cond: Cond

    def holds(self, config: Any) -> bool:
        return not self.cond.holds(config)

    def source(self) -> str:
        return f"(not {self.cond.source()})"

    def schema(self, defaults: Mapping[str, Any]) -> Json:
        return {"not": self.cond.schema(defaults)}


@dataclass(frozen=True)
class _All(Cond):
    conds: tuple[Cond, ...]

    def holds(self, config: Any) -> bool:
        return all(c.holds(config) for c in self.conds)

    def source(self) -> str:
        return "(" + " and ".join(c.source() for c in self.conds) + ")"

    def schema(self, defaults: Mapping[str, Any]) -> Json:
        return {"allOf": [c.schema(defaults) for c in self.conds]}


@dataclass(frozen=True)
class _Any(Cond):
    conds: tuple[Cond, ...]

    def holds(self, config: Any) -> bool:
        return any(c.holds(config) for c in self.conds)

    def source(self) -> str:
        return "(" + " or ".join(c.source() for c in self.conds) + ")"

    def schema(self, defaults: Mapping[str, Any]) -> Json:
        return {"anyOf": [c.schema(defaults) for c in self.conds]}


@dataclass(frozen=True)
class Rule:
    """``require`` must hold (only ``when`` this holds, if given); a violation is reported at
    ``field``. ``message`` is formatted with the field values (``{r}``, ``{inv_adapter!r}``)."""

    require: Cond
    field: str
    message: str
    expected: str | None = None
    suggestion: str | None = None
    when: Cond | None = None

    def __post_init__(self) -> None:
        # One compiled function per rule, equivalent to holds() (a test checks they agree).
        broken = f"not {self.require.source()}"
        if self.when is not None:
            broken = f"{self.when.source()} and {broken}"
        code = eval(f"lambda c: bool({broken})", {"same": same, "_json": _json})
        object.__setattr__(self, "_broken", code)

    def broken_by(self, config: Any) -> bool:
        return self._broken(config)  # type: ignore[attr-defined]

    def broken_by_holds(self, config: Any) -> bool:
        """:meth:`broken_by`, evaluated through the conditions' ``holds``."""
        when = self.when
        return (when is None or when.holds(config)) and not self.require.holds(config)

    def violation(self, config: Any) -> RuleViolation:
        """The violation as reported for ``config`` (which breaks the rule)."""
        return RuleViolation(
            self.field,
            self.message.format_map(config.field_values()),
            expected=self.expected,
            suggestion=self.suggestion,
        )

    def schema(self, defaults: Mapping[str, Any]) -> Json:
        """The rule as a fragment for the family's ``allOf`` (``if``/``then`` when conditional)."""
        then = self.require.schema(defaults)
        return then if self.when is None else {"if": self.when.schema(defaults), "then": then}


def violations(config: Any, rules: tuple[Rule, ...]) -> list[RuleViolation]:
    """The rules that ``config`` breaks, in declaration order."""
    return [rule.violation(config) for rule in rules if rule.broken_by(config)]
