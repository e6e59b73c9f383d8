"""Write the request side of ``tests/fixtures/reference/dialect_corpus.json``.

    PYTHONPATH=. .venv/bin/python scripts/gen_dialect_corpus.py
    .venv-ref/bin/python scripts/reference/check_dialect.py     # adds what the reference parsed

Cases are generated configs (the property tests' strategy, derandomised, so the same on every
run of the same hypothesis version) plus hand-picked hard ones. Each case holds the config in
this package's dialect (``config``) and ``dumps(cfg, dialect="reference")`` (``string``), or the
ConfigError message when the reference's dialect cannot express it (``refused``, together with
``dsl_string`` for the reference script to show that the reference rejects it).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from adapter_dsl import AdapterConfig, ConfigError, dumps, parse  # noqa: E402
from tests.test_properties import configs  # noqa: E402

OUT = ROOT / "tests" / "fixtures" / "reference" / "dialect_corpus.json"
GENERATED = 160

HARD = [
    "mam",
    "unipelt",
    "mam[adapter.reduction_factor=4]",
    "mam[prefix_tuning.prefix_length=12, adapter.scaling='learned']",
    "unipelt[lora.r=4, prefix_tuning.prefix_length=20]",
    "prompt_tuning[prompt_init='from_string', prompt_init_text='a|b']",
    "prompt_tuning[prompt_init='from_string', prompt_init_text='x=1, y=2 | z']",
    "prompt_tuning[prompt_init='from_string', prompt_init_text='quote \\' and \"both\" [x]']",
    "prompt_tuning[prompt_init='from_string', prompt_init_text='line\\nbreak']",
    "seq_bn[reduction_factor={'default': 16, '1': 8}]",
    "lora[attn_matrices=['q', 'k', 'v'], leave_out=[0, 3]]",
    "loreft[subtract_projection=False]",
    "prompt_tuning[random_uniform_scale=0.25]",
    "noreft[subtract_projection=False]|seq_bn",
    "lora[dropout=1e-05, alpha=0.5]",
]


def _generated() -> list[AdapterConfig]:
    found: list[AdapterConfig] = []

    @settings(
        max_examples=GENERATED * 3,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(configs())
    def collect(config: AdapterConfig) -> None:
        found.append(config)

    collect()
    return found


def case(config: AdapterConfig) -> dict[str, Any]:
    entry: dict[str, Any] = {"config": dumps(config)}
    try:
        entry["string"] = dumps(config, dialect="reference")
    except ConfigError as err:
        entry["refused"] = err.problems[0].message
        entry["dsl_string"] = entry["config"]
    return entry


def main() -> None:
    cases: dict[str, dict[str, Any]] = {}
    for config in [parse(s) for s in HARD]:
        cases.setdefault(dumps(config), case(config))
    generated = 0
    for config in _generated():
        key = dumps(config)
        if key not in cases and generated < GENERATED:
            cases[key] = case(config)
            generated += 1
    OUT.write_text(
        json.dumps(
            {
                "description": "Configs written with dumps(cfg, dialect='reference') and what "
                "adapters 1.3.0's AdapterConfig.load returned for each string "
                "(to_dict(), or the error); refused cases carry the ConfigError message and "
                "what the reference does with the adapter_dsl-dialect string.",
                "generator": "scripts/gen_dialect_corpus.py, then "
                "scripts/reference/check_dialect.py",
                "cases": list(cases.values()),
            },
            indent=1,
            ensure_ascii=False,
        )
        + "\n"
    )
    print(f"{len(cases)} cases -> {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
