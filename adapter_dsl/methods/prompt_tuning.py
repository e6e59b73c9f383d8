"""Prompt tuning (Lester et al., 2021): learned soft-prompt embeddings before the input."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, ClassVar, Literal

from pydantic import Field, model_validator

from ..fieldtypes import Expect, OptionalSeed, PositiveInt, PositiveNumber, RuleViolation
from .base import AdapterConfig, check_rules

__all__ = ["PromptTuningConfig"]

OptionalText = Annotated[str | None, Expect("a string, or None")]


class PromptTuningConfig(AdapterConfig):
    """Soft prompts of ``prompt_length`` embeddings, added right after the embedding layer."""

    # The reference keeps this as an unannotated class attribute, so it cannot be set or
    # saved; we make it a field that appears in to_dict() only when changed.
    _extension_fields: ClassVar[frozenset[str]] = frozenset({"random_uniform_scale"})

    architecture: Literal["prompt_tuning"] = "prompt_tuning"
    prompt_length: PositiveInt = Field(10, description="Number of prompt embeddings.")
    prompt_init: Literal["random_uniform", "from_string"] = Field(
        "random_uniform",
        description="Initialise the prompts uniformly at random or from the embeddings of a text.",
    )
    prompt_init_text: OptionalText = Field(
        None, description="Text whose token embeddings initialise the prompts (from_string)."
    )
    combine: Literal["prefix", "prefix_after_bos"] = Field(
        "prefix", description="Put the prompts first, or right after the first (BOS) token."
    )
    init_weights_seed: OptionalSeed = Field(None, description="Seed for the initialisation.")
    random_uniform_scale: PositiveNumber = Field(
        0.5, description="Half-width of the uniform initialisation (random_uniform)."
    )

    _synonyms: ClassVar[Mapping[str, str | tuple[str, str]]] = {
        "num_virtual_tokens": "prompt_length",
        "prompt_tuning_init": (
            "prompt_init",
            "; its 'RANDOM' and 'TEXT' are 'random_uniform' and 'from_string' here",
        ),
        "prompt_tuning_init_text": "prompt_init_text",
    }

    @model_validator(mode="after")
    def _cross_field_rules(self) -> PromptTuningConfig:
        problems: list[RuleViolation] = []
        if self.prompt_init == "from_string" and not self.prompt_init_text:
            problems.append(
                RuleViolation(
                    "prompt_init_text",
                    "prompt_init='from_string' needs a prompt_init_text",
                    expected="a non-empty string",
                    suggestion="set prompt_init_text='Classify the sentiment:'",
                )
            )
        check_rules(problems)
        return self


PromptTuningConfig._family_root = PromptTuningConfig
