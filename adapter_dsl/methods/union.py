"""Unions of methods (``a|b``) and the MAM and UniPELT presets, with the reference's rules."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import BeforeValidator, Field, model_validator

from ..errors import ConfigError, Location, Problem, did_you_mean
from ..fieldtypes import Expect, RuleViolation
from ..lazy import resolve
from .base import AdapterConfig, check_rules
from .bottleneck import BnConfig, ParBnConfig, SeqBnConfig
from .family import MethodFamily, PeftConversion, preset, register_family
from .lora import LoRAConfig
from .prefix_tuning import PrefixTuningConfig

__all__ = [
    "PRESET_UNIONS",
    "ConfigUnion",
    "MAMConfig",
    "UniPELTConfig",
    "apply_changes",
    "union_class_of",
]


def _members_from_input(value: Any) -> Any:
    """Accept configs or their dicts; flatten nested unions (unions never nest)."""
    if isinstance(value, Mapping | str | bytes) or not isinstance(value, Iterable):
        raise ValueError(f"expected a list of configs, found {type(value).__name__}")
    out: list[AdapterConfig] = []
    for i, item in enumerate(value):
        if isinstance(item, Mapping):
            config_from_dict = resolve("adapter_dsl.loading:config_from_dict")
            try:
                item = config_from_dict(item)
            except ConfigError as exc:
                raise _NestedError(i, exc) from None
        if not isinstance(item, AdapterConfig):
            raise ValueError(f"member {i} is not an adapter config: {item!r}")
        out.extend(item.members())
    return tuple(out)


class _NestedError(ValueError):
    """A member dict failed; carries its problems, located under ``configs/<i>``."""

    def __init__(self, index: int, error: ConfigError) -> None:
        self.nested_problems = [p.prefixed(("configs", index)) for p in error.problems]
        super().__init__(str(error))


Members = Annotated[
    tuple[AdapterConfig, ...],
    BeforeValidator(_members_from_input),
    # One member is that member, not a union (no string could say otherwise); none is nothing.
    Field(min_length=2),
    Expect("a list of at least two single-method configs"),
]


def _kind(cfg: AdapterConfig) -> str:
    return cfg.architecture


def _label(cfg: AdapterConfig) -> str:
    dumps = resolve("adapter_dsl.canonical:dumps")
    return dumps(cfg)


def _rule_inputs(cfg: AdapterConfig) -> tuple[Any, ...]:
    """Everything :func:`_combination_problem` reads of a member: two members with the same
    inputs clash with exactly the same others."""
    bn = isinstance(cfg, BnConfig)
    return (
        _kind(cfg),
        bool(getattr(cfg, "leave_out", ())),
        bn,
        getattr(cfg, "mh_adapter", None) if bn else None,
        getattr(cfg, "output_adapter", None) if bn else None,
    )


def _combination_problem(a: AdapterConfig, b: AdapterConfig) -> RuleViolation | None:
    """The reference's pairwise rule (ConfigUnion.validate), plus MTL-LoRA being a LoRA."""
    kinds = {_kind(a), _kind(b)}
    if kinds == {"lora", "mtl_lora"}:
        # The reference accepts this pair, then fails when adding: MTL-LoRA is a LoRA and both
        # would wrap the same modules.
        return RuleViolation(
            None,
            "lora and mtl_lora both wrap the same linear layers and cannot be combined",
            expected="at most one LoRA-family config",
        )
    if len(kinds) > 1:
        return None
    if getattr(a, "leave_out", ()) or getattr(b, "leave_out", ()):
        return None  # decided per layer when the adapter is added, as in the reference
    if isinstance(a, BnConfig) and isinstance(b, BnConfig):
        if a.mh_adapter != b.mh_adapter and a.output_adapter != b.output_adapter:
            return None
        return RuleViolation(
            None,
            "two bottleneck adapters can only be combined when one sits after attention and "
            "the other after the feed-forward block",
            expected="mh_adapter and output_adapter both different between the two",
            suggestion="set mh_adapter=True, output_adapter=False on one of them, or use leave_out",
        )
    return RuleViolation(
        None,
        f"two {_kind(a)} configs have the same adapter architecture and cannot be combined",
        expected="at most one config per architecture (or disjoint leave_out)",
    )


class ConfigUnion(AdapterConfig):
    """Several methods in one adapter, e.g. ``prefix_tuning|par_bn``."""

    architecture: Literal["union"] = "union"
    configs: Members = Field(description="The combined single-method configs.")

    # Names by which keys address members in strings (``mam[adapter.reduction_factor=4]``).
    member_names: ClassVar[tuple[str, ...]] = ()

    def __init__(self, *configs: AdapterConfig, **data: Any) -> None:
        if configs:
            if "configs" in data:
                raise ConfigError.single("give the configs positionally or as configs=, not both")
            data["configs"] = configs
        given = data.get("configs")
        if isinstance(given, tuple | list) and len(given) < 2:
            raise ConfigError.single(
                "a union needs at least two configs",
                expected="two or more single-method configs",
                found=f"{len(given)}",
                suggestion="use a single config as it is" if given else None,
                path=("configs",),
                code="union_size",
            )
        super().__init__(**data)

    def members(self) -> tuple[AdapterConfig, ...]:
        return self.configs

    # A sequence of its members, as the reference's union is: u[0], len(u), list(u). A string
    # key is a field ("configs") or, as in the reference, "<member>.<field>" ("0.r", "lora.r").
    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, int | slice):
            return self.configs[key]
        if isinstance(key, str) and "." in key:
            member, _, field = key.partition(".")
            index = self.member_index(member)
            if index is None:
                raise KeyError(key)
            return self.configs[index][field]
        return super().__getitem__(key)

    def __iter__(self) -> Iterator[AdapterConfig]:  # type: ignore[override]
        return iter(self.configs)

    def __len__(self) -> int:
        return len(self.configs)

    def __contains__(self, config: object) -> bool:
        return config in self.configs

    @model_validator(mode="after")
    def _combination_rules(self) -> Self:
        """One problem per member that clashes with an earlier one (the first it clashes with).

        Members are compared with one earlier member per distinct :func:`_rule_inputs`, not with
        every earlier member: the cost is linear in the number of members.
        """
        problems: list[RuleViolation] = []
        members = self.configs
        first: dict[tuple[Any, ...], int] = {}  # rule inputs → the first member with them
        # A label is a function of the member's dict: members with the same values print once.
        labels: dict[str, str] = {}

        def label(cfg: AdapterConfig) -> str:
            key = json.dumps(cfg.frozen_dict(), default=repr)
            if key not in labels:
                labels[key] = _label(cfg)
            return labels[key]

        for j, b in enumerate(members):
            for i in first.values():
                v = _combination_problem(members[i], b)
                if v is not None:
                    v.message = (
                        f"members {i} and {j} ({label(members[i])}, {label(b)}): {v.message}"
                    )
                    v.path = ("configs", j)
                    problems.append(v)
                    break
            first.setdefault(_rule_inputs(b), j)
        check_rules(problems)
        return self

    def _compute_dict(self) -> dict[str, Any]:
        return {"architecture": "union", "configs": [c.frozen_dict() for c in self.configs]}

    def field_values(self) -> dict[str, Any]:
        return {"configs": self.configs}

    def replace(self, **changes: Any) -> Self:
        """Change member fields: ``r=4`` sets every member that has ``r``; ``lora.r=4`` (or
        ``2.r``) one member. A key no member has is a ConfigError."""
        members = apply_changes(self.configs, self.member_names, changes)
        return type(self)(configs=members)

    def member_index(self, name: str) -> int | None:
        if name.isdigit():
            return int(name) if int(name) < len(self.configs) else None
        if name in self.member_names:
            return self.member_names.index(name)
        return None


def apply_changes(
    members: Sequence[AdapterConfig],
    member_names: Sequence[str],
    changes: Mapping[str, Any],
    *,
    key_paths: Mapping[str, tuple[str | int, ...]] | None = None,
) -> tuple[AdapterConfig, ...]:
    """Apply (possibly qualified) key changes to union members; all problems at once.

    ``key_paths`` maps a change key to the location reported for problems with it (defaults to
    the key itself).
    """
    per_member: list[dict[str, Any]] = [{} for _ in members]
    owners: list[list[str]] = [[] for _ in members]
    problems: list[Problem] = []
    names: list[str] = (
        list(member_names)
        if len(member_names) == len(members)
        else [str(i) for i in range(len(members))]
    )
    set_by: dict[tuple[int, str], str] = {}  # (member, field) → the key that set it

    def assign(i: int, field: str, key: str, value: Any, path: tuple[str | int, ...]) -> None:
        earlier = set_by.get((i, field))
        if earlier is not None:
            problems.append(
                Problem(
                    f"'{key}' sets {names[i]}.{field} again (already set by '{earlier}')",
                    Location(path=path),
                    expected="each member field set once",
                    found=repr(key),
                    suggestion="remove one of them",
                    code="duplicate_key",
                )
            )
            return
        set_by[(i, field)] = key
        per_member[i][field] = value
        owners[i].append(key)

    for key, value in changes.items():
        path = (key_paths or {}).get(key, (key,))
        if "." in key:
            head, _, field = key.partition(".")
            idx = (
                names.index(head)
                if head in names
                else (int(head) if head.isdigit() and int(head) < len(members) else None)
            )
            if idx is None:
                problems.append(
                    Problem(
                        f"no union member named '{head}'",
                        Location(path=path),
                        expected="one of " + ", ".join(repr(n) for n in names),
                        found=repr(head),
                        suggestion=did_you_mean(head, names),
                        code="unknown_member",
                    )
                )
                continue
            assign(idx, field, key, value, path)
            continue
        targets = [i for i, m in enumerate(members) if key in type(m).model_fields]
        if not targets:
            fields = sorted({f for m in members for f in type(m).model_fields})
            problems.append(
                Problem(
                    f"no member of the union has a key '{key}'",
                    Location(path=path),
                    expected="a key of one of the members: " + ", ".join(fields),
                    found=repr(key),
                    suggestion=next(
                        (type(m).key_suggestion(key) for m in members if key in type(m)._synonyms),
                        did_you_mean(key, fields),
                    ),
                    code="unknown_key",
                )
            )
            continue
        for i in targets:
            assign(i, key, key, value, path)
    new_members: list[AdapterConfig] = list(members)
    for i, member in enumerate(members):
        if not per_member[i]:
            continue
        try:
            new_members[i] = member.replace(**per_member[i])
        except ConfigError as exc:
            for p in exc.problems:
                bad = str(p.location.path[0]) if p.location.path else None
                owner = next((k for k in owners[i] if k == bad or k.endswith("." + str(bad))), None)
                where = (key_paths or {}).get(owner, (owner,)) if owner else ()
                problems.append(p.with_location(path=tuple(where)))
    if problems:
        raise ConfigError(problems)
    return tuple(new_members)


class _PresetUnion(ConfigUnion):
    """A union with named members of fixed kinds (MAM, UniPELT)."""

    member_types: ClassVar[tuple[type[AdapterConfig], ...]] = ()

    @classmethod
    def _check_members(cls, members: Sequence[Any]) -> None:
        kinds = ", ".join(
            f"{n}: {t.__name__}" for n, t in zip(cls.member_names, cls.member_types, strict=True)
        )
        if not cls.fits(members):
            raise ConfigError.single(
                f"{cls.__name__} combines {kinds}",
                expected=f"{cls.__name__}({', '.join(cls.member_names)}) with configs of those kinds",
                found=", ".join(type(m).__name__ for m in members),
                code="wrong_class",
            )

    @classmethod
    def fits(cls, members: Sequence[AdapterConfig]) -> bool:
        """Whether ``members`` have this preset's member kinds, in its order."""
        return len(members) == len(cls.member_types) and all(
            isinstance(m, t) for m, t in zip(members, cls.member_types, strict=True)
        )

    def __init__(self, *members: AdapterConfig, **data: Any) -> None:
        if members:
            data["configs"] = members
        if "configs" in data and isinstance(data["configs"], Sequence):
            self._check_members(data["configs"])
        super().__init__(**data)


class MAMConfig(_PresetUnion):
    """Mix-and-Match adapters (He et al., 2021): prefix tuning plus a parallel adapter."""

    member_names: ClassVar[tuple[str, ...]] = ("prefix_tuning", "adapter")
    member_types: ClassVar[tuple[type[AdapterConfig], ...]] = (PrefixTuningConfig, BnConfig)

    def __init__(
        self,
        prefix_tuning: PrefixTuningConfig | None = None,
        adapter: BnConfig | None = None,
        **data: Any,
    ) -> None:
        if "configs" not in data:
            data["configs"] = (
                prefix_tuning or PrefixTuningConfig(bottleneck_size=800),
                adapter or ParBnConfig(),
            )
        super().__init__(**data)


class UniPELTConfig(_PresetUnion):
    """UniPELT (Mao et al., 2022): gated prefix tuning, bottleneck adapter and LoRA."""

    member_names: ClassVar[tuple[str, ...]] = ("prefix_tuning", "adapter", "lora")
    member_types: ClassVar[tuple[type[AdapterConfig], ...]] = (
        PrefixTuningConfig,
        BnConfig,
        LoRAConfig,
    )

    def __init__(
        self,
        prefix_tuning: PrefixTuningConfig | None = None,
        adapter: BnConfig | None = None,
        lora: LoRAConfig | None = None,
        **data: Any,
    ) -> None:
        if "configs" not in data:
            members = (
                prefix_tuning or PrefixTuningConfig(prefix_length=10),
                adapter or SeqBnConfig(reduction_factor=16),
                lora or LoRAConfig(r=8, alpha=2),
            )
            self._check_members(members)
            # As in the reference, every member is gated.
            data["configs"] = tuple(m.replace(use_gating=True) for m in members)
        super().__init__(**data)


register_family(
    MethodFamily(
        architecture="union",
        root=ConfigUnion,
        configs=(ConfigUnion, MAMConfig, UniPELTConfig),
        presets=(
            preset(
                "mam",
                MAMConfig,
                "Mix-and-Match: prefix tuning (bottleneck 800) + parallel adapter",
            ),
            preset("unipelt", UniPELTConfig, "UniPELT: gated prefix tuning + seq_bn + LoRA"),
        ),
        title="Union of methods",
        peft=PeftConversion(name="combinations of methods (unions)"),
    )
)

#: Unions with named members, in the order a union of matching member kinds is read as them.
PRESET_UNIONS: tuple[type[_PresetUnion], ...] = (MAMConfig, UniPELTConfig)


def union_class_of(members: Sequence[AdapterConfig]) -> type[ConfigUnion]:
    """The preset union whose member kinds ``members`` have (so that a reloaded MAM dict keeps
    its member names), else ConfigUnion."""
    return next((c for c in PRESET_UNIONS if c.fits(members)), ConfigUnion)
