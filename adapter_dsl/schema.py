"""JSON Schema (Draft 2020-12) of adapter config dicts and saved ``adapter_config.json`` files.

The schemas are generated from the config classes: each family's pydantic schema is taken as a
starting point, then tightened (ranges, enums, distinct items), documented for editors
(``markdownDescription``, per-value ``enumDescriptions``, defaults, examples and the values each
preset uses) and tagged so an editor can tell the variants apart: every variant fixes
``architecture`` with ``const``; bottleneck configs, which the reference writes without an
``architecture`` key, are the one variant where the key may be absent (or ``null``/``"bottleneck"``).

The committed files under ``schemas/`` are the output of :func:`write_schemas`; a test checks
that they are current (regenerate with ``make schemas`` or ``adapter-dsl schema --output schemas``).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal, get_args

from . import fieldtypes as ft
from .methods.base import AdapterConfig, plain
from .methods.bottleneck import BnConfig, InvReduction
from .methods.lora import LoRAConfig, MTLLoRAConfig
from .methods.prefix_tuning import PrefixTuningConfig
from .methods.prompt_tuning import PromptTuningConfig
from .methods.reft import ReftConfig, ReftLayers
from .methods.union import ConfigUnion
from .registry import IDENTIFIERS, preset_config

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

# (name in $defs, architecture tag or None for bottleneck, family root class, title)
_VARIANTS: tuple[tuple[str, str | None, type[AdapterConfig], str], ...] = (
    ("bottleneck", None, BnConfig, "Bottleneck adapter"),
    ("prefix_tuning", "prefix_tuning", PrefixTuningConfig, "Prefix tuning"),
    ("prompt_tuning", "prompt_tuning", PromptTuningConfig, "Prompt tuning"),
    ("lora", "lora", LoRAConfig, "LoRA family"),
    ("mtl_lora", "mtl_lora", MTLLoRAConfig, "MTL-LoRA"),
    ("reft", "reft", ReftConfig, "Representation fine-tuning (ReFT)"),
)

# Per-value documentation of enumerations: (family, field) → value → text. Family "*" applies
# to every family that has the field.
_ENUM_DOCS: dict[tuple[str, str], dict[Any, str]] = {
    ("bottleneck", "init_weights"): {
        "bert": "Weights ~ N(0, 0.02), biases 0 (BERT initialisation).",
        "mam_adapter": "Kaiming-uniform down projection, zero up projection: the adapter starts "
        "as the identity.",
        "houlsby": "Truncated normal (std 0.01) for both projections (Adapter+).",
    },
    ("bottleneck", "inv_adapter"): {
        "nice": "NICE coupling block after the embeddings.",
        "glow": "Glow coupling block after the embeddings.",
        None: "No invertible adapter.",
    },
    ("bottleneck", "scaling"): {
        "learned": "One learned scalar, initialised to 1.",
        "channel": "One learned value per hidden channel, initialised to 1.",
    },
    ("bottleneck", "residual_before_ln"): {
        "post_add": "After the residual addition of the original layer norm (needs "
        "original_ln_before=True).",
    },
    ("bottleneck", "phm_c_init"): {
        "normal": "Rule matrices ~ normal.",
        "uniform": "Rule matrices ~ uniform.",
    },
    ("bottleneck", "hypercomplex_nonlinearity"): {
        "phm": "PHM initialisation of W.",
        "glorot-normal": "Glorot (Xavier) normal initialisation of W.",
        "glorot-uniform": "Glorot (Xavier) uniform initialisation of W.",
        "normal": "Normal initialisation of W.",
    },
    ("lora", "composition_mode"): {
        "add": "Add a low-rank update scaled by alpha/r (LoRA, VeRA, DoRA).",
        "scale": "Multiply the output by a learned vector (IA³); needs r = 1.",
    },
    ("lora", "init_weights"): {
        "lora": "A Kaiming-uniform, B zero: the update starts at zero.",
        "bert": "A and B ~ N(0, 0.02).",
        "ia3": "Ones: IA³ scaling vectors start as the identity.",
        "vera": "Kaiming-uniform shared random matrices (VeRA).",
    },
    ("mtl_lora", "task_specific_matrix_type"): {
        "singular_values": "A learned diagonal per task.",
        "linear": "A learned full matrix per task.",
    },
    ("prompt_tuning", "prompt_init"): {
        "random_uniform": "Uniform in ±random_uniform_scale.",
        "from_string": "The token embeddings of prompt_init_text (repeated or cut to length).",
    },
    ("prompt_tuning", "combine"): {
        "prefix": "Prompts before the whole input.",
        "prefix_after_bos": "Prompts right after the first (BOS) token.",
    },
    ("reft", "layers"): {"all": "Every layer of the model."},
    ("*", "attn_matrices"): {
        "q": "Query projection.",
        "k": "Key projection.",
        "v": "Value projection.",
    },
    ("*", "dtype"): {
        "float32": "32-bit float.",
        "float16": "16-bit float.",
        "bfloat16": "16-bit brain float.",
        "float64": "64-bit float.",
        "float": "Alias of float32.",
        "half": "Alias of float16.",
        "double": "Alias of float64.",
        None: "The dtype of the model.",
    },
    ("*", "non_linearity"): {
        "relu": "ReLU.",
        "gelu": "GELU (exact).",
        "gelu_new": "GELU, tanh approximation (GPT-2's).",
        "swish": "Swish / SiLU.",
        "silu": "SiLU / Swish.",
        "tanh": "Hyperbolic tangent.",
        "leakyrelu": "Leaky ReLU (functional form).",
        "prelu": "Parametric ReLU (adds one trainable parameter).",
        "linear": "Identity.",
        None: "Identity.",
    },
}

_ARCHITECTURE_DOC = (
    "Selects the method family. Bottleneck adapters have no `architecture` key in the reference "
    'format (null and "bottleneck" are accepted too); every other family must name itself.'
)


def _expect(annotated: Any) -> ft.Expect:
    """The ``Expect`` marker carried by an annotated field type (identifies the type)."""
    for meta in get_args(annotated)[1:]:
        if isinstance(meta, ft.Expect):
            return meta
    raise LookupError(f"{annotated!r} has no Expect marker")  # pragma: no cover


_POSITIVE: Json = {"type": "number", "exclusiveMinimum": 0}
_LAYERS: Json = {"type": "array", "items": {"type": "integer", "minimum": 0}, "uniqueItems": True}

# Schemas of the annotated field types whose rules pydantic cannot express by itself.
_TYPE_SCHEMAS: dict[int, Json] = {
    id(_expect(ft.PositiveNumber)): _POSITIVE,
    id(_expect(ft.Probability)): {"type": "number", "minimum": 0, "exclusiveMaximum": 1},
    id(_expect(ft.OptionalFloat)): {"type": ["number", "null"]},
    id(_expect(InvReduction)): {"anyOf": [_POSITIVE, {"type": "null"}]},
    id(_expect(ft.ReductionFactor)): {
        "anyOf": [
            _POSITIVE,
            {
                "type": "object",
                "propertyNames": {"pattern": "^(default|[0-9]+)$"},
                "additionalProperties": _POSITIVE,
                "required": ["default"],
            },
        ]
    },
    id(_expect(ft.NonLinearity)): {"type": "string", "enum": list(ft.ACTIVATIONS)},
    id(_expect(ft.OptionalNonLinearity)): {"enum": [*ft.ACTIVATIONS, None]},
    id(_expect(ft.LayerList)): _LAYERS,
    id(_expect(ft.AttnMatrices)): {
        "type": "array",
        "items": {"type": "string", "enum": ["q", "k", "v"]},
        "minItems": 1,
        "uniqueItems": True,
    },
    id(_expect(ft.Scaling)): {
        "anyOf": [{"type": "number"}, {"type": "string", "enum": ["learned", "channel"]}]
    },
    id(_expect(ft.Dtype)): {"enum": [*ft.DTYPES, None]},
    id(_expect(ReftLayers)): {"anyOf": [{"type": "string", "enum": ["all"]}, _LAYERS]},
}


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


def _field_type_schema(cls: type[AdapterConfig], name: str, generated: Json) -> Json:
    info = cls.model_fields[name]
    for meta in info.metadata:
        if isinstance(meta, ft.Expect) and id(meta) in _TYPE_SCHEMAS:
            return copy.deepcopy(_TYPE_SCHEMAS[id(meta)])
    return _tidy(generated)


def _tidy(node: Any) -> Any:
    """Pydantic's output made plainer: no titles, ``number`` for int|float, minItems on arrays."""
    if isinstance(node, list):
        return [_tidy(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: _tidy(v) for k, v in node.items() if k != "title"}
    if out.get("type") == "array" and "minLength" in out:
        out["minItems"] = out.pop("minLength")
    if "const" in out and "enum" not in out:
        out["enum"] = [out.pop("const")]
    if "anyOf" in out:
        branches = out["anyOf"]
        if {"type": "number"} in branches:
            branches = [b for b in branches if b != {"type": "integer"}]
        if all(set(b) == {"type"} and isinstance(b["type"], str) for b in branches):
            out.pop("anyOf")
            types = [b["type"] for b in branches]
            out["type"] = types[0] if len(types) == 1 else types
        elif len(branches) == 1:
            out.pop("anyOf")
            out.update(branches[0])
        else:
            out["anyOf"] = branches
    return out


def _literal(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _markdown(text: str) -> str:
    """Quoted values ('relu') as code spans (`"relu"`)."""
    parts = text.split("'")
    if len(parts) % 2 == 0:  # unbalanced quotes: leave as is
        return text
    return "".join(f'`"{p}"`' if i % 2 else p for i, p in enumerate(parts))


def _attach_enum_docs(node: Json, docs: Mapping[Any, str]) -> None:
    """Add ``enumDescriptions``/``markdownEnumDescriptions`` to every enum inside ``node``."""
    if "enum" in node:
        values = node["enum"]
        texts = [docs.get(v, "") for v in values]
        if any(texts):
            node["enumDescriptions"] = texts
            node["markdownEnumDescriptions"] = [_markdown(t) for t in texts]
    for key in ("anyOf", "oneOf"):
        for branch in node.get(key, []):
            _attach_enum_docs(branch, docs)
    if isinstance(node.get("items"), dict):
        _attach_enum_docs(node["items"], docs)


def _distinct(values: Iterable[Any]) -> list[Any]:
    out: list[Any] = []
    for v in values:
        if not any(v == o and type(v) is type(o) for o in out):
            out.append(v)
    return out


def _property(
    cls: type[AdapterConfig],
    family: str,
    name: str,
    generated: Json,
    presets: Mapping[str, AdapterConfig],
) -> Json:
    info = cls.model_fields[name]
    prop: Json = {}
    description = info.description or name.replace("_", " ")
    prop["description"] = description
    prop.update(_field_type_schema(cls, name, generated))
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
    docs = {**_ENUM_DOCS.get(("*", name), {}), **_ENUM_DOCS.get((family, name), {})}
    if docs:
        _attach_enum_docs(prop, docs)
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
    generated = cls.model_json_schema(mode="validation")
    gen_props: Json = generated.get("properties", {})
    presets = _family_presets(tag)
    family = "bottleneck" if tag is None else tag
    properties: Json = {"$schema": _SCHEMA_KEY, "architecture": _architecture_property(tag)}
    for field in cls.model_fields:
        if field == "architecture":
            continue
        properties[field] = _property(cls, family, field, gen_props[field], presets)
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
    rules = _RULES.get(family)
    if rules:
        variant["allOf"] = copy.deepcopy(rules)
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
                "reduction_factor": {"anyOf": [_POSITIVE, {"type": "null"}]},
            },
        }
    examples = [presets[i].to_dict() for i in list(presets)[:1]]
    if examples:
        variant["examples"] = examples
    return variant


def _when(field: str, value: Any, then: Json) -> Json:
    return {"if": {"properties": {field: {"const": value}}, "required": [field]}, "then": then}


# Cross-field rules that a schema can state precisely (each gives an editor a located message).
_RULES: dict[str, list[Json]] = {
    "bottleneck": [
        {
            "if": {"properties": {"inv_adapter": {"type": "string"}}, "required": ["inv_adapter"]},
            "then": {
                "properties": {"inv_adapter_reduction_factor": _POSITIVE},
                "required": ["inv_adapter_reduction_factor"],
            },
        },
        # Placed somewhere: not all of the location flags off (absent means the default).
        {
            "not": {
                "properties": {
                    "mh_adapter": {"const": False},
                    "output_adapter": {"const": False},
                    "cross_adapter": {"const": False},
                    "inv_adapter": {"const": None},
                },
                "required": ["mh_adapter", "output_adapter"],
            }
        },
        _when(
            "residual_before_ln",
            "post_add",
            {
                "properties": {"original_ln_before": {"const": True}},
                "required": ["original_ln_before"],
            },
        ),
    ],
    "lora": [
        {
            "not": {
                "properties": {
                    "selfattn_lora": {"const": False},
                    "intermediate_lora": {"const": False},
                    "output_lora": {"const": False},
                },
                "required": ["selfattn_lora"],
            }
        },
        _when(
            "composition_mode",
            "scale",
            {
                "properties": {
                    "r": {"const": 1},
                    "dropout": {"const": 0},
                    "use_dora": {"const": False},
                    "init_weights": {"not": {"const": "vera"}},
                },
                "required": ["r"],
            },
        ),
    ],
    "prompt_tuning": [
        _when(
            "prompt_init",
            "from_string",
            {
                "properties": {"prompt_init_text": {"type": "string", "minLength": 1}},
                "required": ["prompt_init_text"],
            },
        )
    ],
}
_RULES["mtl_lora"] = _RULES["lora"]


def _union_variant() -> Json:
    doc = (ConfigUnion.__doc__ or "").strip().splitlines()[0]
    unions = [
        i for i, p in IDENTIFIERS.items() if issubclass(p.cls, ConfigUnion) and not p.deprecated
    ]
    configs_doc = "The combined single-method configs (unions do not nest)."
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
                # A member is any single-method variant; "$schema" belongs on the top level only.
                "items": {"$ref": "#/$defs/single_method", "properties": {"$schema": False}},
            },
        },
        "required": ["architecture", "configs"],
        "additionalProperties": False,
        "examples": [preset_config("mam").to_dict()],
    }


def _defs() -> Json:
    defs: Json = {}
    for name, tag, cls, title in _VARIANTS:
        defs[name] = _variant(name, tag, cls, title)
    defs["union"] = _union_variant()
    defs["single_method"] = {
        "description": "One adapter method (any variant except a union).",
        "oneOf": [{"$ref": f"#/$defs/{name}"} for name, *_ in _VARIANTS],
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
    config_doc = "The adapter config (the config's to_dict())."
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
                "markdownDescription": "The adapter config (the config's `to_dict()`).",
                "$ref": "#/$defs/adapter_config",
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
