"""What the ``adapter-dsl`` commands need to know about adapter setups and fusion configs.

A SPEC is read as a setup with ``--setup`` or when it is one (a block call such as
``Stack(a, b)``, an ``adapter_setup.json`` file or its JSON), and as a fusion config with
``--fusion`` or when it is one (``dynamic``, ``static[...]``, an ``adapter_fusion_config.json``
file or its JSON); everything else is an adapter config as before.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import ConfigError

__all__ = ["FUSION", "SETUP", "classify", "explain_fusion", "explain_setup", "load_spec"]

SETUP = "setup"
FUSION = "fusion"
_SETUP_FILE = "adapter_setup.json"
_FUSION_FILE = "adapter_fusion_config.json"
_FUSION_NAMES = ("dynamic", "static")


def _is_setup_data(data: Any) -> bool:
    return isinstance(data, Mapping) and (
        "adapter_setup" in data or ("type" in data and "children" in data)
    )


def _is_fusion_data(data: Any) -> bool:
    if isinstance(data, Mapping) and isinstance(data.get("config"), Mapping):
        data = data["config"]
    return isinstance(data, Mapping) and "value_before_softmax" in data


def classify(arg: str, text: str | None = None) -> str | None:
    """``"setup"``, ``"fusion"`` or None (an adapter config) for a SPEC, judged by its form."""
    stripped = (text if text is not None else arg).strip()
    if stripped.startswith("{"):
        try:
            data = json.loads(stripped)
        except ValueError:
            return None
        return SETUP if _is_setup_data(data) else FUSION if _is_fusion_data(data) else None
    if text is None and (arg.endswith(".json") or os.path.isdir(arg)):
        path = Path(arg)
        if path.is_dir():
            if (path / "adapter_config.json").exists():
                return None
            return (
                SETUP
                if (path / _SETUP_FILE).exists()
                else FUSION
                if (path / _FUSION_FILE).exists()
                else None
            )
        return SETUP if path.name == _SETUP_FILE else FUSION if path.name == _FUSION_FILE else None
    if stripped in _FUSION_NAMES or stripped.startswith(tuple(f"{n}[" for n in _FUSION_NAMES)):
        return FUSION
    head = stripped.split("(", 1)[0].strip()
    if "(" in stripped and head.isidentifier():
        return SETUP
    return None


def load_spec(arg: str, what: str, text: str | None = None) -> tuple[Any, Any, str]:
    """(the setup or fusion config, its JSON value when it came from JSON, the input kind)."""
    from .composition import load_setup
    from .fusion import load_fusion_config

    load = load_setup if what == SETUP else load_fusion_config
    source = text if text is not None else arg
    if source.lstrip().startswith("{"):
        data = _json(source)
        return load(data), data, "json"
    if text is None and (arg.endswith(".json") or os.path.isdir(arg)):
        path = Path(arg)
        if path.is_dir():
            path = path / (_SETUP_FILE if what == SETUP else _FUSION_FILE)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = None  # the loader says what is wrong, with line and column
        return load(path), data, "file"
    return load(source.strip()), None, "string"


def _json(text: str, file: str = "<argument>") -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError.single(f"invalid JSON: {exc.msg}", code="json_syntax").located(
            file=file, line=exc.lineno, column=exc.colno
        ) from None


def explain_setup(setup: Any) -> dict[str, Any]:
    """The setup as a tree: per node its block (or adapter), arguments and adapters used."""
    from .composition import AdapterCompositionBlock, dumps_setup

    def node(value: Any) -> dict[str, Any]:
        if isinstance(value, str):
            return {"adapter": value}
        assert isinstance(value, AdapterCompositionBlock)
        out: dict[str, Any] = {"block": type(value).__name__}
        kwargs = value.to_dict().get("kwargs")
        if kwargs:
            out["kwargs"] = kwargs
        if type(value).__name__ == "Fuse":
            out["fusion_name"] = value.name  # type: ignore[attr-defined]
        out["children"] = [node(c) for c in value.children]
        return out

    return {
        "setup": dumps_setup(setup),
        "adapters": sorted(setup.flatten()),
        "parallel_channels": setup.parallel_channels,
        "tree": node(setup),
    }


def explain_setup_text(payload: dict[str, Any]) -> str:
    lines = [payload["setup"], f"adapters: {', '.join(payload['adapters'])}"]
    if payload["parallel_channels"] > 1:
        lines.append(f"parallel channels: {payload['parallel_channels']}")

    def walk(node: dict[str, Any], depth: int) -> None:
        pad = "  " * depth
        if "adapter" in node:
            lines.append(f"{pad}- {node['adapter']}")
            return
        extra = ", ".join(f"{k}={v}" for k, v in node.get("kwargs", {}).items())
        if "fusion_name" in node:
            extra = ", ".join(p for p in (extra, f"fusion name {node['fusion_name']!r}") if p)
        lines.append(f"{pad}- {node['block']}" + (f" ({extra})" if extra else ""))
        for child in node["children"]:
            walk(child, depth + 1)

    walk(payload["tree"], 0)
    return "\n".join(lines) + "\n"


def explain_fusion(config: Any, text: str | None) -> list[dict[str, Any]]:
    """The fusion config's fields (value, the preset's default, whether it was set), shaped like
    an adapter config member of ``explain``."""
    from .canonical import dumps
    from .registry import FUSION_IDENTIFIERS

    written: set[str] | None = None
    ident = dumps(config).split("[", 1)[0]
    if text is not None:
        from .syntax.parser import parse_text

        method = parse_text(text).methods[0]
        ident, written = method.name, {a.key for a in method.args}
    base = FUSION_IDENTIFIERS[ident].cls()
    fields = []
    for name, info in type(config).model_fields.items():
        value, default = getattr(config, name), getattr(base, name)
        fields.append(
            {
                "name": name,
                "value": value,
                "default": default,
                "set": name in written if written is not None else value != default,
                "description": info.description or "",
            }
        )
    return [
        {
            "index": 0,
            "architecture": "fusion",
            "class": type(config).__name__,
            "preset": ident,
            "config": dumps(config),
            "fields": fields,
        }
    ]
