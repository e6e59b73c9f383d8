"""Imports point down the layers, and no modules import each other in a cycle.

The graph is read from the source with ``ast``: every ``import`` and ``from … import`` of an
``adapter_dsl`` module, at module level and inside functions alike (an import inside a function
is a dependency that only shows later). Imports under ``if TYPE_CHECKING:`` are left out (they
never run). The lazy-name tables (``_LAZY``) of the packages' PEP 562 ``__getattr__`` count as
imports of the modules they name. Importing ``a.b`` also runs ``a/__init__``; that is not an
edge of the importer (the package's ``__init__`` is a module of the graph, with its own edges).

:data:`LAYERS` lists the layers from the bottom: a module may import its own layer and the ones
below. Within a layer, and across layers, the graph has no cycles.

Upward calls. A class of a lower layer whose public methods are implemented above it —
``AdapterConfig.__str__`` is ``canonical.dumps``, ``AdapterConfig.load``/``from_dict`` are
``loading``'s, ``a | b`` builds a ``methods.union.ConfigUnion``, ``AdapterFusionConfig.load`` is
``fusion.load_fusion_config``, and ``loading`` reads PEFT dicts with ``peft.from_peft`` (which
itself reads configs through ``loading``) — names the implementation as an
``"adapter_dsl.<module>:<attribute>"`` string resolved at call time by
:func:`adapter_dsl.lazy.resolve`, the only code besides the PEP 562 ``__getattr__`` functions
that imports by name. That is the least magical option that keeps the methods where users find
them: no registration step, no import-order dependence; the string says what it needs, and this
test checks that every such string names an existing attribute. The backend's handler table
(``"module:Class"``) is resolved the same way.

A failure lists each offending import (``module -> imported`` with the line) or each cycle.
Fix it by moving the code to the layer it belongs to (a helper used by two modules of a cycle
goes into a module below both, as ``backend/io.py`` does for ``serialization`` and
``interop``), or, for a lower-layer method implemented above, by a late-bound reference. A new
module that no layer names fails too: add it to :data:`LAYERS`.

``python tests/test_layers.py [ROOT]`` prints the layers' violations and the cycles of the
checkout at ``ROOT`` (default: this one).
"""

from __future__ import annotations

import ast
import functools
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "adapter_dsl"

#: The layers, from the bottom. An entry names a module and its submodules ("" is the package
#: itself only); the longest matching entry decides.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("foundation", ("errors", "limits", "jsonpos", "fileformats", "lazy")),
    ("field types", ("fieldtypes",)),
    ("method families", ("methods",)),
    ("tables", ("registry", "model_interface", "model_types")),
    (
        "language and interop",
        (
            "syntax",
            "semantics",
            "canonical",
            "composition",
            "loading",
            "fusion",
            "schema",
            "setup_schema",
            "peft",
            # Reads OmegaConf containers as plain data for load(); imports omegaconf only then.
            "integrations.omegaconf",
        ),
    ),
    (
        "surfaces",
        (
            "",  # the package's public names (lazy)
            "__main__",
            "cli",
            "cli_setup",
            "spec",
            "sweeps",
            "integrations.cli_types",
            "integrations.click_types",
        ),
    ),
    # torch from here on. integrations.hf trains on transformers models through the backend;
    # the integrations package lazily names it.
    ("backend", ("backend", "integrations", "integrations.hf", "demo")),
)
#: Libraries that only the backend layer may import (the config layer stays torch-free).
TORCH_SIDE = frozenset({"torch", "transformers", "numpy", "safetensors", "accelerate", "peft"})
#: A late-bound reference: "adapter_dsl.<module>:<attribute>".
REFERENCE = re.compile(rf"^{PACKAGE}(?:\.[A-Za-z_]\w*)*:[A-Za-z_]\w*$")
RESOLVER = f"{PACKAGE}.lazy"


@dataclass(frozen=True)
class Import:
    source: str
    target: str
    line: int
    nested: bool  # inside a function or class body

    def __str__(self) -> str:
        where = "inside a function" if self.nested else "at module level"
        return f"{self.source} -> {self.target} (line {self.line}, {where})"


@dataclass
class Graph:
    modules: dict[str, Path]
    imports: list[Import]
    external: list[Import]  # top-level names of third-party imports
    references: list[Import]  # late-bound "module:attribute" strings (target: the string)
    dynamic: list[Import]  # import_module/__import__ calls (target: the call's spelling)

    def edges(self) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {name: set() for name in self.modules}
        for imp in self.imports:
            if imp.target != imp.source:
                out[imp.source].add(imp.target)
        return out


def module_names(root: Path) -> dict[str, Path]:
    names = {}
    for path in sorted((root / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk(node: ast.AST, nested: bool = False) -> Iterator[tuple[ast.AST, bool]]:
    """Every node under ``node`` except ``if TYPE_CHECKING:`` bodies, with whether it lies
    inside a function or class."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            for other in child.orelse:
                yield other, nested
                yield from _walk(other, nested)
            continue
        yield child, nested
        inner = nested or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        yield from _walk(child, inner)


def _absolute(name: str, path: Path, module: str | None, level: int) -> str:
    if not level:
        return module or ""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    base = package.split(".")
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def _lazy_targets(tree: ast.Module, name: str, path: Path) -> Iterator[tuple[str, int]]:
    """Modules named by a package's ``_LAZY`` table (dict literal or ``_LAZY[k] = ...``)."""
    for node in tree.body:
        for sub in ast.walk(node):
            value: ast.expr | None = None
            if isinstance(sub, ast.Assign | ast.AnnAssign):
                targets = sub.targets if isinstance(sub, ast.Assign) else [sub.target]
                for target in targets:
                    is_table = isinstance(target, ast.Name) and target.id == "_LAZY"
                    is_item = (
                        isinstance(target, ast.Subscript)
                        and isinstance(target.value, ast.Name)
                        and target.value.id == "_LAZY"
                    )
                    if is_table or is_item:
                        value = sub.value
            if value is None:
                continue
            values = value.values if isinstance(value, ast.Dict) else [value]
            for v in values:
                for const in ast.walk(v) if v is not None else ():
                    if isinstance(const, ast.Constant) and isinstance(const.value, str):
                        text = const.value
                        if text.startswith("."):
                            level = len(text) - len(text.lstrip("."))
                            yield _absolute(name, path, text.lstrip(".") or None, level), sub.lineno
                        elif text.startswith(f"{PACKAGE}."):
                            yield text, sub.lineno


def read_graph(root: Path = ROOT) -> Graph:
    modules = module_names(root)
    graph = Graph(modules, [], [], [], [])
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node, nested in _walk(tree):
            line = getattr(node, "lineno", 0)
            if isinstance(node, ast.Import):
                for alias in node.names:
                    _record(graph, name, alias.name, line, nested)
            elif isinstance(node, ast.ImportFrom):
                target = _absolute(name, path, node.module, node.level)
                if target.split(".")[0] != PACKAGE:
                    _record(graph, name, target, line, nested)
                    continue
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    _record(graph, name, sub if sub in modules else target, line, nested)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                if REFERENCE.match(node.value):
                    graph.references.append(Import(name, node.value, line, nested))
            elif isinstance(node, ast.Call):
                func = node.func
                called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if called in ("import_module", "__import__"):
                    graph.dynamic.append(Import(name, called, line, nested))
        if path.name == "__init__.py":
            for target, line in _lazy_targets(tree, name, path):
                graph.imports.append(Import(name, target, line, True))
    return graph


def _record(graph: Graph, source: str, target: str, line: int, nested: bool) -> None:
    if target.split(".")[0] == PACKAGE:
        # The longest existing module the dotted name starts with.
        while target not in graph.modules and "." in target:
            target = target.rpartition(".")[0]
        graph.imports.append(Import(source, target, line, nested))
    elif target:
        graph.external.append(Import(source, target.split(".")[0], line, nested))


def layer_of(module: str) -> int | None:
    """The index in :data:`LAYERS` of ``module``'s layer, or None if no layer names it."""
    best: tuple[int, int] | None = None  # (length of the entry, layer)
    for index, (_, entries) in enumerate(LAYERS):
        for entry in entries:
            full = f"{PACKAGE}.{entry}" if entry else PACKAGE
            matches = module == full or (entry and module.startswith(full + "."))
            if matches and (best is None or len(full) > best[0]):
                best = (len(full), index)
    return None if best is None else best[1]


def upward_imports(graph: Graph) -> list[str]:
    out = []
    for imp in graph.imports:
        low, high = layer_of(imp.source), layer_of(imp.target)
        if low is not None and high is not None and high > low:
            out.append(f"{imp}: {LAYERS[low][0]} imports {LAYERS[high][0]}")
    return out


def cycles(graph: Graph) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    edges = graph.edges()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


@functools.cache
def _top_level_names(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return names


# -- the tests ---------------------------------------------------------------------------------


GRAPH = read_graph()


def test_every_module_has_a_layer() -> None:
    missing = sorted(m for m in GRAPH.modules if layer_of(m) is None)
    assert not missing, f"add these modules to LAYERS in {Path(__file__).name}: {missing}"


def test_imports_point_down() -> None:
    bad = upward_imports(GRAPH)
    assert not bad, "imports of a higher layer:\n" + "\n".join(bad)


def test_no_import_cycles() -> None:
    found = cycles(GRAPH)
    assert not found, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_the_config_layer_never_imports_torch() -> None:
    backend = next(i for i, (name, _) in enumerate(LAYERS) if name == "backend")
    bad = [
        str(imp)
        for imp in GRAPH.external
        if imp.target in TORCH_SIDE and (layer_of(imp.source) or 0) < backend
    ]
    assert not bad, "torch-side imports outside the backend:\n" + "\n".join(bad)


def test_only_the_resolver_imports_by_name() -> None:
    # The packages' PEP 562 __getattr__ resolve their own _LAZY tables (counted as imports).
    allowed = {RESOLVER} | {m for m, p in GRAPH.modules.items() if p.name == "__init__.py"}
    bad = [str(d) for d in GRAPH.dynamic if d.source not in allowed or not d.nested]
    assert not bad, f"import by name outside {RESOLVER}.resolve:\n" + "\n".join(bad)


def test_late_bound_references_name_existing_attributes() -> None:
    assert GRAPH.references, "expected the config classes' late-bound references"
    bad = []
    for ref in GRAPH.references:
        module, _, attribute = ref.target.partition(":")
        path = GRAPH.modules.get(module)
        if path is None or attribute not in _top_level_names(path):
            bad.append(str(ref))
    assert not bad, "references to nothing:\n" + "\n".join(bad)


def test_the_graph_reader_sees_what_it_must() -> None:
    """The reader's own checks, on code written for the purpose."""
    tree = ast.parse(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from .canonical import dumps\n"
        "else:\n"
        "    from .errors import ConfigError\n"
        "def f():\n"
        "    from ..loading import load\n"
    )
    seen = [(type(n).__name__, nested) for n, nested in _walk(tree) if isinstance(n, ast.stmt)]
    assert ("ImportFrom", True) in seen  # the function-level import
    modules = [n.module for n, _ in _walk(tree) if isinstance(n, ast.ImportFrom)]
    assert modules == ["typing", "errors", "loading"]  # not the TYPE_CHECKING one
    path = ROOT / PACKAGE / "methods" / "base.py"
    assert _absolute("adapter_dsl.methods.base", path, "loading", 2) == "adapter_dsl.loading"
    assert layer_of("adapter_dsl") != layer_of("adapter_dsl.integrations")
    omegaconf, cli = layer_of("adapter_dsl.integrations.omegaconf"), layer_of("adapter_dsl.cli")
    assert omegaconf is not None and cli is not None and omegaconf < cli
    assert layer_of("adapter_dsl.backend.io") == len(LAYERS) - 1


def test_a_lazy_upward_import_and_its_cycle_are_found(tmp_path: Path) -> None:
    """On a toy checkout: a config class importing ``canonical`` inside a method (as
    ``methods/base.py`` did) is an upward import and, with ``canonical`` importing it back,
    a cycle; a TYPE_CHECKING import and a late-bound reference are neither."""
    package = tmp_path / PACKAGE
    (package / "methods").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "methods" / "__init__.py").write_text("")
    (package / "errors.py").write_text("class ConfigError(Exception): ...\n")
    (package / "canonical.py").write_text("from .methods.base import Config\n")
    (package / "methods" / "base.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from ..loading import load\n"
        "class Config:\n"
        "    def __str__(self):\n"
        "        from ..canonical import dumps\n"
        "        return dumps(self)\n"
        "    def load(self):\n"
        '        return resolve("adapter_dsl.loading:load")\n'
    )
    graph = read_graph(tmp_path)
    assert upward_imports(graph) == [
        "adapter_dsl.methods.base -> adapter_dsl.canonical (line 6, inside a function): "
        "method families imports language and interop"
    ]
    assert cycles(graph) == [["adapter_dsl.canonical", "adapter_dsl.methods.base"]]
    assert [r.target for r in graph.references] == ["adapter_dsl.loading:load"]


if __name__ == "__main__":
    graph = read_graph(Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else ROOT)
    unplaced = sorted(m for m in graph.modules if layer_of(m) is None)
    print(f"{len(graph.modules)} modules, {len(graph.imports)} imports")
    print(f"modules without a layer: {unplaced or 'none'}")
    print("imports of a higher layer:", *(upward_imports(graph) or ["none"]), sep="\n  ")
    print("cycles:", *([" <-> ".join(c) for c in cycles(graph)] or ["none"]), sep="\n  ")
