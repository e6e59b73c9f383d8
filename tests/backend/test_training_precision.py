"""bf16 autocast for every identifier, and activation (gradient) checkpointing of the base model."""

from __future__ import annotations

import warnings
from functools import partial
from typing import Any

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from adapter_dsl import IDENTIFIERS, load  # noqa: E402
from adapter_dsl.backend import add_adapter, train_adapter  # noqa: E402
from adapter_dsl.backend.methods.base import get_handler, members_of  # noqa: E402
from adapter_dsl.backend.state import peek_state  # noqa: E402
from adapter_dsl.errors import ConfigError  # noqa: E402


def _bert(dropout: float = 0.0) -> Any:
    torch.manual_seed(0)
    cfg = transformers.BertConfig(
        vocab_size=99,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
    )
    return transformers.BertModel(cfg)


def _inputs(batch: int = 3, length: int = 9) -> dict[str, Any]:
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(3, 99, (batch, length), generator=g)
    mask = torch.ones_like(ids)
    mask[0, -2:] = 0  # some padding, so that masks built by prefix/prompt tuning are exercised
    return {"input_ids": ids, "attention_mask": mask}


#: Defaults that do not fit hidden size 32 (Compacter's bottleneck 32/32 = 1 is not divisible by
#: phm_dim=4).
TINY_OVERRIDES: dict[str, dict[str, Any]] = {
    "compacter": {"reduction_factor": 8},
    "compacter++": {"reduction_factor": 8},
}


def _config(identifier: str) -> Any:
    return load(identifier, **TINY_OVERRIDES.get(identifier, {}))


def _record_dtype(dtypes: dict[str, Any], name: str, module: Any, args: Any, output: Any) -> None:
    dtypes.setdefault(name, output.dtype)


def _add_or_skip(model: Any, identifier: str) -> None:
    """Add adapter "a"; skip the test when the backend has no implementation for the method."""
    for member in members_of(_config(identifier)):
        try:
            get_handler(member)
        except ConfigError as err:
            pytest.skip(f"no backend handler for {identifier!r}: {err.problems[0].message}")
    try:
        add_adapter(model, "a", _config(identifier))
    except ConfigError as err:
        if err.problems[0].code != "unsupported_method":
            raise
        pytest.skip(f"the backend does not build {identifier!r}: {err.problems[0].message}")


def _entry(model: Any, name: str) -> Any:
    state = peek_state(model)
    assert state is not None
    return state.adapters[name]


def _randomise(model: Any, name: str) -> list[Any]:
    """Non-zero values for the adapter's trainable parameters (zero-initialised up-projections
    and LoRA B would give zero gradients elsewhere); returns them."""
    params = _entry(model, name).trainable_parameters()
    # The base of an orthogonal parametrisation (LoReFT) is left as initialised: arbitrary
    # values there can map to a zero projection.
    skip = {id(p) for n, p in model.named_parameters() if ".parametrizations." in n}
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for p in params:
            if id(p) not in skip:
                p.copy_(torch.rand(p.shape, generator=g) * 0.2 - 0.1)
    return params


@pytest.mark.parametrize("identifier", sorted(IDENTIFIERS))
def test_bf16_autocast_forward_backward(identifier: str) -> None:
    model = _bert()
    _add_or_skip(model, identifier)
    train_adapter(model, "a")
    params = _randomise(model, "a")
    assert params
    # Linear layers run in bf16 under autocast: the base model's and the adapter's own.
    dtypes: dict[str, Any] = {}
    query = "encoder.layer.0.attention.self.query"
    inside = {id(m) for o in _entry(model, "a").owned_modules() for m in o.modules()}
    handles = [
        m.register_forward_hook(partial(_record_dtype, dtypes, n))
        for n, m in model.named_modules()
        if isinstance(m, torch.nn.Linear) and (n == query or id(m) in inside)
    ]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        hidden = model(**_inputs()).last_hidden_state
    for h in handles:
        h.remove()
    assert dtypes[query] == torch.bfloat16
    assert set(dtypes.values()) == {torch.bfloat16}, dtypes
    loss = hidden.float().pow(2).mean()
    loss.backward()
    assert torch.isfinite(loss)
    for p in params:
        assert p.grad is not None, "a trainable parameter got no gradient"
        assert p.dtype == torch.float32 and p.grad.dtype == torch.float32
        assert torch.isfinite(p.grad).all()
    assert sum(float(p.grad.abs().sum()) for p in params) > 0

    # In eval mode (no dropout) the bf16 result is close to the fp32 one (bf16 keeps ~3 digits).
    model.eval()
    with torch.no_grad():
        reference = model(**_inputs()).last_hidden_state
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(**_inputs()).last_hidden_state
    torch.testing.assert_close(low.float(), reference, atol=0.1, rtol=0.05)


def _enable_checkpointing(model: Any, use_reentrant: bool) -> None:
    kwargs = {"use_reentrant": use_reentrant}
    if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.x
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


def _grads(model: Any, params: list[Any]) -> list[Any]:
    model.zero_grad(set_to_none=True)
    out = model(**_inputs()).last_hidden_state
    (out * torch.linspace(-1, 1, out.shape[-1])).sum().backward()
    return [p.grad.clone() for p in params]


@pytest.mark.parametrize("use_reentrant", [False, True], ids=["non_reentrant", "reentrant"])
@pytest.mark.parametrize("identifier", ["seq_bn", "lora", "prefix_tuning"])
def test_gradient_checkpointing_matches_plain_backward(
    identifier: str, use_reentrant: bool
) -> None:
    model = _bert()
    add_adapter(model, "a", identifier)
    train_adapter(model, "a")  # training mode: checkpointing only acts while training
    params = _randomise(model, "a")
    plain = _grads(model, params)

    _enable_checkpointing(model, use_reentrant)
    calls = []
    handle = model.encoder.layer[0].attention.register_forward_hook(lambda *a: calls.append(1))
    checkpointed = _grads(model, params)
    handle.remove()
    assert len(calls) == 2, "layer 0 was not recomputed: checkpointing is not active"
    for p, want, got in zip(params, plain, checkpointed, strict=True):
        assert float(want.abs().sum()) > 0
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)
        assert p.requires_grad
