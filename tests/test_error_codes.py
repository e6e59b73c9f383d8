"""Error codes are a closed set: ``errors.ErrorCode`` lists every code the package uses, and
uses every code it lists (codes from pydantic's own errors are pydantic-core's ``ErrorType``)."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import get_args

from adapter_dsl.errors import ErrorCode

PACKAGE = Path(__file__).resolve().parent.parent / "adapter_dsl"


def _strings(node: ast.expr) -> list[ast.expr]:
    if isinstance(node, ast.IfExp):
        return [*_strings(node.body), *_strings(node.orelse)]
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return [e for elt in node.elts for e in _strings(elt)]
    return [node]


def _code_expressions(tree: ast.AST) -> list[ast.expr]:
    """Expressions that give or test a code: ``code=...``, ``kw.pop("code", ...)``,
    ``code: ... = ...``, a ``code`` parameter's default, ``x.code == ...``/``in (...)``."""
    out: list[ast.expr] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "code":
            out.append(node.value)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "pop"
            and len(node.args) == 2
            and isinstance(node.args[0], ast.Constant)
            and node.args[0].value == "code"
        ):
            out.append(node.args[1])
        elif isinstance(node, ast.Compare) and (
            isinstance(node.left, ast.Attribute) and node.left.attr == "code"
        ):
            out.extend(node.comparators)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            if node.target.id == "code" and node.value is not None:
                out.append(node.value)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            a = node.args
            params = [*a.posonlyargs, *a.args]
            positional = params[len(params) - len(a.defaults) :]
            for arg, default in [
                *zip(positional, a.defaults, strict=True),
                *zip(a.kwonlyargs, a.kw_defaults, strict=True),
            ]:
                if arg.arg == "code" and default is not None:
                    out.append(default)
    return [e for expr in out for e in _strings(expr)]


def _used() -> tuple[set[str], list[str]]:
    used: set[str] = set()
    computed: list[str] = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for expr in _code_expressions(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
                used.add(expr.value)
            elif not isinstance(expr, ast.Name | ast.Call | ast.Attribute):
                computed.append(f"{path.relative_to(PACKAGE)}:{expr.lineno}")
    return used, computed


def test_every_code_used_is_listed_and_every_listed_code_is_used() -> None:
    used, computed = _used()
    listed = set(get_args(ErrorCode))
    assert used - listed == set(), "codes used but not in errors.ErrorCode"
    assert listed - used == set(), "codes in errors.ErrorCode that nothing uses"
    # A code built from pieces (an f-string) would escape both checks.
    assert computed == []


def test_the_code_list_is_sorted_and_has_no_duplicates() -> None:
    listed = list(get_args(ErrorCode))
    assert listed == sorted(set(listed))
