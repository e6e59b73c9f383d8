"""Untrusted input costs time linear in its size: no regex backtracks catastrophically, many
problems are reported once each and rendered in bounded space, JSON positions are found in one
pass. Pathological cases run under a generous hang guard (they take milliseconds)."""

from __future__ import annotations

import importlib
import json
import pkgutil

import pytest

import adapter_dsl
from adapter_dsl import ConfigError, load
from adapter_dsl.syntax.parser import _parser
from tests.guards import compiled_patterns, hang_guard, nested_quantifiers

BLANKS = 10_000  # a run of blanks that took longer than the universe before the fix


# -- regular expressions -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "pattern",
    [r"(?:(?:[ \t])+)*x", r"(a+)+b", r"(?:a|b+)*c", r"(?:\s*,)*\s*x", r"((ab)*)*"],
)
def test_the_shape_check_finds_nested_quantifiers(pattern: str) -> None:
    assert nested_quantifiers(pattern)


@pytest.mark.parametrize(
    "pattern", [r"(?:(?:[ \t])+)*+x", r"(?:a+)*+b", r"[ \t]*x", r"(?:a|b)*c", r"(\d+(\.\d*)?)?"]
)
def test_the_shape_check_passes_linear_patterns(pattern: str) -> None:
    assert not nested_quantifiers(pattern)


_SCRIPTS = {"adapter_dsl.__main__", "adapter_dsl.demo"}  # run when imported


def _config_layer_patterns() -> list[str]:
    """Every regex the config layer compiles: module constants and the parser's lexers."""
    patterns = []
    for info in pkgutil.walk_packages(adapter_dsl.__path__, "adapter_dsl."):
        if info.name.startswith("adapter_dsl.backend") or info.name in _SCRIPTS:
            continue
        module = importlib.import_module(info.name)
        patterns.extend(p.pattern for p in compiled_patterns(module))
    parser = _parser()
    patterns += [parser._skip_re.pattern, parser._any.pattern]
    patterns += [parser._lexer(state).pattern for state in parser._states.values()]
    return patterns


def test_no_regex_of_the_config_layer_nests_quantifiers() -> None:
    patterns = _config_layer_patterns()
    assert len(patterns) > 10
    bad = {p: nested_quantifiers(p) for p in patterns if nested_quantifiers(p)}
    assert not bad


@pytest.mark.parametrize(
    "text",
    [
        "lora[r=16]" + " " * BLANKS,
        " \t\n" * (BLANKS // 3) + "lora[r=16]",
        "lora[r=16," + " \r\n\f\t" * (BLANKS // 5) + "]",
    ],
)
def test_runs_of_blanks_parse_in_linear_time(text: str) -> None:
    with hang_guard():
        assert load(text) == load("lora[r=16]")


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("lora[r=16," + " " * BLANKS + ";]", "';'"),
        ("lora[r=16]" + " " * BLANKS + "x", "'x'"),
        ("lora[r=16" + " " * BLANKS + "(", "'('"),
    ],
)
def test_blanks_before_a_bad_character_fail_in_linear_time(text: str, found: str) -> None:
    with hang_guard(), pytest.raises(ConfigError) as info:
        load(text)
    problem = info.value.problems[0]
    assert problem.found == found
    at = text.rindex(found[1])
    assert problem.location.span == (at, at + 1)


def test_blanks_in_an_envelope_and_in_json_text() -> None:
    from adapter_dsl.loading import load_json_text

    spec = "lora[r=16]" + " " * BLANKS
    with hang_guard():
        assert load({"config": spec}) == load("lora[r=16]")
        assert load_json_text(json.dumps({"config": spec})) == load("lora[r=16]")
        assert load_json_text('{"architecture": "lora"' + " " * BLANKS + "}").r == 8
