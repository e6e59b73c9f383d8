"""The toy family's configs: a learned per-layer rescaling of every layer's output.

Importing this module registers the family; nothing else in the package is edited.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from adapter_dsl.fieldtypes import LayerList, PositiveNumber
from adapter_dsl.methods.base import AdapterConfig
from adapter_dsl.methods.family import MethodFamily, preset, register_family


class ScaledResidualConfig(AdapterConfig):
    """Each layer's output h becomes h · (1 + scale · g), with g learned per layer (starts at 1)."""

    architecture: Literal["toy"] = "toy"
    scale: PositiveNumber = Field(0.1, description="How strongly the learned gate rescales.")
    leave_out: LayerList = Field((), description="Layer indices that are not rescaled.")


FAMILY = register_family(
    MethodFamily(
        architecture="toy",
        root=ScaledResidualConfig,
        configs=(ScaledResidualConfig,),
        presets=(
            preset("toy", ScaledResidualConfig, "Toy: learned rescaling of layer outputs"),
            preset("toy_half", ScaledResidualConfig, "Toy at half strength", scale=0.05),
        ),
        title="Scaled residual (toy)",
        handler="tests.toy_family.backend:ScaledResidualHandler",
        state_containers=frozenset({"toy_gates"}),
        requires="reft",  # it needs what ReFT needs: the model's layers and their outputs
    )
)
