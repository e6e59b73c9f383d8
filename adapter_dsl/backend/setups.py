"""Activating a setup: resolving it, the model-dependent checks, and the forward context.

``set_active(model, setup)`` accepts a setup string (``"Stack(a, Fuse(b, c))"``), a block, a
bare name (→ ``Stack(name)``), a list of names (the reference's deprecated form: a ``Stack``;
a nested list is a ``Fuse``) or ``None``. Everything that depends on the model is checked here,
before any forward pass, with a ``ConfigError`` that names the block and the method:

* every name is an adapter of the model, every ``Fuse`` a fusion of it;
* ``Parallel`` only on the model types where the reference supports it;
* which methods support which blocks (bottleneck: all; the LoRA family: ``Stack``,
  ``BatchSplit``, ``Average``, ``Parallel``, ``MultiTask``; prefix tuning: ``Stack``,
  ``BatchSplit``, ``Parallel``; prompt
  tuning, ReFT and invertible adapters use the setup's first adapter and accept any block);
* the children of an ``Average`` reach the same methods (a child without an adapter at a site
  has no output there to average).

Sizes that depend on the input (``BatchSplit`` rows, ``Split`` tokens) are checked when the
forward pass starts, by the hook that also replicates the inputs for ``Parallel`` and takes
``task_ids`` for ``MultiTask``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import partial
from typing import Any

import torch
from torch import Tensor, nn

from adapter_dsl.backend.architectures import base_model_of
from adapter_dsl.backend.composition import BLOCKS, ForwardContext, Node, to_node
from adapter_dsl.backend.state import AdapterState
from adapter_dsl.errors import ConfigError, did_you_mean

__all__ = [
    "PARALLEL_MODEL_TYPES",
    "SUPPORTED_BLOCKS",
    "check_setup",
    "install_entry_hook",
    "resolve_setup",
]

#: The reference's ``SUPPORTED_MODELS[Parallel]``.
PARALLEL_MODEL_TYPES = frozenset(
    {
        "albert",
        "bert",
        "roberta",
        "distilbert",
        "deberta-v2",
        "deberta",
        "bart",
        "mbart",
        "mt5",
        "plbart",
        "gpt2",
        "gptj",
        "t5",
        "vit",
        "xlm-roberta",
        "bert-generation",
        "llama",
        "mistral",
        "electra",
        "whisper",
        "xmod",
    }
)

_ALL = frozenset(BLOCKS)
#: backend family → blocks its sites compose (the reference's ``supported_compositions``).
SUPPORTED_BLOCKS: dict[str, frozenset[str]] = {
    "bottleneck": _ALL,
    "lora": frozenset({"Stack", "BatchSplit", "Average", "Parallel", "MultiTask"}),
    "mtl_lora": frozenset({"Stack", "BatchSplit", "Average", "Parallel", "MultiTask"}),
    "prefix_tuning": frozenset({"Stack", "BatchSplit", "Parallel"}),
    # These apply the setup's first adapter only, whatever the blocks.
    "prompt_tuning": _ALL,
    "reft": _ALL,
}

ENTRY_HOOK = "composition_entry"


def _from_list(items: Sequence[Any], top: bool) -> Node:
    children: list[Node | str] = []
    for item in items:
        if isinstance(item, str):
            children.append(item)
        elif isinstance(item, list | tuple):
            children.append(_from_list(item, top=False))
        else:
            children.append(to_node(item, top=False))
    return Node(
        "Stack" if top else "Fuse", tuple(children), name="" if top else _fuse_name(children)
    )


def _fuse_name(children: Sequence[Node | str]) -> str:
    return ",".join(c if isinstance(c, str) else c.last() for c in children)


def resolve_setup(spec: Any) -> Node | None:
    """A :class:`Node` from anything ``set_active`` accepts (``None`` for no setup)."""
    if spec is None:
        return None
    if isinstance(spec, Node):
        return spec
    if isinstance(spec, str):
        if spec.isidentifier():
            return Node("Stack", (spec,))
        from adapter_dsl import load_setup

        return to_node(load_setup(spec))
    if isinstance(spec, list | tuple):
        if not spec:
            return None
        return _from_list(list(spec), top=True)
    if isinstance(spec, dict):
        from adapter_dsl import load_setup

        return to_node(load_setup(spec))
    return to_node(spec)


def _child_names(child: Node | str) -> tuple[str, ...]:
    return (child,) if isinstance(child, str) else child.names()


def _families(state: AdapterState, name: str) -> set[str]:
    return set(state.adapters[name].families)


def check_setup(model: nn.Module, state: AdapterState | None, node: Node) -> None:
    """Raise ``ConfigError`` unless ``node`` can run on ``model``; never modifies it."""
    known = list(state.adapters) if state is not None else []
    for name in node.names():
        if state is None or name not in state.adapters:
            raise ConfigError.single(
                f"the model has no adapter named '{name}' (in {node})",
                expected="one of " + ", ".join(repr(k) for k in known)
                if known
                else "an added adapter",
                found=repr(name),
                suggestion=did_you_mean(name, known),
                code="unknown_adapter",
            )
    assert state is not None
    for block in node.walk():
        if block.kind == "Parallel" and state.arch.model_type not in PARALLEL_MODEL_TYPES:
            raise ConfigError.single(
                f"{block}: Parallel blocks are not supported on '{state.arch.model_type}' models",
                expected="a model type where the reference supports Parallel: "
                + ", ".join(sorted(PARALLEL_MODEL_TYPES)),
                found=state.arch.model_type,
                code="unsupported_composition",
            )
        if block.kind == "Fuse" and block.name not in state.fusions:
            raise ConfigError.single(
                f"{block}: the model has no fusion '{block.name}'",
                expected=f"add_fusion(model, {list(block.names())!r}) or load_fusion() first",
                found=repr(block.name),
                suggestion=did_you_mean(block.name, list(state.fusions)),
                code="unknown_fusion",
            )
        families = set().union(*(_families(state, n) for n in block.names()))
        for family in sorted(families):
            allowed = SUPPORTED_BLOCKS.get(family, frozenset({"Stack"}))
            if block.kind not in allowed:
                raise ConfigError.single(
                    f"{block}: {block.kind} blocks are not supported for {family} adapters",
                    expected=f"blocks {family} adapters support: "
                    + ", ".join(b for b in BLOCKS if b in allowed),
                    found=block.kind,
                    code="unsupported_composition",
                )
        if block.kind == "Average":
            reach = [
                frozenset().union(*(_families(state, n) for n in _child_names(c)))
                for c in block.children
            ]
            if len(set(reach)) > 1:
                raise ConfigError.single(
                    f"{block}: the children of an Average must reach the same methods",
                    expected="children whose adapters are of the same methods",
                    found=", ".join("/".join(sorted(r)) for r in reach),
                    code="unsupported_composition",
                )


# -- the entry hook: forward context, Parallel replication, size checks --------------------------


def _needs_entry_hook(node: Node | None) -> bool:
    return node is not None and any(
        b.kind in ("Parallel", "MultiTask", "BatchSplit", "Split") for b in node.walk()
    )


def _batch_of(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Tensor | None:
    for key in ("input_ids", "inputs_embeds"):
        value = kwargs.get(key)
        if isinstance(value, Tensor):
            return value
    return args[0] if args and isinstance(args[0], Tensor) else None


def _lengths(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, int]:
    out: dict[str, int] = {}
    first = _batch_of(args, kwargs)
    if first is not None and first.dim() >= 2:
        out["sequence length"] = int(first.shape[1])
    for key in ("decoder_input_ids", "decoder_inputs_embeds"):
        value = kwargs.get(key)
        if isinstance(value, Tensor) and value.dim() >= 2:
            out["decoder's sequence length"] = int(value.shape[1])
    return out


def _check_sizes(node: Node, rows: int, lengths: dict[str, int]) -> None:
    """``BatchSplit`` sizes against the rows each block receives, ``Split`` against lengths."""
    if node.kind == "BatchSplit":
        if sum(node.sizes) != rows:
            raise ConfigError.single(
                f"{node}: the batch sizes sum to {sum(node.sizes)}, but the batch has {rows} rows",
                expected=f"batch_sizes that sum to {rows}",
                found=repr(list(node.sizes)),
                code="setup_size",
            )
        for child, size in zip(node.children, node.sizes, strict=True):
            if isinstance(child, Node):
                _check_sizes(child, size, lengths)
        return
    if node.kind == "Split":
        for what, length in lengths.items():
            if sum(node.sizes) != length:
                raise ConfigError.single(
                    f"{node}: the splits sum to {sum(node.sizes)}, but the {what} is {length}",
                    expected=f"splits that sum to the {what} ({length})",
                    found=repr(list(node.sizes)),
                    code="setup_size",
                )
    for child in node.children:
        if isinstance(child, Node):
            _check_sizes(child, rows, lengths)


def _replicate(value: Any, rows: int, k: int) -> Any:
    if isinstance(value, Tensor) and value.dim() >= 1 and value.shape[0] == rows:
        return value.repeat(k, *([1] * (value.dim() - 1)))
    return value


def _on_entry(
    state: AdapterState, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    task_ids = kwargs.pop("task_ids", None)
    node = state.active_setup()
    ctx = ForwardContext()
    if task_ids is not None:
        ctx.task_ids = _task_tensor(task_ids, node)
    state.context = ctx
    if node is None:
        return args, kwargs
    first = _batch_of(args, kwargs)
    rows = int(first.shape[0]) if first is not None else 0
    k = node.parallel_channels
    if first is not None:
        # Prompt tuning lengthens the sequence; its Split sizes are checked at each site.
        skip_lengths = any("prompt_tuning" in state.adapters[n].families for n in node.names())
        _check_sizes(node, rows, {} if skip_lengths else _lengths(args, kwargs))
    if k > 1 and first is not None:
        args = tuple(_replicate(a, rows, k) for a in args)
        kwargs = {key: _replicate(v, rows, k) for key, v in kwargs.items()}
        if ctx.task_ids is not None:
            ctx.task_ids = ctx.task_ids.repeat(k)
    return args, kwargs


def _on_exit(state: AdapterState, module: nn.Module, args: Any, kwargs: Any, output: Any) -> None:
    state.context = None


def _task_tensor(task_ids: Any, node: Node | None) -> Tensor:
    if isinstance(task_ids, Tensor):
        return task_ids.long()
    ids = list(task_ids)
    if ids and isinstance(ids[0], str):
        children = [c if isinstance(c, str) else c.last() for c in (node.children if node else ())]
        multitask = next((b for b in node.walk() if b.kind == "MultiTask"), None) if node else None
        if multitask is not None:
            children = [c if isinstance(c, str) else c.last() for c in multitask.children]
        try:
            return torch.tensor([children.index(t) for t in ids])
        except ValueError:
            raise ConfigError.single(
                "a task id names no child of the MultiTask block",
                expected="one of " + ", ".join(children),
                found=repr(ids),
                code="unknown_task",
            ) from None
    return torch.tensor(ids, dtype=torch.long)


def install_entry_hook(model: nn.Module, state: AdapterState, node: Node | None) -> None:
    """Keep the forward hooks on the base model exactly while the setup needs them."""
    handles = state.shared.get(ENTRY_HOOK)
    if _needs_entry_hook(node):
        if handles is None:
            base = base_model_of(model)
            state.shared[ENTRY_HOOK] = (
                base.register_forward_pre_hook(partial(_on_entry, state), with_kwargs=True),
                base.register_forward_hook(partial(_on_exit, state), with_kwargs=True),
            )
    elif handles is not None:
        for handle in handles:
            handle.remove()
        del state.shared[ENTRY_HOOK]


def names_of(node: Node | None) -> tuple[str, ...]:
    return node.names() if node is not None else ()


def duplicates(spec: Any) -> list[str]:
    """Names listed twice in a plain list setup (meaningless there)."""
    if not isinstance(spec, list | tuple):
        return []
    flat: list[str] = []

    def walk(items: Iterable[Any]) -> None:
        for item in items:
            if isinstance(item, str):
                flat.append(item)
            elif isinstance(item, list | tuple):
                walk(item)

    walk(spec)
    return sorted({n for n in flat if flat.count(n) > 1})
