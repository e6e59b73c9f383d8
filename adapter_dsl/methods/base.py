"""The base of every config class: frozen pydantic models with the reference's dict shape.

Contract of every config object:
- immutable and hashable; ``==`` compares values (``to_dict()``), not classes, like the reference;
- ``to_dict()`` returns exactly the reference's ``to_dict()`` shape and values; fields the
  reference lacks (listed in ``_extension_fields``) appear only when they differ from the
  family default;
- construction, ``from_dict`` and ``replace`` raise :class:`~adapter_dsl.errors.ConfigError`,
  never pydantic's ``ValidationError`` or a ``TypeError``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from ..errors import ConfigError, Location, Problem, did_you_mean, quote
from ..fieldtypes import Expect, RuleViolation, RuleViolations
from ..lazy import resolve
from .rules import Rule, violations

if TYPE_CHECKING:
    from .union import ConfigUnion

__all__ = ["AdapterConfig", "check_rules", "plain"]


def plain(value: Any) -> Any:
    """JSON-shaped copy of a field value: tuples → lists, read-only mappings → dicts."""
    if isinstance(value, tuple | list):
        return [plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    return value


def _hashable(value: Any) -> Any:
    """Values that compare equal map to the same form (16 == 16.0, -0.0 == 0.0), so that
    equal configs hash equally."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, Mapping):
        return {k: _hashable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_hashable(v) for v in value]
    return value


def check_rules(violations: list[RuleViolation]) -> None:
    """Raise all cross-field violations at once (pydantic turns this into one error entry)."""
    if len(violations) == 1:
        raise violations[0]
    if violations:
        raise RuleViolations(violations)


class AdapterConfig(BaseModel):
    """Abstract base of all adapter method configs (the reference's ``AdapterConfig``)."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        # Schemas are built on first use, which keeps `import adapter_dsl` cheap.
        defer_build=True,
        revalidate_instances="never",
        validate_default=False,
    )

    if TYPE_CHECKING:
        # Every config class has one: a field in most families, a class constant in BnConfig.
        @property
        def architecture(self) -> str: ...

        _dict_cache: dict[str, Any]

    # Family root: the class that from_dict() validates a dict of this family against.
    _family_root: ClassVar[type[AdapterConfig] | None] = None
    # Fields the reference does not serialise; emitted by to_dict() only when non-default.
    _extension_fields: ClassVar[frozenset[str]] = frozenset()
    # Keys of older file formats that the class translates when constructed (not fields):
    # lenient loading keeps them, so that both modes apply the same translation.
    _legacy_keys: ClassVar[frozenset[str]] = frozenset()
    # Other libraries' names for fields (PEFT's vocabulary): an unknown key that is one of them
    # gets the field as its suggestion. key → field, or (field, how they differ).
    _synonyms: ClassVar[Mapping[str, str | tuple[str, str]]] = {}
    # The family's cross-field rules: checked below, stated by the JSON Schema (see rules.py).
    cross_field_rules: ClassVar[tuple[Rule, ...]] = ()

    @model_validator(mode="after")
    def _check_cross_field_rules(self) -> Self:
        check_rules(violations(self, self.cross_field_rules))
        return self

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        # Presets redeclare fields only to change defaults; keep the documentation of the
        # field they override so schemas and `explain` stay complete.
        super().__pydantic_init_subclass__(**kwargs)
        for name, info in cls.model_fields.items():
            if info.description is not None:
                continue
            for base in cls.__mro__[1:]:
                parent = getattr(base, "model_fields", {}).get(name)
                if parent is not None and parent.description is not None:
                    info.description = parent.description
                    info.examples = info.examples or parent.examples
                    break

    def __init__(self, **data: Any) -> None:
        if type(self) is AdapterConfig:
            raise ConfigError.single(
                "AdapterConfig is abstract",
                suggestion="use a concrete class such as LoRAConfig or load('lora')",
            )
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise ConfigError(problems_from_validation(exc, type(self))) from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise ConfigError.single(
            f"config objects are immutable: cannot set '{name}'",
            suggestion=f"use cfg.replace({name}=...) to get a changed copy",
            code="frozen",
        )

    def __delattr__(self, name: str) -> None:
        raise ConfigError.single(
            f"config objects are immutable: cannot delete '{name}'", code="frozen"
        )

    # -- value semantics ---------------------------------------------------------------------

    # to_dict() of an immutable object never changes: computed once, shared by ==, hash and
    # dumps. A slot rather than a pydantic private attribute, which costs on every construction.
    __slots__ = ("_dict_cache",)

    def to_dict(self) -> dict[str, Any]:
        """The reference's ``to_dict()``: JSON-compatible, in field-declaration order (a copy)."""
        return plain(self.frozen_dict())

    def frozen_dict(self) -> dict[str, Any]:
        """``to_dict()`` without the copy: shared and cached, so callers must not mutate it."""
        try:
            return self._dict_cache
        except AttributeError:
            cached = self._compute_dict()
            object.__setattr__(self, "_dict_cache", cached)
            return cached

    def _compute_dict(self) -> dict[str, Any]:
        root = self._family_root or type(self)
        out: dict[str, Any] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if name in self._extension_fields and value == root.model_fields[name].default:
                continue
            out[name] = plain(value)
        return out

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AdapterConfig):
            return NotImplemented
        return self.frozen_dict() == other.frozen_dict()

    def __hash__(self) -> int:
        # Over every field. (The reference's config hash drops falsy and some default values,
        # so different configs collide, e.g. compacter++ and one seq_bn variant.)
        return hash(json.dumps(_hashable(self.frozen_dict()), sort_keys=True))

    def __or__(self, other: AdapterConfig) -> ConfigUnion:
        """``a | b`` builds a :class:`ConfigUnion`; unions are flattened (they cannot nest)."""
        union = resolve("adapter_dsl.methods.union:ConfigUnion")
        if not isinstance(other, AdapterConfig):
            return NotImplemented
        return union(*self.members(), *other.members())

    def members(self) -> tuple[AdapterConfig, ...]:
        """The single-method configs inside: ``(self,)`` here, the children for unions."""
        return (self,)

    def __str__(self) -> str:
        dumps = resolve("adapter_dsl.canonical:dumps")
        return dumps(self)

    def __repr__(self) -> str:
        dumps = resolve("adapter_dsl.canonical:dumps")
        return f"{type(self).__name__}({dumps(self)!r})"

    def __repr_args__(self) -> Any:  # used by pydantic's rich repr helpers
        return list(self.to_dict().items())

    # -- construction ------------------------------------------------------------------------

    def field_values(self) -> dict[str, Any]:
        """Every field's current value, by name (tuples and read-only mappings as stored)."""
        return {name: getattr(self, name) for name in type(self).model_fields}

    def replace(self, **changes: Any) -> Self:
        """A validated copy with some fields changed; unknown keys are a ConfigError."""
        return type(self)(**{**self.field_values(), **changes})

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """pydantic's copy, validated like :meth:`replace` when ``update`` changes fields."""
        return self.replace(**update) if update else self

    @classmethod
    def model_validate_json(cls, json_data: str | bytes | bytearray, **kwargs: Any) -> Self:
        """Validate JSON text as this class, raising ConfigError (located by line and column)
        like ``from_dict``; pydantic's keyword options are not supported."""
        load_json_text = resolve("adapter_dsl.loading:load_json_text")
        if isinstance(json_data, bytes | bytearray):
            try:
                json_data = bytes(json_data).decode("utf-8-sig")
            except UnicodeDecodeError as exc:
                raise ConfigError.single(
                    "the JSON is not UTF-8 text", found=str(exc), code="json_syntax"
                ) from None
        if not isinstance(json_data, str):
            raise ConfigError.single(
                f"cannot validate {type(json_data).__name__} as JSON text", expected="str or bytes"
            )
        return load_json_text(json_data, cls=cls)

    @classmethod
    def model_validate(cls, obj: Any, **kwargs: Any) -> Self:
        """Validate a dict (or config) as this class, raising ConfigError like ``from_dict``."""
        if isinstance(obj, cls):
            return obj
        if isinstance(obj, Mapping):
            return cls.from_dict(obj)  # type: ignore[return-value]
        raise ConfigError.single(
            f"cannot validate {type(obj).__name__} as {cls.__name__}", expected="a dict"
        )

    def __getitem__(self, key: str) -> Any:
        """Mapping-style field access, as the reference's configs offer (``cfg["r"]``)."""
        if key not in type(self).model_fields:
            raise KeyError(key)
        return getattr(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key) if key in type(self).model_fields else default

    @classmethod
    def load(
        cls, config: Any, download_kwargs: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> AdapterConfig | None:
        """The reference's ``AdapterConfig.load``: None for a falsy ``config``; ``kwargs`` whose
        value is None are ignored, as there (``download_kwargs`` too: nothing is downloaded).

        Unlike the reference, ``kwargs`` on a union string are applied (there they are dropped
        silently), following :func:`adapter_dsl.load`.
        """
        load = resolve("adapter_dsl.loading:load")
        if config is None or (isinstance(config, str | Mapping) and not config):
            return None
        return load(config, **{k: v for k, v in kwargs.items() if v is not None})

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AdapterConfig:
        """Rebuild a config from its ``to_dict()`` form (see :func:`adapter_dsl.from_dict`)."""
        config_from_dict = resolve("adapter_dsl.loading:config_from_dict")
        if isinstance(data, AdapterConfig):
            return data
        return config_from_dict(data, cls=None if cls is AdapterConfig else cls)

    @classmethod
    def key_suggestion(cls, key: str, candidates: Iterable[str] | None = None) -> str | None:
        """The suggestion for an unknown ``key``: the field another library's name stands for,
        else the closest of ``candidates`` (default: the fields)."""
        synonym = cls._synonyms.get(key)
        if synonym is None:
            return did_you_mean(key, cls.model_fields if candidates is None else candidates)
        field, note = synonym if isinstance(synonym, tuple) else (synonym, "")
        return f"did you mean '{field}'? ('{key}' is its name elsewhere, e.g. in PEFT{note})"

    @classmethod
    def field_expectation(cls, name: str) -> str | None:
        """The ``Expect`` text declared on a field's type, if any."""
        info = cls.model_fields.get(name)
        if info is None:
            return None
        for meta in info.metadata:
            if isinstance(meta, Expect):
                return meta.text
        return None


# -- pydantic errors → problems ----------------------------------------------------------------


def _found(value: Any) -> str:
    return quote(value)


def problems_from_validation(exc: ValidationError, cls: type[AdapterConfig]) -> list[Problem]:
    """Turn pydantic's errors into located problems, one per field, with expectations."""
    problems: list[Problem] = []
    seen_fields: set[str] = set()
    fields = list(cls.model_fields)
    for err in exc.errors(include_url=False):
        loc = tuple(err.get("loc", ()))
        etype = err["type"]
        original = (err.get("ctx") or {}).get("error")
        nested = getattr(original, "nested_problems", None)
        if nested:
            problems.extend(nested)
            continue
        if isinstance(original, RuleViolations):
            for v in original.violations:
                problems.append(_rule_problem(v, loc))
            continue
        if isinstance(original, RuleViolation):
            problems.append(_rule_problem(original, loc))
            continue
        field = str(loc[0]) if loc else None
        if etype == "extra_forbidden" and field is not None:
            problems.append(
                Problem(
                    f"unknown key '{field}' for {cls.__name__}",
                    Location(path=(field,)),
                    expected="one of " + ", ".join(fields),
                    found=repr(field),
                    suggestion=cls.key_suggestion(field),
                    code="unknown_key",
                )
            )
            continue
        if field is not None and field in seen_fields:
            continue  # one problem per field: union branches report the same input twice
        if field is not None:
            seen_fields.add(field)
        expected = cls.field_expectation(field) if field else None
        msg = str(err.get("msg", "invalid value"))
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        if etype == "missing":
            problems.append(
                Problem(
                    f"missing required key '{field}' for {cls.__name__}",
                    Location(path=(field,) if field else ()),
                    expected=expected,
                    code="missing",
                )
            )
            continue
        suggestion = None
        if etype == "literal_error" and isinstance(err.get("input"), str):
            options = _literal_options(err)
            suggestion = did_you_mean(err["input"], options) if options else None
        if etype == "frozen_instance":
            msg = "config objects are immutable"
            suggestion = "use cfg.replace(...) to get a changed copy"
        path = tuple(loc[:1]) if field else ()
        where = f"'{field}'" if field else cls.__name__
        problems.append(
            Problem(
                f"invalid value for {where}: {_lower_first(msg)}",
                Location(path=path),
                expected=expected,
                found=_found(err.get("input")),
                suggestion=suggestion,
                code=etype,
            )
        )
    return problems or [Problem(f"invalid {cls.__name__}")]


def _literal_options(err: Any) -> list[str]:
    expected = str((err.get("ctx") or {}).get("expected", ""))
    return [part.strip(" '") for part in expected.replace(" or ", ",").split(",") if part.strip()]


def _lower_first(text: str) -> str:
    # pydantic's sentences start with a capital ("Input should ..."); type names ("NoneType")
    # keep theirs.
    word = text.split(" ", 1)[0]
    return text[:1].lower() + text[1:] if word[1:].islower() else text


def _rule_problem(v: RuleViolation, loc: tuple[Any, ...]) -> Problem:
    path: tuple[str | int, ...] = (
        v.path if v.path is not None else (v.field,) if v.field else tuple(loc[:1])
    )
    return Problem(
        v.message,
        Location(path=path),
        expected=v.expected,
        suggestion=v.suggestion,
        code="rule",
    )
