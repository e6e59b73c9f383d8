"""Time the reference library's config parser on a list of config strings.

Run inside the reference virtual environment (see README.md here):

    .venv-ref/bin/python scripts/reference/time_parse.py STRINGS.json [REPEATS]

STRINGS.json holds a JSON list of config strings. Every string is passed to
``adapters.AdapterConfig.load``; the whole list is timed REPEATS times (default 5). Prints one JSON
object to stdout: ``{"n": <strings>, "per_repeat_seconds": [...], "errors": <strings that raised>}``.
Strings that raise are counted (once, not per repeat) and still timed.
"""

from __future__ import annotations

import json
import logging
import sys
import time
import warnings


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8") as fh:
        strings = json.load(fh)
    if not isinstance(strings, list) or not all(isinstance(s, str) for s in strings):
        print("expected a JSON list of strings", file=sys.stderr)
        return 2
    repeats = int(argv[2]) if len(argv) == 3 else 5

    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    from adapters import AdapterConfig  # imported here so the import is not timed

    errors = 0
    for s in strings:  # untimed pass: count errors and warm up caches
        try:
            AdapterConfig.load(s)
        except Exception:
            errors += 1

    per_repeat: list[float] = []
    load = AdapterConfig.load
    for _ in range(repeats):
        t0 = time.perf_counter()
        for s in strings:
            try:  # noqa: SIM105 (cheaper than contextlib.suppress in a timed loop)
                load(s)
            except Exception:
                pass
        per_repeat.append(time.perf_counter() - t0)

    print(json.dumps({"n": len(strings), "per_repeat_seconds": per_repeat, "errors": errors}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
