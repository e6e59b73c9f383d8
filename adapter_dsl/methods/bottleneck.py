"""Bottleneck adapters (sequential, parallel, double), Compacter and invertible-adapter presets.

Fields, defaults and order follow the reference's ``BnConfig`` (its dicts carry no
``architecture`` key). Presets are subclasses that change defaults only.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BeforeValidator, Field, StrictBool, WithJsonSchema, model_validator

from ..fieldtypes import (
    POSITIVE_SCHEMA,
    Bool,
    EnumDocs,
    Expect,
    LayerList,
    NonLinearity,
    OptionalSeed,
    PositiveInt,
    PositiveNumber,
    Probability,
    ReductionFactor,
    RuleViolation,
    Scaling,
    as_number,
    as_positive,
)
from .base import AdapterConfig
from .family import MethodFamily, PeftConversion, preset, register_family
from .rules import Is, Rule

__all__ = [
    "AdapterPlusConfig",
    "BnConfig",
    "CompacterConfig",
    "CompacterPlusPlusConfig",
    "DoubleSeqBnConfig",
    "DoubleSeqBnInvConfig",
    "ParBnConfig",
    "SeqBnConfig",
    "SeqBnInvConfig",
]

InitWeights = Annotated[
    Literal["bert", "mam_adapter", "houlsby"],
    EnumDocs(
        {
            "bert": "Weights ~ N(0, 0.02), biases 0 (BERT initialisation).",
            "mam_adapter": "Kaiming-uniform down projection, zero up projection: the adapter "
            "starts as the identity.",
            "houlsby": "Truncated normal (std 0.01) for both projections (Adapter+).",
        }
    ),
]
ResidualBeforeLn = Annotated[
    StrictBool | Literal["post_add"],
    Expect("True, False or 'post_add'"),
    EnumDocs(
        {
            "post_add": "After the residual addition of the original layer norm (needs "
            "original_ln_before=True).",
        }
    ),
]
InvAdapter = Annotated[
    Literal["nice", "glow"] | None,
    Expect("'nice', 'glow' or None"),
    EnumDocs(
        {
            "nice": "NICE coupling block after the embeddings.",
            "glow": "Glow coupling block after the embeddings.",
            None: "No invertible adapter.",
        }
    ),
]
InvReduction = Annotated[
    int | float | None,
    BeforeValidator(lambda v: v if v is None else as_positive(as_number(v))),
    Expect("a number > 0, or None"),
    WithJsonSchema({"anyOf": [POSITIVE_SCHEMA, {"type": "null"}]}),
]
PhmRuleInit = Annotated[
    Literal["normal", "uniform"],
    EnumDocs({"normal": "Rule matrices ~ normal.", "uniform": "Rule matrices ~ uniform."}),
]
PhmWeightInit = Annotated[
    Literal["phm", "glorot-normal", "glorot-uniform", "normal"],
    EnumDocs(
        {
            "phm": "PHM initialisation of W.",
            "glorot-normal": "Glorot (Xavier) normal initialisation of W.",
            "glorot-uniform": "Glorot (Xavier) uniform initialisation of W.",
            "normal": "Normal initialisation of W.",
        }
    ),
]


class BnConfig(AdapterConfig):
    """A bottleneck adapter: ``up(act(down(x)))`` after attention and/or the feed-forward block."""

    architecture: ClassVar[str] = "bottleneck"

    mh_adapter: Bool = Field(description="Add an adapter after the multi-head attention block.")
    output_adapter: Bool = Field(description="Add an adapter after the feed-forward block.")
    reduction_factor: ReductionFactor = Field(
        description="Hidden size divided by the bottleneck width; a mapping sets it per layer "
        "(keys are layer indices as strings, plus 'default').",
        examples=[16, {"default": 16, "0": 8}],
    )
    non_linearity: NonLinearity = Field(description="Activation inside the bottleneck.")
    original_ln_before: Bool = Field(
        False, description="Apply the model's layer norm (with residual) before the adapter."
    )
    original_ln_after: Bool = Field(
        True, description="Apply the model's layer norm (with residual) after the adapter."
    )
    ln_before: Bool = Field(False, description="Add a new layer norm before the adapter.")
    ln_after: Bool = Field(False, description="Add a new layer norm after the adapter.")
    init_weights: InitWeights = Field(
        "bert",
        description="Initialisation: 'bert' (normal 0.02), 'mam_adapter' (zero up-projection) or 'houlsby'.",
    )
    init_weights_seed: OptionalSeed = Field(
        None, description="Seed for initialising every adapter module identically."
    )
    is_parallel: Bool = Field(False, description="Parallel adapter: input is the sublayer input.")
    scaling: Scaling = Field(
        1.0,
        description="Output scaling: a number, 'learned' (one scalar) or 'channel' (per channel).",
    )
    use_gating: Bool = Field(False, description="Learn a gate on the adapter output (UniPELT).")
    residual_before_ln: ResidualBeforeLn = Field(
        True,
        description="Where the residual is taken: before the layer norm (True), after it (False) "
        "or after the residual addition ('post_add').",
    )
    adapter_residual_before_ln: Bool = Field(
        False, description="Add the adapter's residual before its own ln_after."
    )
    inv_adapter: InvAdapter = Field(
        None, description="Invertible adapter after the embeddings: 'nice', 'glow' or None."
    )
    inv_adapter_reduction_factor: InvReduction = Field(
        None, description="Reduction factor of the invertible adapter (needed with inv_adapter)."
    )
    cross_adapter: Bool = Field(
        False, description="Add an adapter after cross-attention (encoder-decoder models)."
    )
    leave_out: LayerList = Field((), description="Layer indices that get no adapter.")
    dropout: Probability = Field(0.0, description="Dropout on the adapter output.")
    phm_layer: Bool = Field(False, description="Use parameterized hypercomplex layers (Compacter).")
    phm_dim: PositiveInt = Field(4, description="Number of PHM rule matrices (n).")
    factorized_phm_W: Bool = Field(True, description="Factorise the PHM weights W.")
    shared_W_phm: Bool = Field(False, description="Share the PHM weights W across layers.")
    shared_phm_rule: Bool = Field(True, description="Share the PHM rule across layers.")
    factorized_phm_rule: Bool = Field(False, description="Factorise the PHM rule.")
    phm_c_init: PhmRuleInit = Field("normal", description="Initialisation of the PHM rule.")
    phm_init_range: PositiveNumber = Field(
        0.0001, description="Standard deviation of the shared PHM rule initialisation."
    )
    learn_phm: Bool = Field(True, description="Train the PHM rule.")
    hypercomplex_nonlinearity: PhmWeightInit = Field(
        "glorot-uniform", description="Initialisation of the PHM weights."
    )
    phm_rank: PositiveInt = Field(1, description="Rank of the factorised PHM weights.")
    phm_bias: Bool = Field(True, description="Add a bias to PHM layers.")
    stochastic_depth: Probability = Field(
        0.0, description="Stochastic-depth drop rate on the up-projection."
    )

    _legacy_keys: ClassVar[frozenset[str]] = frozenset({"invertible_adapter"})

    @model_validator(mode="before")
    @classmethod
    def _legacy_invertible_key(cls, data: Any) -> Any:
        # Old files store {"invertible_adapter": {"block_type", "reduction_factor"}}; the
        # reference translates it on load, and so do we.
        if isinstance(data, dict) and "invertible_adapter" in data:
            data = dict(data)
            legacy = data.pop("invertible_adapter")
            if legacy is not None:
                if not isinstance(legacy, dict):
                    raise RuleViolation(
                        "invertible_adapter",
                        "the legacy key 'invertible_adapter' must be an object",
                        expected='{"block_type": "nice", "reduction_factor": 2}, or null',
                    )
                # As in the reference, the legacy entry wins over inv_adapter keys.
                data["inv_adapter"] = legacy.get("block_type")
                data["inv_adapter_reduction_factor"] = legacy.get("reduction_factor")
        return data

    cross_field_rules = (
        Rule(
            when=~Is("inv_adapter", None),
            require=~Is("inv_adapter_reduction_factor", None),
            field="inv_adapter_reduction_factor",
            message="inv_adapter={inv_adapter!r} needs a numeric inv_adapter_reduction_factor",
            expected="a number > 0",
            suggestion="set inv_adapter_reduction_factor=2",
        ),
        Rule(
            when=Is("residual_before_ln", "post_add"),
            require=Is("original_ln_before", True),
            field="residual_before_ln",
            message="residual_before_ln='post_add' takes the residual after the original "
            "layer norm's residual addition, which needs original_ln_before=True",
            expected="original_ln_before=True, or residual_before_ln True/False",
        ),
        Rule(
            when=Is("phm_layer", True),
            require=Is("init_weights", "bert"),
            field="init_weights",
            message="init_weights={init_weights!r} cannot initialise PHM layers",
            expected="init_weights='bert' when phm_layer=True",
        ),
        Rule(
            require=Is("mh_adapter", True)
            | Is("output_adapter", True)
            | Is("cross_adapter", True)
            | ~Is("inv_adapter", None),
            field="output_adapter",
            message="the adapter is placed nowhere: mh_adapter, output_adapter, cross_adapter "
            "and inv_adapter are all off",
            expected="at least one location",
            suggestion="set output_adapter=True",
        ),
    )


class SeqBnConfig(BnConfig):
    """Sequential bottleneck adapter after the feed-forward block (Pfeiffer et al., 2020)."""

    mh_adapter: Bool = False
    output_adapter: Bool = True
    reduction_factor: ReductionFactor = 16
    non_linearity: NonLinearity = "relu"
    original_ln_before: Bool = True


class CompacterPlusPlusConfig(SeqBnConfig):
    """Compacter++: a sequential adapter made of PHM layers (Mahabadi et al., 2021)."""

    phm_layer: Bool = True
    reduction_factor: ReductionFactor = 32
    non_linearity: NonLinearity = "gelu"


class SeqBnInvConfig(SeqBnConfig):
    """Sequential adapter plus a NICE invertible adapter after the embeddings."""

    inv_adapter: InvAdapter = "nice"
    inv_adapter_reduction_factor: InvReduction = 2


class DoubleSeqBnConfig(BnConfig):
    """Adapters after attention and after the feed-forward block (Houlsby et al., 2019)."""

    mh_adapter: Bool = True
    output_adapter: Bool = True
    reduction_factor: ReductionFactor = 16
    non_linearity: NonLinearity = "swish"


class CompacterConfig(DoubleSeqBnConfig):
    """Compacter: double adapters made of PHM layers (Mahabadi et al., 2021)."""

    phm_layer: Bool = True
    reduction_factor: ReductionFactor = 32
    non_linearity: NonLinearity = "gelu"


class DoubleSeqBnInvConfig(DoubleSeqBnConfig):
    """Double adapters plus a NICE invertible adapter after the embeddings."""

    inv_adapter: InvAdapter = "nice"
    inv_adapter_reduction_factor: InvReduction = 2


class ParBnConfig(BnConfig):
    """Parallel adapter next to the feed-forward block (He et al., 2021)."""

    mh_adapter: Bool = False
    output_adapter: Bool = True
    reduction_factor: ReductionFactor = 2
    non_linearity: NonLinearity = "relu"
    init_weights: InitWeights = "mam_adapter"
    is_parallel: Bool = True
    scaling: Scaling = 4.0


class AdapterPlusConfig(BnConfig):
    """Adapter+ (Steitz & Roth, 2024): channel scaling, Houlsby init, stochastic depth."""

    mh_adapter: Bool = False
    output_adapter: Bool = True
    reduction_factor: ReductionFactor = 96
    non_linearity: NonLinearity = "gelu"
    original_ln_before: Bool = True
    original_ln_after: Bool = False
    init_weights: InitWeights = "houlsby"
    scaling: Scaling = "channel"
    residual_before_ln: ResidualBeforeLn = False
    stochastic_depth: Probability = 0.1


register_family(
    MethodFamily(
        architecture="bottleneck",
        root=BnConfig,
        configs=(
            AdapterPlusConfig,
            BnConfig,
            CompacterConfig,
            CompacterPlusPlusConfig,
            DoubleSeqBnConfig,
            DoubleSeqBnInvConfig,
            ParBnConfig,
            SeqBnConfig,
            SeqBnInvConfig,
        ),
        # The reference's ADAPTER_CONFIG_MAP (adapters 1.3.0), in its documentation's order.
        presets=(
            preset("seq_bn", SeqBnConfig, "Sequential bottleneck adapter after the FFN (Pfeiffer)"),
            preset(
                "double_seq_bn",
                DoubleSeqBnConfig,
                "Bottleneck adapters after attention and FFN (Houlsby)",
            ),
            preset("par_bn", ParBnConfig, "Parallel bottleneck adapter (He et al.)"),
            preset(
                "scaled_par_bn",
                ParBnConfig,
                "Parallel adapter with learned scaling",
                scaling="learned",
            ),
            preset("seq_bn_inv", SeqBnInvConfig, "seq_bn plus a NICE invertible adapter"),
            preset(
                "double_seq_bn_inv",
                DoubleSeqBnInvConfig,
                "double_seq_bn plus a NICE invertible adapter",
            ),
            preset("compacter", CompacterConfig, "Compacter: double adapters of PHM layers"),
            preset(
                "compacter++",
                CompacterPlusPlusConfig,
                "Compacter++: sequential adapter of PHM layers",
            ),
            preset("pfeiffer", SeqBnConfig, "Deprecated alias of seq_bn", "seq_bn"),
            preset(
                "houlsby", DoubleSeqBnConfig, "Deprecated alias of double_seq_bn", "double_seq_bn"
            ),
            preset("parallel", ParBnConfig, "Deprecated alias of par_bn", "par_bn"),
            preset(
                "scaled_parallel",
                ParBnConfig,
                "Deprecated alias of scaled_par_bn",
                "scaled_par_bn",
                scaling="learned",
            ),
            preset("pfeiffer+inv", SeqBnInvConfig, "Deprecated alias of seq_bn_inv", "seq_bn_inv"),
            preset(
                "houlsby+inv",
                DoubleSeqBnInvConfig,
                "Deprecated alias of double_seq_bn_inv",
                "double_seq_bn_inv",
            ),
        ),
        title="Bottleneck adapter",
        handler="adapter_dsl.backend.methods.bottleneck:BottleneckHandler",
        # "shared_parameters": Compacter's shared PHM rule matrices.
        state_containers=frozenset({"adapters", "invertible_adapters", "shared_parameters"}),
        untagged=True,
        peft=PeftConversion(name="bottleneck adapters as the reference defines them"),
    )
)
