"""The yaml-language-server modeline: the YAML language server (the engine of VS Code's YAML
extension, from npm) checks and completes YAML config files against our schema, offline."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from adapter_dsl.cli import main

ROOT = Path(__file__).resolve().parents[2]
EDITOR = ROOT / "tests" / "editor"
SCHEMA = ROOT / "schemas" / "adapter-config.schema.json"
MODELINE = "# yaml-language-server: $schema=../schemas/adapter-config.schema.json\n"


def _converted(spec: str) -> str:
    out = io.StringIO()
    ref = "../schemas/adapter-config.schema.json"
    assert main(["convert", spec, "--to", "yaml", "--schema-ref", ref], stdout=out) == 0
    return out.getvalue()


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the YAML editor check needs Node.js")
    if not (EDITOR / "node_modules" / "yaml-language-server").is_dir():
        pytest.skip("yaml-language-server is not installed: run `make node-deps`")
    example = ROOT / "examples" / "hydra_app" / "conf" / "adapter" / "seq_bn.yaml"
    probes = {
        "schemas": {"file:///w/schemas/adapter-config.schema.json": str(SCHEMA)},
        "probes": [
            {
                "name": "valid",
                "uri": "file:///w/c/a.yaml",
                "text": MODELINE + "architecture: lora\nr: 16\n",
            },
            {
                "name": "invalid",
                "uri": "file:///w/c/b.yaml",
                "text": MODELINE + "architecture: lora\nr: 0\ncompositon_mode: add\n",
            },
            {
                "name": "keys",
                "uri": "file:///w/c/c.yaml",
                "text": MODELINE + "architecture: lora\n|",
            },
            {
                "name": "no_modeline",
                "uri": "file:///w/c/d.yaml",
                "text": "architecture: lora\nr: 0\n",
            },
            {"name": "converted", "uri": "file:///w/c/e.yaml", "text": _converted("mam")},
            {
                "name": "example",
                "uri": "file:///w/examples/hydra_app/conf/adapter/seq_bn.yaml",
                "text": example.read_text(encoding="utf-8"),
            },
        ],
    }
    spec = tmp_path_factory.mktemp("yaml-editor") / "probes.json"
    spec.write_text(json.dumps(probes), encoding="utf-8")
    done = subprocess.run(
        [node, "check_yaml.mjs", str(spec)],
        cwd=EDITOR,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    data: dict[str, Any] = json.loads(done.stdout)
    return data


def test_a_valid_file_has_no_diagnostics(results: dict[str, Any]) -> None:
    for name in ("valid", "converted", "example"):
        assert results[name]["diagnostics"] == [], name


def test_problems_are_flagged_where_they_are(results: dict[str, Any]) -> None:
    found = {(d["line"], d["message"]) for d in results["invalid"]["diagnostics"]}
    assert (2, "Value is below the minimum of 1.") in found
    assert (3, "Property compositon_mode is not allowed.") in found


def test_keys_are_completed(results: dict[str, Any]) -> None:
    labels = set(results["keys"]["completions"])
    assert {"r", "alpha", "attn_matrices", "composition_mode"} <= labels
    assert "reduction_factor" not in labels  # a LoRA file gets LoRA keys only


def test_without_the_modeline_nothing_is_checked(results: dict[str, Any]) -> None:
    assert results["no_modeline"]["diagnostics"] == []
