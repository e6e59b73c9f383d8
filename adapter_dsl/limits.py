"""The size limit on input: one knob, the ``ADAPTER_DSL_MAX_LENGTH`` environment variable.

Every input is read in time linear in its size, so the limit protects against abuse (memory),
not against users: the default, 1 MiB, takes a config with a long ``prompt_init_text`` and any
real ``adapter_config.json``. It bounds the characters of a config string and of JSON text, and
the bytes of a config file. Nesting has its own, fixed limits (``MAX_DEPTH`` in the parser and
in ``loading``).
"""

from __future__ import annotations

import os

from .errors import ConfigError

__all__ = ["DEFAULT_MAX_LENGTH", "ENV_VAR", "max_length"]

ENV_VAR = "ADAPTER_DSL_MAX_LENGTH"
DEFAULT_MAX_LENGTH = 1024 * 1024


def max_length() -> int:
    """The limit in force: ``$ADAPTER_DSL_MAX_LENGTH`` (a positive integer) if set, else
    :data:`DEFAULT_MAX_LENGTH`. Read on every call, so a change takes effect at once."""
    raw = os.environ.get(ENV_VAR)
    if raw is None or not raw.strip():
        return DEFAULT_MAX_LENGTH
    text = raw.strip().replace("_", "")
    if not (text.isascii() and text.isdigit()) or len(text) > 18 or int(text) < 1:
        raise ConfigError.single(
            f"invalid {ENV_VAR} in the environment",
            expected="a positive integer (characters of a config string, bytes of a file)",
            found=repr(raw[:40]),
            code="invalid_limit",
        )
    return int(text)
