"""Module names of each model type as PEFT sees them: stacks of layers, each module's role.

They are derived from the rows of :mod:`adapter_dsl.model_types` (the backend's table), plus
the little a row does not say (:class:`_PeftView`: the base model's attribute, Linear modules
outside the layers or unnamed inside them).

``layer_counts`` reads the ``num_layers`` argument of :func:`to_peft`/:func:`from_peft` against
a model type's stacks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError, did_you_mean
from ..model_interface import LayerGroup, ModelSpec
from ..model_types import MODEL_TYPES
from .targets import shown

__all__ = [
    "ADAPTABLE",
    "MAX_LAYERS",
    "MODULES",
    "PROBE_LAYERS",
    "Counts",
    "ModelModules",
    "StackModules",
    "derive_modules",
    "layer_counts",
    "model_modules",
]

#: Layers probed per stack when ``num_layers`` is not given.
PROBE_LAYERS = 64
#: Most layers per stack that ``num_layers`` may give (the largest models have a few hundred).
MAX_LAYERS = 4096

#: Roles a module can play. ``q``/``k``/``v``/``qkv``/``intermediate``/``output`` are the
#: reference's locations, ``o`` (attention output) and ``gate`` (FFN gate) the extensions
#: ``attn_output_lora``/``gate_lora``; ``never`` marks modules no config adapts.
ADAPTABLE = ("q", "k", "v", "qkv", "o", "intermediate", "output", "gate")


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


@dataclass(frozen=True)
class _PeftView:
    """What PEFT sees of a model type beyond the rows of :mod:`adapter_dsl.model_types`."""

    base_prefix: str  # the base model's attribute in a model with a head (``base_model_prefix``)
    outside: tuple[str, ...] = ()  # Linear modules outside the layers (poolers, heads)
    #: Linear modules inside each layer that the row does not name and no config adapts.
    never: tuple[str, ...] = ()
    #: Whether the cross-attention of the row's groups exists only in some configurations
    #: (BERT-shaped models have it only as decoders).
    optional_cross_attention: bool = False


_DECODER = _PeftView("model", ("lm_head",))
_BERT_VIEW = _PeftView("bert", ("pooler.dense",), optional_cross_attention=True)
_ROBERTA_VIEW = _PeftView("roberta", ("pooler.dense",), optional_cross_attention=True)
_DEBERTA_VIEW = _PeftView("deberta", optional_cross_attention=True)
#: The model types PEFT dicts convert for, with what the model-type table does not say
#: (``base_model_prefix`` of the transformers classes; Linears outside the layers, heads
#: included, so that a target hitting one is reported). EncoderDecoderModel is left out: its
#: module names depend on its two halves.
_PEFT_VIEWS: dict[str, _PeftView] = {
    "bert": _BERT_VIEW,
    "bert-generation": _PeftView("bert", optional_cross_attention=True),
    "roberta": _ROBERTA_VIEW,
    "xlm-roberta": _ROBERTA_VIEW,
    "xmod": _ROBERTA_VIEW,
    "electra": _PeftView("electra", ("embeddings_project",), optional_cross_attention=True),
    "albert": _PeftView("albert", ("encoder.embedding_hidden_mapping_in", "pooler")),
    "distilbert": _PeftView("distilbert"),
    "deberta": _DEBERTA_VIEW,
    "deberta-v2": _DEBERTA_VIEW,
    "modernbert": _PeftView("model"),
    "gpt2": _PeftView("transformer", ("lm_head",)),
    "gptj": _PeftView("transformer", ("lm_head",)),
    "bart": _DECODER,
    "mbart": _DECODER,
    "plbart": _DECODER,
    "t5": _PeftView("transformer", ("lm_head",)),
    "mt5": _PeftView("transformer", ("lm_head",)),
    "whisper": _PeftView("model", ("proj_out",)),
    "vit": _PeftView("vit", ("pooler.dense",)),
    "beit": _PeftView("beit"),
    "clip": _PeftView("clip", ("visual_projection", "text_projection")),
    "clip_text_model": _PeftView("clip"),
    "clip_vision_model": _PeftView("clip"),
    # The reference's LLaMA/Mistral call down_proj "intermediate" and up_proj "output"; its
    # Qwen2 interface the other way round: the rows say which.
    "llama": _DECODER,
    "mistral": _DECODER,
    "qwen2": _DECODER,
    "qwen3": _DECODER,
    "gemma2": _DECODER,
    "gemma3_text": _DECODER,
    "phi": _DECODER,
}


def _alternatives(path: str) -> tuple[str, ...]:
    return tuple(path.split("|"))


def _stack(group: LayerGroup, view: _PeftView) -> StackModules:
    """The PEFT module names of one group of a row: the projections of its attentions (self
    first, output projections as ``o``), its feed-forward Linears (``gate`` where the row
    names one) and ``never``. A path with alternatives (T5's ``wi|wi_1``) names each of them,
    all optional (only one exists on a given model)."""
    attentions = [a for a in (group.self_attention, group.cross_attention) if a is not None]
    roles: dict[str, tuple[str, ...]] = {}
    for key in ("q", "k", "v", "qkv", "o"):
        paths = tuple(p for a in attentions if (p := getattr(a, key)) is not None)
        if paths:
            roles[key] = paths
    optional: set[str] = set()
    for role in ("intermediate", "output", "gate"):
        path = getattr(group, role)
        if path is None:
            continue
        roles[role] = _alternatives(path)
        if len(roles[role]) > 1 or role == "gate":
            optional.update(roles[role])  # gate: gated T5 only
    if view.never:
        roles["never"] = view.never
    cross = group.cross_attention
    if cross is not None and view.optional_cross_attention:
        optional.update(p for p in (cross.q, cross.k, cross.v, cross.qkv, cross.o) if p)
    return StackModules(layers=group.layers, roles=roles, optional=frozenset(optional))


def derive_modules(spec: ModelSpec, view: _PeftView) -> ModelModules:
    """The PEFT module names of the model type ``spec`` (a row of the model-type table)."""
    return ModelModules(
        model_type=spec.model_type,
        base_prefix=view.base_prefix,
        stacks=tuple(_stack(group, view) for group in spec.groups),
        outside=view.outside,
        fused_qkv=any(g.self_attention.is_fused for g in spec.groups),
    )


#: model_type → module names, derived from :data:`adapter_dsl.model_types.MODEL_TYPES`.
MODULES: dict[str, ModelModules] = {
    model_type: derive_modules(MODEL_TYPES[model_type], view)
    for model_type, view in _PEFT_VIEWS.items()
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
