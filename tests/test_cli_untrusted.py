"""The command line on hostile input: exit 0, 1 or 2 with a message, never a traceback, and no
raw control or bidi character from the input reaches the terminal."""

from __future__ import annotations

import io
import json

import pytest

from adapter_dsl.cli import main

DEEP = '{"architecture": "lora", "r": ' + "[" * 5000 + "]" * 5000 + "}"
# A lone surrogate, as json.loads gives it for "\ud800" and as the OS hands an undecodable
# byte of an argument to Python (surrogateescape).
PROMPT = '{"architecture": "prompt_tuning", "prompt_init": "from_string", "prompt_init_text": "a\\ud800b"}'
RAW = ("\x1b", "\x07", "\x9b", "\u202e", "\u2066")


class Terminal(io.TextIOWrapper):
    """A strict UTF-8 stream, as a real terminal or pipe is: a surrogate cannot be written."""

    def __init__(self) -> None:
        super().__init__(io.BytesIO(), encoding="utf-8", errors="strict")

    def text(self) -> str:
        self.flush()
        return self.buffer.getvalue().decode("utf-8")  # type: ignore[attr-defined]


def run(*argv: str) -> tuple[int, str, str]:
    out, err = Terminal(), Terminal()
    code = main(list(argv), stdout=out, stderr=err)
    return code, out.text(), err.text()


@pytest.mark.parametrize(
    "argv",
    [("validate", DEEP), ("validate", "--json", DEEP), ("convert", DEEP), ("explain", DEEP)],
    ids=["validate", "validate-json", "convert", "explain"],
)
def test_json_nested_5000_deep_is_an_error_not_a_traceback(argv: tuple[str, ...]) -> None:
    code, out, err = run(*argv)
    assert code == 1
    assert "nested too deeply" in out + err


@pytest.mark.parametrize(
    "argv",
    [
        ("validate", "--json", PROMPT),
        ("convert", PROMPT, "--to", "json"),
        ("explain", "--json", PROMPT),
        ("validate", "--json", "prompt_tuning[prompt_init_text='a\udc80b']"),
        ("validate", "--json", "lora[r=16, x='\udc80']"),
    ],
    ids=["validate-json", "convert-json", "explain-json", "string", "bad-string"],
)
def test_lone_surrogates_give_json_that_a_terminal_can_print(argv: tuple[str, ...]) -> None:
    code, out, _ = run(*argv)
    assert code in (0, 1)
    data = json.loads(out)
    assert "\\ud" in out and data


@pytest.mark.parametrize(
    "argv",
    [
        ("convert", PROMPT, "--to", "string"),
        ("explain", PROMPT),
        ("validate", PROMPT),
        ("validate", "\udc80"),
        ("format", "lora[r='\udc80']"),
    ],
)
def test_lone_surrogates_in_text_output_are_escaped(argv: tuple[str, ...]) -> None:
    code, out, err = run(*argv)
    assert code in (0, 1)
    assert "\\ud" in out + err


@pytest.mark.parametrize(
    "spec",
    ['{"architecture": "lora", "r": ' + "9" * 5000 + "}", "lora[r=" + "9" * 5000 + "]"],
    ids=["json", "string"],
)
def test_huge_integers_are_invalid_configs(spec: str) -> None:
    for argv in (
        ("validate", spec),
        ("validate", "--json", spec),
        ("convert", spec),
        ("explain", spec),
    ):
        code, out, err = run(*argv)
        assert code == 1
        assert "number too large" in out + err


@pytest.mark.parametrize(
    "argv",
    [
        ("validate", '{"architecture": "lora", "x\\u001b[31m": 1}'),
        ("validate", "lora[r=1, \x1b]0;title\x07=2]"),
        ("validate", "lora[r=1]\x1b[2J"),
        ("validate", "lora[r='\u202egnp.exe']"),
        ("validate", "seq_bn[non_linearity='re\x9blu']"),
        ("format", "lora[\x1b[2J]"),
        ("explain", "x\u2066y"),
        ("validate", "x\u202eyz.json"),
        ("validate", "--lenient", '{"architecture": "lora", "k\\u001b]8;;x\\u0007": 1}'),
        ("validate", "lora", "--bogus\x1b[31m"),
        ("convert", "lora", "--to", "\x1b[31m"),
    ],
)
def test_control_and_bidi_characters_from_input_are_escaped(
    argv: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(*argv)
    shown = out + err + capsys.readouterr().err  # usage errors go to sys.stderr
    assert code in (0, 1, 2)
    assert not [c for c in RAW if c in shown]
    assert any(e in shown for e in ("\\x1b", "\\u202e", "\\x9b", "\\u2066", "\\x07"))


@pytest.mark.parametrize("spec", ["\u202e", "x\x9b", '{"architecture": "lora", "\u2066": 1}'])
def test_json_output_escapes_what_does_not_print(spec: str) -> None:
    code, out, _ = run("validate", "--json", spec)
    assert code == 1
    assert not [c for c in RAW if c in out]
    assert json.loads(out)["results"][0]["input"] == spec  # exact as data


def test_validate_json_problems_are_printable_too() -> None:
    code, out, _ = run("validate", "--json", '{"architecture": "lora", "x\\u001b[31m": 1}')
    assert code == 1
    (problem,) = json.loads(out)["results"][0]["problems"]
    assert problem["message"] == "unknown key 'x\\x1b[31m' for LoRAConfig"
    assert problem["path"] == ["x\x1b[31m"]  # the location is data: exactly the key
