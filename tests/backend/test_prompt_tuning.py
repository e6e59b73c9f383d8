"""Prompt tuning on BERT and RoBERTa (the only supported models, as in the reference)."""

from __future__ import annotations

from typing import Any

import pytest

torch = pytest.importorskip("torch")

from adapter_dsl.backend import add_adapter, delete_adapter, set_active, train_adapter  # noqa: E402
from adapter_dsl.backend.methods.prompt_tuning import set_prompt_tokenizer  # noqa: E402
from adapter_dsl.errors import ConfigError  # noqa: E402
from tests.backend._method_helpers import (  # noqa: E402
    adapter_keys,
    assert_deep_copy_is_independent,
    assert_save_load_round_trip,
    one_thread,  # noqa: F401  (autouse fixture)
    reference,
    trainable,
)
from tests.backend.conftest import make_model, model_inputs  # noqa: E402

SUPPORTED = ["bert", "roberta"]


class CharTokenizer:
    """A stand-in tokenizer: one id per character, like a callable HF tokenizer."""

    def __call__(self, text: str) -> dict[str, list[int]]:
        return {"input_ids": [3 + (ord(c) % 90) for c in text]}


def hidden(model: Any, **inputs: Any) -> Any:
    return model(**inputs).last_hidden_state


@pytest.mark.parametrize("kind", SUPPORTED)
def test_counts_keys_and_gradients(kind: str) -> None:
    model = make_model(kind)
    add_adapter(model, "a", "prompt_tuning")
    train_adapter(model, "a")
    ref = reference(kind, "prompt_tuning")
    assert trainable(model) == (ref["trainable"] if ref else 320) == 320  # §5.1: 10·32
    assert adapter_keys(model, "prompt_tunings.a.") == (
        ref["saved_keys"]
        if ref
        else {"prompt_tuning.prompt_tunings.a.prompt_embedding.weight": [10, 32]}
    )
    model(**model_inputs(kind)).last_hidden_state.sum().backward()
    for name, p in model.named_parameters():
        assert (p.grad is not None) == (".prompt_tunings.a." in name), name


@pytest.mark.parametrize("kind", ["gpt2", "bart", "llama"])
def test_unsupported_models_are_refused(kind: str) -> None:
    with pytest.raises(ConfigError, match="prompt"):
        add_adapter(make_model(kind), "a", "prompt_tuning")


@pytest.mark.parametrize("kind", SUPPORTED)
def test_sequence_grows_and_mask_is_extended(kind: str) -> None:
    model = make_model(kind)
    add_adapter(model, "a", "prompt_tuning[prompt_length=4]", set_active=True)
    inputs = model_inputs(kind, batch=2, length=6)
    out = hidden(model, **inputs)
    assert tuple(out.shape) == (2, 10, 32)
    no_mask = {k: v for k, v in inputs.items() if k != "attention_mask"}
    torch.testing.assert_close(hidden(model, **no_mask), out, rtol=0, atol=1e-5)
    # Right padding: the prompt and the real tokens do not see the padded positions.
    short = {k: v[:, :4] for k, v in inputs.items()}
    padded = dict(inputs, attention_mask=inputs["attention_mask"].clone())
    padded["attention_mask"][:, 4:] = 0
    torch.testing.assert_close(
        hidden(model, **padded)[:, :8], hidden(model, **short), rtol=0, atol=1e-5
    )


def test_combine_modes_place_the_prompt() -> None:
    model = make_model("bert")
    add_adapter(model, "p", "prompt_tuning[prompt_length=3]")
    add_adapter(model, "b", "prompt_tuning[prompt_length=3, combine='prefix_after_bos']")
    ids = model_inputs("bert", batch=1, length=5)["input_ids"]
    plain = model.embeddings(input_ids=ids)
    set_active(model, "p")
    prompt_p = model.prompt_tuning.prompt_tunings["p"].prompt_embedding.weight
    torch.testing.assert_close(
        model.embeddings(input_ids=ids), torch.cat([prompt_p[None], plain], dim=1)
    )
    set_active(model, "b")
    prompt_b = model.prompt_tuning.prompt_tunings["b"].prompt_embedding.weight
    expected = torch.cat([plain[:, :1], prompt_b[None], plain[:, 1:]], dim=1)
    torch.testing.assert_close(model.embeddings(input_ids=ids), expected)


def test_random_uniform_uses_the_scale() -> None:
    model = make_model("bert")
    add_adapter(model, "a", "prompt_tuning[prompt_length=50]")
    add_adapter(model, "b", "prompt_tuning[prompt_length=50, random_uniform_scale=0.01]")
    weight_a = model.prompt_tuning.prompt_tunings["a"].prompt_embedding.weight
    weight_b = model.prompt_tuning.prompt_tunings["b"].prompt_embedding.weight
    assert 0.4 < weight_a.abs().max() <= 0.5
    assert weight_b.abs().max() <= 0.01


def test_from_string_copies_token_embeddings() -> None:
    model = make_model("bert")
    with pytest.raises(ConfigError, match="tokenizer"):
        add_adapter(model, "a", "prompt_tuning[prompt_init='from_string', prompt_init_text='abc']")
    set_prompt_tokenizer(model, CharTokenizer())
    add_adapter(
        model,
        "a",
        "prompt_tuning[prompt_length=5, prompt_init='from_string', prompt_init_text='abc']",
    )
    ids = CharTokenizer()("abcab")["input_ids"]  # repeated to the prompt length
    expected = model.embeddings.word_embeddings.weight[ids]
    torch.testing.assert_close(
        model.prompt_tuning.prompt_tunings["a"].prompt_embedding.weight, expected
    )


def test_delete_restores_the_model() -> None:
    model = make_model("roberta")
    keys = list(model.state_dict())
    before = hidden(model, **model_inputs("roberta"))
    add_adapter(model, "a", "prompt_tuning", set_active=True)
    assert hidden(model, **model_inputs("roberta")).shape[1] == before.shape[1] + 10
    delete_adapter(model, "a")
    assert list(model.state_dict()) == keys
    assert not model._forward_pre_hooks and not model.embeddings._forward_hooks
    torch.testing.assert_close(hidden(model, **model_inputs("roberta")), before, rtol=0, atol=0)


def test_save_load_round_trip(tmp_path: Any) -> None:
    assert_save_load_round_trip(
        "bert", "prompt_tuning[combine='prefix_after_bos']", (".prompt_tunings.a.",), tmp_path
    )


def test_deep_copy_is_independent() -> None:
    assert_deep_copy_is_independent("bert", "prompt_tuning", (".prompt_tunings.a.",))


def test_the_mask_extending_forward_keeps_the_signature_and_leaves_with_the_last_prompt() -> None:
    import inspect
    import pickle

    model = make_model("bert")
    want = inspect.signature(model.forward)
    add_adapter(model, "p", "prompt_tuning[prompt_length=3]", set_active=True)
    add_adapter(model, "q", "prompt_tuning[prompt_length=2]")
    assert "forward" in model.__dict__  # not a forward pre-hook (torch.compile: one frame)
    assert not model._forward_pre_hooks
    assert inspect.signature(model.forward) == want
    mask = torch.tensor([[1, 1, 1, 1, 0]])
    out = model(input_ids=torch.tensor([[5, 6, 7, 8, 0]]), attention_mask=mask)
    assert out.last_hidden_state.shape[1] == 8
    again = pickle.loads(pickle.dumps(model))
    assert again.forward.base is again  # the copy's forward runs the copy
    torch.testing.assert_close(
        again(input_ids=torch.tensor([[5, 6, 7, 8, 0]]), attention_mask=mask).last_hidden_state,
        out.last_hidden_state,
    )
    delete_adapter(model, "p")
    assert "forward" in model.__dict__
    delete_adapter(model, "q")
    assert "forward" not in model.__dict__ and inspect.signature(model.forward) == want
