"""Conversion between adapter configs and PEFT's ``adapter_config.json`` dicts.

:func:`to_peft` writes the PEFT dict of a config for one model type; :func:`from_peft` reads one
back. Neither imports torch, transformers or peft: module names come from :data:`MODULES`, a
small table that mirrors the backend's architecture table (a test keeps the two consistent).

What maps onto what:

* LoRA (``peft_type`` ``LORA``): ``r`` ↔ ``r``, ``alpha`` ↔ ``lora_alpha`` (both scale by
  alpha/r; PEFT's ``use_rslora`` scaling alpha/√r is read as ``alpha = lora_alpha·√r``),
  ``dropout`` ↔ ``lora_dropout``, ``use_dora`` ↔ ``use_dora``; ``attn_matrices`` and the
  location flags ↔ ``target_modules``; ``leave_out`` ↔ the layers ``target_modules`` matches.
* IA³ (``IA3``, a LoRA config with ``composition_mode='scale'``): PEFT scales the *output* of
  every target module that is not in ``feedforward_modules``, which is what IA³ here does on
  every module (the bias is scaled too, in both). ``intermediate_lora`` is therefore written as
  an output-scaled target and ``feedforward_modules`` is always empty. PEFT scales the *input*
  of feed-forward modules, which cannot be expressed here: :func:`from_peft` rejects a non-empty
  ``feedforward_modules``. PEFT IA³ has no scaling factor, so ``alpha`` must be 1.
* Prefix tuning (``PREFIX_TUNING``): ``num_virtual_tokens`` ↔ ``prefix_length``,
  ``prefix_projection`` ↔ ``not flat``, ``encoder_hidden_size`` ↔ ``bottleneck_size`` (with the
  projection; PEFT's MLP is Linear–Tanh–Linear, so ``non_linearity`` must be ``tanh``).
* Prompt tuning (``PROMPT_TUNING``): ``num_virtual_tokens`` ↔ ``prompt_length``,
  ``prompt_tuning_init`` ``RANDOM`` / ``TEXT`` ↔ ``prompt_init`` ``random_uniform`` /
  ``from_string`` (``prompt_tuning_init_text`` ↔ ``prompt_init_text``). Only the initial values
  differ: PEFT's RANDOM draws from N(0, 1), random_uniform from U(-0.5, 0.5).

Target modules. PEFT matches a list entry ``t`` against a module name ``n`` when ``n == t`` or
``n`` ends with ``"." + t``; a string is a regular expression that must match the whole name.
:func:`to_peft` writes a sorted list of the shortest suffixes when they hit exactly the intended
modules and nothing else, and a regular expression otherwise: on BERT the suffix
``output.dense`` would also hit ``attention.output.dense`` (the attention output projection,
never adapted here), so ``output_lora`` on BERT becomes a regex anchored at the layer path, and
``leave_out`` becomes a layer-index pattern that excludes the listed indices (PEFT ignores
``layers_to_transform`` for regex targets). The regex accepts any prefix before the layer path,
so it matches bare models (``encoder.layer.0…``) and models with a head (``bert.encoder…``).
:func:`from_peft` runs PEFT's matching rules (including ``layers_to_transform``,
``layers_pattern`` and ``exclude_modules``; regular expressions on RE2, see
:mod:`adapter_dsl.peft_targets`) against the module names of the model type, then
requires one set of adapted modules shared by every adapted layer, without any module that the
reference never adapts (attention output projections, LLaMA's ``gate_proj``, poolers, heads).

Layer numbers. ``leave_out`` uses the reference's numbering: encoder layers first, the decoder's
continue the count. PEFT numbers the layers of each stack from 0. For single-stack models no
layer count is needed (the regex excludes the listed indices). For encoder-decoder models
(BART), ``leave_out`` entries in the decoder need ``num_layers=(encoder_layers,
decoder_layers)``; :func:`from_peft` needs it too when the PEFT config skips layers of such a
model, or, for any model, when it skips all layers from some index on (the layer count decides
whether that skips anything). Without it, up to :data:`PROBE_LAYERS` layers per stack are probed.

GPT-2's fused ``c_attn``. The reference gives each of q, k and v its own ``lora_A`` (rank r
each); PEFT's LoRA on ``c_attn`` shares one ``lora_A`` across the three. Every PEFT ``c_attn``
LoRA is therefore a reference LoRA with ``attn_matrices=['q','k','v']`` whose three A matrices
are equal (:func:`from_peft` accepts it, and the backend loads its weights exactly), but the
reverse does not hold: :func:`to_peft` of a GPT-2 LoRA with ``selfattn_lora`` is a
``ConfigError``. IA³ on ``c_attn`` scales every output row in both libraries, so it converts in
both directions when all of q, k and v are adapted (PEFT cannot scale only some of them).

DoRA. ``use_dora`` converts in both directions, but the two libraries compute DoRA slightly
differently: PEFT normalises ``W + (alpha/r)·BA`` and leaves the bias unscaled, the reference
normalises ``W + BA`` and rescales the bias. They agree when ``alpha == r`` and the adapted
modules have no bias (e.g. LLaMA).

PEFT dicts are untrusted input: booleans must be JSON ``true``/``false`` (a string such as
``"false"`` is a located problem, never read as true), sizes are bounded (``num_layers`` at most
:data:`MAX_LAYERS` per stack; patterns and name lists in :mod:`adapter_dsl.peft_targets`), and
every bad value is a located ``ConfigError``.

Everything else is a ``ConfigError`` naming what PEFT cannot express (bottleneck adapters,
unions, ReFT, MTL-LoRA, gating, VeRA's full ``vera_D``/``vera_B`` matrices, seeds, dtypes, …) or
what this package cannot express (PEFT options that change the computation, such as
``bias``, ``rank_pattern``, ``modules_to_save`` or ``lora_bias``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError, Location, Problem, did_you_mean
from .methods.base import AdapterConfig
from .peft_targets import Targeting, index_except, shown

__all__ = ["MODULES", "PROBE_LAYERS", "ModelModules", "StackModules", "from_peft", "to_peft"]

#: Layers probed per stack when ``num_layers`` is not given.
PROBE_LAYERS = 64
#: Most layers per stack that ``num_layers`` may give (the largest models have a few hundred).
MAX_LAYERS = 4096

#: Roles a module can play. ``q``/``k``/``v``/``qkv``/``intermediate``/``output`` are adaptable;
#: ``never`` marks modules the reference never adapts.
ADAPTABLE = ("q", "k", "v", "qkv", "intermediate", "output")


@dataclass(frozen=True)
class StackModules:
    """One stack of layers: its path (relative to the base model) and per-layer module paths."""

    layers: str
    roles: Mapping[str, tuple[str, ...]]
    #: Modules that exist only in some configurations (BERT's cross-attention): targeting them
    #: is required to agree with the self-attention matrices only when they are targeted.
    optional: frozenset[str] = frozenset()


@dataclass(frozen=True)
class ModelModules:
    """Module names of one model type, as PEFT sees them."""

    model_type: str
    base_prefix: str  # the base model's attribute in a model with a head (``bert``, ``model``)
    stacks: tuple[StackModules, ...]
    outside: tuple[str, ...] = ()  # other Linear modules outside the layers
    fused_qkv: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def _bert_stack() -> StackModules:
    cross = ("crossattention.self.query", "crossattention.self.key", "crossattention.self.value")
    return StackModules(
        layers="encoder.layer",
        roles={
            "q": ("attention.self.query", cross[0]),
            "k": ("attention.self.key", cross[1]),
            "v": ("attention.self.value", cross[2]),
            "intermediate": ("intermediate.dense",),
            "output": ("output.dense",),
            "never": ("attention.output.dense", "crossattention.output.dense"),
        },
        optional=frozenset({*cross, "crossattention.output.dense"}),
    )


def _bart_stack(layers: str, decoder: bool) -> StackModules:
    attns = ("self_attn", "encoder_attn") if decoder else ("self_attn",)
    return StackModules(
        layers=layers,
        roles={
            "q": tuple(f"{a}.q_proj" for a in attns),
            "k": tuple(f"{a}.k_proj" for a in attns),
            "v": tuple(f"{a}.v_proj" for a in attns),
            "intermediate": ("fc1",),
            "output": ("fc2",),
            "never": tuple(f"{a}.out_proj" for a in attns),
        },
    )


def _llama(model_type: str, intermediate: str, output: str) -> ModelModules:
    return ModelModules(
        model_type=model_type,
        base_prefix="model",
        stacks=(
            StackModules(
                layers="layers",
                roles={
                    "q": ("self_attn.q_proj",),
                    "k": ("self_attn.k_proj",),
                    "v": ("self_attn.v_proj",),
                    "intermediate": (intermediate,),
                    "output": (output,),
                    "never": ("self_attn.o_proj", "mlp.gate_proj"),
                },
            ),
        ),
        outside=("lm_head",),
    )


#: model_type → module names (mirrors ``adapter_dsl.backend.architectures.ARCHITECTURES``).
MODULES: dict[str, ModelModules] = {
    "bert": ModelModules("bert", "bert", (_bert_stack(),), outside=("pooler.dense",)),
    "roberta": ModelModules("roberta", "roberta", (_bert_stack(),), outside=("pooler.dense",)),
    "gpt2": ModelModules(
        "gpt2",
        "transformer",
        (
            StackModules(
                layers="h",
                roles={
                    "qkv": ("attn.c_attn",),
                    "intermediate": ("mlp.c_fc",),
                    "output": ("mlp.c_proj",),
                    "never": ("attn.c_proj",),
                },
            ),
        ),
        outside=("lm_head",),
        fused_qkv=True,
    ),
    "bart": ModelModules(
        "bart",
        "model",
        (_bart_stack("encoder.layers", False), _bart_stack("decoder.layers", True)),
        outside=("lm_head",),
    ),
    # The reference's LLaMA/Mistral call down_proj "intermediate" and up_proj "output"; its
    # Qwen2 interface the other way round (see backend/architectures.py).
    "llama": _llama("llama", "mlp.down_proj", "mlp.up_proj"),
    "mistral": _llama("mistral", "mlp.down_proj", "mlp.up_proj"),
    "qwen2": _llama("qwen2", "mlp.up_proj", "mlp.down_proj"),
}

_PEFT_TYPES = ("LORA", "IA3", "PREFIX_TUNING", "PROMPT_TUNING")
#: Keys of PEFT configs that carry no meaning for the computation (metadata, or settings the
#: model supplies), ignored whatever their value.
_METADATA = frozenset(
    {
        "peft_type",
        "task_type",
        "auto_mapping",
        "peft_version",
        "base_model_name_or_path",
        "revision",
        "inference_mode",
        "fan_in_fan_out",
        "megatron_core",
        "qalora_group_size",
        "token_dim",
        "num_transformer_submodules",
        "num_attention_heads",
        "num_layers",
        "tokenizer_name_or_path",
        "tokenizer_kwargs",
    }
)

Counts = int | Sequence[int] | None


# -- helpers -----------------------------------------------------------------------------------


def _problem(path: str | tuple[str | int, ...], message: str, **kw: Any) -> Problem:
    loc = (path,) if isinstance(path, str) else path
    return Problem(message, Location(path=loc), code=kw.pop("code", "not_expressible"), **kw)


def _raise(problems: list[Problem]) -> None:
    if problems:
        raise ConfigError(problems)


def _model(model_type: Any) -> ModelModules:
    if not isinstance(model_type, str) or model_type not in MODULES:
        raise ConfigError.single(
            f"no PEFT module names are known for model type {shown(model_type)}",
            expected="one of " + ", ".join(sorted(MODULES)),
            found=shown(model_type),
            suggestion=did_you_mean(model_type, MODULES) if isinstance(model_type, str) else None,
            code="unsupported_model",
        )
    return MODULES[model_type]


def _layer_count(n: Any) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= MAX_LAYERS:
        raise ConfigError.single(
            "num_layers must give whole layer counts",
            expected=f"an integer from 0 to {MAX_LAYERS} per stack of layers",
            found=shown(n),
            code="num_layers",
        )
    return n


def _counts(model: ModelModules, num_layers: Counts) -> tuple[int, ...] | None:
    if num_layers is None:
        return None
    if isinstance(num_layers, int) and not isinstance(num_layers, bool):
        if len(model.stacks) != 1:
            raise ConfigError.single(
                f"'{model.model_type}' models have {len(model.stacks)} stacks of layers; "
                "num_layers needs one count per stack",
                expected="a tuple such as (encoder_layers, decoder_layers)",
                found=shown(num_layers),
                code="num_layers",
            )
        return (_layer_count(num_layers),)
    if not isinstance(num_layers, Sequence) or isinstance(num_layers, str | bytes):
        raise ConfigError.single(
            "num_layers must be a layer count or one count per stack of layers",
            expected="an integer, or a tuple such as (encoder_layers, decoder_layers)",
            found=shown(num_layers),
            code="num_layers",
        )
    if len(num_layers) != len(model.stacks):
        raise ConfigError.single(
            f"num_layers needs {len(model.stacks)} counts for '{model.model_type}' models",
            expected=f"{len(model.stacks)} integers",
            found=shown(num_layers),
            code="num_layers",
        )
    return tuple(_layer_count(n) for n in num_layers)


def _re(path: str) -> str:
    return re.escape(path)


# -- to_peft -----------------------------------------------------------------------------------


def to_peft(
    cfg: AdapterConfig | str | Mapping[str, Any], model_type: str, *, num_layers: Counts = None
) -> dict[str, Any]:
    """The PEFT ``adapter_config.json`` dict that computes what ``cfg`` computes on ``model_type``.

    ``cfg`` is a config object, or an identifier, config string or dict that ``load`` reads.

    ``num_layers`` (an int, or one count per stack such as ``(6, 6)`` for BART) is needed only
    when ``leave_out`` names decoder layers of an encoder-decoder model. Raises ``ConfigError``
    listing everything PEFT cannot express.
    """
    from .methods.bottleneck import BnConfig
    from .methods.lora import LoRAConfig, MTLLoRAConfig
    from .methods.prefix_tuning import PrefixTuningConfig
    from .methods.prompt_tuning import PromptTuningConfig

    cfg = _as_config(cfg)
    if isinstance(cfg, MTLLoRAConfig):
        raise ConfigError(
            [
                _problem(
                    "architecture",
                    "PEFT cannot express MTL-LoRA (task-specific matrices and several up "
                    "projections)",
                    found="'mtl_lora'",
                )
            ]
        )
    if isinstance(cfg, LoRAConfig):
        return _lora_to_peft(cfg, _model(model_type), num_layers)
    if isinstance(cfg, PrefixTuningConfig):
        return _prefix_to_peft(cfg)
    if isinstance(cfg, PromptTuningConfig):
        return _prompt_to_peft(cfg)
    bottleneck = isinstance(cfg, BnConfig)
    architecture = "bottleneck" if bottleneck else cfg.architecture
    what = {
        "bottleneck": "bottleneck adapters",
        "union": "combinations of methods (unions)",
        "reft": "ReFT interventions",
    }.get(architecture, f"'{architecture}' configs")
    raise ConfigError(
        [
            _problem(
                "architecture",
                f"PEFT cannot express {what} as the reference defines them",
                expected="a LoRA, IA³, DoRA, prefix-tuning or prompt-tuning config",
                found="a bottleneck config" if bottleneck else repr(architecture),
            )
        ]
    )


def _as_config(cfg: Any) -> AdapterConfig:
    """A config object, or an identifier / config string / dict read as one (never a path)."""
    if isinstance(cfg, AdapterConfig):
        return cfg
    from .loading import config_from_dict, parse

    if isinstance(cfg, str):
        return parse(cfg)
    if isinstance(cfg, Mapping):
        return config_from_dict(cfg)
    raise ConfigError.single(
        "to_peft() takes a config",
        expected="a config object, an identifier, a config string or a config dict",
        found=type(cfg).__name__,
        code="type",
    )


def _lora_to_peft(cfg: Any, model: ModelModules, num_layers: Counts) -> dict[str, Any]:
    scale = cfg.composition_mode == "scale"
    problems: list[Problem] = []
    if cfg.use_gating:
        problems.append(_problem("use_gating", "PEFT has no gated LoRA/IA³ modules (UniPELT)"))
    if cfg.vera_d is not None or cfg.vera_b is not None:
        problems.append(
            _problem(
                "vera_d",
                "PEFT cannot express the reference's VeRA: it learns full vera_D (r×r) and "
                "vera_B (out×out) matrices, PEFT's VeRA learns vectors",
                found=f"vera_d={cfg.vera_d!r}, vera_b={cfg.vera_b!r}",
            )
        )
    if cfg.init_weights_seed is not None:
        problems.append(
            _problem(
                "init_weights_seed",
                "PEFT configs carry no initialisation seed",
                expected="None",
                found=repr(cfg.init_weights_seed),
                suggestion="seed torch before creating the PEFT model",
            )
        )
    if cfg.dtype is not None:
        problems.append(
            _problem(
                "dtype",
                "PEFT configs carry no parameter dtype",
                expected="None",
                found=repr(cfg.dtype),
            )
        )
    wanted = "ia3" if scale else "lora"
    if cfg.init_weights != wanted:
        what = "ones" if scale else "Kaiming-uniform A and zero B"
        problems.append(
            _problem(
                "init_weights",
                f"PEFT initialises {'IA³ vectors' if scale else 'LoRA'} only as {what} "
                f"(init_weights='{wanted}')",
                expected=repr(wanted),
                found=repr(cfg.init_weights),
            )
        )
    if scale and cfg.alpha != 1:
        problems.append(
            _problem(
                "alpha",
                "PEFT IA³ has no scaling factor; the reference multiplies by alpha",
                expected="1",
                found=repr(cfg.alpha),
            )
        )
    roles = _roles_of(cfg)
    if model.fused_qkv and cfg.selfattn_lora:
        if not scale:
            problems.append(
                _problem(
                    "selfattn_lora",
                    f"PEFT LoRA on {model.model_type}'s fused q/k/v projection shares one lora_A "
                    "across q, k and v; the reference learns one per matrix, which PEFT cannot "
                    "express",
                    expected="selfattn_lora=False",
                    found="True",
                    suggestion="adapt only the feed-forward layers, or use IA³",
                )
            )
        elif set(cfg.attn_matrices) != {"q", "k", "v"}:
            problems.append(
                _problem(
                    "attn_matrices",
                    f"PEFT IA³ on {model.model_type}'s fused q/k/v projection scales all of q, k "
                    "and v; it cannot scale only some of them",
                    expected="['q', 'k', 'v']",
                    found=repr(list(cfg.attn_matrices)),
                )
            )
    _raise(problems)
    target = _target_modules(model, roles, tuple(cfg.leave_out), _counts(model, num_layers))
    if scale:
        return {
            "peft_type": "IA3",
            "task_type": None,
            "target_modules": target,
            "feedforward_modules": [],
            "fan_in_fan_out": model.fused_qkv,
            "init_ia3_weights": True,
            "modules_to_save": None,
            "exclude_modules": None,
        }
    return {
        "peft_type": "LORA",
        "task_type": None,
        "r": cfg.r,
        "lora_alpha": cfg.alpha,
        "lora_dropout": cfg.dropout,
        "target_modules": target,
        "bias": "none",
        "use_rslora": False,
        "use_dora": cfg.use_dora,
        "init_lora_weights": True,
        "fan_in_fan_out": model.fused_qkv,
        "layers_to_transform": None,
        "layers_pattern": None,
        "rank_pattern": {},
        "alpha_pattern": {},
        "modules_to_save": None,
        "exclude_modules": None,
    }


def _roles_of(cfg: Any) -> set[str]:
    roles: set[str] = set()
    if cfg.selfattn_lora:
        roles |= set(cfg.attn_matrices) & {"q", "k", "v"}
    if cfg.intermediate_lora:
        roles.add("intermediate")
    if cfg.output_lora:
        roles.add("output")
    return roles


def _stack_paths(model: ModelModules, stack: StackModules, roles: set[str]) -> list[str]:
    wanted = set(roles)
    if model.fused_qkv and wanted & {"q", "k", "v"}:
        wanted = (wanted - {"q", "k", "v"}) | {"qkv"}
    return [p for role in ADAPTABLE if role in wanted for p in stack.roles.get(role, ())]


def _target_modules(
    model: ModelModules,
    roles: set[str],
    leave_out: tuple[int, ...],
    counts: tuple[int, ...] | None,
) -> list[str] | str:
    per_stack = [_stack_paths(model, s, roles) for s in model.stacks]
    if not leave_out:
        suffixes = _suffixes(model, per_stack)
        if suffixes is not None:
            return suffixes
    # A regex anchored at the layer path, excluding left-out layers by index.
    offsets = _offsets(model, leave_out, counts)
    parts = []
    for stack, paths, (offset, size) in zip(model.stacks, per_stack, offsets, strict=True):
        if not paths:
            continue
        local = sorted(
            {i - offset for i in leave_out if i >= offset and (size is None or i < offset + size)}
        )
        index = index_except(local)  # no lookahead: matched with RE2 (see peft_targets)
        body = "|".join(_re(p) for p in paths)
        parts.append(f"{_re(stack.layers)}\\.{index}\\.(?:{body})")
    return r"(?:.*\.)?(?:" + "|".join(parts) + ")"


def _offsets(
    model: ModelModules, leave_out: tuple[int, ...], counts: tuple[int, ...] | None
) -> list[tuple[int, int | None]]:
    if len(model.stacks) == 1:
        return [(0, None)]
    if counts is None:
        if leave_out:
            raise ConfigError.single(
                f"leave_out on '{model.model_type}' models numbers encoder and decoder layers "
                "in one sequence; converting it needs the layer counts",
                expected="num_layers=(encoder_layers, decoder_layers)",
                found=f"leave_out={list(leave_out)}",
                path=("leave_out",),
                code="num_layers",
            )
        return [(0, None) for _ in model.stacks]
    out: list[tuple[int, int | None]] = []
    offset = 0
    for n in counts:
        out.append((offset, n))
        offset += n
    return out


def _suffixes(model: ModelModules, per_stack: list[list[str]]) -> list[str] | None:
    """The shortest PEFT list entries that hit exactly the intended modules, or ``None``."""
    intended = {p for paths in per_stack for p in paths}
    if not intended:
        return []
    every = _all_paths(model)
    chosen: set[str] = set()
    for path in sorted(intended):
        parts = path.split(".")
        for n in range(1, len(parts) + 1):
            suffix = ".".join(parts[-n:])
            hits = {p for p in every if p == suffix or p.endswith("." + suffix)}
            if hits <= intended:
                chosen.add(suffix)
                break
        else:
            return None
    return sorted(chosen)


def _all_paths(model: ModelModules) -> set[str]:
    paths = {p for s in model.stacks for ps in s.roles.values() for p in ps}
    # Layer paths and outside modules, so that a suffix hitting them is rejected too.
    return paths | set(model.outside)


def _prefix_to_peft(cfg: Any) -> dict[str, Any]:
    problems: list[Problem] = []
    for key, default, why in (
        ("encoder_prefix", True, "PEFT puts prefixes on every attention layer"),
        ("cross_prefix", True, "PEFT puts prefixes on every attention layer"),
        ("use_gating", False, "PEFT has no gated prefixes (UniPELT)"),
        ("shared_gating", True, "PEFT has no gated prefixes"),
        ("dropout", 0.0, "PEFT applies no dropout to the prefixes"),
        ("init_weights_seed", None, "PEFT configs carry no initialisation seed"),
    ):
        value = getattr(cfg, key)
        if value != default:
            problems.append(_problem(key, why, expected=repr(default), found=repr(value)))
    if cfg.leave_out:
        problems.append(
            _problem(
                "leave_out",
                "PEFT puts prefixes on every layer",
                expected="[]",
                found=repr(list(cfg.leave_out)),
            )
        )
    if not cfg.flat and cfg.non_linearity != "tanh":
        problems.append(
            _problem(
                "non_linearity",
                "PEFT's prefix projection is Linear–Tanh–Linear",
                expected="'tanh'",
                found=repr(cfg.non_linearity),
            )
        )
    _raise(problems)
    return {
        "peft_type": "PREFIX_TUNING",
        "task_type": None,
        "num_virtual_tokens": cfg.prefix_length,
        "prefix_projection": not cfg.flat,
        "encoder_hidden_size": None if cfg.flat else cfg.bottleneck_size,
        "modules_to_save": None,
    }


def _prompt_to_peft(cfg: Any) -> dict[str, Any]:
    problems: list[Problem] = []
    if cfg.combine != "prefix":
        problems.append(
            _problem(
                "combine",
                "PEFT always puts the virtual tokens first",
                expected="'prefix'",
                found=repr(cfg.combine),
            )
        )
    if cfg.init_weights_seed is not None:
        problems.append(
            _problem(
                "init_weights_seed",
                "PEFT configs carry no initialisation seed",
                expected="None",
                found=repr(cfg.init_weights_seed),
            )
        )
    if cfg.random_uniform_scale != 0.5:
        problems.append(
            _problem(
                "random_uniform_scale",
                "PEFT has no setting for the random initialisation's scale",
                expected="0.5",
                found=repr(cfg.random_uniform_scale),
            )
        )
    _raise(problems)
    text = cfg.prompt_init == "from_string"
    return {
        "peft_type": "PROMPT_TUNING",
        "task_type": None,
        "num_virtual_tokens": cfg.prompt_length,
        "prompt_tuning_init": "TEXT" if text else "RANDOM",
        "prompt_tuning_init_text": cfg.prompt_init_text if text else None,
        "modules_to_save": None,
    }


# -- from_peft ---------------------------------------------------------------------------------


def from_peft(
    data: Mapping[str, Any], model_type: str | None = None, *, num_layers: Counts = None
) -> AdapterConfig:
    """The config that computes what a PEFT ``adapter_config.json`` dict computes.

    ``model_type`` selects the module names that ``target_modules`` is read against; without it
    every known model type is tried and they must agree (``q_proj`` means the same on BART and
    LLaMA; ``down_proj`` does not). ``num_layers``: see the module docstring. Problems carry
    JSON pointers into ``data``.
    """
    if not isinstance(data, Mapping):
        raise ConfigError.single(
            "a PEFT config must be a JSON object", expected="an object", found=type(data).__name__
        )
    bad_keys = [k for k in data if not isinstance(k, str)]
    if bad_keys:
        raise ConfigError.single(
            "PEFT config keys must be strings",
            expected="string keys",
            found=", ".join(shown(k, 40) for k in bad_keys[:3]),
            code="type",
        )
    peft_type = data.get("peft_type")
    if not isinstance(peft_type, str) or peft_type not in _PEFT_TYPES:
        raise ConfigError(
            [
                _problem(
                    "peft_type",
                    f"PEFT method {shown(peft_type)} has no counterpart here",
                    expected="one of " + ", ".join(repr(t) for t in _PEFT_TYPES),
                    found=shown(peft_type),
                    suggestion=did_you_mean(peft_type, _PEFT_TYPES)
                    if isinstance(peft_type, str)
                    else None,
                    code="unknown_peft_type",
                )
            ]
        )
    if peft_type == "PREFIX_TUNING":
        return _prefix_from_peft(data)
    if peft_type == "PROMPT_TUNING":
        return _prompt_from_peft(data)
    fields = _lora_fields(data, peft_type == "IA3")
    if model_type is not None:
        model = _model(model_type)
        counts = _counts(model, num_layers)
        fields.update(_placement(data, _targeting(data), model, counts))
        return _build_lora(fields)
    targeting = _targeting(data)
    results: dict[str, dict[str, Any]] = {}
    errors: dict[str, ConfigError] = {}
    for name, model in MODULES.items():
        try:
            counts = _counts(model, num_layers)
            results[name] = _placement(data, targeting, model, counts)
        except ConfigError as exc:
            errors[name] = exc
    distinct = {repr(sorted(r.items())) for r in results.values()}
    if len(distinct) == 1:
        fields.update(next(iter(results.values())))
        return _build_lora(fields)
    if not results:
        # Report the problems of the model types whose module names the targets mention.
        best = min(errors.values(), key=lambda e: any(p.code == "no_match" for p in e.problems))
        raise best
    raise ConfigError(
        [
            _problem(
                "target_modules",
                "target_modules means different things on different model types ("
                + "; ".join(f"{n}: {_describe(r)}" for n, r in results.items())
                + ")",
                expected="a model_type argument",
                found=shown(data.get("target_modules")),
                suggestion="pass model_type='" + next(iter(results)) + "' (or another)",
                code="ambiguous_model_type",
            )
        ]
    )


def _describe(placement: Mapping[str, Any]) -> str:
    where = [k for k in ("selfattn_lora", "intermediate_lora", "output_lora") if placement[k]]
    text = ", ".join(where)
    if placement["selfattn_lora"]:
        text += f" {list(placement['attn_matrices'])}"
    return text


_LORA_KEYS = {"alpha": "lora_alpha", "dropout": "lora_dropout"}


def _build_lora(fields: dict[str, Any]) -> AdapterConfig:
    from .loading import config_from_dict

    try:
        return config_from_dict(fields)
    except ConfigError as exc:
        raise ConfigError([_peft_location(p, _LORA_KEYS) for p in exc.problems]) from None


def _check_unknown(data: Mapping[str, Any], handled: set[str]) -> list[Problem]:
    problems = []
    for key, value in data.items():
        if key in handled or key in _METADATA:
            continue
        if value in (None, False, "", 0) or value == {} or value == []:
            continue
        problems.append(
            _problem(
                key,
                f"the PEFT option '{key}' has no counterpart here",
                expected="its default (None, False or empty)",
                found=shown(value),
            )
        )
    return problems


def _number(data: Mapping[str, Any], key: str, default: Any, problems: list[Problem]) -> Any:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        problems.append(
            _problem(key, f"'{key}' must be a number", expected="a number", found=shown(value))
        )
        return default
    return value


def _flag(data: Mapping[str, Any], key: str, problems: list[Problem]) -> bool:
    """A PEFT boolean: JSON true/false (or null for false), as PEFT writes them; a string such
    as "false" is a problem, not a truthy value."""
    value = data.get(key)
    if value is None or isinstance(value, bool):
        return bool(value)
    problems.append(
        _problem(
            key,
            f"'{key}' must be true or false",
            expected="true or false",
            found=shown(value),
            code="type",
        )
    )
    return False


def _lora_fields(data: Mapping[str, Any], ia3: bool) -> dict[str, Any]:
    problems: list[Problem] = []
    handled = {"target_modules", "exclude_modules", "layers_to_transform", "layers_pattern"}
    fields: dict[str, Any] = {"architecture": "lora"}
    if ia3:
        handled |= {"feedforward_modules", "init_ia3_weights"}
        fields.update(composition_mode="scale", r=1, alpha=1, init_weights="ia3")
        ff = data.get("feedforward_modules")
        if ff:
            problems.append(
                _problem(
                    "feedforward_modules",
                    "PEFT IA³ scales the input of feed-forward modules; IA³ here scales "
                    "module outputs only, so this cannot be expressed",
                    expected="an empty list",
                    found=shown(ff),
                    suggestion="move the modules to output scaling (target_modules only) "
                    "and retrain, or leave them out",
                )
            )
        fields.update(intermediate_lora=False)
    else:
        handled |= {
            "r",
            "lora_alpha",
            "lora_dropout",
            "use_rslora",
            "use_dora",
            "init_lora_weights",
        }
        r = _number(data, "r", 8, problems)
        alpha = _number(data, "lora_alpha", 8, problems)
        if _flag(data, "use_rslora", problems):
            alpha = _rslora_alpha(alpha, r, problems)
        fields.update(
            r=r,
            alpha=alpha,
            dropout=_number(data, "lora_dropout", 0.0, problems),
            use_dora=_flag(data, "use_dora", problems),
        )
        init = data.get("init_lora_weights", True)
        if init not in (True, False, "gaussian"):
            problems.append(
                _problem(
                    "init_lora_weights",
                    f"init_lora_weights={shown(init, 40)} changes the base model's weights or "
                    "needs data; only initialisations of the LoRA matrices themselves convert",
                    expected="True, False or 'gaussian'",
                    found=shown(init),
                )
            )
        bias = data.get("bias", "none")
        handled.add("bias")
        if bias != "none":
            problems.append(
                _problem(
                    "bias",
                    "PEFT's bias training changes the base model's biases, which an adapter "
                    "here cannot hold",
                    expected="'none'",
                    found=shown(bias),
                )
            )
    problems.extend(_check_unknown(data, handled))
    _raise(problems)
    return fields


def _rslora_alpha(alpha: Any, r: Any, problems: list[Problem]) -> Any:
    """rsLoRA scales by alpha/√r, which is (alpha·√r)/r: the alpha that LoRA's alpha/r needs."""
    if r <= 0:
        return alpha  # the r field reports it
    try:
        value = alpha * math.sqrt(r)
    except OverflowError:
        value = math.inf
    if not math.isfinite(value):
        problems.append(
            _problem(
                "r",
                "with use_rslora, r and lora_alpha give a scaling too large to represent",
                expected="a rank and an alpha of sensible size",
                found=f"r={shown(r, 40)}, lora_alpha={shown(alpha, 40)}",
                code="too_large",
            )
        )
        return 8
    return value


def _targeting(data: Mapping[str, Any]) -> Targeting:
    return Targeting.of(data, _as_targets(data))


def _as_targets(data: Mapping[str, Any]) -> str | list[str]:
    target = data.get("target_modules")
    if isinstance(target, str):
        if target == "all-linear":
            raise ConfigError(
                [
                    _problem(
                        "target_modules",
                        "'all-linear' also adapts the attention output projections (and "
                        "LLaMA's gate_proj), which the reference never adapts",
                        expected="a list of module names or a regular expression",
                        found="'all-linear'",
                    )
                ]
            )
        return target  # compiled (with RE2) by Targeting
    if isinstance(target, list | tuple | set | frozenset) and all(
        isinstance(t, str) for t in target
    ):
        return list(target)
    raise ConfigError(
        [
            _problem(
                "target_modules",
                "this PEFT config names no target_modules (PEFT would pick per-model "
                "defaults); it must name the modules to adapt",
                expected="a list of module names or a regular expression",
                found=shown(target),
                code="missing" if target is None else "type",
            )
        ]
    )


def _placement(
    data: Mapping[str, Any],
    targeting: Targeting,
    model: ModelModules,
    counts: tuple[int, ...] | None,
) -> dict[str, Any]:
    """selfattn/intermediate/output flags, attn_matrices and leave_out for ``model``."""
    target = data.get("target_modules")
    if data.get("modules_to_save"):
        raise ConfigError(
            [
                _problem(
                    "modules_to_save",
                    "modules_to_save trains full copies of base-model modules, which an "
                    "adapter here cannot hold",
                    expected="None",
                    found=shown(data["modules_to_save"]),
                )
            ]
        )
    prefixes = ("", f"{model.base_prefix}.")

    def hit(path: str) -> bool:
        return any(targeting.matches(p + path) for p in prefixes)

    problems: dict[str, Problem] = {}
    for path in model.outside:
        if hit(path):
            problems[path] = _problem(
                "target_modules",
                f"target_modules also matches '{path}', outside the transformer layers, "
                "which the reference never adapts",
                found=shown(target),
            )
    layer_roles: dict[int, frozenset[str]] = {}
    offset = 0
    for s, stack in enumerate(model.stacks):
        size = counts[s] if counts is not None else PROBE_LAYERS
        for i in range(size):
            roles: set[str] = set()
            for role, paths in stack.roles.items():
                required = {p for p in paths if p not in stack.optional}
                found = {p for p in paths if hit(f"{stack.layers}.{i}.{p}")}
                if role == "never":
                    for p in sorted(found):
                        problems.setdefault(
                            f"{stack.layers}.{p}", _never_problem(model, stack, i, p, target)
                        )
                    continue
                if found and not required <= found:
                    problems.setdefault(
                        f"{stack.layers}.{role}",
                        _problem(
                            "target_modules",
                            f"target_modules matches '{sorted(found)[0]}' but not "
                            f"'{sorted(required - found)[0]}' in layer {i} of {stack.layers}; "
                            "the reference adapts the same matrices in every attention module "
                            "(cross-attention included)",
                            found=shown(target),
                        ),
                    )
                if found:
                    roles.add(role)
            layer_roles[offset + i] = frozenset(roles)
        offset += size
    _raise(list(problems.values()))
    used = {r for r in layer_roles.values() if r}
    if not used:
        raise ConfigError(
            [
                _problem(
                    "target_modules",
                    f"target_modules matches no adaptable module of a '{model.model_type}' model",
                    expected="names such as "
                    + ", ".join(
                        repr(p.split(".")[-1])
                        for role in ADAPTABLE
                        for p in model.stacks[0].roles.get(role, ())[:1]
                    ),
                    found=shown(target),
                    code="no_match",
                )
            ]
        )
    if len(used) > 1:
        listing = "; ".join(
            f"layer {i}: {', '.join(sorted(r)) or 'nothing'}"
            for i, r in list(layer_roles.items())[:4]
        )
        raise ConfigError(
            [
                _problem(
                    "target_modules",
                    "target_modules adapts different modules in different layers ("
                    + listing
                    + "); the reference adapts one set of modules in every layer it does "
                    "not leave out",
                    found=shown(target),
                )
            ]
        )
    leave_out = [i for i, r in layer_roles.items() if not r]
    open_ended = len(model.stacks) > 1 or PROBE_LAYERS - 1 in leave_out
    if counts is None and leave_out and open_ended:
        raise ConfigError(
            [
                _problem(
                    "layers_to_transform"
                    if data.get("layers_to_transform") is not None
                    else "target_modules",
                    "the PEFT config skips some layers; numbering them as leave_out needs "
                    "the model's layer count",
                    expected="from_peft(..., num_layers=<layers per stack>)",
                    found=f"skipped layers {leave_out[:6]}{'…' if len(leave_out) > 6 else ''}",
                    code="num_layers",
                )
            ]
        )
    roles = set(next(iter(used)))
    if "qkv" in roles:
        roles = (roles - {"qkv"}) | {"q", "k", "v"}
    attn = [m for m in ("q", "k", "v") if m in roles]
    placement: dict[str, Any] = {
        "selfattn_lora": bool(attn),
        "intermediate_lora": "intermediate" in roles,
        "output_lora": "output" in roles,
        "leave_out": leave_out,
    }
    if attn:
        placement["attn_matrices"] = attn
    return placement


def _never_problem(
    model: ModelModules, stack: StackModules, index: int, path: str, target: Any
) -> Problem:
    if path.endswith(("o_proj", "out_proj", "output.dense", "attn.c_proj")):
        what = "an attention output projection"
    else:
        what = "a module outside the reference's LoRA locations"
    suggestion = None
    if path.endswith("attention.output.dense"):
        suggestion = "anchor the name with a regular expression, e.g. " + repr(
            _target_modules(model, {"output"}, (), None)
        )
    return _problem(
        "target_modules",
        f"target_modules also matches '{stack.layers}.{index}.{path}' ({what}), which the "
        "reference never adapts",
        found=shown(target),
        suggestion=suggestion,
    )


def _prefix_from_peft(data: Mapping[str, Any]) -> AdapterConfig:
    from .methods.prefix_tuning import PrefixTuningConfig

    problems: list[Problem] = []
    handled = {"num_virtual_tokens", "prefix_projection", "encoder_hidden_size", "init_weights"}
    problems.extend(_check_unknown(data, handled))
    length = _number(data, "num_virtual_tokens", 30, problems)
    projection = _flag(data, "prefix_projection", problems)
    fields: dict[str, Any] = {"prefix_length": length, "flat": not projection}
    if projection:
        size = data.get("encoder_hidden_size")
        if not isinstance(size, int) or isinstance(size, bool):
            problems.append(
                _problem(
                    "encoder_hidden_size",
                    "prefix_projection needs encoder_hidden_size (the projection's width) to "
                    "convert; PEFT fills it in from the model only when the model is built",
                    expected="an integer",
                    found=shown(size),
                )
            )
        else:
            fields["bottleneck_size"] = size
    _raise(problems)
    try:
        return PrefixTuningConfig(**fields)
    except ConfigError as exc:
        raise ConfigError([_peft_location(p, _PREFIX_KEYS) for p in exc.problems]) from None


def _prompt_from_peft(data: Mapping[str, Any]) -> AdapterConfig:
    from .methods.prompt_tuning import PromptTuningConfig

    problems: list[Problem] = []
    handled = {"num_virtual_tokens", "prompt_tuning_init", "prompt_tuning_init_text"}
    problems.extend(_check_unknown(data, handled))
    init = data.get("prompt_tuning_init", "RANDOM")
    fields: dict[str, Any] = {"prompt_length": _number(data, "num_virtual_tokens", 10, problems)}
    if init == "TEXT":
        fields["prompt_init"] = "from_string"
        fields["prompt_init_text"] = data.get("prompt_tuning_init_text")
    elif init != "RANDOM":
        problems.append(
            _problem(
                "prompt_tuning_init",
                f"prompt_tuning_init={shown(init, 40)} has no counterpart here",
                expected="'RANDOM' or 'TEXT'",
                found=shown(init),
            )
        )
    _raise(problems)
    try:
        return PromptTuningConfig(**fields)
    except ConfigError as exc:
        raise ConfigError([_peft_location(p, _PROMPT_KEYS) for p in exc.problems]) from None


_PREFIX_KEYS = {"prefix_length": "num_virtual_tokens", "bottleneck_size": "encoder_hidden_size"}
_PROMPT_KEYS = {
    "prompt_length": "num_virtual_tokens",
    "prompt_init_text": "prompt_tuning_init_text",
}


def _peft_location(problem: Problem, keys: Mapping[str, str]) -> Problem:
    path = problem.location.path
    if path and isinstance(path[0], str) and path[0] in keys:
        return problem.with_location(path=(keys[path[0]], *path[1:]))
    return problem
