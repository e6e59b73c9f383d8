"""API rules: what train_adapter freezes, adding next to a merged adapter, empty placements."""

from __future__ import annotations

from typing import Any

import pytest

from adapter_dsl import ConfigError

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from adapter_dsl.backend import (  # noqa: E402
    add_adapter,
    list_adapters,
    merge_adapter,
    set_active,
    train_adapter,
    unmerge_adapter,
)
from tests.backend.conftest import make_model  # noqa: E402


def _classifier() -> object:
    torch.manual_seed(0)
    config = transformers.BertConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        vocab_size=99,
        num_labels=3,
    )
    return transformers.BertForSequenceClassification(config)


def test_train_adapter_freezes_the_base_model_and_leaves_the_head_trainable() -> None:
    model = _classifier()
    add_adapter(model, "a", "lora")
    add_adapter(model, "b", "seq_bn")
    train_adapter(model, "a")
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}  # type: ignore[attr-defined]
    assert {n for n in trainable if not n.startswith("classifier.")} == {
        n for n in trainable if ".loras.a." in n
    }
    assert {"classifier.weight", "classifier.bias"} <= trainable
    assert not any(".adapters.b." in n for n in trainable)


def test_adding_while_an_adapter_is_merged_is_refused() -> None:
    model = make_model("bert")
    add_adapter(model, "a", "lora[init_weights='bert']")
    merge_adapter(model, "a")
    with pytest.raises(ConfigError, match=r"unmerge_adapter\(model, 'a'\) first"):
        add_adapter(model, "b", "dora")
    assert list_adapters(model) == ["a"]
    unmerge_adapter(model, "a")
    add_adapter(model, "b", "dora")


def test_a_bottleneck_left_out_of_every_layer_is_refused() -> None:
    model = make_model("bert")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ConfigError, match="leaves out every layer"):
        add_adapter(model, "a", "seq_bn[leave_out=[0, 1]]")
    assert list_adapters(model) == []
    assert model.state_dict().keys() == before.keys()
    add_adapter(model, "b", "seq_bn[leave_out=[0, 5]]")  # layer 1 remains; 5 does not exist


def test_two_lora_adapters_on_fused_qkv_are_refused_when_activated() -> None:
    model = make_model("gpt2")
    add_adapter(model, "a", "lora")
    add_adapter(model, "b", "lora")
    with pytest.raises(ConfigError, match="fused q/k/v"):
        set_active(model, ["a", "b"])
    set_active(model, "b")  # one at a time works


def _causal_lm(kind: str) -> Any:
    """A tiny GPT-2 or LLaMA language model in eval mode."""
    torch.manual_seed(0)
    if kind == "gpt2":
        config: Any = transformers.GPT2Config(n_embd=32, n_layer=2, n_head=4, vocab_size=99)
        return transformers.GPT2LMHeadModel(config).eval()
    config = transformers.LlamaConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=37,
        vocab_size=99,
    )
    return transformers.LlamaForCausalLM(config).eval()


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_invertible_adapter_is_inverted_before_the_lm_head(kind: str) -> None:
    model = _causal_lm(kind)
    add_adapter(model, "a", "seq_bn_inv", set_active=True)
    block = model.base_model.invertible_adapters["a"]
    with torch.no_grad():
        for p in block.parameters():
            p.add_(torch.randn_like(p) * 0.5)  # a block far from the identity
    seen: dict[str, torch.Tensor] = {}
    model.base_model.register_forward_hook(lambda m, a, out: seen.update(h=out[0]))
    model.get_output_embeddings().register_forward_pre_hook(lambda m, a: seen.update(x=a[0]))
    with torch.no_grad():
        model(torch.randint(0, 99, (2, 7)))
        assert not torch.allclose(seen["x"], seen["h"])
        torch.testing.assert_close(block(seen["x"]), seen["h"], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_loreft_generation_with_the_cache_matches_without(kind: str) -> None:
    model = _causal_lm(kind)
    add_adapter(model, "a", "noreft[dropout=0.0]", set_active=True)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".refts.a." in name:
                p.add_(torch.randn_like(p))
    ids = torch.randint(0, 99, (1, 7))
    kwargs = {"max_new_tokens": 6, "do_sample": False, "pad_token_id": 0}
    with torch.no_grad():
        cached = model.generate(ids, use_cache=True, **kwargs)
        uncached = model.generate(ids, use_cache=False, **kwargs)
    assert torch.equal(cached, uncached)
