"""Late-bound references: the one place where a ``"module:attribute"`` string becomes an object.

Imports point down the layers (``tests/test_layers.py``). A class of a lower layer whose public
methods are implemented in a higher one (a config's ``str()`` is
:func:`adapter_dsl.canonical.dumps`, ``AdapterConfig.load`` is :func:`adapter_dsl.load`), or a
table that names code imported only on first use (the backend's method handlers), names the
object as ``"adapter_dsl.<module>:<attribute>"`` and calls :func:`resolve` when it is needed. The
layer test checks that every such string in the package names an existing attribute, and that
no other module calls importlib (the packages' PEP 562 ``__getattr__`` aside).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__all__ = ["resolve"]


def resolve(reference: str) -> Any:
    """The object that ``reference`` (``"package.module:attribute"``) names, importing its module
    on first use; ``ImportError`` or ``AttributeError`` when there is none."""
    module, _, attribute = reference.partition(":")
    return getattr(import_module(module), attribute)
