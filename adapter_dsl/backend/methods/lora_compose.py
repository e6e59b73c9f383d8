"""Composition primitives of a LoRA-wrapped projection (the reference's ``LoRALinear`` compose_*).

The state follows the reference's ``LoRAState``: ``x`` the projection's input, ``hidden`` the
running delta (``None`` before the first unit), ``out`` the base projection's output. A unit
maps ``hidden`` (or ``x`` for the first) to its scaled delta, so ``Stack(a, b)`` gives
``Wx + s_b·B_b A_b(s_a·B_a A_a x)``; the last unit decides how the delta meets ``out`` (added,
multiplied for IA³, DoRA-normalised). ``mean`` is ``Σ w_i·hidden_i`` (see
``backend/composition.py``). A merged adapter is not applied again (it lives in the weights).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor

from adapter_dsl.backend.composition import Composer, ForwardContext

__all__ = ["LoRAComposer", "LoRAState"]


@dataclass(frozen=True)
class LoRAState:
    x: Tensor
    hidden: Tensor | None
    out: Tensor
    last: str | None = None
    spans: tuple[tuple[int, int, str | None], ...] | None = None


def _cat(parts: Sequence[Tensor | None], like: Sequence[Tensor], fill: float) -> Tensor | None:
    """Concatenate running deltas; rows without one get the neutral value of their finish."""
    if all(p is None for p in parts):
        return None
    full = [
        p if p is not None else torch.full_like(o, fill) for p, o in zip(parts, like, strict=True)
    ]
    return torch.cat([f.expand_as(o) for f, o in zip(full, like, strict=True)])


class LoRAComposer(Composer[LoRAState]):
    method = "LoRA"

    def __init__(self, wrapper: Any, context: ForwardContext | None) -> None:
        self.wrapper = wrapper
        self.context = context

    def has(self, name: str) -> bool:
        return name in self.wrapper.loras._modules and name != self.wrapper.merged

    def batch_size(self, state: LoRAState) -> int:
        return int(state.x.shape[0])

    def seq_len(self, state: LoRAState) -> int:
        return int(state.x.shape[1])

    def single(self, name: str, state: LoRAState) -> LoRAState:
        unit = self.wrapper.unit(name)
        value = self.wrapper._unit_step(unit, state.hidden, state.x)
        if value.shape[:-1] != state.out.shape[:-1]:
            # IA³'s first unit yields one scale vector: give it the batch's shape for slicing.
            value = value.expand(*state.out.shape[:-1], value.shape[-1])
        return replace(state, hidden=value, last=name, spans=None)

    def vslice(self, state: LoRAState, index: slice | Tensor) -> LoRAState:
        hidden = state.hidden[index] if state.hidden is not None else None
        return replace(state, x=state.x[index], hidden=hidden, out=state.out[index], spans=None)

    def concat(self, states: Sequence[LoRAState], whole: LoRAState) -> LoRAState:
        fill = 1.0 if self._is_scale(states[-1].last) else 0.0
        hidden = _cat([s.hidden for s in states], [s.out for s in states], fill)
        return replace(states[-1], x=whole.x, hidden=hidden, out=whole.out)

    def mean(self, states: Sequence[LoRAState], weights: Sequence[float]) -> LoRAState:
        parts = [
            (w, s.hidden) for w, s in zip(weights, states, strict=True) if s.hidden is not None
        ]
        hidden = sum(w * h for w, h in parts) if parts else None
        assert hidden is None or isinstance(hidden, Tensor)
        return replace(states[0], hidden=hidden, last=states[-1].last)

    def _is_scale(self, name: str | None) -> bool:
        return name is not None and self.wrapper.unit(name).composition_mode == "scale"

    def finish(self, state: LoRAState) -> Tensor:
        """The projection's output for the composed state."""
        if state.spans is None:
            return self._finish(state.last, state.out, state.hidden)
        parts = []
        for start, stop, name in state.spans:
            rows = slice(start, stop)
            hidden = state.hidden[rows] if state.hidden is not None else None
            parts.append(self._finish(name, state.out[rows], hidden))
        return torch.cat(parts)

    def _finish(self, name: str | None, out: Tensor, hidden: Tensor | None) -> Tensor:
        if name is None or hidden is None:
            return out
        result: Tensor = self.wrapper.combine(self.wrapper.unit(name), out, hidden)
        return result
