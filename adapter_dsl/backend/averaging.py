"""``average_adapter``: a new adapter whose weights combine existing adapters of one config.

Strategies (reference ``model_mixin.average_adapter`` and ``LoRALayer.average_adapter``):

* ``linear``: every tensor of the new adapter is ``Σ w_i·t_i`` (any method; shared parameters
  such as Compacter's rules or Vera's frozen matrices too).
* ``lora_linear_only_negate_b`` (LoRA): ``A = Σ |w_i|·A_i``, ``B = Σ w_i·B_i``.
* ``lora_delta_w_svd`` (LoRA, ``svd_rank`` required): the new adapter has ``r = svd_rank`` and
  its delta ``s·B A`` is the rank-``svd_rank`` truncation of ``Σ w_i·s_i·B_i A_i`` with each
  input's own scaling ``s_i = α_i/r_i``.

Weights default to ``1/k``; with ``normalize_weights`` they are divided by their sum.

Deliberate difference from the reference: its ``lora_delta_w_svd`` sums ``w_i·B_i A_i``
without the inputs' scaling and then applies ``α/svd_rank``, so its averaged delta is
``r/svd_rank`` times too large (2× for ``lora[r=4]`` averaged to rank 2). Here the new
adapter's delta is the truncation of the true weighted delta (``B = U_k·S_k / s``, ``A = V_k``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from adapter_dsl.backend import core
from adapter_dsl.backend.io import rename_adapter_key
from adapter_dsl.backend.methods.lora import lora_wrappers
from adapter_dsl.backend.methods.lora_layers import LoRAFusedQKV, is_vera
from adapter_dsl.backend.state import adapter_state_dict, peek_state, require_adapter
from adapter_dsl.errors import ConfigError

__all__ = ["STRATEGIES", "average_adapter"]

STRATEGIES = ("linear", "lora_linear_only_negate_b", "lora_delta_w_svd")
#: Fields that may differ between the averaged adapters (the reference's ``ignore_params``).
IGNORED = frozenset({"dropout", "init_weights"})


def _fail(message: str, **kw: Any) -> ConfigError:
    return ConfigError.single(message, code=kw.pop("code", "invalid_average"), **kw)


def _comparable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _comparable(v) for k, v in value.items() if k not in IGNORED}
    if isinstance(value, list):
        return [_comparable(v) for v in value]
    return value


def _weights(names: Sequence[str], weights: Sequence[float] | None, normalize: bool) -> list[float]:
    if weights is None:
        return [1.0 / len(names)] * len(names)
    values = [float(w) for w in weights]
    if len(values) != len(names):
        raise _fail(
            f"{len(values)} weights for {len(names)} adapters",
            expected=f"{len(names)} weights, one per adapter",
            found=repr(list(weights)),
        )
    if normalize:
        total = sum(values)
        if total == 0:
            raise _fail(
                "the weights sum to 0 and cannot be normalised",
                expected="weights with a non-zero sum, or normalize_weights=False",
                found=repr(values),
            )
        values = [w / total for w in values]
    return values


def average_adapter(
    model: nn.Module,
    name: str,
    adapters: Sequence[str] | dict[str, float],
    weights: Sequence[float] | None = None,
    combine_strategy: str = "linear",
    normalize_weights: bool = True,
    svd_rank: int | None = None,
) -> Any:
    """Add adapter ``name`` averaged from ``adapters`` (names, or a dict name → weight);
    returns its config. Everything is checked first; a failure leaves the model unchanged."""
    if isinstance(adapters, dict):
        names = list(adapters)
        weights = list(adapters.values()) if weights is None else weights
    else:
        names = list(adapters)
    if not names:
        raise _fail("no adapters to average", expected="at least one adapter name")
    if combine_strategy not in STRATEGIES:
        raise _fail(
            f"unknown combine_strategy '{combine_strategy}'",
            expected=" or ".join(repr(s) for s in STRATEGIES),
            found=repr(combine_strategy),
        )
    entries = [require_adapter(model, n)[1] for n in names]
    w = _weights(names, weights, normalize_weights)
    first = entries[0].config
    for n, entry in zip(names[1:], entries[1:], strict=True):
        if _comparable(entry.config.to_dict()) != _comparable(first.to_dict()):
            raise _fail(
                f"cannot average adapters with different configurations: '{names[0]}' and '{n}'",
                expected="adapters of one config (dropout and init_weights may differ)",
                found=f"{names[0]}: {first}, {n}: {entry.config}",
            )
    config = first
    lora_only = combine_strategy != "linear"
    if lora_only:
        if getattr(first, "architecture", None) != "lora" or first.composition_mode != "add":
            raise _fail(
                f"combine_strategy '{combine_strategy}' is for LoRA adapters",
                expected="combine_strategy='linear'",
                found=type(first).__name__,
            )
        if is_vera(first) or first.use_dora or first.use_gating:
            raise _fail(
                f"combine_strategy '{combine_strategy}' combines LoRA's A and B only; "
                "Vera, DoRA and gated LoRA adapters support 'linear'",
                expected="combine_strategy='linear'",
                found=type(first).__name__,
            )
    if combine_strategy == "lora_delta_w_svd":
        if not isinstance(svd_rank, int) or isinstance(svd_rank, bool) or svd_rank < 1:
            raise _fail(
                "combine_strategy 'lora_delta_w_svd' needs svd_rank, a positive integer",
                expected="svd_rank=2 (for example)",
                found=repr(svd_rank),
            )
        for wrapper in lora_wrappers(model):
            if isinstance(wrapper, LoRAFusedQKV) and any(n in wrapper.loras for n in names):
                raise _fail(
                    "lora_delta_w_svd cannot split the grouped delta of a fused q/k/v projection",
                    expected="'linear' or 'lora_linear_only_negate_b' on this model",
                    found=type(wrapper.original).__name__,
                )
        config = first.replace(r=svd_rank)

    state = peek_state(model)
    assert state is not None
    active_before, setup_before = state.active, state.setup
    core.add_adapter(model, name, config)
    try:
        with torch.no_grad():
            if combine_strategy == "lora_delta_w_svd":
                _svd(model, name, names, w, int(svd_rank or 0))
            else:
                _tensorwise(model, name, names, w, combine_strategy)
    except BaseException:
        core.delete_adapter(model, name)
        state.active, state.setup = active_before, setup_before
        raise
    return config


def _tensorwise(
    model: nn.Module, name: str, names: Sequence[str], weights: Sequence[float], strategy: str
) -> None:
    target = adapter_state_dict(model, require_adapter(model, name)[1])
    sources = [adapter_state_dict(model, require_adapter(model, n)[1]) for n in names]
    for key, tensor in target.items():
        total: Tensor | None = None
        for n, src, weight in zip(names, sources, weights, strict=True):
            value = src[rename_adapter_key(key, name, n)]
            if strategy == "lora_linear_only_negate_b":
                leaf = key.rsplit(".", 1)[-1]
                if leaf not in ("lora_A", "lora_B"):
                    raise _fail(f"'{strategy}' found a tensor other than lora_A/lora_B: {key}")
                weight = abs(weight) if leaf == "lora_A" else weight
            part = weight * value
            total = part if total is None else total + part
        assert total is not None
        tensor.copy_(total.to(tensor.dtype))


def _svd(
    model: nn.Module, name: str, names: Sequence[str], weights: Sequence[float], rank: int
) -> None:
    for wrapper in lora_wrappers(model):
        if name not in wrapper.loras:
            continue
        new = wrapper.unit(name)
        delta: Tensor | None = None
        for n, weight in zip(names, weights, strict=True):
            unit = wrapper.unit(n)
            part = weight * unit.scaling * unit.delta_weight()
            delta = part if delta is None else delta + part
        assert delta is not None
        u, s, vh = torch.linalg.svd(delta.float(), full_matrices=False)
        k = min(rank, s.shape[0])
        a = torch.zeros_like(new.lora_A)
        b = torch.zeros_like(new.lora_B)
        a[:k] = vh[:k].to(a.dtype)
        b[:, :k] = (u[:, :k] * s[:k] / new.scaling).to(b.dtype)
        new.lora_A.copy_(a)
        new.lora_B.copy_(b)
