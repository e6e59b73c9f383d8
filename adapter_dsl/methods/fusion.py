"""AdapterFusion (Pfeiffer et al., 2021): attention over the outputs of several trained adapters.

A fusion config is a config like the others (frozen, validated, ``to_dict()`` exactly as the
reference's), read from its own identifiers, ``dynamic`` (the reference's default) and
``static``: ``dynamic[temperature=True]``. It configures a fusion layer, not an adapter, so it
has no ``architecture`` and never joins a union.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, ClassVar

from pydantic import Field

from ..errors import ConfigError
from ..fieldtypes import Bool, Expect, Probability
from ..lazy import resolve
from .base import AdapterConfig

__all__ = ["AdapterFusionConfig", "DynamicAdapterFusionConfig", "StaticAdapterFusionConfig"]

OptionalProbability = Annotated[
    Probability | None, Expect("a number in [0, 1), or None (the model's attention dropout)")
]


class AdapterFusionConfig(AdapterConfig):
    """Every field of a fusion layer; the presets are :class:`DynamicAdapterFusionConfig`
    (``dynamic``) and :class:`StaticAdapterFusionConfig` (``static``)."""

    architecture: ClassVar[str] = "fusion"

    key: Bool = Field(description="Project the adapter outputs with a learned key matrix.")
    query: Bool = Field(description="Project the query (the hidden state) with a learned matrix.")
    value: Bool = Field(description="Project the adapter outputs with a learned value matrix.")
    query_before_ln: Bool = Field(
        description="Take the query before the model's layer norm instead of after it."
    )
    regularization: Bool = Field(
        description="Add 0.01·‖I − V‖² of every value matrix to the training loss."
    )
    residual_before: Bool = Field(
        description="Add the residual to the adapter outputs before fusing them, not after."
    )
    temperature: Bool = Field(
        description="Start the softmax temperature at 50 and lower it by 0.05 per forward pass "
        "down to 1 (False: a constant 1)."
    )
    value_before_softmax: Bool = Field(
        description="Apply the value matrix to each adapter output before weighting them "
        "(False: to the weighted sum)."
    )
    value_initialized: Bool = Field(
        description="Initialise the value matrix to the identity (1e-6 off the diagonal)."
    )
    dropout_prob: OptionalProbability = Field(
        description="Dropout on the attention scores; None uses the model's "
        "attention_probs_dropout_prob."
    )

    def __or__(self, other: Any) -> Any:
        raise ConfigError.single(
            "a fusion config cannot join a union of adapter configs",
            suggestion="pass it to add_fusion(model, adapters, config)",
            code="union_member",
        )

    @classmethod
    def load(
        cls,
        config: Any = "dynamic",
        download_kwargs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> AdapterFusionConfig:
        """The reference's ``AdapterFusionConfig.load``: an identifier, a config string, a
        dict, a file or a config, with ``kwargs`` set on it (None values included)."""
        load_fusion_config = resolve("adapter_dsl.fusion:load_fusion_config")
        return load_fusion_config(config, **kwargs)


class StaticAdapterFusionConfig(AdapterFusionConfig):
    """Fusion without a value matrix (``static``)."""

    key: Bool = True
    query: Bool = True
    value: Bool = False
    query_before_ln: Bool = False
    regularization: Bool = False
    residual_before: Bool = False
    temperature: Bool = False
    value_before_softmax: Bool = True
    value_initialized: Bool = False
    dropout_prob: OptionalProbability = None


class DynamicAdapterFusionConfig(AdapterFusionConfig):
    """Fusion with an identity-initialised, regularised value matrix (``dynamic``, the default)."""

    key: Bool = True
    query: Bool = True
    value: Bool = True
    query_before_ln: Bool = False
    regularization: Bool = True
    residual_before: Bool = False
    temperature: Bool = False
    value_before_softmax: Bool = True
    value_initialized: Bool = True
    dropout_prob: OptionalProbability = None


AdapterFusionConfig._family_root = AdapterFusionConfig
