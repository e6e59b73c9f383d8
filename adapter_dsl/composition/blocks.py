"""Composition blocks: immutable, typed, equal-by-value descriptions of how adapters combine.

``Stack(a, Fuse(b, c))`` says "run a, then fuse b and c"; the classes, their keyword arguments
and their JSON form (``to_dict``/``from_dict``) are those of the reference's
``adapters.composition``. Unlike the reference, a block is checked when it is built: the nesting
table, the depth rule, sizes, weights, empty blocks and repeated names are reported all at once
as one :class:`~adapter_dsl.errors.ConfigError` (each problem located by a JSON pointer into
``to_dict()``), and equality is by value (the reference's ``Stack("a") == Stack("a", "b")`` is
True because it zips the children; ours is False).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from ..errors import ConfigError, Location, Path, Problem, did_you_mean

__all__ = [
    "ALLOWED_CHILDREN",
    "BLOCKS",
    "AdapterCompositionBlock",
    "Average",
    "BatchSplit",
    "Child",
    "Fuse",
    "MultiTask",
    "Parallel",
    "Split",
    "Stack",
    "dumps_setup",
    "is_single",
    "structure_problems",
    "too_deep_input",
    "with_structure",
]


class _Bad(Exception):
    """A keyword value that cannot be used: what was expected, and the path inside the value."""

    def __init__(self, message: str, expected: str, at: Path = ()) -> None:
        self.message = message
        self.expected = expected
        self.at = at


def _positive_sizes(value: Any, n: int, what: str) -> tuple[int, ...]:
    """An int (one per child, as the reference expands it) or one positive int per child."""
    if isinstance(value, int) and not isinstance(value, bool):
        sizes: tuple[Any, ...] = (value,) * n
        if value <= 0:
            raise _Bad(f"{what} must be positive", "a positive integer")
        return sizes
    if not isinstance(value, list | tuple):
        raise _Bad(
            f"{what} must be an integer or a list of integers", "a positive integer or a list"
        )
    for i, size in enumerate(value):
        if not isinstance(size, int) or isinstance(size, bool):
            raise _Bad(f"{what} must be integers", "a positive integer", (i,))
        if size <= 0:
            raise _Bad(f"{what} must be positive", "a positive integer", (i,))
    if len(value) != n:
        raise _Bad(
            f"{what} must give one size per child ({n}), not {len(value)}",
            f"a list of {n} positive integers",
        )
    return tuple(value)


def _weights(value: Any, n: int) -> tuple[float, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list | tuple):
        raise _Bad("weights must be a list of numbers", "a list of numbers")
    for i, w in enumerate(value):
        if not isinstance(w, int | float) or isinstance(w, bool):
            raise _Bad("weights must be numbers", "a finite number", (i,))
        if not math.isfinite(w):
            raise _Bad("weights must be finite", "a finite number", (i,))
    if len(value) != n:
        raise _Bad(
            f"weights must give one weight per child ({n}), not {len(value)}",
            f"a list of {n} numbers",
        )
    return tuple(float(w) for w in value)


def _flag(value: Any, n: int) -> bool:
    if not isinstance(value, bool):
        raise _Bad("normalize_weights must be True or False", "True or False")
    return value


def _fusion_name(value: Any, n: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise _Bad("a fusion name must be a non-empty string", "a non-empty string")
    return value


@dataclass(frozen=True)
class Keyword:
    """A keyword argument of a block: how to check and normalise it, and what it defaults to."""

    name: str
    convert: Callable[[Any, int], Any]  # (value, number of children) → normalised value
    fallback: Callable[[int], Any]  # the value used when missing (required) or invalid
    required: bool = False


def _sizes(name: str) -> Keyword:
    return Keyword(name, lambda v, n: _positive_sizes(v, n, name), lambda n: (1,) * n, True)


class AdapterCompositionBlock(Sequence["str | AdapterCompositionBlock"]):
    """The base of all blocks: ``children`` (adapter names or blocks), a sequence of them.

    Blocks are immutable and hashable; two blocks are equal when their types, children and
    arguments are equal.
    """

    __slots__ = ("children",)
    children: tuple[str | AdapterCompositionBlock, ...]
    KEYWORDS: ClassVar[tuple[Keyword, ...]] = ()

    def __init__(self, *children: str | AdapterCompositionBlock) -> None:
        self._setup(children, {})

    # -- construction ------------------------------------------------------------------------

    def _setup(self, children: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
        problems = self._fill(children, kwargs)
        problems += structure_problems(self)
        if problems:
            raise ConfigError(problems, subject=SUBJECT)

    @classmethod
    def assemble(
        cls, children: Sequence[Any], kwargs: Mapping[str, Any]
    ) -> tuple[AdapterCompositionBlock, list[Problem]]:
        """Build a block without raising: the block (invalid arguments replaced by fallbacks)
        and the problems of its own arguments and children's types (not of the nesting)."""
        block = object.__new__(cls)
        return block, block._fill(tuple(children), kwargs)

    def _fill(self, children: tuple[Any, ...], kwargs: Mapping[str, Any]) -> list[Problem]:
        problems: list[Problem] = []
        kept: list[str | AdapterCompositionBlock] = []
        for i, child in enumerate(children):
            if isinstance(child, AdapterCompositionBlock) or (isinstance(child, str) and child):
                kept.append(child)
                continue
            kept.append(f"<child {i}>")
            problems.append(
                Problem(
                    f"a child of {type(self).__name__} must be an adapter name or a block",
                    Location(path=("children", i)),
                    expected="a non-empty adapter name or a block such as Stack(a, b)",
                    found=repr(child),
                    code="invalid_child",
                )
            )
        object.__setattr__(self, "children", tuple(kept))
        names = {kw.name for kw in self.KEYWORDS}
        for key in kwargs:
            if key not in names:
                problems.append(_unknown_keyword(type(self), key))
        values: dict[str, Any] = {}
        n = len(kept)
        for kw in self.KEYWORDS:
            if kw.name not in kwargs:
                if kw.required:
                    problems.append(
                        Problem(
                            f"{type(self).__name__} needs {kw.name}=",
                            Location(path=("kwargs", kw.name)),
                            expected=f"{kw.name}=<int or list of ints>",
                            found="nothing",
                            suggestion=f"e.g. {type(self).__name__}(a, b, {kw.name}=[2, 2])",
                            code="missing_keyword",
                        )
                    )
                values[kw.name] = kw.fallback(n)
                continue
            try:
                values[kw.name] = kw.convert(kwargs[kw.name], n)
            except _Bad as bad:
                found = kwargs[kw.name]
                for step in bad.at:
                    found = found[step]
                problems.append(
                    Problem(
                        bad.message,
                        Location(path=("kwargs", kw.name, *bad.at)),
                        expected=bad.expected,
                        found=repr(found),
                        code="invalid_keyword",
                    )
                )
                values[kw.name] = kw.fallback(n)
        problems += self._init_fields(values)
        return problems

    def _init_fields(self, values: dict[str, Any]) -> list[Problem]:
        for key, value in values.items():
            object.__setattr__(self, key, value)
        return []

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    # -- value semantics ---------------------------------------------------------------------

    def _arguments(self) -> tuple[tuple[str, Any], ...]:
        """The keyword values that make up this block's identity (see ``__eq__``)."""
        return ()

    def _key(self) -> tuple[Any, ...]:
        return (type(self), self.children, self._arguments())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AdapterCompositionBlock):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (self.to_dict(),))

    # -- the reference's Sequence interface and helpers --------------------------------------

    def __getitem__(self, index: Any) -> Any:
        return self.children[index]

    def __len__(self) -> int:
        return len(self.children)

    def __iter__(self) -> Iterator[str | AdapterCompositionBlock]:
        return iter(self.children)

    def first(self) -> str:
        """The first adapter name, descending into first children."""
        child = self.children[0]
        return child if isinstance(child, str) else child.first()

    def last(self) -> str:
        """The last adapter name, descending into last children."""
        child = self.children[-1]
        return child if isinstance(child, str) else child.last()

    @property
    def parallel_channels(self) -> int:
        """How many copies of the batch this block needs (Parallel multiplies, as in the reference)."""
        return max(
            (c.parallel_channels if isinstance(c, AdapterCompositionBlock) else 1)
            for c in self.children
        )

    def flatten(self) -> frozenset[str]:
        """Every adapter name used anywhere in the block."""
        out: set[str] = set()
        for child in self.children:
            if isinstance(child, str):
                out.add(child)
            else:
                out |= child.flatten()
        return frozenset(out)

    # -- the reference's JSON form -----------------------------------------------------------

    def _save_kwargs(self) -> dict[str, Any]:
        return {}

    def to_dict(self) -> dict[str, Any]:
        """``{"type": "Stack", "children": [...], "kwargs": {...}}`` exactly as the reference writes it."""
        data: dict[str, Any] = {
            "type": type(self).__name__,
            "children": [
                c.to_dict() if isinstance(c, AdapterCompositionBlock) else single_dict(c)
                for c in self.children
            ],
        }
        if kwargs := self._save_kwargs():
            data["kwargs"] = kwargs
        return data

    @classmethod
    def from_dict(cls, data: Any) -> AdapterCompositionBlock:
        """The block of a ``to_dict()`` (the reference's JSON form); ConfigError lists every problem."""
        block, problems = block_from_dict(data, ())
        problems = with_structure(problems, block)
        if problems:
            raise ConfigError(problems, subject=SUBJECT)
        return block

    # -- printing ----------------------------------------------------------------------------

    def __repr__(self) -> str:
        args = [repr(c) for c in self.children]
        args += [f"{k}={_py(v)}" for k, v in self._repr_kwargs()]
        return f"{type(self).__name__}({', '.join(args)})"

    def _repr_kwargs(self) -> list[tuple[str, Any]]:
        return list(self._arguments())

    def __str__(self) -> str:
        return dumps_setup(self)


SUBJECT = "adapter setup"  # the first line of a setup's ConfigError: "invalid adapter setup"

# A child of a block: an adapter name or a nested block.
Child = str | AdapterCompositionBlock


def _last_name(child: str | AdapterCompositionBlock) -> str:
    """A child's last adapter name ("" for an empty block, which is never valid)."""
    while not isinstance(child, str):
        if not child.children:
            return ""
        child = child.children[-1]
    return child


def _py(value: Any) -> str:
    return repr(list(value)) if isinstance(value, tuple) else repr(value)


def single_dict(name: str) -> dict[str, Any]:
    """The reference's JSON form of an adapter name inside a block."""
    return {"type": "single", "children": [name]}


class Stack(AdapterCompositionBlock):
    """Run the children one after the other, each on the previous one's output."""

    __slots__ = ()


class Parallel(AdapterCompositionBlock):
    """Run every child on its own copy of the input (the batch is replicated k times)."""

    __slots__ = ()

    @property
    def parallel_channels(self) -> int:
        return len(self.children)


class MultiTask(AdapterCompositionBlock):
    """Route each row of the batch to the child named by its task id."""

    __slots__ = ()


class Fuse(AdapterCompositionBlock):
    """AdapterFusion over the children; ``name`` defaults to the children's (last) names joined by ','."""

    __slots__ = ("_name",)
    _name: str | None
    KEYWORDS = (Keyword("name", _fusion_name, lambda n: None),)

    def __init__(self, *children: str | AdapterCompositionBlock, name: str | None = None) -> None:
        self._setup(children, {"name": name})

    @property
    def name(self) -> str:
        return self._name or Fuse._plain_name(self.children)

    def _init_fields(self, values: dict[str, Any]) -> list[Problem]:
        object.__setattr__(self, "_name", values["name"])
        return []

    def _default_name(self) -> bool:
        return self._name is None or self._name == Fuse._plain_name(self.children)

    @staticmethod
    def _plain_name(children: tuple[Any, ...]) -> str:
        return ",".join(_last_name(c) for c in children)

    def _arguments(self) -> tuple[tuple[str, Any], ...]:
        return (("name", self.name),)

    def _repr_kwargs(self) -> list[tuple[str, Any]]:
        return [] if self._default_name() else [("name", self.name)]

    def _save_kwargs(self) -> dict[str, Any]:
        # The reference saves no kwargs for Fuse (a custom name is lost there); a custom name is
        # kept here, in a form the reference's from_dict accepts too.
        return {} if self._default_name() else {"name": self.name}


class Split(AdapterCompositionBlock):
    """Split the sequence: the first ``splits[0]`` positions go to child 0, and so on."""

    __slots__ = ("splits",)
    splits: tuple[int, ...]
    KEYWORDS = (_sizes("splits"),)

    def __init__(
        self, *children: str | AdapterCompositionBlock, splits: int | Sequence[int]
    ) -> None:
        self._setup(children, {"splits": splits})

    def _arguments(self) -> tuple[tuple[str, Any], ...]:
        return (("splits", self.splits),)

    def _save_kwargs(self) -> dict[str, Any]:
        return {"splits": list(self.splits)}


class BatchSplit(AdapterCompositionBlock):
    """Split the batch: the first ``batch_sizes[0]`` rows go to child 0, and so on."""

    __slots__ = ("batch_sizes",)
    batch_sizes: tuple[int, ...]
    KEYWORDS = (_sizes("batch_sizes"),)

    def __init__(
        self, *children: str | AdapterCompositionBlock, batch_sizes: int | Sequence[int]
    ) -> None:
        self._setup(children, {"batch_sizes": batch_sizes})

    def _arguments(self) -> tuple[tuple[str, Any], ...]:
        return (("batch_sizes", self.batch_sizes),)

    def _save_kwargs(self) -> dict[str, Any]:
        return {"batch_sizes": list(self.batch_sizes)}


# Weights whose sum is 1 up to rounding are already normalised and are kept as given, so that
# normalising is idempotent and a saved setup reloads with bit-identical weights.
_SUM_TOLERANCE = 1e-12


class Average(AdapterCompositionBlock):
    """The weighted average of the children's outputs.

    ``weights`` default to ``1/k`` each and are divided by their sum when ``normalize_weights``
    (as the reference stores them). Equality compares the weights in effect, so
    ``Average(a, b, weights=[1, 1])`` equals ``Average(a, b)``.
    """

    __slots__ = ("normalize_weights", "weights")
    weights: tuple[float, ...]
    normalize_weights: bool
    KEYWORDS = (
        Keyword("weights", _weights, lambda n: None),
        Keyword("normalize_weights", _flag, lambda n: True),
    )

    def __init__(
        self,
        *children: str | AdapterCompositionBlock,
        weights: Sequence[float] | None = None,
        normalize_weights: bool = True,
    ) -> None:
        self._setup(children, {"weights": weights, "normalize_weights": normalize_weights})

    def _init_fields(self, values: dict[str, Any]) -> list[Problem]:
        n = max(len(self.children), 1)
        weights = values["weights"]
        normalize = values["normalize_weights"]
        object.__setattr__(self, "normalize_weights", normalize)
        problems: list[Problem] = []
        if weights is None:
            weights = (1 / n,) * n
        elif normalize:
            total = sum(weights)
            if total == 0:
                problems.append(
                    Problem(
                        "the weights sum to 0, so they cannot be normalised",
                        Location(path=("kwargs", "weights")),
                        expected="weights with a non-zero sum (or normalize_weights=False)",
                        found=repr(list(weights)),
                        code="invalid_keyword",
                    )
                )
                weights = (1 / n,) * n
            elif abs(total - 1) > _SUM_TOLERANCE:
                weights = tuple(w / total for w in weights)
        object.__setattr__(self, "weights", tuple(weights))
        return problems

    def _is_default(self) -> bool:
        n = len(self.children)
        return self.weights == (1 / n,) * n

    def _sums_to_one(self) -> bool:
        return abs(sum(self.weights) - 1) <= _SUM_TOLERANCE

    def _arguments(self) -> tuple[tuple[str, Any], ...]:
        return (("weights", self.weights),)

    def _repr_kwargs(self) -> list[tuple[str, Any]]:
        out: list[tuple[str, Any]] = []
        if not self._is_default():
            out.append(("weights", self.weights))
        if not self._sums_to_one():
            out.append(("normalize_weights", False))
        return out

    def _save_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"weights": list(self.weights)}
        if not self._sums_to_one():
            # The reference would normalise these again on load; say that they are final.
            kwargs["normalize_weights"] = False
        return kwargs


# Block name → class, in the order messages list them.
BLOCKS: dict[str, type[AdapterCompositionBlock]] = {
    cls.__name__: cls for cls in (Stack, Fuse, Split, BatchSplit, Parallel, Average, MultiTask)
}

# Parent → the kinds of children it may hold ("name" is an adapter name): the reference's
# ALLOWED_NESTINGS.
ALLOWED_CHILDREN: dict[type[AdapterCompositionBlock], tuple[str, ...]] = {
    Stack: ("name", "Fuse", "Split", "Parallel", "BatchSplit", "Average", "MultiTask"),
    Fuse: ("name", "Stack"),
    Split: ("name", "Split", "Stack", "BatchSplit", "Average"),
    Parallel: ("name", "Stack", "BatchSplit", "Average"),
    MultiTask: ("name", "Stack", "Average", "Fuse"),
    BatchSplit: ("name", "Stack", "Split", "BatchSplit", "Average"),
    Average: ("name", "Stack", "Split", "BatchSplit"),
}

# Below depth 1 (inside a block inside a block) only these may appear, as in the reference.
DEEP_KINDS = ("name", "Stack")

# Blocks whose children must differ: a fusion of a with itself, two identical parallel
# branches or two tasks of one name mean nothing (Stack, Split, BatchSplit and Average may
# repeat an adapter on purpose).
DISTINCT_CHILDREN: dict[type[AdapterCompositionBlock], str] = {
    Fuse: "fuses",
    Parallel: "runs in parallel",
    MultiTask: "routes tasks to",
}


def _kind(child: str | AdapterCompositionBlock) -> str:
    return "name" if isinstance(child, str) else type(child).__name__


def _describe(kinds: Sequence[str]) -> str:
    words = ["an adapter name" if k == "name" else k for k in kinds]
    return words[0] if len(words) == 1 else "one of " + ", ".join(words)


def structure_problems(
    block: AdapterCompositionBlock,
    path: Path = (),
    level: int = 0,
    *,
    depth_checked: bool = False,
) -> list[Problem]:
    """The reference's nesting table and depth rule, empty blocks and repeated names, for the
    whole tree below ``block`` (taken to be at ``level``); paths point into ``to_dict()``."""
    problems: list[Problem] = []
    name = type(block).__name__
    if level > 1 and not depth_checked and _kind(block) not in DEEP_KINDS:
        problems.append(
            Problem(
                f"{name} is nested too deep: below the second level only Stack or an adapter name may appear",
                Location(path=path),
                expected=_describe(DEEP_KINDS),
                found=name,
                suggestion="move the block up a level, or give it its own setup",
                code="too_deep",
            )
        )
    if not block.children:
        problems.append(
            Problem(
                f"{name} has no adapters",
                Location(path=(*path, "children")),
                expected="at least one adapter name or block",
                found=f"{name}()",
                code="empty_block",
            )
        )
    allowed = ALLOWED_CHILDREN[type(block)]
    seen: dict[Any, int] = {}
    for i, child in enumerate(block.children):
        at = (*path, "children", i)
        kind = _kind(child)
        nested_ok = kind in allowed
        if not nested_ok:
            suggestion = None
            if kind == name == "Stack":
                suggestion = (
                    "a Stack inside a Stack is one longer Stack: list its adapters directly"
                )
            problems.append(
                Problem(
                    f"{name} cannot contain {kind}",
                    Location(path=at),
                    expected=_describe(allowed),
                    found=kind,
                    suggestion=suggestion,
                    code="invalid_nesting",
                )
            )
        if type(block) in DISTINCT_CHILDREN:
            key = _last_name(child) if isinstance(block, Fuse) else child
            if key in seen:
                problems.append(
                    Problem(
                        f"{name} {DISTINCT_CHILDREN[type(block)]} {key if isinstance(key, str) else kind} twice",
                        Location(path=at),
                        expected="different adapters",
                        found=f"a repeat of child {seen[key]}",
                        code="repeated_child",
                    )
                )
            else:
                seen[key] = i
        if isinstance(child, AdapterCompositionBlock):
            # A child that may not be here at all is not also reported as too deep.
            problems += structure_problems(child, at, level + 1, depth_checked=not nested_ok)
    return problems


def with_structure(problems: list[Problem], block: AdapterCompositionBlock) -> list[Problem]:
    """``problems`` of the values plus the structure's, except where a value problem already
    says what is wrong at the same place (a malformed ``children`` is not also "empty")."""
    seen = {p.location.path for p in problems}
    return problems + [p for p in structure_problems(block) if p.location.path not in seen]


def _unknown_keyword(cls: type[AdapterCompositionBlock], key: str) -> Problem:
    names = [kw.name for kw in cls.KEYWORDS]
    return Problem(
        f"{cls.__name__} has no argument {key!r}",
        Location(path=("kwargs", key)),
        expected=("one of " + ", ".join(names)) if names else "adapter names only",
        found=repr(key),
        suggestion=did_you_mean(key, names) if names else None,
        code="unknown_keyword",
    )


def _block_class(type_name: Any, path: Path) -> tuple[type[AdapterCompositionBlock], list[Problem]]:
    if isinstance(type_name, str) and type_name in BLOCKS:
        return BLOCKS[type_name], []
    return Stack, [
        Problem(
            f"unknown composition block {type_name!r}",
            Location(path=path),
            expected="one of " + ", ".join(BLOCKS) + " or 'single'",
            found=repr(type_name),
            suggestion=did_you_mean(str(type_name), BLOCKS),
            code="unknown_block",
        )
    ]


# Valid setups nest a few levels at most (the depth rule); deeper input is refused before it is
# walked, so that no input can exhaust the interpreter's recursion limit.
MAX_NESTING = 32


def too_deep_input(path: Path) -> Problem:
    return Problem(
        f"the adapter setup is nested more than {MAX_NESTING} levels deep",
        Location(path=path),
        expected=f"at most {MAX_NESTING} levels of blocks",
        code="too_deep",
    )


def block_from_dict(data: Any, path: Path) -> tuple[AdapterCompositionBlock, list[Problem]]:
    """A block from the reference's JSON form, with the problems of its values (not its nesting);
    ``{"type": "single", ...}`` at the top is that adapter alone, ``Stack(name)``."""
    problems: list[Problem] = []
    if not isinstance(data, Mapping):
        return Stack("<setup>"), [_shape(path, "an object with 'type' and 'children'", data)]
    if len(path) > 2 * MAX_NESTING:
        return Stack("<setup>"), [too_deep_input(path)]
    unknown = set(data) - {"type", "children", "kwargs"}
    for key in sorted(unknown, key=str):
        problems.append(
            Problem(
                f"unknown key {key!r} in a composition block",
                Location(path=(*path, key)),
                expected="'type', 'children' and 'kwargs'",
                found=repr(key),
                suggestion=did_you_mean(str(key), ["type", "children", "kwargs"]),
                code="unknown_key",
            )
        )
    children_data = data.get("children")
    if "children" not in data:
        problems.append(
            Problem(
                "a composition block needs 'children'",
                Location(path=(*path, "children")),
                expected="a list of adapters and blocks",
                found="no 'children' key",
                code="missing",
            )
        )
        children_data = []
    elif not isinstance(children_data, list):
        problems.append(_shape((*path, "children"), "a list", children_data))
        children_data = []
    if data.get("type") == "single":
        name = children_data[0] if len(children_data) == 1 else None
        if not isinstance(name, str) or not name:
            problems.append(
                _shape((*path, "children"), "a list holding one adapter name", children_data)
            )
            name = "<adapter>"
        return Stack(name), problems
    cls, bad_type = _block_class(data.get("type"), (*path, "type"))
    problems += bad_type
    children: list[Any] = []
    for i, child in enumerate(children_data):
        at = (*path, "children", i)
        if isinstance(child, Mapping) and child.get("type") == "single":
            single, child_problems = block_from_dict(child, at)
            problems += child_problems
            children.append(single.children[0])
        else:
            block, child_problems = block_from_dict(child, at)
            problems += child_problems
            children.append(block)
    kwargs = data.get("kwargs", {})
    if not isinstance(kwargs, Mapping):
        problems.append(_shape((*path, "kwargs"), "an object", kwargs))
        kwargs = {}
    block, own = cls.assemble(children, kwargs)
    problems += [p.prefixed(path) for p in own]
    return block, problems


def _shape(path: Path, expected: str, found: Any) -> Problem:
    return Problem(
        "malformed adapter setup",
        Location(path=path),
        expected=expected,
        found=type(found).__name__ if not isinstance(found, str | int | float) else repr(found),
        code="invalid_type",
    )


def _rebuild(data: dict[str, Any]) -> AdapterCompositionBlock:
    return AdapterCompositionBlock.from_dict(data)


# -- canonical printing -------------------------------------------------------------------------

_BARE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_\-.@/+]*\Z")
_WORDS = frozenset({"True", "False", "None"})


def _format_name(name: str) -> str:
    if _BARE_NAME.match(name) and name not in _WORDS:
        return name
    return repr(name)


def _format_value(value: Any) -> str:
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_format_value(v) for v in value) + "]"
    if isinstance(value, float) and not math.isfinite(value):  # pragma: no cover - validated
        raise ValueError(value)
    return repr(value)


def dumps_setup(setup: AdapterCompositionBlock | str) -> str:
    """The canonical setup string: ``parse_setup(dumps_setup(s)) == s``.

    Keyword arguments appear only where they differ from the defaults (a Fuse name only when
    custom, weights only when not uniform, ``normalize_weights=False`` only when the weights
    do not sum to 1); sizes are always written as lists.
    """
    if isinstance(setup, str):
        return _format_name(setup)
    if is_single(setup):  # at the top, what a bare name loads as
        return _format_name(setup.first())
    return _dump_block(setup)


def _dump_block(setup: AdapterCompositionBlock) -> str:
    args = [_format_name(c) if isinstance(c, str) else _dump_block(c) for c in setup.children]
    args += [f"{key}={_format_value(value)}" for key, value in setup._repr_kwargs()]
    return f"{type(setup).__name__}({', '.join(args)})"


def is_single(setup: AdapterCompositionBlock) -> bool:
    """Whether a setup is one adapter alone (``Stack(name)``, what a bare name loads as)."""
    return (
        isinstance(setup, Stack) and len(setup.children) == 1 and isinstance(setup.children[0], str)
    )
