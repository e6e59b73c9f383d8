"""The method-handler protocol and the registry ``config architecture → handler``.

A handler turns one *member* config (a single method config, never a union: the core splits
unions and calls the handler of each child) into modules and hooks on a model.

Contract (all methods receive the model the user passed, the architecture row from
``architectures.ARCHITECTURES`` and the validated config object of that member):

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

The registry is data: ``HANDLERS`` maps a config ``architecture`` value to
``"module:Class"``. Modules are imported on first use, so a family whose module is missing or
broken fails with a ``ConfigError`` naming it, and importing the backend stays cheap.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from torch import nn

from adapter_dsl.backend.architectures import ArchitectureSpec
from adapter_dsl.backend.state import Ledger
from adapter_dsl.errors import ConfigError
from adapter_dsl.lazy import resolve

__all__ = ["HANDLERS", "MethodHandler", "family_of", "get_handler", "members_of"]


class MethodHandler:
    """Base class of method handlers (see the module docstring for the contract)."""

    #: The config ``architecture`` value(s) this handler serves, for messages.
    family: ClassVar[str] = ""

    def check(self, model: nn.Module, arch: ArchitectureSpec, config: Any) -> None:
        """Raise ``ConfigError`` when ``config`` cannot be built on ``model``; never mutate."""

    def check_members(
        self, model: nn.Module, arch: ArchitectureSpec, configs: Sequence[Any]
    ) -> None:
        """Raise ``ConfigError`` when several members of this family conflict; never mutate."""

    def check_active(self, model: nn.Module, arch: ArchitectureSpec, names: Sequence[str]) -> None:
        """Raise ``ConfigError`` when these adapters cannot be active together; never mutate."""

    def check_setup(self, model: nn.Module, arch: ArchitectureSpec, setup: Any) -> None:
        """Raise ``ConfigError`` when the active setup (a ``composition.Node`` or ``None``)
        cannot run on this family's modules; never mutate."""

    def add(
        self, model: nn.Module, arch: ArchitectureSpec, name: str, config: Any, ledger: Ledger
    ) -> None:
        raise NotImplementedError

    def remove(
        self, model: nn.Module, arch: ArchitectureSpec, name: str, config: Any, ledger: Ledger
    ) -> None:
        ledger.undo()

    def merge(self, model: nn.Module, arch: ArchitectureSpec, name: str, config: Any) -> None:
        raise ConfigError.single(
            f"adapter '{name}' cannot be merged: {self.family or 'this'} adapters have no merged form",
            expected="a LoRA-family adapter (lora, ia3, vera, dora) without gating",
            found=self.family or type(config).__name__,
            code="not_mergeable",
        )

    def unmerge(self, model: nn.Module, arch: ArchitectureSpec, name: str, config: Any) -> None:
        raise ConfigError.single(
            f"adapter '{name}' is not merged",
            found=self.family or type(config).__name__,
            code="not_mergeable",
        )


#: config ``architecture`` → "module:Class" of its handler.
HANDLERS: dict[str, str] = {
    "bottleneck": "adapter_dsl.backend.methods.bottleneck:BottleneckHandler",
    "lora": "adapter_dsl.backend.methods.lora:LoRAHandler",
    "mtl_lora": "adapter_dsl.backend.methods.lora:MTLLoRAHandler",
    "prefix_tuning": "adapter_dsl.backend.methods.prefix_tuning:PrefixTuningHandler",
    "prompt_tuning": "adapter_dsl.backend.methods.prompt_tuning:PromptTuningHandler",
    "reft": "adapter_dsl.backend.methods.reft:ReftHandler",
}

_INSTANCES: dict[str, MethodHandler] = {}


def family_of(config: Any) -> str:
    """The config's ``architecture``; bottleneck configs may report ``None`` (reference style)."""
    family = getattr(config, "architecture", None)
    return "bottleneck" if family is None else str(family)


def members_of(config: Any) -> tuple[Any, ...]:
    """The member configs: the children of a union, else the config itself."""
    if family_of(config) == "union":
        return tuple(config.configs)
    return (config,)


def get_handler(family: str) -> MethodHandler:
    """The handler for a config ``architecture`` value; ``ConfigError`` if there is none."""
    handler = _INSTANCES.get(family)
    if handler is not None:
        return handler
    target = HANDLERS.get(family)
    if target is None:
        raise ConfigError.single(
            f"the adapter backend has no implementation for '{family}' configs",
            expected="one of " + ", ".join(sorted(HANDLERS)),
            found=repr(family),
            code="unsupported_method",
        )
    try:
        cls = resolve(target)
    except (ImportError, AttributeError) as exc:
        raise ConfigError.single(
            f"the backend implementation of '{family}' adapters is not available ({exc})",
            found=target,
            code="unsupported_method",
        ) from exc
    handler = cls()
    if not isinstance(handler, MethodHandler):
        raise TypeError(f"{target} is not a MethodHandler")
    _INSTANCES[family] = handler
    return handler
