"""Representation fine-tuning (Wu et al., 2024): LoReFT, NoReFT and DiReFT."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import BeforeValidator, Field, WithJsonSchema

from ..fieldtypes import (
    LAYERS_SCHEMA,
    Bool,
    Dtype,
    EnumDocs,
    Expect,
    LayerList,
    NonNegInt,
    OptionalNonLinearity,
    OptionalSeed,
    PositiveInt,
    Probability,
)
from .base import AdapterConfig
from .family import MethodFamily, PeftConversion, preset, register_family
from .rules import Is, Rule

__all__ = ["DiReftConfig", "LoReftConfig", "NoReftConfig", "ReftConfig"]

ReftLayers = Annotated[
    Literal["all"] | LayerList,
    BeforeValidator(lambda v: v if not isinstance(v, str) or v == "all" else _bad_layers(v)),
    Expect("'all' or a list of distinct layer indices ≥ 0"),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "enum": ["all"]},
                LAYERS_SCHEMA,
            ]
        }
    ),
    EnumDocs({"all": "Every layer of the model."}),
]


def _bad_layers(value: str) -> None:
    raise ValueError(f"the string {value!r} is neither 'all' nor a list of layers")


class ReftConfig(AdapterConfig):
    """Low-rank interventions on hidden states at the first and last positions."""

    # The reference keeps subtract_projection as an unannotated class attribute, so a saved
    # DiReFT reloads as NoReFT; we make it a field, emitted by to_dict() only when False.
    _extension_fields: ClassVar[frozenset[str]] = frozenset({"subtract_projection"})

    layers: ReftLayers = Field(description="'all' or the layer indices to intervene on.")
    prefix_positions: NonNegInt = Field(description="Number of leading positions intervened on.")
    suffix_positions: NonNegInt = Field(description="Number of trailing positions intervened on.")
    r: PositiveInt = Field(description="Rank of the intervention.")
    orthogonality: Bool = Field(description="Keep the projection orthogonal (LoReFT).")
    tied_weights: Bool = Field(False, description="Share one unit between prefix and suffix.")
    dropout: Probability = Field(0.05, description="Dropout on the intervened states.")
    non_linearity: OptionalNonLinearity = Field(
        None, description="Activation of the learned source (None: identity)."
    )
    dtype: Dtype = Field(None, description="Torch dtype of the new parameters.")
    architecture: Literal["reft"] = "reft"
    output_reft: Bool = Field(True, description="Intervene on each layer's output.")
    init_weights_seed: OptionalSeed = Field(None, description="Seed for the initialisation.")
    subtract_projection: Bool = Field(
        True, description="Subtract the projected input (False for DiReFT)."
    )

    cross_field_rules = (
        Rule(
            require=~Is("layers", []),
            field="layers",
            message="the intervention is placed nowhere: layers is empty",
            expected="'all' or a non-empty list of layer indices",
        ),
        Rule(
            require=~(Is("prefix_positions", 0) & Is("suffix_positions", 0)),
            field="prefix_positions",
            message="the intervention touches no position: prefix_positions and "
            "suffix_positions are both 0",
            expected="prefix_positions ≥ 1 or suffix_positions ≥ 1",
        ),
    )


class LoReftConfig(ReftConfig):
    """LoReFT: orthogonal low-rank interventions on the first 3 positions of every layer."""

    layers: ReftLayers = "all"
    prefix_positions: NonNegInt = 3
    suffix_positions: NonNegInt = 0
    r: PositiveInt = 1
    orthogonality: Bool = True


class NoReftConfig(LoReftConfig):
    """NoReFT: LoReFT without the orthogonality constraint."""

    orthogonality: Bool = False


class DiReftConfig(NoReftConfig):
    """DiReFT: NoReFT without subtracting the projected input."""

    subtract_projection: Bool = False


register_family(
    MethodFamily(
        architecture="reft",
        root=ReftConfig,
        configs=(DiReftConfig, LoReftConfig, NoReftConfig, ReftConfig),
        presets=(
            preset(
                "loreft", LoReftConfig, "LoReFT: orthogonal low-rank representation intervention"
            ),
            preset("noreft", NoReftConfig, "NoReFT: LoReFT without orthogonality"),
            preset("direft", DiReftConfig, "DiReFT: NoReFT without subtracting the projection"),
        ),
        title="Representation fine-tuning (ReFT)",
        handler="adapter_dsl.backend.methods.reft:ReftHandler",
        state_containers=frozenset({"refts"}),
        peft=PeftConversion(name="ReFT interventions as the reference defines them"),
    )
)
