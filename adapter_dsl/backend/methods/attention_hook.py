"""Prepend extra key/value states inside transformers' pluggable attention functions.

transformers 5 attention modules call
``ALL_ATTENTION_FUNCTIONS.get_interface(self.config._attn_implementation, eager_attention_forward)``
*after* projecting (and caching) keys and values. We register one function under
:data:`PREFIX_ATTENTION` and give each hooked attention module a :class:`AttentionConfigView`:
a transparent proxy of the model config whose ``_attn_implementation`` reads
``PREFIX_ATTENTION``. The model-level config is untouched, so mask creation, saving and every
other module keep the real implementation. Our function asks the module's ``prefix_source`` for
extra (key, value) pairs, prepends them, extends the attention mask with "attend" columns and then
calls the real implementation (the modeling file's own ``eager_attention_forward``, or the
registered ``sdpa``), so no model attention code is copied.

Prefixes are added after the KV-cache update, so they are never cached (as in the reference).
Supported real implementations: ``eager`` and ``sdpa`` (their mask formats are known: additive
float, or boolean with ``None`` meaning "no mask" or "causal").
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, Protocol, cast

import torch
from torch import Tensor, nn

__all__ = [
    "PREFIX_ATTENTION",
    "SUPPORTED_IMPLEMENTATIONS",
    "AttentionConfigView",
    "PrefixSource",
    "extend_mask",
    "install",
    "mask_padded_prefix",
    "real_implementation",
    "uninstall",
]

PREFIX_ATTENTION = "adapter_dsl_prefix"
SUPPORTED_IMPLEMENTATIONS = ("eager", "sdpa")


class PrefixSource(Protocol):
    """What an attention module's ``prefix_source`` provides at forward time."""

    def prefix_block(self, key: Tensor) -> tuple[Tensor, Tensor, Tensor | None] | None:
        """Prefix (key, value) of shape (batch, kv_heads, length, head_dim) to place before the
        keys, and which positions are real ((batch, length) bool, ``None`` when all are)."""
        ...


class AttentionConfigView:
    """A proxy of a model config that reports :data:`PREFIX_ATTENTION` as attention function.

    Reads of every other attribute, and all writes, go to the real config, so a later
    ``model.set_attn_implementation(...)`` is still honoured (the view then forwards to it).
    """

    # The target lives in the instance __dict__ and is read as a plain attribute (never through
    # ``object.__getattribute__``), so that torch.compile traces attention without graph breaks.

    def __init__(self, target: Any) -> None:
        self.__dict__["target"] = target

    @property
    def _attn_implementation(self) -> str:
        return PREFIX_ATTENTION

    def __getattr__(self, name: str) -> Any:
        # Dunder lookups (copy, pickle) must not be answered by the target: a deep copy of the
        # model has to copy the view, not silently replace it by a config. "target" is only
        # missing while an instance is being built.
        if name.startswith("__") or name == "target":
            raise AttributeError(name)
        return getattr(self.target, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self.target, name, value)

    def __reduce__(self) -> tuple[Any, tuple[Any]]:
        # copy/deepcopy/pickle rebuild the view around a copy of the target config.
        return (AttentionConfigView, (self.target,))

    def __repr__(self) -> str:
        return f"AttentionConfigView({self.target!r})"


def real_implementation(module: nn.Module) -> str:
    """The attention implementation the model itself is configured with."""
    config: Any = getattr(module, "config", None)
    if isinstance(config, AttentionConfigView):
        config = config.target
    return str(getattr(config, "_attn_implementation", None) or "eager")


def _inner_function(module: nn.Module, implementation: str) -> Callable[..., Any]:
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    default: Callable[..., Any] | None = getattr(
        sys.modules[type(module).__module__], "eager_attention_forward", None
    )
    if default is None:
        raise RuntimeError(f"{type(module).__module__} defines no eager_attention_forward")
    if implementation == "eager":
        return default
    return ALL_ATTENTION_FUNCTIONS.get_interface(implementation, default)


def extend_mask(
    mask: Tensor | None,
    n_prefix: int,
    query: Tensor,
    kv_length: int,
    *,
    causal: bool,
    implementation: str,
) -> Tensor | None:
    """The attention mask for ``n_prefix`` extra keys placed before ``kv_length`` original keys.

    * A given mask gets ``n_prefix`` "attend" columns in front (0 for additive float masks,
      ``True`` for boolean masks), whatever its leading (broadcast) dimensions are.
    * ``None`` stays ``None`` unless the real implementation would infer causality from it (sdpa
      with more than one query): then an explicit boolean mask is built, prefix columns open and
      the original keys causal (bottom-right aligned, which also covers cached keys).
    """
    if n_prefix == 0:
        return mask
    if mask is None:
        q_len = query.shape[-2]
        if not (causal and implementation == "sdpa" and q_len > 1):
            return None
        original = torch.ones(q_len, kv_length, dtype=torch.bool, device=query.device)
        original = original.tril(diagonal=kv_length - q_len)
        prefix = torch.ones(q_len, n_prefix, dtype=torch.bool, device=query.device)
        return torch.cat([prefix, original], dim=-1)[None, None]
    shape = (*mask.shape[:-1], n_prefix)
    if mask.dtype == torch.bool:
        return torch.cat([mask.new_ones(shape), mask], dim=-1)
    return torch.cat([mask.new_zeros(shape), mask], dim=-1)


def mask_padded_prefix(
    mask: Tensor | None, valid: Tensor, query: Tensor, kv_length: int, causal: bool
) -> Tensor:
    """``mask`` (already extended by ``valid.shape[1]`` prefix columns) with the prefix positions
    that are padding (``valid`` False, per row) closed; built when there was no mask."""
    batch, n_prefix = valid.shape
    q_len = query.shape[-2]
    if mask is None:
        original = torch.ones(q_len, kv_length, dtype=torch.bool, device=query.device)
        if causal and q_len > 1:
            original = original.tril(diagonal=kv_length - q_len)
        mask = torch.cat(
            [torch.ones(q_len, n_prefix, dtype=torch.bool, device=query.device), original], dim=-1
        )[None, None]
        mask = torch.where(mask, 0.0, torch.finfo(query.dtype).min).to(query.dtype)
    mask = mask.expand(batch, *mask.shape[1:]).clone()
    closed = ~valid[:, None, None, :]
    if mask.dtype == torch.bool:
        mask[..., :n_prefix] &= ~closed
    else:
        mask[..., :n_prefix] = mask[..., :n_prefix].masked_fill(closed, torch.finfo(mask.dtype).min)
    return mask


def prefix_attention_forward(
    module: nn.Module,
    query: Tensor,
    key: Tensor,
    value: Tensor,
    attention_mask: Tensor | None,
    **kwargs: Any,
) -> tuple[Tensor, Tensor | None]:
    """The registered attention function: prepend prefixes, then run the real implementation."""
    implementation = real_implementation(module)
    if implementation not in SUPPORTED_IMPLEMENTATIONS:
        raise RuntimeError(
            f"prefix tuning supports the attention implementations {SUPPORTED_IMPLEMENTATIONS}, "
            f"the model now uses '{implementation}'"
        )
    source: PrefixSource | None = getattr(module, "prefix_source", None)
    block = source.prefix_block(key) if source is not None else None
    if block is not None:
        prefix_key, prefix_value, valid = block
        kv_length = key.shape[-2]
        n_prefix = prefix_key.shape[-2]
        key = torch.cat([prefix_key.to(key.dtype), key], dim=-2)
        value = torch.cat([prefix_value.to(value.dtype), value], dim=-2)
        is_causal = kwargs.get("is_causal")
        causal = bool(getattr(module, "is_causal", True) if is_causal is None else is_causal)
        attention_mask = extend_mask(
            attention_mask, n_prefix, query, kv_length, causal=causal, implementation=implementation
        )
        if valid is not None:
            attention_mask = mask_padded_prefix(attention_mask, valid, query, kv_length, causal)
        bias = kwargs.get("position_bias")
        if isinstance(bias, Tensor) and bias.shape[-1] == kv_length:
            # T5 adds its relative position bias to the scores; prefix keys get none (zeros).
            kwargs["position_bias"] = torch.cat(
                [bias.new_zeros((*bias.shape[:-1], n_prefix)), bias], dim=-1
            )
    if implementation == "eager" and getattr(module, "reorder_and_upcast_attn", False):
        # GPT-2's optional upcasting path bypasses the attention interface; keep honouring it.
        upcast = cast(
            Callable[..., tuple[Tensor, Tensor | None]], module._upcast_and_reordered_attn
        )
        return upcast(query, key, value, attention_mask)
    inner = _inner_function(module, implementation)
    result: tuple[Tensor, Tensor | None] = inner(
        module, query, key, value, attention_mask, **kwargs
    )
    return result


_registered = False


def _register() -> None:
    global _registered
    if not _registered:
        from transformers.modeling_utils import AttentionInterface

        AttentionInterface.register(PREFIX_ATTENTION, prefix_attention_forward)
        _registered = True


def install(module: nn.Module) -> tuple[bool, Any]:
    """Route ``module``'s attention through :func:`prefix_attention_forward`.

    Returns what :func:`uninstall` needs (data, not a closure, so that it survives copies and
    pickles of the model): whether a view was installed, and the config it replaced.
    """
    _register()
    original = getattr(module, "config", None)
    if isinstance(original, AttentionConfigView):
        return (False, None)
    # A plain (non-module) attribute, set through __dict__ to keep the type checker out of it.
    module.__dict__["config"] = AttentionConfigView(original)
    return (True, original)


def uninstall(module: nn.Module, installed: tuple[bool, Any]) -> None:
    """Undo :func:`install` (``installed`` is its result)."""
    done, original = installed
    if done and isinstance(module.__dict__.get("config"), AttentionConfigView):
        module.__dict__["config"] = original
