"""The pre-commit hook: its file selection and its entry, run as pre-commit would run them."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import adapter_dsl

ROOT = Path(__file__).resolve().parent.parent
yaml = pytest.importorskip("yaml")


@pytest.fixture(scope="module")
def hook() -> dict[str, Any]:
    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))
    (found,) = [h for h in hooks if h["id"] == "adapter-dsl-validate"]
    return found


def _selected(hook: dict[str, Any], paths: list[str]) -> list[str]:
    """pre-commit's selection: re.search of `files` (and not `exclude`) on the repo path."""
    include = re.compile(hook.get("files", ""))
    exclude = re.compile(hook["exclude"]) if hook.get("exclude") else None
    return [p for p in paths if include.search(p) and not (exclude and exclude.search(p))]


def test_hook_definition(hook: dict[str, Any]) -> None:
    assert hook["entry"].split()[:2] == ["adapter-dsl", "validate"]
    assert hook["language"] == "python"
    paths = [
        "adapter_config.json",
        "runs/sst2/adapter_config.json",
        "configs/lora.adapter.json",
        "package.json",
        "my_adapter_config.json",
        "adapter_config.json.bak",
        "configs/.adapter.json",
        "notes/adapter.json",
    ]
    assert _selected(hook, paths) == [
        "adapter_config.json",
        "runs/sst2/adapter_config.json",
        "configs/lora.adapter.json",
    ]


def _git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    proc = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, env=env, check=True
    )
    return proc.stdout


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_hook_entry_on_a_repository(tmp_path: Path, hook: dict[str, Any]) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "runs").mkdir()
    good = {
        "config": adapter_dsl.load("lora[r=16]").to_dict(),
        "name": "a",
        "version": "adapters.1.3.0",
    }
    (repo / "runs" / "adapter_config.json").write_text(json.dumps(good, indent=2), encoding="utf-8")
    (repo / "bad.adapter.json").write_text(
        '{\n  "architecture": "lora",\n  "composition_mode": "x"\n}\n', encoding="utf-8"
    )
    (repo / "package.json").write_text('{"name": "not an adapter"}', encoding="utf-8")
    _git(repo, "add", "-A")
    staged = sorted(_git(repo, "diff", "--cached", "--name-only").split())
    files = _selected(hook, staged)
    assert files == ["bad.adapter.json", "runs/adapter_config.json"]

    # The entry runs from the repository root with the selected files appended, as in pre-commit.
    entry = shlex.split(hook["entry"])
    bindir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": bindir + os.pathsep + os.environ.get("PATH", "")}
    env.pop("NO_COLOR", None)
    if shutil.which(entry[0], path=env["PATH"]) is None:
        entry = [sys.executable, "-m", "adapter_dsl", *entry[1:]]
    proc = subprocess.run(
        [*entry, *files], cwd=repo, capture_output=True, text=True, env=env, check=False
    )
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout == ""
    assert "error: bad.adapter.json" in proc.stderr
    assert "bad.adapter.json:3:23 at /composition_mode" in proc.stderr
    assert "expected 'add' or 'scale', found 'x'" in proc.stderr
    assert "runs/adapter_config.json" not in proc.stderr

    proc = subprocess.run(
        [*entry, "runs/adapter_config.json"],
        cwd=repo,
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")
