"""Prefix tuning (reference §3.3): learned key/value prefixes prepended in every attention module.

Modules and state-dict keys (reference layout):

* ``prefix_tuning.prefix_tunings.<name>.<location>`` on the base model: one generator per adapter
  and location key (``self_prefix``, ``encoder_prefix``, ``cross_prefix``), producing all of that
  location's layers at once. Reparametrised: ``wte = Embedding(L, h)`` →
  ``control_trans = Sequential(Linear(h, B), act, Linear(B, N))``; flat: ``control_trans`` is a
  Parameter of ``L·N`` values. ``N = n_layers·2·H_kv·d_head`` (GQA-aware: ``H_kv`` key/value heads).
  The reference saves n_layers+1 copies of these tensors; the model holds them once.
* ``<attention module>.prefix_tuning.prefix_gates.<name>``: the optional gate ``Linear(h, 1 or 2)``
  on the attention *input*; its token-averaged sigmoid scales the prefix keys (column 0) and
  values (last column).

A layer's prefix id is its ordinal among the non-left-out layers of the same location. BERT-family
and decoder self-attention always get a prefix (``self_prefix``; ``encoder_prefix=False`` only
affects encoder-decoder encoders), cross-attention follows ``cross_prefix``.

Runtime: see :mod:`attention_hook`. Each attention module computes only its own slice of the
generator output (rows ``[2i·H_kv·d, (2i+2)·H_kv·d)`` of the last Linear, or of the flat
parameter), expands it to the batch, applies dropout and splits it into (key, value) of shape
(batch, H_kv, L, d_head): the same values as the reference's all-layers computation, with no
cache between layers, so activation checkpointing (reentrant or not) recomputes exactly what the
forward pass computed. Several active prefix adapters follow the active setup
(``prefix_compose.py``): in a ``Stack`` each prepends its prefix in order; ``BatchSplit`` and
``Parallel`` give rows their own prefixes, left-padded to one length and masked. With an all-ones attention mask the output equals the output without a mask.

``shift_positions`` (an extension, PEFT's prefix tuning): a pre-hook on the base model numbers
the inputs' positions from ``prefix_length`` (``position_ids``, when the call gives none), as a
model does after a key/value cache of that length; then the prefixes compute what PEFT's do.
Single-stack models whose forward takes ``position_ids`` only (not T5's relative positions).
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from functools import partial
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from adapter_dsl.backend import architectures as archs
from adapter_dsl.backend.architectures import ModelSpec, base_model_of, iter_layers, resolve
from adapter_dsl.backend.composition import compose
from adapter_dsl.backend.methods import attention_hook
from adapter_dsl.backend.methods.base import MethodHandler
from adapter_dsl.backend.methods.common import activation, init_seed
from adapter_dsl.backend.methods.prefix_compose import PrefixComposer, PrefixState
from adapter_dsl.backend.state import Ledger, get_state
from adapter_dsl.errors import ConfigError
from adapter_dsl.methods.prefix_tuning import PrefixTuningConfig

__all__ = [
    "FlatPrefixTuning",
    "PrefixGenerator",
    "PrefixTuning",
    "PrefixTuningHandler",
    "PrefixTuningLayer",
    "PrefixTuningPool",
    "prefix_sites",
]

POOL_ATTR = "prefix_tuning"
LAYER_ATTR = "prefix_tuning"


class PrefixGenerator(nn.Module):
    """Produces the prefixes of ``n_layers`` layers of one location.

    The generator output has ``N = n_layers·2·H_kv·d_head`` values per prefix position, laid out
    as (layer, key/value, head, dim), so one layer's block is a contiguous slice.
    """

    def __init__(
        self, n_layers: int, n_heads: int, head_dim: int, config: PrefixTuningConfig
    ) -> None:
        super().__init__()
        self.n_layers, self.n_heads, self.head_dim = n_layers, n_heads, head_dim
        self.prefix_length = int(config.prefix_length)
        self.dropout = nn.Dropout(config.dropout)

    def raw(self, rows: slice | None = None) -> Tensor:
        """The unbatched generator output, (L, N), or only its columns ``rows``."""
        raise NotImplementedError

    def layer_states(self, index: int, batch_size: int) -> tuple[Tensor, Tensor]:
        """(key, value) of layer ``index``, each (batch, H_kv, L, d_head)."""
        width = 2 * self.n_heads * self.head_dim
        block = self.raw(slice(index * width, (index + 1) * width))
        block = block.view(self.prefix_length, 2, self.n_heads, self.head_dim)
        block = self.dropout(block.unsqueeze(0).expand(batch_size, -1, -1, -1, -1))
        return block[:, :, 0].transpose(1, 2), block[:, :, 1].transpose(1, 2)

    def forward(self, batch_size: int) -> Tensor:
        """All layers in the reference's layout: (2·n_layers, batch, H_kv, L, d_head), the key of
        layer i at 2i and its value at 2i+1."""
        states = self.raw().unsqueeze(0).expand(batch_size, -1, -1)
        states = states.reshape(
            batch_size, self.prefix_length, self.n_layers * 2, self.n_heads, self.head_dim
        )
        return self.dropout(states).permute(2, 0, 3, 1, 4)


class PrefixTuning(PrefixGenerator):
    """MLP-reparametrised prefixes: ``control_trans(wte)``."""

    def __init__(
        self,
        n_layers: int,
        n_heads: int,
        head_dim: int,
        input_size: int,
        config: PrefixTuningConfig,
    ) -> None:
        super().__init__(n_layers, n_heads, head_dim, config)
        self.wte = nn.Embedding(config.prefix_length, input_size)
        self.control_trans = nn.Sequential(
            nn.Linear(input_size, config.bottleneck_size),
            activation(config.non_linearity),
            nn.Linear(config.bottleneck_size, n_layers * 2 * n_heads * head_dim),
        )

    def raw(self, rows: slice | None = None) -> Tensor:
        if rows is None:
            out: Tensor = self.control_trans(self.wte.weight)
            return out
        first, act, last = self.control_trans
        hidden = act(first(self.wte.weight))
        assert isinstance(last, nn.Linear)
        return F.linear(hidden, last.weight[rows], last.bias[rows])


class FlatPrefixTuning(PrefixGenerator):
    """Prefixes trained directly: ``control_trans`` is a Parameter of ``L·N`` values (std 1)."""

    def __init__(
        self,
        n_layers: int,
        n_heads: int,
        head_dim: int,
        input_size: int,
        config: PrefixTuningConfig,
    ) -> None:
        super().__init__(n_layers, n_heads, head_dim, config)
        self.control_trans = nn.Parameter(
            torch.randn(config.prefix_length * n_layers * 2 * n_heads * head_dim)
        )

    def raw(self, rows: slice | None = None) -> Tensor:
        table = self.control_trans.view(self.prefix_length, -1)
        return table if rows is None else table[:, rows]


class PrefixTuningPool(nn.Module):
    """Holds every adapter's generators (``prefix_tunings.<name>.<location>``) on the base model."""

    def __init__(self) -> None:
        super().__init__()
        self.prefix_tunings = nn.ModuleDict()

    def generator(self, name: str, location: str) -> PrefixGenerator:
        group = cast(nn.ModuleDict, self.prefix_tunings[name])
        return cast(PrefixGenerator, group[location])


class PrefixTuningLayer(nn.Module):
    """Per attention module: which prefix (location, id) each adapter uses, plus the gates."""

    def __init__(self, location: str, pool: PrefixTuningPool, state: Any) -> None:
        super().__init__()
        self.location = location
        self.prefix_gates = nn.ModuleDict()
        self.prefixes: dict[str, int] = {}
        self._refs = (pool, state)  # not registered: the pool lives on the base model
        self.residual: Tensor | None = None
        self.handles: list[Any] = []  # input-capture hooks on the attention module
        self.original_config: Any = None  # what attention_hook.uninstall restores

    def adapter_states(
        self, name: str, rows: int, residual: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        """Adapter ``name``'s (key, value) prefix for ``rows`` rows, gated by ``residual``."""
        pool, _ = self._refs
        k, v = pool.generator(name, self.location).layer_states(self.prefixes[name], rows)
        if name in self.prefix_gates:
            if residual is None:
                raise RuntimeError("prefix gate needs the attention input, which was not captured")
            gate = torch.sigmoid(self.prefix_gates[name](residual)).mean(dim=1)
            k = k * gate[:, 0].view(-1, 1, 1, 1)
            v = v * gate[:, -1].view(-1, 1, 1, 1)
        return k, v

    def prefix_block(self, key: Tensor) -> tuple[Tensor, Tensor, Tensor | None] | None:
        """The composed prefix keys and values, (batch, H_kv, P, d_head), for the active setup,
        and which positions are real ((batch, P) bool; ``None`` when all are)."""
        _, state = self._refs
        node = state.active_setup()
        if node is None or not any(n in self.prefixes for n in node.names()):
            return None
        start = PrefixState(
            rows=int(key.shape[0]), key=None, value=None, valid=None, residual=self.residual
        )
        out = compose(node, start, PrefixComposer(self, state.context))
        if out.key is None or out.value is None:
            return None
        valid = out.valid
        if valid is not None and bool(valid.all()):
            valid = None
        return out.key, out.value, valid


# Hooks are module-level functions bound with functools.partial (not closures): a deep copy of
# the model then copies the bound objects too, so the copy's hooks act on the copy's modules.


def _capture_input(
    layer: PrefixTuningLayer, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    layer.residual = kwargs.get("hidden_states", args[0] if args else None)


def _release_input(
    layer: PrefixTuningLayer, module: nn.Module, args: Any, kwargs: Any, output: Any
) -> None:
    layer.residual = None  # do not keep activations alive between forwards


def prefix_sites(
    model: nn.Module, arch: ModelSpec, config: PrefixTuningConfig
) -> list[tuple[nn.Module, str, int]]:
    """(attention module, location key, prefix id) for every attention that gets a prefix."""
    return [(m, loc, i) for m, loc, i, _ in _sites(model, arch, config)]


def _sites(
    model: nn.Module, arch: ModelSpec, config: PrefixTuningConfig
) -> list[tuple[nn.Module, str, int, archs.LayerGroup]]:
    leave_out = set(config.leave_out or ())
    enabled = {
        "self_prefix": True,
        "encoder_prefix": bool(config.encoder_prefix),
        "cross_prefix": bool(config.cross_prefix),
    }
    counts: dict[str, int] = {}
    sites: list[tuple[nn.Module, str, int, archs.LayerGroup]] = []
    for ref in iter_layers(model, arch):
        for spec in (ref.group.self_attention, ref.group.cross_attention):
            if spec is None:
                continue
            module = resolve(ref.module, spec.module)
            location = spec.prefix_location
            if module is None or not enabled[spec.prefix_flag] or ref.index in leave_out:
                continue
            sites.append((module, location, counts.get(location, 0), ref.group))
            counts[location] = counts.get(location, 0) + 1
    return sites


# ConfigError.single with this module's default code (a call may pass another).
_error = partial(ConfigError.single, code="unsupported_config")


class PrefixTuningHandler(MethodHandler[PrefixTuningConfig]):
    """Builds prefix generators and routes attention through :mod:`attention_hook`."""

    family = "prefix_tuning"

    def check(self, model: nn.Module, arch: ModelSpec, config: PrefixTuningConfig) -> None:
        if not arch.supports("prefix_tuning"):
            raise _error(
                f"prefix tuning is not supported on '{arch.model_type}' models",
                expected="one of " + ", ".join(arch.supported_families),
                found="prefix_tuning",
            )
        activation(config.non_linearity)  # raises ConfigError for unknown names
        if config.prefix_length < 0 or config.bottleneck_size < 1:
            raise _error(
                "prefix_length must be >= 0 and bottleneck_size >= 1",
                found=f"prefix_length={config.prefix_length}, bottleneck_size={config.bottleneck_size}",
            )
        sites = prefix_sites(model, arch, config)
        if not sites:
            raise _error(
                "this prefix-tuning config adds a prefix to no attention module",
                found=f"leave_out={list(config.leave_out)}",
            )
        if config.shift_positions:
            base = base_model_of(model)
            takes = "position_ids" in inspect.signature(base.forward).parameters
            if len(arch.groups) != 1 or not takes:
                raise _error(
                    "shift_positions (PEFT's prefix tuning) needs a single-stack model whose "
                    f"forward takes position_ids; '{arch.model_type}' models "
                    + ("have an encoder and a decoder" if takes else "take no position_ids"),
                    expected="a decoder-only or encoder-only model type with position ids",
                    found=arch.model_type,
                )
        implementation = attention_hook.real_implementation(sites[0][0])
        if implementation not in attention_hook.SUPPORTED_IMPLEMENTATIONS:
            raise _error(
                f"prefix tuning cannot run with the '{implementation}' attention implementation",
                expected=" or ".join(attention_hook.SUPPORTED_IMPLEMENTATIONS),
                found=implementation,
                suggestion="call model.set_attn_implementation('sdpa') first",
            )

    def check_members(
        self, model: nn.Module, arch: ModelSpec, configs: Sequence[PrefixTuningConfig]
    ) -> None:
        if len(configs) > 1:
            raise _error(
                "a union can hold at most one prefix-tuning config", found=f"{len(configs)}"
            )

    def add(
        self,
        model: nn.Module,
        arch: ModelSpec,
        name: str,
        config: PrefixTuningConfig,
        ledger: Ledger,
    ) -> None:
        state = get_state(model, arch)
        base = base_model_of(model)
        pool = _pool(base, ledger)
        if config.shift_positions and "position_hook" not in pool.__dict__:
            handle = base.register_forward_pre_hook(
                partial(_shift_positions, state), with_kwargs=True
            )
            pool.__dict__["position_hook"] = handle  # a plain attribute: not saved or moved
            ledger.on_undo(_drop_position_hook, pool)
        sites = _sites(model, arch, config)
        counts: dict[str, int] = {}
        sizing: dict[str, Any] = {}
        for _, location, _, layer_group in sites:
            counts[location] = counts.get(location, 0) + 1
            sizing.setdefault(location, archs.group_config(model, layer_group))
        group = nn.ModuleDict()
        kind = FlatPrefixTuning if config.flat else PrefixTuning
        with init_seed(config.init_weights_seed):
            for location, n_layers in counts.items():
                cfg = sizing[location]
                group[location] = kind(
                    n_layers,
                    arch.num_kv_heads(cfg),
                    arch.head_dim(cfg),
                    archs.ModelSpec.hidden_size(cfg),
                    config,
                )
        _to_model(group, base)
        group.train(pool.training)
        ledger.add_entry(pool.prefix_tunings, name, group)
        for module, location, prefix_id, _ in sites:
            hidden = archs.ModelSpec.hidden_size(sizing[location])
            layer = _layer(module, location, pool, state, ledger)
            layer.prefixes[name] = prefix_id
            ledger.on_undo(partial(_forget, layer, name))
            if config.use_gating:
                with init_seed(config.init_weights_seed):
                    gate = nn.Linear(hidden, 1 if config.shared_gating else 2)
                    nn.init.normal_(gate.weight, std=0.02)
                _to_model(gate, base)
                ledger.add_entry(layer.prefix_gates, name, gate)


def _shift_positions(
    state: Any, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """Positions from the active prefix's length (``shift_positions``), unless given."""
    length = next(
        (
            int(cfg.prefix_length)
            for _, cfg in state.active_members("prefix_tuning")
            if getattr(cfg, "shift_positions", False)
        ),
        None,
    )
    if length is None or kwargs.get("position_ids") is not None:
        return None
    inputs = kwargs.get("input_ids", args[0] if args else None)
    if not isinstance(inputs, Tensor):
        inputs = kwargs.get("inputs_embeds")
    if not isinstance(inputs, Tensor) or inputs.dim() < 2:
        return None
    n = int(inputs.shape[1])
    pad = getattr(getattr(module, "embeddings", None), "padding_idx", None)
    if isinstance(pad, int) and inputs.dim() == 2 and not inputs.is_floating_point():
        # RoBERTa-style positions count non-padding tokens from padding_idx + 1 (and from
        # the cache's length after a cache), as its embeddings compute them.
        mask = inputs.ne(pad).long()
        kwargs["position_ids"] = (torch.cumsum(mask, dim=1) + length) * mask + pad
    else:
        kwargs["position_ids"] = torch.arange(length, length + n, device=inputs.device)[None]
    return args, kwargs


def _drop_position_hook(pool: PrefixTuningPool) -> None:
    # Kept while any adapter of the pool is left (it reads the active configs at call time).
    if len(pool.prefix_tunings) == 0:
        handle = pool.__dict__.pop("position_hook", None)
        if handle is not None:
            handle.remove()


def _forget(layer: PrefixTuningLayer, name: str) -> None:
    layer.prefixes.pop(name, None)


def _to_model(module: nn.Module, like: nn.Module) -> None:
    ref = next(iter(like.parameters()), None)
    if ref is not None:
        module.to(device=ref.device, dtype=ref.dtype if ref.is_floating_point() else None)


def _pool(base: nn.Module, ledger: Ledger) -> PrefixTuningPool:
    """The base model's pool, created on first use, removed when empty."""
    existing = base._modules.get(POOL_ATTR)
    if isinstance(existing, PrefixTuningPool):
        pool = existing
    else:
        pool = PrefixTuningPool()
        pool.train(base.training)
        base.add_module(POOL_ATTR, pool)
    # Registered by every adapter; whichever is removed last finds the pool empty.
    ledger.on_undo(_drop_pool_if_empty, base, pool)
    return pool


def _drop_pool_if_empty(base: nn.Module, pool: PrefixTuningPool) -> None:
    if len(pool.prefix_tunings) == 0 and base._modules.get(POOL_ATTR) is pool:
        del base._modules[POOL_ATTR]


def _layer(
    module: nn.Module, location: str, pool: PrefixTuningPool, state: Any, ledger: Ledger
) -> PrefixTuningLayer:
    """The attention module's prefix layer (and attention routing), created on first use."""
    existing = module._modules.get(LAYER_ATTR)
    if isinstance(existing, PrefixTuningLayer):
        layer = existing
    else:
        layer = PrefixTuningLayer(location, pool, state)
        module.add_module(LAYER_ATTR, layer)
        # Read by attention_hook. Put into __dict__ directly: nn.Module.__setattr__ would register
        # the layer a second time as a child and duplicate its keys in the state dict.
        module.__dict__["prefix_source"] = layer
        layer.original_config = attention_hook.install(module)
        layer.handles = [
            module.register_forward_pre_hook(partial(_capture_input, layer), with_kwargs=True),
            module.register_forward_hook(
                partial(_release_input, layer), with_kwargs=True, always_call=True
            ),
        ]
    ledger.on_undo(_drop_layer_if_unused, module, layer)
    return layer


def _drop_layer_if_unused(module: nn.Module, layer: PrefixTuningLayer) -> None:
    if layer.prefixes or module._modules.get(LAYER_ATTR) is not layer:
        return
    for handle in layer.handles:
        handle.remove()
    attention_hook.uninstall(module, layer.original_config)
    del module._modules[LAYER_ATTR]
    module.__dict__.pop("prefix_source", None)
