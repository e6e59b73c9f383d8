"""PEFT prompt-tuning directories (``PROMPT_TUNING``): loaded as prompt tuning with
``before_embeddings=True``; prefix-tuning directories (``PREFIX_TUNING``) are refused.

A PEFT prompt-tuning directory holds ``prompt_embeddings`` (``num_virtual_tokens``, token_dim),
which PEFT joins to the embedded ``input_ids`` before the embedding layer adds positions and
norms: that is ``prompt_tuning[before_embeddings=True]`` here, whose
``prompt_tuning.prompt_tunings.<name>.prompt_embedding.weight`` takes the tensor. The config's
``prompt_tuning_init`` only says how PEFT initialised the prompts (``TEXT`` needs a tokenizer);
the loaded weights replace them, so the adapter is built with the random initialisation.
Refused with a ``ConfigError``: prompts for a decoder too (``num_transformer_submodules`` 2, PEFT's
sequence-to-sequence task type), and prefix tuning, whose PEFT form (the prefixes as a key/value
cache) also shifts the inputs' positions by the prefix length, which the reference's prefix
tuning (this package's) does not.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from adapter_dsl.backend import core
from adapter_dsl.backend.interop.peft import CONFIG_FILE, read_peft_weights
from adapter_dsl.backend.serialization import provisional_adapter
from adapter_dsl.errors import ConfigError

__all__ = ["load_peft_prompts"]

#: PEFT's tensor name → ours (under ``prompt_tuning.prompt_tunings.<name>.``).
PROMPT_TENSOR = "prompt_embeddings"


def _fail(message: str, **kw: Any) -> ConfigError:
    return ConfigError.single(message, code=kw.pop("code", "not_expressible"), **kw)


def load_peft_prompts(
    model: nn.Module,
    directory: Path,
    data: dict[str, Any],
    *,
    load_as: str | None = None,
    set_active: bool = True,
) -> str:
    """Load a PEFT ``PROMPT_TUNING`` directory into ``model`` (see the module docstring)."""
    from adapter_dsl.peft import from_peft

    where = str(directory / CONFIG_FILE)
    if data.get("peft_type") == "PREFIX_TUNING":
        raise _fail(
            "PEFT's prefix tuning hands the prefixes to the model as a key/value cache, which "
            "also shifts the inputs' positions by num_virtual_tokens; the reference's prefix "
            "tuning (this package's) keeps the positions, so these weights would compute "
            "something else here",
            expected="a PEFT LORA, IA3 or PROMPT_TUNING directory",
            found="'PREFIX_TUNING'",
            suggestion="convert the config with adapter_dsl.from_peft and train it here",
            path=("peft_type",),
        ).located(file=where)
    if data.get("num_transformer_submodules") not in (None, 1):
        raise _fail(
            "these PEFT prompts are for an encoder and a decoder (num_transformer_submodules "
            "2, PEFT's SEQ_2_SEQ_LM); prompts here go before the (encoder's) inputs only",
            expected="num_transformer_submodules 1 (e.g. task_type FEATURE_EXTRACTION)",
            found=repr(data.get("num_transformer_submodules")),
            path=("num_transformer_submodules",),
        ).located(file=where)
    try:
        config = from_peft(data)
    except ConfigError as exc:
        raise exc.located(file=where) from None
    # The weights replace the initial prompts: no tokenizer needed for TEXT.
    config = config.replace(prompt_init="random_uniform", prompt_init_text=None)
    path, tensors = read_peft_weights(directory)
    if set(tensors) != {PROMPT_TENSOR}:
        raise _fail(
            f"the weights in '{path}' are not PEFT prompt-tuning weights",
            expected=f"one tensor '{PROMPT_TENSOR}'",
            found=", ".join(sorted(tensors)[:5]),
            code="bad_checkpoint",
        )
    tensor = tensors[PROMPT_TENSOR]
    name = load_as or "default"
    with provisional_adapter(model, name, config) as own:
        (key,) = own  # the prompt embedding
        if tuple(tensor.shape) != tuple(own[key].shape):
            raise _fail(
                f"'{PROMPT_TENSOR}' in '{path}' has shape {list(tensor.shape)}, the model "
                f"expects {list(own[key].shape)} (num_virtual_tokens × the token embedding size)",
                code="bad_checkpoint",
            )
        with torch.no_grad():
            own[key].copy_(tensor.to(dtype=own[key].dtype, device=own[key].device))
    if set_active:
        core.set_active(model, name)
    return name
