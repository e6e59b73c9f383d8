"""Composition blocks: value semantics, the reference's JSON form, every input form of load_setup."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest

import adapter_dsl
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
    load_setup,
    parse_setup,
)


def test_blocks_are_immutable_hashable_and_equal_by_value() -> None:
    a = Stack("a", Fuse("b", "c"))
    assert a == Stack("a", Fuse("b", "c"))
    assert hash(a) == hash(Stack("a", Fuse("b", "c")))
    # The reference zips children, so its Stack("a") == Stack("a", "b"); ours compares all.
    assert Stack("a") != Stack("a", "b")
    assert Stack("a", "b") != Parallel("a", "b")
    assert Split("a", "b", splits=2) != Split("a", "b", splits=[2, 3])
    with pytest.raises(AttributeError):
        a.children = ("x",)  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del a.children
    assert {a: 1}[Stack("a", Fuse("b", "c"))] == 1
    assert pickle.loads(pickle.dumps(a)) == a
    assert isinstance(a.children, tuple)


def test_reference_helpers() -> None:
    setup = Stack("a", Fuse(Stack("b", "x"), "c"), Parallel("d", "e"))
    assert setup.first() == "a"
    assert setup.last() == "e"
    assert setup.flatten() == frozenset("abxcde")
    assert setup.parallel_channels == 2
    assert Stack("a").parallel_channels == 1
    assert next(iter(setup)) == "a" and len(setup) == 3 and setup[1] == Fuse(Stack("b", "x"), "c")


def test_keyword_arguments_as_the_reference_stores_them() -> None:
    assert Split("a", "b", splits=3).splits == (3, 3)
    assert BatchSplit("a", "b", "c", batch_sizes=[1, 2, 3]).batch_sizes == (1, 2, 3)
    assert Average("a", "b").weights == (0.5, 0.5)
    assert Average("a", "b", weights=[1, 3]).weights == (0.25, 0.75)
    avg = Average("a", "b", weights=[1, 3], normalize_weights=False)
    assert avg.weights == (1.0, 3.0) and avg.normalize_weights is False
    assert Fuse("a", Stack("x", "b")).name == "a,b"
    assert Fuse("a", "b", name="ab").name == "ab"
    # Equality compares what is in effect.
    assert Average("a", "b", weights=[1, 1]) == Average("a", "b")
    assert Fuse("a", "b", name="a,b") == Fuse("a", "b")


def test_to_dict_is_the_reference_json_form() -> None:
    setup = Stack("a", Fuse("b", "c"), Split("x", "y", splits=[3, 4]))
    assert setup.to_dict() == {
        "type": "Stack",
        "children": [
            {"type": "single", "children": ["a"]},
            {
                "type": "Fuse",
                "children": [
                    {"type": "single", "children": ["b"]},
                    {"type": "single", "children": ["c"]},
                ],
            },
            {
                "type": "Split",
                "children": [
                    {"type": "single", "children": ["x"]},
                    {"type": "single", "children": ["y"]},
                ],
                "kwargs": {"splits": [3, 4]},
            },
        ],
    }
    assert Average("a", "b", weights=[1, 3]).to_dict()["kwargs"] == {"weights": [0.25, 0.75]}
    assert BatchSplit("a", "b", batch_sizes=2).to_dict()["kwargs"] == {"batch_sizes": [2, 2]}
    assert "kwargs" not in Parallel("a", "b").to_dict()
    assert "kwargs" not in MultiTask("a", "b").to_dict()
    for block in [setup, Average("a", "b", weights=[1, 3]), Fuse("a", "b", name="f")]:
        assert AdapterCompositionBlock.from_dict(block.to_dict()) == block
        assert load_setup(block.to_dict()) == block


def test_normalised_weights_survive_a_round_trip_bit_for_bit() -> None:
    avg = Average("a", "b", "c", weights=[0.1, 0.2, 0.4])
    again = load_setup(avg.to_dict())
    assert again.weights == avg.weights  # type: ignore[attr-defined]
    assert parse_setup(str(avg)).weights == avg.weights  # type: ignore[attr-defined]


def test_load_setup_input_forms() -> None:
    # A bare name is Stack(name) at the top, as the reference's parse_composition makes it.
    assert load_setup("a") == Stack("a")
    assert load_setup("'my adapter'") == Stack("my adapter")
    assert load_setup("Stack(a, Fuse(b, c))") == Stack("a", Fuse("b", "c"))
    block = Parallel("a", "b")
    assert load_setup(block) is block
    # The reference's deprecated lists: a list is a Stack, a list inside it a Fuse.
    assert load_setup(["a", "b"]) == Stack("a", "b")
    assert load_setup(["a", ["b", "c"]]) == Stack("a", Fuse("b", "c"))
    assert load_setup({"type": "single", "children": ["a"]}) == Stack("a")
    envelope = {"adapter_setup": Stack("a", "b").to_dict(), "head_setup": None, "version": "x"}
    assert load_setup(envelope) == Stack("a", "b")


def test_importing_blocks_stays_light() -> None:
    import subprocess
    import sys

    code = (
        "import sys, adapter_dsl; adapter_dsl.parse_setup('Stack(a, Fuse(b, c))'); "
        "print(sorted(m for m in ('torch', 'transformers', 'numpy', 'pydantic', 'lark') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Stack(), "Stack has no adapters"),
        (lambda: Stack("a", Stack("b")), "Stack cannot contain Stack"),
        (lambda: Fuse("a", Parallel("b", "c")), "Fuse cannot contain Parallel"),
        (lambda: Fuse("a", "a"), "Fuse fuses a twice"),
        (lambda: Parallel("a", "a"), "Parallel runs in parallel a twice"),
        (lambda: MultiTask("a", "a"), "MultiTask routes tasks to a twice"),
        (lambda: Split("a", "b", splits=0), "splits must be positive"),
        (lambda: Split("a", "b", splits=[1, 2, 3]), "one size per child (2), not 3"),
        (lambda: BatchSplit("a", "b", batch_sizes=[1.5, 2]), "batch_sizes must be integers"),
        (lambda: Average("a", "b", weights=[1, float("nan")]), "weights must be finite"),
        (lambda: Average("a", "b", weights=[1, -1]), "the weights sum to 0"),
        (lambda: Average("a", "b", weights=[1]), "one weight per child (2), not 1"),
        (lambda: Stack("a", 3), "a child of Stack must be an adapter name or a block"),  # type: ignore[arg-type]
        (lambda: Stack("a", ""), "a child of Stack must be an adapter name or a block"),
        (
            lambda: Stack("a", Fuse("b", Stack("c", Split("d", "e", splits=1)))),
            "Split is nested too deep",
        ),
    ],
)
def test_invalid_blocks_raise_located_errors(build: object, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        build()  # type: ignore[operator]
    assert message in str(info.value)


def test_repeats_that_mean_something_are_allowed() -> None:
    # Average(a, a) is a's output (the reference halves it); a batch may route rows to one adapter.
    assert Average("a", "a").weights == (0.5, 0.5)
    assert BatchSplit("a", "a", batch_sizes=1).children == ("a", "a")
    assert Stack("a", "a").flatten() == frozenset({"a"})


def test_every_problem_at_once_with_pointers_into_the_json_form() -> None:
    with pytest.raises(ConfigError) as info:
        load_setup(
            {
                "type": "Stack",
                "children": [
                    {"type": "Stak", "children": []},
                    {"type": "Split", "children": [{"type": "single", "children": ["a"]}]},
                    {"type": "Average", "children": [], "kwargs": {"weight": [1]}},
                ],
            }
        )
    pointers = {p.location.pointer: p for p in info.value.problems}
    assert pointers["/children/0/type"].suggestion == "did you mean 'Stack'?"
    assert pointers["/children/1/kwargs/splits"].code == "missing_keyword"
    assert pointers["/children/2/kwargs/weight"].suggestion == "did you mean 'weights'?"
    assert "/children/2/children" in pointers  # empty


def test_public_names() -> None:
    for name in ["Stack", "Fuse", "Split", "BatchSplit", "Parallel", "Average", "MultiTask"]:
        assert name in adapter_dsl.__all__
        assert issubclass(getattr(adapter_dsl, name), AdapterCompositionBlock)


def test_setup_files_with_line_and_column(tmp_path: Path) -> None:
    setup = Stack("a", Fuse("b", "c"))
    (tmp_path / "adapter_setup.json").write_text(
        json.dumps({"adapter_setup": setup.to_dict(), "head_setup": None}, indent=2)
    )
    assert load_setup(tmp_path) == setup
    assert load_setup(tmp_path / "adapter_setup.json") == setup
    bad = tmp_path / "bad.json"
    bad.write_text('{\n  "adapter_setup": {\n    "type": "Stak",\n    "children": []\n  }\n}\n')
    with pytest.raises(ConfigError) as info:
        load_setup(bad)
    problem = info.value.problems[0]
    assert (problem.location.line, problem.location.column) == (3, 13)
    assert problem.location.file == str(bad)
    assert "did you mean 'Stack'?" in str(info.value)
    (tmp_path / "list.json").write_text("[1]")
    with pytest.raises(ConfigError, match="does not hold an adapter setup"):
        load_setup(tmp_path / "list.json")
    with pytest.raises(ConfigError, match="no such setup file"):
        load_setup(tmp_path / "missing.json")


def test_one_problem_per_place_in_a_dict() -> None:
    with pytest.raises(ConfigError) as info:
        load_setup({"type": "Stack"})
    (problem,) = info.value.problems
    assert problem.message == "a composition block needs 'children'"
    assert problem.location.pointer == "/children"


def test_absurdly_nested_input_is_refused_without_recursion_errors() -> None:
    data: dict[str, object] = {"type": "single", "children": ["a"]}
    nested: list[object] = ["a"]
    for _ in range(5000):
        data = {"type": "Stack", "children": [data]}
        nested = [nested]
    for spec in (data, nested):
        with pytest.raises(ConfigError, match="nested more than 32 levels deep"):
            load_setup(spec)
