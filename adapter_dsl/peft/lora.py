"""LoRA and IA³ configs to PEFT ``LORA``/``IA3`` dicts and back, ``target_modules`` included.

See :mod:`adapter_dsl.peft` for what maps onto what.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from ..errors import ConfigError, Problem
from ..methods.base import AdapterConfig
from .common import at_peft_key, flag, number, problem, raise_problems, unknown_keys
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
from .targets import Targeting, index_except, shown

__all__ = ["lora_from_peft", "lora_to_peft"]


# -- to PEFT -----------------------------------------------------------------------------------


def lora_to_peft(cfg: Any, model: ModelModules, num_layers: Counts) -> dict[str, Any]:
    """The PEFT ``LORA`` (or, for ``composition_mode='scale'``, ``IA3``) dict of a LoRA config."""
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
    if cfg.init_weights_seed is not None:
        problems.append(
            problem(
                "init_weights_seed",
                "PEFT configs carry no initialisation seed",
                expected="None",
                found=repr(cfg.init_weights_seed),
                suggestion="seed torch before creating the PEFT model",
            )
        )
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


def _re(path: str) -> str:
    return re.escape(path)


# -- from PEFT ---------------------------------------------------------------------------------


def lora_from_peft(
    data: Mapping[str, Any], ia3: bool, model_type: str | None, num_layers: Counts
) -> AdapterConfig:
    """The LoRA (or, with ``ia3``, IA³) config of a PEFT ``LORA``/``IA3`` dict (see
    :func:`adapter_dsl.peft.from_peft` for ``model_type`` and ``num_layers``)."""
    fields = _lora_fields(data, ia3)
    if model_type is not None:
        model = model_modules(model_type)
        counts = layer_counts(model, num_layers)
        fields.update(_placement(data, _targeting(data), model, counts))
        return _build_lora(fields)
    targeting = _targeting(data)
    results: dict[str, dict[str, Any]] = {}
    errors: dict[str, ConfigError] = {}
    for name, model in MODULES.items():
        try:
            counts = layer_counts(model, num_layers)
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
    where = [k for k in ("selfattn_lora", "intermediate_lora", "output_lora") if placement[k]]
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
        ff = data.get("feedforward_modules")
        if ff:
            problems.append(
                problem(
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


def _targeting(data: Mapping[str, Any]) -> Targeting:
    return Targeting.of(data, _as_targets(data))


def _as_targets(data: Mapping[str, Any]) -> str | list[str]:
    target = data.get("target_modules")
    if isinstance(target, str):
        if target == "all-linear":
            raise ConfigError(
                [
                    problem(
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
            problem(
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

    problems: dict[str, Problem] = {}
    for path in model.outside:
        if hit(path):
            problems[path] = problem(
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
    return problem(
        "target_modules",
        f"target_modules also matches '{stack.layers}.{index}.{path}' ({what}), which the "
        "reference never adapts",
        found=shown(target),
        suggestion=suggestion,
    )
