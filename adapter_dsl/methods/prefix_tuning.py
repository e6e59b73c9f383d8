"""Prefix tuning (Li & Liang, 2021): learned key/value prefixes in every attention layer."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar, Literal

from pydantic import Field

from ..fieldtypes import Bool, LayerList, NonLinearity, OptionalSeed, PositiveInt, Probability
from .base import AdapterConfig
from .family import MethodFamily, PeftConversion, preset, register_family

__all__ = ["PrefixTuningConfig"]


class PrefixTuningConfig(AdapterConfig):
    """Prefixes prepended to the keys and values of attention, optionally MLP-reparametrised."""

    architecture: Literal["prefix_tuning"] = "prefix_tuning"
    encoder_prefix: Bool = Field(True, description="Add prefixes to encoder self-attention.")
    cross_prefix: Bool = Field(True, description="Add prefixes to decoder cross-attention.")
    leave_out: LayerList = Field((), description="Layer indices that get no prefix.")
    flat: Bool = Field(False, description="Train the prefixes directly instead of through an MLP.")
    prefix_length: PositiveInt = Field(30, description="Number of prefix positions.", examples=[30])
    bottleneck_size: PositiveInt = Field(
        512, description="Hidden width of the reparametrising MLP.", examples=[512, 800]
    )
    non_linearity: NonLinearity = Field("tanh", description="Activation of the MLP.")
    dropout: Probability = Field(0.0, description="Dropout on the generated prefixes.")
    use_gating: Bool = Field(False, description="Learn a gate on the prefixes (UniPELT).")
    shared_gating: Bool = Field(True, description="One gate for keys and values (False: one each).")
    init_weights_seed: OptionalSeed = Field(
        None, description="Seed for initialising the prefix modules."
    )
    # An extension (not in the reference): absent from to_dict() at its default.
    shift_positions: Bool = Field(
        False,
        description="Number the inputs' positions from prefix_length, as PEFT's prefix tuning "
        "does (its prefixes are a key/value cache); the reference numbers them from 0.",
    )

    _extension_fields: ClassVar[frozenset[str]] = frozenset({"shift_positions"})
    _synonyms: ClassVar[Mapping[str, str | tuple[str, str]]] = {
        "num_virtual_tokens": "prefix_length",
        "encoder_hidden_size": "bottleneck_size",
        "prefix_projection": ("flat", "; flat=True is prefix_projection=False"),
    }


register_family(
    MethodFamily(
        architecture="prefix_tuning",
        root=PrefixTuningConfig,
        configs=(PrefixTuningConfig,),
        presets=(
            preset(
                "prefix_tuning", PrefixTuningConfig, "Prefix tuning with an MLP reparametrisation"
            ),
            preset(
                "prefix_tuning_flat",
                PrefixTuningConfig,
                "Prefix tuning, prefixes trained directly",
                flat=True,
            ),
        ),
        title="Prefix tuning",
        handler="adapter_dsl.backend.methods.prefix_tuning:PrefixTuningHandler",
        state_containers=frozenset({"prefix_tunings", "prefix_gates"}),
        peft=PeftConversion(
            reads=(("PREFIX_TUNING", "adapter_dsl.peft.prompts:prefix_from_peft"),),
            writes="adapter_dsl.peft.prompts:prefix_to_peft",
        ),
    )
)
