"""Data is never taken for a path: only an explicit path argument is opened, and only a regular
file of bounded size."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest

from adapter_dsl import ConfigError, load, load_lenient
from adapter_dsl.cli import EXIT_INVALID, main

SECRET = "TOP-SECRET first line of a file nobody named"


def _secret(tmp_path: Path) -> Path:
    path = tmp_path / "secret.json"
    path.write_text(SECRET + "\n")
    return path


def error_of(spec: object) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load(spec)
    return info.value


def test_a_path_inside_a_dict_is_not_opened(tmp_path: Path) -> None:
    err = error_of({"config": str(_secret(tmp_path))})
    assert SECRET not in str(err)
    [problem] = err.problems
    assert problem.code == "path_in_data"
    assert problem.location.pointer == "/config"
    assert "never opened" in problem.message
    assert "passing its path to load()" in (problem.suggestion or "")


def test_a_path_inside_a_dict_is_not_opened_in_lenient_mode(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="never opened") as info:
        load_lenient({"config": str(_secret(tmp_path))})
    assert SECRET not in str(info.value)


def test_a_fifo_named_in_data_is_not_opened(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    assert error_of({"config": str(fifo)}).problems[0].code == "path_in_data"


def test_a_file_naming_itself_is_one_located_problem(tmp_path: Path) -> None:
    path = tmp_path / "self.json"
    path.write_text(json.dumps({"config": str(path)}, indent=2))
    err = error_of(path)
    [problem] = err.problems
    assert problem.code == "path_in_data"
    assert (problem.location.file, problem.location.line) == (str(path), 2)
    assert problem.location.column == len('  "config": ') + 1


def test_config_strings_in_envelopes_still_load() -> None:
    assert load({"config": "lora[r=4]"}) == load("lora[r=4]")
    assert load({"config": "mam"}) == load("mam")
    err = error_of({"config": "lora[r=0]"})
    assert err.problems[0].location.pointer == "/config/r"


def test_an_explicit_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "adapter_config.json"
    os.mkfifo(fifo)
    err = error_of(fifo)
    assert "is not a regular file" in str(err)
    assert err.problems[0].found == "a FIFO"
    # The same through the CLI, which reads the file for its own output too.
    out, errs = io.StringIO(), io.StringIO()
    assert main(["validate", str(fifo)], stdout=out, stderr=errs) == EXIT_INVALID
    assert "is not a regular file" in out.getvalue() + errs.getvalue()


def test_an_explicit_file_is_read_up_to_the_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ADAPTER_DSL_MAX_LENGTH", "64")
    path = tmp_path / "big.json"
    path.write_text(json.dumps({"architecture": "lora", "r": 8, "padding": "x" * 100}))
    err = error_of(path)
    assert err.problems[0].code == "file_too_large"
    assert "at most 64 bytes" in str(err)
    small = tmp_path / "small.json"
    small.write_text('{"architecture": "lora"}')
    assert load(small) == load("lora")
