"""Tiny models of every model family the reference fixtures cover (family_counts.json).

The config kwargs come from the fixture file, so the models here are the ones the reference
measured (built with transformers 5 from the same config objects; nothing is downloaded).
"""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

import torch
import transformers

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "reference"
COUNTS: dict[str, Any] = json.loads((FIXTURES / "family_counts.json").read_text())
FAMILIES: list[str] = list(COUNTS["models"])

INPUT_IDS = [[5, 17, 42, 8, 91, 33, 60], [7, 25, 64, 12, 50, 0, 0]]
ATTENTION_MASK = [[1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 0, 0]]
DECODER_INPUT_IDS = [[2, 14, 77, 9, 30, 45], [2, 61, 3, 88, 19, 26]]
OUTPUT_FIELDS = ("last_hidden_state", "logits", "text_embeds", "image_embeds")


def make_config(name: str, *, eager: bool = True) -> Any:
    spec = COUNTS["models"][name]
    kwargs = dict(spec["kwargs"])
    attn = {"attn_implementation": "eager"} if eager else {}
    if name == "encoder-decoder":
        enc = transformers.BertConfig(**kwargs, **attn)
        dec = transformers.BertConfig(**kwargs, is_decoder=True, add_cross_attention=True, **attn)
        config = transformers.EncoderDecoderConfig.from_encoder_decoder_configs(enc, dec)
        config.decoder_start_token_id = 2
        config.pad_token_id = 0
        return config
    return getattr(transformers, spec["config_class"])(**kwargs, **attn)


@cache
def _template(name: str, seed: int) -> Any:
    torch.manual_seed(seed)
    model = getattr(transformers, COUNTS["models"][name]["model_class"])(make_config(name))
    return model.eval()


def make_family_model(name: str, seed: int = 0) -> Any:
    """A fresh tiny model of family ``name`` in eval mode, deterministic weights.

    Built once per process and copied (initialising a transformers model costs far more than
    everything a test does with it).
    """
    return copy.deepcopy(_template(name, seed))


def family_inputs(name: str) -> dict[str, torch.Tensor]:
    """The batch the reference scripts used for ``name`` (text, images, audio features)."""
    kind = COUNTS["models"][name]["inputs"]
    gen = torch.Generator().manual_seed(1234 + 2)
    batch: dict[str, torch.Tensor] = {}
    if "text" in kind or kind == "seq2seq":
        batch["input_ids"] = torch.tensor(INPUT_IDS)
        batch["attention_mask"] = torch.tensor(ATTENTION_MASK)
    if "image" in kind:
        batch["pixel_values"] = torch.randn(2, 3, 16, 16, generator=gen)
    if kind == "audio":
        batch["input_features"] = torch.randn(2, 8, 32, generator=gen)
    if kind in ("seq2seq", "audio"):
        batch["decoder_input_ids"] = torch.tensor(DECODER_INPUT_IDS)
    return batch


def family_outputs(model: Any, name: str) -> dict[str, torch.Tensor]:
    out = model(**family_inputs(name))
    return {k: getattr(out, k) for k in OUTPUT_FIELDS if getattr(out, k, None) is not None}
