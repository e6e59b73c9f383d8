"""Adding, activating, training, merging and deleting adapters (the model-level operations).

Every operation validates first and changes the model only when validation passed:
``add_adapter`` resolves the config, looks up the model-type row and runs every member's
``check`` (and ``check_members``) before the first ``add``; if an ``add`` still fails, everything
already built is undone.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from os import PathLike
from typing import Any

import torch
from torch import nn

from adapter_dsl.backend.architectures import (
    ModelSpec,
    base_model_of,
    get_model_spec,
    num_layers,
)
from adapter_dsl.backend.headings import heads_failures
from adapter_dsl.backend.methods.base import capability_of, family_of, get_handler, members_of
from adapter_dsl.backend.state import (
    AdapterEntry,
    Ledger,
    adapter_state_dict,
    drop_state_if_empty,
    get_state,
    peek_state,
    require_adapter,
)
from adapter_dsl.errors import DEFAULT_HEADING, ConfigError
from adapter_dsl.methods.base import AdapterConfig

__all__ = [
    "adapter_summary",
    "add_adapter",
    "delete_adapter",
    "merge_adapter",
    "provisional_adapter",
    "resolve_config",
    "set_active",
    "train_adapter",
    "train_fusion",
    "unmerge_adapter",
]

ConfigLike = str | Mapping[str, Any] | PathLike[str] | Any


def resolve_config(config: ConfigLike) -> Any:
    """A validated config object from a config string, identifier, dict, JSON path or object.

    Everything goes through :func:`adapter_dsl.load`, so a dict or JSON file may also be a saved
    adapter's envelope (the config under ``"config"``, with the reference's version-based
    fix-ups applied). Objects that are not config objects of this package are rejected.
    """
    from adapter_dsl import load  # imported lazily: the config layer is independent of torch

    return load(config)


@contextmanager
def failing_as(heading: str) -> Iterator[None]:
    """Head a ``ConfigError`` raised inside with what failed ("cannot add adapter 'x' to …"):
    the config itself was valid, so "invalid adapter config" would mislead."""
    try:
        yield
    except ConfigError as exc:
        if exc.heading != DEFAULT_HEADING:
            raise
        raise exc.headed(heading) from None


# Adapters are keys of ModuleDicts/ParameterDicts, which refuse keys that are their attributes.
_CONTAINERS = (nn.ModuleDict(), nn.ParameterDict())


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not name or "." in name or name != name.strip():
        raise ConfigError.single(
            "an adapter name must be a non-empty string without dots or surrounding spaces",
            expected="a name such as 'task_a'",
            found=repr(name),
            code="invalid_name",
        )
    if any(hasattr(container, name) for container in _CONTAINERS):
        raise ConfigError.single(
            f"'{name}' cannot be an adapter name: it is an attribute of torch module containers",
            expected="a name such as 'task_a'",
            found=repr(name),
            suggestion=f"use e.g. '{name}_adapter'",
            code="invalid_name",
        )
    return name


def _check_layout(model: nn.Module, arch: ModelSpec) -> None:
    """The model must have the layers its table row describes (a config alone says nothing)."""
    if num_layers(model, arch) == 0:
        raise ConfigError.single(
            f"the model reports model_type '{arch.model_type}' but has none of its layers",
            expected="layers at " + " or ".join(repr(g.layers) for g in arch.groups),
            found=type(model).__name__,
            code="unsupported_model",
        )


def name_list(names: Any, what: str = "adapter names") -> tuple[str, ...]:
    """``names`` (one name, or an iterable of names) as a tuple of strings, else a ConfigError:
    a wrong argument is refused before anything is looked up or changed."""
    if isinstance(names, str):
        return (names,)
    if not isinstance(names, Iterable) or isinstance(names, bytes | Mapping):
        raise ConfigError.single(
            f"{what} must be strings",
            expected="a name or a list of names",
            found=repr(names)[:80],
            code="invalid_name",
        )
    out = tuple(names)
    bad = [n for n in out if not isinstance(n, str)]
    if bad:
        raise ConfigError.single(
            f"{what} must be strings",
            expected="a name or a list of names",
            found=repr(bad[0])[:80],
            code="invalid_name",
        )
    return out


def check_supported(model: nn.Module, arch: ModelSpec, config: AdapterConfig) -> None:
    """Raise ``ConfigError`` unless every member can be built; does not modify the model."""
    members = members_of(config)
    by_family: dict[str, list[Any]] = {}
    for member in members:
        # An object from model_construct() skipped validation: the config's own types and
        # rules (written once, in the config class) run again, so no handler repeats them.
        member.replace()
        family = family_of(member)
        if get_handler(member).needs_row(member) and not arch.supports(capability_of(member)):
            raise ConfigError.single(
                f"'{family}' adapters are not supported on '{arch.model_type}' models",
                expected=f"a method supported by '{arch.model_type}': "
                + ", ".join(arch.supported_families),
                found=f"{family} on {arch.model_type}",
                code="unsupported_method",
            )
        by_family.setdefault(family, []).append(member)
    for configs in by_family.values():
        handler = get_handler(configs[0])
        for member in configs:
            handler.check(model, arch, member)
        handler.check_members(model, arch, configs)
    sharing = [i for i, m in enumerate(members) if get_handler(m).shares_parameters(m)]
    if len(sharing) > 1:
        kinds = ", ".join(type(members[i]).__name__ for i in sharing)
        raise ConfigError.single(
            f"union members {sharing[0]} and {sharing[1]} both keep shared parameters under "
            "shared_parameters.<adapter name>",
            expected="at most one member with shared parameters (VeRA, or Compacter with "
            "shared_phm_rule/shared_W_phm) per adapter",
            found=kinds,
            suggestion="add them as separate adapters (and combine them with a Stack)",
            path=("configs", sharing[1]),
            code="conflict",
        )


def add_adapter(
    model: nn.Module, name: str, config: ConfigLike, *, set_active: bool = False
) -> Any:
    """Add adapter ``name`` built from ``config``; returns the validated config object.

    Nothing on the model changes unless the whole config can be built. ``set_active=True`` also
    makes it the only active adapter (the reference's default is inactive, as here).
    """
    cfg = resolve_config(config)
    with failing_as(f"cannot add adapter {name!r} to {type(model).__name__}"):
        return _add(model, _check_name(name), cfg, set_active)


def _add(model: nn.Module, name: str, cfg: Any, set_active: bool) -> Any:
    arch = get_model_spec(model)
    _check_layout(model, arch)
    existing = peek_state(model)
    if existing is not None and name in existing.adapters:
        raise ConfigError.single(
            f"the model already has an adapter named '{name}'",
            expected="a new name",
            found=repr(name),
            suggestion="delete_adapter() it first or choose another name",
            code="duplicate_adapter",
        )
    merged = [n for n, e in existing.adapters.items() if e.merged] if existing is not None else []
    if merged:
        # New modules would be initialised from weights that hold the merged update (DoRA reads
        # their norms), and unmerging later would then be wrong for them.
        raise ConfigError.single(
            f"adapter '{merged[0]}' is merged into the model's weights",
            expected="no merged adapter while adding one",
            suggestion=f"unmerge_adapter(model, '{merged[0]}') first",
            code="merged",
        )
    check_supported(model, arch, cfg)

    state = get_state(model, arch)
    entry = AdapterEntry(name=name, config=cfg)
    try:
        for member in members_of(cfg):
            family = family_of(member)
            ledger = Ledger()
            # Recorded before add() so that a failing add() is undone together with the rest.
            entry.members.append((family, member, ledger))
            get_handler(member).add(model, arch, name, member, ledger)
    except BaseException:
        for _, member, ledger in reversed(entry.members):
            get_handler(member).remove(model, arch, name, member, ledger)
        drop_state_if_empty(model)
        raise
    state.adapters[name] = entry
    if set_active:
        state.active = (name,)
    return cfg


def set_active(model: nn.Module, names: str | Iterable[str] | Any | None) -> None:
    """Activate a setup: a setup string (``"Stack(a, Fuse(b, c))"``), a block, a name, a list
    of names (a ``Stack``, as in the reference) or none (``None``).

    Every model-dependent rule is checked first (``backend/setups.py``); merged adapters are
    un-merged, like the reference's ``set_active_adapters``.
    """
    with failing_as(f"cannot activate {names!r} on {type(model).__name__}"):
        _set_active(model, names)


def _set_active(model: nn.Module, names: str | Iterable[str] | Any | None) -> None:
    from adapter_dsl.backend import setups

    twice = setups.duplicates(names)
    if twice:
        raise ConfigError.single(
            f"adapter '{twice[0]}' is listed twice", found=repr(names), code="duplicate_name"
        )
    node = setups.resolve_setup(names)
    wanted = setups.names_of(node)
    for n in wanted:
        require_adapter(model, n)
    state = peek_state(model)
    if state is None:  # only reachable with names=None on a model without adapters
        return
    if node is not None:
        setups.check_setup(model, state, node)
    families = {family: m for n in wanted for family, m, _ in state.adapters[n].members}
    for family in sorted(families):
        get_handler(families[family]).check_active(model, state.arch, wanted)
        get_handler(families[family]).check_setup(model, state.arch, node)
    for n, entry in state.adapters.items():
        if entry.merged:
            unmerge_adapter(model, n)
    state.active = wanted
    state.setup = node
    setups.install_entry_hook(model, state, node)


def train_adapter(model: nn.Module, names: str | Iterable[str] | Any) -> None:
    """Freeze the base model (and every other adapter) except the parameters of the adapters
    the setup names (a setup string or block, a name or a list); activate the setup and put
    the model into training mode.

    As in the reference, a task head outside the base model (a classifier, an LM head that is
    not tied to the embeddings) keeps its own ``requires_grad`` and so trains by default;
    freeze it yourself, or use ``training.prepare_for_training(..., head=False)``, if not.
    """
    with failing_as(f"cannot train {names!r} on {type(model).__name__}"):
        _set_active(model, names)
    state = peek_state(model)
    wanted = state.active if state is not None else ()
    for p in base_model_of(model).parameters():
        p.requires_grad_(False)
    for n in wanted:
        for p in require_adapter(model, n)[1].trainable_parameters():
            p.requires_grad_(True)
    model.train()


@heads_failures("cannot train the fusion of {setup!r} on {cls}")
def train_fusion(model: nn.Module, setup: Any, *, unfreeze_adapters: bool = False) -> None:
    """Activate ``setup`` (e.g. ``"Fuse(a, b)"``) and train only its fusion layers: the base model
    and every adapter are frozen (the fused adapters too, unless ``unfreeze_adapters``), as the
    reference's ``train_adapter_fusion``; the model is put into training mode."""
    set_active(model, setup)
    state = peek_state(model)
    assert state is not None
    node = state.active_setup()
    fuses = [b.name for b in node.walk() if b.kind == "Fuse"] if node is not None else []
    if not fuses:
        raise ConfigError.single(
            f"the setup {node} has no Fuse block: there is no fusion to train",
            expected="a setup with a Fuse block, e.g. 'Fuse(a, b)'",
            found=str(node),
            code="no_fusion",
        )
    for p in base_model_of(model).parameters():
        p.requires_grad_(False)
    for fname in fuses:
        for p in state.fusions[fname].parameters():
            p.requires_grad_(True)
    if unfreeze_adapters:
        for name in state.active:
            for p in state.adapters[name].trainable_parameters():
                p.requires_grad_(True)
    model.train()


def delete_adapter(model: nn.Module, name: str) -> None:
    """Remove adapter ``name``: hooks, modules and wrappers go, the model is as before."""
    with failing_as(f"cannot delete adapter {name!r} from {type(model).__name__}"):
        state, entry = require_adapter(model, name)
    if entry.merged:
        unmerge_adapter(model, name)
    from adapter_dsl.backend import setups
    from adapter_dsl.backend.methods.fusion import delete_fusions_of

    delete_fusions_of(model, name)
    for _, member, ledger in reversed(entry.members):
        get_handler(member).remove(model, state.arch, name, member, ledger)
    del state.adapters[name]
    state.active = tuple(n for n in state.active if n != name)
    setups.install_entry_hook(model, state, state.active_setup())
    drop_state_if_empty(model)


def merge_adapter(model: nn.Module, name: str) -> None:
    """Fold adapter ``name`` into the base weights (families that support it: the LoRA family).

    The adapter is then removed from the active setup (its effect lives in the weights).
    """
    with failing_as(f"cannot merge adapter {name!r} into {type(model).__name__}"):
        _merge(model, name)


def _merge(model: nn.Module, name: str) -> None:
    state, entry = require_adapter(model, name)
    if entry.merged:
        raise ConfigError.single(f"adapter '{name}' is already merged", code="already_merged")
    done: list[Any] = []
    try:
        for _, member, _ in entry.members:
            get_handler(member).merge(model, state.arch, name, member)
            done.append(member)
    except BaseException:
        for member in reversed(done):
            get_handler(member).unmerge(model, state.arch, name, member)
        raise
    entry.merged = True
    state.active = tuple(n for n in state.active if n != name)


def unmerge_adapter(model: nn.Module, name: str) -> None:
    """Undo :func:`merge_adapter`: restore the base weights."""
    with failing_as(f"cannot unmerge adapter {name!r} from {type(model).__name__}"):
        state, entry = require_adapter(model, name)
        if not entry.merged:
            raise ConfigError.single(f"adapter '{name}' is not merged", code="not_merged")
        for _, member, _ in reversed(entry.members):
            get_handler(member).unmerge(model, state.arch, name, member)
        entry.merged = False


@heads_failures("cannot summarise the adapters of {cls}")
def adapter_summary(model: nn.Module) -> list[dict[str, Any]]:
    """One row per adapter, in insertion order.

    Keys: ``name``; ``method`` (the config class, e.g. ``"SeqBnConfig"``); ``config`` (its
    canonical config string, e.g. ``"seq_bn[reduction_factor=8]"``); ``families`` (the backend
    families of its members); ``parameters`` (trainable parameters, i.e. those
    :func:`train_adapter` unfreezes); ``share_percent`` (100 × parameters / base-model
    parameters, where the base model excludes every adapter's own parameters); ``active`` and
    ``merged``.
    """
    from adapter_dsl import dumps

    state = peek_state(model)
    if state is None:
        return []
    owned: set[int] = set()
    for entry in state.adapters.values():
        owned.update(id(p) for p in entry.parameters())
    base = sum(p.numel() for p in model.parameters() if id(p) not in owned)
    rows = []
    for name, entry in state.adapters.items():
        trainable = sum(p.numel() for p in entry.trainable_parameters())
        rows.append(
            {
                "name": name,
                "method": type(entry.config).__name__,
                "config": dumps(entry.config),
                "families": list(entry.families),
                "parameters": trainable,
                "share_percent": 100.0 * trainable / base if base else 0.0,
                "active": name in state.active,
                "merged": entry.merged,
            }
        )
    return rows


def format_summary(model: nn.Module) -> str:
    """:func:`adapter_summary` as a small text table."""
    rows = adapter_summary(model)
    lines = [f"{'name':<16}{'method':<26}{'params':>10}{'% of model':>12}  active"]
    for r in rows:
        lines.append(
            f"{r['name']:<16}{r['method']:<26}{r['parameters']:>10}"
            f"{r['share_percent']:>11.4f}%  {'yes' if r['active'] else 'no'}"
            f"{' (merged)' if r['merged'] else ''}"
        )
    return "\n".join(lines)


@contextmanager
def provisional_adapter(model: nn.Module, name: str, config: Any) -> Iterator[dict[str, Any]]:
    """Add adapter ``name`` and yield its own state dict for filling; if anything in the block
    fails, the adapter is deleted and the previous active setup restored. The RNG is forked so
    that a failed load leaves even the random state untouched."""
    state_before = peek_state(model)
    active_before = state_before.active if state_before is not None else ()
    with torch.random.fork_rng(devices=[]):
        add_adapter(model, name, config)
    try:
        yield adapter_state_dict(model, require_adapter(model, name)[1])
    except BaseException:
        delete_adapter(model, name)
        state_after = peek_state(model)
        if state_after is not None:
            state_after.active = active_before
        raise
