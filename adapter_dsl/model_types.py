"""The model-type table: where things are inside each supported transformers model, as data.

One row (:class:`~adapter_dsl.model_interface.ModelSpec`) per ``model_type`` describes a *base*
model (``BertModel``, ``GPT2Model``, ...); all paths are dotted attribute paths, resolved by the
backend with ``nn.Module.get_submodule``:

* model-level paths (``embeddings``, ``invertible_after``, ``LayerGroup.layers``) are relative to
  the base model (``model.base_model`` for a model with a head);
* per-layer paths (everything inside :class:`LayerGroup`, :class:`AttentionSpec` and
  :class:`ResidualSite`) are relative to one transformer layer of that group.

Layer numbering follows the reference library: the encoder's layers come first, the decoder's
layers continue the count (``global index = group offset + local index``), so ``leave_out=[2]`` on
a 2+2-layer BART model means the first decoder layer.

This module is pure data (pydantic, no torch): the backend resolves the rows on a model
(:mod:`adapter_dsl.backend.architectures`), the PEFT conversion derives its module names from
them (:mod:`adapter_dsl.peft.models`). Registering a model interface
(``adapter_dsl.backend.register_model_type``) adds a row to :data:`MODEL_TYPES`; the built-in
rows (:data:`BUILT_IN`) are never replaced.
"""

from __future__ import annotations

from typing import Any, Literal

from adapter_dsl.model_interface import (
    ALL_FAMILIES,
    AttentionSpec,
    LayerGroup,
    ModelSpec,
    ResidualSite,
)

__all__ = ["BUILT_IN", "MODEL_TYPES"]

_NO_PREFIX = ALL_FAMILIES - {"prefix_tuning"}
#: Vision towers: the reference builds no invertible adapter (it needs token embeddings).
_VISION = ALL_FAMILIES - {"invertible"}


# ---------------------------------------------------------------------------------------------
# Rows


def _bert_group(
    *,
    self_module: str = "attention.self",
    q: str = "query",
    k: str = "key",
    v: str = "value",
    qkv: str | None = None,
    layer_norms: bool = True,
    name: Literal["encoder", "decoder"] = "encoder",
    layers: str = "encoder.layer",
    config: str = "",
) -> LayerGroup:
    """The BERT layer shape (RoBERTa, ELECTRA, XLM-R, DeBERTa, ...): ``attention.output`` and
    ``output`` take ``(hidden_states, input_tensor)`` and end in dropout → LN(H + X)."""

    def attention(module: str, location: str) -> AttentionSpec:
        projections: dict[str, Any] = (
            {"qkv": f"{module}.{qkv}"}
            if qkv is not None
            else {"q": f"{module}.{q}", "k": f"{module}.{k}", "v": f"{module}.{v}"}
        )
        owner = module.rpartition(".")[0]
        return AttentionSpec(
            module=module, o=f"{owner}.output.dense", prefix_location=location, **projections
        )

    def site(owner: str) -> ResidualSite:
        # BertSelfOutput.forward(hidden_states, input_tensor): X is argument 1; H the dropout's.
        return ResidualSite(
            residual_module=owner,
            residual_arg=1,
            residual_kwarg="input_tensor",
            output_module=f"{owner}.dropout",
            layer_norm=f"{owner}.LayerNorm" if layer_norms else None,
            adapters_at=owner,
        )

    cross_module = "crossattention." + self_module.partition(".")[2]
    return LayerGroup(
        name=name,
        layers=layers,
        self_attention=attention(self_module, "self_prefix"),
        cross_attention=attention(cross_module, "cross_prefix"),
        intermediate="intermediate.dense",
        output="output.dense",
        mh_site=site("attention.output"),
        output_site=site("output"),
        # As in the reference, BERT decoders' cross-attention output gets an *mh* adapter.
        cross_site=site("crossattention.output"),
        cross_site_flag="mh_adapter",
        config=config,
    )


_BERT_GROUP = _bert_group()


def _bert_like(
    model_type: str, group: LayerGroup = _BERT_GROUP, *, prompt_tuning: bool = True, **kw: Any
) -> ModelSpec:
    return ModelSpec(
        model_type=model_type,
        embeddings="embeddings",
        invertible_after="embeddings",
        groups=(group,),
        pre_ln=False,
        prompt_tuning=prompt_tuning,
        **kw,
    )


def _site(
    residual: str | None,
    output: str,
    adapters_at: str,
    *,
    kwarg: str | None = "hidden_states",
    arg: int = 0,
    layer_norm: str | None = None,
    kind: Literal["output", "sum"] = "output",
    hooked: bool = False,
    extra: str | None = None,
) -> ResidualSite:
    return ResidualSite(
        residual_module=residual,
        residual_arg=arg,
        residual_kwarg=kwarg,
        residual_extra=extra,
        output_module=output,
        output_kind=kind,
        layer_norm=layer_norm,
        adapters_at=adapters_at,
        hooked=hooked,
    )


def _attention(
    module: str,
    prefix_location: str = "self_prefix",
    *,
    names: tuple[str, str, str, str] = ("q_proj", "k_proj", "v_proj", "out_proj"),
) -> AttentionSpec:
    q, k, v, o = names
    return AttentionSpec(
        module=module,
        q=f"{module}.{q}",
        k=f"{module}.{k}",
        v=f"{module}.{v}",
        o=f"{module}.{o}",
        prefix_location=prefix_location,
    )


_GPT2 = ModelSpec(
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
            mh_site=_site("ln_1", "attn", "attention_adapters", kwarg="input"),
            output_site=_site("ln_2", "mlp", "output_adapters", kwarg="input"),
        ),
    ),
    pre_ln=True,
)

# GPT-J runs attention and FFN in parallel on ln_1(X): Y = attn + mlp + X. Like the reference,
# the FFN's adapter gets X' = attn' + X (the attention output after its own adapter).
_GPTJ = ModelSpec(
    model_type="gptj",
    embeddings="wte",
    invertible_after="drop",
    groups=(
        LayerGroup(
            name="decoder",
            layers="h",
            self_attention=_attention("attn"),
            intermediate="mlp.fc_in",
            output="mlp.fc_out",
            mh_site=_site("ln_1", "attn", "attention_adapters", kwarg="input"),
            output_site=_site("ln_1", "mlp", "output_adapters", kwarg="input", extra="attn"),
        ),
    ),
    pre_ln=True,
)


def _bart_group(
    name: Literal["encoder", "decoder"], *, pre_ln: bool, layers: str | None = None
) -> LayerGroup:
    """BART-shaped layers (BART, mBART, PLBart, Whisper). Post-LN ones apply dropout
    functionally, so H is recovered from the post-sublayer norm's input; pre-LN ones hand H
    over as the sublayer's output and X as the input of the norm in front of it."""

    def site(attn: str, norm: str, holder: str, first: str) -> ResidualSite:
        if pre_ln:
            return _site(norm, attn, holder)
        return _site(first, norm, holder, layer_norm=norm, kind="sum")

    decoder = name == "decoder"
    return LayerGroup(
        name=name,
        layers=layers or f"{name}.layers",
        self_attention=_attention("self_attn", "self_prefix" if decoder else "encoder_prefix"),
        cross_attention=_attention("encoder_attn", "cross_prefix") if decoder else None,
        intermediate="fc1",
        output="fc2",
        mh_site=site("self_attn", "self_attn_layer_norm", "attention_adapters", "self_attn"),
        output_site=(
            _site("final_layer_norm", "fc2", "output_adapters")
            if pre_ln
            else _site(
                "fc1",
                "final_layer_norm",
                "output_adapters",
                kwarg="input",
                layer_norm="final_layer_norm",
                kind="sum",
            )
        ),
        cross_site=(
            site(
                "encoder_attn",
                "encoder_attn_layer_norm",
                "cross_attention_adapters",
                "encoder_attn",
            )
            if decoder
            else None
        ),
    )


def _bart_like(
    model_type: str, *, pre_ln: bool, invertible_after: str = "encoder.layernorm_embedding"
) -> ModelSpec:
    return ModelSpec(
        model_type=model_type,
        embeddings="shared",
        invertible_after=invertible_after,
        invertible_container="encoder",
        groups=(_bart_group("encoder", pre_ln=pre_ln), _bart_group("decoder", pre_ln=pre_ln)),
        pre_ln=pre_ln,
    )


def _t5_group(name: Literal["encoder", "decoder"]) -> LayerGroup:
    """T5/mT5 blocks: ``layer.0`` self-attention, (decoder) ``layer.1`` cross-attention, the last
    ``layer.<i>`` the FFN; each sublayer is pre-LN with its own dropout, and is itself the
    reference's bottleneck holder (keys ``block.<i>.layer.<j>.adapters.<name>``)."""
    decoder = name == "decoder"
    ffn = "layer.2" if decoder else "layer.1"

    def attention(sub: str, module: str, location: str) -> AttentionSpec:
        return _attention(f"{sub}.{module}", location, names=("q", "k", "v", "o"))

    def site(sub: str) -> ResidualSite:
        return _site(f"{sub}.layer_norm", f"{sub}.dropout", sub)

    return LayerGroup(
        name=name,
        layers=f"{name}.block",
        self_attention=attention(
            "layer.0", "SelfAttention", "self_prefix" if decoder else "encoder_prefix"
        ),
        cross_attention=attention("layer.1", "EncDecAttention", "cross_prefix")
        if decoder
        else None,
        # Gated FFNs (T5 v1.1, mT5) have wi_0/wi_1: the reference adapts wi_1, never wi_0.
        intermediate=f"{ffn}.DenseReluDense.wi|{ffn}.DenseReluDense.wi_1",
        output=f"{ffn}.DenseReluDense.wo",
        gate=f"{ffn}.DenseReluDense.wi_0",  # gated FFNs only
        mh_site=site("layer.0"),
        output_site=site(ffn),
        cross_site=site("layer.1") if decoder else None,
    )


def _t5_like(model_type: str) -> ModelSpec:
    return ModelSpec(
        model_type=model_type,
        embeddings="shared",
        # After the encoder's embedding dropout, i.e. at the input of its first block.
        invertible_after="encoder.block.0",
        invertible_input=True,
        invertible_container="encoder",
        groups=(_t5_group("encoder"), _t5_group("decoder")),
        pre_ln=True,
    )


def _vision_group(
    layers: str, output_module: str, *, config: str = "", name: Literal["encoder", "vision"]
) -> LayerGroup:
    """ViT/BEiT layers of transformers 5: pre-LN, one module (ViT's dropout, BEiT's drop_path
    after its layer scale) called after attention and again after the MLP: each site takes the
    first call after its residual was captured, which is where the reference's adapters sit."""
    return LayerGroup(
        name=name,
        layers=layers,
        self_attention=_attention("attention", names=("q_proj", "k_proj", "v_proj", "o_proj")),
        intermediate="mlp.fc1",
        output="mlp.fc2",
        mh_site=_site("layernorm_before", output_module, "attention_adapters"),
        output_site=_site("layernorm_after", output_module, "output_adapters"),
        config=config,
    )


#: transformers 4.57 → 5 renames inside ViT/BEiT layers (reference key → ours).
_VIT_KEYS = (
    ("encoder.layer.", "layers."),
    (".output.output_adapters.", ".output_adapters."),
    (".attention.attention.query.", ".attention.q_proj."),
    (".attention.attention.key.", ".attention.k_proj."),
    (".attention.attention.value.", ".attention.v_proj."),
    (".intermediate.dense.", ".mlp.fc1."),
    (".output.dense.", ".mlp.fc2."),
    # The reference's copies of the prefix pool under each attention module.
    (".attention.attention.prefix_tuning.", ".attention.prefix_tuning."),
)


#: BEiT's reference output adapter sits on the layer, not on its ``output`` module.
_BEIT_KEYS = tuple(pair for pair in _VIT_KEYS if "output_adapters" not in pair[0])


def _vision(model_type: str, output_module: str, keys: tuple[tuple[str, str], ...]) -> ModelSpec:
    return ModelSpec(
        model_type=model_type,
        embeddings="embeddings",
        invertible_after="embeddings",
        groups=(_vision_group("layers", output_module, name="encoder"),),
        pre_ln=True,
        families=_VISION,
        # Patch embeddings have no token table to prepend prompts from: refused here.
        prompt_tuning=False,
        reference_keys=keys,
    )


def _clip_group(tower: Literal["text", "vision"], root: str, config: str) -> LayerGroup:
    return LayerGroup(
        name=tower,
        layers=f"{root}encoder.layers",
        self_attention=_attention("self_attn", f"clip_{tower}_model_self_prefix"),
        intermediate="mlp.fc1",
        output="mlp.fc2",
        mh_site=_site("layer_norm1", "self_attn", "attention_adapters"),
        output_site=_site("layer_norm2", "mlp", "output_adapters"),
        config=config,
    )


def _clip(model_type: str, towers: tuple[Literal["text", "vision"], ...]) -> ModelSpec:
    """CLIPModel (both towers, each sized by its own sub-config) or one tower's model. A tower
    model of transformers 5 holds its modules directly (4.57: under ``<tower>_model``)."""
    dual = len(towers) == 2
    first = towers[0]
    root = f"{first}_model." if dual else ""
    keys = (
        ()
        if dual
        else (
            (f"{first}_model.encoder.", "encoder."),
            (f"{first}_model.invertible_adapters.", "invertible_adapters."),
        )
    )
    return ModelSpec(
        model_type=model_type,
        embeddings=f"{root}embeddings",
        invertible_after=f"{root}embeddings",
        invertible_container=root.rstrip("."),
        groups=tuple(
            _clip_group(t, f"{t}_model." if dual else "", f"{t}_config" if dual else "")
            for t in towers
        ),
        pre_ln=True,
        families=ALL_FAMILIES if "text" in towers else _VISION,
        reference_keys=keys,
    )


_LLAMA_GROUP = LayerGroup(
    name="decoder",
    layers="layers",
    self_attention=_attention("self_attn", names=("q_proj", "k_proj", "v_proj", "o_proj")),
    # Swapped on purpose: the reference calls down_proj "intermediate" and up_proj "output".
    intermediate="mlp.down_proj",
    output="mlp.up_proj",
    gate="mlp.gate_proj",
    mh_site=_site("input_layernorm", "self_attn", "attention_adapters"),
    output_site=_site("post_attention_layernorm", "mlp", "output_adapters"),
)


def _llama_like(
    model_type: str, groups: tuple[LayerGroup, ...] = (_LLAMA_GROUP,), **kw: Any
) -> ModelSpec:
    return ModelSpec(
        model_type=model_type,
        embeddings="embed_tokens",
        invertible_after="embed_tokens",
        groups=groups,
        pre_ln=True,
        **kw,
    )


# The reference supports these through its plugin interface ("hooking mode", see ResidualSite),
# with up_proj as "intermediate". It refuses prefix tuning and MTL-LoRA there; both work here
# (the attention modules use transformers' attention functions), prompt tuning is refused.
_PLUGIN_LLAMA_GROUP = _LLAMA_GROUP.model_copy(
    update={"intermediate": "mlp.up_proj", "output": "mlp.down_proj"}
)


def _gemma(model_type: str) -> ModelSpec:
    # Gemma norms each sublayer's output before the residual sum; the reference hands those
    # norms to the adapters (each layer its own here: the reference's closure gives every layer
    # the last layer's norms, a bug we do not copy).
    group = _PLUGIN_LLAMA_GROUP.model_copy(
        update={
            "mh_site": _site(
                "input_layernorm",
                "self_attn.o_proj",
                "attention_adapters",
                layer_norm="post_attention_layernorm",
                hooked=True,
            ),
            "output_site": _site(
                "pre_feedforward_layernorm",
                "mlp.down_proj",
                "output_adapters",
                layer_norm="post_feedforward_layernorm",
                hooked=True,
            ),
        }
    )
    return _llama_like(model_type, (group,))


_MODERNBERT = ModelSpec(
    model_type="modernbert",
    embeddings="embeddings",
    invertible_after="embeddings",
    groups=(
        LayerGroup(
            name="encoder",
            layers="layers",
            self_attention=AttentionSpec(module="attn", qkv="attn.Wqkv", o="attn.Wo"),
            intermediate="mlp.Wi",
            output="mlp.Wo",
            # As the reference's interface: X is the attention's (normed) input.
            mh_site=_site(
                "attn", "attn.Wo", "attention_adapters", layer_norm="mlp_norm", hooked=True
            ),
            output_site=_site("mlp", "mlp.Wo", "output_adapters", hooked=True),
        ),
    ),
    pre_ln=True,
)

# Phi runs attention and FFN in parallel; the reference's interface gives the FFN adapter no
# residual (X = 0), so parallel adapters there are refused (the reference crashes on them).
_PHI = _llama_like(
    "phi",
    groups=(
        LayerGroup(
            name="decoder",
            layers="layers",
            self_attention=_attention("self_attn", names=("q_proj", "k_proj", "v_proj", "dense")),
            intermediate="mlp.fc1",
            output="mlp.fc2",
            mh_site=_site("input_layernorm", "self_attn.dense", "attention_adapters", hooked=True),
            output_site=_site(None, "mlp.fc2", "output_adapters", hooked=True),
        ),
    ),
)

_DISTILBERT = ModelSpec(
    model_type="distilbert",
    embeddings="embeddings",
    invertible_after="embeddings",
    groups=(
        LayerGroup(
            name="encoder",
            layers="transformer.layer",
            self_attention=_attention(
                "attention", "self", names=("q_lin", "k_lin", "v_lin", "out_lin")
            ),
            intermediate="ffn.lin1",
            output="ffn.lin2",
            mh_site=_site(
                "attention", "attention", "attention_adapters", layer_norm="sa_layer_norm"
            ),
            output_site=_site(
                "ffn", "ffn", "output_adapters", kwarg="input", layer_norm="output_layer_norm"
            ),
        ),
    ),
    pre_ln=False,
    prompt_tuning=True,
)

# ALBERT shares one layer across all depths; like the reference we count it once.
_ALBERT = _bert_like(
    "albert",
    LayerGroup(
        name="encoder",
        layers="encoder.albert_layer_groups.0.albert_layers",
        self_attention=AttentionSpec(
            module="attention",
            q="attention.query",
            k="attention.key",
            v="attention.value",
            o="attention.dense",
        ),
        intermediate="ffn",
        output="ffn_output",
        mh_site=_site(
            "attention",
            "attention.output_dropout",
            "attention.attention_adapters",
            layer_norm="attention.LayerNorm",
        ),
        output_site=_site(
            "ffn",
            "ffn_output",
            "output_adapters",
            kwarg="input",
            layer_norm="full_layer_layer_norm",
        ),
    ),
)

#: model_type → row. Add a row to support a model; nothing else in the backend changes.
MODEL_TYPES: dict[str, ModelSpec] = {
    "bert": _bert_like("bert"),
    "roberta": _bert_like("roberta"),
    "xlm-roberta": _bert_like("xlm-roberta"),
    "bert-generation": _bert_like("bert-generation"),
    "electra": _bert_like("electra"),
    # X-MOD applies its own language adapter and norms after the residual sum, so the sites hand
    # no norm over. (The reference replaces that forward, dropping the language adapters.)
    "xmod": _bert_like("xmod", _bert_group(layer_norms=False)),
    # DeBERTa's attention does not use transformers' attention functions: no prefix tuning; its
    # relative-position mask does not follow prepended prompts either: no prompt tuning.
    # Its bias-less in_proj is split in thirds (q | k | v) for LoRA, as the reference does, and
    # is left without a bias (the reference adds a random one, changing the base outputs).
    "deberta": _bert_like(
        "deberta", _bert_group(qkv="in_proj"), families=_NO_PREFIX, prompt_tuning=False
    ),
    "deberta-v2": _bert_like(
        "deberta-v2",
        _bert_group(q="query_proj", k="key_proj", v="value_proj"),
        families=_NO_PREFIX,
        prompt_tuning=False,
    ),
    "distilbert": _DISTILBERT,
    "albert": _ALBERT,
    "gpt2": _GPT2,
    "gptj": _GPTJ,
    "bart": _bart_like("bart", pre_ln=False),
    "plbart": _bart_like("plbart", pre_ln=False),
    "mbart": _bart_like("mbart", pre_ln=True),
    "whisper": ModelSpec(
        model_type="whisper",
        embeddings="decoder.embed_tokens",
        # The reference hooks its "post-embedding" invertible adapter on the encoder's final norm.
        invertible_after="encoder.layer_norm",
        invertible_container="encoder",
        groups=(_bart_group("encoder", pre_ln=True), _bart_group("decoder", pre_ln=True)),
        pre_ln=True,
    ),
    "t5": _t5_like("t5"),
    "mt5": _t5_like("mt5"),
    "vit": _vision("vit", "dropout", _VIT_KEYS),
    "beit": _vision("beit", "drop_path", _BEIT_KEYS),
    "clip": _clip("clip", ("text", "vision")),
    "clip_text_model": _clip("clip_text_model", ("text",)),
    "clip_vision_model": _clip("clip_vision_model", ("vision",)),
    "llama": _llama_like("llama"),
    "mistral": _llama_like("mistral"),
    # The reference supports Qwen2 through its plugin interface, which (unlike its LLaMA and
    # Mistral classes) wires up_proj as "intermediate" and down_proj as "output".
    "qwen2": _llama_like("qwen2", groups=(_PLUGIN_LLAMA_GROUP,)),
    "qwen3": _llama_like("qwen3", groups=(_PLUGIN_LLAMA_GROUP,)),
    "gemma2": _gemma("gemma2"),
    "gemma3_text": _gemma("gemma3_text"),
    "phi": _PHI,
    "modernbert": _MODERNBERT,
}
#: The built-in rows (registration may add more to MODEL_TYPES, never replace these).
BUILT_IN: frozenset[str] = frozenset(MODEL_TYPES)
