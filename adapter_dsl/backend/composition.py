"""Composition blocks on the model: one compose function per block, written once.

A setup (``Stack``, ``Fuse``, ``Split``, ``BatchSplit``, ``Parallel``, ``Average``,
``MultiTask`` or a bare name) is turned into a :class:`Node` tree when it is activated. Every
adapter site (a bottleneck location, a LoRA-wrapped projection) runs :func:`compose` over that
tree with its own :class:`Composer`, which supplies the per-method primitives — apply one
adapter, the pre-step before a block, slice a batch or a sequence, concatenate, weighted mean,
fuse — exactly as the reference's ``ComposableAdapterLayerBase`` does with its ``compose_*``
methods (``adapters/methods/adapter_layer_base.py``).

State objects are method-specific; the engine only needs ``last`` (the name of the adapter
applied last, or ``None`` where no adapter of the site was applied) and ``spans``: after a
batch-wise block whose children ended with different adapters, ``((start, stop, last), ...)``
row ranges, so that each range is finished by its own adapter (the reference finishes every
row with the last child's adapter, and crashes when a child has no adapter at the site).

Deliberate differences from the reference, each decided here:

* ``Average`` is ``Σ w_i·h_i`` with the block's (normalised) weights; the reference computes
  ``mean_i(w_i·h_i)``, which divides by k a second time (``Average(a, a)`` halves ``a``).
* ``Parallel`` replicates the model's inputs k times when the forward pass starts (the
  reference replicates at the first adapter layer and patches each model's attention code to
  follow); every layer therefore sees k·B rows and the model returns k·B rows, as there.
* Batch-wise blocks whose children reach different methods (``BatchSplit(bottleneck, lora)``)
  work: rows whose child has no adapter at a site pass through it unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Generic, Protocol, TypeVar

import torch
from torch import Tensor

from adapter_dsl.errors import ConfigError

__all__ = [
    "BLOCKS",
    "ComposeState",
    "Composer",
    "ForwardContext",
    "Node",
    "compose",
    "fed_names",
    "to_node",
]

#: Block kinds (class names of ``adapter_dsl`` and of the reference).
BLOCKS = ("Stack", "Fuse", "Split", "BatchSplit", "Parallel", "Average", "MultiTask")


@dataclass(frozen=True)
class Node:
    """A setup as the backend runs it: a block kind, its children and its sizes or weights."""

    kind: str
    children: tuple[Node | str, ...]
    sizes: tuple[int, ...] = ()  # Split: splits; BatchSplit: batch_sizes
    weights: tuple[float, ...] = ()  # Average: normalised weights
    name: str = ""  # Fuse: the fusion's name

    def first(self) -> str:
        child = self.children[0]
        return child if isinstance(child, str) else child.first()

    def last(self) -> str:
        child = self.children[-1]
        return child if isinstance(child, str) else child.last()

    def names(self) -> tuple[str, ...]:
        """Every adapter name, depth first, each once."""
        out: list[str] = []
        for child in self.children:
            for name in (child,) if isinstance(child, str) else child.names():
                if name not in out:
                    out.append(name)
        return tuple(out)

    def walk(self) -> Iterable[Node]:
        yield self
        for child in self.children:
            if isinstance(child, Node):
                yield from child.walk()

    @property
    def parallel_channels(self) -> int:
        if self.kind == "Parallel":
            return len(self.children)
        return max((c.parallel_channels for c in self.children if isinstance(c, Node)), default=1)

    def __str__(self) -> str:
        parts = [c if isinstance(c, str) else str(c) for c in self.children]
        if self.kind == "Split":
            parts.append(f"splits={list(self.sizes)}")
        elif self.kind == "BatchSplit":
            parts.append(f"batch_sizes={list(self.sizes)}")
        elif self.kind == "Average":
            parts.append(f"weights={[round(w, 6) for w in self.weights]}")
        return f"{self.kind}({', '.join(parts)})"


def _sizes(value: Any, count: int) -> tuple[int, ...]:
    if isinstance(value, int):
        return (value,) * count
    return tuple(int(v) for v in value)


def to_node(setup: Any, *, top: bool = True) -> Node:
    """A :class:`Node` from a block (adapter_dsl's or the reference's), or a name (→ ``Stack``).

    Blocks are read by their class name and attributes (``children``, ``splits``,
    ``batch_sizes``, ``weights``, ``name``), so the backend does not depend on how the
    language layer builds them.
    """
    if isinstance(setup, str):
        return Node("Stack", (setup,))
    kind = type(setup).__name__
    if kind not in BLOCKS:
        raise ConfigError.single(
            f"not an adapter setup: {type(setup).__name__}",
            expected="a name or a block: " + ", ".join(BLOCKS),
            found=repr(setup),
            code="invalid_setup",
        )
    children = tuple(
        c if isinstance(c, str) else to_node(c, top=False) for c in list(setup.children)
    )
    if kind == "Split":
        return Node(kind, children, sizes=_sizes(setup.splits, len(children)))
    if kind == "BatchSplit":
        return Node(kind, children, sizes=_sizes(setup.batch_sizes, len(children)))
    if kind == "Average":
        weights = getattr(setup, "weights", None)
        if weights is None:
            weights = [1.0 / len(children)] * len(children)
        return Node(kind, children, weights=tuple(float(w) for w in weights))
    if kind == "Fuse":
        name = getattr(setup, "name", None) or ",".join(
            c if isinstance(c, str) else c.last() for c in children
        )
        return Node(kind, children, name=str(name))
    return Node(kind, children)


# -- the forward context -------------------------------------------------------------------------


@dataclass
class ForwardContext:
    """What one forward pass of the model knows beyond a site's own tensors."""

    task_ids: Tensor | None = None


# -- the primitives each method supplies -----------------------------------------------------------


class ComposeState(Protocol):
    @property
    def last(self) -> str | None: ...

    @property
    def spans(self) -> tuple[tuple[int, int, str | None], ...] | None: ...


S = TypeVar("S", bound=ComposeState)


class Composer(Generic[S]):
    """Per-method primitives. ``has(name)``: does this site hold adapter ``name``?"""

    method = "adapter"
    #: The forward context of the running forward pass (``MultiTask`` reads ``task_ids``).
    context: ForwardContext | None = None

    def has(self, name: str) -> bool:
        raise NotImplementedError

    def batch_size(self, state: S) -> int:
        raise NotImplementedError

    def seq_len(self, state: S) -> int:
        raise NotImplementedError

    def pre(self, name: str, state: S) -> S:
        """The pre-step before ``name`` (or before a block whose first adapter is ``name``)."""
        return state

    def single(self, name: str, state: S) -> S:
        raise NotImplementedError

    def vslice(self, state: S, index: slice | Tensor) -> S:
        raise NotImplementedError

    def concat(self, states: Sequence[S], whole: S) -> S:
        """Join the children's batch slices of ``whole`` (in order, covering it): only what
        the children change needs concatenating."""
        raise NotImplementedError

    def seq_slice(self, state: S, index: slice) -> S:
        raise _unsupported("Split", self.method)

    def seq_concat(self, states: Sequence[S]) -> S:
        raise _unsupported("Split", self.method)

    def mean(self, states: Sequence[S], weights: Sequence[float]) -> S:
        raise _unsupported("Average", self.method)

    def fuse(self, node: Node, state: S, run: Callable[[Node | str, S], S | None]) -> S:
        raise _unsupported("Fuse", self.method)


def _unsupported(kind: str, method: str) -> ConfigError:
    return ConfigError.single(
        f"{kind} blocks are not supported for {method} adapters",
        found=kind,
        code="unsupported_composition",
    )


def _size_error(node: Node, what: str, actual: int) -> ConfigError:
    return ConfigError.single(
        f"{node}: the sizes sum to {sum(node.sizes)}, but the {what} is {actual}",
        expected=f"sizes that sum to the {what} ({actual})",
        found=repr(list(node.sizes)),
        code="setup_size",
    )


def _with_last(composer: Composer[S], state: S, spans: Any, last: str | None) -> S:
    return replace(state, spans=spans, last=last)  # type: ignore[type-var]


def _merge_spans(
    composer: Composer[S], states: Sequence[S], bounds: Sequence[tuple[int, int]], whole: S
) -> S:
    """Concatenate batch slices, recording per-range ``last`` where the children differ."""
    merged = composer.concat(states, whole)
    lasts: list[tuple[int, int, str | None]] = []
    for st, (start, stop) in zip(states, bounds, strict=True):
        if st.spans is not None:
            lasts.extend((start + a, start + b, n) for a, b, n in st.spans)
        else:
            lasts.append((start, stop, st.last))
    names = {n for _, _, n in lasts}
    if len(names) == 1:
        return _with_last(composer, merged, None, lasts[0][2])
    return _with_last(composer, merged, tuple(lasts), states[-1].last)


def compose(node: Node, state: S, composer: Composer[S]) -> S:
    """Run ``node`` at one site (the reference's ``compose`` for a block)."""
    return _BLOCK_FUNCS[node.kind](node, state, composer)


def _run_child(child: Node | str, state: S, composer: Composer[S]) -> S | None:
    """A child of a non-Stack block: a block, or an adapter of this site, or ``None``."""
    if isinstance(child, Node):
        return compose(child, state, composer)
    if composer.has(child):
        return composer.single(child, state)
    return None


def _pre_block(node: Node, state: S, composer: Composer[S]) -> S:
    first = node.first()
    return composer.pre(first, state) if composer.has(first) else state


def compose_stack(node: Node, state: S, composer: Composer[S]) -> S:
    for child in node.children:
        if isinstance(child, Node):
            state = compose(child, state, composer)
        elif composer.has(child):
            state = composer.single(child, composer.pre(child, state))
    return state


def compose_fuse(node: Node, state: S, composer: Composer[S]) -> S:
    if not any(composer.has(n) for n in node.names()):
        return state
    return composer.fuse(node, state, lambda child, st: _run_child(child, st, composer))


def compose_split(node: Node, state: S, composer: Composer[S]) -> S:
    if not any(composer.has(n) for n in node.names()):
        return state
    length = composer.seq_len(state)
    if sum(node.sizes) != length:
        raise _size_error(node, "sequence length", length)
    state = _pre_block(node, state, composer)
    parts = []
    start = 0
    for child, size in zip(node.children, node.sizes, strict=True):
        piece = composer.seq_slice(state, slice(start, start + size))
        out = _run_child(child, piece, composer)
        parts.append(out if out is not None else piece)
        start += size
    merged = composer.seq_concat(parts)
    last = next((p.last for p in reversed(parts) if p.last is not None), state.last)
    return _with_last(composer, merged, None, last)


def _batch_children(
    node: Node, state: S, composer: Composer[S], bounds: Sequence[tuple[int, int]]
) -> S:
    parts = []
    for child, (start, stop) in zip(node.children, bounds, strict=True):
        piece = composer.vslice(state, slice(start, stop))
        out = _run_child(child, piece, composer)
        # A child without an adapter here: its rows pass through this site unchanged.
        parts.append(out if out is not None else _with_last(composer, piece, None, None))
    return _merge_spans(composer, parts, bounds, state)


def compose_batch_split(node: Node, state: S, composer: Composer[S]) -> S:
    if not any(composer.has(n) for n in node.names()):
        return state
    batch = composer.batch_size(state)
    if sum(node.sizes) != batch:
        raise _size_error(node, "batch size", batch)
    state = _pre_block(node, state, composer)
    bounds, start = [], 0
    for size in node.sizes:
        bounds.append((start, start + size))
        start += size
    return _batch_children(node, state, composer, bounds)


def compose_parallel(node: Node, state: S, composer: Composer[S]) -> S:
    if not any(composer.has(n) for n in node.names()):
        return state
    batch, k = composer.batch_size(state), len(node.children)
    if batch % k:
        raise ConfigError.single(
            f"{node}: the batch of {batch} rows does not hold {k} parallel copies",
            expected=f"a batch size divisible by {k}",
            found=str(batch),
            code="setup_size",
        )
    rows = batch // k
    state = _pre_block(node, state, composer)
    return _batch_children(node, state, composer, [(i * rows, (i + 1) * rows) for i in range(k)])


def compose_average(node: Node, state: S, composer: Composer[S]) -> S:
    if not any(composer.has(n) for n in node.names()):
        return state
    state = _pre_block(node, state, composer)
    outs, weights = [], []
    for child, weight in zip(node.children, node.weights, strict=True):
        out = _run_child(child, state, composer)
        if out is not None:
            outs.append(out)
            weights.append(weight)
    merged = composer.mean(outs, weights)
    return _with_last(composer, merged, None, outs[-1].last)


def compose_multi_task(node: Node, state: S, composer: Composer[S]) -> S:
    if not any(composer.has(n) for n in node.names()):
        return state
    ctx = composer.context
    task_ids = ctx.task_ids if ctx is not None else None
    if task_ids is None:
        raise ConfigError.single(
            f"{node} needs task_ids: pass task_ids=... to the model's forward call",
            expected="a tensor (or list) of child indices, one per row",
            code="missing_task_ids",
        )
    batch = composer.batch_size(state)
    if task_ids.shape[0] != batch:
        raise ConfigError.single(
            f"{node}: {task_ids.shape[0]} task ids for a batch of {batch} rows",
            expected=f"{batch} task ids",
            code="setup_size",
        )
    order = torch.argsort(task_ids, stable=True)
    counts = torch.bincount(task_ids, minlength=len(node.children)).tolist()
    split = Node("BatchSplit", node.children, sizes=tuple(int(c) for c in counts))
    state = composer.vslice(state, order)
    inner = compose_batch_split(split, state, composer)
    back = torch.argsort(order)
    out = composer.vslice(inner, back)
    if inner.spans is None:
        return out
    # Row ranges refer to the sorted order: label each original row with its own child's last.
    labels: list[str | None] = [None] * batch
    for start, stop, name in inner.spans:
        for i in range(start, stop):
            labels[int(order[i])] = name
    return _with_last(composer, out, _runs(labels), inner.last)


def _runs(labels: Sequence[str | None]) -> tuple[tuple[int, int, str | None], ...]:
    out: list[tuple[int, int, str | None]] = []
    for i, label in enumerate(labels):
        if out and out[-1][2] == label and out[-1][1] == i:
            out[-1] = (out[-1][0], i + 1, label)
        else:
            out.append((i, i + 1, label))
    return tuple(out)


_BLOCK_FUNCS: dict[str, Callable[[Node, Any, Composer[Any]], Any]] = {
    "Stack": compose_stack,
    "Fuse": compose_fuse,
    "Split": compose_split,
    "BatchSplit": compose_batch_split,
    "Parallel": compose_parallel,
    "Average": compose_average,
    "MultiTask": compose_multi_task,
}


def fed_names(node: Node, has: Callable[[str], bool]) -> set[str]:
    """Adapters of a site that receive the previous adapter's output inside a ``Stack``."""
    out: set[str] = set()

    def walk(n: Node, fed: bool) -> bool:
        if n.kind == "Stack":
            for child in n.children:
                if isinstance(child, Node):
                    fed = walk(child, fed)
                elif has(child):
                    if fed:
                        out.add(child)
                    fed = True
            return fed
        # The other blocks give every child the same incoming state.
        results = []
        for child in n.children:
            if isinstance(child, Node):
                results.append(walk(child, fed))
            else:
                if has(child) and fed:
                    out.add(child)
                results.append(has(child) or fed)
        return any(results)

    walk(node, False)
    return out


def node_to_dict(node: Node) -> dict[str, Any]:
    """The reference's JSON form of a setup (``adapter_setup.json``'s ``adapter_setup``)."""
    children = [
        {"type": "single", "children": [c]} if isinstance(c, str) else node_to_dict(c)
        for c in node.children
    ]
    out: dict[str, Any] = {"type": node.kind, "children": children}
    if node.kind == "Split":
        out["kwargs"] = {"splits": list(node.sizes)}
    elif node.kind == "BatchSplit":
        out["kwargs"] = {"batch_sizes": list(node.sizes)}
    elif node.kind == "Average":
        out["kwargs"] = {"weights": list(node.weights)}
    elif node.kind == "Fuse":
        default = ",".join(c if isinstance(c, str) else c.last() for c in node.children)
        if node.name != default:
            out["kwargs"] = {"name": node.name}
    return out
