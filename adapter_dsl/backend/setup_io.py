"""Saving and loading a whole setup: its adapters, its fusions and ``adapter_setup.json``.

The layout is the reference's ``save_adapter_setup``: one sub-directory per adapter (named as the
adapter) and per fusion of the setup (named as the fusion, e.g. ``a,b``), plus
``adapter_setup.json`` = ``{"adapter_setup": <the setup's JSON form>, "head_setup": null,
"version": ...}``. ``load_adapter_setup`` reads ours and the reference's, and activates the setup.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from torch import nn

from adapter_dsl.backend import core
from adapter_dsl.backend.composition import Node, node_to_dict
from adapter_dsl.backend.fusion_io import load_fusion, save_fusion
from adapter_dsl.backend.headings import heads_failures
from adapter_dsl.backend.methods.fusion import delete_fusion
from adapter_dsl.backend.serialization import load_adapter, save_adapter
from adapter_dsl.backend.setups import install_entry_hook, resolve_setup
from adapter_dsl.backend.state import peek_state
from adapter_dsl.errors import ConfigError

__all__ = ["SETUP_FILE", "load_adapter_setup", "save_adapter_setup"]

SETUP_FILE = "adapter_setup.json"


def _fuses(node: Node) -> list[Node]:
    return [b for b in node.walk() if b.kind == "Fuse"]


@heads_failures("cannot save the adapter setup of {cls}")
def save_adapter_setup(
    model: nn.Module,
    directory: str | os.PathLike[str],
    setup: Any = None,
    *,
    format: str = "adapter_dsl",
) -> Path:
    """Write every adapter and fusion of ``setup`` (default: the active setup) and
    ``adapter_setup.json`` into ``directory``; ``format="adapters"`` writes the reference's
    file formats."""
    state = peek_state(model)
    node = resolve_setup(setup) if setup is not None else (state.active_setup() if state else None)
    if node is None:
        raise ConfigError.single(
            "there is no setup to save: no adapter is active",
            expected="set_active(model, ...) first, or pass setup=",
            code="no_setup",
        )
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    for name in node.names():
        save_adapter(model, name, target / name, format=format)
    for fuse in _fuses(node):
        save_fusion(model, fuse.name, target / fuse.name, format=format)
    version = "adapters.1.3.0" if format == "adapters" else "adapter_dsl"
    payload = {"adapter_setup": node_to_dict(node), "head_setup": None, "version": version}
    tmp = target / f".{SETUP_FILE}.{os.getpid()}"
    tmp.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, target / SETUP_FILE)
    return target


@heads_failures("cannot load the adapter setup in '{directory}' into {cls}")
def load_adapter_setup(
    model: nn.Module, directory: str | os.PathLike[str], *, set_active: bool = True
) -> Node:
    """Load the adapters and fusions that ``save_adapter_setup`` (ours or the reference's)
    wrote and activate the setup; returns it. On failure the model is left as it was."""
    path = Path(directory)
    try:
        payload = json.loads((path / SETUP_FILE).read_text(encoding="utf-8"))
        spec = payload["adapter_setup"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError.single(
            f"cannot read the setup in {path / SETUP_FILE}: {exc}",
            expected=f"a {SETUP_FILE} with an 'adapter_setup' key",
            code="invalid_setup_file",
        ) from exc
    node = resolve_setup(spec)
    if node is None:
        raise ConfigError.single(f"{path / SETUP_FILE} holds an empty setup", code="no_setup")
    state = peek_state(model)
    active_before = (state.active, state.setup) if state is not None else ((), None)
    added: list[str] = []
    fused: list[str] = []
    try:
        for name in node.names():
            loaded = load_adapter(model, path / name)
            added.append(loaded)
            if loaded != name:
                raise ConfigError.single(
                    f"the adapter in {path / name} is named '{loaded}', the setup says '{name}'",
                    code="invalid_setup_file",
                )
        for fuse in _fuses(node):
            fused.append(load_fusion(model, path / fuse.name))
        if set_active:
            core.set_active(model, node)
        else:
            _restore(model, active_before)
    except BaseException:
        for fname in reversed(fused):
            delete_fusion(model, fname)
        for name in reversed(added):
            core.delete_adapter(model, name)
        _restore(model, active_before)
        raise
    return node


def _restore(model: nn.Module, before: tuple[tuple[str, ...], Any]) -> None:
    state = peek_state(model)
    if state is not None:
        state.active, state.setup = before
        install_entry_hook(model, state, state.active_setup())
