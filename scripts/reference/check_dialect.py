"""Parse the strings of ``tests/fixtures/reference/dialect_corpus.json`` with the reference.

Run inside the reference virtual environment (see README.md here), after
``scripts/gen_dialect_corpus.py`` wrote the cases:

    .venv-ref/bin/python scripts/reference/check_dialect.py

For every case it records, in place, what ``AdapterConfig.load(string).to_dict()`` returned
(``reference``) or raised (``{"error": "<type>: <message>"}``), and the values of the settings
that the reference keeps as class attributes outside ``to_dict()`` (``attributes``, one object
per member); for refused cases it records what the reference does with the adapter_dsl-dialect
string (``reference_of_dsl``). Deterministic.
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path
from typing import Any

import adapters
import transformers
from adapters import AdapterConfig

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests" / "fixtures" / "reference" / "dialect_corpus.json"
# Settings of the reference held as class attributes: not in to_dict(), not settable by replace.
CLASS_ATTRIBUTES = ("subtract_projection", "random_uniform_scale")


def parsed(text: str) -> tuple[Any, list[dict[str, Any]]]:
    try:
        config = AdapterConfig.load(text)
    except Exception as exc:  # the reference raises many kinds
        return {"error": f"{type(exc).__name__}: {str(exc)[:200]}"}, []
    members = getattr(config, "configs", None) or [config]
    attributes = [{a: getattr(m, a) for a in CLASS_ATTRIBUTES if hasattr(m, a)} for m in members]
    return config.to_dict(), attributes


def main() -> None:
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    data = json.loads(CORPUS.read_text())
    for case in data["cases"]:
        if "string" in case:
            case["reference"], case["attributes"] = parsed(case["string"])
        else:
            case["reference_of_dsl"] = parsed(case["dsl_string"])[0]
    data["versions"] = {"adapters": adapters.__version__, "transformers": transformers.__version__}
    CORPUS.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    errors = sum("error" in c.get("reference", {}) for c in data["cases"])
    print(f"{len(data['cases'])} cases, {errors} strings the reference rejected")


if __name__ == "__main__":
    main()
