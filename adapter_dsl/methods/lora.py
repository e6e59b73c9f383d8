"""The LoRA family: LoRA, IA³ ("scale" composition), VeRA, DoRA, DVoRA and MTL-LoRA."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, ClassVar, Literal

from pydantic import Field

from ..fieldtypes import (
    AttnMatrices,
    Bool,
    Dtype,
    EnumDocs,
    Expect,
    InputScaledLocations,
    LayerList,
    OptionalFloat,
    OptionalSeed,
    PositiveInt,
    PositiveNumber,
    Probability,
)
from .base import AdapterConfig
from .family import MethodFamily, PeftConversion, preset, register_family
from .rules import Has, Is, Rule

__all__ = [
    "DoRAConfig",
    "DvoRAConfig",
    "IA3Config",
    "LoRAConfig",
    "MTLLoRAConfig",
    "VeraConfig",
]

CompositionMode = Annotated[
    Literal["add", "scale"],
    Expect("'add' or 'scale'"),
    EnumDocs(
        {
            "add": "Add a low-rank update scaled by alpha/r (LoRA, VeRA, DoRA).",
            "scale": "Multiply the output by a learned vector (IA³); needs r = 1.",
        }
    ),
]
LoRAInit = Annotated[
    Literal["lora", "bert", "ia3", "vera"],
    Expect("one of 'lora', 'bert', 'ia3', 'vera'"),
    EnumDocs(
        {
            "lora": "A Kaiming-uniform, B zero: the update starts at zero.",
            "bert": "A and B ~ N(0, 0.02).",
            "ia3": "Ones: IA³ scaling vectors start as the identity.",
            "vera": "Kaiming-uniform shared random matrices (VeRA).",
        }
    ),
]
TaskMatrixType = Annotated[
    Literal["singular_values", "linear"],
    EnumDocs(
        {
            "singular_values": "A learned diagonal per task.",
            "linear": "A learned full matrix per task.",
        }
    ),
]

_SCALE = Is("composition_mode", "scale")  # IA³
_VERA = ~Is("vera_d", None) | ~Is("vera_b", None)
#: input_scaling location → the flag that places the adapter there.
_INPUT_FLAGS = {
    "attn_output": "attn_output_lora",
    "intermediate": "intermediate_lora",
    "output": "output_lora",
    "gate": "gate_lora",
}


class LoRAConfig(AdapterConfig):
    """Low-rank adaptation of linear layers (Hu et al., 2021): ``W + (alpha/r)·BA``.

    ``attn_output_lora``, ``gate_lora`` and ``input_scaling`` extend the reference's locations
    so that a config can say what PEFT says (``o_proj``/``gate_proj`` targets, IA³'s
    ``feedforward_modules``); they enter ``to_dict()`` only when set.
    """

    architecture: Literal["lora"] = "lora"
    selfattn_lora: Bool = Field(True, description="Adapt the attention q/k/v matrices.")
    intermediate_lora: Bool = Field(
        False, description="Adapt the feed-forward up projection (intermediate layer)."
    )
    output_lora: Bool = Field(
        False, description="Adapt the feed-forward down projection (output layer)."
    )
    leave_out: LayerList = Field((), description="Layer indices that get no LoRA modules.")
    r: PositiveInt = Field(8, description="Rank of the update matrices.", examples=[8, 16])
    alpha: PositiveNumber = Field(
        8, description="Scaling numerator: the update is scaled by alpha/r (IA³: by alpha)."
    )
    dropout: Probability = Field(0.0, description="Dropout on the LoRA input.")
    attn_matrices: AttnMatrices = Field(
        ("q", "v"), description="Attention matrices to adapt: any of 'q', 'k', 'v'."
    )
    composition_mode: CompositionMode = Field(
        "add", description="'add' a low-rank update (LoRA) or 'scale' the output (IA³)."
    )
    init_weights: LoRAInit = Field("lora", description="Initialisation of the new matrices.")
    init_weights_seed: OptionalSeed = Field(
        None, description="Seed for initialising every module identically."
    )
    use_gating: Bool = Field(
        False, description="Learn a gate on the update (UniPELT); replaces the alpha scaling."
    )
    use_dora: Bool = Field(False, description="Weight-decomposed LoRA (DoRA).")
    vera_d: OptionalFloat = Field(
        None, description="VeRA: initial value of the scaling vector d (a number selects VeRA)."
    )
    vera_b: OptionalFloat = Field(
        None, description="VeRA: initial value of the scaling vector b (a number selects VeRA)."
    )
    dtype: Dtype = Field(None, description="Torch dtype of the new parameters.")
    # Extensions (not in the reference): absent from to_dict() at their defaults.
    attn_output_lora: Bool = Field(
        False,
        description="Adapt the attention output projection (o_proj, out_proj, "
        "attention.output.dense), which the reference never adapts.",
    )
    gate_lora: Bool = Field(
        False,
        description="Adapt the feed-forward gate projection where the model has one "
        "(gate_proj of LLaMA-family models, wi_0 of gated T5).",
    )
    input_scaling: InputScaledLocations = Field(
        (),
        description="IA³: locations whose input is scaled instead of their output (PEFT's "
        "feedforward_modules); each must be adapted.",
    )

    _extension_fields: ClassVar[frozenset[str]] = frozenset(
        {"attn_output_lora", "gate_lora", "input_scaling"}
    )
    _synonyms: ClassVar[Mapping[str, str | tuple[str, str]]] = {
        "rank": "r",
        "lora_r": "r",
        "lora_alpha": "alpha",
        "lora_dropout": "dropout",
        "init_lora_weights": "init_weights",
        "target_modules": (
            "attn_matrices",
            "; here attn_matrices with selfattn_lora, intermediate_lora and output_lora choose "
            "the modules",
        ),
        "layers_to_transform": ("leave_out", "; leave_out lists the layers left without LoRA"),
        "feedforward_modules": (
            "input_scaling",
            "; input_scaling lists the locations whose input IA³ scales",
        ),
    }

    cross_field_rules = (
        Rule(
            when=_SCALE,
            require=Is("r", 1),
            field="r",
            message="composition_mode='scale' (IA³) learns one vector per module, so r must be "
            "1, found {r}",
            expected="r=1 with composition_mode='scale'",
            suggestion="drop r, or use composition_mode='add'",
        ),
        Rule(
            when=_SCALE,
            require=Is("use_dora", False),
            field="use_dora",
            message="use_dora=True needs composition_mode='add'",
            expected="composition_mode='add' with use_dora=True",
        ),
        Rule(
            when=_SCALE,
            require=~Is("init_weights", "vera"),
            field="init_weights",
            message="init_weights='vera' cannot initialise an IA³ (composition_mode='scale') "
            "module",
            expected="'ia3', 'bert' or 'lora' with composition_mode='scale'",
        ),
        Rule(
            when=_SCALE,
            require=Is("dropout", 0),
            field="dropout",
            message="IA³ (composition_mode='scale') does not support dropout",
            expected="dropout=0.0",
        ),
        # VeRA needs both numbers; at most one of these two fires (at the missing one).
        Rule(
            when=~Is("vera_d", None),
            require=~Is("vera_b", None),
            field="vera_b",
            message="VeRA needs both vera_d and vera_b as numbers",
            expected="a number",
            suggestion="set vera_b=0.0",
        ),
        Rule(
            when=~Is("vera_b", None),
            require=~Is("vera_d", None),
            field="vera_d",
            message="VeRA needs both vera_d and vera_b as numbers",
            expected="a number",
            suggestion="set vera_d=0.1",
        ),
        Rule(
            when=_VERA,
            require=Is("composition_mode", "add"),
            field="composition_mode",
            message="VeRA (vera_d/vera_b) needs composition_mode='add'",
            expected="'add'",
        ),
        Rule(
            require=Is("selfattn_lora", True)
            | Is("intermediate_lora", True)
            | Is("output_lora", True)
            | Is("attn_output_lora", True)
            | Is("gate_lora", True),
            field="selfattn_lora",
            message="the adapter is placed nowhere: selfattn_lora, intermediate_lora and "
            "output_lora are all off",
            expected="at least one location",
            suggestion="set selfattn_lora=True",
        ),
        Rule(
            when=~Is("input_scaling", []),
            require=_SCALE,
            field="input_scaling",
            message="input_scaling needs IA³ (composition_mode='scale'), found "
            "composition_mode={composition_mode!r}",
            expected="composition_mode='scale' with input_scaling",
            suggestion="use ia3[...], or drop input_scaling",
        ),
        *(
            Rule(
                when=Has("input_scaling", location),
                require=Is(flag, True),
                field="input_scaling",
                message=f"input_scaling lists '{location}', which the adapter does not "
                f"adapt ({flag} is off)",
                expected=f"{flag}=True with '{location}' in input_scaling",
                suggestion=f"set {flag}=True",
            )
            for location, flag in _INPUT_FLAGS.items()
        ),
    )


class IA3Config(LoRAConfig):
    """IA³ (Liu et al., 2022): learned vectors that rescale keys, values and the FFN."""

    intermediate_lora: Bool = True
    r: PositiveInt = 1
    alpha: PositiveNumber = 1
    attn_matrices: AttnMatrices = ("k", "v")
    composition_mode: CompositionMode = "scale"
    init_weights: LoRAInit = "ia3"


class VeraConfig(LoRAConfig):
    """VeRA (Kopiczko et al., 2024): frozen shared random matrices with learned scalings."""

    init_weights: LoRAInit = "vera"
    vera_d: OptionalFloat = 0.1
    vera_b: OptionalFloat = 0.0


class DoRAConfig(LoRAConfig):
    """DoRA (Liu et al., 2024): LoRA with a learned magnitude per output row."""

    use_dora: Bool = True


class DvoRAConfig(VeraConfig):
    """DVoRA: VeRA with DoRA's magnitude decomposition."""

    use_dora: Bool = True


class MTLLoRAConfig(LoRAConfig):
    """MTL-LoRA (Yang et al., 2024): task-specific transforms and several up projections."""

    architecture: Literal["mtl_lora"] = "mtl_lora"  # type: ignore[assignment]
    n_up_projection: PositiveInt = Field(1, description="Number of shared up projections.")
    task_specific_matrix_type: TaskMatrixType = Field(
        "singular_values", description="Form of the task-specific matrix."
    )
    weights_sharpness: PositiveNumber = Field(
        0.05, description="Temperature of the softmax over up-projection weights."
    )

    cross_field_rules = (
        *LoRAConfig.cross_field_rules,
        # The reference accepts the flag, then fails adding every such adapter (KeyError 'w_o').
        Rule(
            require=Is("use_dora", False),
            field="use_dora",
            message="MTL-LoRA has no DoRA variant (use_dora=True)",
            expected="use_dora=False with mtl_lora",
            suggestion="drop use_dora, or use dora[...]",
        ),
    )


register_family(
    MethodFamily(
        architecture="lora",
        root=LoRAConfig,
        configs=(DoRAConfig, DvoRAConfig, IA3Config, LoRAConfig, VeraConfig),
        presets=(
            preset("lora", LoRAConfig, "Low-rank adaptation of q and v"),
            preset("ia3", IA3Config, "IA³: learned rescaling of k, v and the FFN"),
            preset("vera", VeraConfig, "VeRA: shared frozen random matrices, learned scalings"),
            preset("dora", DoRAConfig, "DoRA: LoRA with learned magnitudes"),
            preset("dvora", DvoRAConfig, "DVoRA: VeRA with learned magnitudes"),
        ),
        title="LoRA family",
        handler="adapter_dsl.backend.methods.lora:LoRAHandler",
        # "shared_parameters": VeRA's frozen random matrices.
        state_containers=frozenset({"loras", "shared_parameters"}),
        peft=PeftConversion(
            reads=(
                ("LORA", "adapter_dsl.peft.lora:lora_from_peft"),
                ("IA3", "adapter_dsl.peft.lora:lora_from_peft"),
            ),
            writes="adapter_dsl.peft.lora:lora_to_peft",
        ),
    )
)
register_family(
    MethodFamily(
        architecture="mtl_lora",
        root=MTLLoRAConfig,
        configs=(MTLLoRAConfig,),
        presets=(preset("mtl_lora", MTLLoRAConfig, "MTL-LoRA: multi-task LoRA"),),
        title="MTL-LoRA",
        handler="adapter_dsl.backend.methods.lora:MTLLoRAHandler",
        state_containers=frozenset({"loras"}),
        peft=PeftConversion(name="MTL-LoRA (task-specific matrices and several up projections)"),
    )
)
