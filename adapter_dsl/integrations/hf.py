"""Hugging Face training scripts: ``AdapterArguments`` for ``HfArgumentParser`` and
``setup_adapter_training``, field for field and step for step as the reference's
``adapters.training``.

The config fields are typed :class:`~adapter_dsl.integrations.cli_types.ConfigString`, so a bad
``--adapter_config`` fails while the arguments are parsed (usage line, our caret message,
exit 2), not later inside training. ``setup_adapter_training`` needs the torch backend, which it
imports when called.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError
from ..loading import load
from .cli_types import ConfigString, resolve_argument

__all__ = ["AdapterArguments", "setup_adapter_training"]


@dataclass
class AdapterArguments:
    """The adapter arguments of a training script (the reference's fields and defaults)."""

    train_adapter: bool = field(
        default=False, metadata={"help": "Train an adapter instead of the full model."}
    )
    load_adapter: str | None = field(
        default="", metadata={"help": "Pre-trained adapter module to be loaded from Hub."}
    )
    adapter_config: ConfigString | None = field(
        default=ConfigString("seq_bn"),
        metadata={"help": "Adapter configuration. Either a config string or a path to a file."},
    )
    load_lang_adapter: str | None = field(
        default=None,
        metadata={"help": "Pre-trained language adapter module to be loaded from Hub."},
    )
    lang_adapter_config: ConfigString | None = field(
        default=None,
        metadata={
            "help": "Language adapter configuration. Either an identifier or a path to a file."
        },
    )

    def __post_init__(self) -> None:
        # Built in code rather than by the parser: validate here, raising ConfigError.
        for name in ("adapter_config", "lang_adapter_config"):
            value = getattr(self, name)
            if isinstance(value, str) and not isinstance(value, ConfigString):
                resolve_argument(value)
                setattr(self, name, ConfigString(value))


def _config(value: Any, kwargs: dict[str, Any]) -> Any:
    if isinstance(value, str):
        value = resolve_argument(value)
    return load(value, **kwargs)


def setup_adapter_training(
    model: Any,
    adapter_args: AdapterArguments,
    adapter_name: str,
    adapter_config_kwargs: dict[str, Any] | None = None,
    adapter_load_kwargs: dict[str, Any] | None = None,
) -> tuple[str | None, str | None]:
    """Add (or load) the adapter to train, optionally load a language adapter below it, freeze
    everything else and activate them; returns ``(adapter_name, lang_adapter_name)``.

    As in the reference, nothing happens without ``train_adapter`` (``(None, None)``), and
    loading an adapter without it is an error. ``load_adapter`` and ``load_lang_adapter`` name
    a saved adapter directory or a Hub id found in the local cache (never downloaded).
    """
    from ..backend import list_adapters, load_adapter, set_active, train_adapter
    from ..backend.core import add_adapter

    config_kwargs = dict(adapter_config_kwargs or {})
    load_kwargs = dict(adapter_load_kwargs or {})
    if not adapter_args.train_adapter:
        if adapter_args.load_adapter or adapter_args.load_lang_adapter:
            raise ConfigError.single(
                "adapters can only be loaded in adapter training mode",
                expected="--train_adapter together with --load_adapter or --load_lang_adapter",
                code="usage",
            )
        return None, None
    adapter_config = _config(adapter_args.adapter_config, config_kwargs)
    if adapter_args.load_adapter:
        # The reference passes the config to pick a Hub variant; a saved directory has its own.
        load_adapter(model, adapter_args.load_adapter, load_as=adapter_name, **load_kwargs)
    elif adapter_name not in list_adapters(model):
        add_adapter(model, adapter_name, adapter_config)
    lang_adapter_name = None
    if adapter_args.load_lang_adapter:
        if adapter_args.lang_adapter_config is not None:
            _config(adapter_args.lang_adapter_config, config_kwargs)  # validated, as the reference
        lang_adapter_name = load_adapter(model, adapter_args.load_lang_adapter, **load_kwargs)
    train_adapter(model, adapter_name)
    if lang_adapter_name:
        set_active(model, [lang_adapter_name, adapter_name])  # Stack(lang, task)
    else:
        set_active(model, adapter_name)
    return adapter_name, lang_adapter_name
