"""README.md: the generated identifier table is current and the examples run as shown."""

from __future__ import annotations

import doctest
import re
import runpy
from pathlib import Path
from typing import Any

import pytest

from adapter_dsl.registry import IDENTIFIERS

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


@pytest.fixture(scope="module")
def generator() -> dict[str, Any]:
    return runpy.run_path(str(ROOT / "scripts" / "gen_readme_tables.py"))


def test_identifier_table_is_current(generator: dict[str, Any]) -> None:
    text = README.read_text(encoding="utf-8")
    assert generator["render"](text) == text, (
        "README.md's identifier table is stale: run python scripts/gen_readme_tables.py"
    )


def test_identifier_table_lists_every_identifier(generator: dict[str, Any]) -> None:
    table = generator["identifiers_table"]()
    listed = re.findall(r"^\| `([^`]+)` \|", table, flags=re.MULTILINE)
    assert listed == list(IDENTIFIERS)
    assert "| `lora` | `LoRAConfig` |" in table
    assert "`r=8`, `alpha=8`" in table
    assert "| `pfeiffer` | `SeqBnConfig` | *Deprecated* alias of `seq_bn` | as `seq_bn` |" in table


def test_model_type_table_lists_every_row(generator: dict[str, Any]) -> None:
    pytest.importorskip("torch")
    from adapter_dsl.backend.architectures import ARCHITECTURES, BUILT_IN

    table = generator["model_types_table"]()
    listed = re.findall(r"^\| `([^`]+)` \|", table, flags=re.MULTILINE)
    assert listed == [*sorted(BUILT_IN), "encoder-decoder"]
    assert "| `gpt2` | `h` | ✓ | ✓ | ✓ | — | ✓ | ✓ |" in table  # no prompt tuning, as the reference
    assert all(ARCHITECTURES[t].supports("lora") for t in BUILT_IN)


def test_check_mode_reports_a_stale_readme(generator: dict[str, Any], tmp_path: Path) -> None:
    stale = tmp_path / "README.md"
    stale.write_text(
        "x\n<!-- identifiers:start -->\nold\n<!-- identifiers:end -->\ny\n", encoding="utf-8"
    )
    assert generator["main"](["--check", "--readme", str(stale)]) == 1
    assert generator["main"](["--readme", str(stale)]) == 0
    assert generator["main"](["--check", "--readme", str(stale)]) == 0
    text = stale.read_text(encoding="utf-8")
    assert text.startswith("x\n") and text.endswith("y\n") and "`compacter++`" in text


def test_readme_examples_run() -> None:
    result = doctest.testfile(
        str(README),
        module_relative=False,
        optionflags=doctest.NORMALIZE_WHITESPACE,
        verbose=False,
    )
    assert result.attempted >= 10
    assert result.failed == 0


def test_readme_points_at_real_files() -> None:
    text = README.read_text(encoding="utf-8")
    for command in ("make demo", "make test", "make schemas"):
        assert command in text
    for path in re.findall(r"\./(schemas/[\w.-]+\.json)", text):
        assert (ROOT / path).is_file(), path
    assert "id: adapter-dsl-validate" in text
    assert "id: adapter-dsl-validate" in (ROOT / ".pre-commit-hooks.yaml").read_text(
        encoding="utf-8"
    )
