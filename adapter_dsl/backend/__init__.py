"""PyTorch backend: materialise validated adapter configs on plain Hugging Face models.

Importing this package imports torch (``adapter_dsl`` itself never does)::

    from adapter_dsl.backend import add_adapter, train_adapter, save_adapter, load_adapter

    add_adapter(model, "task", "seq_bn[reduction_factor=8]")
    train_adapter(model, "task")          # freezes everything else, activates "task"
    save_adapter(model, "task", "out/task")
    name = load_adapter(fresh_model, "out/task")

Supported model types and the hook points used are listed in
:mod:`adapter_dsl.backend.architectures`; method families live in
:mod:`adapter_dsl.backend.methods` (the handler protocol is in ``methods/base.py``).
"""

from __future__ import annotations

from adapter_dsl.backend.architectures import (
    ARCHITECTURES,
    get_architecture,
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
from adapter_dsl.backend.serialization import load_adapter, save_adapter

__all__ = [
    "ARCHITECTURES",
    "adapter_summary",
    "add_adapter",
    "delete_adapter",
    "format_summary",
    "get_architecture",
    "list_adapters",
    "load_adapter",
    "merge_adapter",
    "register_model_type",
    "resolve_config",
    "save_adapter",
    "set_active",
    "set_prompt_tokenizer",
    "train_adapter",
    "unmerge_adapter",
    "unregister_model_type",
]


def list_adapters(model: object) -> list[str]:
    """Names of the adapters added to ``model``, in insertion order."""
    from adapter_dsl.backend.state import peek_state

    state = peek_state(model)  # type: ignore[arg-type]
    return list(state.adapters) if state is not None else []
