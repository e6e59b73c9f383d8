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


@dataclass(frozen=True)
class _PeftView:
    """What PEFT sees of a model type beyond the rows of :mod:`adapter_dsl.model_types`."""

    base_prefix: str  # the base model's attribute in a model with a head (``base_model_prefix``)
    outside: tuple[str, ...] = ()  # Linear modules outside the layers (poolers, heads)
    #: Linear modules inside each layer that the row does not name and the reference never
    #: adapts (LLaMA's ``gate_proj``).
    never: tuple[str, ...] = ()
    #: Whether the cross-attention of the row's groups exists only in some configurations
    #: (BERT-shaped models have it only as decoders).
    optional_cross_attention: bool = False


_LLAMA_VIEW = _PeftView("model", ("lm_head",), never=("mlp.gate_proj",))
#: The model types PEFT dicts convert for, with what the model-type table does not say.
_PEFT_VIEWS: dict[str, _PeftView] = {
    "bert": _PeftView("bert", ("pooler.dense",), optional_cross_attention=True),
    "roberta": _PeftView("roberta", ("pooler.dense",), optional_cross_attention=True),
    "gpt2": _PeftView("transformer", ("lm_head",)),
    "bart": _PeftView("model", ("lm_head",)),
    # The reference's LLaMA/Mistral call down_proj "intermediate" and up_proj "output"; its
    # Qwen2 interface the other way round: the rows say which.
    "llama": _LLAMA_VIEW,
    "mistral": _LLAMA_VIEW,
    "qwen2": _LLAMA_VIEW,
}


def _stack(group: LayerGroup, view: _PeftView) -> StackModules:
    """The PEFT module names of one group of a row: the projections of its attentions (self
    first), its feed-forward Linears, and the attention output projections as ``never``."""
    attentions = [a for a in (group.self_attention, group.cross_attention) if a is not None]
    roles: dict[str, tuple[str, ...]] = {}
    for key in ("q", "k", "v", "qkv"):
        paths = tuple(p for a in attentions if (p := getattr(a, key)) is not None)
        if paths:
            roles[key] = paths
    roles["intermediate"] = (group.intermediate,)
    roles["output"] = (group.output,)
    roles["never"] = (*(a.o for a in attentions), *view.never)
    optional: frozenset[str] = frozenset()
    cross = group.cross_attention
    if cross is not None and view.optional_cross_attention:
        optional = frozenset(p for p in (cross.q, cross.k, cross.v, cross.qkv, cross.o) if p)
    return StackModules(layers=group.layers, roles=roles, optional=optional)


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
