"""A click parameter type for adapter configs.

``@click.option("--adapter", type=click_type())`` (with typer, ``typer.Option(...,
parser=resolve_argument)`` gives the same through click's function type): the parameter's
value is the validated config (from config text or a config file, as ``cli_types`` reads
them), and a bad config is a usage error (exit 2) with our message.
Imports click when called.
"""

from __future__ import annotations

from typing import Any

__all__ = ["click_type"]

_TYPE: Any = None


def click_type() -> Any:
    """The ``click.ParamType`` instance that converts config strings to config objects."""
    global _TYPE
    if _TYPE is None:
        _TYPE = _build()()
    return _TYPE


def _build() -> type[Any]:
    import click

    from ..errors import ConfigError
    from ..methods.base import AdapterConfig
    from .cli_types import resolve_argument

    class AdapterConfigParamType(click.ParamType):
        name = "adapter config"

        def convert(self, value: Any, param: Any, ctx: Any) -> Any:
            if isinstance(value, AdapterConfig):
                return value
            try:
                return resolve_argument(value)
            except ConfigError as err:
                self.fail("\n" + str(err), param, ctx)

    return AdapterConfigParamType
