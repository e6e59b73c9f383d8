"""Time adapter_dsl's parse + validate on a list of config strings (one process per run).

    python benchmarks/time_parse_ours.py STRINGS.json [REPEATS]

Prints ``{"n", "per_repeat_seconds", "cached_per_repeat_seconds", "errors"}``. Each timed repeat
clears the parse cache first, so every string is parsed and validated; the cached figure times
the same strings again with the cache warm.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def main(argv: list[str]) -> int:
    strings = json.loads(Path(argv[1]).read_text(encoding="utf-8"))
    repeats = int(argv[2]) if len(argv) > 2 else 5

    import adapter_dsl
    from adapter_dsl.loading import _parse_cached

    errors = 0
    for s in strings:  # warm-up: imports, lazily built parser and schemas
        try:
            adapter_dsl.load(s)
        except adapter_dsl.ConfigError:
            errors += 1
    load = adapter_dsl.load
    error = adapter_dsl.ConfigError
    per_repeat, cached = [], []
    for _ in range(repeats):
        _parse_cached.cache_clear()
        t0 = time.perf_counter()
        for s in strings:
            try:  # noqa: SIM105 (cheaper than contextlib.suppress in a timed loop)
                load(s)
            except error:
                pass
        per_repeat.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        for s in strings:
            try:  # noqa: SIM105
                load(s)
            except error:
                pass
        cached.append(time.perf_counter() - t0)
    print(
        json.dumps(
            {
                "n": len(strings),
                "per_repeat_seconds": per_repeat,
                "cached_per_repeat_seconds": cached,
                "errors": errors,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
