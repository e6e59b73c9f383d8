"""Command-line argument types: a bad config fails at argument parsing with our located message.

``parser.add_argument("--adapter", type=config_type)`` gives the config object;
``type=ConfigString`` keeps the text (validated), as ``transformers.HfArgumentParser`` dataclass
fields need. Both raise ``argparse.ArgumentTypeError`` carrying the caret message, so argparse
prints the usage line and the message and exits with status 2. As in the reference's
``AdapterArguments``, a value may also name a config file: only an existing file whose name ends
in ``.json``, ``.yaml``, ``.yml`` or ``.toml`` is opened (a command line is the user's own,
explicit input; data read from elsewhere is never taken for a path).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..methods.base import AdapterConfig

__all__ = ["FILE_SUFFIXES", "ConfigString", "config_type", "resolve_argument"]

FILE_SUFFIXES = (".json", ".yaml", ".yml", ".toml")


def resolve_argument(text: str) -> AdapterConfig:
    """The config of a command-line value: an existing config file, else config text.

    Raises ``ConfigError`` (a ``ValueError``, so it also serves as typer's ``parser=``)."""
    from ..loading import load_file, parse

    if text.endswith(FILE_SUFFIXES) and Path(text).is_file():
        return load_file(text)
    return parse(text)


def config_type(text: str) -> AdapterConfig:
    """``argparse`` ``type=``: the validated config of a config string or config file."""
    from ..errors import ConfigError

    try:
        return resolve_argument(text)
    except ConfigError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


config_type.__name__ = "adapter config"  # argparse names the type in some messages


class ConfigString(str):
    """A config string checked on construction; ``.config`` is its validated config object.

    As an argparse ``type=`` (or the type of an ``HfArgumentParser`` dataclass field) a bad
    string is a usage error with our message.
    """

    __slots__ = ()

    def __new__(cls, text: str) -> ConfigString:
        config_type(text)
        return super().__new__(cls, text)

    @property
    def config(self) -> AdapterConfig:
        return resolve_argument(str(self))  # strings: cached by the parser
