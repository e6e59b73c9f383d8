"""Measure the backend on a BERT-base-shaped model: add_adapter time and saved file size.

Builds a randomly initialised 12-layer, 768-wide ``BertModel`` from ``BertConfig`` (nothing is
downloaded), then for each method reports the median ``add_adapter`` time over 5 runs (after one
warm-up run; the adapter is deleted again between runs), the adapter's trainable parameters and
the size of its saved weights file compared with 4 bytes per parameter (float32). A method whose
backend handler is missing is skipped with a note.

    python scripts/measure_backend.py [--repeats 5] [--threads N]

Prints a markdown table.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

METHODS = ("seq_bn", "lora", "prefix_tuning", "mam", "unipelt")


def _missing_handler(config: object) -> str | None:
    """The reason the backend cannot build ``config`` at all, or ``None``."""
    from adapter_dsl.backend.methods.base import get_handler, members_of
    from adapter_dsl.errors import ConfigError

    for member in members_of(config):
        try:
            get_handler(member)
        except ConfigError as exc:
            return exc.problems[0].message
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("methods", nargs="*", default=list(METHODS))
    args = parser.parse_args(argv)

    import torch
    import transformers

    import adapter_dsl
    from adapter_dsl.backend import adapter_summary, add_adapter, delete_adapter, save_adapter
    from adapter_dsl.backend.serialization import WEIGHTS_FILE

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = transformers.BertModel(transformers.BertConfig()).eval()  # 12 layers, h=768
    base_params = sum(p.numel() for p in model.parameters())

    rows: list[str] = []
    notes: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        for method in args.methods:
            config = adapter_dsl.load(method)
            reason = _missing_handler(config)
            if reason is not None:
                notes.append(f"- `{method}` skipped: {reason}")
                continue
            times = []
            for i in range(args.repeats + 1):  # run 0 is the warm-up
                start = time.perf_counter()
                add_adapter(model, "m", config)
                elapsed = time.perf_counter() - start
                if i > 0:
                    times.append(elapsed)
                if i < args.repeats:
                    delete_adapter(model, "m")
            (summary,) = [r for r in adapter_summary(model) if r["name"] == "m"]
            params = summary["parameters"]
            out = save_adapter(model, "m", Path(tmp) / method)
            size = (out / WEIGHTS_FILE).stat().st_size
            delete_adapter(model, "m")
            rows.append(
                f"| `{method}` | {1000 * statistics.median(times):.1f} "
                f"| {1000 * min(times):.1f}–{1000 * max(times):.1f} "
                f"| {params:,} | {summary['share_percent']:.3f} | {size:,} "
                f"| {size / (params * 4):.4f} |"
            )

    print(
        f"BertModel(BertConfig()): 12 layers, hidden 768, {base_params:,} parameters; "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; "
        f"add_adapter median of {args.repeats} after a warm-up.\n"
    )
    print(
        "| method | add_adapter median (ms) | range (ms) | trainable params | % of model "
        "| file bytes | bytes / (params × 4) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    print("\n".join(rows))
    if notes:
        print()
        print("\n".join(notes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
