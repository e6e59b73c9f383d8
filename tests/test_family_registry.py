"""The method-family registry: derived tables, their order, and the package's public names."""

from __future__ import annotations

import json
import subprocess
import sys

import adapter_dsl
from adapter_dsl.loading import FAMILIES
from adapter_dsl.methods.family import BUILTIN_MODULES
from adapter_dsl.registry import IDENTIFIERS, method_families

# The public names of adapter_dsl before the families declared their own config classes.
PUBLIC = [
    "IDENTIFIERS",
    "AdapterCompositionBlock",
    "AdapterConfig",
    "AdapterFusionConfig",
    "AdapterPlusConfig",
    "AdapterSpec",
    "AdapterSpecDict",
    "Average",
    "BatchSplit",
    "BnConfig",
    "CompacterConfig",
    "CompacterPlusPlusConfig",
    "ConfigError",
    "ConfigUnion",
    "ConfigWarning",
    "DiReftConfig",
    "DoRAConfig",
    "DoubleSeqBnConfig",
    "DoubleSeqBnInvConfig",
    "DvoRAConfig",
    "DynamicAdapterFusionConfig",
    "Fuse",
    "IA3Config",
    "LoRAConfig",
    "LoReftConfig",
    "Location",
    "MAMConfig",
    "MTLLoRAConfig",
    "ModelInterface",
    "MultiTask",
    "NoReftConfig",
    "ParBnConfig",
    "Parallel",
    "PrefixTuningConfig",
    "Problem",
    "PromptTuningConfig",
    "ReftConfig",
    "SeqBnConfig",
    "SeqBnInvConfig",
    "Split",
    "Stack",
    "StaticAdapterFusionConfig",
    "UniPELTConfig",
    "VeraConfig",
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


def test_every_public_name_is_still_exported() -> None:
    assert sorted(adapter_dsl.__all__) == sorted(PUBLIC)
    for name in PUBLIC:
        assert getattr(adapter_dsl, name) is not None
    assert set(PUBLIC) <= set(dir(adapter_dsl))


def test_each_family_root_reads_its_dicts() -> None:
    for family in method_families():
        assert FAMILIES[family.architecture] is family.root
        assert family.root._family_root is family.root
        for p in family.presets:
            assert IDENTIFIERS[p.identifier] is p
    assert FAMILIES[None] is adapter_dsl.BnConfig


def test_the_tables_do_not_depend_on_the_order_modules_are_imported_in() -> None:
    code = (
        "import json, importlib, sys; "
        "[importlib.import_module(m) for m in reversed(sys.argv[1:])]; "
        "from adapter_dsl.registry import IDENTIFIERS, method_families; "
        "print(json.dumps([list(IDENTIFIERS), [f.architecture for f in method_families()]]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, *BUILTIN_MODULES], capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout) == [
        list(IDENTIFIERS),
        [f.architecture for f in method_families()],
    ]
