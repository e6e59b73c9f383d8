"""Small helpers shared by method handlers (activations, seeding, shared parameters, placement)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from adapter_dsl.backend.architectures import base_model_of
from adapter_dsl.backend.state import Ledger
from adapter_dsl.errors import ConfigError, did_you_mean

__all__ = [
    "activation",
    "init_seed",
    "layer_value",
    "match_device_dtype",
    "shared_parameters",
]


def activation(name: str | None) -> nn.Module:
    """The module for a ``non_linearity`` value: ``"leakyrelu"`` or a transformers ``ACT2FN`` key.

    Lower-cased as in the reference. Unknown names raise ``ConfigError`` with a suggestion.
    """
    from transformers.activations import ACT2FN

    if name is None:
        return nn.Identity()
    key = str(name).lower()
    if key == "leakyrelu":
        return nn.LeakyReLU()
    if key not in ACT2FN:
        raise ConfigError.single(
            f"unknown non_linearity '{name}'",
            expected="'leakyrelu' or one of " + ", ".join(sorted(ACT2FN)),
            found=repr(name),
            suggestion=did_you_mean(key, [*ACT2FN, "leakyrelu"]),
            code="unknown_activation",
        )
    module = ACT2FN[key]
    assert isinstance(module, nn.Module)
    return module


@contextmanager
def init_seed(seed: int | None) -> Iterator[None]:
    """Seed torch's generator for an initialisation without disturbing the caller's RNG state.

    The reference reseeds the global generator before each module so that every layer gets the
    same weights; we do the same inside a forked RNG so the seed does not leak into the rest of
    the program. ``None`` leaves the RNG alone.
    """
    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        yield


def layer_value(value: Any, layer: int, field: str) -> Any:
    """A per-layer setting: a plain value, or a mapping keyed by ``str(layer)`` with ``"default"``."""
    if isinstance(value, Mapping):
        if str(layer) in value:
            return value[str(layer)]
        if "default" in value:
            return value["default"]
        raise ConfigError.single(
            f"{field} gives no value for layer {layer} and no 'default'",
            expected=f"a '{layer}' or 'default' key",
            found=repr(dict(value)),
            code="missing_default",
        )
    return value


def match_device_dtype(module: nn.Module, like: nn.Module) -> nn.Module:
    """Move ``module`` to the device and floating dtype of ``like``'s first parameter/buffer."""
    ref: torch.Tensor | None = next(iter(like.parameters()), None)
    if ref is None:
        ref = next(iter(like.buffers()), None)
    if ref is None:
        return module
    if ref.is_floating_point():
        return module.to(device=ref.device, dtype=ref.dtype)
    return module.to(device=ref.device)


def shared_parameters(model: nn.Module, name: str, ledger: Ledger) -> nn.ParameterDict:
    """``base_model.shared_parameters[name]``, created on demand (reference key layout).

    The container and the per-adapter dict are removed again by ``ledger`` when they were
    created by it and are empty at undo time. Put entries with :func:`add_shared`.
    """
    base = base_model_of(model)
    container = base._modules.get("shared_parameters")
    if container is None:
        container = nn.ModuleDict()
        base.shared_parameters = container
        ledger.on_undo(_drop_container, base, container)
    assert isinstance(container, nn.ModuleDict)
    if name not in container:
        container[name] = nn.ParameterDict()
        ledger.on_undo(_drop_entry, container, name)
    entry = container[name]
    assert isinstance(entry, nn.ParameterDict)
    ledger.own(entry)
    return entry


def _drop_container(base: nn.Module, container: nn.ModuleDict) -> None:
    if len(container) == 0 and base._modules.get("shared_parameters") is container:
        del base.shared_parameters


def _drop_entry(container: nn.ModuleDict, name: str) -> None:
    entry = container._modules.get(name)
    if isinstance(entry, nn.ParameterDict) and len(entry) == 0:
        del container[name]


def _pop(pdict: nn.ParameterDict, key: str) -> None:
    pdict.pop(key)


def add_shared(pdict: nn.ParameterDict, key: str, param: nn.Parameter, ledger: Ledger) -> None:
    """Add ``param`` to a shared-parameter dict, removed again on undo."""
    if key in pdict:
        raise KeyError(f"shared parameter '{key}' already exists")
    pdict[key] = param
    ledger.on_undo(_pop, pdict, key)
