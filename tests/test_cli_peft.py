"""adapter-dsl convert --to peft|adapters."""

from __future__ import annotations

import io
import json
from pathlib import Path

from adapter_dsl import parse
from adapter_dsl.cli import EXIT_INVALID, EXIT_OK, EXIT_USAGE, main


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def test_to_peft_and_back(tmp_path: Path) -> None:
    code, out, _ = run("convert", "lora[r=16]", "--to", "peft", "--model-type", "llama")
    assert code == EXIT_OK
    data = json.loads(out)
    assert (data["peft_type"], data["r"], data["target_modules"]) == (
        "LORA",
        16,
        ["q_proj", "v_proj"],
    )
    path = tmp_path / "adapter_config.json"
    path.write_text(out, encoding="utf-8")
    code, out, _ = run("convert", str(path), "--to", "adapters")
    assert code == EXIT_OK
    assert json.loads(out) == parse("lora[r=16]").to_dict()
    code, out, _ = run("convert", str(path), "--to", "string", "--model-type", "llama")
    assert (code, out) == (EXIT_OK, "lora[r=16]\n")


def test_model_type_disambiguates_peft_input(tmp_path: Path) -> None:
    path = tmp_path / "adapter_config.json"
    path.write_text(json.dumps({"peft_type": "LORA", "target_modules": ["down_proj"]}))
    code, _, err = run("convert", str(path), "--to", "string")
    assert code == EXIT_INVALID and "model types" in err
    code, out, _ = run("convert", str(path), "--to", "string", "--model-type", "qwen2")
    assert (code, out) == (EXIT_OK, "lora[selfattn_lora=False, output_lora=True]\n")


def test_errors() -> None:
    code, _, err = run("convert", "lora", "--to", "peft")
    assert code == EXIT_USAGE and "--model-type" in err
    code, _, err = run("convert", "seq_bn", "--to", "peft", "--model-type", "bert")
    assert code == EXIT_INVALID and "bottleneck" in err
