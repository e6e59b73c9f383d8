"""ReFT (reference §3.5): LoReft, NoReft and DiReft interventions on layer outputs.

Each selected layer gets ``reft_layer.refts.<name>`` (a :class:`ReftModule`) and a forward hook
that rewrites the layer's output hidden states at the first ``prefix_positions`` and the last
``suffix_positions`` non-padding positions. A unit computes

    x' = dropout(x + (act(W_s x + b) − [R x if subtract_projection]) · R)

with ``learned_source = Linear(h, r)`` and ``projection = R = Linear(h, r, bias=False)``, kept
orthogonal through ``torch.nn.utils.parametrizations.orthogonal`` when ``orthogonality`` is set
(which adds the reference's ``projection.parametrizations.weight.0.base`` buffer). Unit 0 serves
the prefix positions and unit 1 the suffix positions; with ``tied_weights`` one unit serves both.
Two units are built even when ``suffix_positions`` is 0 (as in the reference, so parameter counts
and keys match). Dropout hits the whole intervened state, as in the reference.

Positions come from the attention mask passed to the base model (first "1" = offset, number of
ones = length); without a mask (or for a stack whose length differs, e.g. a decoder) the whole
sequence counts as non-padding. ``subtract_projection`` is a config field here (False for DiReft),
so it survives saving and loading.

Only the first *active ReFT* adapter acts (the reference takes the first adapter of the active
setup, which silently disables ReFT when that adapter is of another family).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any, cast

import torch
from torch import Tensor, nn

from adapter_dsl.backend.architectures import (
    ModelSpec,
    base_model_of,
    group_config,
    iter_layers,
)
from adapter_dsl.backend.methods.base import MethodHandler
from adapter_dsl.backend.methods.common import activation, init_seed
from adapter_dsl.backend.methods.lora_layers import torch_dtype
from adapter_dsl.backend.state import Ledger, get_state
from adapter_dsl.errors import ConfigError
from adapter_dsl.methods.reft import ReftConfig

__all__ = ["ReftHandler", "ReftLayer", "ReftModule", "ReftUnit", "reft_layer_indices"]

LAYER_ATTR = "reft_layer"
SHARED_KEY = "reft"
MASK_KWARGS = ("attention_mask", "decoder_attention_mask")


class ReftUnit(nn.Module):
    """One intervention: ``x + (act(W_s x + b) − R x) Rᵀ``-style edit of the selected states."""

    def __init__(
        self,
        hidden: int,
        r: int,
        *,
        orthogonal: bool,
        subtract_projection: bool,
        non_linearity: str | None,
        dropout: float,
        dtype: torch.dtype | None,
    ) -> None:
        super().__init__()
        self.learned_source = nn.Linear(hidden, r, bias=True, dtype=dtype)
        projection: nn.Module = nn.Linear(hidden, r, bias=False, dtype=dtype)
        if orthogonal:
            if dtype in (torch.float16, torch.bfloat16):
                # The orthogonal parametrisation has no half-precision kernels.
                projection = projection.float()
            projection = nn.utils.parametrizations.orthogonal(projection)
        self.projection = projection
        self.orthogonal = orthogonal
        self.subtract_projection = subtract_projection
        self.non_linearity = activation(non_linearity)
        self.dropout = nn.Dropout(dropout)

    # torch refuses to pickle parametrised modules (their class is made on the fly), so a
    # pickle of the model carries the projection's parametrisations and rebuilds the module.
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        projection = self._modules["projection"]
        if self.orthogonal and projection is not None:
            modules = dict(state["_modules"])
            modules["projection"] = _OrthogonalRecipe(projection)
            state["_modules"] = modules
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        recipe = state["_modules"].get("projection")
        if isinstance(recipe, _OrthogonalRecipe):
            state["_modules"] = {**state["_modules"], "projection": recipe.build()}
        self.__dict__.update(state)

    def forward(self, x: Tensor) -> Tensor:
        # The projection may be float32 while the rest is half precision (see __init__).
        h = x.to(self.learned_source.weight.dtype)
        source = self.non_linearity(self.learned_source(h))
        weight = cast(Tensor, self.projection.weight)
        if self.subtract_projection:
            source = source - (h.to(weight.dtype) @ weight.t()).to(source.dtype)
        return self.dropout(x + (source.to(weight.dtype) @ weight).to(x.dtype))


class _OrthogonalRecipe:
    """A picklable stand-in for an orthogonally parametrised ``Linear`` (see ReftUnit)."""

    def __init__(self, projection: nn.Module) -> None:
        self.in_features = int(cast(int, projection.in_features))
        self.out_features = int(cast(int, projection.out_features))
        self.training = projection.training
        self.parametrizations = projection._modules["parametrizations"]

    def build(self) -> nn.Module:
        with torch.random.fork_rng(devices=[]):  # the throw-away initial weight uses the RNG
            plain = nn.Linear(self.in_features, self.out_features, bias=False)
            projection = nn.utils.parametrizations.orthogonal(plain)
        # The pickled parametrisations carry the trained tensors (original and base).
        projection._modules["parametrizations"] = self.parametrizations
        projection.train(self.training)
        return projection


class ReftModule(nn.Module):
    """The units of one adapter in one layer and the prefix/suffix gather/scatter."""

    def __init__(self, hidden: int, config: ReftConfig, dtype: torch.dtype | None = None) -> None:
        """``dtype``: used when ``config.dtype`` is None (the host model's dtype)."""
        super().__init__()
        self.prefix_positions = int(config.prefix_positions)
        self.suffix_positions = int(config.suffix_positions)
        self.tied_weights = bool(config.tied_weights)
        dtype = torch_dtype(config.dtype) or dtype
        units = []
        for _ in range(1 if self.tied_weights else 2):
            # Reseeded per unit like the reference, so a seed gives identical units.
            with init_seed(config.init_weights_seed):
                units.append(
                    ReftUnit(
                        hidden,
                        config.r,
                        orthogonal=bool(config.orthogonality),
                        subtract_projection=bool(getattr(config, "subtract_projection", True)),
                        non_linearity=config.non_linearity,
                        dropout=config.dropout,
                        dtype=dtype,
                    )
                )
        self.units = nn.ModuleList(units)

    def forward(self, hidden: Tensor, first: Tensor, last: Tensor) -> Tensor:
        """``hidden`` (B, T, h); ``first``/``last`` (B,): non-padding span ``[first, last)``."""
        batch, length, dim = hidden.shape
        spans: list[Tensor] = []
        pref_idx = suff_idx = None
        if self.prefix_positions > 0:
            n = min(self.prefix_positions, length)
            pref_idx = (first.view(-1, 1) + torch.arange(n, device=hidden.device)).clamp(
                0, length - 1
            )
            spans.append(hidden.gather(1, pref_idx.unsqueeze(-1).expand(batch, n, dim)))
        else:
            spans.append(hidden.new_zeros(batch, 0, dim))
        if self.suffix_positions > 0:
            n = min(self.suffix_positions, length)
            suff_idx = (last.view(-1, 1) + torch.arange(-n, 0, device=hidden.device)).clamp(
                0, length - 1
            )
            spans.append(hidden.gather(1, suff_idx.unsqueeze(-1).expand(batch, n, dim)))
        else:
            spans.append(hidden.new_zeros(batch, 0, dim))
        if self.tied_weights:
            adapted = [self.units[0](torch.cat(spans, dim=1))]
        else:
            adapted = [unit(span) for unit, span in zip(self.units, spans, strict=True)]
        merged = torch.cat(adapted, dim=1).to(hidden.dtype)
        if pref_idx is not None:
            n = pref_idx.shape[1]
            hidden = hidden.scatter(1, pref_idx.unsqueeze(-1).expand(batch, n, dim), merged[:, :n])
        if suff_idx is not None:
            n = suff_idx.shape[1]
            hidden = hidden.scatter(1, suff_idx.unsqueeze(-1).expand(batch, n, dim), merged[:, -n:])
        return hidden


class ReftLayer(nn.Module):
    """``reft_layer`` of one transformer layer: the ``refts`` of every adapter placed there."""

    def __init__(self, context: ReftContext, state: Any) -> None:
        super().__init__()
        self.refts = nn.ModuleDict()
        self._refs = (context, state)  # not registered
        self.handle: Any = None  # the output hook on the host layer

    def forward(self, hidden: Tensor) -> Tensor:
        context, state = self._refs
        for name, _ in state.active_members("reft"):
            if name in self.refts:
                module = cast(ReftModule, self.refts[name])
                if module.suffix_positions == 0 and context.past_prefix_window(
                    hidden, module.prefix_positions
                ):
                    # A cached decoding step after the intervened prefix: nothing to change
                    # (a full forward pass intervenes on the prefix positions only, too).
                    return hidden
                first, last = context.span(hidden)
                return module(hidden, first, last)
            return hidden  # the first active ReFT adapter is not placed in this layer
        return hidden


class ReftContext:
    """Attention masks of the current base-model forward (set and cleared by hooks)."""

    def __init__(self) -> None:
        self.masks: list[Tensor] = []
        self.past = 0  # positions already in the KV cache for the current forward
        self.handles: list[Any] = []
        self.users = 0

    def past_prefix_window(self, hidden: Tensor, prefix_positions: int) -> bool:
        """Whether ``hidden`` is a cached decoding chunk that lies wholly after the first
        ``prefix_positions`` non-padding positions of the sequence (the mask covers the cached
        past plus the chunk, so it is longer than the chunk)."""
        batch, length = hidden.shape[:2]
        for mask in self.masks:
            if mask.dim() == 2 and mask.shape[0] == batch and mask.shape[1] > length:
                offset = mask.shape[1] - length
                first = mask.argmax(dim=1)
                return bool(((first + prefix_positions) <= offset).all())
        # No padding mask: the sequence starts at position 0 of the cache.
        return self.past > 0 and prefix_positions <= self.past

    def span(self, hidden: Tensor) -> tuple[Tensor, Tensor]:
        """(first, last) non-padding positions for states ``hidden`` (B, T, h)."""
        batch, length = hidden.shape[:2]
        for mask in self.masks:
            if mask.dim() == 2 and mask.shape == (batch, length):
                first = mask.argmax(dim=1)
                return first, first + (mask == 1).sum(dim=1)
        zeros = torch.zeros(batch, dtype=torch.long, device=hidden.device)
        return zeros, zeros + length


# Hooks are module-level functions bound with functools.partial (not closures): a deep copy of
# the model then copies the bound objects too, so the copy's hooks act on the copy's modules.


def _output_hook(layer: ReftLayer, module: nn.Module, args: Any, output: Any) -> Any:
    if isinstance(output, Tensor):
        return layer(output)
    if isinstance(output, tuple) and output and isinstance(output[0], Tensor):
        return (layer(output[0]), *output[1:])
    return output


def _capture_masks(
    context: ReftContext, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    masks = [kwargs.get(key) for key in MASK_KWARGS]
    if masks[0] is None and len(args) > 1:
        masks[0] = args[1]
    context.masks = [m for m in masks if isinstance(m, Tensor)]
    # Cached decoding: how many positions the cache already holds (generate() may pass no mask).
    cache = kwargs.get("past_key_values", kwargs.get("cache"))  # the name varies by version
    get_length = getattr(cache, "get_seq_length", None)
    context.past = int(get_length()) if callable(get_length) else 0


def _release_masks(
    context: ReftContext, module: nn.Module, args: Any, kwargs: Any, output: Any
) -> None:
    context.masks = []
    context.past = 0


def reft_layer_indices(model: nn.Module, arch: ModelSpec, config: ReftConfig) -> list[int]:
    """Global indices of the layers ``config`` intervenes on."""
    if not getattr(config, "output_reft", True):
        return []
    indices = [ref.index for ref in iter_layers(model, arch)]
    if config.layers == "all":
        return indices
    wanted = set(config.layers)
    return [i for i in indices if i in wanted]


# ConfigError.single with this module's default code (a call may pass another).
_error = partial(ConfigError.single, code="unsupported_config")


class ReftHandler(MethodHandler[ReftConfig]):
    """Adds ``reft_layer`` modules and output hooks; reads positions from the attention mask."""

    family = "reft"

    def check(self, model: nn.Module, arch: ModelSpec, config: ReftConfig) -> None:
        if not arch.supports("reft"):
            raise _error(
                f"ReFT is not supported on '{arch.model_type}' models",
                expected="one of " + ", ".join(arch.supported_families),
                found="reft",
            )
        if config.layers != "all" and not all(isinstance(i, int) for i in config.layers):
            raise _error(
                "ReFT layers must be 'all' or a list of layer indices", found=repr(config.layers)
            )
        activation(config.non_linearity)
        try:
            torch_dtype(config.dtype)
        except ValueError:
            raise _error(
                "unknown dtype", expected="a torch dtype name", found=repr(config.dtype)
            ) from None
        if config.r < 1 or config.prefix_positions < 0 or config.suffix_positions < 0:
            raise _error(
                "ReFT needs r >= 1 and non-negative prefix/suffix positions",
                found=f"r={config.r}, prefix_positions={config.prefix_positions}, suffix_positions={config.suffix_positions}",
            )
        if not reft_layer_indices(model, arch, config):
            raise _error(
                "this ReFT config intervenes on no layer",
                expected=f"layer indices below {sum(1 for _ in iter_layers(model, arch))} and output_reft=True",
                found=f"layers={config.layers!r}",
            )

    def check_members(
        self, model: nn.Module, arch: ModelSpec, configs: Sequence[ReftConfig]
    ) -> None:
        if len(configs) > 1:
            raise _error(
                "a union can hold at most one ReFT config", found=f"{len(configs)} ReFT configs"
            )

    def add(
        self,
        model: nn.Module,
        arch: ModelSpec,
        name: str,
        config: ReftConfig,
        ledger: Ledger,
    ) -> None:
        state = get_state(model, arch)
        context = _context(model, state, ledger)
        wanted = set(reft_layer_indices(model, arch, config))
        for ref in iter_layers(model, arch):
            if ref.index not in wanted:
                continue
            hidden = arch.hidden_size(group_config(model, ref.group))
            layer = _layer(ref.module, context, state, ledger)
            weight = next(ref.module.parameters(), None)
            host = weight.dtype if weight is not None and weight.is_floating_point() else None
            module = ReftModule(hidden, config, dtype=host)
            if weight is not None:
                module.to(weight.device)
            module.train(ref.module.training)
            ledger.add_entry(layer.refts, name, module)


def _context(model: nn.Module, state: Any, ledger: Ledger) -> ReftContext:
    """Mask-capturing hooks on the base model, shared by all ReFT adapters."""
    existing = state.shared.get(SHARED_KEY)
    if isinstance(existing, ReftContext):
        context = existing
    else:
        context = ReftContext()
        base = base_model_of(model)
        context.handles = [
            base.register_forward_pre_hook(partial(_capture_masks, context), with_kwargs=True),
            base.register_forward_hook(
                partial(_release_masks, context), with_kwargs=True, always_call=True
            ),
        ]
        state.shared[SHARED_KEY] = context

    context.users += 1
    ledger.on_undo(_release_context, state, context)
    return context


def _release_context(state: Any, context: ReftContext) -> None:
    context.users -= 1
    if context.users == 0 and state.shared.get(SHARED_KEY) is context:
        for handle in context.handles:
            handle.remove()
        del state.shared[SHARED_KEY]


def _layer(module: nn.Module, context: ReftContext, state: Any, ledger: Ledger) -> ReftLayer:
    """The layer's ``reft_layer`` and output hook, created on first use, removed when empty."""
    existing = module._modules.get(LAYER_ATTR)
    if isinstance(existing, ReftLayer):
        layer = existing
    else:
        layer = ReftLayer(context, state)
        module.add_module(LAYER_ATTR, layer)
        layer.handle = module.register_forward_hook(partial(_output_hook, layer))

    # Every adapter registers the clean-up; whichever is removed last finds the layer empty.
    ledger.on_undo(_drop_layer_if_empty, module, layer)
    return layer


def _drop_layer_if_empty(module: nn.Module, layer: ReftLayer) -> None:
    if len(layer.refts) == 0 and module._modules.get(LAYER_ATTR) is layer:
        layer.handle.remove()
        del module._modules[LAYER_ATTR]
