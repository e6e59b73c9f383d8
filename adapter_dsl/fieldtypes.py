"""Annotated field types: each carries its validation rule, a human "expected" text and, where
pydantic cannot derive it, its JSON Schema.

The rules live here, next to the type a field declares, so that a config class reads as a table
of fields. ``Expect`` metadata is what error messages print after "expected"; ``WithJsonSchema``
states the same rule for editors, and ``EnumDocs`` documents each value of an enumeration.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    GetJsonSchemaHandler,
    StrictBool,
    StrictInt,
    StrictStr,
    WithJsonSchema,
)
from pydantic_core import CoreSchema

__all__ = [
    "ACTIVATIONS",
    "DTYPES",
    "MAX_COUNT",
    "MAX_SEED",
    "AttnMatrices",
    "Bool",
    "Dtype",
    "EnumDocs",
    "Expect",
    "InputScaledLocations",
    "LayerList",
    "NonLinearity",
    "NonNegInt",
    "OptionalFloat",
    "OptionalNonLinearity",
    "OptionalSeed",
    "PositiveInt",
    "PositiveNumber",
    "Probability",
    "ReductionFactor",
    "RuleViolation",
    "Scaling",
]


class FrozenDict(Mapping[str, Any]):
    """A read-only, hashable, picklable mapping: how frozen configs hold mapping values."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, Any]) -> None:
        self._data = dict(data)

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        return hash(tuple(self._data.items()))

    def __repr__(self) -> str:
        return repr(self._data)

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenDict, (self._data,))


@dataclass(frozen=True)
class Expect:
    """Annotation metadata: what a valid value looks like, in words."""

    text: str


class EnumDocs:
    """Annotation metadata: one sentence per value of an enumeration, shown by editors
    (``enumDescriptions``, on every enum of the type's schema, nested ones included)."""

    __slots__ = ("docs",)

    def __init__(self, docs: Mapping[Any, str]) -> None:
        self.docs = dict(docs)

    def __hash__(self) -> int:
        return hash(tuple(self.docs.items()))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, EnumDocs) and other.docs == self.docs

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> dict[str, Any]:
        return _with_enum_docs(handler(core_schema), self.docs)


def _with_enum_docs(node: dict[str, Any], docs: Mapping[Any, str]) -> dict[str, Any]:
    out = dict(node)  # schemas from WithJsonSchema are shared: never change them in place
    if "enum" in out:
        texts = [docs.get(v, "") for v in out["enum"]]
        if any(texts):
            out["enumDescriptions"] = texts
    for key in ("anyOf", "oneOf"):
        if key in out:
            out[key] = [_with_enum_docs(branch, docs) for branch in out[key]]
    if isinstance(out.get("items"), dict):
        out["items"] = _with_enum_docs(out["items"], docs)
    return out


class RuleViolation(ValueError):
    """A broken rule on one field; ``field`` locates it (``path``, when given, deeper: e.g.
    ``("configs", 3)`` for a union member), ``expected``/``suggestion`` explain it."""

    def __init__(
        self,
        field: str | None,
        message: str,
        *,
        expected: str | None = None,
        suggestion: str | None = None,
        path: tuple[str | int, ...] | None = None,
    ) -> None:
        self.field = field
        self.message = message
        self.expected = expected
        self.suggestion = suggestion
        self.path = path
        super().__init__(message)


class RuleViolations(ValueError):
    """Several cross-field rule violations found at once."""

    def __init__(self, violations: list[RuleViolation]) -> None:
        self.violations = violations
        super().__init__("; ".join(v.message for v in violations))


# Activation names the reference resolves: transformers' ACT2FN keys plus its own "leakyrelu".
ACTIVATIONS: tuple[str, ...] = (
    "gelu",
    "gelu_10",
    "gelu_accurate",
    "gelu_fast",
    "gelu_new",
    "gelu_python",
    "gelu_python_tanh",
    "gelu_pytorch_tanh",
    "laplace",
    "leaky_relu",
    "leakyrelu",
    "linear",
    "mish",
    "prelu",
    "quick_gelu",
    "relu",
    "relu2",
    "relu6",
    "sigmoid",
    "silu",
    "swish",
    "tanh",
    "xielu",
)

# Upper bounds of integer fields (in the schema as "maximum"). Sizes, ranks, lengths, counts and
# layer indices fit an int32, as the tensors they shape need; no real config comes near it.
MAX_COUNT = 2**31 - 1
MAX_SEED = 2**64 - 1  # the largest seed torch.manual_seed takes
# Numbers (int or float) must fit a float: a larger int cannot be a factor, scale or rate, and
# past Python's 4,300-digit limit it could not even be printed back.
_FLOAT_MAX = sys.float_info.max

DTYPES: tuple[str, ...] = ("float32", "float16", "bfloat16", "float64", "float", "half", "double")

_ACTIVATION_DOCS: dict[Any, str] = {
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
}
_DTYPE_DOCS: dict[Any, str] = {
    "float32": "32-bit float.",
    "float16": "16-bit float.",
    "bfloat16": "16-bit brain float.",
    "float64": "64-bit float.",
    "float": "Alias of float32.",
    "half": "Alias of float16.",
    "double": "Alias of float64.",
    None: "The dtype of the model.",
}


def _case_insensitive(names: tuple[str, ...]) -> str:
    """An ECMA-262 pattern matching exactly the strings whose ``str.lower()`` is one of
    ``names`` (the KELVIN SIGN lower-cases to "k", so it is a spelling of k too)."""

    kelvin = "\u212a"

    def letter(c: str) -> str:
        if not c.isalpha():
            return c
        return f"[{c}{c.upper()}{kelvin if c == 'k' else ''}]"

    return "^(?:" + "|".join("".join(letter(c) for c in name) for name in names) + ")$"


# Activation names are matched case-insensitively, as the reference does; the enum branch is
# what editors complete and document.
_ACTIVATION_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "string", "enum": list(ACTIVATIONS)},
        {"type": "string", "pattern": _case_insensitive(ACTIVATIONS)},
    ]
}


def as_float(value: Any) -> float:
    """A number as a float; huge ints that do not fit a float are an error, not OverflowError."""
    try:
        return float(as_number(value))
    except OverflowError:
        raise ValueError("too large for a floating-point number") from None


def _scaling(value: Any) -> Any:
    if isinstance(value, str):
        if value not in ("learned", "channel"):
            raise ValueError(f"the string {value!r} is neither 'learned' nor 'channel'")
        return value
    return as_float(value)


def as_number(value: Any) -> Any:
    # bool is an int subclass and strings would be coerced by lax parsing: both are type errors.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{type(value).__name__} is not a number")
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError("expected a finite number")
    if isinstance(value, int) and abs(value) > _FLOAT_MAX:
        raise ValueError("too large: a number must fit a 64-bit float (at most about 1.8e308)")
    return value


def as_positive(value: int | float) -> int | float:
    if value <= 0:
        raise ValueError("must be greater than 0")
    return value


def _integral(value: Any) -> Any:
    """An integral float as the int it equals: JSON has one number type, so 2.0 is the number 2
    (and JSON Schema's "integer" accepts it); other values are left to the strict int check."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _probability(value: int | float) -> float:
    if not 0 <= value < 1:
        raise ValueError("must be in [0, 1)")
    return float(value)


def _activation(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{type(value).__name__} is not an activation name")
    name = value.lower()  # the reference lower-cases too; we store the normalised name
    if name not in ACTIVATIONS:
        from .errors import did_you_mean

        raise RuleViolation(
            None,
            f"unknown activation {value!r}",
            expected="one of " + ", ".join(ACTIVATIONS),
            suggestion=did_you_mean(value, ACTIVATIONS),
        )
    return name


def _distinct(values: tuple[Any, ...]) -> tuple[Any, ...]:
    seen: set[Any] = set()
    for v in values:
        if v in seen:
            raise ValueError(f"{v!r} is listed twice")
        seen.add(v)
    return values


def _not_str(value: Any) -> Any:
    # A bare string would otherwise be read as a sequence of characters ("qkv").
    if isinstance(value, str | bytes):
        raise ValueError("a string is not a list")
    return value


def _reduction_factor(value: Any) -> Any:
    """A positive number, or a mapping of layer index → positive number with a 'default' key."""
    if isinstance(value, Mapping):
        out: dict[str, int | float] = {}
        for key, factor in value.items():
            # The reference only matches str(layer_idx) keys, so int keys would be silently
            # ignored there; we accept them and store the key it documents (the string form).
            if isinstance(key, bool) or not isinstance(key, int | str):
                raise ValueError(f"mapping keys must be layer indices or 'default', found {key!r}")
            skey = str(key)
            # The same rule as _LAYER_KEY below: "0", "12", never "01" or "+1".
            if skey != "default" and not (
                skey.isdigit() and skey.isascii() and skey == str(int(skey))
            ):
                raise ValueError(f"mapping keys must be layer indices or 'default', found {key!r}")
            if skey in out:
                raise ValueError(f"layer {skey} is given twice")
            try:
                out[skey] = as_positive(as_number(factor))
            except ValueError as exc:
                raise ValueError(f"reduction factor for {skey!r}: {exc}") from None
        if "default" not in out:
            raise RuleViolation(
                None,
                "the reduction factor mapping has no 'default' entry",
                expected="a 'default' key for the layers not listed",
                suggestion="add 'default': 16 (or another factor)",
            )
        return out
    return as_positive(as_number(value))


# JSON Schemas shared by several field types (and the bottleneck and ReFT families).
# Numbers must fit a float (as_number), so the schema bounds them too.
POSITIVE_SCHEMA: dict[str, Any] = {"type": "number", "exclusiveMinimum": 0, "maximum": _FLOAT_MAX}
_FINITE: dict[str, Any] = {"type": "number", "minimum": -_FLOAT_MAX, "maximum": _FLOAT_MAX}
LAYERS_SCHEMA: dict[str, Any] = {
    "type": "array",
    "items": {"type": "integer", "minimum": 0, "maximum": MAX_COUNT},
    "uniqueItems": True,
}
_LAYER_KEY = "^(default|0|[1-9][0-9]*)$"

Bool = Annotated[StrictBool, Expect("true or false")]
# _integral runs first (the later metadata wraps the earlier), so 2.0 reaches the bounds as 2.
PositiveInt = Annotated[
    StrictInt, Field(ge=1, le=MAX_COUNT), BeforeValidator(_integral), Expect("an integer ≥ 1")
]
NonNegInt = Annotated[
    StrictInt, Field(ge=0, le=MAX_COUNT), BeforeValidator(_integral), Expect("an integer ≥ 0")
]
OptionalSeed = Annotated[
    StrictInt | None,
    Field(ge=0, le=MAX_SEED),
    BeforeValidator(_integral),
    Expect("an integer seed ≥ 0, or None"),
]
PositiveNumber = Annotated[
    int | float,
    BeforeValidator(as_positive),
    BeforeValidator(as_number),
    Expect("a number > 0"),
    WithJsonSchema(POSITIVE_SCHEMA),
]
OptionalFloat = Annotated[
    float | None,
    # Stored as a float: the reference selects VeRA only when vera_d/vera_b are floats, so an
    # int written to JSON would silently mean plain LoRA there.
    BeforeValidator(lambda v: v if v is None else as_float(v)),
    Expect("a number, or None"),
    WithJsonSchema({"anyOf": [_FINITE, {"type": "null"}]}),
]
Probability = Annotated[
    float,
    BeforeValidator(_probability),
    BeforeValidator(as_number),
    Expect("a number in [0, 1)"),
    WithJsonSchema({"type": "number", "minimum": 0, "exclusiveMaximum": 1}),
]
ReductionFactor = Annotated[
    int | float | Mapping[str, int | float],
    # Frozen configs hold a read-only view, so a preset's mapping cannot be changed in place.
    AfterValidator(lambda v: FrozenDict(v) if isinstance(v, Mapping) else v),
    BeforeValidator(_reduction_factor),
    Expect("a number > 0, or a mapping of layer indices to numbers with a 'default' key"),
    WithJsonSchema(
        {
            "anyOf": [
                POSITIVE_SCHEMA,
                {
                    "type": "object",
                    "propertyNames": {"pattern": _LAYER_KEY},
                    "additionalProperties": POSITIVE_SCHEMA,
                    "required": ["default"],
                },
            ]
        }
    ),
]
NonLinearity = Annotated[
    str,
    BeforeValidator(_activation),
    Expect("an activation name such as 'relu' or 'gelu'"),
    WithJsonSchema(_ACTIVATION_SCHEMA),
    EnumDocs(_ACTIVATION_DOCS),
]
OptionalNonLinearity = Annotated[
    str | None,
    BeforeValidator(lambda v: v if v is None else _activation(v)),
    Expect("an activation name such as 'relu', or None"),
    WithJsonSchema({"anyOf": [{"enum": [*ACTIVATIONS, None]}, _ACTIVATION_SCHEMA["anyOf"][1]]}),
    EnumDocs(_ACTIVATION_DOCS),
]
LayerList = Annotated[
    tuple[NonNegInt, ...],
    BeforeValidator(_not_str),
    AfterValidator(_distinct),
    Expect("a list of distinct layer indices ≥ 0"),
    WithJsonSchema(LAYERS_SCHEMA),
]
AttnMatrices = Annotated[
    tuple[Literal["q", "k", "v"], ...],
    BeforeValidator(_not_str),
    AfterValidator(_distinct),
    Field(min_length=1),
    Expect("a non-empty list of distinct matrices from 'q', 'k', 'v'"),
    WithJsonSchema(
        {
            "type": "array",
            "items": {"type": "string", "enum": ["q", "k", "v"]},
            "minItems": 1,
            "uniqueItems": True,
        }
    ),
    EnumDocs({"q": "Query projection.", "k": "Key projection.", "v": "Value projection."}),
]
#: LoRA-family locations whose input IA³ may scale (the feed-forward Linears and the
#: attention output projection; PEFT's ``feedforward_modules``).
INPUT_SCALED_LOCATIONS = ("attn_output", "intermediate", "output", "gate")
InputScaledLocations = Annotated[
    tuple[Literal["attn_output", "intermediate", "output", "gate"], ...],
    BeforeValidator(_not_str),
    AfterValidator(_distinct),
    Expect("a list of distinct locations from 'attn_output', 'intermediate', 'output', 'gate'"),
    WithJsonSchema(
        {
            "type": "array",
            "items": {"type": "string", "enum": list(INPUT_SCALED_LOCATIONS)},
            "uniqueItems": True,
        }
    ),
    EnumDocs(
        {
            "attn_output": "The attention output projection (attn_output_lora).",
            "intermediate": "The feed-forward intermediate projection (intermediate_lora).",
            "output": "The feed-forward output projection (output_lora).",
            "gate": "The feed-forward gate projection (gate_lora).",
        }
    ),
]
Scaling = Annotated[
    float | Literal["learned", "channel"],
    # An int is a number too: the reference's rejection of scaling=2 (but not 2.0) is a quirk.
    BeforeValidator(_scaling),
    Expect("a number, 'learned' or 'channel'"),
    WithJsonSchema({"anyOf": [_FINITE, {"type": "string", "enum": ["learned", "channel"]}]}),
    EnumDocs(
        {
            "learned": "One learned scalar, initialised to 1.",
            "channel": "One learned value per hidden channel, initialised to 1.",
        }
    ),
]
Dtype = Annotated[
    Literal["float32", "float16", "bfloat16", "float64", "float", "half", "double"] | None,
    Expect("a torch dtype name such as 'float32' or 'bfloat16', or None"),
    WithJsonSchema({"enum": [*DTYPES, None]}),
    EnumDocs(_DTYPE_DOCS),
]
Text = Annotated[StrictStr, Expect("a string")]
