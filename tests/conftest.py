"""Shared test helpers: paths to the committed fixtures."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@cache
def reference_corpus() -> list[dict[str, Any]]:
    """Cases recorded from adapters 1.3.0 by scripts/reference/make_fixtures.py."""
    data = json.loads((FIXTURES / "reference" / "config_corpus.json").read_text())
    return list(data["cases"])
