"""Prefix tuning (MLP-reparametrised and flat, gated, GQA, leave_out) and the prefix/LoRA members
of MAM and UniPELT, on every supported architecture."""

from __future__ import annotations

from typing import Any

import pytest

torch = pytest.importorskip("torch")

from adapter_dsl.backend import add_adapter, delete_adapter, set_active, train_adapter  # noqa: E402
from adapter_dsl.backend.methods.attention_hook import AttentionConfigView, extend_mask  # noqa: E402
from adapter_dsl.backend.methods.prefix_tuning import PrefixTuningLayer  # noqa: E402
from adapter_dsl.errors import ConfigError  # noqa: E402
from tests.backend._method_helpers import (  # noqa: E402
    KINDS,
    adapter_keys,
    assert_deep_copy_is_independent,
    assert_save_load_round_trip,
    one_thread,  # noqa: F401  (autouse fixture)
    reference,
    trainable,
)
from tests.backend.conftest import make_model, model_inputs  # noqa: E402

IDENTIFIERS = [
    "prefix_tuning",
    "prefix_tuning_flat",
    "prefix_tuning[flat=True, prefix_length=5]",
    "mam",
    "unipelt",
]
# Reference §5.1 (identical on tiny BERT and GPT-2).
SECTION_5_1 = {"prefix_tuning": 83520, "prefix_tuning_flat": 3840, "mam": 132032, "unipelt": 85516}
MARKERS = (".prefix_tunings.a.", ".prefix_gates.a.", ".loras.a.", ".adapters.a.")


def outputs(model: Any, kind: str, **inputs: Any) -> Any:
    return model(**inputs).last_hidden_state


def inputs_without_masks(kind: str) -> dict[str, Any]:
    inputs = model_inputs(kind)
    inputs.pop("attention_mask")
    return inputs


@pytest.mark.parametrize("identifier", IDENTIFIERS)
@pytest.mark.parametrize("kind", KINDS)
def test_trainable_counts_and_keys_match_reference(kind: str, identifier: str) -> None:
    ref = reference(kind, identifier)
    if ref is None:
        pytest.skip("no reference figure")
    model = make_model(kind)
    add_adapter(model, "a", identifier)
    train_adapter(model, "a")
    assert trainable(model) == ref["trainable"]
    if kind in ("bert", "gpt2") and identifier in SECTION_5_1:
        assert trainable(model) == SECTION_5_1[identifier]
    ours: dict[str, list[int]] = {}
    for marker in MARKERS:
        ours.update(adapter_keys(model, marker))
    # The reference saves every prefix tensor once more per layer (under `….prefix_tuning.pool.`).
    theirs = {k: v for k, v in ref["saved_keys"].items() if ".pool." not in k}
    assert ours == theirs


@pytest.mark.parametrize(
    "identifier",
    ["prefix_tuning", "prefix_tuning_flat", "prefix_tuning[use_gating=True, shared_gating=False]"],
)
@pytest.mark.parametrize("kind", KINDS)
def test_forward_backward_reaches_only_adapter_parameters(kind: str, identifier: str) -> None:
    model = make_model(kind)
    before = outputs(model, kind, **model_inputs(kind))
    add_adapter(model, "a", identifier)
    train_adapter(model, "a")
    model.eval()  # deterministic; gradients do not need dropout
    out = outputs(model, kind, **model_inputs(kind))
    assert (out - before).abs().max() > 1e-3
    out.pow(2).sum().backward()
    for name, p in model.named_parameters():
        if ".prefix_tunings.a." in name or ".prefix_gates.a." in name:
            assert p.requires_grad and p.grad is not None and p.grad.abs().sum() > 0, name
        else:
            assert not p.requires_grad and p.grad is None, name


@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
@pytest.mark.parametrize("kind", KINDS)
def test_all_ones_mask_equals_no_mask(kind: str, implementation: str) -> None:
    model = make_model(kind)
    model.set_attn_implementation(implementation)
    add_adapter(model, "a", "prefix_tuning[prefix_length=4]", set_active=True)
    with_mask = model_inputs(kind)
    if kind == "bart":
        with_mask["decoder_attention_mask"] = torch.ones_like(with_mask["decoder_input_ids"])
    torch.testing.assert_close(
        outputs(model, kind, **with_mask),
        outputs(model, kind, **inputs_without_masks(kind)),
        rtol=0,
        atol=1e-5,
    )


@pytest.mark.parametrize("kind", KINDS)
def test_eager_and_sdpa_agree(kind: str) -> None:
    results = []
    for implementation in ("eager", "sdpa"):
        model = make_model(kind)
        model.set_attn_implementation(implementation)
        add_adapter(
            model, "a", "prefix_tuning[prefix_length=3, init_weights_seed=5]", set_active=True
        )
        results.append(outputs(model, kind, **model_inputs(kind)))
    torch.testing.assert_close(results[0], results[1], rtol=0, atol=1e-5)


@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
@pytest.mark.parametrize("kind", KINDS)
def test_padding_is_masked_out_but_prefixes_are_attended(kind: str, implementation: str) -> None:
    """Right padding: the real tokens' outputs equal those of the unpadded sequence."""
    model = make_model(kind)
    model.set_attn_implementation(implementation)
    add_adapter(model, "a", "prefix_tuning_flat[prefix_length=3]", set_active=True)
    inputs = model_inputs(kind, batch=1, length=7)
    short = {k: v[:, :5] for k, v in inputs.items()}
    padded = dict(inputs)
    padded["attention_mask"] = inputs["attention_mask"].clone()
    padded["attention_mask"][:, 5:] = 0
    if (
        kind == "bart"
    ):  # pad the encoder side only; the decoder attends to it through cross-attention
        short["decoder_input_ids"] = inputs["decoder_input_ids"]
        expected = outputs(model, kind, **short)
        torch.testing.assert_close(outputs(model, kind, **padded), expected, rtol=0, atol=1e-5)
    else:
        expected = outputs(model, kind, **short)
        torch.testing.assert_close(
            outputs(model, kind, **padded)[:, :5], expected, rtol=0, atol=1e-5
        )


def test_prefix_is_prepended_to_keys_and_values_of_each_layer() -> None:
    """Recompute BERT's first self-attention by hand with the generated prefix."""
    model = make_model("bert")
    add_adapter(model, "a", "prefix_tuning[prefix_length=3]", set_active=True)
    attention = model.encoder.layer[0].attention.self
    layer = attention.prefix_tuning
    assert isinstance(layer, PrefixTuningLayer) and layer.prefixes == {"a": 0}
    hidden = torch.randn(2, 5, 32)
    got, _ = attention(hidden)
    states = model.prefix_tuning.prefix_tunings["a"]["self_prefix"](2)  # (2·layers, B, H, L, d)
    prefix_k, prefix_v = states[0], states[1]
    assert tuple(prefix_k.shape) == (2, 4, 3, 8)

    def heads(x: Any) -> Any:
        return x.view(2, 5, 4, 8).transpose(1, 2)

    q = heads(attention.query(hidden))
    k = torch.cat([prefix_k, heads(attention.key(hidden))], dim=2)
    v = torch.cat([prefix_v, heads(attention.value(hidden))], dim=2)
    weights = torch.softmax(q @ k.transpose(-1, -2) / 8**0.5, dim=-1)
    expected = (weights @ v).transpose(1, 2).reshape(2, 5, 32)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_gqa_prefixes_have_key_value_heads() -> None:
    model = make_model("llama")
    add_adapter(model, "a", "prefix_tuning_flat[prefix_length=6]")
    states = model.prefix_tuning.prefix_tunings["a"]["self_prefix"](3)
    assert tuple(states.shape) == (2 * 2, 3, 2, 6, 8)  # (2·layers, batch, H_kv=2, L, d_head)


def test_locations_follow_the_reference() -> None:
    model = make_model("bart")
    add_adapter(model, "a", "prefix_tuning_flat[cross_prefix=False, leave_out=[1]]")
    group = model.prefix_tuning.prefix_tunings["a"]
    assert sorted(group) == ["encoder_prefix", "self_prefix"]
    assert group["encoder_prefix"].n_layers == 1 and group["self_prefix"].n_layers == 2
    assert not hasattr(model.encoder.layers[1].self_attn, "prefix_tuning")
    assert model.decoder.layers[1].self_attn.prefix_tuning.prefixes == {"a": 1}
    assert not hasattr(model.decoder.layers[0].encoder_attn, "prefix_tuning")
    # encoder_prefix=False is ignored on BERT-family encoders (their key is self_prefix).
    bert = make_model("bert")
    add_adapter(bert, "a", "prefix_tuning_flat[encoder_prefix=False]")
    assert sorted(bert.prefix_tuning.prefix_tunings["a"]) == ["self_prefix"]


def test_stacked_prefixes_prepend_both() -> None:
    model = make_model("gpt2")
    add_adapter(model, "a", "prefix_tuning_flat[prefix_length=2]")
    add_adapter(model, "b", "prefix_tuning_flat[prefix_length=3]")
    set_active(model, ["a", "b"])
    block = model.h[0].attn.prefix_tuning.prefix_block(torch.zeros(2, 4, 5, 8))
    assert block is not None
    key, value, valid = block
    # As in the reference's Stack, the later adapter's prefix comes first: b (3), then a (2).
    assert key.shape[-2] == value.shape[-2] == 5 and valid is None
    gen = model.prefix_tuning.prefix_tunings
    torch.testing.assert_close(key[:, :, :3], gen["b"]["self_prefix"].layer_states(0, 2)[0])
    torch.testing.assert_close(key[:, :, 3:], gen["a"]["self_prefix"].layer_states(0, 2)[0])
    both = outputs(model, "gpt2", **model_inputs("gpt2"))
    set_active(model, "a")
    assert (outputs(model, "gpt2", **model_inputs("gpt2")) - both).abs().max() > 1e-4


def test_gate_scales_keys_and_values() -> None:
    model = make_model("bert")
    add_adapter(
        model,
        "a",
        "prefix_tuning_flat[prefix_length=2, use_gating=True, shared_gating=False]",
        set_active=True,
    )
    layer = model.encoder.layer[1].attention.self.prefix_tuning
    gate = layer.prefix_gates["a"]
    assert tuple(gate.weight.shape) == (2, 32)
    layer.residual = torch.randn(2, 5, 32)
    block = layer.prefix_block(torch.zeros(2, 4, 5, 8))
    assert block is not None
    k, v, _ = block
    states = model.prefix_tuning.prefix_tunings["a"]["self_prefix"](2)
    g = torch.sigmoid(gate(layer.residual)).mean(dim=1)
    torch.testing.assert_close(k, states[2] * g[:, 0].view(-1, 1, 1, 1))
    torch.testing.assert_close(v, states[3] * g[:, 1].view(-1, 1, 1, 1))
    layer.residual = None


def test_delete_restores_attention_modules() -> None:
    model = make_model("llama")
    keys = list(model.state_dict())
    attention = model.layers[0].self_attn
    config = attention.config
    hooks = (
        len(attention._forward_pre_hooks),
        len(attention._forward_hooks),
        len(model._forward_hooks),
    )
    before = outputs(model, "llama", **model_inputs("llama"))
    add_adapter(model, "a", "unipelt", set_active=True)
    add_adapter(model, "b", "prefix_tuning_flat")
    assert isinstance(attention.config, AttentionConfigView)
    delete_adapter(model, "a")
    assert isinstance(attention.config, AttentionConfigView)  # still used by "b"
    delete_adapter(model, "b")
    assert attention.config is config
    assert (
        len(attention._forward_pre_hooks),
        len(attention._forward_hooks),
        len(model._forward_hooks),
    ) == hooks
    assert list(model.state_dict()) == keys
    torch.testing.assert_close(
        outputs(model, "llama", **model_inputs("llama")), before, rtol=0, atol=0
    )


def test_generation_cache_is_not_polluted_by_prefixes() -> None:
    """Incremental decoding with a KV cache equals the full forward (prefix added after the cache)."""
    model = make_model("gpt2")
    add_adapter(model, "a", "prefix_tuning_flat[prefix_length=3]", set_active=True)
    ids = model_inputs("gpt2", batch=1, length=6)["input_ids"]
    full = model(input_ids=ids).last_hidden_state
    first = model(input_ids=ids[:, :4], use_cache=True)
    step = model(input_ids=ids[:, 4:], cache=first.cache, use_cache=True).last_hidden_state
    torch.testing.assert_close(step, full[:, 4:], rtol=1e-5, atol=1e-5)


def test_extend_mask_formats() -> None:
    query = torch.zeros(1, 1, 2, 4)
    float_mask = torch.tensor([[[[0.0, -1e9, 0.0]]]]).expand(1, 1, 2, 3)
    out = extend_mask(float_mask, 2, query, 3, causal=False, implementation="eager")
    assert (
        out is not None
        and out.shape[-1] == 5
        and torch.equal(out[..., :2], torch.zeros(1, 1, 2, 2))
    )
    bool_mask = torch.tensor([[[[True, False, True]]]])
    out = extend_mask(bool_mask, 1, query, 3, causal=False, implementation="sdpa")
    assert out is not None and out.tolist() == [[[[True, True, False, True]]]]
    assert extend_mask(None, 2, query, 2, causal=False, implementation="sdpa") is None
    causal = extend_mask(None, 1, query, 3, causal=True, implementation="sdpa")
    # 2 queries at positions 1 and 2 of 3 keys (one cached), plus one prefix key in front.
    assert causal is not None and causal[0, 0].tolist() == [
        [True, True, True, False],
        [True, True, True, True],
    ]


def test_unsupported_attention_implementation_is_refused() -> None:
    model = make_model("bert")
    model.config._attn_implementation = "flex_attention"
    with pytest.raises(ConfigError, match="attention implementation"):
        add_adapter(model, "a", "prefix_tuning")


def test_gpt2_upcast_attention_path_is_kept() -> None:
    """GPT-2's eager ``reorder_and_upcast_attn`` path still runs (and agrees) with prefixes."""
    results, calls = [], []
    for upcast in (False, True):
        model = make_model("gpt2")
        model.set_attn_implementation("eager")
        for block in model.h:
            attn = block.attn
            attn.reorder_and_upcast_attn = upcast
            original = attn._upcast_and_reordered_attn

            def counted(*args: Any, _original: Any = original) -> Any:
                calls.append(args[1].shape[-2])  # key length: prefix + tokens
                return _original(*args)

            attn._upcast_and_reordered_attn = counted
        add_adapter(
            model, "a", "prefix_tuning_flat[prefix_length=3, init_weights_seed=1]", set_active=True
        )
        results.append(outputs(model, "gpt2", **model_inputs("gpt2")))
    assert calls == [3 + 7, 3 + 7]  # used only when enabled, once per layer, with the prefix
    torch.testing.assert_close(results[0], results[1], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("kind", "identifier"),
    [("bart", "prefix_tuning"), ("llama", "unipelt"), ("gpt2", "prefix_tuning_flat")],
)
def test_save_load_round_trip(kind: str, identifier: str, tmp_path: Any) -> None:
    assert_save_load_round_trip(kind, identifier, MARKERS, tmp_path)


@pytest.mark.parametrize("kind", ["bert", "bart"])
def test_deep_copy_is_independent(kind: str) -> None:
    assert_deep_copy_is_independent(kind, "prefix_tuning[use_gating=True]", MARKERS)


@pytest.mark.parametrize("identifier", ["prefix_tuning", "prefix_tuning_flat"])
def test_per_layer_slices_equal_the_reference_layout(identifier: str) -> None:
    """Each attention computes only its slice; it equals the reference's all-layers output."""
    model = make_model("bart")
    add_adapter(model, "a", identifier)
    generator = model.prefix_tuning.prefix_tunings["a"]["cross_prefix"]
    full = generator(3)  # (2·layers, batch, H, L, d): key of layer i at 2i, value at 2i+1
    for index in range(generator.n_layers):
        key, value = generator.layer_states(index, 3)
        torch.testing.assert_close(key, full[2 * index], rtol=0, atol=1e-6)
        torch.testing.assert_close(value, full[2 * index + 1], rtol=0, atol=1e-6)
