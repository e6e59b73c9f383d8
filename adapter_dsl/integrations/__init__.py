"""Integrations: adapter configs where users already write them.

Each name loads its module (and that module's third-party library) on first access, so
``import adapter_dsl.integrations`` costs nothing:

- :class:`AdapterArguments`, :func:`setup_adapter_training` — ``transformers.HfArgumentParser``
  training scripts (``hf``; the second needs the torch backend);
- :func:`config_type`, :class:`ConfigString` — ``argparse``'s ``type=``, and
  :func:`resolve_argument` — typer's ``parser=`` (``cli_types``);
- :func:`click_type` — a click parameter type (``click_types``).

Elsewhere: ``adapter_dsl.AdapterSpec`` (pydantic fields), ``adapter_dsl.load`` of YAML/TOML
files and of OmegaConf containers (``omegaconf`` here), ``adapter_dsl.sweep`` and
``adapter_dsl.suggest`` (Optuna), and the Hub conventions in ``adapter_dsl.backend.hub``.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .cli_types import ConfigString, config_type, resolve_argument
    from .click_types import click_type
    from .hf import AdapterArguments, setup_adapter_training

_LAZY: dict[str, str] = {
    "AdapterArguments": ".hf",
    "setup_adapter_training": ".hf",
    "ConfigString": ".cli_types",
    "config_type": ".cli_types",
    "resolve_argument": ".cli_types",
    "click_type": ".click_types",
}

__all__ = [
    "AdapterArguments",
    "ConfigString",
    "click_type",
    "config_type",
    "resolve_argument",
    "setup_adapter_training",
]


def __getattr__(name: str) -> Any:
    try:
        module = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
