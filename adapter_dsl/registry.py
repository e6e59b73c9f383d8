"""The identifier table: every config-string identifier → its class and preset values.

The rows are data declared by each method family beside its config classes (the
``register_family`` call ending ``methods/<family>.py``, see :mod:`adapter_dsl.methods.family`);
this module imports the built-in families and keeps the table current when a family is
registered or removed. Order matters only for printing: ``dumps`` prefers the first
non-deprecated identifier that fits a config best.
"""

from __future__ import annotations

from functools import cache
from types import MappingProxyType

from .errors import ConfigError, did_you_mean
from .methods import bottleneck, lora, prefix_tuning, prompt_tuning, reft, union
from .methods.base import AdapterConfig
from .methods.family import BUILTIN_MODULES, MethodFamily, Preset, families, iter_presets, on_change
from .methods.family import preset as _p
from .methods.fusion import DynamicAdapterFusionConfig, StaticAdapterFusionConfig

__all__ = [
    "DEFAULT_FUSION_IDENTIFIER",
    "DEFAULT_IDENTIFIER",
    "FUSION_IDENTIFIERS",
    "IDENTIFIERS",
    "Preset",
    "config_exports",
    "family",
    "get_preset",
    "method_families",
    "preset_config",
]

# Importing the built-in family modules registered their families (listed in BUILTIN_MODULES
# order, whatever the import order); plain imports keep these edges visible to the layer test.
_BUILTIN = (bottleneck, prefix_tuning, prompt_tuning, lora, reft, union)
assert tuple(m.__name__ for m in _BUILTIN) == BUILTIN_MODULES, "BUILTIN_MODULES is stale"

_TABLE: dict[str, Preset] = {}
#: identifier → preset, for every registered family (a live, read-only view).
IDENTIFIERS: MappingProxyType[str, Preset] = MappingProxyType(_TABLE)
DEFAULT_IDENTIFIER = "seq_bn"
_BY_TAG: dict[str, MethodFamily] = {}
_EXPORTS: dict[str, type[AdapterConfig]] = {}


def _rebuild() -> None:
    _TABLE.clear()
    _TABLE.update((p.identifier, p) for p in iter_presets())
    _BY_TAG.clear()
    _BY_TAG.update((f.architecture, f) for f in families())
    _EXPORTS.clear()
    _EXPORTS.update((cls.__name__, cls) for f in families() for cls in f.configs)
    preset_config.cache_clear()


def method_families() -> tuple[MethodFamily, ...]:
    """The registered method families (unions included), built-in ones first."""
    return tuple(_BY_TAG.values())


def config_exports() -> MappingProxyType[str, type[AdapterConfig]]:
    """Class name → class of every family's public config classes (``adapter_dsl.<Name>``)."""
    return MappingProxyType(_EXPORTS)


def family(architecture: str) -> MethodFamily | None:
    """The family whose configs carry this ``architecture`` value, if one is registered."""
    return _BY_TAG.get(architecture)


# The reference's ADAPTERFUSION_CONFIG_MAP: fusion layers have identifiers of their own.
_FUSION_TABLE: tuple[Preset, ...] = (
    _p("dynamic", DynamicAdapterFusionConfig, "AdapterFusion with a regularised value matrix"),
    _p("static", StaticAdapterFusionConfig, "AdapterFusion without a value matrix"),
)
FUSION_IDENTIFIERS: MappingProxyType[str, Preset] = MappingProxyType(
    {p.identifier: p for p in _FUSION_TABLE}
)
DEFAULT_FUSION_IDENTIFIER = "dynamic"


def get_preset(identifier: str) -> Preset:
    """The preset for an identifier (exact, case-sensitive); a ConfigError suggests the closest."""
    try:
        return IDENTIFIERS[identifier]
    except KeyError:
        suggestion = did_you_mean(identifier, IDENTIFIERS)
        if identifier in FUSION_IDENTIFIERS:
            suggestion = f"{identifier!r} is an AdapterFusion config: use load_fusion_config()"
        raise ConfigError.single(
            f"unknown adapter identifier {identifier!r}",
            expected="one of " + ", ".join(IDENTIFIERS),
            found=repr(identifier),
            suggestion=suggestion,
            code="unknown_identifier",
        ) from None


@cache
def preset_config(identifier: str) -> AdapterConfig:
    """The config an identifier names, with all defaults (cached: configs are immutable)."""
    preset = get_preset(identifier)
    return preset.cls(**preset.values)


_rebuild()
on_change(_rebuild)
