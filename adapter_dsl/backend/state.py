"""Per-model bookkeeping: which adapters exist, which are active, what each one changed.

The state lives on the model object (attribute ``STATE_ATTR``), so it travels with the model and
disappears with it. It is *not* an ``nn.Module``, so it never shows up in ``state_dict``.

Every change a handler makes to a model goes through a :class:`Ledger` (one per adapter and
member config). Deleting the adapter replays the ledger backwards, which removes hooks, detaches
added modules and puts wrapped modules back, so the model's modules and outputs are restored
exactly. Handlers may keep structures shared between adapters (e.g. one hook set per bottleneck
location) in ``AdapterState.shared[family]``; they create and clean those up themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from torch import nn
from torch.utils.hooks import RemovableHandle

from adapter_dsl.backend.architectures import ArchitectureSpec
from adapter_dsl.backend.composition import Node

__all__ = ["STATE_ATTR", "AdapterEntry", "AdapterState", "Ledger", "get_state", "peek_state"]

STATE_ATTR = "_adapter_dsl_state"
_MISSING = object()


class Ledger:
    """A LIFO record of the changes made to a model for one adapter member.

    * :meth:`attach` sets ``parent.<attr> = module`` (remembering what was there before).
    * :meth:`add_entry` puts ``module`` into a ``ModuleDict``/``ParameterDict`` under ``key``.
    * :meth:`replace` swaps a submodule for a wrapper (the wrapper is *not* owned: its own
      parameters belong to the model).
    * :meth:`hook` keeps a hook handle; :meth:`on_undo` registers any other reverting callback.

    Modules passed to :meth:`attach`/:meth:`add_entry` with ``owned=True`` (the default) are the
    adapter's own: their parameters are the ones ``train_adapter`` unfreezes, ``save_adapter``
    writes and ``adapter_summary`` counts. Call :meth:`own` for a module placed some other way.
    """

    def __init__(self) -> None:
        self._undo: list[Callable[[], None]] = []
        self._owned: list[nn.Module] = []
        self._frozen: set[int] = set()

    # -- recording changes -------------------------------------------------------------------
    def attach(
        self, parent: nn.Module, attr: str, module: nn.Module, *, owned: bool = True
    ) -> None:
        previous: object = parent._modules.get(attr, _MISSING)
        if previous is _MISSING and hasattr(parent, attr):
            # Never shadow a non-module attribute of the host model.
            raise AttributeError(f"{type(parent).__name__} already has an attribute '{attr}'")
        setattr(parent, attr, module)

        def undo() -> None:
            if previous is _MISSING:
                delattr(parent, attr)
            else:
                parent._modules[attr] = previous  # type: ignore[assignment]

        self._undo.append(undo)
        if owned:
            self._owned.append(module)

    def add_entry(
        self, container: nn.ModuleDict, key: str, module: nn.Module, *, owned: bool = True
    ) -> None:
        if key in container:
            raise KeyError(f"'{key}' is already present")
        container[key] = module

        def undo() -> None:
            container.pop(key)

        self._undo.append(undo)
        if owned:
            self._owned.append(module)

    def replace(self, parent: nn.Module, attr: str, wrapper: nn.Module) -> nn.Module:
        """Swap ``parent.<attr>`` for ``wrapper``; returns the original (restored on undo)."""
        original = parent._modules[attr]
        assert original is not None
        setattr(parent, attr, wrapper)
        self._undo.append(lambda: setattr(parent, attr, original))
        return original

    def hook(self, handle: RemovableHandle) -> None:
        self._undo.append(handle.remove)

    def on_undo(self, fn: Callable[[], None]) -> None:
        self._undo.append(fn)

    def own(self, module: nn.Module) -> None:
        self._owned.append(module)

    def keep_frozen(self, param: nn.Parameter) -> None:
        """An owned parameter that ``train_adapter`` must leave frozen (e.g. ``learn_phm=False``)."""
        self._frozen.add(id(param))

    def is_frozen(self, param: nn.Parameter) -> bool:
        return id(param) in self._frozen

    # -- reading ---------------------------------------------------------------------------
    @property
    def owned_modules(self) -> tuple[nn.Module, ...]:
        return tuple(self._owned)

    def parameters(self) -> Iterator[nn.Parameter]:
        seen: set[int] = set()
        for module in self._owned:
            for p in module.parameters():
                if id(p) not in seen:
                    seen.add(id(p))
                    yield p

    # -- reverting ---------------------------------------------------------------------------
    def undo(self) -> None:
        """Revert every recorded change, newest first. Idempotent."""
        while self._undo:
            self._undo.pop()()
        self._owned.clear()


@dataclass
class AdapterEntry:
    """One named adapter: its validated config and, per member config, the family and ledger.

    A single config has one member; a union has one per child, in order.
    """

    name: str
    config: Any
    members: list[tuple[str, Any, Ledger]] = field(default_factory=list)
    merged: bool = False

    def owned_modules(self) -> tuple[nn.Module, ...]:
        return tuple(m for _, _, ledger in self.members for m in ledger.owned_modules)

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Owned parameters minus those a handler asked to keep frozen."""
        frozen = {
            id(p)
            for _, _, ledger in self.members
            for p in ledger.parameters()
            if ledger.is_frozen(p)
        }
        return [p for p in self.parameters() if id(p) not in frozen]

    def parameters(self) -> list[nn.Parameter]:
        seen: set[int] = set()
        out: list[nn.Parameter] = []
        for _, _, ledger in self.members:
            for p in ledger.parameters():
                if id(p) not in seen:
                    seen.add(id(p))
                    out.append(p)
        return out

    @property
    def families(self) -> tuple[str, ...]:
        return tuple(family for family, _, _ in self.members)


@dataclass
class AdapterState:
    """Adapters of one model, the active setup, and handler-owned shared structures.

    ``active`` is an ordered tuple of adapter names (several names compose as a stack, in order);
    handlers read it at forward time via :meth:`active_members`. ``setup`` is the active
    composition (a ``composition.Node``) whose names are ``active``; sites that compose read it
    through :meth:`active_setup`. ``fusions`` maps a fusion name to its entry
    (``methods/fusion.py``); ``context`` is the forward context while a forward pass runs.
    """

    arch: ArchitectureSpec
    adapters: dict[str, AdapterEntry] = field(default_factory=dict)
    active: tuple[str, ...] = ()
    shared: dict[str, Any] = field(default_factory=dict)
    setup: Any = None
    fusions: dict[str, Any] = field(default_factory=dict)
    context: Any = None

    def is_active(self, name: str) -> bool:
        return name in self.active

    def active_setup(self) -> Any:
        """The active composition ``Node``: ``setup`` while it still names exactly ``active``
        (operations that drop a name from ``active`` make it a plain ``Stack``), else a
        ``Stack`` of ``active``, or ``None`` when nothing is active."""
        if not self.active:
            return None
        if self.setup is not None and self.setup.names() == self.active:
            return self.setup
        return Node("Stack", self.active)

    def active_members(self, family: str) -> list[tuple[str, Any]]:
        """``(adapter name, member config)`` of active adapters in ``family``, in active order."""
        out: list[tuple[str, Any]] = []
        for name in self.active:
            entry = self.adapters.get(name)
            if entry is None:
                continue
            out.extend((name, cfg) for fam, cfg, _ in entry.members if fam == family)
        return out


def peek_state(model: nn.Module) -> AdapterState | None:
    """The model's state, or ``None`` when no adapter was ever added."""
    state = model.__dict__.get(STATE_ATTR)
    return state if isinstance(state, AdapterState) else None


def get_state(model: nn.Module, arch: ArchitectureSpec) -> AdapterState:
    """The model's state, created on first use."""
    state = peek_state(model)
    if state is None:
        state = AdapterState(arch=arch)
        # Plain attribute (not a module/parameter/buffer): invisible to state_dict and .to().
        model.__dict__[STATE_ATTR] = state
    return state


def drop_state_if_empty(model: nn.Module) -> None:
    state = peek_state(model)
    if state is not None and not state.adapters and not state.shared and not state.fusions:
        del model.__dict__[STATE_ATTR]
