"""Tiny Hugging Face models for the backend tests (built from config objects, never downloaded)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

HIDDEN = 32


@pytest.fixture(autouse=True, scope="session")
def _single_thread() -> Iterator[None]:
    """Tiny models only suffer from intra-op threads: on a 2-core machine a forward pass takes
    ~0.2 s with 2 threads and ~3 ms with one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _bert() -> Any:
    cfg = transformers.BertConfig(
        hidden_size=HIDDEN,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        vocab_size=99,
    )
    return transformers.BertModel(cfg)


def _roberta() -> Any:
    cfg = transformers.RobertaConfig(
        hidden_size=HIDDEN,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        vocab_size=99,
    )
    return transformers.RobertaModel(cfg)


def _gpt2() -> Any:
    cfg = transformers.GPT2Config(n_embd=HIDDEN, n_layer=2, n_head=4, vocab_size=99)
    return transformers.GPT2Model(cfg)


def _bart() -> Any:
    cfg = transformers.BartConfig(
        d_model=HIDDEN,
        encoder_layers=2,
        decoder_layers=2,
        encoder_attention_heads=4,
        decoder_attention_heads=4,
        encoder_ffn_dim=37,
        decoder_ffn_dim=37,
        vocab_size=99,
        max_position_embeddings=64,
    )
    return transformers.BartModel(cfg)


def _llama() -> Any:
    cfg = transformers.LlamaConfig(
        hidden_size=HIDDEN,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=37,
        vocab_size=99,
        max_position_embeddings=64,
    )
    return transformers.LlamaModel(cfg)


MODEL_FACTORIES: dict[str, Callable[[], Any]] = {
    "bert": _bert,
    "roberta": _roberta,
    "gpt2": _gpt2,
    "bart": _bart,
    "llama": _llama,
}


def make_model(kind: str, seed: int = 0) -> Any:
    """A fresh tiny model in eval mode with deterministic weights."""
    torch.manual_seed(seed)
    model = MODEL_FACTORIES[kind]()
    # Give LayerNorms non-trivial affine parameters so that LN placement matters in the tests.
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.LayerNorm):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    return model.eval()


def model_inputs(kind: str, batch: int = 2, length: int = 7, seed: int = 1) -> dict[str, Any]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, 99, (batch, length), generator=g)
    mask = torch.ones_like(ids)
    inputs: dict[str, Any] = {"input_ids": ids, "attention_mask": mask}
    if kind == "bart":
        inputs["decoder_input_ids"] = torch.randint(3, 99, (batch, length - 2), generator=g)
    return inputs


def run(model: Any, kind: str, **kw: Any) -> Any:
    return model(**model_inputs(kind, **kw)).last_hidden_state


@pytest.fixture(params=sorted(MODEL_FACTORIES))
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)
