"""Load adapters that adapter_dsl saved in the reference format into the reference library.

Run inside the reference virtual environment (see README.md here):

    .venv-ref/bin/python scripts/reference/check_roundtrip.py REQUEST_DIR [REPORT.json]

``REQUEST_DIR/request.json`` lists cases ``{"model", "config", "dir", "attn_implementation"}``;
each ``REQUEST_DIR/<dir>/`` holds what ``save_adapter(model, name, dir, format="adapters")``
wrote plus ``outputs.safetensors`` (``last_hidden_state`` computed by adapter_dsl). The base
models are the committed fixtures in ``tests/fixtures/reference/checkpoints/<model>/base``.

For every case the script loads the base model with transformers 4.57, ``adapters.init``,
``model.load_adapter(dir)`` (the reference's default: ``pytorch_adapter.bin``), activates it,
runs the recorded batch and compares with adapter_dsl's outputs. It prints (and writes) a JSON
report: per case the maximum absolute difference, the keys the reference reported missing or
unexpected, and ``ok`` (difference ≤ 1e-4, nothing missing or unexpected).
"""

from __future__ import annotations

import json
import logging
import sys
import warnings
from pathlib import Path
from typing import Any

import adapters
import torch
import transformers
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[2]
BASES = ROOT / "tests" / "fixtures" / "reference" / "checkpoints"
ATOL = 1e-4


def check(request_dir: Path, case: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
    model = case["model"]
    net = transformers.AutoModel.from_pretrained(
        str(BASES / model / "base"), attn_implementation=case.get("attn_implementation", "sdpa")
    ).eval()
    adapters.init(net)
    info: dict[str, list[str]] = {}
    name = net.load_adapter(str(request_dir / case["dir"]), loading_info=info)
    net.set_active_adapters(name)
    net.eval()  # modules added by init/load_adapter start in training mode (ReFT dropout)
    batch = {
        "input_ids": torch.tensor(inputs["input_ids"]),
        "attention_mask": torch.tensor(inputs["attention_mask"]),
    }
    if model == "bart":
        batch["decoder_input_ids"] = torch.tensor(inputs["decoder_input_ids"])
    with torch.no_grad():
        out = net(**batch).last_hidden_state
    expected = load_file(str(request_dir / case["dir"] / "outputs.safetensors"))[
        "last_hidden_state"
    ]
    diff = float((out - expected).abs().max()) if out.shape == expected.shape else float("inf")
    missing = sorted(info.get("missing_keys", []))
    unexpected = sorted(info.get("unexpected_keys", []))
    return {
        "model": model,
        "config": case["config"],
        "attn_implementation": case.get("attn_implementation", "sdpa"),
        "max_abs_diff": diff,
        "missing_keys": missing,
        "unexpected_keys": unexpected,
        "ok": diff <= ATOL and not missing and not unexpected,
    }


def main(argv: list[str]) -> int:
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    transformers.logging.set_verbosity_error()
    request_dir = Path(argv[1])
    request = json.loads((request_dir / "request.json").read_text())
    results = []
    for case in request["cases"]:
        try:
            results.append(check(request_dir, case, request["inputs"]))
        except Exception as exc:
            results.append({**case, "ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]})
    report = {
        "checker": "scripts/reference/check_roundtrip.py",
        "versions": {
            "adapters": adapters.__version__,
            "transformers": transformers.__version__,
            "torch": torch.__version__.split("+")[0],
        },
        "atol": ATOL,
        "all_ok": all(r["ok"] for r in results),
        "results": results,
    }
    text = json.dumps(report, indent=1) + "\n"
    if len(argv) > 2:
        Path(argv[2]).write_text(text, encoding="utf-8")
    sys.stdout.write(text)
    return 0 if report["all_ok"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
