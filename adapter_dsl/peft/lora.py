"""LoRA and IA³ configs to PEFT ``LORA``/``IA3`` dicts and back, ``target_modules`` included.

See :mod:`adapter_dsl.peft` for what maps onto what.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import ConfigError, Problem
from ..methods.base import AdapterConfig
from .common import (
    SEED,
    at_peft_key,
    flag,
    number,
    problem,
    raise_problems,
    unknown_keys,
    unsupported_values,
)
from .defaults import DEFAULT_IA3_FEEDFORWARD, DEFAULT_IA3_TARGETS, DEFAULT_LORA_TARGETS
from .models import (
    ADAPTABLE,
    MODULES,
    PROBE_LAYERS,
    Counts,
    ModelModules,
    StackModules,
    layer_counts,
    model_modules,
)
from .targets import Targeting, compile_pattern, index_except, shown

__all__ = ["lora_from_peft", "lora_to_peft"]

#: Module names of output embeddings, which PEFT's "all-linear" leaves out.
OUTPUT_EMBEDDINGS = frozenset({"lm_head", "proj_out"})
#: Role of a module → the location name of ``input_scaling``.
_INPUT_LOCATIONS = {
    "o": "attn_output",
    "intermediate": "intermediate",
    "output": "output",
    "gate": "gate",
}


# -- to PEFT -----------------------------------------------------------------------------------


def lora_to_peft(cfg: Any, model_type: str, num_layers: Counts) -> dict[str, Any]:
    """The PEFT ``LORA`` (or, for ``composition_mode='scale'``, ``IA3``) dict of a LoRA config."""
    model = model_modules(model_type)
    scale = cfg.composition_mode == "scale"
    problems: list[Problem] = []
    if cfg.use_gating:
        problems.append(problem("use_gating", "PEFT has no gated LoRA/IA³ modules (UniPELT)"))
    if cfg.vera_d is not None or cfg.vera_b is not None:
        problems.append(
            problem(
                "vera_d",
                "PEFT cannot express the reference's VeRA: it learns full vera_D (r×r) and "
                "vera_B (out×out) matrices, PEFT's VeRA learns vectors",
                found=f"vera_d={cfg.vera_d!r}, vera_b={cfg.vera_b!r}",
            )
        )
    problems += unsupported_values(cfg, (SEED,))
    if cfg.dtype is not None:
        problems.append(
            problem(
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
            problem(
                "init_weights",
                f"PEFT initialises {'IA³ vectors' if scale else 'LoRA'} only as {what} "
                f"(init_weights='{wanted}')",
                expected=repr(wanted),
                found=repr(cfg.init_weights),
            )
        )
    if scale and cfg.alpha != 1:
        problems.append(
            problem(
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
                problem(
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
                problem(
                    "attn_matrices",
                    f"PEFT IA³ on {model.model_type}'s fused q/k/v projection scales all of q, k "
                    "and v; it cannot scale only some of them",
                    expected="['q', 'k', 'v']",
                    found=repr(list(cfg.attn_matrices)),
                )
            )
    raise_problems(problems)
    target = _target_modules(model, roles, tuple(cfg.leave_out), layer_counts(model, num_layers))
    if scale:
        inputs = {r for r, loc in _INPUT_LOCATIONS.items() if loc in cfg.input_scaling}
        feedforward = _feedforward_modules(model, inputs & roles)
        if isinstance(target, list) and isinstance(feedforward, list):
            # PEFT requires feedforward_modules ⊆ target_modules when both are lists; each
            # entry only hits input-scaled modules, so adding it targets nothing new.
            target = sorted(set(target) | set(feedforward))
        return {
            "peft_type": "IA3",
            "task_type": None,
            "target_modules": target,
            "feedforward_modules": feedforward,
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
    for role, flag_name in (
        ("o", "attn_output_lora"),
        ("intermediate", "intermediate_lora"),
        ("output", "output_lora"),
        ("gate", "gate_lora"),
    ):
        if getattr(cfg, flag_name):
            roles.add(role)
    return roles


def _feedforward_modules(model: ModelModules, roles: set[str]) -> list[str] | str:
    """PEFT's ``feedforward_modules`` for the modules of ``roles``: names that PEFT's plain
    ``key.endswith(name)`` test finds only on them, or an anchored regex."""
    intended = {p for s in model.stacks for r in roles for p in s.roles.get(r, ())}
    chosen = _shortest_suffixes(model, intended, lambda path, suffix: path.endswith(suffix))
    if chosen is None:
        return _target_modules(model, roles, (), None, as_list=False)
    return chosen


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
    *,
    as_list: bool = True,
) -> list[str] | str:
    per_stack = [_stack_paths(model, s, roles) for s in model.stacks]
    if not leave_out and as_list:
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
        index = index_except(local)  # no lookahead: matched with RE2 (see .targets)
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
    """The shortest PEFT list entries that hit exactly the intended modules, or ``None``
    (PEFT matches a ``target_modules`` entry as the whole name or a dotted suffix)."""
    intended = {p for paths in per_stack for p in paths}
    return _shortest_suffixes(
        model, intended, lambda path, suffix: path == suffix or path.endswith("." + suffix)
    )


def _shortest_suffixes(
    model: ModelModules, intended: set[str], matches: Callable[[str, str], bool]
) -> list[str] | None:
    """For each intended path its shortest dotted suffix that ``matches`` no other module of
    the model; ``None`` when some path has none."""
    every = _all_paths(model)
    chosen: set[str] = set()
    for path in sorted(intended):
        parts = path.split(".")
        for n in range(1, len(parts) + 1):
            suffix = ".".join(parts[-n:])
            if {p for p in every if matches(p, suffix)} <= intended:
                chosen.add(suffix)
                break
        else:
            return None
    return sorted(chosen)


def _all_paths(model: ModelModules) -> set[str]:
    paths = {p for s in model.stacks for ps in s.roles.values() for p in ps}
    # Layer paths and outside modules, so that a suffix hitting them is rejected too.
    return paths | set(model.outside)


def _re(path: str) -> str:
    return re.escape(path)


# -- from PEFT ---------------------------------------------------------------------------------


def lora_from_peft(
    data: Mapping[str, Any], peft_type: str, model_type: str | None, num_layers: Counts
) -> AdapterConfig:
    """The LoRA (or, for ``peft_type`` ``IA3``, IA³) config of a PEFT ``LORA``/``IA3`` dict (see
    :func:`adapter_dsl.peft.from_peft` for ``model_type`` and ``num_layers``)."""
    ia3 = peft_type == "IA3"
    fields = _lora_fields(data, ia3)
    if model_type is not None:
        model = model_modules(model_type)
        counts = layer_counts(model, num_layers)
        feedforward = _Feedforward.of(data, model_type) if ia3 else None
        fields.update(_placement(data, _targeting(data, model_type), model, counts, feedforward))
        return _build_lora(fields)
    targeting = _targeting(data)
    feedforward = _Feedforward.of(data, None) if ia3 else None
    results: dict[str, dict[str, Any]] = {}
    errors: dict[str, ConfigError] = {}
    for name, model in MODULES.items():
        try:
            counts = layer_counts(model, num_layers)
            results[name] = _placement(data, targeting, model, counts, feedforward)
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
            problem(
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
    flags = ("selfattn_lora", "attn_output_lora", "intermediate_lora", "output_lora", "gate_lora")
    where = [k for k in flags if placement.get(k)]
    text = ", ".join(where)
    if placement["selfattn_lora"]:
        text += f" {list(placement['attn_matrices'])}"
    return text


_LORA_KEYS = {"alpha": "lora_alpha", "dropout": "lora_dropout"}


def _build_lora(fields: dict[str, Any]) -> AdapterConfig:
    from ..loading import config_from_dict

    try:
        return config_from_dict(fields)
    except ConfigError as exc:
        raise ConfigError([at_peft_key(p, _LORA_KEYS) for p in exc.problems]) from None


def _lora_fields(data: Mapping[str, Any], ia3: bool) -> dict[str, Any]:
    problems: list[Problem] = []
    handled = {"target_modules", "exclude_modules", "layers_to_transform", "layers_pattern"}
    fields: dict[str, Any] = {"architecture": "lora"}
    if ia3:
        handled |= {"feedforward_modules", "init_ia3_weights"}
        fields.update(composition_mode="scale", r=1, alpha=1, init_weights="ia3")
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
        r = number(data, "r", 8, problems)
        alpha = number(data, "lora_alpha", 8, problems)
        if flag(data, "use_rslora", problems):
            alpha = _rslora_alpha(alpha, r, problems)
        fields.update(
            r=r,
            alpha=alpha,
            dropout=number(data, "lora_dropout", 0.0, problems),
            use_dora=flag(data, "use_dora", problems),
        )
        init = data.get("init_lora_weights", True)
        if init not in (True, False, "gaussian"):
            problems.append(
                problem(
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
                problem(
                    "bias",
                    "PEFT's bias training changes the base model's biases, which an adapter "
                    "here cannot hold",
                    expected="'none'",
                    found=shown(bias),
                )
            )
    problems.extend(unknown_keys(data, handled))
    raise_problems(problems)
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
            problem(
                "r",
                "with use_rslora, r and lora_alpha give a scaling too large to represent",
                expected="a rank and an alpha of sensible size",
                found=f"r={shown(r, 40)}, lora_alpha={shown(alpha, 40)}",
                code="too_large",
            )
        )
        return 8
    return value


class _AllLinear:
    """PEFT's ``target_modules="all-linear"``: every Linear but the output embeddings (the
    modules probed are the table's, all Linears), ``exclude_modules`` still applying."""

    def __init__(self, inner: Targeting) -> None:
        self.inner = inner

    def matches(self, name: str) -> bool:
        return name.rsplit(".", 1)[-1] not in OUTPUT_EMBEDDINGS and self.inner.matches(name)


class _Feedforward:
    """PEFT IA³'s ``feedforward_modules`` test: a regex fullmatch, or ``key.endswith(name)``
    for a list (no dot boundary, as PEFT's ``_check_target_module_feedforward``)."""

    def __init__(self, value: Any) -> None:
        self.pattern = (
            compile_pattern(value, "feedforward_modules") if isinstance(value, str) else None
        )
        self.names = tuple(value) if self.pattern is None else ()

    @classmethod
    def of(cls, data: Mapping[str, Any], model_type: str | None) -> _Feedforward:
        value = data.get("feedforward_modules")
        if value is None and data.get("peft_type") == "IA3" and model_type is not None:
            value = list(DEFAULT_IA3_FEEDFORWARD.get(model_type, ()))
        if value is None:
            value = []
        if not (
            isinstance(value, str)
            or (isinstance(value, list | tuple) and all(isinstance(v, str) for v in value))
        ):
            raise ConfigError(
                [
                    problem(
                        "feedforward_modules",
                        "feedforward_modules must be a regular expression or a list of names",
                        expected="a string, a list of strings, or null",
                        found=shown(value),
                        code="type",
                    )
                ]
            )
        return cls(value)

    def matches(self, name: str) -> bool:
        if self.pattern is not None:
            return self.pattern.fullmatch(name)
        return any(name.endswith(n) for n in self.names)


def _targeting(data: Mapping[str, Any], model_type: str | None = None) -> Targeting | _AllLinear:
    target = _as_targets(data, model_type)
    if target == "all-linear":
        return _AllLinear(Targeting.of(data, ".*"))
    return Targeting.of(data, target)


def _as_targets(data: Mapping[str, Any], model_type: str | None) -> str | list[str]:
    target = data.get("target_modules")
    if isinstance(target, str):
        if target.lower() == "all-linear":
            return "all-linear"
        return target  # compiled (with RE2) by Targeting
    if isinstance(target, list | tuple | set | frozenset) and all(
        isinstance(t, str) for t in target
    ):
        return list(target)
    defaults = DEFAULT_IA3_TARGETS if data.get("peft_type") == "IA3" else DEFAULT_LORA_TARGETS
    if target is None and model_type in defaults:
        return list(defaults[model_type])  # what PEFT fills in for this model type
    raise ConfigError(
        [
            problem(
                "target_modules",
                "this PEFT config names no target_modules, and PEFT has no default targets "
                + (
                    f"for '{model_type}' models"
                    if model_type is not None
                    else "without the model type"
                ),
                expected="a list of module names or a regular expression"
                + ("" if model_type is not None else ", or from_peft(..., model_type=...)"),
                found=shown(target),
                code="missing" if target is None else "type",
            )
        ]
    )


def _placement(
    data: Mapping[str, Any],
    targeting: Targeting | _AllLinear,
    model: ModelModules,
    counts: tuple[int, ...] | None,
    feedforward: _Feedforward | None = None,
) -> dict[str, Any]:
    """The location flags, attn_matrices, leave_out and (IA³, with ``feedforward``)
    input_scaling for ``model``."""
    target = data.get("target_modules")
    if data.get("modules_to_save"):
        raise ConfigError(
            [
                problem(
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

    def scaled_input(path: str) -> bool:
        return feedforward is not None and any(feedforward.matches(p + path) for p in prefixes)

    problems: dict[str, Problem] = {}
    for path in model.outside:
        if hit(path):
            problems[path] = problem(
                "target_modules",
                f"target_modules also matches '{path}', outside the transformer layers, "
                "where no adapter here can be placed",
                expected="modules inside the transformer layers",
                found=shown(target),
                suggestion="name the layers' modules in target_modules"
                + (", or build the model without a pooler" if "pooler" in path else ""),
            )
    layer_roles: dict[int, frozenset[str]] = {}
    input_roles: set[str] = set()
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
                        problem(
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
                    inputs = {p for p in found if scaled_input(f"{stack.layers}.{i}.{p}")}
                    if inputs and (role not in _INPUT_LOCATIONS or inputs != found):
                        problems.setdefault(
                            f"{stack.layers}.{role}.feedforward",
                            _feedforward_problem(stack, i, role, found, inputs, data),
                        )
                    elif inputs:
                        input_roles.add(role)
            layer_roles[offset + i] = frozenset(roles)
        offset += size
    raise_problems(list(problems.values()))
    used = {r for r in layer_roles.values() if r}
    if not used:
        raise ConfigError(
            [
                problem(
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
                problem(
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
                problem(
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
    # The extensions, only when used (so the dict stays the reference's shape otherwise).
    if "o" in roles:
        placement["attn_output_lora"] = True
    if "gate" in roles:
        placement["gate_lora"] = True
    if input_roles:
        placement["input_scaling"] = [
            loc for role, loc in _INPUT_LOCATIONS.items() if role in input_roles
        ]
    return placement


def _feedforward_problem(
    stack: StackModules,
    index: int,
    role: str,
    found: set[str],
    inputs: set[str],
    data: Mapping[str, Any],
) -> Problem:
    if role not in _INPUT_LOCATIONS:
        what = f"'{sorted(inputs)[0]}' (an attention q/k/v projection)"
        message = (
            f"feedforward_modules asks PEFT IA³ to scale the input of {what} in layer {index} "
            f"of {stack.layers}; IA³ here scales the input of feed-forward projections and "
            "attention output projections only"
        )
        expected = "feedforward_modules naming feed-forward or attention output projections"
    else:
        message = (
            f"feedforward_modules matches '{sorted(inputs)[0]}' but not "
            f"'{sorted(found - inputs)[0]}' in layer {index} of {stack.layers}; one location "
            "scales the inputs of all its modules or of none"
        )
        expected = "every module of a location, or none"
    return problem(
        "feedforward_modules",
        message,
        expected=expected,
        found=shown(data.get("feedforward_modules")),
    )


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
    return problem(
        "target_modules",
        f"target_modules also matches '{stack.layers}.{index}.{path}' ({what}), which the "
        "reference never adapts",
        found=shown(target),
        suggestion=suggestion,
    )
