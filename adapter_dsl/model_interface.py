"""The model interface: a validated, JSON-serialisable description of a model's hook points.

Every model type the backend supports is one :class:`ModelSpec` (a row of
:data:`adapter_dsl.model_types.MODEL_TYPES`); a user describes a model the table lacks with
the same type (the reference's ``AdapterModelInterface``) and registers it with
``adapter_dsl.backend.register_model_type``. This module is pure data: it imports neither torch
nor transformers, so a tool can validate an interface file without them.

Paths are dotted attribute paths (``nn.Module.get_submodule``): model-level ones relative to the
base model, per-layer ones relative to one layer of the group. Structural rules are checked here
(a ``ConfigError`` with JSON pointers on a bad description); whether the paths exist on a given
model is checked by the backend when the interface is registered or first used.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from adapter_dsl.errors import ConfigError, Location, Problem, did_you_mean
from adapter_dsl.registry import method_families

__all__ = [
    "ALL_FAMILIES",
    "ArchitectureSpec",
    "AttentionSpec",
    "LayerGroup",
    "ModelInterface",
    "ModelSpec",
    "ResidualSite",
]

#: Model capabilities (the method families a model can host, ``MethodFamily.capability``)
#: besides prompt tuning, which has a flag of its own; ``"invertible"`` is the invertible
#: adapter of bottleneck configs with ``inv_adapter`` set. Derived from the families registered
#: when this module is imported (a family registered later names one of these in ``requires``).
ALL_FAMILIES: frozenset[str] = frozenset(
    {f.capability for f in method_families() if not f.is_union} - {"prompt_tuning"}
) | {"invertible"}
#: Prefix-tuning config flags; an attention's ``prefix_location`` ends in one of them.
PREFIX_FLAGS = ("self_prefix", "encoder_prefix", "cross_prefix")
# Possessive repetitions: parts are delimited by '.' and '|', so backtracking never helps.
_DOTTED = r"[A-Za-z_][A-Za-z0-9_]*+(?:\.[A-Za-z0-9_]++)*+"
#: A dotted path, or alternatives ``a.b|a.c`` (the first that exists on the model is used).
_PATH = re.compile(rf"^{_DOTTED}(?:\|{_DOTTED})*+$")


def _check_path(value: str | None, *, empty_ok: bool = False) -> str | None:
    if value is None or (empty_ok and value == ""):
        return value
    if not _PATH.match(value):
        raise ValueError(f"'{value}' is not a dotted attribute path such as 'attention.self.query'")
    return value


class _Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ResidualSite(_Spec):
    """One place where a sublayer's output ``H`` meets its residual input ``X``.

    Bottleneck adapters sit here. The reference computes ``Y = LN(H + X)`` (post-LN models) or
    ``Y = H + X`` (pre-LN models) and lets the adapter rewrite that; we reproduce it with hooks:

    * ``residual_module`` / ``residual_arg`` / ``residual_kwarg``: a forward pre-hook on this module
      reads ``X`` from its positional argument ``residual_arg`` or keyword ``residual_kwarg``.
    * ``output_module`` + ``output_kind``:
      ``"output"``: the module's output (or ``output[0]`` for tuples) *is* ``H`` (after dropout);
      a forward hook replaces it with ``H'`` so that the model's own ``H' + X`` (and LN) gives the
      reference result.
      ``"sum"``: the module is the post-sublayer norm whose input is ``S = H + X`` (used where the
      dropout is functional, e.g. BART); ``H`` is recovered as ``S - X`` and the norm's input is
      replaced. ``S - X`` is not bit-identical to ``H`` (one rounding of ``|X|``), the price of
      not copying the model's forward code.
    * ``layer_norm``: the model's post-sublayer LayerNorm (post-LN models) or ``None`` (pre-LN).
    * ``adapters_at``: where the ``adapters`` ModuleDict of this site lives. If the path names an
      existing module (BERT ``attention.output``) the dict is attached to it; otherwise a holder
      module is created under that name (GPT-2 ``attention_adapters``), reproducing the
      reference's state-dict keys.
    * ``residual_module=None``: the sublayer has no residual input of its own (Phi's parallel
      FFN, as the reference's interface describes it): ``X = 0``; parallel adapters are refused.
    * ``residual_extra``: a module whose output is added to the captured ``X`` (GPT-J: the
      FFN's residual is the layer input plus the attention output, after its own adapter).
    * ``hooked``: the reference's plugin "hooking mode": the model adds ``X`` and applies its own
      norms after the hooked output, ``layer_norm`` is only handed to the adapter (used by
      ``original_ln_before``), and ``original_ln_after=False`` is refused as the reference does.
    """

    residual_module: str | None
    residual_arg: int = Field(0, ge=0)
    residual_kwarg: str | None = None
    residual_extra: str | None = None
    output_module: str
    output_kind: Literal["output", "sum"] = "output"
    layer_norm: str | None = None
    adapters_at: str
    hooked: bool = False

    _paths = field_validator(
        "residual_module", "residual_extra", "output_module", "layer_norm", "adapters_at"
    )(_check_path)


class AttentionSpec(_Spec):
    """An attention module and its projections (paths relative to the layer).

    Either ``q``/``k``/``v`` are separate Linears, or ``qkv`` is one fused projection whose output
    is the concatenation of ``qkv_order`` (GPT-2's ``c_attn`` is a ``Conv1D``, i.e. the weight is
    stored transposed: ``fused_is_conv1d``). ``o`` is the output projection (never LoRA'd in the
    reference). ``prefix_location`` is the reference's location key for prefix tuning (it names the
    generator in the state dict); when it ends in ``encoder_prefix`` or ``cross_prefix`` that
    config flag enables it, otherwise it is always on (``self_prefix``, DistilBERT's ``self``,
    CLIP's ``clip_text_model_self_prefix``).
    """

    module: str
    o: str
    q: str | None = None
    k: str | None = None
    v: str | None = None
    qkv: str | None = None
    qkv_order: tuple[str, ...] = ("q", "k", "v")
    fused_is_conv1d: bool = False
    prefix_location: str = "self_prefix"

    _paths = field_validator("module", "o", "q", "k", "v", "qkv")(_check_path)

    @field_validator("qkv_order")
    @classmethod
    def _order(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if sorted(value) != ["k", "q", "v"]:
            raise ValueError(f"qkv_order must order 'q', 'k' and 'v', found {list(value)}")
        return value

    @field_validator("prefix_location")
    @classmethod
    def _location(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
            raise ValueError(f"prefix_location must be an identifier, found {value!r}")
        return value

    @model_validator(mode="after")
    def _projections(self) -> AttentionSpec:
        separate = [self.q, self.k, self.v]
        if self.qkv is not None and any(p is not None for p in separate):
            raise ValueError("give either the fused projection qkv or q, k and v, not both")
        if self.qkv is None and any(p is None for p in separate):
            raise ValueError("give the fused projection qkv, or all of q, k and v")
        return self

    @property
    def is_fused(self) -> bool:
        return self.qkv is not None

    @property
    def prefix_flag(self) -> str:
        """The prefix-tuning config flag that enables this attention's prefix (a location that
        names none, such as DistilBERT's ``self``, is always enabled, as ``self_prefix`` is)."""
        return next(
            (flag for flag in PREFIX_FLAGS if self.prefix_location.endswith(flag)), "self_prefix"
        )


class LayerGroup(_Spec):
    """A stack of identical layers (an encoder or a decoder).

    ``intermediate`` and ``output`` are the FFN Linears the reference calls "intermediate" and
    "output" (LoRA location keys ``intermediate_lora`` / ``output_lora``). For LLaMA-like models the
    reference wires ``down_proj`` as intermediate and ``up_proj`` as output; we follow it so that
    reference weights map onto the same modules. ``config`` is the attribute path of this group's
    own config inside the model config (CLIP's ``text_config``), ``""`` for the model config.
    ``mh_site``/``output_site`` are ``None`` where bottleneck adapters have no place;
    ``cross_site_flag`` is the bottleneck config flag that places an adapter at ``cross_site``
    (BERT decoders: ``mh_adapter``, as in the reference). ``gate`` is the FFN's gate projection
    where it has a separate one (LLaMA's ``gate_proj``; LoRA's ``gate_lora``, an extension: the
    reference never adapts it).
    """

    name: Literal["encoder", "decoder", "text", "vision"]
    layers: str
    self_attention: AttentionSpec
    intermediate: str
    output: str
    mh_site: ResidualSite | None
    output_site: ResidualSite | None
    cross_attention: AttentionSpec | None = None
    cross_site: ResidualSite | None = None
    cross_site_flag: Literal["cross_adapter", "mh_adapter"] = "cross_adapter"
    config: str = ""
    gate: str | None = None

    _paths = field_validator("layers", "intermediate", "output", "gate")(_check_path)

    @field_validator("config")
    @classmethod
    def _config(cls, value: str) -> str:
        _check_path(value, empty_ok=True)
        return value


class ModelSpec(_Spec):
    """Everything the backend needs to know about one model type (see the module docstring).

    ``families`` are the method families the type can host (``prompt_tuning`` separately);
    ``reference_keys`` renames state-dict key fragments between the reference's module names
    (transformers 4.57) and this model's (``(reference, ours)`` pairs, applied in order), for the
    models whose modules transformers 5 renamed.
    """

    model_type: str = Field(min_length=1)
    embeddings: str
    invertible_after: str
    groups: tuple[LayerGroup, ...] = Field(min_length=1)
    pre_ln: bool
    #: Module (relative to the base model) that holds the ``invertible_adapters`` ModuleDict;
    #: ``""`` is the base model itself. BART keeps it on its encoder, as in the reference.
    invertible_container: str = ""
    #: Apply the invertible adapter to the *input* of ``invertible_after`` (T5: its first block).
    invertible_input: bool = False
    families: frozenset[str] = ALL_FAMILIES
    prompt_tuning: bool = False
    #: How layer indices (``leave_out``, per-layer settings) count: ``"continuous"`` (the
    #: decoder continues the encoder's count, BART/T5) or ``"per_group"`` (each stack from 0,
    #: the reference's EncoderDecoderModel).
    layer_numbering: Literal["continuous", "per_group"] = "continuous"
    reference_keys: tuple[tuple[str, str], ...] = ()
    extras: dict[str, Any] = Field(default_factory=dict)

    _paths = field_validator("embeddings", "invertible_after")(_check_path)

    @field_validator("invertible_container")
    @classmethod
    def _container(cls, value: str) -> str:
        _check_path(value, empty_ok=True)
        return value

    @field_validator("families")
    @classmethod
    def _families(cls, value: frozenset[str]) -> frozenset[str]:
        unknown = sorted(value - ALL_FAMILIES)
        if unknown:
            hint = did_you_mean(unknown[0], ALL_FAMILIES)
            raise ValueError(
                f"unknown method family '{unknown[0]}' (known: {', '.join(sorted(ALL_FAMILIES))})"
                + (f"; {hint}" if hint else "")
            )
        return value

    @model_validator(mode="after")
    def _unique_groups(self) -> ModelSpec:
        names = [g.name for g in self.groups]
        if len(set(names)) != len(names):
            raise ValueError(f"group names must be unique, found {names}")
        return self

    def supports(self, family: str) -> bool:
        """Whether configs whose ``architecture`` is ``family`` can be built on this model type."""
        if family == "prompt_tuning":
            return self.prompt_tuning
        return family in self.families

    @property
    def supported_families(self) -> tuple[str, ...]:
        return tuple(sorted(self.families | ({"prompt_tuning"} if self.prompt_tuning else set())))

    # Sizes from the HF config. transformers maps n_embd/d_model/n_head/... onto these names
    # through ``attribute_map``, so one getter serves every row.
    @staticmethod
    def hidden_size(cfg: Any) -> int:
        return int(cfg.hidden_size)

    @staticmethod
    def embedding_size(cfg: Any) -> int:
        """The embedding output size (ALBERT/ELECTRA factorise it below the hidden size)."""
        return int(getattr(cfg, "embedding_size", None) or cfg.hidden_size)

    @staticmethod
    def num_heads(cfg: Any) -> int:
        return int(cfg.num_attention_heads)

    @staticmethod
    def num_kv_heads(cfg: Any) -> int:
        kv = getattr(cfg, "num_key_value_heads", None)
        return int(kv) if kv else int(cfg.num_attention_heads)

    @staticmethod
    def head_dim(cfg: Any) -> int:
        """The real head dimension (``config.head_dim`` when set, else ``hidden // heads``).

        Note: the reference's prefix tuning always uses ``hidden // heads``; a handler that must
        match its parameter counts should compute that itself.
        """
        explicit = getattr(cfg, "head_dim", None)
        return int(explicit) if explicit else int(cfg.hidden_size) // int(cfg.num_attention_heads)

    # -- JSON ---------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The JSON form (lists for tuples and sets, defaults included)."""
        data = self.model_dump(mode="json")
        data["families"] = sorted(data["families"])
        return data

    def to_json(self, indent: int | None = 1) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelSpec:
        """Validate a JSON-shaped description; ``ConfigError`` with JSON pointers otherwise."""
        try:
            return cls.model_validate(dict(data))
        except ValidationError as exc:
            raise _config_error(exc) from None

    @classmethod
    def from_json(cls, text: str) -> ModelSpec:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError.single(
                f"a model interface must be JSON: {exc.msg}",
                found=f"line {exc.lineno}, column {exc.colno}",
                code="invalid_json",
            ) from None
        if not isinstance(data, dict):
            raise ConfigError.single(
                "a model interface must be a JSON object",
                found=type(data).__name__,
                code="invalid_interface",
            )
        return cls.from_dict(data)


#: The reference's name for this type.
ModelInterface = ModelSpec
#: The former name (the backend called a model type an "architecture"), kept for existing code.
ArchitectureSpec = ModelSpec


def _config_error(exc: ValidationError) -> ConfigError:
    problems = []
    for err in exc.errors():
        path = tuple(p for p in err["loc"] if isinstance(p, str | int))
        message = str(err["msg"]).removeprefix("Value error, ")
        found = None if err["type"] == "missing" else repr(err.get("input"))
        if err["type"] == "extra_forbidden" and path:
            fields = _fields_at(path[:-1])
            hint = did_you_mean(str(path[-1]), fields)
            problems.append(
                Problem(
                    f"unknown field '{path[-1]}'",
                    Location(path=path),
                    expected="one of " + ", ".join(sorted(fields)),
                    suggestion=hint,
                    code="unknown_field",
                )
            )
            continue
        problems.append(
            Problem(message, Location(path=path), found=found, code="invalid_interface")
        )
    return ConfigError(problems)


def _fields_at(path: tuple[str | int, ...]) -> list[str]:
    """Field names of the spec class at ``path`` inside a :class:`ModelSpec` dict."""
    cls: type[BaseModel] = ModelSpec
    for part in path:
        if isinstance(part, int):
            continue
        annotation = cls.model_fields[str(part)].annotation
        for candidate in (ResidualSite, AttentionSpec, LayerGroup):
            if candidate.__name__ in str(annotation):
                cls = candidate
                break
    return list(cls.model_fields)
