"""PEFT prompt- and prefix-tuning directories (``PROMPT_TUNING``, ``PREFIX_TUNING``).

A PEFT prompt-tuning directory holds ``prompt_embeddings`` (``num_virtual_tokens``, token_dim),
which PEFT joins to the embedded ``input_ids`` before the embedding layer adds positions and
norms: that is ``prompt_tuning[before_embeddings=True]`` here, whose
``prompt_tuning.prompt_tunings.<name>.prompt_embedding.weight`` takes the tensor. The config's
``prompt_tuning_init`` only says how PEFT initialised the prompts (``TEXT`` needs a tokenizer);
the loaded weights replace them, so the adapter is built with the random initialisation.

Prefix tuning: PEFT hands the prefixes to the model as a key/value cache, laid out per position
as (layer, key/value, head, dim), the layout of this package's generators, so its
``prompt_embeddings`` (``num_virtual_tokens``, N) (saved flat even with ``prefix_projection``:
PEFT saves the projection's output) are a ``flat`` prefix's ``control_trans``; the cache also
shifts the inputs' positions by its length, which is ``shift_positions=True`` here.

Refused with a ``ConfigError``: prompts or prefixes for an encoder and a decoder
(``num_transformer_submodules`` 2, PEFT's sequence-to-sequence task type), and prefixes on
models with two stacks or without ``position_ids``.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn

from adapter_dsl.backend import core
from adapter_dsl.backend.core import provisional_adapter
from adapter_dsl.backend.interop.peft_files import CONFIG_FILE, read_peft_weights
from adapter_dsl.errors import ConfigError

__all__ = ["load_peft_prompts"]

#: PEFT's tensor name (prompts, and prefixes too).
PROMPT_TENSOR = "prompt_embeddings"


# ConfigError.single with this module's default code (a call may pass another).
_fail = partial(ConfigError.single, code="not_expressible")


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
    if data.get("peft_type") == "PREFIX_TUNING":
        config = config.replace(flat=True)  # the saved tensor is the generator's output
    else:  # the weights replace the initial prompts: no tokenizer needed for TEXT
        config = config.replace(prompt_init="random_uniform", prompt_init_text=None)
    path, tensors = read_peft_weights(directory)
    if set(tensors) != {PROMPT_TENSOR}:
        raise _fail(
            f"the weights in '{path}' are not PEFT prompt- or prefix-tuning weights",
            expected=f"one tensor '{PROMPT_TENSOR}'",
            found=", ".join(sorted(tensors)[:5]),
            code="bad_checkpoint",
        )
    tensor = tensors[PROMPT_TENSOR]
    name = load_as or "default"
    with provisional_adapter(model, name, config) as own:
        (key,) = own  # the prompt embedding, or the flat prefix of the one location
        if tensor.numel() != own[key].numel() or tensor.dim() != 2:
            raise _fail(
                f"'{PROMPT_TENSOR}' in '{path}' has shape {list(tensor.shape)}, the model "
                f"expects {own[key].numel()} values (num_virtual_tokens × the token embedding "
                "size, or × layers·2·key/value width for prefixes)",
                code="bad_checkpoint",
            )
        with torch.no_grad():
            own[key].copy_(tensor.reshape(own[key].shape).to(own[key]))
    if set_active:
        core.set_active(model, name)
    return name
