"""Serving several fine-tunes of one base model in one batch: BatchSplit and Parallel.

Run from the repository root (``.venv``; the Parallel row also needs ``.venv-ref``)::

    .venv/bin/python benchmarks/bench_composition.py            # ~1-2 min on one core
    .venv/bin/python benchmarks/bench_composition.py --quick    # smoke run

Rows (forward latency, ``torch.no_grad()``, eval mode, min of ``--reps`` passes per round,
contenders alternating within each round, ratios of the medians over rounds, all measured in
the same run):

* ``BatchSplit``: a batch of ``--batch`` sequences spread evenly over 4 LoRA adapters
  (``BatchSplit(a0, a1, a2, a3, batch_sizes=[...])``) against PEFT's mixed-adapter batch
  (``adapter_names=`` in ``forward``) on the same weights, and against one adapter on the whole
  batch (same FLOPs: the ideal ratio is 1.0). Outputs are checked equal to PEFT's first.
* ``Parallel``: ``Parallel(a0, a1, a2, a3)`` over 4 bottleneck adapters (``seq_bn``; the
  reference's Parallel over LoRA is wrong on BERT: it replicates the query's input but not the
  key's) against the reference library's (adapters 1.3.0 on transformers 4.57, run in ``.venv-ref``), each also against its
  own bare model (so the transformers version can be told apart from the composition's cost).

The model is ``BertModel`` built from a config object (``--hidden``, ``--layers``; no download)
with random weights; LoRA ``r=8`` on query and value, perturbed so that every delta is non-zero.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
REF_PYTHON = ROOT / ".venv-ref" / "bin" / "python"
NAMES = ["a0", "a1", "a2", "a3"]
PARALLEL_CONFIG = "seq_bn"


def _config(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "hidden_size": args.hidden,
        "num_hidden_layers": args.layers,
        "num_attention_heads": max(1, args.hidden // 64),
        "intermediate_size": 4 * args.hidden,
        "vocab_size": 1000,
    }


def _best(fn: Any, reps: int) -> float:
    best = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def _perturb(model: Any, marker: str, seed: int) -> None:
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for key, p in sorted(model.named_parameters()):
            if marker in key:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.05)


def batch_split(args: argparse.Namespace) -> dict[str, Any]:
    import torch
    import transformers
    from peft import LoraConfig, get_peft_model

    from adapter_dsl.backend import add_adapter, set_active

    torch.manual_seed(0)
    bare = transformers.BertModel(transformers.BertConfig(**_config(args))).eval()
    ours = copy.deepcopy(bare)
    for i, name in enumerate(NAMES):
        add_adapter(ours, name, "lora[r=8]")
        _perturb(ours, f".loras.{name}.", i)
    peft_model = get_peft_model(
        copy.deepcopy(bare),
        LoraConfig(r=8, lora_alpha=8, target_modules=["query", "value"]),
        adapter_name=NAMES[0],
    )
    for name in NAMES[1:]:
        peft_model.add_adapter(
            name, LoraConfig(r=8, lora_alpha=8, target_modules=["query", "value"])
        )
    ours_sd = ours.state_dict()
    with torch.no_grad():
        for key, p in peft_model.named_parameters():
            if ".lora_" not in key:
                continue
            # base_model.model.<path>.lora_A.<name>.weight → <path>.loras.<name>.lora_A
            path, kind, name, _ = key.removeprefix("base_model.model.").rsplit(".", 3)
            p.copy_(ours_sd[f"{path}.loras.{name}.{kind}"])
    peft_model.eval()
    per = args.batch // len(NAMES)
    ids = torch.randint(5, 1000, (args.batch, args.seq), generator=torch.Generator().manual_seed(1))
    routing = [name for name in NAMES for _ in range(per)]
    sizes = [per] * len(NAMES)
    split = f"BatchSplit({', '.join(NAMES)}, batch_sizes={sizes})"

    def run_split() -> Any:
        return ours(input_ids=ids).last_hidden_state

    def run_peft() -> Any:
        return peft_model(input_ids=ids, adapter_names=routing).last_hidden_state

    def run_single() -> Any:
        return ours(input_ids=ids).last_hidden_state

    with torch.no_grad():
        set_active(ours, split)
        diff = float((run_split() - run_peft()).abs().max())
        effect = float((run_split() - bare(input_ids=ids).last_hidden_state).abs().max())
        samples: dict[str, list[float]] = {"batch_split": [], "peft_mixed": [], "single": []}
        for _ in range(args.rounds):
            set_active(ours, split)
            samples["batch_split"].append(_best(run_split, args.reps))
            samples["peft_mixed"].append(_best(run_peft, args.reps))
            set_active(ours, NAMES[0])
            samples["single"].append(_best(run_single, args.reps))
    med = {k: statistics.median(v) for k, v in samples.items()}
    return {
        "median_seconds": med,
        "samples": samples,
        "max_abs_diff_vs_peft": diff,
        "max_abs_adapter_effect": effect,
        "batch_split_over_peft": med["batch_split"] / med["peft_mixed"],
        "batch_split_over_single": med["batch_split"] / med["single"],
    }


def parallel_ours(args: argparse.Namespace) -> dict[str, list[float]]:
    import torch
    import transformers

    from adapter_dsl.backend import add_adapter, set_active

    torch.manual_seed(0)
    bare = transformers.BertModel(transformers.BertConfig(**_config(args))).eval()
    model = copy.deepcopy(bare)
    for i, name in enumerate(NAMES):
        add_adapter(model, name, PARALLEL_CONFIG)
        _perturb(model, f".adapters.{name}.", i)
    set_active(model, f"Parallel({', '.join(NAMES)})")
    ids = torch.randint(
        5, 1000, (args.pbatch, args.seq), generator=torch.Generator().manual_seed(1)
    )
    samples: dict[str, list[float]] = {"parallel": [], "bare": []}
    with torch.no_grad():
        for _ in range(args.rounds):
            samples["parallel"].append(_best(lambda: model(input_ids=ids), args.reps))
            samples["bare"].append(_best(lambda: bare(input_ids=ids), args.reps))
    return samples


REFERENCE_WORKER = r"""
import copy, json, sys, time, torch, transformers, adapters
from adapters.composition import Parallel
args = json.loads(sys.argv[1])
torch.set_num_threads(args["threads"])
torch.manual_seed(0)
bare = transformers.BertModel(transformers.BertConfig(**args["config"])).eval()
model = copy.deepcopy(bare)
adapters.init(model)
names = ["a0", "a1", "a2", "a3"]
for i, name in enumerate(names):
    model.add_adapter(name, config=args["adapter"])
    gen = torch.Generator().manual_seed(i)
    with torch.no_grad():
        for key, p in sorted(model.named_parameters()):
            if f".adapters.{name}." in key:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.05)
model.set_active_adapters(Parallel(*names))
model.eval()
ids = torch.randint(5, 1000, (args["batch"], args["seq"]), generator=torch.Generator().manual_seed(1))
def best(fn):
    out = float("inf")
    for _ in range(args["reps"]):
        t = time.perf_counter(); fn(); out = min(out, time.perf_counter() - t)
    return out
samples = {"parallel": [], "bare": []}
with torch.no_grad():
    for _ in range(args["rounds"]):
        samples["parallel"].append(best(lambda: model(input_ids=ids)))
        samples["bare"].append(best(lambda: bare(input_ids=ids)))
print("RESULT " + json.dumps(samples))
"""


def parallel_reference(args: argparse.Namespace) -> dict[str, list[float]] | None:
    if not REF_PYTHON.exists():
        return None
    job = {
        "config": _config(args),
        "batch": args.pbatch,
        "seq": args.seq,
        "reps": args.reps,
        "rounds": args.rounds,
        "threads": args.threads,
        "adapter": PARALLEL_CONFIG,
    }
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "PYTHONPATH": ""}
    proc = subprocess.run(
        [str(REF_PYTHON), "-c", REFERENCE_WORKER, json.dumps(job)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if not lines:
        raise RuntimeError(proc.stderr[-2000:])
    result: dict[str, list[float]] = json.loads(lines[-1][len("RESULT ") :])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--seq", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16, help="BatchSplit batch (4 adapters)")
    parser.add_argument("--pbatch", type=int, default=4, help="Parallel input batch (×4 rows)")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="tiny model, one round")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args()
    if args.quick:
        args.hidden, args.layers, args.seq, args.reps, args.rounds = 64, 2, 16, 2, 1
    import torch

    torch.set_num_threads(args.threads)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    result: dict[str, Any] = {"model": _config(args), "seq": args.seq, "threads": args.threads}
    result["batch_split"] = bs = batch_split(args)
    print(
        f"BatchSplit of {args.batch} rows over 4 LoRA adapters: "
        f"{bs['median_seconds']['batch_split'] * 1e3:.2f} ms; "
        f"/PEFT mixed batch {bs['batch_split_over_peft']:.2f}x; "
        f"/one adapter on the whole batch {bs['batch_split_over_single']:.2f}x "
        f"(max |diff| vs PEFT {bs['max_abs_diff_vs_peft']:.1e}, "
        f"adapters change the output by up to {bs['max_abs_adapter_effect']:.2f})"
    )
    ours = parallel_ours(args)
    ref = parallel_reference(args)
    med = {k: statistics.median(v) for k, v in ours.items()}
    result["parallel"] = {"ours": ours, "reference": ref}
    line = (
        f"Parallel(a0..a3) of {PARALLEL_CONFIG} on {args.pbatch} rows: ours {med['parallel'] * 1e3:.2f} ms "
        f"({med['parallel'] / med['bare']:.2f}x its bare model)"
    )
    if ref is not None:
        rmed = {k: statistics.median(v) for k, v in ref.items()}
        line += (
            f"; reference {rmed['parallel'] * 1e3:.2f} ms ({rmed['parallel'] / rmed['bare']:.2f}x "
            f"its bare model); ours/reference {med['parallel'] / rmed['parallel']:.2f}x"
        )
        result["parallel"]["ours_over_reference"] = med["parallel"] / rmed["parallel"]
    else:
        line += "; reference skipped (no .venv-ref)"
    print(line)
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
