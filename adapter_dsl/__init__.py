"""adapter_dsl: a validated configuration language for parameter-efficient fine-tuning.

Config strings, dicts and JSON files compatible with AdapterHub ``adapters`` (1.3.0) become
immutable, typed config objects; every invalid input raises one located :class:`ConfigError`.
Importing this package loads neither torch nor transformers; ``adapter_dsl.backend`` does.

>>> import adapter_dsl
>>> cfg = adapter_dsl.parse("lora[r=16]|seq_bn")
>>> adapter_dsl.dumps(cfg)
'lora[r=16]|seq_bn'
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    # Explicit re-exports (``X as X``) for type checkers; at run time the names resolve
    # lazily through __getattr__ below.
    from .canonical import dumps as dumps
    from .composition import (
        AdapterCompositionBlock as AdapterCompositionBlock,
    )
    from .composition import (
        Average as Average,
    )
    from .composition import (
        BatchSplit as BatchSplit,
    )
    from .composition import (
        Fuse as Fuse,
    )
    from .composition import (
        MultiTask as MultiTask,
    )
    from .composition import (
        Parallel as Parallel,
    )
    from .composition import (
        Split as Split,
    )
    from .composition import (
        Stack as Stack,
    )
    from .composition import (
        load_setup as load_setup,
    )
    from .composition import (
        parse_setup as parse_setup,
    )
    from .errors import (
        ConfigError as ConfigError,
    )
    from .errors import (
        ConfigWarning as ConfigWarning,
    )
    from .errors import (
        Location as Location,
    )
    from .errors import (
        Problem as Problem,
    )
    from .fusion import load_fusion_config as load_fusion_config
    from .loading import config_from_dict as from_dict  # noqa: F401 (re-exported)
    from .loading import (
        load as load,
    )
    from .loading import (
        load_file as load_file,
    )
    from .loading import (
        load_lenient as load_lenient,
    )
    from .loading import (
        parse as parse,
    )
    from .methods.base import AdapterConfig as AdapterConfig
    from .methods.bottleneck import (
        AdapterPlusConfig as AdapterPlusConfig,
    )
    from .methods.bottleneck import (
        BnConfig as BnConfig,
    )
    from .methods.bottleneck import (
        CompacterConfig as CompacterConfig,
    )
    from .methods.bottleneck import (
        CompacterPlusPlusConfig as CompacterPlusPlusConfig,
    )
    from .methods.bottleneck import (
        DoubleSeqBnConfig as DoubleSeqBnConfig,
    )
    from .methods.bottleneck import (
        DoubleSeqBnInvConfig as DoubleSeqBnInvConfig,
    )
    from .methods.bottleneck import (
        ParBnConfig as ParBnConfig,
    )
    from .methods.bottleneck import (
        SeqBnConfig as SeqBnConfig,
    )
    from .methods.bottleneck import (
        SeqBnInvConfig as SeqBnInvConfig,
    )
    from .methods.fusion import (
        AdapterFusionConfig as AdapterFusionConfig,
    )
    from .methods.fusion import (
        DynamicAdapterFusionConfig as DynamicAdapterFusionConfig,
    )
    from .methods.fusion import (
        StaticAdapterFusionConfig as StaticAdapterFusionConfig,
    )
    from .methods.lora import (
        DoRAConfig as DoRAConfig,
    )
    from .methods.lora import (
        DvoRAConfig as DvoRAConfig,
    )
    from .methods.lora import (
        IA3Config as IA3Config,
    )
    from .methods.lora import (
        LoRAConfig as LoRAConfig,
    )
    from .methods.lora import (
        MTLLoRAConfig as MTLLoRAConfig,
    )
    from .methods.lora import (
        VeraConfig as VeraConfig,
    )
    from .methods.prefix_tuning import PrefixTuningConfig as PrefixTuningConfig
    from .methods.prompt_tuning import PromptTuningConfig as PromptTuningConfig
    from .methods.reft import (
        DiReftConfig as DiReftConfig,
    )
    from .methods.reft import (
        LoReftConfig as LoReftConfig,
    )
    from .methods.reft import (
        NoReftConfig as NoReftConfig,
    )
    from .methods.reft import (
        ReftConfig as ReftConfig,
    )
    from .methods.union import (
        ConfigUnion as ConfigUnion,
    )
    from .methods.union import (
        MAMConfig as MAMConfig,
    )
    from .methods.union import (
        UniPELTConfig as UniPELTConfig,
    )
    from .peft import from_peft as from_peft
    from .peft import to_peft as to_peft
    from .registry import IDENTIFIERS as IDENTIFIERS
    from .spec import AdapterSpec as AdapterSpec
    from .spec import AdapterSpecDict as AdapterSpecDict
    from .sweeps import suggest as suggest
    from .sweeps import sweep as sweep

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
