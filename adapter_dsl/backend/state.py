"""Per-model bookkeeping: which adapters exist, which are active, what each one changed.

The state lives on the model object (attribute ``STATE_ATTR``), so it travels with the model and
disappears with it. It is *not* an ``nn.Module``, so it never shows up in ``state_dict``.

Every change a handler makes to a model goes through a :class:`Ledger` (one per adapter and
member config). Deleting the adapter replays the ledger backwards, which removes hooks, detaches
added modules and puts wrapped modules back, so the model's modules and outputs are restored
exactly. Undo steps are data (a module-level function and the objects it acts on), never
closures: ``copy.deepcopy(model)`` then rebinds every step to the copy's own modules, so a copy
is independent of its original, and ``torch.save(model)`` can pickle the whole adapted model. Handlers may keep structures shared between adapters (e.g. one hook set per bottleneck
location) in ``AdapterState.shared[family]``; they create and clean those up themselves.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from adapter_dsl.backend.architectures import ModelSpec
from adapter_dsl.backend.composition import Node
from adapter_dsl.errors import ConfigError, did_you_mean

__all__ = [
    "PRETRAINED_KEY",
    "STATE_ATTR",
    "AdapterEntry",
    "AdapterState",
    "Ledger",
    "SavePretrained",
    "adapter_state_dict",
    "get_state",
    "peek_state",
    "require_adapter",
]

STATE_ATTR = "_adapter_dsl_state"
#: The model-config key under which ``save_pretrained`` carries the adapters (see SavePretrained).
PRETRAINED_KEY = "adapter_dsl"


class _Missing:
    """Marks "no module was there before" in an undo step (a class, so that it pickles)."""

    def __reduce__(self) -> str:
        return "_MISSING"


_MISSING = _Missing()


def _check_step(fn: Callable[..., None]) -> None:
    """Refuse closures and lambdas: they can be neither pickled nor rebound by a deep copy."""
    target = fn.func if isinstance(fn, functools.partial) else fn
    qualname = getattr(target, "__qualname__", "")
    if "<locals>" in qualname or "<lambda>" in qualname:
        raise TypeError(
            f"undo step {qualname} is a local function; pass a module-level function and its "
            "arguments (on_undo(fn, *args)) so that copies and pickles of the model rebind it"
        )


def _detach(parent: nn.Module, attr: str, previous: object) -> None:
    if previous is _MISSING:
        delattr(parent, attr)
    else:
        parent._modules[attr] = previous  # type: ignore[assignment]


def _pop_entry(container: nn.ModuleDict | nn.ParameterDict, key: str) -> None:
    container.pop(key)


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
        self._undo: list[tuple[Callable[..., None], tuple[Any, ...]]] = []
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
        self._undo.append((_detach, (parent, attr, previous)))
        if owned:
            self._owned.append(module)

    def add_entry(
        self, container: nn.ModuleDict, key: str, module: nn.Module, *, owned: bool = True
    ) -> None:
        if key in container:
            raise KeyError(f"'{key}' is already present")
        container[key] = module
        self._undo.append((_pop_entry, (container, key)))
        if owned:
            self._owned.append(module)

    def replace(self, parent: nn.Module, attr: str, wrapper: nn.Module) -> nn.Module:
        """Swap ``parent.<attr>`` for ``wrapper``; returns the original (restored on undo)."""
        original = parent._modules[attr]
        assert original is not None
        setattr(parent, attr, wrapper)
        self._undo.append((setattr, (parent, attr, original)))
        return original

    def hook(self, handle: RemovableHandle) -> None:
        self._undo.append((RemovableHandle.remove, (handle,)))

    def on_undo(self, fn: Callable[..., None], *args: Any) -> None:
        """Call ``fn(*args)`` on undo; ``fn`` is a module-level function (or a ``partial`` of
        one), never a closure, so that the step follows the model into copies and pickles."""
        _check_step(fn)
        self._undo.append((fn, args))

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
            fn, args = self._undo.pop()
            fn(*args)
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

    arch: ModelSpec
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


class SavePretrained:
    """``model.save_pretrained`` of an adapted Hugging Face model (installed on the instance).

    The adapters' tensors are part of the state dict, so transformers writes them with the
    model; this adds their configs and the active setup to ``config.json`` under
    :data:`PRETRAINED_KEY`, which :func:`adapter_dsl.backend.pretrained.from_pretrained` reads to
    rebuild them (the reference stores its adapters in the model config, too). A merged adapter
    is saved as what it is then, part of the weights: neither its own tensors nor its config
    are written.
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    def __call__(self, save_directory: Any, *args: Any, **kwargs: Any) -> Any:
        model = self.model
        save = type(model).save_pretrained.__get__(model)  # type: ignore[attr-defined]
        state = peek_state(model)
        if state is None:
            return save(save_directory, *args, **kwargs)
        carried = {n: e for n, e in state.adapters.items() if not e.merged}
        merged = [e for e in state.adapters.values() if e.merged]
        if merged and "state_dict" not in kwargs:
            owned = {id(m) for e in merged for m in e.owned_modules()}
            dropped = {
                f"{qual}.{key}" if qual else key
                for qual, module in model.named_modules()
                if id(module) in owned
                for key in module.state_dict()
            }
            full = model.state_dict()
            kwargs["state_dict"] = {k: v for k, v in full.items() if k not in dropped}
        config = model.config
        previous = config.__dict__.get(PRETRAINED_KEY, _MISSING)
        setattr(
            config,
            PRETRAINED_KEY,
            {
                "format_version": 1,
                "adapters": {n: e.config.to_dict() for n, e in carried.items()},
                "active": [n for n in state.active if n in carried],
            },
        )
        try:
            return save(save_directory, *args, **kwargs)
        finally:
            if previous is _MISSING:
                delattr(config, PRETRAINED_KEY)
            else:
                setattr(config, PRETRAINED_KEY, previous)


def peek_state(model: nn.Module) -> AdapterState | None:
    """The model's state, or ``None`` when no adapter was ever added."""
    state = model.__dict__.get(STATE_ATTR)
    return state if isinstance(state, AdapterState) else None


def get_state(model: nn.Module, arch: ModelSpec) -> AdapterState:
    """The model's state, created on first use."""
    state = peek_state(model)
    if state is None:
        state = AdapterState(arch=arch)
        # Plain attribute (not a module/parameter/buffer): invisible to state_dict and .to().
        model.__dict__[STATE_ATTR] = state
        if callable(getattr(type(model), "save_pretrained", None)):
            model.__dict__["save_pretrained"] = SavePretrained(model)
    return state


def drop_state_if_empty(model: nn.Module) -> None:
    state = peek_state(model)
    if state is not None and not state.adapters and not state.shared and not state.fusions:
        del model.__dict__[STATE_ATTR]
        if isinstance(model.__dict__.get("save_pretrained"), SavePretrained):
            del model.__dict__["save_pretrained"]


def require_adapter(model: nn.Module, name: str) -> tuple[AdapterState, AdapterEntry]:
    """The model's state and the entry of adapter ``name``; a ``ConfigError`` naming the
    adapters the model has (and the closest one) when there is no such adapter."""
    state = peek_state(model)
    known = list(state.adapters) if state is not None else []
    if state is None or name not in state.adapters:
        raise ConfigError.single(
            f"the model has no adapter named '{name}'",
            expected="one of " + ", ".join(repr(k) for k in known) if known else "an added adapter",
            found=repr(name),
            suggestion=did_you_mean(name, known),
            code="unknown_adapter",
        )
    return state, state.adapters[name]


def _qualified_names(model: nn.Module) -> dict[int, str]:
    names: dict[int, str] = {}
    for qual, module in model.named_modules(remove_duplicate=False):
        names.setdefault(id(module), qual)
    return names


def adapter_state_dict(model: nn.Module, entry: AdapterEntry) -> dict[str, Tensor]:
    """The adapter's own tensors, keyed as in ``model.state_dict()``."""
    names = _qualified_names(model)
    out: dict[str, Tensor] = {}
    for module in entry.owned_modules():
        qual = names.get(id(module))
        if qual is None:
            continue
        prefix = f"{qual}." if qual else ""
        for key, tensor in module.state_dict(prefix=prefix, keep_vars=True).items():
            out.setdefault(key, tensor)
    return out
