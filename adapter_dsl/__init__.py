"""adapter_dsl: a validated configuration language for parameter-efficient fine-tuning.

Config strings, dicts and JSON files compatible with AdapterHub ``adapters`` (1.3.0) become
immutable, typed config objects; every invalid input raises one located :class:`ConfigError`.
Importing this package loads neither torch nor transformers; ``adapter_dsl.backend`` does.

>>> import adapter_dsl
>>> cfg = adapter_dsl.parse("lora[r=16]|seq_bn")
>>> adapter_dsl.dumps(cfg)
'lora[r=16]|seq_bn'
"""

# ruff: noqa: F401 (the TYPE_CHECKING imports are the package's public names)
from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    # For type checkers (no __all__ lists these: it is built on access, see __getattr__).
    from .canonical import dumps
    from .composition import (
        AdapterCompositionBlock,
        Average,
        BatchSplit,
        Fuse,
        MultiTask,
        Parallel,
        Split,
        Stack,
        load_setup,
        parse_setup,
    )
    from .errors import ConfigError, ConfigWarning, Location, Problem
    from .fusion import load_fusion_config
    from .loading import config_from_dict as from_dict
    from .loading import load, load_file, load_lenient, parse
    from .methods.base import AdapterConfig
    from .methods.bottleneck import (
        AdapterPlusConfig,
        BnConfig,
        CompacterConfig,
        CompacterPlusPlusConfig,
        DoubleSeqBnConfig,
        DoubleSeqBnInvConfig,
        ParBnConfig,
        SeqBnConfig,
        SeqBnInvConfig,
    )
    from .methods.fusion import (
        AdapterFusionConfig,
        DynamicAdapterFusionConfig,
        StaticAdapterFusionConfig,
    )
    from .methods.lora import (
        DoRAConfig,
        DvoRAConfig,
        IA3Config,
        LoRAConfig,
        MTLLoRAConfig,
        VeraConfig,
    )
    from .methods.prefix_tuning import PrefixTuningConfig
    from .methods.prompt_tuning import PromptTuningConfig
    from .methods.reft import DiReftConfig, LoReftConfig, NoReftConfig, ReftConfig
    from .methods.union import ConfigUnion, MAMConfig, UniPELTConfig
    from .peft import from_peft, to_peft
    from .registry import IDENTIFIERS
    from .spec import AdapterSpec, AdapterSpecDict
    from .sweeps import suggest, sweep

# Public name → (module, attribute). Resolved on first access (PEP 562), so that
# `import adapter_dsl` costs a few milliseconds and tools that only import it (to check a
# version, register a plugin, ...) never pay for pydantic's import. The config classes of the
# method families are not listed: each family declares them (``MethodFamily.configs``), and
# they are looked up in the registry on first access.
_LAZY: dict[str, tuple[str, str]] = {
    "dumps": (".canonical", "dumps"),
    "ConfigError": (".errors", "ConfigError"),
    "ConfigWarning": (".errors", "ConfigWarning"),
    "Location": (".errors", "Location"),
    "Problem": (".errors", "Problem"),
    "from_dict": (".loading", "config_from_dict"),
    "load": (".loading", "load"),
    "load_file": (".loading", "load_file"),
    "load_lenient": (".loading", "load_lenient"),
    "parse": (".loading", "parse"),
    "AdapterConfig": (".methods.base", "AdapterConfig"),
    "IDENTIFIERS": (".registry", "IDENTIFIERS"),
    "from_peft": (".peft", "from_peft"),
    "to_peft": (".peft", "to_peft"),
    "AdapterSpec": (".spec", "AdapterSpec"),
    "AdapterSpecDict": (".spec", "AdapterSpecDict"),
    "suggest": (".sweeps", "suggest"),
    "sweep": (".sweeps", "sweep"),
    "ModelInterface": (".model_interface", "ModelInterface"),
}
for _name in [
    "AdapterCompositionBlock",
    "Average",
    "BatchSplit",
    "Fuse",
    "MultiTask",
    "Parallel",
    "Split",
    "Stack",
    "load_setup",
    "parse_setup",
]:
    _LAZY[_name] = (".composition", _name)
for _name in ["AdapterFusionConfig", "DynamicAdapterFusionConfig", "StaticAdapterFusionConfig"]:
    _LAZY[_name] = (".methods.fusion", _name)
_LAZY["load_fusion_config"] = (".fusion", "load_fusion_config")


def __getattr__(name: str) -> Any:
    if name == "__all__":
        return [*_ALL, *_family_exports()]
    try:
        module, attr = _LAZY[name]
    except KeyError:
        # Family classes stay out of globals(): a family registered later (or removed) is
        # seen here as it is now.
        if not name.startswith("_") and name in _family_exports():
            return _family_exports()[name]
        raise AttributeError(f"module 'adapter_dsl' has no attribute {name!r}") from None
    value = getattr(import_module(module, __name__), attr)
    globals()[name] = value
    return value


def _family_exports() -> Any:
    from .registry import config_exports

    return config_exports()


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | set(_family_exports()))


__version__ = "0.1.0"

# The public names besides the family config classes (``__all__`` adds those).
_ALL = [
    "IDENTIFIERS",
    "AdapterCompositionBlock",
    "AdapterConfig",
    "AdapterFusionConfig",
    "AdapterSpec",
    "AdapterSpecDict",
    "Average",
    "BatchSplit",
    "ConfigError",
    "ConfigWarning",
    "DynamicAdapterFusionConfig",
    "Fuse",
    "Location",
    "ModelInterface",
    "MultiTask",
    "Parallel",
    "Problem",
    "Split",
    "Stack",
    "StaticAdapterFusionConfig",
    "dumps",
    "from_dict",
    "from_peft",
    "json_schema",
    "load",
    "load_file",
    "load_fusion_config",
    "load_lenient",
    "load_setup",
    "parse",
    "parse_setup",
    "suggest",
    "sweep",
    "to_peft",
]


def json_schema(kind: str = "config") -> dict[str, Any]:
    """A JSON Schema: ``"config"``, ``"saved-adapter"``, ``"fusion-config"`` or ``"adapter-setup"``."""
    from .schema import build_schema

    return build_schema(kind)
