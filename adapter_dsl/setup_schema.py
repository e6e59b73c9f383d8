"""JSON Schemas of the composition files: ``adapter_setup.json`` and ``adapter_fusion_config.json``.

Both are generated from the same data the loaders use: the setup schema from the block classes,
their keyword arguments and the nesting table (each block's ``children`` may hold exactly the
kinds :data:`~adapter_dsl.composition.ALLOWED_CHILDREN` allows); the fusion schema from the
fields of :class:`~adapter_dsl.methods.fusion.AdapterFusionConfig` and its two presets. The
depth rule and sizes that must match the number of children are left to ``load_setup``.
"""

from __future__ import annotations

from typing import Any

from .composition import ALLOWED_CHILDREN, BLOCKS, Fuse, Stack
from .methods.fusion import AdapterFusionConfig
from .registry import FUSION_IDENTIFIERS

__all__ = ["fusion_config_schema", "setup_schema"]

Json = dict[str, Any]
METASCHEMA = "https://json-schema.org/draft/2020-12/schema"


def _doc(text: str) -> Json:
    return {"description": text, "markdownDescription": text}


def _schema_key(schema_id: str) -> Json:
    return {
        "type": "string",
        **_doc("The JSON Schema of this file (editors use it; adapter_dsl ignores it)."),
        "examples": [schema_id],
    }


# -- adapter_setup.json ------------------------------------------------------------------------

_BLOCK_DOCS = {
    "Stack": "Run the children one after the other.",
    "Fuse": "AdapterFusion over the children.",
    "Split": "Split the sequence between the children (splits: positions per child).",
    "BatchSplit": "Split the batch between the children (batch_sizes: rows per child).",
    "Parallel": "Run every child on its own copy of the input.",
    "Average": "Weighted average of the children's outputs.",
    "MultiTask": "Route each row to the child named by its task id.",
}

_SIZES: Json = {
    "type": "array",
    "items": {"type": "integer", "minimum": 1},
    "minItems": 1,
    **_doc("One positive size per child."),
}
_KWARGS: dict[str, Json] = {
    "Fuse": {
        "name": {
            "type": "string",
            "minLength": 1,
            **_doc("A custom fusion name (default: the children's last names joined by ',')."),
        }
    },
    "Split": {"splits": _SIZES},
    "BatchSplit": {"batch_sizes": _SIZES},
    "Average": {
        "weights": {
            "type": "array",
            "items": {"type": "number"},
            "minItems": 1,
            **_doc("One weight per child, stored normalised to sum 1."),
        },
        "normalize_weights": {
            "type": "boolean",
            **_doc(
                "False: the weights are used as given (written only when they do not sum to 1)."
            ),
        },
    },
}
_REQUIRED_KWARGS = {"Split": ["splits"], "BatchSplit": ["batch_sizes"]}


def _block_def(name: str) -> Json:
    kinds = ALLOWED_CHILDREN[BLOCKS[name]]
    child_refs = [{"$ref": "#/$defs/single" if k == "name" else f"#/$defs/{k}"} for k in kinds]
    props: Json = {
        "type": {"const": name, **_doc(f"The block: {name}.")},
        "children": {
            "type": "array",
            "minItems": 1,
            "items": {"anyOf": child_refs},
            **_doc("Adapter names ({'type': 'single', ...}) and nested blocks."),
        },
    }
    if name in _KWARGS:
        kwargs: Json = {
            "type": "object",
            "properties": _KWARGS[name],
            "additionalProperties": False,
            **_doc("The block's keyword arguments."),
        }
        if name in _REQUIRED_KWARGS:
            kwargs["required"] = _REQUIRED_KWARGS[name]
        props["kwargs"] = kwargs
    definition: Json = {
        "title": name,
        **_doc(_BLOCK_DOCS[name]),
        "type": "object",
        "properties": props,
        "required": ["type", "children", *(["kwargs"] if name in _REQUIRED_KWARGS else [])],
        "additionalProperties": False,
    }
    return definition


def _setup_defs() -> Json:
    defs: Json = {
        "single": {
            "title": "Adapter",
            **_doc("One adapter, by name."),
            "type": "object",
            "properties": {
                "type": {"const": "single"},
                "children": {
                    "type": "array",
                    "items": {"type": "string", "minLength": 1},
                    "minItems": 1,
                    "maxItems": 1,
                },
            },
            "required": ["type", "children"],
            "additionalProperties": False,
        },
        **{name: _block_def(name) for name in BLOCKS},
    }
    defs["setup"] = {
        **_doc("An adapter setup: a block, or one adapter."),
        "anyOf": [{"$ref": f"#/$defs/{k}"} for k in ("single", *BLOCKS)],
    }
    return defs


def setup_schema(schema_id: str) -> Json:
    """The schema of ``adapter_setup.json`` as ``save_adapter_setup`` writes it."""
    example = Stack("a", Fuse("b", "c")).to_dict()
    return {
        "$schema": METASCHEMA,
        "$id": schema_id,
        "title": "Adapter setup (adapter_setup.json)",
        **_doc(
            "How the adapters of a saved setup combine, in the reference's JSON form of "
            "composition blocks, with the head setup."
        ),
        "type": "object",
        "properties": {
            "$schema": _schema_key(schema_id),
            "adapter_setup": {"$ref": "#/$defs/setup"},
            "head_setup": {
                **_doc("The prediction heads used with the setup: a name, a block or null."),
                "anyOf": [
                    {"type": "null"},
                    {"type": "string"},
                    {"type": "array", "items": {"type": "string"}},
                    {"$ref": "#/$defs/setup"},
                ],
            },
            "version": {
                "type": "string",
                **_doc("Writer and version."),
                "examples": ["adapters.1.3.0"],
            },
        },
        "required": ["adapter_setup"],
        "additionalProperties": False,
        "examples": [{"adapter_setup": example, "head_setup": None, "version": "adapters.1.3.0"}],
        "$defs": _setup_defs(),
    }


# -- adapter_fusion_config.json ----------------------------------------------------------------


def _fusion_property(name: str) -> Json:
    info = AdapterFusionConfig.model_fields[name]
    values = {ident: getattr(p.cls(), name) for ident, p in FUSION_IDENTIFIERS.items()}
    presets = ", ".join(f"{ident}: {value!r}" for ident, value in values.items())
    text = f"{info.description} Presets: {presets}."
    prop: Json = {**_doc(text), "examples": list(dict.fromkeys(values.values()))}
    if name == "dropout_prob":
        prop |= {"type": ["number", "null"], "minimum": 0, "exclusiveMaximum": 1}
        prop["examples"] = [None, 0.1]
    else:
        prop["type"] = "boolean"
    return prop


def _fusion_def() -> Json:
    fields = list(AdapterFusionConfig.model_fields)
    return {
        "title": "AdapterFusion config",
        **_doc("An AdapterFusion config's to_dict(): every field, as the reference writes it."),
        "type": "object",
        "properties": {name: _fusion_property(name) for name in fields},
        "required": fields,
        "additionalProperties": False,
        "examples": [p.cls().to_dict() for p in FUSION_IDENTIFIERS.values()],
    }


def fusion_config_schema(schema_id: str) -> Json:
    """The schema of ``adapter_fusion_config.json`` as the reference's ``save_adapter_fusion``
    writes it (a fusion config inside the saved-file envelope)."""

    def text(doc: str, *examples: Any) -> Json:
        return {"type": "string", **_doc(doc), "examples": list(examples)}

    return {
        "$schema": METASCHEMA,
        "$id": schema_id,
        "title": "Saved AdapterFusion (adapter_fusion_config.json)",
        **_doc("A saved AdapterFusion's config plus the model it was trained on."),
        "type": "object",
        "properties": {
            "$schema": _schema_key(schema_id),
            "config": {"$ref": "#/$defs/fusion_config"},
            "adapter_names": {
                "type": "array",
                "items": {"type": "string", "minLength": 1},
                **_doc("The fused adapters, in order."),
            },
            "hidden_size": {
                "type": ["integer", "null"],
                "minimum": 1,
                **_doc("Hidden size of the model."),
                "examples": [768],
            },
            "model_class": text("Python class name of the model.", "BertModel"),
            "model_name": text("Name or path of the model.", "bert-base-uncased", ""),
            "model_type": text("Hugging Face model type of the model.", "bert"),
            "name": text("Name of the fusion (the fused adapters joined by ',').", "a,b"),
            "version": text("Writer and version.", "adapters.1.3.0"),
        },
        "required": ["config"],
        "additionalProperties": True,
        "$defs": {"fusion_config": _fusion_def()},
    }
