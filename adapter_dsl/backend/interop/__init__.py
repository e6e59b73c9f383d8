"""Interoperability with adapter directories written by other libraries.

* :mod:`adapter_dsl.backend.interop.reference`: directories saved by AdapterHub ``adapters``
  (``model.save_adapter``), loading and saving.
* :mod:`adapter_dsl.backend.interop.peft`: directories saved by PEFT (``save_pretrained``),
  loading.

:func:`adapter_dsl.backend.load_adapter` calls :func:`load_foreign` first, so both kinds of
directory load by themselves.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

from torch import nn

from adapter_dsl.errors import ConfigError
from adapter_dsl.loading import read_config_file

__all__ = ["detect_format", "load_foreign"]

Format = Literal["adapter_dsl", "adapters", "peft"]


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(read_config_file(path, str(path)))  # bounded, regular files only
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, ConfigError):
        return None
    return data if isinstance(data, dict) else None


def detect_format(directory: str | os.PathLike[str]) -> Format | None:
    """Which library saved ``directory``; ``None`` when its ``adapter_config.json`` is unusable.

    PEFT's config has a ``peft_type`` key; ours has ``"version": "adapter_dsl.<x>"``; any other
    envelope with a ``config`` object is the reference's (which writes ``"adapters.<x>"``, or no
    version at all in its oldest files).
    """
    data = _read_json(Path(directory) / "adapter_config.json")
    if data is None:
        return None
    if "peft_type" in data:
        return "peft"
    if not isinstance(data.get("config"), dict):
        return None
    if str(data.get("version", "")).startswith("adapter_dsl."):
        return "adapter_dsl"
    return "adapters"


def load_foreign(
    model: nn.Module,
    directory: str | os.PathLike[str],
    *,
    load_as: str | None = None,
    set_active: bool = True,
) -> str | None:
    """Load a reference or PEFT directory and return the adapter's name; ``None`` otherwise."""
    kind = detect_format(directory)
    if kind == "adapters":
        from adapter_dsl.backend.interop.reference import load_reference_adapter

        return load_reference_adapter(model, directory, load_as=load_as, set_active=set_active)
    if kind == "peft":
        from adapter_dsl.backend.interop.peft import load_peft_adapter

        return load_peft_adapter(model, directory, load_as=load_as, set_active=set_active)
    return None
