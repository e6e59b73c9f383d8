"""The setup language: grammar and shipped tables, located messages, every nesting rule, round trips."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapter_dsl import (
    AdapterCompositionBlock,
    Average,
    BatchSplit,
    ConfigError,
    Fuse,
    MultiTask,
    Parallel,
    Split,
    Stack,
    dumps,
    load_setup,
    parse_setup,
)
from adapter_dsl.composition import ALLOWED_CHILDREN, BLOCKS
from adapter_dsl.syntax import setup as setup_syntax

ROOT = Path(__file__).resolve().parent.parent


# -- grammar and tables ------------------------------------------------------------------------


def test_packaged_setup_grammar_is_the_source_grammar() -> None:
    assert setup_syntax.grammar_text() == (ROOT / "grammar" / "adapter_setup.lark").read_text()


def test_shipped_setup_tables_belong_to_the_grammar_and_parse_as_lark_does() -> None:
    # lark numbers its states differently from run to run, so the tables are compared by what
    # they do: made from this grammar (the digest) and parsing exactly as lark's parser does.
    from importlib import resources

    from lark import Lark
    from lark.exceptions import LarkError

    from adapter_dsl.syntax.lalr import TableParser

    shipped = json.loads(
        resources.files("adapter_dsl.syntax").joinpath(setup_syntax.TABLES_FILE).read_text()
    )
    assert shipped["grammar_sha256"] == setup_syntax.grammar_digest(), "run `make grammar`"

    class Handler:
        pass

    handler = Handler()
    for name, fn in setup_syntax.callbacks().items():
        setattr(handler, name, fn)
    lark = Lark(
        setup_syntax.grammar_text(),
        parser="lalr",
        lexer="contextual",
        keep_all_tokens=True,
        maybe_placeholders=False,
        transformer=handler,
    )
    driver = TableParser(shipped, setup_syntax.callbacks())

    def outcome(parse: Any, text: str) -> Any:
        try:
            return ("ok", parse(text))
        except (LarkError, Exception):
            return ("error",)

    samples = [
        "a",
        "'x y'",
        "Stack(a, Fuse(b, c),)",
        "Split(a, b, splits=[3, 4])",
        'Average(a, "b", weights=[0.3, .7e0], normalize_weights=False)',
        "Stack(a",
        "Stack(a b)",
        "Stack(a, [1])",
        "f(x=[[1], [2, 3]], y=None)",
    ]
    for text in samples:
        assert outcome(driver.parse, text) == outcome(lark.parse, text)

    @settings(max_examples=300, deadline=None)
    @given(st.text(st.sampled_from(list("StackFuse(),=[]'\"ab 012.-")), max_size=24))
    def agree(text: str) -> None:
        assert outcome(driver.parse, text) == outcome(lark.parse, text)

    agree()


def test_stale_setup_tables_fail_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    # Tables of another grammar are never run, and never silently recompiled either.
    monkeypatch.setattr(setup_syntax, "grammar_digest", lambda: "digest of an edited grammar")
    with pytest.raises(setup_syntax.StaleSetupTables, match="run `make grammar`"):
        setup_syntax._load_tables()


# -- what parses -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "setup"),
    [
        ("a", Stack("a")),
        ("  a  ", Stack("a")),
        ("'a b'", Stack("a b")),
        ('"sst-2"', Stack("sst-2")),
        ("sst-2", Stack("sst-2")),
        ("en/wiki@ukp", Stack("en/wiki@ukp")),
        ("Stack(a, b)", Stack("a", "b")),
        ("Stack(a, b,)", Stack("a", "b")),
        ("Stack(\n  a,\n  Fuse(b, c)\n)", Stack("a", Fuse("b", "c"))),
        ("Fuse(a, b, c)", Fuse("a", "b", "c")),
        ("Fuse(a, b, name='ab')", Fuse("a", "b", name="ab")),
        ("Stack(a, Fuse(b, c))", Stack("a", Fuse("b", "c"))),
        ("Split(a, b, splits=[3, 4])", Split("a", "b", splits=[3, 4])),
        ("Split(a, b, splits=3)", Split("a", "b", splits=[3, 3])),
        ("BatchSplit(a, b, batch_sizes=[2, 2])", BatchSplit("a", "b", batch_sizes=2)),
        ("Parallel(a, b)", Parallel("a", "b")),
        ("Average(a, b, weights=[0.3, 0.7])", Average("a", "b", weights=[0.3, 0.7])),
        ("Average(a, b, weights=[1, 3])", Average("a", "b", weights=[0.25, 0.75])),
        (
            "Average(a, b, weights=[1, 3], normalize_weights=False)",
            Average("a", "b", weights=[1, 3], normalize_weights=False),
        ),
        ("MultiTask(a, b)", MultiTask("a", "b")),
        # A word is a name unless "(" follows: an adapter may be called Stack.
        ("Stack(Stack, Fuse)", Stack("Stack", "Fuse")),
        ("Stack('True', x)", Stack("True", "x")),
    ],
)
def test_setups_parse(text: str, setup: AdapterCompositionBlock) -> None:
    assert parse_setup(text) == setup
    assert load_setup(text) == setup


# -- messages ----------------------------------------------------------------------------------


def error(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_setup(text)
    return info.value


def test_unknown_block_with_caret_and_suggestion() -> None:
    err = error("Stack(a, Fsue(b, c))")
    (problem,) = err.problems
    assert problem.code == "unknown_block"
    assert problem.suggestion == "did you mean 'Fuse'?"
    assert problem.location.span == (9, 13)
    assert str(err).splitlines()[-2:] == ["    Stack(a, Fsue(b, c))", "             ^^^^"]


def test_wrong_case_block_name() -> None:
    assert error("stack(a, b)").problems[0].suggestion == "did you mean 'Stack'?"
    assert error("batchsplit(a, b, batch_sizes=1)").problems[0].suggestion == (
        "did you mean 'BatchSplit'?"
    )


def test_unknown_keyword_with_suggestion_at_the_keyword() -> None:
    err = error("Split(a, b, split=[1, 2])")
    unknown = next(p for p in err.problems if p.code == "unknown_keyword")
    assert unknown.suggestion == "did you mean 'splits'?"
    assert unknown.location.span == (12, 17)
    assert {p.code for p in err.problems} == {"unknown_keyword", "missing_keyword"}
    assert "Average has no argument 'weight'" in str(error("Average(a, b, weight=[1, 2])"))
    assert "did you mean 'normalize_weights'?" in str(
        error("Average(a, b, normalise_weights=False)")
    )
    assert "Stack has no argument 'splits' (expected adapter names only" in str(
        error("Stack(a, b, splits=1)")
    )


def test_value_problems_point_at_the_value() -> None:
    err = error("Split(a, b, splits=[3, -4])")
    (problem,) = err.problems
    assert problem.location.span == (23, 25)
    assert problem.message == "splits must be positive"
    assert error("BatchSplit(a, b, batch_sizes=[2, 2.5])").problems[0].location.span == (33, 36)
    assert "weights must be numbers" in str(error("Average(a, b, weights=[1, 'x'])"))
    assert "normalize_weights must be True or False" in str(
        error("Average(a, b, normalize_weights=0)")
    )
    assert "one size per child (2), not 3" in str(error("Split(a, b, splits=[1, 1, 1])"))


def test_every_problem_at_once() -> None:
    err = error("Stack(a, Stack(b), Fuse(c, c), Split(d, e), Avrage(f))")
    codes = sorted(p.code for p in err.problems)
    assert codes == [
        "invalid_nesting",
        "missing_keyword",
        "repeated_child",
        "unknown_block",
    ]
    assert str(err).startswith("invalid adapter setup (4 problems)")


@pytest.mark.parametrize(
    ("text", "message", "suggestion"),
    [
        ("Stack(a", "ends too early", "add the missing ')'"),
        ("Stack(a, Fuse(b", "ends too early", "add the 2 missing ')'"),
        ("Stack(a b)", "unexpected word 'b'", "separate adapters with ','"),
        ("Stack(a))", "unexpected ')'", "remove the extra ')'"),
        ("Stack[a, b]", "unexpected '['", "blocks take their adapters in parentheses"),
        ("a|b", "unexpected character '|'", "'|' joins adapter configs"),
        ("Stack(a, 'b)", "unterminated string", "close the string"),
        ("Split(a, b, splits=[1, 2)", "unexpected ')'", None),
        ("Stack(a, splits=1, b)", "an adapter follows a keyword argument", "move the keyword"),
        ("Split(a, b, splits=1, splits=2)", "argument 'splits' is given twice", None),
    ],
)
def test_syntax_messages(text: str, message: str, suggestion: str | None) -> None:
    err = error(text)
    assert message in str(err)
    if suggestion is not None:
        assert any(suggestion in (p.suggestion or "") for p in err.problems)
    assert all(p.location.span is not None for p in err.problems)


def test_limits_and_types() -> None:
    assert "empty adapter setup" in str(error("   "))
    assert "nested more than" in str(error("Stack(" * 40 + "a" + ")" * 40))
    with pytest.raises(ConfigError, match="takes a setup string"):
        parse_setup(3)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="cannot read an adapter setup"):
        load_setup(3.5)


# -- the nesting table and the depth rule ------------------------------------------------------

_KIND_TEXT = {
    "name": "x",
    "Stack": "Stack(x, y)",
    "Fuse": "Fuse(x, y)",
    "Split": "Split(x, y, splits=1)",
    "BatchSplit": "BatchSplit(x, y, batch_sizes=1)",
    "Parallel": "Parallel(x, y)",
    "Average": "Average(x, y)",
    "MultiTask": "MultiTask(x, y)",
}
_PARENT_TEXT = {
    "Stack": "Stack(a, {})",
    "Fuse": "Fuse(a, {})",
    "Split": "Split(a, {}, splits=1)",
    "BatchSplit": "BatchSplit(a, {}, batch_sizes=1)",
    "Parallel": "Parallel(a, {})",
    "Average": "Average(a, {})",
    "MultiTask": "MultiTask(a, {})",
}


@pytest.mark.parametrize(("parent", "child"), list(itertools.product(_PARENT_TEXT, _KIND_TEXT)))
def test_every_nesting_rule(parent: str, child: str) -> None:
    text = _PARENT_TEXT[parent].format(_KIND_TEXT[child])
    if child in ALLOWED_CHILDREN[BLOCKS[parent]]:
        assert dumps(parse_setup(text)) == dumps(parse_setup(text))
        return
    err = error(text)
    (problem,) = err.problems
    assert problem.code == "invalid_nesting"
    assert problem.message == f"{parent} cannot contain {child}"
    start = text.index(_KIND_TEXT[child], len(parent) + 1)
    assert problem.location.span == (start, start + len(_KIND_TEXT[child]))


def test_depth_rule() -> None:
    assert parse_setup("Stack(a, Fuse(b, Stack(c, d)))")
    err = error("Parallel(Stack(a, BatchSplit(b, c, batch_sizes=1)), d)")
    (problem,) = err.problems
    assert problem.code == "too_deep"
    assert problem.location.span == (18, 49)
    # Nested inside another block, a valid setup can become too deep.
    inner = Average(Split("a", Stack("b", "c"), splits=[1, 2]), "d")
    with pytest.raises(ConfigError, match="Split is nested too deep"):
        Stack("x", Parallel(inner, "y"))


# -- canonical strings and round trips ---------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("a", "a"),
        ("Stack(a)", "a"),
        ("Stack( a ,b )", "Stack(a, b)"),
        ("Split(a, b, splits=3)", "Split(a, b, splits=[3, 3])"),
        ("Average(a, b, weights=[1, 1])", "Average(a, b)"),
        ("Average(a, b, weights=[1, 3])", "Average(a, b, weights=[0.25, 0.75])"),
        (
            "Average(a, b, weights=[1, -1], normalize_weights=False)",
            "Average(a, b, weights=[1.0, -1.0], normalize_weights=False)",
        ),
        ("Fuse(a, b, name='a,b')", "Fuse(a, b)"),
        ("Fuse(a, b, name='ab')", "Fuse(a, b, name='ab')"),
        ("Stack('x y', \"True\", z)", "Stack('x y', 'True', z)"),
    ],
)
def test_canonical_strings(text: str, canonical: str) -> None:
    assert dumps(parse_setup(text)) == canonical
    assert str(parse_setup(text)) == canonical


names = st.one_of(
    st.sampled_from(["a", "b", "c", "sst-2", "en/wiki@ukp", "Stack", "True"]),
    st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=6),
)


def _blocks(depth: int) -> st.SearchStrategy[Any]:
    """Valid setups: each parent draws children from the nesting table, deeper only Stack."""

    def children_of(parent: type[AdapterCompositionBlock], level: int) -> st.SearchStrategy[Any]:
        kinds = [k for k in ALLOWED_CHILDREN[parent] if level < 1 or k in ("name", "Stack")]
        options: list[st.SearchStrategy[Any]] = [names]
        if level < depth:
            options += [node(BLOCKS[k], level + 1) for k in kinds if k != "name"]
        return st.one_of(options)

    def node(cls: type[AdapterCompositionBlock], level: int) -> st.SearchStrategy[Any]:
        kids = st.lists(st.deferred(lambda: children_of(cls, level)), min_size=1, max_size=3)

        def make(children: list[Any], data: st.DataObject) -> Any:
            n = len(children)
            if cls in (Fuse, Parallel, MultiTask):
                seen: list[Any] = []
                for c in children:
                    key = c.last() if cls is Fuse and not isinstance(c, str) else c
                    if key in seen:
                        return None
                    seen.append(key)
            if cls is Split:
                return Split(
                    *children, splits=data.draw(st.lists(st.integers(1, 9), min_size=n, max_size=n))
                )
            if cls is BatchSplit:
                return BatchSplit(*children, batch_sizes=data.draw(st.integers(1, 9)))
            if cls is Average:
                weights = data.draw(
                    st.one_of(
                        st.none(),
                        st.lists(st.floats(0.01, 10, allow_nan=False), min_size=n, max_size=n),
                    )
                )
                normalize = data.draw(st.booleans())
                return Average(*children, weights=weights, normalize_weights=normalize)
            if cls is Fuse and data.draw(st.booleans()):
                return Fuse(*children, name=data.draw(names))
            return cls(*children)

        return st.builds(make, kids, st.data()).filter(lambda b: b is not None)

    return st.one_of([node(cls, 0) for cls in BLOCKS.values()])


ROUND_TRIP = settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))


@ROUND_TRIP
@given(_blocks(2))
def test_round_trips(setup: AdapterCompositionBlock) -> None:
    text = dumps(setup)
    assert parse_setup(text) == setup
    assert dumps(parse_setup(text)) == text
    assert load_setup(setup.to_dict()) == setup
    assert load_setup(json.loads(json.dumps(setup.to_dict()))) == setup
    assert AdapterCompositionBlock.from_dict(setup.to_dict()).to_dict() == setup.to_dict()
    assert hash(parse_setup(text)) == hash(setup)
    assert eval(repr(setup), dict(BLOCKS)) == setup


FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))


@FUZZ
@given(st.text(st.sampled_from(list("StackFuseSplitAverage(),=[]'\"abc 0123.-_xyz")), max_size=40))
def test_random_text_only_ever_raises_config_error(text: str) -> None:
    try:
        setup = parse_setup(text)
    except ConfigError as exc:
        str(exc)  # renders
        assert exc.problems
    else:
        assert parse_setup(dumps(setup)) == setup


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.floats(), st.text(max_size=4)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)


@FUZZ
@given(
    st.one_of(
        json_values,
        st.fixed_dictionaries(
            {"type": st.sampled_from([*BLOCKS, "single", "x"]), "children": json_values}
        ),
        st.fixed_dictionaries(
            {
                "type": st.sampled_from(list(BLOCKS)),
                "children": st.lists(
                    st.fixed_dictionaries(
                        {"type": st.just("single"), "children": st.lists(json_values, max_size=2)}
                    ),
                    max_size=3,
                ),
                "kwargs": json_values,
            }
        ),
    )
)
def test_random_dicts_only_ever_raise_config_error(data: Any) -> None:
    try:
        setup = load_setup(data)
    except ConfigError as exc:
        assert all(isinstance(p.location.pointer, str) for p in exc.problems)
    else:
        assert load_setup(setup.to_dict()) == setup


def test_a_setup_given_as_a_config_says_so() -> None:
    from adapter_dsl import load

    with pytest.raises(ConfigError) as info:
        load("Stack(a, Fuse(b, c))")
    assert info.value.problems[0].suggestion == (
        "this is an adapter setup, not a config: read it with parse_setup()"
    )
    from adapter_dsl.syntax.parser import _SETUP_BLOCKS

    assert set(BLOCKS) == _SETUP_BLOCKS  # the syntax layer's copy of the block names
