"""PyTorch backend: materialise validated adapter configs on plain Hugging Face models.

Importing this package imports torch (``adapter_dsl`` itself never does)::

    from adapter_dsl.backend import add_adapter, train_adapter, save_adapter, load_adapter

    add_adapter(model, "task", "seq_bn[reduction_factor=8]")
    train_adapter(model, "task")          # freezes everything else, activates "task"
    save_adapter(model, "task", "out/task")
    name = load_adapter(fresh_model, "out/task")

Supported model types and the hook points used are listed in :mod:`adapter_dsl.model_types`
(``MODEL_TYPES``; ``ARCHITECTURES`` and ``get_architecture`` are the former names of
``MODEL_TYPES`` and ``get_model_spec``); method families live in
:mod:`adapter_dsl.backend.methods` (the handler protocol is in ``methods/base.py``).
"""

from __future__ import annotations

from adapter_dsl.backend.architectures import (
    ARCHITECTURES,
    MODEL_TYPES,
    get_architecture,
    get_model_spec,
    register_model_type,
    unregister_model_type,
)
from adapter_dsl.backend.core import (
    adapter_summary,
    add_adapter,
    delete_adapter,
    format_summary,
    merge_adapter,
    resolve_config,
    set_active,
    train_adapter,
    unmerge_adapter,
)
from adapter_dsl.backend.methods.prompt_tuning import set_prompt_tokenizer
from adapter_dsl.backend.pretrained import from_pretrained, restore_adapters
from adapter_dsl.backend.serialization import load_adapter, save_adapter

__all__ = [
    "ARCHITECTURES",
    "MODEL_TYPES",
    "adapter_summary",
    "add_adapter",
    "add_fusion",
    "average_adapter",
    "delete_adapter",
    "delete_fusion",
    "format_summary",
    "from_pretrained",
    "fusion_regularization_loss",
    "get_architecture",
    "get_model_spec",
    "list_adapters",
    "load_adapter",
    "load_adapter_setup",
    "load_fusion",
    "merge_adapter",
    "register_model_type",
    "resolve_config",
    "restore_adapters",
    "save_adapter",
    "save_adapter_setup",
    "save_fusion",
    "set_active",
    "set_prompt_tokenizer",
    "train_adapter",
    "train_fusion",
    "unmerge_adapter",
    "unregister_model_type",
]


def list_adapters(model: object) -> list[str]:
    """Names of the adapters added to ``model``, in insertion order."""
    from adapter_dsl.backend.state import peek_state

    state = peek_state(model)  # type: ignore[arg-type]
    return list(state.adapters) if state is not None else []


#: Composition, fusion and averaging: imported on first use (``name → module``).
_LAZY = {
    "add_fusion": "adapter_dsl.backend.methods.fusion",
    "delete_fusion": "adapter_dsl.backend.methods.fusion",
    "fusion_regularization_loss": "adapter_dsl.backend.methods.fusion",
    "train_fusion": "adapter_dsl.backend.core",
    "save_fusion": "adapter_dsl.backend.fusion_io",
    "load_fusion": "adapter_dsl.backend.fusion_io",
    "save_adapter_setup": "adapter_dsl.backend.setup_io",
    "load_adapter_setup": "adapter_dsl.backend.setup_io",
    "average_adapter": "adapter_dsl.backend.averaging",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
