"""Module names of each model type as PEFT sees them: stacks of layers, each module's role.

``layer_counts`` reads the ``num_layers`` argument of :func:`to_peft`/:func:`from_peft` against
a model type's stacks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError, did_you_mean
from .targets import shown

__all__ = [
    "ADAPTABLE",
    "MAX_LAYERS",
    "MODULES",
    "PROBE_LAYERS",
    "Counts",
    "ModelModules",
    "StackModules",
    "layer_counts",
    "model_modules",
]

#: Layers probed per stack when ``num_layers`` is not given.
PROBE_LAYERS = 64
#: Most layers per stack that ``num_layers`` may give (the largest models have a few hundred).
MAX_LAYERS = 4096

#: Roles a module can play. ``q``/``k``/``v``/``qkv``/``intermediate``/``output`` are adaptable;
#: ``never`` marks modules the reference never adapts.
ADAPTABLE = ("q", "k", "v", "qkv", "intermediate", "output")


@dataclass(frozen=True)
class StackModules:
    """One stack of layers: its path (relative to the base model) and per-layer module paths."""

    layers: str
    roles: Mapping[str, tuple[str, ...]]
    #: Modules that exist only in some configurations (BERT's cross-attention): targeting them
    #: is required to agree with the self-attention matrices only when they are targeted.
    optional: frozenset[str] = frozenset()


@dataclass(frozen=True)
class ModelModules:
    """Module names of one model type, as PEFT sees them."""

    model_type: str
    base_prefix: str  # the base model's attribute in a model with a head (``bert``, ``model``)
    stacks: tuple[StackModules, ...]
    outside: tuple[str, ...] = ()  # other Linear modules outside the layers
    fused_qkv: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def _bert_stack() -> StackModules:
    cross = ("crossattention.self.query", "crossattention.self.key", "crossattention.self.value")
    return StackModules(
        layers="encoder.layer",
        roles={
            "q": ("attention.self.query", cross[0]),
            "k": ("attention.self.key", cross[1]),
            "v": ("attention.self.value", cross[2]),
            "intermediate": ("intermediate.dense",),
            "output": ("output.dense",),
            "never": ("attention.output.dense", "crossattention.output.dense"),
        },
        optional=frozenset({*cross, "crossattention.output.dense"}),
    )


def _bart_stack(layers: str, decoder: bool) -> StackModules:
    attns = ("self_attn", "encoder_attn") if decoder else ("self_attn",)
    return StackModules(
        layers=layers,
        roles={
            "q": tuple(f"{a}.q_proj" for a in attns),
            "k": tuple(f"{a}.k_proj" for a in attns),
            "v": tuple(f"{a}.v_proj" for a in attns),
            "intermediate": ("fc1",),
            "output": ("fc2",),
            "never": tuple(f"{a}.out_proj" for a in attns),
        },
    )


def _llama(model_type: str, intermediate: str, output: str) -> ModelModules:
    return ModelModules(
        model_type=model_type,
        base_prefix="model",
        stacks=(
            StackModules(
                layers="layers",
                roles={
                    "q": ("self_attn.q_proj",),
                    "k": ("self_attn.k_proj",),
                    "v": ("self_attn.v_proj",),
                    "intermediate": (intermediate,),
                    "output": (output,),
                    "never": ("self_attn.o_proj", "mlp.gate_proj"),
                },
            ),
        ),
        outside=("lm_head",),
    )


#: model_type → module names (mirrors ``adapter_dsl.backend.architectures.ARCHITECTURES``).
MODULES: dict[str, ModelModules] = {
    "bert": ModelModules("bert", "bert", (_bert_stack(),), outside=("pooler.dense",)),
    "roberta": ModelModules("roberta", "roberta", (_bert_stack(),), outside=("pooler.dense",)),
    "gpt2": ModelModules(
        "gpt2",
        "transformer",
        (
            StackModules(
                layers="h",
                roles={
                    "qkv": ("attn.c_attn",),
                    "intermediate": ("mlp.c_fc",),
                    "output": ("mlp.c_proj",),
                    "never": ("attn.c_proj",),
                },
            ),
        ),
        outside=("lm_head",),
        fused_qkv=True,
    ),
    "bart": ModelModules(
        "bart",
        "model",
        (_bart_stack("encoder.layers", False), _bart_stack("decoder.layers", True)),
        outside=("lm_head",),
    ),
    # The reference's LLaMA/Mistral call down_proj "intermediate" and up_proj "output"; its
    # Qwen2 interface the other way round (see backend/architectures.py).
    "llama": _llama("llama", "mlp.down_proj", "mlp.up_proj"),
    "mistral": _llama("mistral", "mlp.down_proj", "mlp.up_proj"),
    "qwen2": _llama("qwen2", "mlp.up_proj", "mlp.down_proj"),
}

Counts = int | Sequence[int] | None


def model_modules(model_type: Any) -> ModelModules:
    """The module names of ``model_type``, or a ``ConfigError`` naming the known model types."""
    if not isinstance(model_type, str) or model_type not in MODULES:
        raise ConfigError.single(
            f"no PEFT module names are known for model type {shown(model_type)}",
            expected="one of " + ", ".join(sorted(MODULES)),
            found=shown(model_type),
            suggestion=did_you_mean(model_type, MODULES) if isinstance(model_type, str) else None,
            code="unsupported_model",
        )
    return MODULES[model_type]


def _layer_count(n: Any) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= MAX_LAYERS:
        raise ConfigError.single(
            "num_layers must give whole layer counts",
            expected=f"an integer from 0 to {MAX_LAYERS} per stack of layers",
            found=shown(n),
            code="num_layers",
        )
    return n


def layer_counts(model: ModelModules, num_layers: Counts) -> tuple[int, ...] | None:
    """The layer count per stack of ``model`` that ``num_layers`` gives (``None`` without one)."""
    if num_layers is None:
        return None
    if isinstance(num_layers, int) and not isinstance(num_layers, bool):
        if len(model.stacks) != 1:
            raise ConfigError.single(
                f"'{model.model_type}' models have {len(model.stacks)} stacks of layers; "
                "num_layers needs one count per stack",
                expected="a tuple such as (encoder_layers, decoder_layers)",
                found=shown(num_layers),
                code="num_layers",
            )
        return (_layer_count(num_layers),)
    if not isinstance(num_layers, Sequence) or isinstance(num_layers, str | bytes):
        raise ConfigError.single(
            "num_layers must be a layer count or one count per stack of layers",
            expected="an integer, or a tuple such as (encoder_layers, decoder_layers)",
            found=shown(num_layers),
            code="num_layers",
        )
    if len(num_layers) != len(model.stacks):
        raise ConfigError.single(
            f"num_layers needs {len(model.stacks)} counts for '{model.model_type}' models",
            expected=f"{len(model.stacks)} integers",
            found=shown(num_layers),
            code="num_layers",
        )
    return tuple(_layer_count(n) for n in num_layers)
