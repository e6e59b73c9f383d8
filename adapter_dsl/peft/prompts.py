"""Prefix- and prompt-tuning configs to PEFT ``PREFIX_TUNING``/``PROMPT_TUNING`` dicts and back.

See :mod:`adapter_dsl.peft` for what maps onto what. The converters take the uniform
arguments of :class:`~adapter_dsl.methods.family.PeftConversion`; prompts and prefixes do not
depend on the model type or its layer counts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import ConfigError, Problem
from ..methods.base import AdapterConfig
from .common import (
    SEED,
    at_peft_key,
    flag,
    number,
    problem,
    raise_problems,
    unknown_keys,
    unsupported_values,
)
from .models import Counts
from .targets import shown

__all__ = ["prefix_from_peft", "prefix_to_peft", "prompt_from_peft", "prompt_to_peft"]


def prefix_to_peft(cfg: Any, model_type: str, num_layers: Counts) -> dict[str, Any]:
    """The PEFT ``PREFIX_TUNING`` dict of a prefix-tuning config."""
    problems = unsupported_values(
        cfg,
        (
            ("encoder_prefix", True, "PEFT puts prefixes on every attention layer"),
            ("cross_prefix", True, "PEFT puts prefixes on every attention layer"),
            ("use_gating", False, "PEFT has no gated prefixes (UniPELT)"),
            ("shared_gating", True, "PEFT has no gated prefixes"),
            ("dropout", 0.0, "PEFT applies no dropout to the prefixes"),
            SEED,
        ),
    )
    if cfg.leave_out:
        problems.append(
            problem(
                "leave_out",
                "PEFT puts prefixes on every layer",
                expected="[]",
                found=repr(list(cfg.leave_out)),
            )
        )
    if not cfg.shift_positions:
        problems.append(
            problem(
                "shift_positions",
                "PEFT hands the prefixes to the model as a key/value cache, so the inputs' "
                "positions start at num_virtual_tokens; this config numbers them from 0 (the "
                "reference's prefix tuning)",
                expected="True",
                found="False",
                suggestion="set shift_positions=True",
            )
        )
    if not cfg.flat and cfg.non_linearity != "tanh":
        problems.append(
            problem(
                "non_linearity",
                "PEFT's prefix projection is Linear–Tanh–Linear",
                expected="'tanh'",
                found=repr(cfg.non_linearity),
            )
        )
    raise_problems(problems)
    return {
        "peft_type": "PREFIX_TUNING",
        "task_type": None,
        "num_virtual_tokens": cfg.prefix_length,
        "prefix_projection": not cfg.flat,
        "encoder_hidden_size": None if cfg.flat else cfg.bottleneck_size,
        "modules_to_save": None,
    }


def prompt_to_peft(cfg: Any, model_type: str, num_layers: Counts) -> dict[str, Any]:
    """The PEFT ``PROMPT_TUNING`` dict of a prompt-tuning config."""
    problems: list[Problem] = []
    if not cfg.before_embeddings:
        problems.append(
            problem(
                "before_embeddings",
                "PEFT joins the virtual tokens to the token embeddings before the embedding "
                "layer adds positions and norms; this config joins them after it (the "
                "reference's placement)",
                expected="True",
                found="False",
                suggestion="set before_embeddings=True",
            )
        )
    if cfg.combine != "prefix":
        problems.append(
            problem(
                "combine",
                "PEFT always puts the virtual tokens first",
                expected="'prefix'",
                found=repr(cfg.combine),
            )
        )
    problems += unsupported_values(
        cfg,
        (
            SEED,
            (
                "random_uniform_scale",
                0.5,
                "PEFT has no setting for the random initialisation's scale",
            ),
        ),
    )
    raise_problems(problems)
    text = cfg.prompt_init == "from_string"
    return {
        "peft_type": "PROMPT_TUNING",
        "task_type": None,
        "num_virtual_tokens": cfg.prompt_length,
        "prompt_tuning_init": "TEXT" if text else "RANDOM",
        "prompt_tuning_init_text": cfg.prompt_init_text if text else None,
        "modules_to_save": None,
    }


def prefix_from_peft(
    data: Mapping[str, Any], peft_type: str, model_type: str | None, num_layers: Counts
) -> AdapterConfig:
    """The prefix-tuning config of a PEFT ``PREFIX_TUNING`` dict."""
    from ..methods.prefix_tuning import PrefixTuningConfig

    problems: list[Problem] = []
    handled = {"num_virtual_tokens", "prefix_projection", "encoder_hidden_size", "init_weights"}
    problems.extend(unknown_keys(data, handled))
    length = number(data, "num_virtual_tokens", 30, problems)
    projection = flag(data, "prefix_projection", problems)
    # PEFT's prefixes are a key/value cache: the inputs' positions follow them.
    fields: dict[str, Any] = {
        "prefix_length": length,
        "flat": not projection,
        "shift_positions": True,
    }
    if projection:
        size = data.get("encoder_hidden_size")
        if not isinstance(size, int) or isinstance(size, bool):
            problems.append(
                problem(
                    "encoder_hidden_size",
                    "prefix_projection needs encoder_hidden_size (the projection's width) to "
                    "convert; PEFT fills it in from the model only when the model is built",
                    expected="an integer",
                    found=shown(size),
                )
            )
        else:
            fields["bottleneck_size"] = size
    raise_problems(problems)
    try:
        return PrefixTuningConfig(**fields)
    except ConfigError as exc:
        raise ConfigError([at_peft_key(p, _PREFIX_KEYS) for p in exc.problems]) from None


def prompt_from_peft(
    data: Mapping[str, Any], peft_type: str, model_type: str | None, num_layers: Counts
) -> AdapterConfig:
    """The prompt-tuning config of a PEFT ``PROMPT_TUNING`` dict."""
    from ..methods.prompt_tuning import PromptTuningConfig

    problems: list[Problem] = []
    handled = {"num_virtual_tokens", "prompt_tuning_init", "prompt_tuning_init_text"}
    problems.extend(unknown_keys(data, handled))
    init = data.get("prompt_tuning_init", "RANDOM")
    fields: dict[str, Any] = {
        "prompt_length": number(data, "num_virtual_tokens", 10, problems),
        "before_embeddings": True,  # PEFT prepends the prompts to the inputs' embeddings
    }
    if init == "TEXT":
        fields["prompt_init"] = "from_string"
        fields["prompt_init_text"] = data.get("prompt_tuning_init_text")
    elif init != "RANDOM":
        problems.append(
            problem(
                "prompt_tuning_init",
                f"prompt_tuning_init={shown(init, 40)} has no counterpart here",
                expected="'RANDOM' or 'TEXT'",
                found=shown(init),
            )
        )
    raise_problems(problems)
    try:
        return PromptTuningConfig(**fields)
    except ConfigError as exc:
        raise ConfigError([at_peft_key(p, _PROMPT_KEYS) for p in exc.problems]) from None


_PREFIX_KEYS = {"prefix_length": "num_virtual_tokens", "bottleneck_size": "encoder_hidden_size"}
_PROMPT_KEYS = {
    "prompt_length": "num_virtual_tokens",
    "prompt_init_text": "prompt_tuning_init_text",
}
