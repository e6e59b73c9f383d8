"""Method families: each family declares itself once, beside its config classes.

A :class:`MethodFamily` says everything the rest of the package needs to know about a family:
its ``architecture`` tag, root class and public config classes, the identifiers (presets) that
name it, its schema title, the backend handler that builds it (a lazy ``"module:Class"``
reference, so the config layer never imports the backend), the state-dict containers its
modules live in, and the model capability it needs. The family's module ends with one
:func:`register_family` call (as PEFT's ``register_peft_method`` ends each tuner package).

Everything per-family elsewhere is derived from the registered descriptors: the identifier
table (``registry``), the dict loader's family choice (``loading``), the schema variants, the
lazy names of ``adapter_dsl``, the backend's handler table and name containers, and the model
capabilities of ``model_interface``. AdapterFusion configs are another kind (they never join a
union and have identifiers of their own), so they are not a family.

Derived tables follow :data:`BUILTIN_MODULES`' order, then other families in registration order,
whatever order the modules happen to be imported in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError

if TYPE_CHECKING:
    from .base import AdapterConfig

__all__ = [
    "BUILTIN_MODULES",
    "MethodFamily",
    "PeftConversion",
    "Preset",
    "families",
    "family_of_class",
    "on_change",
    "preset",
    "register_family",
    "unregister_family",
]

#: The modules of the built-in families, in the order derived tables list them (the registry
#: imports them; each registers its families when imported).
BUILTIN_MODULES: tuple[str, ...] = (
    "adapter_dsl.methods.bottleneck",
    "adapter_dsl.methods.prefix_tuning",
    "adapter_dsl.methods.prompt_tuning",
    "adapter_dsl.methods.lora",
    "adapter_dsl.methods.reft",
    "adapter_dsl.methods.union",
)


@dataclass(frozen=True)
class Preset:
    """One identifier: the class it builds, the values it sets, and what it is."""

    identifier: str
    cls: type[AdapterConfig]
    values: MappingProxyType[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    summary: str = ""
    deprecated_for: str | None = None  # the identifier to use instead

    @property
    def deprecated(self) -> bool:
        return self.deprecated_for is not None


def preset(
    identifier: str,
    cls: type[AdapterConfig],
    summary: str,
    deprecated_for: str | None = None,
    **values: Any,
) -> Preset:
    """A :class:`Preset` row: ``preset("scaled_par_bn", ParBnConfig, "...", scaling="learned")``."""
    return Preset(identifier, cls, MappingProxyType(values), summary, deprecated_for)


@dataclass(frozen=True)
class PeftConversion:
    """How a family's configs convert to and from PEFT's ``adapter_config.json`` (late-bound
    ``"module:function"`` references into :mod:`adapter_dsl.peft`, resolved on first use)."""

    #: PEFT ``peft_type`` → reader ``(data, peft_type, model_type, num_layers) -> config``.
    reads: tuple[tuple[str, str], ...] = ()
    #: Writer ``(config, model_type, num_layers) -> dict``; None: PEFT cannot express the family.
    writes: str | None = None
    #: The family's configs in a "PEFT cannot express …" message (default: its tag).
    name: str = ""


@dataclass(frozen=True)
class MethodFamily:
    """One method family's declaration (see the module docstring for what is derived from it)."""

    #: The config's ``architecture`` value ("bottleneck" for the configs that write no key).
    architecture: str
    #: The class ``from_dict`` validates a dict of this family against.
    root: type[AdapterConfig]
    #: Public config classes, exported lazily by ``adapter_dsl`` under their class names.
    configs: tuple[type[AdapterConfig], ...] = ()
    #: The identifiers naming this family's configs, in the order ``dumps`` prefers them.
    presets: tuple[Preset, ...] = ()
    #: Title of the family's JSON Schema variant.
    title: str = ""
    #: ``"module:Class"`` of the backend's ``MethodHandler``; None for unions (the backend
    #: builds each member with its own family's handler).
    handler: str | None = None
    #: State-dict path segments after which the adapter's name appears (used for renaming).
    state_containers: frozenset[str] = frozenset()
    #: The model capability (``ModelInterface.families``) the family needs; None: its
    #: ``architecture``. A variant of an existing method names that method's ("lora").
    requires: str | None = None
    #: Whether ``load()`` reads a dict without an ``architecture`` key as this family (the
    #: reference writes bottleneck configs that way).
    untagged: bool = False
    #: Conversion to and from PEFT (:mod:`adapter_dsl.peft`); the default converts nothing.
    peft: PeftConversion = PeftConversion()

    @property
    def capability(self) -> str:
        return self.requires or self.architecture

    @property
    def is_union(self) -> bool:
        """A union of other families' configs (no handler, no schema variant of its own)."""
        return self.handler is None


_REGISTERED: dict[str, MethodFamily] = {}
_LISTENERS: list[Callable[[], None]] = []


def register_family(family: MethodFamily) -> MethodFamily:
    """Register ``family``; its root becomes the family root of its config classes.

    A ``ConfigError`` refuses a second family with the same ``architecture`` or an identifier
    that another family already uses (registering the same descriptor again is a no-op).
    """
    current = _REGISTERED.get(family.architecture)
    if current == family:
        return family
    if current is not None:
        raise ConfigError.single(
            f"a method family '{family.architecture}' is already registered",
            expected="a new architecture tag",
            found=f"{family.root.__name__} (registered: {current.root.__name__})",
            code="duplicate_family",
        )
    taken = {p.identifier for f in _REGISTERED.values() for p in f.presets}
    clash = sorted(taken & {p.identifier for p in family.presets})
    if clash:
        raise ConfigError.single(
            f"identifier '{clash[0]}' is already used by another method family",
            expected="new identifiers",
            found=repr(clash[0]),
            code="duplicate_family",
        )
    family.root._family_root = family.root
    _REGISTERED[family.architecture] = family
    _changed()
    return family


def unregister_family(architecture: str) -> None:
    """Remove a registered family (for tests and plug-ins that unload); unknown tags are a no-op."""
    if _REGISTERED.pop(architecture, None) is not None:
        _changed()


def families() -> tuple[MethodFamily, ...]:
    """The registered families: built-in ones in :data:`BUILTIN_MODULES` order, then the rest
    in registration order."""
    rank = {module: i for i, module in enumerate(BUILTIN_MODULES)}
    seq = {tag: i for i, tag in enumerate(_REGISTERED)}
    return tuple(
        sorted(
            _REGISTERED.values(),
            key=lambda f: (rank.get(f.root.__module__, len(rank)), seq[f.architecture]),
        )
    )


def family_of_class(cls: type[Any]) -> MethodFamily | None:
    """The family whose root ``cls`` is or derives from (the nearest root in its MRO)."""
    roots = {f.root: f for f in _REGISTERED.values()}
    return next((roots[c] for c in cls.__mro__ if c in roots), None)


def iter_presets() -> Iterator[Preset]:
    """Every family's presets, current identifiers first, each group in :func:`families` order."""
    rows = [p for f in families() for p in f.presets]
    yield from (p for p in rows if not p.deprecated)
    yield from (p for p in rows if p.deprecated)


def on_change(listener: Callable[[], None]) -> None:
    """Call ``listener()`` whenever a family is registered or removed (derived tables and
    caches of the layers above rebuild themselves)."""
    _LISTENERS.append(listener)


def _changed() -> None:
    for listener in _LISTENERS:
        listener()
