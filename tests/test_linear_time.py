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
    packages = [adapter_dsl]
    while packages:  # not pkgutil.walk_packages: it would import the backend (torch)
        package = packages.pop()
        for info in pkgutil.iter_modules(package.__path__, package.__name__ + "."):
            if info.name == "adapter_dsl.backend" or info.name in _SCRIPTS:
                continue
            module = importlib.import_module(info.name)
            patterns.extend(p.pattern for p in compiled_patterns(module))
            if info.ispkg:
                packages.append(module)
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


def test_long_lists_and_unions_parse_in_linear_time() -> None:
    # Repetitions reduce through left-recursive helper rules: each step once copied the list
    # of everything before it (50,000 values took over a minute).
    from adapter_dsl.syntax import parse_text

    with hang_guard():
        (method,) = parse_text("seq_bn[leave_out=[" + "0, " * 50_000 + "]]").methods
        assert len(method.args[0].value) == 50_000
        assert len(parse_text("|".join(["lora"] * 20_000)).methods) == 20_000
        (method,) = parse_text("lora[" + ", ".join(f"k{i}=1" for i in range(20_000)) + "]").methods
        assert len(method.args) == 20_000


# -- many problems -----------------------------------------------------------------------------


def test_a_union_of_4000_clashing_members_gives_one_problem_per_member() -> None:
    text = "|".join(["lora"] * 4000)
    with hang_guard(), pytest.raises(ConfigError) as info:
        load(text)
    err = info.value
    assert len(err.problems) == 3999  # members 1..3999 each clash with member 0
    assert err.problems[5].message.startswith("members 0 and 6 (lora, lora): two lora configs")
    assert err.problems[5].location.span == (30, 34)  # the sixth '|lora' names member 6
    rendered = str(err)
    assert rendered.startswith("invalid adapter config (3,999 problems)")
    assert rendered.endswith("… and 3,979 more")
    assert len(rendered) < 20 * 400  # 20 problems, each a bounded window of the source


def test_union_problems_point_at_the_member_written_for_them() -> None:
    with pytest.raises(ConfigError) as info:
        load("lora|mam|par_bn")  # mam is prefix tuning + par_bn: members 1, 2; par_bn is 3
    (problem,) = info.value.problems
    assert problem.message.startswith("members 2 and 3 (par_bn, par_bn)")
    assert problem.location.span == (9, 15)


def test_a_json_union_of_1000_bad_members_is_located_member_by_member() -> None:
    from adapter_dsl.loading import load_json_text

    text = json.dumps(
        {"architecture": "union", "configs": [{"architecture": "lora", "r": 0}] * 1000}, indent=1
    )
    with hang_guard(), pytest.raises(ConfigError) as info:
        load_json_text(text)
    problems = info.value.problems
    assert len(problems) == 1000
    assert [p.location.path for p in problems[:2]] == [("configs", 0, "r"), ("configs", 1, "r")]
    assert problems[999].location.line == text[: text.rindex('"r": 0')].count("\n") + 1


def test_json_text_with_10000_unknown_keys_locates_every_key() -> None:
    from adapter_dsl.loading import load_json_text

    keys = {f"k{i}": i for i in range(10_000)}
    text = json.dumps({"architecture": "lora", **keys}, indent=1)
    with hang_guard(), pytest.raises(ConfigError) as info:
        load_json_text(text)
    problems = info.value.problems
    assert len(problems) == 10_000
    last = problems[-1]
    assert last.location.path == ("k9999",)
    assert last.location.line == 10_002  # "{", the architecture line, then one key a line
    assert text[slice(*last.location.span)] == '"k9999"'


def test_rendering_is_bounded_per_problem_on_a_long_line() -> None:
    from adapter_dsl.errors import Location, Problem

    source = "x" * 1_000_000
    problems = [Problem("bad", Location(span=(i * 100, i * 100 + 50_000))) for i in range(5000)]
    rendered = str(ConfigError(problems, source=source))
    assert rendered.count("\n") == 3 * 20 + 1  # the head, 20 problems of 3 lines, the count
    assert max(len(line) for line in rendered.splitlines()) < 200
