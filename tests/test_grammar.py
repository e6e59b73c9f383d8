"""The syntax layer: what the grammar accepts, the spans it records, and its error messages."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from adapter_dsl import ConfigError
from adapter_dsl.syntax import parse_text
from adapter_dsl.syntax.parser import MAX_DEPTH, MAX_LENGTH, grammar_text
from adapter_dsl.syntax.tables import GRAMMARS, compile_tables, tables_text

ROOT = Path(__file__).resolve().parent.parent


def test_packaged_grammar_is_the_source_grammar() -> None:
    # grammar/adapter_config.lark is the single source of truth; the package ships a copy.
    assert grammar_text() == (ROOT / "grammar" / "adapter_config.lark").read_text()


@pytest.mark.parametrize("name", GRAMMARS)
def test_shipped_parse_tables_are_current(name: str) -> None:
    # `make grammar` regenerates them from grammar/<name>.lark; no lark cache is involved.
    from importlib import resources

    text = (ROOT / "grammar" / f"{name}.lark").read_text()
    shipped = resources.files("adapter_dsl.syntax").joinpath(f"{name}.tables.json").read_text()
    assert shipped == tables_text(compile_tables(text)), "run `make grammar`"


def test_table_generation_is_canonical() -> None:
    """lark numbers LALR states by string hashing: fresh processes with different hash seeds
    (and no lark cache) must still write the same tables."""
    script = (
        "import sys; from pathlib import Path; from adapter_dsl.syntax.tables import "
        "compile_tables, tables_text; "
        "sys.stdout.write(tables_text(compile_tables(Path(sys.argv[1]).read_text())))"
    )
    grammar = str(ROOT / "grammar" / "adapter_config.lark")
    outputs = {
        subprocess.run(
            [sys.executable, "-c", script, grammar],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        ).stdout
        for seed in ("1", "2", "3")
    }
    assert len(outputs) == 1


def test_stale_tables_fail_loudly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Tables of another grammar are never run, and never silently recompiled either.
    from adapter_dsl.syntax.lalr import StaleTablesError, shipped_tables

    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "g.lark").write_text(grammar_text() + "\n// edited\n")
    (package / "g.tables.json").write_text(
        tables_text(compile_tables(grammar_text())), encoding="utf-8"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(
        StaleTablesError, match=r"pkg/g\.tables\.json was not generated .*make grammar"
    ):
        shipped_tables("pkg", "g")
    (package / "g.tables.json").unlink()
    with pytest.raises(StaleTablesError, match=r"cannot read the parse tables of g\.lark"):
        shipped_tables("pkg", "g")


def test_parsing_never_imports_lark() -> None:
    code = (
        "import sys; import adapter_dsl; adapter_dsl.load('lora[r=4]|seq_bn'); "
        "print('lark' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def args(text: str) -> list[tuple[str, object]]:
    return [(a.key, a.value) for m in parse_text(text).methods for a in m.args]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("lora", []),
        ("lora[]", []),
        ("lora [r=4]", [("r", 4)]),
        ("lora[r=4,]", [("r", 4)]),
        ("lora[ r = 4 ,\n alpha = 16 ]", [("r", 4), ("alpha", 16)]),
        ("x[a=-1.5e-3, b=+2, c=.5, d=1E3]", [("a", -1.5e-3), ("b", 2), ("c", 0.5), ("d", 1000.0)]),
        (
            "x[a=True, b=false, c=None, d=null, e=true]",
            [("a", True), ("b", False), ("c", None), ("d", None), ("e", True)],
        ),
        ("x[a='q', b=\"v\", c='it\\'s']", [("a", "q"), ("b", "v"), ("c", "it's")]),
        ("x[a='a|b=c],d']", [("a", "a|b=c],d")]),
        ("x[a=gelu, b=glorot-uniform]", [("a", "gelu"), ("b", "glorot-uniform")]),
        (
            "x[a=[1, [2, 3], []], b={'default': 16, '1': 8, 2: 4,}]",
            [("a", [1, [2, 3], []]), ("b", {"default": 16, "1": 8, 2: 4})],
        ),
        ("unipelt[lora.r=4, 0.r=2]", [("lora.r", 4), ("0.r", 2)]),
        ("x[Trueish=1]", [("Trueish", 1)]),
    ],
)
def test_accepted_syntax(text: str, expected: list[tuple[str, object]]) -> None:
    assert args(text) == expected


def test_identifiers_with_plus_and_unions() -> None:
    tree = parse_text("compacter++ | pfeiffer+inv|lora[r=2]")
    assert [m.name for m in tree.methods] == ["compacter++", "pfeiffer+inv", "lora"]


def test_spans_point_into_the_source() -> None:
    text = "seq_bn | lora[r=16, attn_matrices=['q','k']]"
    tree = parse_text(text)
    lora = tree.methods[1]
    assert text[slice(*lora.name_span)] == "lora"
    assert text[slice(*lora.span)] == "lora[r=16, attn_matrices=['q','k']]"
    r, attn = lora.args
    assert text[slice(*r.key_span)] == "r"
    assert text[slice(*r.value_span)] == "16"
    assert text[slice(*attn.value_span)] == "['q','k']"


def syntax_error(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_text(text)
    return info.value


@pytest.mark.parametrize(
    ("text", "column", "needle"),
    [
        ("lora[r=2**3]", 9, "arithmetic is not allowed"),
        ("seq_bn[leave_out=list(range(3))]", 22, "calls and parentheses are not allowed"),
        ("lora[r=4", 9, "add the missing ']'"),
        ("lora[r={'a': 1", 15, "add the missing '}'"),
        ("lora||seq_bn", 6, "expected an adapter identifier"),
        ("lora|", 6, "remove the trailing '|'"),
        ("a[b=1][c=2]", 7, "unexpected '['"),
        ("lora[r=4]x", 10, "unexpected word 'x'"),
        ("lora[x='abc]", 8, "unterminated string"),
        ("lora[r:4]", 7, "keys are set with '='"),
        ("lora[d={'a': 1, 'a': 2}]", 17, "appears twice"),
    ],
)
def test_syntax_errors_are_located_and_explained(text: str, column: int, needle: str) -> None:
    error = syntax_error(text)
    (problem,) = error.problems
    assert problem.code in ("syntax", "duplicate_key")
    assert problem.location.span is not None
    assert problem.location.span[0] + 1 == column
    assert needle in str(error)


def test_caret_display_underlines_the_problem() -> None:
    text = str(syntax_error("lora[r=2**3]"))
    lines = text.splitlines()
    source_line = lines.index("    lora[r=2**3]")
    assert lines[source_line + 1] == "            ^"


def test_expected_tokens_name_only_closers_that_can_close() -> None:
    message = str(syntax_error("lora[r=4"))
    assert "'}'" not in message
    assert "']'" in message


@pytest.mark.parametrize("text", ["", "   ", "\n"])
def test_empty_input(text: str) -> None:
    assert "empty config string" in str(syntax_error(text))


def test_limits_give_config_errors() -> None:
    assert "too long" in str(syntax_error("lora[r=" + "1" * MAX_LENGTH + "]"))
    deep = "x[a=" + "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1) + "]"
    assert "nested more than" in str(syntax_error(deep))
    ok = "x[a=" + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1) + "]"
    parse_text(ok)


def test_non_string_input() -> None:
    with pytest.raises(ConfigError, match="must be a str"):
        parse_text(42)  # type: ignore[arg-type]


def test_table_driver_builds_what_lark_builds() -> None:
    """The fast driver runs lark's own tables; lark's parser with the same callbacks must agree."""
    from hypothesis import given, settings
    from hypothesis import strategies as st
    from lark import Lark
    from lark.exceptions import LarkError

    from adapter_dsl.syntax.parser import _DuplicateKey, _parser, callbacks

    class Callbacks:
        pass

    handler = Callbacks()
    for name, fn in callbacks().items():
        setattr(handler, name, fn)
    reference = Lark(
        grammar_text(),
        parser="lalr",
        lexer="contextual",
        keep_all_tokens=True,
        maybe_placeholders=False,
        transformer=handler,
    )
    driver = _parser()
    alphabet = st.sampled_from(list("lora[]=,|'\"{}:.0123456789-+eE_ qkvTrueNn+"))
    samples = [
        "lora",
        "seq_bn | lora[r=16, attn_matrices=['q','k']]",
        "unipelt[lora.r=4, prefix_tuning.prefix_length=20,]",
        "x[a={'default': 16, 1: [1, 2, {}], \"k\": None}, b=-1e3, c=gelu-new]",
    ]

    def outcome(parse: object, text: str) -> object:
        try:
            return ("ok", parse(text))  # type: ignore[operator]
        except (LarkError, Exception) as exc:  # both sides must fail, for any reason
            return ("error", type(exc) is _DuplicateKey)

    for text in samples:
        assert outcome(driver.parse, text) == outcome(reference.parse, text)

    @settings(max_examples=400, deadline=None)
    @given(st.text(alphabet, max_size=30))
    def agree(text: str) -> None:
        mine, theirs = outcome(driver.parse, text), outcome(reference.parse, text)
        assert mine[0] == theirs[0]
        if mine[0] == "ok":
            assert mine == theirs

    agree()
