"""The toy family's backend handler: one gate per layer, applied by a forward hook."""

from __future__ import annotations

from functools import partial
from typing import Any

import torch
from torch import nn

from adapter_dsl.backend.architectures import ArchitectureSpec, iter_layers
from adapter_dsl.backend.methods.base import MethodHandler
from adapter_dsl.backend.state import AdapterState, Ledger, get_state

from .config import ScaledResidualConfig

CONTAINER = "toy_gates"  # the family's state container: <layer>.toy_gates.<name>.gate


class _Gate(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.gate = nn.Parameter(torch.ones(()))


def _rescale(
    state: AdapterState, name: str, unit: _Gate, module: nn.Module, args: Any, out: Any
) -> Any:
    scale = next((c.scale for n, c in state.active_members("toy") if n == name), None)
    if scale is None:
        return out
    hidden = out[0] if isinstance(out, tuple) else out
    hidden = hidden * (1 + scale * unit.gate)
    return (hidden, *out[1:]) if isinstance(out, tuple) else hidden


def _drop_if_empty(layer: nn.Module) -> None:
    if len(layer._modules[CONTAINER]) == 0:  # type: ignore[arg-type]
        del layer._modules[CONTAINER]


class ScaledResidualHandler(MethodHandler[ScaledResidualConfig]):
    family = "toy"

    def add(
        self,
        model: nn.Module,
        arch: ArchitectureSpec,
        name: str,
        config: ScaledResidualConfig,
        ledger: Ledger,
    ) -> None:
        state = get_state(model, arch)
        for ref in iter_layers(model, arch):
            if ref.index in config.leave_out:
                continue
            layer = ref.module
            if CONTAINER not in layer._modules:
                layer.add_module(CONTAINER, nn.ModuleDict())
            ledger.on_undo(_drop_if_empty, layer)
            unit = _Gate()
            ledger.add_entry(layer._modules[CONTAINER], name, unit)  # type: ignore[arg-type]
            ledger.hook(layer.register_forward_hook(partial(_rescale, state, name, unit)))
