"""Load what adapter_dsl saved with ``format="adapters"`` for every family into the reference.

Two steps, from the repository root:

    .venv/bin/python scripts/reference/check_family_roundtrip.py save REQUEST_DIR
    .venv-ref/bin/python scripts/reference/check_family_roundtrip.py check REQUEST_DIR [REPORT]

``save`` (transformers 5, adapter_dsl) loads every reference-saved adapter of
``tests/fixtures/reference/families/`` into its base model and writes it back with
``save_adapter(model, "a", dir, format="adapters")`` under ``REQUEST_DIR/<model>/<case>``.
``check`` (transformers 4.57, adapters 1.3.0) loads each of those into the reference with
``model.load_adapter(dir)``, runs the family's batch and compares the outputs with the ones the
reference itself recorded for the original adapter. The report lists per case the maximum
absolute difference, the keys the reference reported missing or unexpected, and ``ok``
(difference ≤ 1e-4, nothing missing or unexpected).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
FAMILIES = ROOT / "tests" / "fixtures" / "reference" / "families"
ATOL = 1e-4


def _cases() -> list[tuple[str, str]]:
    manifest = json.loads((FAMILIES / "manifest.json").read_text())
    return [
        (name, case)
        for name, entry in manifest["models"].items()
        for case, info in entry["cases"].items()
        if "error" not in info
    ]


def save(request: Path) -> None:
    sys.path.insert(0, str(ROOT))
    import transformers

    from adapter_dsl import ConfigError
    from adapter_dsl.backend import load_adapter, save_adapter
    from tests.backend.families import COUNTS

    for name, case in _cases():
        cls = getattr(transformers, COUNTS["models"][name]["model_class"])
        model = cls.from_pretrained(str(FAMILIES / name / "base"), attn_implementation="eager")
        try:
            load_adapter(model, str(FAMILIES / name / case))
        except ConfigError as exc:
            print(f"{name}/{case}: not loaded here ({exc.problems[0].message})", file=sys.stderr)
            continue
        save_adapter(model, "a", str(request / name / case), format="adapters")


def check(request: Path, report: Path | None) -> int:
    import logging
    import warnings

    import adapters
    import torch
    import transformers
    from safetensors.torch import load_file

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from make_family_fixtures import MODELS, inputs

    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    results: dict[str, Any] = {}
    for name, case in _cases():
        target = request / name / case
        if not target.exists():
            continue
        cls = getattr(transformers, MODELS[name][1])
        net = cls.from_pretrained(str(FAMILIES / name / "base"), attn_implementation="eager")
        adapters.init(net)
        info: dict[str, list[str]] = {}
        loaded = net.load_adapter(str(target), loading_info=info)
        net.set_active_adapters(loaded)
        net.eval()
        with torch.no_grad():
            out = net(**inputs(name))
        expected = load_file(str(FAMILIES / name / case / "outputs.safetensors"))
        diff = max(
            float((getattr(out, k) - v).abs().max())
            for k, v in expected.items()
            if not k.startswith("init_added.")  # base tensors the reference added, not outputs
        )
        missing = sorted(info.get("missing_keys", []))
        unexpected = sorted(info.get("unexpected_keys", []))
        results[f"{name}/{case}"] = {
            "max_abs_diff": diff,
            "missing": missing,
            "unexpected": unexpected,
            "ok": diff <= ATOL and not missing and not unexpected,
        }
    text = json.dumps(results, indent=1) + "\n"
    if report is not None:
        report.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    step, request_dir = sys.argv[1], Path(sys.argv[2])
    if step == "save":
        save(request_dir)
    else:
        check(request_dir, Path(sys.argv[3]) if len(sys.argv) > 3 else None)
