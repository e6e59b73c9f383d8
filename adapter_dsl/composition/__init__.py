"""Adapter setups: how several adapters on one model combine (the reference's composition blocks).

``Stack``, ``Fuse``, ``Split``, ``BatchSplit``, ``Parallel``, ``Average`` and ``MultiTask`` are
immutable, hashable, equal-by-value blocks, validated when built; ``parse_setup`` reads the
class-call notation (``"Stack(a, Fuse(b, c))"``), ``load_setup`` every input form, and
``dumps_setup`` prints the canonical string. No torch here: the backend applies setups.
"""

from __future__ import annotations

from .blocks import (
    ALLOWED_CHILDREN,
    BLOCKS,
    AdapterCompositionBlock,
    Average,
    BatchSplit,
    Fuse,
    MultiTask,
    Parallel,
    Split,
    Stack,
)
from .text import SETUP_FILE, dumps_setup, is_single, load_setup, load_setup_file, parse_setup

__all__ = [
    "ALLOWED_CHILDREN",
    "BLOCKS",
    "SETUP_FILE",
    "AdapterCompositionBlock",
    "Average",
    "BatchSplit",
    "Fuse",
    "MultiTask",
    "Parallel",
    "Split",
    "Stack",
    "dumps_setup",
    "is_single",
    "load_setup",
    "load_setup_file",
    "parse_setup",
]
