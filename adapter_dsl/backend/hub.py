"""The Hugging Face Hub's conventions, offline: model cards and Hub ids from the local cache.

``save_adapter`` writes a ``README.md`` model card next to the weights, with the YAML front
matter the Hub reads (``library_name``, ``base_model``, ``tags``), the canonical config string,
the trainable parameter count and the files. ``load_adapter(model, "org/name")`` finds a Hub id
in the local cache (``huggingface_hub``, ``local_files_only``): nothing is ever downloaded;
fetch an adapter with ``hf download org/name`` first.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from adapter_dsl.errors import ConfigError

__all__ = ["CARD_FILE", "LIBRARY_NAME", "model_card", "resolve_location"]

CARD_FILE = "README.md"
LIBRARY_NAME = "adapter-dsl"
# "org/name" (the Hub's repo ids: letters, digits, '-', '_', '.'), never "./x" or "/x".
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")


def _is_hub_model_id(name: str) -> bool:
    # A local folder or an absolute path is not a Hub id; "bert-base-uncased" and "org/name" are.
    return (
        bool(name)
        and not os.path.isabs(name)
        and not os.path.exists(name)
        and (_HUB_ID.match(name) is not None or re.match(r"^[A-Za-z0-9][\w.-]*$", name) is not None)
    )


def _yaml_list(items: Sequence[str]) -> str:
    return "".join(f"\n- {_yaml_scalar(i)}" for i in items)


def _yaml_scalar(text: str) -> str:
    # Quote anything YAML could read as another type or as syntax.
    if re.fullmatch(r"[A-Za-z][\w./+-]*", text) and text.lower() not in ("true", "false", "null"):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def model_card(
    *,
    name: str,
    config_string: str,
    family_tags: Sequence[str],
    model_type: str,
    base_model: str,
    trainable: int,
    files: Sequence[str],
) -> str:
    """The README.md text of a saved adapter (YAML front matter, then Markdown)."""
    tags = [LIBRARY_NAME, "adapters", *family_tags, model_type]
    tags = list(dict.fromkeys(t for t in tags if t))
    front = f"---\nlibrary_name: {LIBRARY_NAME}\n"
    if _is_hub_model_id(base_model):
        front += f"base_model: {_yaml_scalar(base_model)}\n"
    front += f"tags:{_yaml_list(tags)}\n---\n"
    files_md = "\n".join(f"- `{f}`" for f in files)
    base = f"`{base_model}`" if base_model else f"a `{model_type}` model"
    return f"""{front}
# Adapter `{name}` for {base}

Config: `{config_string}`

Trainable parameters: {trainable:,}

## Files

{files_md}

## Usage

```python
from adapter_dsl.backend import load_adapter

name = load_adapter(model, "path/or/org-name")  # a local directory or a Hub id in the cache
```
"""


def resolve_location(location: str | os.PathLike[str], *, revision: str | None = None) -> Path:
    """The local directory of a saved adapter: ``location`` itself when it exists (or is not a
    Hub id), else the snapshot of Hub repo ``org/name`` in the local Hugging Face cache."""
    path = Path(location)
    if isinstance(location, os.PathLike) or path.exists() or not _HUB_ID.match(str(location)):
        return path
    repo_id = str(location)
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError
    except ImportError:  # pragma: no cover - huggingface_hub comes with transformers
        raise _not_found(repo_id, "huggingface_hub is not installed") from None
    try:
        return Path(
            snapshot_download(
                repo_id, revision=revision, cache_dir=_cache_dir(), local_files_only=True
            )
        )
    except (LocalEntryNotFoundError, FileNotFoundError, ValueError) as exc:
        why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise _not_found(repo_id, why) from None


def _cache_dir() -> str | None:
    # huggingface_hub reads HF_HOME / HF_HUB_CACHE when it is imported; read them now, so a
    # process that points them elsewhere later (a test, a notebook) gets that cache.
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    if os.environ.get("HF_HOME"):
        return os.path.join(os.environ["HF_HOME"], "hub")
    return None


def _not_found(repo_id: str, why: str) -> ConfigError:
    cache = _cache_dir() or "the default Hugging Face cache"
    return ConfigError.single(
        f"no adapter directory '{repo_id}', and no Hub repo '{repo_id}' in the local "
        f"Hugging Face cache ({cache})",
        expected="a saved adapter directory, or a Hub id already downloaded",
        found=why,
        suggestion=f"download it first (hf download {repo_id}); adapter_dsl never downloads",
        code="not_found",
    )


def describe(model: Any, entry: Any) -> dict[str, Any]:
    """The facts of a model card that come from the model and the adapter."""
    from adapter_dsl.backend.architectures import model_type_of
    from adapter_dsl.canonical import dumps

    config = entry.config
    members = getattr(config, "configs", None) or (config,)
    families = [str(getattr(m, "architecture", None) or "bottleneck") for m in members]
    trainable = sum(p.numel() for p in entry.trainable_parameters())
    return {
        "config_string": dumps(config),
        "family_tags": families,
        "model_type": model_type_of(model),
        "base_model": getattr(model.config, "name_or_path", "") or "",
        "trainable": trainable,
    }
