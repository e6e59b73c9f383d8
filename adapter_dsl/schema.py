"""JSON Schema (Draft 2020-12) of adapter config dicts and saved ``adapter_config.json`` files.

The schemas are generated from the config classes through pydantic's hooks: the field types
declare their own schemas (``WithJsonSchema``) and value documentation (``EnumDocs``) in
``fieldtypes.py`` and the family modules, :class:`_Generator` makes pydantic's output plainer, and
each family's cross-field rules (``cross_field_rules``, the ones its model validator checks) are
compiled into the variant's ``allOf``. This module adds the documentation editors show
(``markdownDescription``, defaults, examples and the values each preset uses) and tags the
variants so an editor can tell them apart: every variant fixes ``architecture`` with ``const``;
bottleneck configs, which the reference writes without an ``architecture`` key, are the one
variant where the key may be absent (or ``null``/``"bottleneck"``).

The schema accepts exactly what ``load()`` accepts (``tests/test_schema_agreement.py`` checks it)
except where JSON Schema cannot say it: pairwise rules between union members, the syntax of
config strings inside saved files, and the legacy forms that ``load()`` rewrites before
validating (the ``invertible_adapter`` key, ``gelu_orig`` in files without a version, the alpha
of LoRA files written before adapters 1.1.0).

The committed files under ``schemas/`` are the output of :func:`write_schemas`; a test checks
that they are current (regenerate with ``make schemas`` or ``adapter-dsl schema --output schemas``).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

from .fieldtypes import POSITIVE_SCHEMA
from .methods.base import AdapterConfig, plain
from .methods.rules import REQUIRED
from .methods.union import ConfigUnion
from .registry import IDENTIFIERS, method_families, preset_config

__all__ = [
    "FILENAMES",
    "KINDS",
    "SCHEMA_IDS",
    "build_schema",
    "schema_text",
    "write_schemas",
]

SchemaKind = Literal["config", "saved-adapter", "fusion-config", "adapter-setup"]
KINDS: tuple[str, ...] = ("config", "saved-adapter", "fusion-config", "adapter-setup")
FILENAMES: dict[str, str] = {
    "config": "adapter-config.schema.json",
    "saved-adapter": "saved-adapter.schema.json",
    "fusion-config": "adapter-fusion-config.schema.json",  # adapter_fusion_config.json
    "adapter-setup": "adapter-setup.schema.json",  # adapter_setup.json
}
_BASE_URL = "https://adapter-dsl.dev/schemas/"
SCHEMA_IDS: dict[str, str] = {kind: _BASE_URL + name for kind, name in FILENAMES.items()}
METASCHEMA = "https://json-schema.org/draft/2020-12/schema"

Json = dict[str, Any]


# -- the variants ------------------------------------------------------------------------------

Variant = tuple[str, str | None, type[AdapterConfig], str]


def _variants() -> tuple[Variant, ...]:
    """(name in $defs, architecture tag or None for untagged, family root, title) per
    registered single-method family."""
    return tuple(
        (f.architecture, None if f.untagged else f.architecture, f.root, f.title)
        for f in method_families()
        if not f.is_union
    )


_ARCHITECTURE_DOC = (
    "Selects the method family. Bottleneck adapters have no `architecture` key in the reference "
    'format (null and "bottleneck" are accepted too); every other family must name itself.'
)


class _Generator(GenerateJsonSchema):
    """pydantic's JSON Schema, plainer for editors: no titles, ``enum`` for every literal, one
    ``number`` for int|float, and a list of types for a union of plain types."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False

    def sort(self, value: JsonSchemaValue, parent_key: str | None = None) -> JsonSchemaValue:
        return value  # declaration order reads better than alphabetical (type before bounds)

    def literal_schema(self, schema: core_schema.LiteralSchema) -> JsonSchemaValue:
        out = super().literal_schema(schema)
        if "const" in out:
            out["enum"] = [out.pop("const")]
        return out

    def get_union_of_schemas(self, schemas: list[JsonSchemaValue]) -> JsonSchemaValue:
        if {"type": "number"} in schemas:
            schemas = [b for b in schemas if b != {"type": "integer"}]
        if all(set(b) == {"type"} and isinstance(b["type"], str) for b in schemas):
            types = [b["type"] for b in schemas]
            return {"type": types[0] if len(types) == 1 else types}
        if len(schemas) == 1:
            return schemas[0]
        return {"anyOf": schemas}


# -- building one variant ----------------------------------------------------------------------


def _family_presets(tag: str | None) -> dict[str, AdapterConfig]:
    """Identifier → preset config for the current (not deprecated) single-method presets."""
    out: dict[str, AdapterConfig] = {}
    for ident, preset in IDENTIFIERS.items():
        if preset.deprecated or issubclass(preset.cls, ConfigUnion):
            continue
        cfg = preset_config(ident)
        arch = None if cfg.architecture == "bottleneck" else cfg.architecture
        if arch == tag:
            out[ident] = cfg
    return out


def _literal(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _markdown(text: str) -> str:
    """Quoted values ('relu') as code spans (`"relu"`)."""
    parts = text.split("'")
    if len(parts) % 2 == 0:  # unbalanced quotes: leave as is
        return text
    return "".join(f'`"{p}"`' if i % 2 else p for i, p in enumerate(parts))


def _markdown_enum_docs(node: Json) -> None:
    """Add ``markdownEnumDescriptions`` beside every ``enumDescriptions`` inside ``node``."""
    if "enumDescriptions" in node:
        node["markdownEnumDescriptions"] = [_markdown(t) for t in node["enumDescriptions"]]
    for key in ("anyOf", "oneOf"):
        for branch in node.get(key, []):
            _markdown_enum_docs(branch)
    if isinstance(node.get("items"), dict):
        _markdown_enum_docs(node["items"])


def _distinct(values: Iterable[Any]) -> list[Any]:
    out: list[Any] = []
    for v in values:
        if not any(v == o and type(v) is type(o) for o in out):
            out.append(v)
    return out


def _property(
    cls: type[AdapterConfig],
    name: str,
    generated: Json,
    presets: Mapping[str, AdapterConfig],
) -> Json:
    info = cls.model_fields[name]
    prop: Json = {}
    description = info.description or name.replace("_", " ")
    prop["description"] = description
    prop.update(copy.deepcopy(generated))
    has_default = "default" in generated
    default = plain(info.default) if has_default else None
    if has_default:
        prop["default"] = default
    preset_values = {ident: plain(getattr(cfg, name)) for ident, cfg in presets.items()}
    # Markdown: the description, the default and (where presets differ) each preset's value.
    md = [_markdown(description)]
    expected = cls.field_expectation(name)
    if expected:
        md.append(f"Expected: {_markdown(expected)}.")
    if has_default:
        md.append(f"Default: `{_literal(default)}`.")
    else:
        md.append("Required.")
    if len({_literal(v) for v in preset_values.values()}) > 1 or not has_default:
        grouped: dict[str, list[str]] = {}
        for ident, value in preset_values.items():
            grouped.setdefault(_literal(value), []).append(f"`{ident}`")
        md.append(
            "Presets: " + "; ".join(f"{', '.join(ids)} → `{v}`" for v, ids in grouped.items()) + "."
        )
    prop["markdownDescription"] = "\n\n".join(md)
    examples = list(info.examples or [])
    if has_default:
        examples.append(default)
    examples.extend(preset_values.values())
    if prop.get("type") == "boolean":
        examples.extend([True, False])
    prop["examples"] = _distinct(plain(e) for e in examples)
    _markdown_enum_docs(prop)
    # A stable, readable key order: documentation first, then the type, then values.
    head = ("description", "markdownDescription")
    tail = ("default", "examples")
    return {
        **{k: prop[k] for k in head},
        **{k: v for k, v in prop.items() if k not in head and k not in tail},
        **{k: prop[k] for k in tail if k in prop},
    }


def _architecture_property(tag: str | None) -> Json:
    if tag is None:
        return {
            "description": _ARCHITECTURE_DOC,
            "markdownDescription": _ARCHITECTURE_DOC + "\n\nOmit it for bottleneck adapters.",
            "enum": [None, "bottleneck"],
            "enumDescriptions": [
                "Bottleneck adapter (same as leaving the key out).",
                "Bottleneck adapter (adapter_dsl only; the reference library expects no key).",
            ],
        }
    return {
        "description": _ARCHITECTURE_DOC,
        "markdownDescription": _ARCHITECTURE_DOC + f"\n\nThis variant: `{_literal(tag)}`.",
        "const": tag,
        "enum": [tag],
    }


_SCHEMA_KEY: Json = {
    "type": "string",
    "description": "The JSON Schema of this file (editors use it; adapter_dsl ignores it).",
    "markdownDescription": "The JSON Schema of this file, for editors; adapter_dsl ignores it. "
    'For example `"./schemas/adapter-config.schema.json"` or '
    f'`"{SCHEMA_IDS["config"]}"`.',
    "examples": [SCHEMA_IDS["config"]],
}


def _variant(name: str, tag: str | None, cls: type[AdapterConfig], title: str) -> Json:
    generated = cls.model_json_schema(mode="validation", schema_generator=_Generator)
    gen_props: Json = generated.get("properties", {})
    presets = _family_presets(tag)
    properties: Json = {"$schema": _SCHEMA_KEY, "architecture": _architecture_property(tag)}
    for field in cls.model_fields:
        if field == "architecture":
            continue
        properties[field] = _property(cls, field, gen_props[field], presets)
    required = [f for f in generated.get("required", []) if f != "architecture"]
    if tag is not None:
        required = ["architecture", *required]
    doc = (cls.__doc__ or title).strip().splitlines()[0]
    identifiers = ", ".join(f"`{i}`" for i in presets)
    variant: Json = {
        "title": title,
        "description": doc,
        "markdownDescription": _markdown(doc)
        + (f"\n\nIdentifiers: {identifiers}." if presets else ""),
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }
    if cls.cross_field_rules:
        defaults = {
            field: REQUIRED if info.is_required() else plain(info.default)
            for field, info in cls.model_fields.items()
        }
        variant["allOf"] = [rule.schema(defaults) for rule in cls.cross_field_rules]
    if tag is None:
        properties["invertible_adapter"] = {
            "description": "Legacy form of inv_adapter and inv_adapter_reduction_factor.",
            "markdownDescription": "Legacy form of `inv_adapter` and "
            "`inv_adapter_reduction_factor`; read on load, never written.",
            "deprecationMessage": "Use inv_adapter and inv_adapter_reduction_factor.",
            "deprecated": True,
            "type": ["object", "null"],
            "properties": {
                "block_type": {"enum": ["nice", "glow", None]},
                "reduction_factor": {"anyOf": [POSITIVE_SCHEMA, {"type": "null"}]},
            },
        }
    examples = [presets[i].to_dict() for i in list(presets)[:1]]
    if examples:
        variant["examples"] = examples
    return variant


def _union_variant() -> Json:
    doc = (ConfigUnion.__doc__ or "").strip().splitlines()[0]
    unions = [
        i for i, p in IDENTIFIERS.items() if issubclass(p.cls, ConfigUnion) and not p.deprecated
    ]
    configs_doc = "The combined configs (a member that is a union is flattened into this one)."
    return {
        "title": "Union of methods",
        "description": doc,
        "markdownDescription": _markdown(doc)
        + "\n\nWritten by `a|b` strings and the identifiers "
        + ", ".join(f"`{i}`" for i in unions)
        + ".",
        "type": "object",
        "properties": {
            "$schema": _SCHEMA_KEY,
            "architecture": _architecture_property("union"),
            "configs": {
                "description": configs_doc,
                "markdownDescription": configs_doc
                + "\n\nAt most one config per architecture, except bottleneck adapters placed at "
                "different locations, or members with disjoint `leave_out`.",
                "type": "array",
                "minItems": 1,
                # A member is one method, or a union that load() flattens into this one;
                # "$schema" belongs on the top level only.
                "items": {
                    "anyOf": [{"$ref": "#/$defs/single_method"}, {"$ref": "#/$defs/union"}],
                    "properties": {"$schema": False},
                },
            },
        },
        "required": ["architecture", "configs"],
        "additionalProperties": False,
        "examples": [preset_config("mam").to_dict()],
    }


def _defs() -> Json:
    defs: Json = {}
    variants = _variants()
    for name, tag, cls, title in variants:
        defs[name] = _variant(name, tag, cls, title)
    defs["union"] = _union_variant()
    defs["single_method"] = {
        "description": "One adapter method (any variant except a union).",
        "oneOf": [{"$ref": f"#/$defs/{name}"} for name, *_ in variants],
    }
    defs["adapter_config"] = {
        "description": "An adapter config: one method, or a union of methods.",
        "oneOf": [{"$ref": "#/$defs/single_method"}, {"$ref": "#/$defs/union"}],
    }
    return defs


# -- the two documents -------------------------------------------------------------------------

_CONFIG_DOC = (
    "An adapter config as written by the AdapterHub adapters library's to_dict() and read by "
    "adapter_dsl: one method (bottleneck, prefix tuning, prompt tuning, LoRA family, MTL-LoRA, "
    "ReFT) or a union of methods."
)
_SAVED_DOC = "A saved adapter's adapter_config.json: the config plus the model it was trained on."


def _config_schema() -> Json:
    return {
        "$schema": METASCHEMA,
        "$id": SCHEMA_IDS["config"],
        "title": "Adapter config",
        "description": _CONFIG_DOC,
        "markdownDescription": _CONFIG_DOC.replace("to_dict()", "`to_dict()`"),
        "type": "object",
        "$ref": "#/$defs/adapter_config",
        "$defs": _defs(),
    }


def _text(description: str, **extra: Any) -> Json:
    return {"type": "string", "description": description, **extra}


def _saved_schema() -> Json:
    config_doc = "The adapter config (the config's to_dict()), or a config string."
    return {
        "$schema": METASCHEMA,
        "$id": SCHEMA_IDS["saved-adapter"],
        "title": "Saved adapter (adapter_config.json)",
        "description": _SAVED_DOC,
        "markdownDescription": "A saved adapter's `adapter_config.json`: the config plus the "
        "model it was trained on.",
        "type": "object",
        "properties": {
            "$schema": _SCHEMA_KEY | {"examples": [SCHEMA_IDS["saved-adapter"]]},
            "config": {
                "description": config_doc,
                "markdownDescription": "The adapter config (the config's `to_dict()`), or a "
                'config string such as `"lora[r=16]"`.',
                # A string is parsed by load(); its syntax is beyond a schema.
                "anyOf": [
                    {"$ref": "#/$defs/adapter_config"},
                    {"type": "string", "description": "A config string, e.g. 'lora[r=16]'."},
                ],
            },
            "hidden_size": {
                "description": "Hidden size of the model the adapter was trained on.",
                "type": ["integer", "null"],
                "minimum": 1,
                "examples": [768],
            },
            "model_class": _text(
                "Python class name of the model, e.g. BertModel or BertAdapterModel.",
                examples=["BertModel"],
            ),
            "model_name": _text(
                "Name or path of the model ('' for a model built from a config).",
                examples=["bert-base-uncased", ""],
            ),
            "model_type": _text(
                "Hugging Face model type of the model.", examples=["bert", "roberta", "gpt2"]
            ),
            "name": _text("Name of the adapter.", examples=["sentiment"]),
            "version": _text(
                "Writer and version, e.g. 'adapters.1.3.0'. Files without it get the legacy "
                "gelu renaming on load.",
                examples=["adapters.1.3.0"],
            ),
            "type": {
                "description": "Legacy adapter type of old files.",
                "deprecated": True,
                "enum": ["text_task", "text_lang"],
            },
        },
        "required": ["config"],
        # Other keys are the reference's meta_dict entries (e.g. "task"), kept with the adapter.
        "additionalProperties": True,
        "examples": [
            {
                "config": preset_config("lora").to_dict(),
                "hidden_size": 768,
                "model_class": "BertModel",
                "model_name": "bert-base-uncased",
                "model_type": "bert",
                "name": "sentiment",
                "version": "adapters.1.3.0",
            }
        ],
        "$defs": _defs(),
    }


def build_schema(kind: SchemaKind | str = "config") -> dict[str, Any]:
    """The JSON Schema of config dicts (``"config"``), saved adapter files (``"saved-adapter"``),
    ``adapter_fusion_config.json`` (``"fusion-config"``) or ``adapter_setup.json``
    (``"adapter-setup"``)."""
    if kind == "config":
        return _config_schema()
    if kind == "saved-adapter":
        return _saved_schema()
    if kind in ("fusion-config", "adapter-setup"):
        from .setup_schema import fusion_config_schema, setup_schema

        build = fusion_config_schema if kind == "fusion-config" else setup_schema
        return build(SCHEMA_IDS[kind])
    from .errors import ConfigError, did_you_mean

    raise ConfigError.single(
        f"unknown schema kind {kind!r}",
        expected="one of " + ", ".join(repr(k) for k in KINDS),
        found=repr(kind),
        suggestion=did_you_mean(str(kind), KINDS),
    )


def schema_text(kind: SchemaKind | str = "config") -> str:
    """The schema as the committed file holds it (2-space indent, UTF-8, final newline)."""
    return json.dumps(build_schema(kind), indent=2, ensure_ascii=False) + "\n"


def write_schemas(directory: str | Path, kinds: Iterable[str] = KINDS) -> list[Path]:
    """Write the schema files into ``directory`` (created if needed); returns their paths."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for kind in kinds:
        path = out / FILENAMES[kind]
        text = schema_text(kind)
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
