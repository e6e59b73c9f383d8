"""argparse, click and typer parameter types: a bad config is a usage error with our message."""

from __future__ import annotations

import argparse
import io
from contextlib import redirect_stderr
from pathlib import Path

import pytest

from adapter_dsl import AdapterConfig, LoRAConfig, load
from adapter_dsl.integrations import ConfigString, click_type, config_type, resolve_argument

BAD = "lora[r=16, compositon_mode='scale']"


def test_argparse_type_gives_the_config(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser(prog="train")
    parser.add_argument("--adapter", type=config_type, default="seq_bn")
    assert parser.parse_args(["--adapter", "lora[r=16]"]).adapter == LoRAConfig(r=16)
    assert parser.parse_args([]).adapter == load("seq_bn")
    path = tmp_path / "adapter.yaml"
    path.write_text("architecture: lora\nr: 4\n", encoding="utf-8")
    assert parser.parse_args(["--adapter", str(path)]).adapter == LoRAConfig(r=4)


def test_argparse_usage_error_with_the_caret() -> None:
    parser = argparse.ArgumentParser(prog="train")
    parser.add_argument("--adapter", type=config_type)
    err = io.StringIO()
    with redirect_stderr(err), pytest.raises(SystemExit) as info:
        parser.parse_args(["--adapter", BAD])
    assert info.value.code == 2
    text = err.getvalue()
    assert text.startswith("usage: train")
    assert "train: error: argument --adapter: invalid adapter config" in text
    assert "did you mean 'composition_mode'?" in text
    assert "    lora[r=16, compositon_mode='scale']\n               ^^^^^^^^^^^^^^^" in text


def test_config_string_keeps_the_text() -> None:
    text = ConfigString("lora[r=16]")
    assert text == "lora[r=16]" and text.config == LoRAConfig(r=16)
    with pytest.raises(argparse.ArgumentTypeError, match="did you mean"):
        ConfigString(BAD)


def test_click_option() -> None:
    click = pytest.importorskip("click")
    from click.testing import CliRunner

    @click.command()
    @click.option("--adapter", type=click_type(), default="seq_bn")
    def train(adapter: object) -> None:
        click.echo(repr(adapter))

    ok = CliRunner().invoke(train, ["--adapter", "lora[r=16]"])
    assert ok.exit_code == 0 and ok.output == "LoRAConfig('lora[r=16]')\n"
    bad = CliRunner().invoke(train, ["--adapter", BAD])
    assert bad.exit_code == 2
    assert "Invalid value for '--adapter'" in bad.output
    assert "did you mean 'composition_mode'?" in bad.output
    assert "^^^^^^^^^^^^^^^" in bad.output


def test_typer_option() -> None:
    typer = pytest.importorskip("typer")
    from typer.testing import CliRunner

    app = typer.Typer()

    @app.command()
    def train(adapter: AdapterConfig = typer.Option("seq_bn", parser=resolve_argument)) -> None:  # noqa: B008
        print(repr(adapter))

    ok = CliRunner().invoke(app, ["--adapter", "lora[r=16]"])
    assert ok.exit_code == 0, ok.output
    assert "LoRAConfig('lora[r=16]')" in ok.output
    default = CliRunner().invoke(app, [])
    assert "SeqBnConfig('seq_bn')" in default.output
    bad = CliRunner().invoke(app, ["--adapter", BAD])
    assert bad.exit_code == 2
    assert "did you mean 'composition_mode'?" in bad.output
