"""The identifier table: every config-string identifier → its class and preset values.

This is data: adding a method means one config class and one row here. Order matters only for
printing: ``dumps`` prefers the first non-deprecated identifier that fits a config best.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from types import MappingProxyType
from typing import Any

from .errors import ConfigError, did_you_mean
from .methods.base import AdapterConfig
from .methods.bottleneck import (
    CompacterConfig,
    CompacterPlusPlusConfig,
    DoubleSeqBnConfig,
    DoubleSeqBnInvConfig,
    ParBnConfig,
    SeqBnConfig,
    SeqBnInvConfig,
)
from .methods.fusion import DynamicAdapterFusionConfig, StaticAdapterFusionConfig
from .methods.lora import DoRAConfig, DvoRAConfig, IA3Config, LoRAConfig, MTLLoRAConfig, VeraConfig
from .methods.prefix_tuning import PrefixTuningConfig
from .methods.prompt_tuning import PromptTuningConfig
from .methods.reft import DiReftConfig, LoReftConfig, NoReftConfig
from .methods.union import MAMConfig, UniPELTConfig

__all__ = [
    "DEFAULT_FUSION_IDENTIFIER",
    "DEFAULT_IDENTIFIER",
    "FUSION_IDENTIFIERS",
    "IDENTIFIERS",
    "Preset",
    "get_preset",
    "preset_config",
]


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


def _p(
    identifier: str,
    cls: type[AdapterConfig],
    summary: str,
    deprecated_for: str | None = None,
    **values: Any,
) -> Preset:
    return Preset(identifier, cls, MappingProxyType(values), summary, deprecated_for)


# The reference's ADAPTER_CONFIG_MAP (adapters 1.3.0), in its documentation's order.
_TABLE: tuple[Preset, ...] = (
    _p("seq_bn", SeqBnConfig, "Sequential bottleneck adapter after the FFN (Pfeiffer)"),
    _p("double_seq_bn", DoubleSeqBnConfig, "Bottleneck adapters after attention and FFN (Houlsby)"),
    _p("par_bn", ParBnConfig, "Parallel bottleneck adapter (He et al.)"),
    _p("scaled_par_bn", ParBnConfig, "Parallel adapter with learned scaling", scaling="learned"),
    _p("seq_bn_inv", SeqBnInvConfig, "seq_bn plus a NICE invertible adapter"),
    _p("double_seq_bn_inv", DoubleSeqBnInvConfig, "double_seq_bn plus a NICE invertible adapter"),
    _p("compacter", CompacterConfig, "Compacter: double adapters of PHM layers"),
    _p("compacter++", CompacterPlusPlusConfig, "Compacter++: sequential adapter of PHM layers"),
    _p("prefix_tuning", PrefixTuningConfig, "Prefix tuning with an MLP reparametrisation"),
    _p(
        "prefix_tuning_flat",
        PrefixTuningConfig,
        "Prefix tuning, prefixes trained directly",
        flat=True,
    ),
    _p("lora", LoRAConfig, "Low-rank adaptation of q and v"),
    _p("ia3", IA3Config, "IA³: learned rescaling of k, v and the FFN"),
    _p("mam", MAMConfig, "Mix-and-Match: prefix tuning (bottleneck 800) + parallel adapter"),
    _p("unipelt", UniPELTConfig, "UniPELT: gated prefix tuning + seq_bn + LoRA"),
    _p("prompt_tuning", PromptTuningConfig, "Soft prompt embeddings"),
    _p("vera", VeraConfig, "VeRA: shared frozen random matrices, learned scalings"),
    _p("dora", DoRAConfig, "DoRA: LoRA with learned magnitudes"),
    _p("dvora", DvoRAConfig, "DVoRA: VeRA with learned magnitudes"),
    _p("mtl_lora", MTLLoRAConfig, "MTL-LoRA: multi-task LoRA"),
    _p("loreft", LoReftConfig, "LoReFT: orthogonal low-rank representation intervention"),
    _p("noreft", NoReftConfig, "NoReFT: LoReFT without orthogonality"),
    _p("direft", DiReftConfig, "DiReFT: NoReFT without subtracting the projection"),
    _p("pfeiffer", SeqBnConfig, "Deprecated alias of seq_bn", "seq_bn"),
    _p("houlsby", DoubleSeqBnConfig, "Deprecated alias of double_seq_bn", "double_seq_bn"),
    _p("parallel", ParBnConfig, "Deprecated alias of par_bn", "par_bn"),
    _p(
        "scaled_parallel",
        ParBnConfig,
        "Deprecated alias of scaled_par_bn",
        "scaled_par_bn",
        scaling="learned",
    ),
    _p("pfeiffer+inv", SeqBnInvConfig, "Deprecated alias of seq_bn_inv", "seq_bn_inv"),
    _p(
        "houlsby+inv",
        DoubleSeqBnInvConfig,
        "Deprecated alias of double_seq_bn_inv",
        "double_seq_bn_inv",
    ),
)

IDENTIFIERS: MappingProxyType[str, Preset] = MappingProxyType({p.identifier: p for p in _TABLE})
DEFAULT_IDENTIFIER = "seq_bn"

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
