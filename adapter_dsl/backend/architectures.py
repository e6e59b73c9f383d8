"""The model-type table on a torch model: finding a model's row, its layers and its modules.

The rows themselves (module paths per model type) are data in :mod:`adapter_dsl.model_types`
(no torch); a row is a :class:`~adapter_dsl.model_interface.ModelSpec` (the model interface of
:mod:`adapter_dsl.model_interface`). Every method handler finds its hook points through a row,
never through model-specific code. A model type the table lacks is described with the same type
and added with :func:`register_model_type`, which checks every path on the model
(:func:`check_interface`). A path may list alternatives (``wi|wi_1``): the first one the layer
has is used.

Contract for method handlers (stable; rows or fields may be added, never renamed):

* ``get_model_spec(model)`` returns the row or raises ``ConfigError`` naming the model type and
  the supported ones.
* ``iter_layers(model, spec)`` yields :class:`LayerRef` (global index, group, layer module).
* ``resolve(module, path)`` returns the submodule or ``None`` when the path is absent (optional
  modules such as BERT's ``crossattention`` exist only in some configurations).
* ``spec.supports(family)`` tells whether a config ``architecture`` value (a method family) is
  supported.
* ``group_config(model, group)`` is the HF config that sizes a group (CLIP's ``text_config``).

Former names, kept as aliases: ``ArchitectureSpec`` (``ModelSpec``), ``ARCHITECTURES``
(``MODEL_TYPES``), ``get_architecture`` (``get_model_spec``). "Architecture" names the method
family of a config (its ``architecture`` field); the backend's rows are model types.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from torch import nn

from adapter_dsl.errors import ConfigError, Location, Problem, did_you_mean
from adapter_dsl.model_interface import (
    AttentionSpec,
    LayerGroup,
    ModelSpec,
    ResidualSite,
)
from adapter_dsl.model_types import BUILT_IN, MODEL_TYPES

__all__ = [
    "ARCHITECTURES",
    "BUILT_IN",
    "MODEL_TYPES",
    "ArchitectureSpec",
    "AttentionSpec",
    "LayerGroup",
    "LayerRef",
    "ModelSpec",
    "ResidualSite",
    "base_model_of",
    "check_interface",
    "get_architecture",
    "get_model_spec",
    "group_config",
    "iter_layers",
    "register_model_type",
    "resolve",
    "unregister_model_type",
]

# ---------------------------------------------------------------------------------------------
# Helpers


def base_model_of(model: nn.Module) -> nn.Module:
    """The bare transformer inside ``model`` (the model itself when it has no head)."""
    base = getattr(model, "base_model", None)
    return base if isinstance(base, nn.Module) else model


def model_type_of(model: nn.Module) -> str:
    cfg = getattr(model, "config", None)
    model_type = getattr(cfg, "model_type", None)
    return str(model_type) if model_type else type(model).__name__


def get_model_spec(model: nn.Module) -> ModelSpec:
    """The table row for ``model``; a ``ConfigError`` naming the supported types otherwise.

    ``EncoderDecoderModel`` gets a row composed from its two halves' rows (each half must be a
    single-stack model type of the table).
    """
    model_type = model_type_of(model)
    if model_type == "encoder-decoder":
        return _encoder_decoder(model)
    spec = MODEL_TYPES.get(model_type)
    if spec is None:
        raise ConfigError.single(
            f"model type '{model_type}' is not supported by the adapter backend",
            expected="one of " + ", ".join(sorted(MODEL_TYPES)),
            found=repr(model_type),
            suggestion=did_you_mean(model_type, MODEL_TYPES)
            or "describe it with adapter_dsl.ModelInterface and register_model_type()",
            code="unsupported_model",
        )
    return spec


def _prefixed(path: str, prefix: str) -> str:
    if not prefix:
        return path
    return "|".join(f"{prefix}.{alt}" if alt else prefix for alt in path.split("|"))


def _encoder_decoder(model: nn.Module) -> ModelSpec:
    halves = []
    for side in ("encoder", "decoder"):
        half = getattr(model, side, None)
        if not isinstance(half, nn.Module):
            raise ConfigError.single(
                f"this encoder-decoder model has no '{side}' module", code="unsupported_model"
            )
        spec = get_model_spec(half)
        if len(spec.groups) != 1:
            raise ConfigError.single(
                f"an encoder-decoder model's {side} must be a single-stack model type",
                expected="e.g. bert, roberta, gpt2",
                found=spec.model_type,
                code="unsupported_model",
            )
        base = base_model_of(half)
        path = side if base is half else f"{side}.{half.base_model_prefix}"
        halves.append((side, spec, path))
    key = tuple((spec.model_type, path) for _, spec, path in halves)
    cached = _COMPOSED.get(key)
    if cached is not None:
        return cached
    groups = []
    for side, spec, path in halves:
        group = spec.groups[0]
        groups.append(
            group.model_copy(
                update={
                    "name": side,
                    "layers": _prefixed(group.layers, path),
                    "config": _prefixed(group.config, side),
                    # The encoder never sees encoder states: no cross-attention there.
                    **({"cross_attention": None, "cross_site": None} if side == "encoder" else {}),
                }
            )
        )
    (_, enc, enc_path), _ = halves
    # The reference keeps one prefix pool and one invertible adapter per half (and one more on
    # the wrapper); those layouts are not reproduced: both are refused here.
    composed = ModelSpec(
        model_type="encoder-decoder",
        embeddings=_prefixed(enc.embeddings, enc_path),
        invertible_after=_prefixed(enc.invertible_after, enc_path),
        groups=tuple(groups),
        pre_ln=enc.pre_ln,
        families=enc.families & halves[1][1].families - ENCODER_DECODER_REFUSED,
        # As the reference: each half numbers its layers from 0.
        layer_numbering="per_group",
    )
    _COMPOSED[key] = composed
    return composed


_COMPOSED: dict[tuple[tuple[str, str], ...], ModelSpec] = {}
#: Families refused on every EncoderDecoderModel (see _encoder_decoder).
ENCODER_DECODER_REFUSED = frozenset({"prefix_tuning", "invertible"})


def group_config(model: nn.Module, group: LayerGroup) -> Any:
    """The HF config that sizes ``group`` (its sub-config for CLIP and encoder-decoder models)."""
    cfg: Any = base_model_of(model).config
    for part in group.config.split(".") if group.config else ():
        cfg = getattr(cfg, part)
    return cfg


def resolve(module: nn.Module, path: str | None) -> nn.Module | None:
    """``module.get_submodule(path)``, or ``None`` when ``path`` is ``None`` or absent.

    ``a.b|a.c`` resolves to the first alternative that exists.
    """
    if path is None:
        return None
    if path == "":
        return module
    for alternative in path.split("|"):
        try:
            return module.get_submodule(alternative)
        except AttributeError:
            continue
    return None


@dataclass(frozen=True)
class LayerRef:
    """One transformer layer: its index (reference numbering), group and module.

    ``position`` is unique across the model (the running count); ``index`` equals it unless the
    row numbers each group from 0 (``layer_numbering="per_group"``).
    """

    index: int
    local_index: int
    group: LayerGroup
    module: nn.Module
    position: int = -1


def iter_layers(model: nn.Module, spec: ModelSpec) -> Iterator[LayerRef]:
    """Every layer of every group in reference order (encoder first, decoder offset after it)."""
    base = base_model_of(model)
    offset = 0
    for group in spec.groups:
        layers = resolve(base, group.layers)
        if layers is None:
            continue
        assert isinstance(layers, nn.ModuleList)
        per_group = spec.layer_numbering == "per_group"
        for local, layer in enumerate(layers):
            yield LayerRef(
                local if per_group else offset + local, local, group, layer, offset + local
            )
        offset += len(layers)


def num_layers(model: nn.Module, spec: ModelSpec) -> int:
    """How many layers ``model`` has in the groups of ``spec``."""
    return sum(1 for _ in iter_layers(model, spec))


# ---------------------------------------------------------------------------------------------
# Model interfaces for model types the table lacks

#: (field path inside a LayerGroup, whether a missing module is an error) per per-layer path.
_REQUIRED_LAYER_PATHS = ("intermediate", "output")


def check_interface(model: nn.Module, spec: ModelSpec) -> None:
    """Raise ``ConfigError`` (JSON pointers into the interface) for paths ``model`` lacks.

    Model-level paths are checked on the base model; per-layer paths on every layer (a path
    that only some layers have is fine: BERT's ``crossattention`` exists in decoders only, so
    attention and site paths must exist on at least one layer).
    """
    base = base_model_of(model)
    problems: list[Problem] = []

    def missing(path: tuple[str | int, ...], value: str, where: nn.Module, what: str) -> None:
        first = value.split("|")[0]
        parent, _, attr = first.rpartition(".")
        holder = resolve(where, parent) if parent else where
        names = list(holder._modules) if holder is not None else []
        problems.append(
            Problem(
                f"'{value}' is not a submodule of {what}",
                Location(path=path),
                expected="a dotted path to a submodule"
                + (f" (children there: {', '.join(names[:12])})" if names else ""),
                found=repr(value),
                suggestion=did_you_mean(attr, names),
                code="unknown_module_path",
            )
        )

    base_name = type(base).__name__
    for field_name in ("embeddings", "invertible_after"):
        value = getattr(spec, field_name)
        if resolve(base, value) is None:
            missing((field_name,), value, base, f"the base model ({base_name})")
    if resolve(base, spec.invertible_container) is None:
        missing(("invertible_container",), spec.invertible_container, base, base_name)
    for g, group in enumerate(spec.groups):
        layers = resolve(base, group.layers)
        if not isinstance(layers, nn.ModuleList) or len(layers) == 0:
            problems.append(
                Problem(
                    f"'{group.layers}' is not a non-empty ModuleList of the base model",
                    Location(path=("groups", g, "layers")),
                    expected=f"the path of the layer list inside {base_name}",
                    found=repr(group.layers)
                    + ("" if layers is None else f" ({type(layers).__name__})"),
                    code="unknown_module_path",
                )
            )
            continue
        layer_list = list(layers)
        layer_name = type(layer_list[0]).__name__

        def on_some_layer(path: str | None, layer_list: list[nn.Module] = layer_list) -> bool:
            return path is None or any(resolve(layer, path) is not None for layer in layer_list)

        for field_name in (*_REQUIRED_LAYER_PATHS, "gate"):
            value = getattr(group, field_name)
            if not on_some_layer(value):
                missing(
                    ("groups", g, field_name), value, layer_list[0], f"the layers ({layer_name})"
                )
        for attn_field in ("self_attention", "cross_attention"):
            attn = getattr(group, attn_field)
            if attn is None:
                continue
            for key in ("module", "o", "q", "k", "v", "qkv"):
                value = getattr(attn, key)
                if value is not None and not on_some_layer(value):
                    missing(("groups", g, attn_field, key), value, layer_list[0], layer_name)
        for site_field in ("mh_site", "output_site", "cross_site"):
            site = getattr(group, site_field)
            if site is None:
                continue
            for key in ("residual_module", "residual_extra", "output_module", "layer_norm"):
                value = getattr(site, key)
                if value is not None and not on_some_layer(value):
                    missing(("groups", g, site_field, key), value, layer_list[0], layer_name)
    if problems:
        raise ConfigError(problems)


def register_model_type(
    interface: ModelSpec | dict[str, Any] | str,
    model: nn.Module | None = None,
    *,
    replace: bool = False,
) -> ModelSpec:
    """Register a model interface for its ``model_type``; returns the validated interface.

    ``interface`` is an :class:`ModelSpec` (``adapter_dsl.ModelInterface``), its dict or
    its JSON text. With ``model`` every path is checked on it now (``ConfigError`` with JSON
    pointers for unknown paths); the built-in rows cannot be replaced, an earlier registration
    only with ``replace=True``.
    """
    if isinstance(interface, str):
        spec = ModelSpec.from_json(interface)
    elif isinstance(interface, ModelSpec):
        spec = interface
    else:
        spec = ModelSpec.from_dict(interface)
    if spec.model_type in BUILT_IN:
        raise ConfigError.single(
            f"model type '{spec.model_type}' is built in and cannot be replaced",
            expected="a model type the table lacks",
            found=repr(spec.model_type),
            path=("model_type",),
            code="duplicate_model_type",
        )
    if spec.model_type in MODEL_TYPES and not replace:
        raise ConfigError.single(
            f"model type '{spec.model_type}' is already registered",
            found=repr(spec.model_type),
            suggestion="pass replace=True to replace it",
            path=("model_type",),
            code="duplicate_model_type",
        )
    if model is not None:
        found = model_type_of(model)
        if found != spec.model_type:
            raise ConfigError.single(
                f"the interface describes '{spec.model_type}' models, the model is '{found}'",
                expected=repr(found),
                found=repr(spec.model_type),
                path=("model_type",),
                code="model_mismatch",
            )
        check_interface(model, spec)
    MODEL_TYPES[spec.model_type] = spec
    return spec


def unregister_model_type(model_type: str) -> None:
    """Remove a registered (not built-in) model type; unknown names are ignored."""
    if model_type not in BUILT_IN:
        MODEL_TYPES.pop(model_type, None)


# Former names (the backend called a model type an "architecture"), kept for existing code.
ArchitectureSpec = ModelSpec
ARCHITECTURES = MODEL_TYPES
get_architecture = get_model_spec
