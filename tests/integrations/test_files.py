"""YAML and TOML config files: loading, located errors, safety, and the CLI on them."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

import adapter_dsl
from adapter_dsl import ConfigError, LoRAConfig, load, load_file
from adapter_dsl.cli import main


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def error_of(path: Path, **kw: object) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_file(path, **kw)  # type: ignore[arg-type]
    return info.value


def test_yaml_mapping_and_string(tmp_path: Path) -> None:
    assert load(str(write(tmp_path, "a.yaml", "architecture: lora\nr: 16\n"))) == LoRAConfig(r=16)
    assert load(write(tmp_path, "b.yml", "lora[r=16]\n")) == LoRAConfig(r=16)
    nested = write(tmp_path, "c.yaml", "train:\n  adapter: 'lora[r=16]'\n")
    assert load_file(nested, key="train.adapter") == LoRAConfig(r=16)


def test_yaml_problems_carry_file_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "a.yaml", "architecture: lora\nr: 16\ncompositon_mode: add\nalpha: x\n")
    err = error_of(path)
    by_code = {p.code: p for p in err.problems}
    key = by_code["unknown_key"].location
    assert (key.file, key.line, key.column, key.pointer) == (str(path), 3, 1, "/compositon_mode")
    assert by_code["unknown_key"].suggestion == "did you mean 'composition_mode'?"
    value = next(p for p in err.problems if p.location.pointer == "/alpha").location
    assert (value.line, value.column) == (4, 8)
    assert f"{path}:4:8 at /alpha" in str(err)
    assert "    alpha: x\n           ^" in str(err)


def test_a_config_string_inside_yaml_is_located_in_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "a.yaml", 'model: bert\nadapter: "lora[r=16, alpha=1x]"\n')
    problem = error_of(path, key="adapter").problems[0]
    assert (problem.location.line, problem.location.column) == (2, 29)


@pytest.mark.parametrize(
    ("text", "message", "line", "column"),
    [
        ("r: [1, 2\n", "flow sequence: expected ',' or ']'", 2, 1),
        ("a: &x 1\nb: *x\n", "aliases (*name) are not supported", 2, 4),
        (
            "r: !!python/object/apply:os.system ['true']\n",
            "could not determine a constructor",
            1,
            4,
        ),
        ("r: 1\nr: 2\n", "key 'r' appears twice", 2, 1),
        ("a: 1\n---\nb: 2\n", "expected a single document", 2, 1),
    ],
)
def test_yaml_syntax_and_safety(
    tmp_path: Path, text: str, message: str, line: int, column: int
) -> None:
    problem = error_of(write(tmp_path, "a.yaml", text)).problems[0]
    assert message in problem.message
    assert (problem.location.line, problem.location.column) == (line, column)


@pytest.mark.parametrize(("name", "text"), [("a.yaml", "r: "), ("a.toml", "r = ")])
def test_deep_nesting_is_a_config_error(tmp_path: Path, name: str, text: str) -> None:
    path = write(tmp_path, name, text + "[" * 5000 + "]" * 5000 + "\n")
    assert error_of(path).problems[0].code in ("too_deep", "yaml_syntax")
    assert "nested" in error_of(path).problems[0].message


def test_toml_table_and_sub_table(tmp_path: Path) -> None:
    assert load(write(tmp_path, "a.toml", 'architecture = "lora"\nr = 16\n')) == LoRAConfig(r=16)
    pyproject = write(
        tmp_path,
        "pyproject.toml",
        '[project]\nname = "x"\n\n[tool.adapter]\narchitecture = "lora"\nr = 0\n',
    )
    with pytest.raises(ConfigError, match="greater than or equal to 1"):
        load(str(pyproject), key="tool.adapter")
    with pytest.raises(ConfigError, match="key= selects a table"):
        load("lora[r=4]", key="tool.adapter")
    err = error_of(pyproject, key="tool.adapter")
    (problem,) = err.problems
    assert problem.location.pointer == "/tool/adapter/r"
    assert (problem.location.line, problem.location.column) == (6, 5)
    missing = error_of(pyproject, key="tool.adaptr").problems[0]
    assert missing.code == "missing_key" and missing.suggestion == "did you mean 'adapter'?"


def test_toml_union_as_array_of_tables(tmp_path: Path) -> None:
    text = """architecture = "union"

[[configs]]
architecture = "prefix_tuning"
bottleneck_size = 800

[[configs]]
reduction_factor = 2
is_parallel = true
scaling = "x"
"""
    problems = error_of(write(tmp_path, "mam.toml", text)).problems
    (problem,) = [p for p in problems if p.location.pointer == "/configs/1/scaling"]
    assert (problem.location.line, problem.location.column) == (10, 11)


def test_toml_syntax_error(tmp_path: Path) -> None:
    problem = error_of(write(tmp_path, "a.toml", 'architecture = "lora"\nr = = 3\n')).problems[0]
    assert problem.code == "toml_syntax"
    assert (problem.location.line, problem.location.column) == (2, 5)


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize(
    "spec",
    ["lora[r=16]", "mam", "unipelt[lora.r=4]", "seq_bn[reduction_factor={'default': 16, '1': 8}]"],
)
@pytest.mark.parametrize("fmt", ["yaml", "toml"])
def test_cli_convert_round_trips(tmp_path: Path, spec: str, fmt: str) -> None:
    target = tmp_path / f"adapter.{fmt}"
    code, _, _ = run("convert", spec, "--to", fmt, "-o", str(target))
    assert code == 0
    code, out, _ = run("validate", str(target))
    assert code == 0
    assert load(target) == load(spec)
    code, out, _ = run("convert", str(target))
    assert out.strip() == adapter_dsl.dumps(load(spec))


def test_cli_schema_modelines(tmp_path: Path) -> None:
    _, out, _ = run("convert", "lora", "--to", "yaml", "--schema-ref", "adapter-config.schema.json")
    assert out.startswith("# yaml-language-server: $schema=adapter-config.schema.json\n")
    _, out, _ = run("convert", "lora", "--to", "toml", "--schema-ref", "adapter-config.schema.json")
    assert out.startswith("#:schema adapter-config.schema.json\n")


def test_cli_validate_with_key(tmp_path: Path) -> None:
    path = write(tmp_path, "pyproject.toml", '[tool.adapter]\narchitecture = "lora"\nr = 0\n')
    code, _, err = run("validate", str(path), "--key", "tool.adapter")
    assert code == 1
    assert f"{path}:3:5 at /tool/adapter/r" in err
    assert "      r = 0\n          ^" in err
