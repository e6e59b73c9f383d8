"""Optimizer states keyed by parameter index (``optimizer.state_dict()``) or by parameter name
(the full state of ``torch.distributed.checkpoint.state_dict.get_optimizer_state_dict``), and
the conversion between the two.

A checkpoint of a sharded model holds the optimizer's full state by name, so it can be resumed
on any number of ranks, sharded or not; index-keyed states (a checkpoint of an unsharded run) are
mapped by the optimizer's own parameter order, which is the same on a sharded copy of the model.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from adapter_dsl.errors import ConfigError

__all__ = ["by_index", "by_name", "keyed_by_name"]

State = dict[str, Any]


def keyed_by_name(state: State) -> bool:
    """Whether ``state`` names its parameters (every group's ``params`` are strings)."""
    groups = state.get("param_groups") or []
    return all(isinstance(p, str) for g in groups for p in g.get("params", []))


def _order(model: nn.Module, optimizer: torch.optim.Optimizer) -> list[str]:
    """The names of the optimizer's parameters, in the order their indices count them."""
    names = {id(p): n for n, p in model.named_parameters(remove_duplicate=False)}
    return [names.get(id(p), "") for g in optimizer.param_groups for p in g["params"]]


def _mismatch(what: str, found: Any, source: str) -> ConfigError:
    return ConfigError.single(
        f"the optimizer state in {source} does not match the trainer's optimizer: {what}",
        expected="a checkpoint of the same trainable parameters, in the same parameter groups",
        found=str(found),
        code="bad_checkpoint",
    )


def _check_groups(state: State, optimizer: torch.optim.Optimizer, source: str) -> None:
    saved = [len(g.get("params", [])) for g in state.get("param_groups") or []]
    mine = [len(g["params"]) for g in optimizer.param_groups]
    if saved != mine:
        raise _mismatch(f"parameter groups of sizes {saved}, the optimizer's {mine}", saved, source)


def by_index(
    state: State, model: nn.Module, optimizer: torch.optim.Optimizer, source: str
) -> State:
    """``state`` keyed as ``optimizer.load_state_dict`` expects (a name-keyed one converted)."""
    if not keyed_by_name(state):
        return state
    _check_groups(state, optimizer, source)
    index = {n: i for i, n in enumerate(_order(model, optimizer))}
    named = {str(n) for g in state["param_groups"] for n in g["params"]}
    unknown = sorted((named | set(map(str, state.get("state", {})))) - set(index))
    if unknown:
        raise _mismatch(f"unknown parameter '{unknown[0]}'", unknown[0], source)
    return {
        "state": {index[n]: v for n, v in state.get("state", {}).items()},
        "param_groups": [
            {**g, "params": [index[n] for n in g["params"]]} for g in state["param_groups"]
        ],
    }


def by_name(state: State, model: nn.Module, optimizer: torch.optim.Optimizer, source: str) -> State:
    """``state`` keyed by parameter name (an index-keyed one converted)."""
    if keyed_by_name(state):
        return state
    _check_groups(state, optimizer, source)
    order = _order(model, optimizer)

    def name(i: Any) -> str:
        if not isinstance(i, int) or not 0 <= i < len(order) or not order[i]:
            raise _mismatch(f"unknown parameter index {i!r}", i, source)
        return order[i]

    return {
        "state": {name(i): v for i, v in state.get("state", {}).items()},
        "param_groups": [
            {**g, "params": [name(i) for i in g["params"]]} for g in state["param_groups"]
        ],
    }
