"""Prompt tuning (Lester et al., 2021): learned soft-prompt embeddings before the input."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, ClassVar, Literal

from pydantic import Field

from ..fieldtypes import Bool, EnumDocs, Expect, OptionalSeed, PositiveInt, PositiveNumber
from .base import AdapterConfig
from .family import MethodFamily, PeftConversion, preset, register_family
from .rules import Is, Rule

__all__ = ["PromptTuningConfig"]

OptionalText = Annotated[str | None, Expect("a string, or None")]
PromptInit = Annotated[
    Literal["random_uniform", "from_string"],
    EnumDocs(
        {
            "random_uniform": "Uniform in ±random_uniform_scale.",
            "from_string": "The token embeddings of prompt_init_text (repeated or cut to length).",
        }
    ),
]
Combine = Annotated[
    Literal["prefix", "prefix_after_bos"],
    EnumDocs(
        {
            "prefix": "Prompts before the whole input.",
            "prefix_after_bos": "Prompts right after the first (BOS) token.",
        }
    ),
]


class PromptTuningConfig(AdapterConfig):
    """Soft prompts of ``prompt_length`` embeddings, added right after the embedding layer."""

    # The reference keeps this as an unannotated class attribute, so it cannot be set or
    # saved; we make it a field that appears in to_dict() only when changed.
    # before_embeddings (PEFT's placement) is an extension too.
    _extension_fields: ClassVar[frozenset[str]] = frozenset(
        {"random_uniform_scale", "before_embeddings"}
    )

    architecture: Literal["prompt_tuning"] = "prompt_tuning"
    prompt_length: PositiveInt = Field(10, description="Number of prompt embeddings.")
    prompt_init: PromptInit = Field(
        "random_uniform",
        description="Initialise the prompts uniformly at random or from the embeddings of a text.",
    )
    prompt_init_text: OptionalText = Field(
        None, description="Text whose token embeddings initialise the prompts (from_string)."
    )
    combine: Combine = Field(
        "prefix", description="Put the prompts first, or right after the first (BOS) token."
    )
    init_weights_seed: OptionalSeed = Field(None, description="Seed for the initialisation.")
    random_uniform_scale: PositiveNumber = Field(
        0.5, description="Half-width of the uniform initialisation (random_uniform)."
    )
    before_embeddings: Bool = Field(
        False,
        description="Join the prompts to the token embeddings before the embedding layer adds "
        "positions and norms (PEFT's prompt tuning; then on every model with token "
        "embeddings); the reference joins them after it.",
    )

    _synonyms: ClassVar[Mapping[str, str | tuple[str, str]]] = {
        "num_virtual_tokens": "prompt_length",
        "prompt_tuning_init": (
            "prompt_init",
            "; its 'RANDOM' and 'TEXT' are 'random_uniform' and 'from_string' here",
        ),
        "prompt_tuning_init_text": "prompt_init_text",
    }

    cross_field_rules = (
        Rule(
            when=Is("prompt_init", "from_string"),
            require=~Is("prompt_init_text", None) & ~Is("prompt_init_text", ""),
            field="prompt_init_text",
            message="prompt_init='from_string' needs a prompt_init_text",
            expected="a non-empty string",
            suggestion="set prompt_init_text='Classify the sentiment:'",
        ),
    )


register_family(
    MethodFamily(
        architecture="prompt_tuning",
        root=PromptTuningConfig,
        configs=(PromptTuningConfig,),
        presets=(preset("prompt_tuning", PromptTuningConfig, "Soft prompt embeddings"),),
        title="Prompt tuning",
        handler="adapter_dsl.backend.methods.prompt_tuning:PromptTuningHandler",
        state_containers=frozenset({"prompt_tunings"}),
        peft=PeftConversion(
            reads=(("PROMPT_TUNING", "adapter_dsl.peft.prompts:prompt_from_peft"),),
            writes="adapter_dsl.peft.prompts:prompt_to_peft",
        ),
    )
)
