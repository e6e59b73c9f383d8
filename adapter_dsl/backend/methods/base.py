"""The method-handler protocol and the registry ``config architecture → handler``.

A handler turns one *member* config (a single method config, never a union: the core splits
unions and calls the handler of each child) into modules and hooks on a model.

Contract (all methods receive the model the user passed, the architecture row from
``architectures.MODEL_TYPES`` and the validated config object of that member):

``check(model, arch, config) -> None``
    Raise ``ConfigError`` if ``config`` cannot be built on this model (unsupported location,
    shapes that do not divide, ...). Must not modify the model: the core calls ``check`` for every
    member of a union before any ``add``, so a failure leaves the model untouched.

``add(model, arch, name, config, ledger) -> None``
    Build the adapter ``name``. Every change to the model goes through ``ledger``
    (``attach``/``add_entry``/``replace``/``hook``/``on_undo``); modules holding the adapter's own
    parameters are *owned* (the default of ``attach``/``add_entry``), so that training, saving and
    counting find them without family-specific code. State-dict keys should reproduce the
    reference's (e.g. ``….output.adapters.<name>.adapter_down.0.weight``). Initialisation must
    honour ``init_weights``/``init_weights_seed`` where the config has them. Runtime behaviour
    reads the active setup from ``state.get_state(model, arch).active_members(family)`` at forward
    time, so activation needs no handler call.

``check_members(model, arch, configs) -> None``
    Called once per family with all members of that family in one config (a union may hold
    several, e.g. two bottleneck configs with disjoint ``leave_out``); raise ``ConfigError`` when
    they conflict (two blocks at the same location of the same layer). Default: no check.

``remove(model, arch, name, config, ledger) -> None``
    Undo ``add``. The default replays the ledger; override to also tidy shared structures
    (call ``super().remove`` or ``ledger.undo()``).

``merge(model, arch, name, config) -> None`` / ``unmerge(...)``
    Fold the adapter into the base weights and back. The default raises ``ConfigError`` (the
    family cannot be merged).

Handlers are stateless singletons; anything shared between adapters goes into
``AdapterState.shared[<family>]``.

Handlers are generic over their family's root config class (``class LoRAHandler(
MethodHandler[LoRAConfig])``), so the type checker sees the fields they read.

The handler table is derived from the method families (``MethodFamily.handler``, a
``"module:Class"`` reference): :data:`HANDLERS` maps each family root class to it. Modules are
imported on first use, so a family whose module is missing or broken fails with a
``ConfigError`` naming it, and importing the backend stays cheap.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Generic, TypeVar

from torch import nn

from adapter_dsl.backend.architectures import ModelSpec
from adapter_dsl.backend.state import Ledger
from adapter_dsl.errors import ConfigError
from adapter_dsl.lazy import resolve
from adapter_dsl.methods.base import AdapterConfig
from adapter_dsl.methods.family import MethodFamily, family_of_class, on_change
from adapter_dsl.registry import method_families

__all__ = [
    "HANDLERS",
    "MethodHandler",
    "capability_of",
    "family_of",
    "get_handler",
    "handler_table",
    "members_of",
    "name_containers",
]

C = TypeVar("C", bound=AdapterConfig)


class MethodHandler(Generic[C]):
    """Base class of method handlers (see the module docstring for the contract)."""

    #: The config ``architecture`` value(s) this handler serves, for messages.
    family: ClassVar[str] = ""

    def check(self, model: nn.Module, arch: ModelSpec, config: C) -> None:
        """Raise ``ConfigError`` when ``config`` cannot be built on ``model``; never mutate."""

    def check_members(self, model: nn.Module, arch: ModelSpec, configs: Sequence[C]) -> None:
        """Raise ``ConfigError`` when several members of this family conflict; never mutate."""

    def check_active(self, model: nn.Module, arch: ModelSpec, names: Sequence[str]) -> None:
        """Raise ``ConfigError`` when these adapters cannot be active together; never mutate."""

    def check_setup(self, model: nn.Module, arch: ModelSpec, setup: Any) -> None:
        """Raise ``ConfigError`` when the active setup (a ``composition.Node`` or ``None``)
        cannot run on this family's modules; never mutate."""

    def needs_row(self, config: C) -> bool:
        """Whether building ``config`` needs the model-type row to offer the family's
        capability (``ModelSpec.supports``); a handler that checks the model itself says no."""
        return True

    def shares_parameters(self, config: C) -> bool:
        """Whether this member keeps parameters under ``shared_parameters.<adapter name>``
        (the reference's layout has room for one such member per adapter)."""
        return False

    def add(self, model: nn.Module, arch: ModelSpec, name: str, config: C, ledger: Ledger) -> None:
        raise NotImplementedError

    def remove(
        self, model: nn.Module, arch: ModelSpec, name: str, config: C, ledger: Ledger
    ) -> None:
        ledger.undo()

    def merge(self, model: nn.Module, arch: ModelSpec, name: str, config: C) -> None:
        raise ConfigError.single(
            f"adapter '{name}' cannot be merged: {self.family or 'this'} adapters have no merged form",
            expected="a LoRA-family adapter (lora, ia3, vera, dora) without gating",
            found=self.family or type(config).__name__,
            code="not_mergeable",
        )

    def unmerge(self, model: nn.Module, arch: ModelSpec, name: str, config: C) -> None:
        raise ConfigError.single(
            f"adapter '{name}' is not merged",
            found=self.family or type(config).__name__,
            code="not_mergeable",
        )


_TABLE: dict[type[AdapterConfig], str] = {}
#: Family root class → "module:Class" of its handler (a live view of the registered families).
HANDLERS: Mapping[type[AdapterConfig], str] = _TABLE
_INSTANCES: dict[str, MethodHandler[Any]] = {}
_CONTAINERS: frozenset[str] = frozenset()


def _rebuild() -> None:
    global _CONTAINERS
    _CONTAINERS = frozenset(c for f in method_families() for c in f.state_containers)
    _TABLE.clear()
    _TABLE.update((f.root, f.handler) for f in method_families() if f.handler is not None)
    for target in set(_INSTANCES) - set(_TABLE.values()):
        del _INSTANCES[target]  # the family is gone: a later one may reuse the module name


def handler_table() -> Mapping[type[AdapterConfig], str]:
    """Family root class → handler reference, for every registered family with a handler."""
    return HANDLERS


def name_containers() -> frozenset[str]:
    """State-dict path segments after which an adapter's name appears (every registered
    family's ``state_containers``)."""
    return _CONTAINERS


def _family(config: AdapterConfig) -> MethodFamily:
    family = family_of_class(type(config))
    if family is None or family.handler is None:
        known = ", ".join(f.architecture for f in method_families() if f.handler is not None)
        raise ConfigError.single(
            f"the adapter backend has no implementation for {type(config).__name__} configs",
            expected="a config of one of the method families " + known,
            found=type(config).__name__,
            code="unsupported_method",
        )
    return family


def family_of(config: AdapterConfig) -> str:
    """The ``architecture`` tag of the config's method family ("bottleneck" for BnConfig)."""
    return _family(config).architecture


def capability_of(config: AdapterConfig) -> str:
    """The model capability (``ModelInterface.families``) the config's family needs."""
    return _family(config).capability


def members_of(config: AdapterConfig) -> tuple[AdapterConfig, ...]:
    """The member configs: the children of a union, else the config itself."""
    return config.members()


def get_handler(config: AdapterConfig) -> MethodHandler[Any]:
    """The handler of the config's method family; ``ConfigError`` if there is none."""
    family = _family(config)
    target = family.handler
    assert target is not None
    handler = _INSTANCES.get(target)
    if handler is not None:
        return handler
    try:
        cls = resolve(target)
    except (ImportError, AttributeError) as exc:
        raise ConfigError.single(
            f"the backend implementation of '{family.architecture}' adapters is not available "
            f"({exc})",
            found=target,
            code="unsupported_method",
        ) from exc
    handler = cls()
    if not isinstance(handler, MethodHandler):
        raise TypeError(f"{target} is not a MethodHandler")
    _INSTANCES[target] = handler
    return handler


_rebuild()
on_change(_rebuild)
