"""Parse + validate throughput and import cost: adapter_dsl against the reference library.

    python benchmarks/bench_parse.py [--strings 3000] [--rounds 5] [--out benchmarks/out]

Each round runs both contenders in fresh processes on the same unique strings, alternating which
goes first; the figure is the median over rounds of (ours / reference), with the spread. The
reference runs in .venv-ref (adapters 1.3.0), created by scripts/reference/README.md's commands.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpus import unique_strings  # noqa: E402

OURS = [sys.executable, str(ROOT / "benchmarks" / "time_parse_ours.py")]
REF_PY = ROOT / ".venv-ref" / "bin" / "python"
REF = [str(REF_PY), str(ROOT / "scripts" / "reference" / "time_parse.py")]

IMPORT_OURS = (
    "import sys, time; t = time.perf_counter(); import adapter_dsl; "
    "print(time.perf_counter() - t, [m for m in ('torch', 'transformers', 'numpy') if m in sys.modules])"
)
IMPORT_FIRST_PARSE = (
    "import time; t = time.perf_counter(); import adapter_dsl; adapter_dsl.parse('lora[r=8]'); "
    "print(time.perf_counter() - t, [])"
)
IMPORT_REF = (
    "import sys, time; t = time.perf_counter(); import adapters; "
    "print(time.perf_counter() - t, [m for m in ('torch', 'transformers', 'numpy') if m in sys.modules])"
)


def _run_json(cmd: list[str]) -> dict[str, Any]:
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT).stdout
    return json.loads(out.strip().splitlines()[-1])


def _import_time(python: str, code: str) -> tuple[float, list[str]]:
    out = subprocess.run([python, "-c", code], check=True, capture_output=True, text=True, cwd=ROOT)
    seconds, heavy = out.stdout.strip().splitlines()[-1].split(" ", 1)
    return float(seconds), json.loads(heavy.replace("'", '"'))


def spread(values: list[float]) -> str:
    return f"{min(values):.3g}–{max(values):.3g}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--strings", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out")
    args = ap.parse_args()
    have_ref = REF_PY.exists()
    strings = unique_strings(args.strings)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "strings.json"
        path.write_text(json.dumps(strings))
        ours, cached, ref = [], [], []
        for i in range(args.rounds):
            order = [("ours", OURS), ("ref", REF)] if i % 2 == 0 else [("ref", REF), ("ours", OURS)]
            for name, cmd in order:
                if name == "ref" and not have_ref:
                    continue
                result = _run_json([*cmd, str(path), "1"])
                if name == "ours":
                    ours.append(result["per_repeat_seconds"][0])
                    cached.append(result["cached_per_repeat_seconds"][0])
                else:
                    ref.append(result["per_repeat_seconds"][0])
    n = len(strings)
    row: dict[str, Any] = {
        "row": f"parse + validate {n} unique strings",
        "ours_us_per_string": statistics.median(ours) / n * 1e6,
        "ours_spread_s": spread(ours),
        "goal": "<= 0.5x reference",
    }
    if ref:
        ratios = [o / r for o, r in zip(ours, ref, strict=True)]
        row.update(
            reference_us_per_string=statistics.median(ref) / n * 1e6,
            reference_spread_s=spread(ref),
            ratio=statistics.median(ratios),
            ratio_spread=spread(ratios),
        )
    rows.append(row)
    rows.append(
        {
            "row": f"cache hit: the same {n} strings again",
            "ours_us_per_string": statistics.median(cached) / n * 1e6,
            "ratio": statistics.median(c / r for c, r in zip(cached, ref, strict=True)) if ref else None,
        }
    )
    imports, first, ref_imports, heavy = [], [], [], []
    for _ in range(args.rounds):
        t, heavy = _import_time(sys.executable, IMPORT_OURS)
        imports.append(t)
        first.append(_import_time(sys.executable, IMPORT_FIRST_PARSE)[0])
        if have_ref:
            ref_imports.append(_import_time(str(REF_PY), IMPORT_REF)[0])
    rows.append(
        {
            "row": "import adapter_dsl (cold process)",
            "ours_ms": statistics.median(imports) * 1e3,
            "heavy_modules_imported": heavy,
            "reference_ms": statistics.median(ref_imports) * 1e3 if ref_imports else None,
            "ratio": statistics.median(imports) / statistics.median(ref_imports) if ref_imports else None,
            "goal": "<= 100 ms, no torch/transformers/numpy",
        }
    )
    rows.append(
        {
            "row": "import adapter_dsl + first parse (cold process)",
            "ours_ms": statistics.median(first) * 1e3,
        }
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "parse.json").write_text(json.dumps(rows, indent=2))
    lines = ["| row | ours | reference | ratio (median, spread) |", "|---|---|---|---|"]
    for r in rows:
        if "ours_us_per_string" in r:
            ours_txt = f"{r['ours_us_per_string']:.1f} µs/string"
            ref_txt = f"{r['reference_us_per_string']:.1f} µs/string" if r.get("reference_us_per_string") else "—"
        else:
            ours_txt = f"{r['ours_ms']:.1f} ms"
            ref_txt = f"{r['reference_ms']:.1f} ms" if r.get("reference_ms") else "—"
        ratio = f"{r['ratio']:.2f}×" if r.get("ratio") is not None else "—"
        if r.get("ratio_spread"):
            ratio += f" ({r['ratio_spread']})"
        lines.append(f"| {r['row']} | {ours_txt} | {ref_txt} | {ratio} |")
    table = "\n".join(lines)
    (args.out / "parse.md").write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
