"""Composition primitives of a bottleneck site (the reference's ``BottleneckLayer`` compose_*).

The state follows the reference's ``BottleneckState``: ``h`` the hidden states flowing through
the setup, ``x`` the sublayer's residual input, ``r`` the adapter residual, ``up`` the last
adapter's scaled up-projection (what AdapterFusion attends over); ``h0`` keeps the sublayer
output ``H`` of these rows, for rows that no adapter of the site touches.

* ``pre``: the adapter's pre-step (residual, original LN) on ``h`` — the reference re-runs it
  before every adapter of a ``Stack``, so ``Stack(a, b)`` gives ``b`` the sum ``O_a + X`` again.
* ``single``: the core step, keeping ``U``.
* ``fuse``: the last fused adapter's pre-step, every child on the same state, then the fusion
  layer over their ``U`` (``ctx + R``).
* ``mean``: ``Σ w_i·h_i`` (see ``backend/composition.py`` for why not the reference's mean).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from adapter_dsl.backend.composition import Composer, ForwardContext, Node
from adapter_dsl.errors import ConfigError

__all__ = ["BottleneckComposer", "BottleneckState"]


@dataclass(frozen=True)
class BottleneckState:
    h: Tensor
    x: Tensor
    r: Tensor
    up: Tensor | None
    h0: Tensor
    last: str | None = None
    spans: tuple[tuple[int, int, str | None], ...] | None = None


class _Site(Protocol):
    adapters: nn.ModuleDict
    fusions: nn.ModuleDict | None
    layer_norm: nn.Module | None
    state: Any

    def adapter(self, name: str) -> Any: ...


def _cat(parts: Sequence[Tensor | None], dim: int) -> Tensor | None:
    if any(p is None for p in parts):
        return None
    return torch.cat([p for p in parts if p is not None], dim=dim)


class BottleneckComposer(Composer[BottleneckState]):
    method = "bottleneck"

    def __init__(self, site: _Site) -> None:
        self.site = site
        self.context: ForwardContext | None = site.state.context

    def has(self, name: str) -> bool:
        return name in self.site.adapters._modules

    def batch_size(self, state: BottleneckState) -> int:
        return int(state.h.shape[0])

    def seq_len(self, state: BottleneckState) -> int:
        return int(state.h.shape[1])

    def pre(self, name: str, state: BottleneckState) -> BottleneckState:
        a, _, r = self.site.adapter(name).pre_forward(state.h, state.x, self.site.layer_norm)
        return replace(state, h=a, r=r)

    def single(self, name: str, state: BottleneckState) -> BottleneckState:
        out, up = self.site.adapter(name).core(state.h, state.r)
        return replace(state, h=out, up=up, last=name, spans=None)

    def vslice(self, state: BottleneckState, index: slice | Tensor) -> BottleneckState:
        up = state.up[index] if state.up is not None else None
        # Row ranges do not survive slicing; the blocks that slice set them again.
        return replace(
            state,
            h=state.h[index],
            x=state.x[index],
            r=state.r[index],
            up=up,
            h0=state.h0[index],
            spans=None,
        )

    def concat(self, states: Sequence[BottleneckState], whole: BottleneckState) -> BottleneckState:
        return replace(
            states[-1],
            h=torch.cat([s.h for s in states]),
            x=whole.x,
            r=torch.cat([s.r for s in states]),
            up=_cat([s.up for s in states], 0),
            h0=whole.h0,
        )

    def seq_slice(self, state: BottleneckState, index: slice) -> BottleneckState:
        up = state.up[:, index] if state.up is not None else None
        return replace(
            state,
            h=state.h[:, index],
            x=state.x[:, index],
            r=state.r[:, index],
            up=up,
            h0=state.h0[:, index],
        )

    def seq_concat(self, states: Sequence[BottleneckState]) -> BottleneckState:
        return replace(
            states[-1],
            h=torch.cat([s.h for s in states], dim=1),
            x=torch.cat([s.x for s in states], dim=1),
            r=torch.cat([s.r for s in states], dim=1),
            up=_cat([s.up for s in states], 1),
            h0=torch.cat([s.h0 for s in states], dim=1),
        )

    def mean(self, states: Sequence[BottleneckState], weights: Sequence[float]) -> BottleneckState:
        total = sum(w * s.h for w, s in zip(weights, states, strict=True))
        assert isinstance(total, Tensor)
        return replace(states[0], h=total, last=states[-1].last)

    def fuse(
        self,
        node: Node,
        state: BottleneckState,
        run: Callable[[Node | str, BottleneckState], BottleneckState | None],
    ) -> BottleneckState:
        fusions = self.site.fusions
        fusion = fusions._modules.get(node.name) if fusions is not None else None
        last = node.last()
        if fusion is None or not self.has(last):
            raise ConfigError.single(
                f"{node}: this bottleneck location has no fusion layer '{node.name}'",
                expected=f"add_fusion(model, {list(node.names())!r}) before activating it",
                found=node.name,
                code="unknown_fusion",
            )
        a, query, r = self.site.adapter(last).pre_forward(
            state.h, state.x, self.site.layer_norm, bool(fusion.query_before_ln)
        )
        state = replace(state, h=a, r=r)
        ups = []
        for child in node.children:
            out = run(child, state)
            if out is not None and out.up is not None:
                ups.append(out.up)
        hidden = fusion(query, torch.stack(ups, dim=2), r)
        return replace(state, h=hidden, last=last, spans=None)
