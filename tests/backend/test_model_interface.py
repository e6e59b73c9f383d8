"""A model the table lacks: described by a model interface, registered, trained.

The model below is plain torch, not from transformers: a pre-LN transformer whose attention
calls transformers' pluggable attention functions (the one convention prefix tuning needs).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from adapter_dsl import ConfigError
from adapter_dsl.model_interface import ArchitectureSpec

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
from torch import nn  # noqa: E402
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS  # noqa: E402

from adapter_dsl.backend import (  # noqa: E402
    add_adapter,
    delete_adapter,
    load_adapter,
    save_adapter,
    set_active,
    train_adapter,
)
from adapter_dsl.backend.architectures import (  # noqa: E402
    register_model_type,
    unregister_model_type,
)

HIDDEN, HEADS = 32, 4


class ToyConfig:
    """Just the attributes the backend reads."""

    model_type = "toy"
    hidden_size = HIDDEN
    num_attention_heads = HEADS
    _attn_implementation = "eager"


def eager_attention_forward(
    module: nn.Module,
    query: Any,
    key: Any,
    value: Any,
    attention_mask: Any,
    scaling: float,
    dropout: float = 0.0,
    **kwargs: Any,
) -> tuple[Any, Any]:
    scores = query @ key.transpose(-1, -2) * scaling
    if attention_mask is not None:
        scores = scores + attention_mask
    weights = scores.softmax(-1)
    return (weights @ value).transpose(1, 2), weights


class ToyAttention(nn.Module):
    is_causal = False

    def __init__(self, config: ToyConfig) -> None:
        super().__init__()
        self.config = config
        self.to_q = nn.Linear(HIDDEN, HIDDEN)
        self.to_k = nn.Linear(HIDDEN, HIDDEN)
        self.to_v = nn.Linear(HIDDEN, HIDDEN)
        self.to_out = nn.Linear(HIDDEN, HIDDEN)

    def forward(self, hidden_states: Any) -> Any:
        b, t, _ = hidden_states.shape
        shape = (b, t, HEADS, HIDDEN // HEADS)
        q, k, v = (
            p(hidden_states).view(shape).transpose(1, 2) for p in (self.to_q, self.to_k, self.to_v)
        )
        attention = ALL_ATTENTION_FUNCTIONS.get_interface(
            self.config._attn_implementation, eager_attention_forward
        )
        out, _ = attention(self, q, k, v, None, scaling=(HIDDEN // HEADS) ** -0.5)
        return self.to_out(out.reshape(b, t, HIDDEN))


class ToyBlock(nn.Module):
    def __init__(self, config: ToyConfig) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(HIDDEN)
        self.attn = ToyAttention(config)
        self.norm2 = nn.LayerNorm(HIDDEN)
        self.up = nn.Linear(HIDDEN, 2 * HIDDEN)
        self.down = nn.Linear(2 * HIDDEN, HIDDEN)

    def forward(self, x: Any) -> Any:
        x = x + self.attn(self.norm1(x))
        return x + self.down(torch.relu(self.up(self.norm2(x))))


class ToyModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.config = ToyConfig()
        self.embed = nn.Embedding(50, HIDDEN)
        self.blocks = nn.ModuleList([ToyBlock(self.config) for _ in range(2)])

    def forward(self, ids: Any) -> Any:
        x = self.embed(ids)
        for block in self.blocks:
            x = block(x)
        return x


def _site(residual: str, output: str, holder: str) -> dict[str, Any]:
    return {"residual_module": residual, "output_module": output, "adapters_at": holder}


INTERFACE: dict[str, Any] = {
    "model_type": "toy",
    "embeddings": "embed",
    "invertible_after": "embed",
    "pre_ln": True,
    "groups": [
        {
            "name": "encoder",
            "layers": "blocks",
            "self_attention": {
                "module": "attn",
                "q": "attn.to_q",
                "k": "attn.to_k",
                "v": "attn.to_v",
                "o": "attn.to_out",
            },
            "intermediate": "up",
            "output": "down",
            "mh_site": _site("norm1", "attn", "attention_adapters"),
            "output_site": _site("norm2", "down", "output_adapters"),
        }
    ],
}


@pytest.fixture
def toy() -> Any:
    torch.manual_seed(0)
    model = ToyModel().eval()
    register_model_type(json.dumps(INTERFACE), model)
    yield model
    unregister_model_type("toy")


def _ids() -> Any:
    return torch.randint(0, 50, (4, 6), generator=torch.Generator().manual_seed(3))


@pytest.mark.parametrize("spec", ["lora", "seq_bn", "prefix_tuning[prefix_length=4]"])
def test_train_on_a_registered_model(toy: Any, spec: str, tmp_path: Any) -> None:
    base = {k: v.clone() for k, v in toy.state_dict().items()}
    add_adapter(toy, "a", spec)
    train_adapter(toy, "a")
    trainable = [p for p in toy.parameters() if p.requires_grad]
    assert trainable
    optimiser = torch.optim.SGD(trainable, lr=0.05)
    target = torch.randn(4, 6, HIDDEN, generator=torch.Generator().manual_seed(4))
    losses = []
    for _ in range(5):
        optimiser.zero_grad()
        loss = (toy(_ids()) - target).pow(2).mean()
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0]
    after = toy.state_dict()
    assert all(torch.equal(after[k], v) for k, v in base.items())  # only adapters changed
    # Saved and loaded into a fresh copy, the adapter computes the same outputs.
    toy.eval()
    with torch.no_grad():
        expected = toy(_ids())
    save_adapter(toy, "a", str(tmp_path / "a"))
    torch.manual_seed(0)
    fresh = ToyModel().eval()
    assert load_adapter(fresh, str(tmp_path / "a")) == "a"
    with torch.no_grad():
        torch.testing.assert_close(fresh(_ids()), expected)
    delete_adapter(toy, "a")
    set_active(toy, None)


def test_unknown_paths_are_errors_at_registration() -> None:
    model = ToyModel()
    bad = json.loads(json.dumps(INTERFACE))
    bad["model_type"] = "toy_bad"
    model.config.model_type = "toy_bad"  # type: ignore[misc]
    bad["groups"][0]["self_attention"]["q"] = "attn.to_qq"
    bad["groups"][0]["output_site"]["output_module"] = "dwn"
    with pytest.raises(ConfigError) as info:
        register_model_type(bad, model)
    problems = {p.location.pointer: p for p in info.value.problems}
    assert set(problems) == {
        "/groups/0/self_attention/q",
        "/groups/0/output_site/output_module",
    }
    assert problems["/groups/0/self_attention/q"].suggestion == "did you mean 'to_q'?"
    assert "'attn.to_qq' is not a submodule" in str(info.value)
    assert "toy_bad" not in __import__("adapter_dsl.backend").backend.ARCHITECTURES


def test_interface_is_validated_json() -> None:
    spec = ArchitectureSpec.from_dict(INTERFACE)
    assert ArchitectureSpec.from_json(spec.to_json()) == spec
    bad = dict(INTERFACE, embedings="embed")
    with pytest.raises(ConfigError) as info:
        ArchitectureSpec.from_dict(bad)
    problem = info.value.problems[0]
    assert problem.location.pointer == "/embedings"
    assert problem.suggestion == "did you mean 'embeddings'?"
    fused_and_separate = json.loads(json.dumps(INTERFACE))
    fused_and_separate["groups"][0]["self_attention"]["qkv"] = "attn.qkv"
    with pytest.raises(ConfigError, match="either the fused projection qkv or q, k and v"):
        ArchitectureSpec.from_dict(fused_and_separate)
    with pytest.raises(ConfigError, match="unknown method family 'lorra'"):
        ArchitectureSpec.from_dict(dict(INTERFACE, families=["lorra"]))


def test_built_in_rows_cannot_be_replaced() -> None:
    with pytest.raises(ConfigError, match="'bert' is built in"):
        register_model_type(dict(INTERFACE, model_type="bert"))


def test_built_in_rows_round_trip_through_json() -> None:
    from adapter_dsl.backend.architectures import ARCHITECTURES, BUILT_IN

    for model_type in BUILT_IN:
        spec = ARCHITECTURES[model_type]
        assert ArchitectureSpec.from_json(spec.to_json()) == spec, model_type
