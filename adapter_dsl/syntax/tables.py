"""Build time: compile a grammar with lark into the canonical LALR tables the driver runs.

Only ``make grammar`` and the tests import this module (it needs lark, a development
dependency); parsing reads the generated ``<grammar>.tables.json`` and never imports lark.

The tables come from lark's public serialisation (``Lark.memo_serialize``, the data behind
``Lark.save`` and lark's standalone generator), not from its private parser objects. lark numbers
LALR states in an order that depends on string hashing, so the same grammar compiles to
differently numbered (isomorphic) tables in every fresh process. :func:`compile_tables`
renumbers states breadth-first from the start state, visiting symbols in sorted order, and
numbers rules in the order that walk first reduces them: one grammar, one text, on any machine.

Table format (what :class:`~adapter_dsl.syntax.lalr.TableParser` runs): ``terminals`` rows are
``[name, regex]`` in the order lark's lexer tries them; ``rules`` rows are
``[size, origin, callback name or null, passthrough, splices]``; an action is a state number
(shift) or ``["r", rule index]`` (reduce); ``gotos`` map nonterminals to states.
"""

from __future__ import annotations

import json
import re
from collections import deque
from pathlib import Path
from typing import Any

from .lalr import grammar_digest

__all__ = [
    "GRAMMARS",
    "compile_tables",
    "grammar_digest",
    "tables_text",
    "write_package_grammars",
]

# Grammars under grammar/ that the package ships: grammar/<name>.lark is the only source; the
# package holds a generated copy (<name>.lark) and its tables (<name>.tables.json).
GRAMMARS = ("adapter_config", "adapter_setup")

# The lark options the driver's tree-shaping rules assume (see lalr.py).
LARK_OPTIONS: dict[str, Any] = {
    "parser": "lalr",
    "lexer": "contextual",
    "keep_all_tokens": True,
    "maybe_placeholders": False,
}

_SHIFT, _REDUCE = 0, 1  # action codes in lark's serialised parse table


def compile_tables(grammar: str) -> dict[str, Any]:
    """The canonical tables of ``grammar`` (its text), plus its digest."""
    from lark import Lark
    from lark.grammar import Rule
    from lark.lexer import TerminalDef

    data, memo = Lark(grammar, **LARK_OPTIONS).memo_serialize([TerminalDef, Rule])
    table = data["parser"]["parser"]
    lexer_conf = data["parser"]["lexer_conf"]
    symbols: dict[int, str] = {int(i): name for i, name in table["tokens"].items()}
    states: dict[int, dict[str, list[Any]]] = {
        int(state): {symbols[int(sym)]: step for sym, step in row.items()}
        for state, row in table["states"].items()
    }
    start = table["start_states"]["start"]
    number = _canonical_numbering(states, start)

    rules: list[list[Any]] = []
    rule_index: dict[str, int] = {}
    actions: dict[str, dict[str, Any]] = {}
    gotos: dict[str, dict[str, int]] = {}
    for old in sorted(states, key=number.__getitem__):
        shifts: dict[str, Any] = {}
        goto: dict[str, int] = {}
        for symbol, (code, arg) in sorted(states[old].items()):
            if code == _REDUCE:
                rule = memo[arg["@"]]
                key = json.dumps(rule, sort_keys=True, default=str)
                if key not in rule_index:
                    rule_index[key] = len(rules)
                    rules.append(_rule_row(rule))
                shifts[symbol] = ["r", rule_index[key]]
            elif _is_terminal(symbol):
                shifts[symbol] = number[arg]
            else:
                goto[symbol] = number[arg]
        actions[str(number[old])] = shifts
        gotos[str(number[old])] = goto

    terminals = [value for value in memo.values() if value.get("__type__") == "TerminalDef"]
    terminals.sort(key=_lexer_order)
    return {
        "grammar_sha256": grammar_digest(grammar),
        "terminals": [[t["name"], _regexp(t["pattern"])] for t in terminals],
        "ignore": sorted(lexer_conf["ignore"]),
        "start": number[start],
        "end": number[table["end_states"]["start"]],
        "rules": rules,
        "actions": actions,
        "gotos": gotos,
    }


def tables_text(tables: dict[str, Any]) -> str:
    """The JSON text of ``tables`` as the package ships it."""
    return json.dumps(tables, indent=1, sort_keys=True) + "\n"


def write_package_grammars(root: Path) -> list[Path]:
    """Copy each ``grammar/<name>.lark`` under ``root`` into the package and write its tables
    (what ``make grammar`` runs); returns the files written."""
    package = root / "adapter_dsl" / "syntax"
    written: list[Path] = []
    for name in GRAMMARS:
        text = (root / "grammar" / f"{name}.lark").read_text("utf-8")
        copy, tables = package / f"{name}.lark", package / f"{name}.tables.json"
        copy.write_text(text, "utf-8")
        tables.write_text(tables_text(compile_tables(text)), "utf-8")
        written += [copy, tables]
    return written


def _canonical_numbering(states: dict[int, dict[str, list[Any]]], start: int) -> dict[int, int]:
    """lark's state number → its position in a breadth-first walk from ``start`` that follows
    shifts and gotos in sorted symbol order."""
    number = {start: 0}
    queue = deque([start])
    while queue:
        for _symbol, (code, arg) in sorted(states[queue.popleft()].items()):
            if code == _SHIFT and arg not in number:
                number[arg] = len(number)
                queue.append(arg)
    if len(number) != len(states):  # every LALR state is reachable from the start state
        raise RuntimeError(f"{len(states) - len(number)} parser states unreachable from start")
    return number


def _is_terminal(symbol: str) -> bool:
    return symbol.isupper() or symbol == "$END"


def _rule_row(rule: dict[str, Any]) -> list[Any]:
    origin: str = rule["origin"]["name"]
    alias = rule["alias"]
    expansion = rule["expansion"]
    return [
        len(expansion),
        origin,
        None if origin.startswith("_") else (alias or origin),
        bool(rule["options"]["expand1"]) and not alias,
        any(sym["name"].startswith("_") for sym in expansion),
    ]


def _regexp(pattern: dict[str, Any]) -> str:
    """The regex lark's lexer uses for a serialised pattern (``Pattern.to_regexp``)."""
    value: str = pattern["value"]
    regex = value if pattern["__type__"] == "PatternRE" else re.escape(value)
    flags = "".join(pattern["flags"])
    return f"(?{flags}:{regex})" if flags else regex


def _max_width(pattern: dict[str, Any]) -> int:
    if pattern["__type__"] == "PatternRE":
        return int(pattern["_width"][1])
    return len(pattern["value"])


def _lexer_order(terminal: dict[str, Any]) -> tuple[int, int, int, str]:
    """The order lark's own lexer tries terminals in (matters only where patterns overlap)."""
    pattern = terminal["pattern"]
    return (-terminal["priority"], -_max_width(pattern), -len(pattern["value"]), terminal["name"])
