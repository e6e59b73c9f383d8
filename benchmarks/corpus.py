"""Deterministic corpora of config strings for the benchmarks (valid for both parsers)."""

from __future__ import annotations

import itertools
import random

__all__ = ["unique_strings"]


def _singles() -> list[str]:
    out: list[str] = []
    for r, alpha in itertools.product((1, 2, 4, 8, 16, 32, 64), (1, 2, 8, 16, 32)):
        out.append(f"lora[r={r}, alpha={alpha}]")
        out.append(f"lora[r={r}, alpha={alpha}, attn_matrices=['q', 'k', 'v'], dropout=0.1]")
        out.append(f"dora[r={r}, alpha={alpha}]")
    for rf in (2, 4, 8, 16, 32, 64):
        for lo in ([], [0], [0, 1], [11]):
            out.append(f"seq_bn[reduction_factor={rf}, leave_out={lo}]")
            out.append(
                f"double_seq_bn[reduction_factor={rf}, leave_out={lo}, non_linearity='gelu']"
            )
            out.append(f"par_bn[reduction_factor={rf}, leave_out={lo}, scaling=2.0]")
        out.append(f"seq_bn[reduction_factor={{'default': {rf}, '1': 8, '3': 4}}]")
    for length, size in itertools.product((5, 10, 20, 30, 50), (64, 128, 256, 512, 800)):
        out.append(f"prefix_tuning[prefix_length={length}, bottleneck_size={size}]")
        out.append(f"prefix_tuning[prefix_length={length}, bottleneck_size={size}]|par_bn")
    for length in range(1, 40):
        out.append(f"prompt_tuning[prompt_length={length}, combine='prefix_after_bos']")
        out.append(f"loreft[r={1 + length % 8}, prefix_positions={length % 7 + 1}]")
        out.append(f"ia3[alpha={length}, leave_out=[{length % 12}]]")
    for r in (1, 2, 4, 8, 16):
        for rf in (4, 8, 16, 32):
            out.append(f"lora[r={r}]|seq_bn[reduction_factor={rf}]")
    return out


def unique_strings(n: int, seed: int = 0) -> list[str]:
    """``n`` distinct config strings, drawn from a fixed pool plus seeded random variants."""
    pool = _singles()
    rng = random.Random(seed)
    seen = set(pool)
    while len(pool) < n:
        r = rng.randint(1, 512)
        candidate = rng.choice(
            [
                f"lora[r={r}, alpha={rng.randint(1, 64)}, dropout={rng.randint(0, 9) / 10}]",
                f"seq_bn[reduction_factor={r}, leave_out=[{rng.randint(0, 23)}]]",
                f"prefix_tuning[prefix_length={r}, bottleneck_size={rng.randint(1, 1024)}]",
                f"par_bn[reduction_factor={r}]|prefix_tuning[prefix_length={rng.randint(1, 64)}]",
            ]
        )
        if candidate not in seen:
            seen.add(candidate)
            pool.append(candidate)
    rng.shuffle(pool)
    return pool[:n]
