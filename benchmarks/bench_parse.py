"""Parse + validate throughput and import cost: adapter_dsl against the reference library.

    python benchmarks/bench_parse.py [--strings 3000] [--rounds 5] [--out benchmarks/out]

Each round runs both contenders in fresh processes on the same unique strings, alternating which
goes first; the figure is the median over rounds of (ours / reference), with the spread. The
reference runs in .venv-ref (adapters 1.3.0), created by scripts/reference/README.md's commands.
``benchmarks/run.py`` (``make bench``) calls :func:`measure_parse` and :func:`measure_imports`.
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

OURS_SCRIPT = ROOT / "benchmarks" / "time_parse_ours.py"
REF_PY = ROOT / ".venv-ref" / "bin" / "python"
REF_SCRIPT = ROOT / "scripts" / "reference" / "time_parse.py"

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


def _run_json(cmd: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def _import_time(
    python: str, code: str, env: dict[str, str] | None = None
) -> tuple[float, list[str]]:
    out = subprocess.run(
        [python, "-c", code], check=True, capture_output=True, text=True, cwd=ROOT, env=env
    )
    seconds, heavy = out.stdout.strip().splitlines()[-1].split(" ", 1)
    return float(seconds), json.loads(heavy.replace("'", '"'))


def spread(values: list[float]) -> str:
    return f"{min(values):.3g}–{max(values):.3g}"


def measure_parse(
    n_strings: int,
    rounds: int,
    *,
    python: str | None = None,
    ref_python: Path | None = REF_PY,
    env: dict[str, str] | None = None,
    log: Any = None,
) -> dict[str, Any]:
    """Seconds per pass over ``n_strings`` unique strings, one fresh process per contender and
    round (alternating which goes first): ``{"n", "ours", "ours_cached", "reference"}``; the
    lists are per round (``reference`` is empty without .venv-ref)."""
    python = python or sys.executable
    have_ref = ref_python is not None and ref_python.exists()
    strings = unique_strings(n_strings)
    ours: list[float] = []
    cached: list[float] = []
    ref: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "strings.json"
        path.write_text(json.dumps(strings))
        contenders = [("ours", [python, str(OURS_SCRIPT)])]
        if have_ref:
            contenders.append(("ref", [str(ref_python), str(REF_SCRIPT)]))
        for i in range(rounds):
            for name, cmd in contenders[i % 2 :] + contenders[: i % 2]:
                result = _run_json([*cmd, str(path), "1"], env)
                if name == "ours":
                    ours.append(result["per_repeat_seconds"][0])
                    cached.append(result["cached_per_repeat_seconds"][0])
                else:
                    ref.append(result["per_repeat_seconds"][0])
            if log:
                log(f"parse round {i + 1}/{rounds}")
    return {"n": len(strings), "ours": ours, "ours_cached": cached, "reference": ref}


def measure_imports(
    rounds: int,
    *,
    python: str | None = None,
    ref_python: Path | None = REF_PY,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Cold-process import seconds per round: ``{"ours", "ours_first_parse", "reference",
    "heavy_modules"}`` (heavy: torch/transformers/numpy found in sys.modules after the import)."""
    python = python or sys.executable
    have_ref = ref_python is not None and ref_python.exists()
    imports: list[float] = []
    first: list[float] = []
    ref: list[float] = []
    heavy: list[str] = []
    for i in range(rounds):
        steps = ["ours", "first", "ref"] if i % 2 == 0 else ["ref", "first", "ours"]
        for step in steps:
            if step == "ours":
                t, heavy = _import_time(python, IMPORT_OURS, env)
                imports.append(t)
            elif step == "first":
                first.append(_import_time(python, IMPORT_FIRST_PARSE, env)[0])
            elif have_ref:
                ref.append(_import_time(str(ref_python), IMPORT_REF, env)[0])
    return {"ours": imports, "ours_first_parse": first, "reference": ref, "heavy_modules": heavy}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--strings", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out")
    args = ap.parse_args()
    parse = measure_parse(args.strings, args.rounds)
    ours, cached, ref, n = parse["ours"], parse["ours_cached"], parse["reference"], parse["n"]
    rows: list[dict[str, Any]] = []
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
            "ratio": statistics.median(c / r for c, r in zip(cached, ref, strict=True))
            if ref
            else None,
        }
    )
    imp = measure_imports(args.rounds)
    imports, first, ref_imports = imp["ours"], imp["ours_first_parse"], imp["reference"]
    rows.append(
        {
            "row": "import adapter_dsl (cold process)",
            "ours_ms": statistics.median(imports) * 1e3,
            "heavy_modules_imported": imp["heavy_modules"],
            "reference_ms": statistics.median(ref_imports) * 1e3 if ref_imports else None,
            "ratio": statistics.median(imports) / statistics.median(ref_imports)
            if ref_imports
            else None,
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
            ref_txt = (
                f"{r['reference_us_per_string']:.1f} µs/string"
                if r.get("reference_us_per_string")
                else "—"
            )
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
