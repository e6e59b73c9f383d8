"""First lines of the errors of backend operations: what failed, not "invalid adapter config".

A model-level operation (save, load, average, fuse, …) given a valid config can still fail: an
unknown name, a missing file, adapters that cannot be combined. :func:`heads_failures` heads the
``ConfigError`` such an operation raises with the operation and the model's class
("cannot save adapter 'x' of BertModel"), as :func:`~adapter_dsl.backend.core.failing_as` does
inside ``add_adapter`` and the other core operations. A heading set deeper inside is kept.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar, cast

from adapter_dsl.errors import DEFAULT_HEADING, ConfigError

__all__ = ["heads_failures"]

F = TypeVar("F", bound=Callable[..., Any])


def heads_failures(template: str) -> Callable[[F], F]:
    """Decorator: a ``ConfigError`` with the default heading, raised by the function, is headed
    ``template`` formatted with the call's arguments by name, plus ``{cls}``: the class name of
    its ``model`` argument."""

    def decorate(fn: F) -> F:
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except ConfigError as exc:
                if exc.heading != DEFAULT_HEADING:
                    raise
                try:
                    bound = signature.bind(*args, **kwargs)
                    bound.apply_defaults()
                    values = dict(bound.arguments)
                    heading = template.format(cls=type(values.get("model")).__name__, **values)
                except (TypeError, KeyError, ValueError, IndexError):
                    raise exc from None  # the arguments do not fit the template: keep it
                raise exc.headed(heading) from None

        return cast(F, call)

    return decorate
