"""Tiny models of every model type PEFT directories convert for, with their inputs and outputs.

The families of the reference fixtures (``families.py``), the models of ``conftest.py`` and the
two LLaMA-shaped types neither has (Mistral, Qwen2); EncoderDecoderModel is left out (its PEFT
module names depend on its halves).
"""

from __future__ import annotations

from typing import Any

import torch
import transformers

from .conftest import MODEL_FACTORIES, make_model, model_inputs
from .families import FAMILIES, OUTPUT_FIELDS, family_inputs, make_family_model

_LLAMA_SIZES = dict(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    intermediate_size=37,
    vocab_size=99,
    max_position_embeddings=64,
)
_EXTRA = {
    "mistral": lambda: transformers.MistralModel(transformers.MistralConfig(**_LLAMA_SIZES)),
    "qwen2": lambda: transformers.Qwen2Model(transformers.Qwen2Config(**_LLAMA_SIZES)),
}

PEFT_FAMILIES: list[str] = sorted(
    {*(f for f in FAMILIES if f != "encoder-decoder"), *MODEL_FACTORIES, *_EXTRA}
)


def peft_model(name: str, seed: int = 0) -> Any:
    """A fresh tiny model of ``name`` in eval mode (deterministic weights)."""
    if name in MODEL_FACTORIES:
        return make_model(name, seed)
    if name in _EXTRA:
        torch.manual_seed(seed)
        return _EXTRA[name]().eval()
    return make_family_model(name, seed)


def peft_inputs(name: str) -> dict[str, torch.Tensor]:
    if name in FAMILIES:
        return family_inputs(name)
    return model_inputs("bart" if name == "bart" else "bert")


def peft_outputs(model: Any, name: str, **extra: Any) -> dict[str, torch.Tensor]:
    out = model(**peft_inputs(name), **extra)
    return {k: getattr(out, k) for k in OUTPUT_FIELDS if getattr(out, k, None) is not None}
