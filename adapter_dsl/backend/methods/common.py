"""Small helpers shared by method handlers (activations, seeding, shared parameters, placement)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar, overload

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


SHARED_ATTR = "shared_parameters"
M = TypeVar("M", bound=nn.Module)


@overload
def shared_parameters(model: nn.Module, name: str, ledger: Ledger) -> nn.ParameterDict: ...
@overload
def shared_parameters(model: nn.Module, name: str, ledger: Ledger, module: M) -> M: ...
def shared_parameters(
    model: nn.Module, name: str, ledger: Ledger, module: nn.Module | None = None
) -> nn.Module:
    """``base_model.shared_parameters[name]``, the reference's key layout for parameters shared
    by every layer of adapter ``name``; the ``ModuleDict`` holding it is created on demand and
    removed on undo once empty (whichever user is undone last finds it empty).

    Without ``module``: a ``ParameterDict`` that several members of one adapter may fill
    (Compacter's PHM rules; put entries with :func:`add_shared`), removed on undo once empty.
    With ``module``: that module becomes the entry (VeRA's random matrices), removed on undo.
    Two members of one adapter that both need the entry (a ``vera|compacter`` union) are a
    ``ConfigError``: the reference overwrites one with the other and then fails in forward.
    """
    base = base_model_of(model)
    holder = base._modules.get(SHARED_ATTR)
    if holder is None:
        holder = nn.ModuleDict()
        base.add_module(SHARED_ATTR, holder)
    if not isinstance(holder, nn.ModuleDict):
        raise ConfigError.single(
            f"the model's '{SHARED_ATTR}' attribute is a {type(holder).__name__}",
            expected="an nn.ModuleDict (or no such attribute)",
            code="unsupported_model",
        )
    ledger.on_undo(_drop_container, base, holder)
    entry = holder._modules.get(name)
    if entry is None:
        if module is not None:
            ledger.add_entry(holder, name, module)
            return module
        entry = nn.ParameterDict()
        holder[name] = entry
        ledger.on_undo(_drop_entry, holder, name)
    elif module is not None or not isinstance(entry, nn.ParameterDict):
        mine = type(module).__name__ if module is not None else "PHM rule parameters"
        raise ConfigError.single(
            f"two members of adapter '{name}' both keep shared parameters under "
            f"{SHARED_ATTR}.{name}: {type(entry).__name__} and {mine}",
            expected="at most one member with shared parameters (VeRA, or Compacter with "
            "shared_phm_rule/shared_W_phm) per adapter",
            found=f"{SHARED_ATTR}.{name} already taken",
            suggestion="add them as two adapters and combine them with a Stack",
            code="conflict",
        )
    ledger.own(entry)
    return entry


def _drop_container(base: nn.Module, container: nn.ModuleDict) -> None:
    if len(container) == 0 and base._modules.get(SHARED_ATTR) is container:
        del base._modules[SHARED_ATTR]


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
