"""The syntax layer: what the grammar accepts, the spans it records, and its error messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapter_dsl import ConfigError
from adapter_dsl.syntax import parse_text
from adapter_dsl.syntax.parser import MAX_DEPTH, MAX_LENGTH, grammar_text

ROOT = Path(__file__).resolve().parent.parent


def test_packaged_grammar_is_the_source_grammar() -> None:
    # grammar/adapter_config.lark is the single source of truth; the package ships a copy.
    assert grammar_text() == (ROOT / "grammar" / "adapter_config.lark").read_text()


def test_shipped_parse_tables_are_current() -> None:
    # `make grammar` regenerates them; the parser never runs tables of another grammar.
    from importlib import resources

    from adapter_dsl.syntax.parser import TABLES_FILE, build_tables, tables_text

    shipped = resources.files("adapter_dsl.syntax").joinpath(TABLES_FILE).read_text("utf-8")
    assert shipped == tables_text(build_tables()), "run `make grammar`"


def test_stale_tables_are_not_used(monkeypatch: pytest.MonkeyPatch) -> None:
    from adapter_dsl.syntax import parser

    fresh = parser.build_tables()
    calls: list[int] = []

    def rebuild() -> dict[str, object]:
        calls.append(1)
        return fresh

    monkeypatch.setattr(parser, "grammar_digest", lambda text=None: "digest of an edited grammar")
    monkeypatch.setattr(parser, "build_tables", rebuild)
    assert parser._load_tables() is fresh
    assert calls == [1]


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
