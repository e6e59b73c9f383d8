"""What PEFT (0.21) adapts when a config names no ``target_modules``: its per-model-type
defaults, for the model types of :mod:`.models` that PEFT has defaults for.

PEFT fills these in when the PEFT model is built (``TRANSFORMERS_MODELS_TO_*_MAPPING`` in
``peft/utils/constants.py``), so a saved directory lists them; a config dict written by hand
may leave them out. Only the model types PEFT itself lists are here: for the others PEFT
refuses such a config too.
"""

from __future__ import annotations

__all__ = ["DEFAULT_IA3_FEEDFORWARD", "DEFAULT_IA3_TARGETS", "DEFAULT_LORA_TARGETS"]

#: model_type → LoRA's default ``target_modules``.
DEFAULT_LORA_TARGETS: dict[str, tuple[str, ...]] = {
    "t5": ("q", "v"),
    "mt5": ("q", "v"),
    "bart": ("q_proj", "v_proj"),
    "gpt2": ("c_attn",),
    "gptj": ("q_proj", "v_proj"),
    "bert": ("query", "value"),
    "roberta": ("query", "value"),
    "xlm-roberta": ("query", "value"),
    "electra": ("query", "value"),
    "deberta-v2": ("query_proj", "value_proj"),
    "deberta": ("in_proj",),
    "llama": ("q_proj", "v_proj"),
    "mistral": ("q_proj", "v_proj"),
    "phi": ("q_proj", "v_proj", "fc1", "fc2"),
    "gemma2": ("q_proj", "v_proj"),
    "gemma3_text": ("q_proj", "v_proj"),
    "qwen2": ("q_proj", "v_proj"),
    "qwen3": ("q_proj", "v_proj"),
}

#: model_type → IA³'s default ``target_modules``.
DEFAULT_IA3_TARGETS: dict[str, tuple[str, ...]] = {
    "t5": ("k", "v", "wo"),
    "mt5": ("k", "v", "wi_1"),
    "gpt2": ("c_attn", "mlp.c_proj"),
    "roberta": ("key", "value", "output.dense"),
    "gptj": ("q_proj", "v_proj", "fc_out"),
    "bart": ("q_proj", "v_proj", "fc2"),
    "llama": ("k_proj", "v_proj", "down_proj"),
    "mistral": ("k_proj", "v_proj", "down_proj"),
    "bert": ("key", "value", "output.dense"),
    "deberta-v2": ("key_proj", "value_proj", "output.dense"),
    "deberta": ("in_proj", "output.dense"),
    "phi": ("q_proj", "v_proj", "fc2"),
    "gemma2": ("q_proj", "v_proj", "down_proj"),
    "gemma3_text": ("q_proj", "v_proj", "down_proj"),
    "qwen2": ("q_proj", "v_proj", "down_proj"),
    "qwen3": ("q_proj", "v_proj", "down_proj"),
}

#: model_type → IA³'s default ``feedforward_modules`` (when the config has none).
DEFAULT_IA3_FEEDFORWARD: dict[str, tuple[str, ...]] = {
    "t5": ("wo",),
    "mt5": (),
    "gpt2": ("mlp.c_proj",),
    "roberta": ("output.dense",),
    "gptj": ("fc_out",),
    "bart": ("fc2",),
    "llama": ("down_proj",),
    "mistral": ("down_proj",),
    "bert": ("output.dense",),
    "deberta-v2": ("output.dense",),
    "deberta": ("output.dense",),
    "phi": ("fc2",),
    "gemma2": ("down_proj",),
    "gemma3_text": ("down_proj",),
    "qwen2": ("down_proj",),
    "qwen3": ("down_proj",),
}
