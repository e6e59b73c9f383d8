"""``AdapterSpec``: an adapter config as a field type of a user's own pydantic model or settings.

``cfg: AdapterSpec`` accepts a config string (``"lora[r=16]"``), a dict (a config's ``to_dict()``
or a saved adapter's envelope), a path object (``pathlib.Path`` to a JSON, YAML or TOML file) or
a config object; it validates to our config object and serialises to the canonical string
(``AdapterSpecDict``: to the reference's dict). A plain string is always config text, never a
file name, so a model fed untrusted input never opens a file. Each of our problems becomes a
pydantic ``ValidationError`` entry of type ``adapter_config``, located below the field by the
problem's path, whose message is ours (where, what, expected, found, suggestion and caret).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic_core import PydanticCustomError, ValidationError, core_schema

from .errors import ConfigError, Problem
from .methods.base import AdapterConfig

if TYPE_CHECKING:
    from pydantic.json_schema import JsonSchemaValue

__all__ = ["AdapterSpec", "AdapterSpecDict", "AdapterSpecField", "validate_spec"]

_STRING_SCHEMA: dict[str, Any] = {
    "type": "string",
    "title": "Adapter config string",
    "description": "An adapter_dsl config string: an identifier or methods joined by '|'.",
    "examples": ["lora[r=16, alpha=32]", "seq_bn", "prefix_tuning[bottleneck_size=800]|parallel"],
}


def validate_spec(value: Any) -> AdapterConfig:
    """The config that ``value`` (string, dict, path object or config) describes, or ConfigError.

    A string is parsed as config text; only an ``os.PathLike`` value is opened as a file.
    """
    from .loading import load, load_file, parse

    if isinstance(value, AdapterConfig):
        return value
    if isinstance(value, str):
        return parse(value)
    if isinstance(value, os.PathLike):
        return load_file(value)
    return load(value)


@dataclass(frozen=True)
class AdapterSpecField:
    """Pydantic annotation for a config field: ``Annotated[AdapterConfig, AdapterSpecField()]``.

    ``serialize``: ``"string"`` (canonical config string) or ``"dict"`` (``to_dict()``); the JSON
    Schema follows it in serialisation mode and accepts both forms in validation mode.
    """

    serialize: Literal["string", "dict"] = "string"

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        if self.serialize == "dict":
            serializer = core_schema.plain_serializer_function_ser_schema(
                _to_dict, when_used="always"
            )
        else:
            serializer = core_schema.plain_serializer_function_ser_schema(
                _to_string, when_used="always", return_schema=core_schema.str_schema()
            )
        return core_schema.no_info_plain_validator_function(_validate, serialization=serializer)

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        # The config schema is embedded as its own resource (it carries an "$id"), so its
        # internal "#/$defs/..." references resolve inside it, not against the user's model.
        from .schema import build_schema

        config = _absolute_refs(build_schema("config"))
        config.pop("$schema", None)
        if handler.mode == "serialization":
            return dict(_STRING_SCHEMA) if self.serialize == "string" else config
        return {
            "title": "Adapter config",
            "description": "An adapter config: a config string or a config object.",
            "anyOf": [dict(_STRING_SCHEMA), config],
        }


def _absolute_refs(schema: dict[str, Any]) -> dict[str, Any]:
    # Our schema's own "#/$defs/x" references, made absolute against its "$id" (embedded
    # resources resolve them there, and pydantic leaves absolute references alone).
    base = schema["$id"]

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            return {
                k: base + v if k == "$ref" and isinstance(v, str) and v.startswith("#") else walk(v)
                for k, v in node.items()
            }
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    result: dict[str, Any] = walk(schema)
    return result


def _validate(value: Any) -> AdapterConfig:
    try:
        return validate_spec(value)
    except ConfigError as err:
        # One entry per problem, located below the field by the problem's path (pydantic
        # extends the field's location with it); the message is ours, caret included.
        raise ValidationError.from_exception_data(
            "AdapterSpec",
            [
                {
                    "type": PydanticCustomError(
                        "adapter_config",
                        _message(problem, err.source),
                        {"problem": problem.to_dict()},
                    ),
                    "loc": problem.location.path,
                    "input": value,
                }
                for problem in err.problems
            ],
        ) from None


def _message(problem: Problem, source: str | None) -> str:
    # The problem as ConfigError renders it, without the "invalid adapter config" heading.
    # pydantic fills {name} placeholders only for names in the context: other braces stay.
    lines = str(ConfigError([problem], source=source)).splitlines()[1:]
    return "\n".join(line[4:] for line in lines)


def _to_string(value: Any) -> str:
    # A default is not validated unless the model asks for it: a string default arrives as is.
    from .canonical import dumps

    return dumps(validate_spec(value))


def _to_dict(value: Any) -> dict[str, Any]:
    return validate_spec(value).to_dict()


if TYPE_CHECKING:
    AdapterSpec = Annotated[AdapterConfig, AdapterSpecField()]
    AdapterSpecDict = Annotated[AdapterConfig, AdapterSpecField(serialize="dict")]
else:
    # At run time the annotated type also names str: pydantic-settings then reads an environment
    # variable as config text (a JSON object in it still arrives as a dict) instead of insisting
    # on JSON. Validation is ours either way; type checkers see the config class.
    AdapterSpec = Annotated[AdapterConfig | str, AdapterSpecField()]
    AdapterSpecDict = Annotated[AdapterConfig | str, AdapterSpecField(serialize="dict")]
