"""Composition primitives of a prefix-tuning attention module (the reference's
``PrefixTuningLayer`` compose_*): ``Stack``, ``BatchSplit`` and ``Parallel``.

The state holds the prefix keys and values gathered so far, (rows, H_kv, P, d_head), the
attention input of these rows (for gates) and ``valid`` (rows, P): which prefix positions are
real. ``single`` prepends an adapter's prefix (the reference's order: the last adapter of a
``Stack`` comes first); ``concat`` left-pads shorter prefixes like the reference's
``pad_and_concat``, and the padded positions are masked (``valid`` False) — the reference masks
them only when the model passes an attention mask.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from adapter_dsl.backend.composition import Composer, ForwardContext

__all__ = ["PrefixComposer", "PrefixState"]


@dataclass(frozen=True)
class PrefixState:
    rows: int
    key: Tensor | None  # (rows, H_kv, P, d)
    value: Tensor | None
    valid: Tensor | None  # (rows, P) bool; None: every position is real
    residual: Tensor | None
    last: str | None = None
    spans: tuple[tuple[int, int, str | None], ...] | None = None

    @property
    def length(self) -> int:
        return 0 if self.key is None else int(self.key.shape[-2])


class PrefixComposer(Composer[PrefixState]):
    method = "prefix_tuning"

    def __init__(self, layer: Any, context: ForwardContext | None) -> None:
        self.layer = layer
        self.context = context

    def has(self, name: str) -> bool:
        return name in self.layer.prefixes

    def batch_size(self, state: PrefixState) -> int:
        return state.rows

    def seq_len(self, state: PrefixState) -> int:
        raise NotImplementedError  # Split is refused for prefix tuning before any forward

    def single(self, name: str, state: PrefixState) -> PrefixState:
        k, v = self.layer.adapter_states(name, state.rows, state.residual)
        if state.key is None or state.value is None:
            return replace(state, key=k, value=v, last=name, spans=None)
        valid = state.valid
        if valid is not None:
            valid = torch.cat([valid.new_ones(state.rows, k.shape[-2]), valid], dim=1)
        return replace(
            state,
            key=torch.cat([k, state.key], dim=-2),
            value=torch.cat([v, state.value], dim=-2),
            valid=valid,
            last=name,
            spans=None,
        )

    def vslice(self, state: PrefixState, index: slice | Tensor) -> PrefixState:
        rows = int(torch.arange(state.rows)[index].numel())

        def cut(t: Tensor | None) -> Tensor | None:
            return None if t is None else t[index]

        return replace(
            state,
            rows=rows,
            key=cut(state.key),
            value=cut(state.value),
            valid=cut(state.valid),
            residual=cut(state.residual),
            spans=None,
        )

    def concat(self, states: Sequence[PrefixState], whole: PrefixState) -> PrefixState:
        length = max(s.length for s in states)
        template = next((s.key for s in states if s.key is not None), None)
        merged_residual = whole.residual
        if template is None:
            return replace(states[-1], rows=sum(s.rows for s in states), residual=merged_residual)
        keys, values, valids = [], [], []
        for s in states:
            pad = length - s.length
            if s.key is None or s.value is None:
                shape = (s.rows, template.shape[1], length, template.shape[3])
                keys.append(template.new_zeros(shape))
                values.append(template.new_zeros(shape))
            else:
                keys.append(F.pad(s.key, (0, 0, pad, 0)))
                values.append(F.pad(s.value, (0, 0, pad, 0)))
            own = (
                s.valid
                if s.valid is not None
                else torch.ones(s.rows, s.length, dtype=torch.bool, device=template.device)
            )
            valids.append(F.pad(own, (pad, 0), value=False))
        return replace(
            states[-1],
            rows=sum(s.rows for s in states),
            key=torch.cat(keys),
            value=torch.cat(values),
            valid=torch.cat(valids),
            residual=merged_residual,
        )
