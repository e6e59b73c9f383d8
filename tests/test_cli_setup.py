"""The command line on adapter setups and AdapterFusion configs."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from adapter_dsl import Fuse, Stack, load_fusion_config
from adapter_dsl.cli import EXIT_INVALID, EXIT_OK, main


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def test_validate_setup() -> None:
    code, out, _ = run("validate", "--setup", "Stack(a, Fuse(b, c))")
    assert code == EXIT_OK
    assert out == "ok: Stack(a, Fuse(b, c)) -> Stack(a, Fuse(b, c))\n"
    # A bare name is a setup only when asked for: otherwise it is an adapter identifier.
    assert run("validate", "--setup", "my_adapter")[1] == "ok: my_adapter -> my_adapter\n"


def test_validate_reports_located_setup_problems() -> None:
    code, _, err = run("validate", "--color", "never", "Stack(a, Fsue(b, c), Split(d, e))")
    assert code == EXIT_INVALID
    assert "did you mean 'Fuse'?" in err
    assert "Split needs splits=" in err
    assert "             ^^^^" in err


def test_validate_json_output_for_setups_and_fusion() -> None:
    code, out, _ = run("validate", "--json", "Parallel(a, b)", "static[temperature=True]")
    payload = json.loads(out)
    assert code == EXIT_OK and payload["valid"]
    setup, fusion = payload["results"]
    assert setup["dict"]["type"] == "Parallel"
    assert fusion["config"] == "static[temperature=True]"
    assert fusion["dict"] == load_fusion_config("static[temperature=True]").to_dict()


def test_format_knows_setups_and_fusion_configs() -> None:
    code, out, _ = run(
        "format",
        "Average(a, b, weights=[1, 1])",
        "Split( a,b,splits=2 )",
        "dynamic[temperature=False]",
    )
    assert code == EXIT_OK
    assert out.splitlines() == ["Average(a, b)", "Split(a, b, splits=[2, 2])", "dynamic"]


def test_fusion_flag() -> None:
    code, _, err = run("validate", "--fusion", "--color", "never", "dinamic")
    assert code == EXIT_INVALID and "did you mean 'dynamic'?" in err
    assert run("validate", "--setup", "--fusion", "x")[0] == 2


def test_explain_setup() -> None:
    code, out, _ = run("explain", "Stack(a, Fuse(b, c), Split(x, y, splits=[2, 3]))")
    assert code == EXIT_OK
    assert out.splitlines() == [
        "Stack(a, Fuse(b, c), Split(x, y, splits=[2, 3]))",
        "adapters: a, b, c, x, y",
        "- Stack",
        "  - a",
        "  - Fuse (fusion name 'b,c')",
        "    - b",
        "    - c",
        "  - Split (splits=[2, 3])",
        "    - x",
        "    - y",
    ]
    payload = json.loads(run("explain", "--json", "Parallel(a, b)")[1])
    assert payload["parallel_channels"] == 2
    assert payload["tree"] == {
        "block": "Parallel",
        "children": [{"adapter": "a"}, {"adapter": "b"}],
    }


def test_explain_fusion_config() -> None:
    code, out, _ = run("explain", "--json", "dynamic[temperature=True]")
    assert code == EXIT_OK
    (member,) = json.loads(out)["members"]
    assert member["preset"] == "dynamic"
    fields = {f["name"]: f for f in member["fields"]}
    assert fields["temperature"] == {
        **fields["temperature"],
        "value": True,
        "default": False,
        "set": True,
    }
    assert not fields["value"]["set"]


def test_files(tmp_path: Path) -> None:
    setup = Stack("a", Fuse("b", "c"))
    (tmp_path / "adapter_setup.json").write_text(
        json.dumps({"adapter_setup": setup.to_dict(), "head_setup": None, "version": "x"})
    )
    assert run("format", str(tmp_path / "adapter_setup.json"))[1] == "Stack(a, Fuse(b, c))\n"
    assert run("format", str(tmp_path))[1] == "Stack(a, Fuse(b, c))\n"
    fusion = tmp_path / "fusion"
    fusion.mkdir()
    config = load_fusion_config("static[residual_before=True]")
    (fusion / "adapter_fusion_config.json").write_text(json.dumps({"config": config.to_dict()}))
    assert run("format", str(fusion))[1] == "static[residual_before=True]\n"
    bad = tmp_path / "bad" / "adapter_setup.json"
    bad.parent.mkdir()
    bad.write_text(json.dumps({"adapter_setup": {"type": "Stak", "children": []}}))
    code, _, err = run("validate", "--color", "never", str(bad))
    assert code == EXIT_INVALID and "did you mean 'Stack'?" in err and str(bad) in err


def test_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("adapter_dsl.cli._read_stdin", lambda: "BatchSplit(a, b, batch_sizes=2)\n")
    assert run("format", "-")[1] == "BatchSplit(a, b, batch_sizes=[2, 2])\n"
