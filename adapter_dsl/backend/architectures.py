"""Where things are inside each supported transformers model: one declarative table.

Every method handler finds its hook points through this table, never through model-specific
code. A row (:class:`ArchitectureSpec`) describes a *base* model (``BertModel``, ``GPT2Model``, ...);
all paths are dotted attribute paths resolved with ``nn.Module.get_submodule``:

* model-level paths (``embeddings``, ``invertible_after``, ``LayerGroup.layers``) are relative to
  the base model (``model.base_model`` for a model with a head);
* per-layer paths (everything inside :class:`LayerGroup`, :class:`AttentionSpec` and
  :class:`ResidualSite`) are relative to one transformer layer of that group.

Layer numbering follows the reference library: the encoder's layers come first, the decoder's
layers continue the count (``global index = group offset + local index``), so ``leave_out=[2]`` on
a 2+2-layer BART model means the first decoder layer.

Contract for method handlers (stable; rows or fields may be added, never renamed):

* ``get_architecture(model)`` returns the row or raises ``ConfigError`` naming the model type and
  the supported ones.
* ``iter_layers(model, arch)`` yields :class:`LayerRef` (global index, group, layer module).
* ``resolve(module, path)`` returns the submodule or ``None`` when the path is absent (optional
  modules such as BERT's ``crossattention`` exist only in some configurations).
* ``arch.supports(family)`` tells whether a config ``architecture`` value is supported.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from torch import nn

from adapter_dsl.errors import ConfigError, did_you_mean

__all__ = [
    "ARCHITECTURES",
    "ArchitectureSpec",
    "AttentionSpec",
    "LayerGroup",
    "LayerRef",
    "ResidualSite",
    "base_model_of",
    "get_architecture",
    "iter_layers",
    "resolve",
]

#: Config ``architecture`` values (method families) a model can host. ``"invertible"`` is the
#: invertible adapter of bottleneck configs with ``inv_adapter`` set.
ALL_FAMILIES: frozenset[str] = frozenset(
    {"bottleneck", "lora", "mtl_lora", "prefix_tuning", "reft", "invertible"}
)


@dataclass(frozen=True)
class ResidualSite:
    """One place where a sublayer's output ``H`` meets its residual input ``X``.

    Bottleneck adapters sit here. The reference computes ``Y = LN(H + X)`` (post-LN models) or
    ``Y = H + X`` (pre-LN models) and lets the adapter rewrite that; we reproduce it with hooks:

    * ``residual_module`` / ``residual_arg`` / ``residual_kwarg``: a forward pre-hook on this module
      reads ``X`` from its positional argument ``residual_arg`` or keyword ``residual_kwarg``.
    * ``output_module`` + ``output_kind``:
      ``"output"``: the module's output (or ``output[0]`` for tuples) *is* ``H`` (after dropout);
      a forward hook replaces it with ``H'`` so that the model's own ``H' + X`` (and LN) gives the
      reference result.
      ``"sum"``: the module is the post-sublayer norm whose input is ``S = H + X`` (used where the
      dropout is functional, e.g. BART); ``H`` is recovered as ``S - X`` and the norm's input is
      replaced. ``S - X`` is not bit-identical to ``H`` (one rounding of ``|X|``), the price of
      not copying the model's forward code.
    * ``layer_norm``: the model's post-sublayer LayerNorm (post-LN models) or ``None`` (pre-LN).
    * ``adapters_at``: where the ``adapters`` ModuleDict of this site lives. If the path names an
      existing module (BERT ``attention.output``) the dict is attached to it; otherwise a holder
      module is created under that name (GPT-2 ``attention_adapters``), reproducing the
      reference's state-dict keys.
    """

    residual_module: str
    residual_arg: int
    residual_kwarg: str | None
    output_module: str
    output_kind: Literal["output", "sum"]
    layer_norm: str | None
    adapters_at: str


@dataclass(frozen=True)
class AttentionSpec:
    """An attention module and its projections (paths relative to the layer).

    Either ``q``/``k``/``v`` are separate Linears, or ``qkv`` is one fused projection whose output
    is the concatenation of ``qkv_order`` (GPT-2's ``c_attn`` is a ``Conv1D``, i.e. the weight is
    stored transposed: ``fused_is_conv1d``). ``o`` is the output projection (never LoRA'd in the
    reference). ``prefix_location`` is the reference's location key for prefix tuning
    (``self_prefix``, ``encoder_prefix`` or ``cross_prefix``).
    """

    module: str
    o: str
    q: str | None = None
    k: str | None = None
    v: str | None = None
    qkv: str | None = None
    qkv_order: tuple[str, ...] = ("q", "k", "v")
    fused_is_conv1d: bool = False
    prefix_location: str = "self_prefix"

    @property
    def is_fused(self) -> bool:
        return self.qkv is not None


@dataclass(frozen=True)
class LayerGroup:
    """A stack of identical layers (an encoder or a decoder).

    ``intermediate`` and ``output`` are the FFN Linears the reference calls "intermediate" and
    "output" (LoRA location keys ``intermediate_lora`` / ``output_lora``). For LLaMA-like models the
    reference wires ``down_proj`` as intermediate and ``up_proj`` as output; we follow it so that
    reference weights map onto the same modules.
    """

    name: Literal["encoder", "decoder"]
    layers: str
    self_attention: AttentionSpec
    intermediate: str
    output: str
    mh_site: ResidualSite
    output_site: ResidualSite
    cross_attention: AttentionSpec | None = None
    cross_site: ResidualSite | None = None


def _default_heads(cfg: Any) -> int:
    return int(cfg.num_attention_heads)


def _default_kv_heads(cfg: Any) -> int:
    kv = getattr(cfg, "num_key_value_heads", None)
    return int(kv) if kv else int(cfg.num_attention_heads)


@dataclass(frozen=True)
class ArchitectureSpec:
    """Everything the backend needs to know about one model type (see the module docstring)."""

    model_type: str
    embeddings: str
    invertible_after: str
    groups: tuple[LayerGroup, ...]
    pre_ln: bool
    #: Module (relative to the base model) that holds the ``invertible_adapters`` ModuleDict;
    #: ``""`` is the base model itself. BART keeps it on its encoder, as in the reference.
    invertible_container: str = ""
    families: frozenset[str] = ALL_FAMILIES
    prompt_tuning: bool = False
    extras: dict[str, Any] = field(default_factory=dict)

    def supports(self, family: str) -> bool:
        """Whether configs whose ``architecture`` is ``family`` can be built on this model type."""
        if family == "prompt_tuning":
            return self.prompt_tuning
        return family in self.families

    @property
    def supported_families(self) -> tuple[str, ...]:
        return tuple(sorted(self.families | ({"prompt_tuning"} if self.prompt_tuning else set())))

    # Sizes from the HF config. transformers maps n_embd/d_model/n_head/... onto these names
    # through ``attribute_map``, so one getter serves every row.
    @staticmethod
    def hidden_size(cfg: Any) -> int:
        return int(cfg.hidden_size)

    @staticmethod
    def num_heads(cfg: Any) -> int:
        return _default_heads(cfg)

    @staticmethod
    def num_kv_heads(cfg: Any) -> int:
        return _default_kv_heads(cfg)

    @staticmethod
    def head_dim(cfg: Any) -> int:
        """The real head dimension (``config.head_dim`` when set, else ``hidden // heads``).

        Note: the reference's prefix tuning always uses ``hidden // heads``; a handler that must
        match its parameter counts should compute that itself.
        """
        explicit = getattr(cfg, "head_dim", None)
        return int(explicit) if explicit else int(cfg.hidden_size) // _default_heads(cfg)


# ---------------------------------------------------------------------------------------------
# Rows

_BERT_GROUP = LayerGroup(
    name="encoder",
    layers="encoder.layer",
    self_attention=AttentionSpec(
        module="attention.self",
        q="attention.self.query",
        k="attention.self.key",
        v="attention.self.value",
        o="attention.output.dense",
    ),
    cross_attention=AttentionSpec(
        module="crossattention.self",
        q="crossattention.self.query",
        k="crossattention.self.key",
        v="crossattention.self.value",
        o="crossattention.output.dense",
        prefix_location="cross_prefix",
    ),
    intermediate="intermediate.dense",
    output="output.dense",
    # BertSelfOutput.forward(hidden_states, input_tensor): X is argument 1; H is the dropout's output.
    mh_site=ResidualSite(
        residual_module="attention.output",
        residual_arg=1,
        residual_kwarg="input_tensor",
        output_module="attention.output.dropout",
        output_kind="output",
        layer_norm="attention.output.LayerNorm",
        adapters_at="attention.output",
    ),
    output_site=ResidualSite(
        residual_module="output",
        residual_arg=1,
        residual_kwarg="input_tensor",
        output_module="output.dropout",
        output_kind="output",
        layer_norm="output.LayerNorm",
        adapters_at="output",
    ),
    # The reference gives BERT decoders' cross-attention an mh adapter, not a cross adapter; we
    # leave BERT cross-attention without bottleneck adapters.
    cross_site=None,
)

_BERT = ArchitectureSpec(
    model_type="bert",
    embeddings="embeddings",
    invertible_after="embeddings",
    groups=(_BERT_GROUP,),
    pre_ln=False,
    prompt_tuning=True,
)

_GPT2 = ArchitectureSpec(
    model_type="gpt2",
    embeddings="wte",
    invertible_after="drop",
    groups=(
        LayerGroup(
            name="decoder",
            layers="h",
            self_attention=AttentionSpec(
                module="attn",
                qkv="attn.c_attn",
                fused_is_conv1d=True,
                o="attn.c_proj",
            ),
            cross_attention=None,
            intermediate="mlp.c_fc",
            output="mlp.c_proj",
            # Pre-LN: the residual X is the input of ln_1 / ln_2, H the sublayer's output.
            mh_site=ResidualSite(
                residual_module="ln_1",
                residual_arg=0,
                residual_kwarg="input",
                output_module="attn",
                output_kind="output",
                layer_norm=None,
                adapters_at="attention_adapters",
            ),
            output_site=ResidualSite(
                residual_module="ln_2",
                residual_arg=0,
                residual_kwarg="input",
                output_module="mlp",
                output_kind="output",
                layer_norm=None,
                adapters_at="output_adapters",
            ),
        ),
    ),
    pre_ln=True,
)


def _bart_attention(module: str, prefix_location: str) -> AttentionSpec:
    return AttentionSpec(
        module=module,
        q=f"{module}.q_proj",
        k=f"{module}.k_proj",
        v=f"{module}.v_proj",
        o=f"{module}.out_proj",
        prefix_location=prefix_location,
    )


# BART applies dropout functionally, so H is recovered from the post-sublayer norm's input.
_BART_MH = ResidualSite(
    residual_module="self_attn",
    residual_arg=0,
    residual_kwarg="hidden_states",
    output_module="self_attn_layer_norm",
    output_kind="sum",
    layer_norm="self_attn_layer_norm",
    adapters_at="attention_adapters",
)
_BART_OUT = ResidualSite(
    residual_module="fc1",
    residual_arg=0,
    residual_kwarg="input",
    output_module="final_layer_norm",
    output_kind="sum",
    layer_norm="final_layer_norm",
    adapters_at="output_adapters",
)
_BART_CROSS = ResidualSite(
    residual_module="encoder_attn",
    residual_arg=0,
    residual_kwarg="hidden_states",
    output_module="encoder_attn_layer_norm",
    output_kind="sum",
    layer_norm="encoder_attn_layer_norm",
    adapters_at="cross_attention_adapters",
)

_BART = ArchitectureSpec(
    model_type="bart",
    embeddings="shared",
    invertible_after="encoder.layernorm_embedding",
    invertible_container="encoder",
    groups=(
        LayerGroup(
            name="encoder",
            layers="encoder.layers",
            self_attention=_bart_attention("self_attn", "encoder_prefix"),
            intermediate="fc1",
            output="fc2",
            mh_site=_BART_MH,
            output_site=_BART_OUT,
        ),
        LayerGroup(
            name="decoder",
            layers="decoder.layers",
            self_attention=_bart_attention("self_attn", "self_prefix"),
            cross_attention=_bart_attention("encoder_attn", "cross_prefix"),
            intermediate="fc1",
            output="fc2",
            mh_site=_BART_MH,
            output_site=_BART_OUT,
            cross_site=_BART_CROSS,
        ),
    ),
    pre_ln=False,
)

_LLAMA_GROUP = LayerGroup(
    name="decoder",
    layers="layers",
    self_attention=AttentionSpec(
        module="self_attn",
        q="self_attn.q_proj",
        k="self_attn.k_proj",
        v="self_attn.v_proj",
        o="self_attn.o_proj",
    ),
    # Swapped on purpose: the reference calls down_proj "intermediate" and up_proj "output".
    intermediate="mlp.down_proj",
    output="mlp.up_proj",
    mh_site=ResidualSite(
        residual_module="input_layernorm",
        residual_arg=0,
        residual_kwarg="hidden_states",
        output_module="self_attn",
        output_kind="output",
        layer_norm=None,
        adapters_at="attention_adapters",
    ),
    output_site=ResidualSite(
        residual_module="post_attention_layernorm",
        residual_arg=0,
        residual_kwarg="hidden_states",
        output_module="mlp",
        output_kind="output",
        layer_norm=None,
        adapters_at="output_adapters",
    ),
)


def _llama_like(model_type: str) -> ArchitectureSpec:
    return ArchitectureSpec(
        model_type=model_type,
        embeddings="embed_tokens",
        invertible_after="embed_tokens",
        groups=(_LLAMA_GROUP,),
        pre_ln=True,
    )


#: model_type → row. Add a row to support a model; nothing else in the backend changes.
ARCHITECTURES: dict[str, ArchitectureSpec] = {
    "bert": _BERT,
    "roberta": ArchitectureSpec(
        model_type="roberta",
        embeddings="embeddings",
        invertible_after="embeddings",
        groups=(_BERT_GROUP,),
        pre_ln=False,
        prompt_tuning=True,
    ),
    "gpt2": _GPT2,
    "bart": _BART,
    "llama": _llama_like("llama"),
    "mistral": _llama_like("mistral"),
    # The reference supports Qwen2 through its plugin interface, which (unlike its LLaMA and
    # Mistral classes) wires up_proj as "intermediate" and down_proj as "output".
    "qwen2": replace(
        _llama_like("qwen2"),
        groups=(replace(_LLAMA_GROUP, intermediate="mlp.up_proj", output="mlp.down_proj"),),
    ),
}


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


def get_architecture(model: nn.Module) -> ArchitectureSpec:
    """The table row for ``model``; a ``ConfigError`` naming the supported types otherwise."""
    model_type = model_type_of(model)
    spec = ARCHITECTURES.get(model_type)
    if spec is None:
        raise ConfigError.single(
            f"model type '{model_type}' is not supported by the adapter backend",
            expected="one of " + ", ".join(sorted(ARCHITECTURES)),
            found=repr(model_type),
            suggestion=did_you_mean(model_type, ARCHITECTURES),
            code="unsupported_model",
        )
    return spec


def resolve(module: nn.Module, path: str | None) -> nn.Module | None:
    """``module.get_submodule(path)``, or ``None`` when ``path`` is ``None`` or absent."""
    if path is None:
        return None
    if path == "":
        return module
    try:
        return module.get_submodule(path)
    except AttributeError:
        return None


@dataclass(frozen=True)
class LayerRef:
    """One transformer layer: its global index (reference numbering), group and module."""

    index: int
    local_index: int
    group: LayerGroup
    module: nn.Module


def iter_layers(model: nn.Module, arch: ArchitectureSpec) -> Iterator[LayerRef]:
    """Every layer of every group in reference order (encoder first, decoder offset after it)."""
    base = base_model_of(model)
    offset = 0
    for group in arch.groups:
        layers = resolve(base, group.layers)
        if layers is None:
            continue
        assert isinstance(layers, nn.ModuleList)
        for local, layer in enumerate(layers):
            yield LayerRef(offset + local, local, group, layer)
        offset += len(layers)


def num_layers(model: nn.Module, arch: ArchitectureSpec) -> int:
    return sum(1 for _ in iter_layers(model, arch))
