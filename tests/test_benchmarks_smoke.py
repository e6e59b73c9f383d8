"""The benchmark scripts run: the adapter_dsl worker on a tiny model, and the driver's report
code on made-up samples. No timing is asserted (timings live in benchmarks/out, never in tests)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
WORKERS = ROOT / "benchmarks" / "workers"
TINY = {
    "num_hidden_layers": 2,
    "hidden_size": 32,
    "num_attention_heads": 4,
    "intermediate_size": 37,
}


@pytest.mark.torch
def test_ours_worker_runs_a_forward_and_training_job() -> None:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    job = {
        "kind": "forward_train",
        "method": "lora",
        "merged": True,
        "model": TINY,
        "batch": 2,
        "seq": 8,
        "threads": 1,
        "reps": 1,
    }
    proc = subprocess.run(
        [sys.executable, str(WORKERS / "worker_ours.py"), json.dumps(job)],
        capture_output=True,
        text=True,
        cwd=WORKERS,
        timeout=300,
        check=False,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-2000:]
    result = json.loads(lines[-1][len("RESULT ") :])
    assert result["ok"], result.get("trace")
    # LoRA r=8 on query and value of 2 layers, 32 wide: 2 * 2 * (8*32 + 32*8)
    assert result["trainable_params"] == 2 * 2 * (8 * 32 + 32 * 8)
    for key in ("forward_seconds", "train_seconds", "merged_forward_seconds"):
        assert len(result[key]) == 1


def test_report_from_samples() -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import run
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    t = run.Table(3)
    for i, (ours, ref) in enumerate([(1.0, 2.0), (1.2, 2.0), (3.0, 2.0)]):
        t.put("lora", "ours", i, ours)
        t.put("lora", "reference", i, ref)
    t.put("lora", "peft", 0, None)  # a failed job
    row = run.make_row(
        "section",
        "lora",
        "lora",
        "s",
        1.0,
        t,
        [("ours/reference", "ours", "reference"), ("ours/peft", "ours", "peft")],
        {"ours/reference": 1.0},
        "≤ 1.0×",
    )
    assert row["ratios"]["ours/reference"]["median"] == pytest.approx(0.6)
    assert row["ratios"]["ours/reference"]["max"] == pytest.approx(1.5)
    assert row["ratios"]["ours/peft"] is None
    assert row["status"] == "met"
    md = run.render([row], {})
    assert "| lora |" in md and "0.60×" in md
