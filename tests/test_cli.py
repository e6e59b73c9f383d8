"""The adapter-dsl command line: in-process calls for behaviour, a few subprocesses for wiring."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import adapter_dsl
from adapter_dsl.cli import EXIT_INVALID, EXIT_OK, EXIT_USAGE, main
from adapter_dsl.schema import FILENAMES, KINDS, schema_text

ROOT = Path(__file__).resolve().parent.parent


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def run(*argv: str, stdin: str | None = None, tty: bool = False, **kw: Any) -> tuple[int, str, str]:
    out = _Tty() if tty else io.StringIO()
    err = _Tty() if tty else io.StringIO()
    if stdin is not None:
        kw["monkeypatch"].setattr(sys, "stdin", io.StringIO(stdin))
    code = main(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(autouse=True)
def _no_color_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("TERM", raising=False)


@pytest.fixture
def bad_file(tmp_path: Path) -> Path:
    path = tmp_path / "bad.adapter.json"
    path.write_text('{\n  "architecture": "lora",\n  "r": -3,\n  "rnak": 2\n}\n', encoding="utf-8")
    return path


# -- validate ------------------------------------------------------------------------------


def test_validate_ok_prints_canonical_form() -> None:
    code, out, err = run(
        "validate", "lora[r=16]", "pfeiffer", "prefix_tuning[bottleneck_size=800]|parallel"
    )
    assert code == EXIT_OK
    assert out.splitlines() == [
        "ok: lora[r=16] -> lora[r=16]",
        "ok: pfeiffer -> seq_bn",
        "ok: prefix_tuning[bottleneck_size=800]|parallel -> mam",
        "3 valid, 0 invalid",
    ]
    assert err == ""


def test_validate_error_shows_message_and_caret() -> None:
    code, out, err = run("validate", "lroa[r=2]")
    assert code == EXIT_INVALID
    assert out == ""
    lines = err.splitlines()
    assert lines[0] == "error: lroa[r=2]"
    assert "unknown adapter identifier 'lroa'" in err
    assert "did you mean 'lora'?" in err
    assert "      lroa[r=2]" in lines
    assert "      ^^^^" in lines


def test_validate_reports_every_problem_with_location() -> None:
    code, _, err = run("validate", "lora[r=-3, composition_mode='x']")
    assert code == EXIT_INVALID
    assert "(2 problems)" in err
    assert "column 8 at /r: invalid value for 'r'" in err
    assert "expected an integer ≥ 1, found -3" in err
    assert "expected 'add' or 'scale', found 'x'" in err


def test_validate_file_has_line_and_column(bad_file: Path) -> None:
    code, _, err = run("validate", str(bad_file))
    assert code == EXIT_INVALID
    assert f"{bad_file}:3:8 at /r" in err
    assert f"{bad_file}:4:3 at /rnak: unknown key 'rnak' for LoRAConfig" in err
    assert "did you mean 'rank'" not in err  # there is no such key; no bogus suggestion
    assert '        "r": -3,' in err.splitlines()


def test_validate_mixed_inputs_exit_1_with_summary(bad_file: Path) -> None:
    code, out, err = run("validate", "lora", str(bad_file))
    assert code == EXIT_INVALID
    assert out == "ok: lora -> lora\n"
    assert err.splitlines()[-1] == "1 valid, 1 invalid"


def test_validate_quiet_prints_only_problems() -> None:
    assert run("validate", "-q", "lora", "ia3") == (EXIT_OK, "", "")


def test_validate_json_output(bad_file: Path) -> None:
    code, out, err = run("validate", "--json", "lora[r=4]", str(bad_file))
    assert code == EXIT_INVALID
    assert err == ""
    payload = json.loads(out)
    assert payload["valid"] is False
    assert (payload["checked"], payload["invalid"]) == (2, 1)
    ok, bad = payload["results"]
    assert ok == {
        "input": "lora[r=4]",
        "valid": True,
        "config": "lora[r=4]",
        "dict": adapter_dsl.load("lora[r=4]").to_dict(),
    }
    assert bad["valid"] is False
    first = bad["problems"][0]
    assert first["pointer"] == "/r"
    assert (first["line"], first["column"], first["file"]) == (3, 8, str(bad_file))
    assert first["expected"] == "an integer ≥ 1"
    assert first["found"] == "-3"
    assert bad["problems"][1]["code"] == "unknown_key"


def test_validate_inline_json_stdin_and_missing_file(monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, _ = run("validate", '{"architecture": "lora", "r": 4}')
    assert (code, out) == (EXIT_OK, 'ok: {"architecture": "lora", "r": 4} -> lora[r=4]\n')
    code, out, _ = run("validate", "-", stdin="ia3[alpha=2]\n", monkeypatch=monkeypatch)
    assert (code, out) == (EXIT_OK, "ok: - -> ia3[alpha=2]\n")
    code, _, err = run("validate", "nothere.json")
    assert code == EXIT_INVALID
    assert "no such config file: nothere.json" in err


def test_validate_lenient_drops_unknown_keys(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_text('{"architecture": "lora", "r": 4, "future_key": 1}', encoding="utf-8")
    assert run("validate", str(path))[0] == EXIT_INVALID
    code, out, err = run("validate", "--lenient", str(path))
    assert code == EXIT_OK
    assert out.endswith("-> lora[r=4]\n")
    assert "warning:" in err and "unknown key 'future_key' was dropped" in err


def test_saved_adapter_file_is_unwrapped(tmp_path: Path) -> None:
    path = tmp_path / "adapter_config.json"
    envelope = {
        "config": adapter_dsl.load("dora[r=4]").to_dict(),
        "name": "a",
        "version": "adapters.1.3.0",
    }
    path.write_text(json.dumps(envelope), encoding="utf-8")
    assert run("validate", str(path))[1] == f"ok: {path} -> dora[r=4]\n"
    # A saved adapter's directory stands for its adapter_config.json.
    assert run("validate", str(tmp_path))[1] == f"ok: {tmp_path} -> dora[r=4]\n"


# -- usage, help, colour -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ((), "usage: adapter-dsl"),
        (("bogus",), "invalid choice: 'bogus'"),
        (("validate",), "the following arguments are required: SPEC_OR_FILE"),
        (("validate", "--frobnicate", "lora"), "unrecognized arguments: --frobnicate"),
        (("schema", "--kind", "nope"), "invalid choice: 'nope'"),
    ],
)
def test_usage_errors_exit_2(
    capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], message: str
) -> None:
    code, _, err = run(*argv)
    captured = capsys.readouterr()
    assert code == EXIT_USAGE
    assert message in err + captured.err


def test_help_documents_examples_and_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("--help")[0] == EXIT_OK
    text = capsys.readouterr().out
    for word in ("validate", "format", "explain", "schema", "convert", "exit codes", "NO_COLOR"):
        assert word in text
    assert 'adapter-dsl validate "lora[r=16, alpha=32]"' in text
    assert run("validate", "--help")[0] == EXIT_OK
    assert "--json" in capsys.readouterr().out


def test_colour_only_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    assert "\033[" not in "".join(run("validate", "lora", "lroa")[1:])
    assert "\033[32mok\033[0m" in run("validate", "lora", tty=True)[1]
    assert "\033[1;31merror\033[0m" in run("validate", "lroa", tty=True)[2]
    assert "\033[" not in run("validate", "--color", "never", "lora", tty=True)[1]
    assert "\033[" in run("validate", "--color", "always", "lora")[1]
    monkeypatch.setenv("NO_COLOR", "1")
    assert "\033[" not in "".join(run("validate", "lora", "lroa", tty=True)[1:])


# -- format, explain, convert --------------------------------------------------------------


def test_format_prints_canonical_strings() -> None:
    code, out, _ = run("format", "houlsby", "lora[alpha=8, r=8]", "par_bn[scaling='learned']")
    assert code == EXIT_OK
    assert out.splitlines() == ["double_seq_bn", "lora", "scaled_par_bn"]
    code, _, err = run("format", "lora[r=0]")
    assert code == EXIT_INVALID and "invalid value for 'r'" in err


def test_explain_table_marks_explicit_fields() -> None:
    code, out, _ = run("explain", "lora[r=8, alpha=16]")
    assert code == EXIT_OK
    lines = out.splitlines()
    assert lines[0] == "lora[alpha=16]  (LoRAConfig)"
    assert lines[2] == "lora[alpha=16]  (LoRAConfig, defaults of lora)"
    assert lines[3].split() == ["field", "value", "default", "set"]
    rows = {line.split()[0]: line.split() for line in lines[4:]}
    assert rows["r"] == ["r", "8", "8", "yes"]  # written, even though it is the default
    assert rows["alpha"] == ["alpha", "16", "8", "yes"]
    assert rows["dropout"] == ["dropout", "0.0", "0.0"]
    assert rows["attn_matrices"] == ["attn_matrices", "['q',", "'v']", "['q',", "'v']"]
    assert len(rows) == len(adapter_dsl.LoRAConfig.model_fields) - 1  # all but architecture


def test_explain_groups_union_members() -> None:
    code, out, _ = run("explain", "mam[adapter.reduction_factor=4]")
    assert code == EXIT_OK
    assert "union of 2 methods" in out
    assert (
        "[0] prefix_tuning[bottleneck_size=800]  (PrefixTuningConfig, defaults of mam.prefix_tuning)"
        in out
    )
    assert "[1] par_bn[reduction_factor=4]  (ParBnConfig, defaults of mam.adapter)" in out
    code, out, _ = run("explain", "--json", "seq_bn|lora[r=4]")
    payload = json.loads(out)
    assert payload["config"] == "seq_bn|lora[r=4]"
    lora = payload["members"][1]
    assert (lora["class"], lora["preset"]) == ("LoRAConfig", "lora")
    r = next(f for f in lora["fields"] if f["name"] == "r")
    assert r == {
        "name": "r",
        "value": 4,
        "default": 8,
        "set": True,
        "description": r["description"],
    }
    assert r["description"]


def test_explain_file_marks_keys_present(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_text('{"architecture": "lora", "r": 4, "alpha": 8}', encoding="utf-8")
    payload = json.loads(run("explain", "--json", str(path))[1])
    set_fields = {f["name"] for f in payload["members"][0]["fields"] if f["set"]}
    assert set_fields == {"r", "alpha"}


def test_convert_string_to_json_and_back(tmp_path: Path) -> None:
    code, out, _ = run("convert", "lora[r=16]")
    assert code == EXIT_OK
    assert json.loads(out) == adapter_dsl.load("lora[r=16]").to_dict()
    target = tmp_path / "adapter_config.json"
    code, out, err = run(
        "convert", "mam", "-o", str(target), "--schema-ref", "./adapter-config.schema.json"
    )
    assert (code, out, err) == (EXIT_OK, "", f"wrote {target}\n")
    data = json.loads(target.read_text(encoding="utf-8"))
    assert data["$schema"] == "./adapter-config.schema.json"
    assert run("convert", str(target)) == (EXIT_OK, "mam\n", "")
    assert run("convert", "--to", "string", "pfeiffer")[1] == "seq_bn\n"
    assert json.loads(run("convert", "--to", "json", str(target))[1])["architecture"] == "union"


# -- schema --------------------------------------------------------------------------------


def test_schema_prints_and_writes_the_committed_files(tmp_path: Path) -> None:
    code, out, _ = run("schema")
    assert (code, out) == (EXIT_OK, schema_text("config"))
    assert run("schema", "--kind", "saved-adapter")[1] == schema_text("saved-adapter")
    code, out, _ = run("schema", "--output", str(tmp_path))
    assert code == EXIT_OK
    for kind in KINDS:
        written = (tmp_path / FILENAMES[kind]).read_bytes()
        assert written == (ROOT / "schemas" / FILENAMES[kind]).read_bytes()
        assert f"wrote {tmp_path / FILENAMES[kind]}" in out
    assert run("schema", "--output", str(ROOT / "schemas"), "--check")[0] == EXIT_OK
    (tmp_path / FILENAMES["config"]).write_text("{}", encoding="utf-8")
    code, _, err = run("schema", "--output", str(tmp_path), "--check")
    assert code == EXIT_INVALID and "stale:" in err
    assert run("schema", "--kind", "all")[0] == EXIT_USAGE


# -- wiring: console script, python -m, import cost ----------------------------------------


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    env["PYTHONPATH"] = str(ROOT)
    return env


def test_python_dash_m_and_console_script(bad_file: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "adapter_dsl", "validate", "lora[r=4]", str(bad_file)],
        capture_output=True,
        text=True,
        env=_env(),
        check=False,
    )
    assert proc.returncode == EXIT_INVALID
    assert proc.stdout == "ok: lora[r=4] -> lora[r=4]\n"
    assert "\033[" not in proc.stderr  # not a terminal
    assert f"{bad_file}:3:8 at /r" in proc.stderr
    script = Path(sys.executable).with_name("adapter-dsl")
    if not script.exists():
        pytest.skip("the adapter-dsl console script is not installed in this environment")
    proc = subprocess.run(
        [str(script), "format", "pfeiffer"], capture_output=True, text=True, env=_env(), check=False
    )
    assert (proc.returncode, proc.stdout) == (EXIT_OK, "seq_bn\n")
    proc = subprocess.run(
        [str(script), "nope"], capture_output=True, text=True, env=_env(), check=False
    )
    assert proc.returncode == EXIT_USAGE and "invalid choice" in proc.stderr


def test_import_stays_light() -> None:
    code = (
        "import sys, adapter_dsl, adapter_dsl.cli; "
        "heavy = [m for m in ('pydantic', 'lark', 'torch', 'jsonschema') if m in sys.modules]; "
        "print(heavy)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=_env(), check=True
    )
    assert proc.stdout.strip() == "[]"
