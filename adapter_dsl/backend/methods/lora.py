"""LoRA family handler: LoRA, IA3 (``composition_mode="scale"``), DoRA (``use_dora``), Vera
(float ``vera_d``/``vera_b``) and gated LoRA (UniPELT), built on the architecture table.

Which projections are wrapped (reference §3.2/§4): with ``selfattn_lora`` the q/k/v listed in
``attn_matrices`` of *every* attention module of a layer (cross-attention included), with
``intermediate_lora``/``output_lora`` the table's FFN ``intermediate``/``output`` projections;
layers in ``leave_out`` are skipped. A fused q/k/v projection (GPT-2 ``c_attn``) gets one
:class:`LoRAFusedQKV` in the reference's merged layout. Extensions (PEFT's targets): with
``attn_output_lora`` every attention's output projection ``o``, with ``gate_lora`` the group's
FFN ``gate``; IA³ scales the input of the locations in ``input_scaling`` (:class:`IA3Input`).

A projection is wrapped once and shared by every LoRA-family adapter that targets it; the wrapper
is removed (and the original module put back, with the same weight and bias objects) when its last
adapter is deleted. Vera's frozen random matrices live in the base model's ``shared_parameters``
``ModuleDict`` (key ``shared_parameters.<name>.lora_A``).

Refused with ``ConfigError`` (the reference crashes or silently does nothing): a config that
wraps no projection at all, Vera, DoRA or MTL-LoRA on a fused q/k/v projection, and Vera over
projections of different shapes. MTL-LoRA (``mtl_lora``) units live in the same wrappers; the
``MultiTask`` block routes rows to them. Sharing parameters between tasks (the reference's
``share_parameters``) is not available here.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, cast

from torch import Tensor, nn

from adapter_dsl.backend.architectures import (
    AttentionSpec,
    ModelSpec,
    iter_layers,
    resolve,
)
from adapter_dsl.backend.composition import fed_names
from adapter_dsl.backend.methods.base import MethodHandler
from adapter_dsl.backend.methods.common import shared_parameters
from adapter_dsl.backend.methods.lora_layers import (
    LoRAFusedQKV,
    LoRALinear,
    LoRAWrapper,
    VeraShared,
    fan_in_fan_out,
    is_vera,
    is_wrappable,
)
from adapter_dsl.backend.state import Ledger, get_state
from adapter_dsl.errors import ConfigError
from adapter_dsl.methods.lora import LoRAConfig

__all__ = ["LoRAHandler", "MTLLoRAHandler", "lora_targets", "lora_wrappers"]


@dataclass(frozen=True)
class Target:
    """One projection to wrap: ``parent.<attr>``; ``fused`` for a q/k/v-fused projection."""

    path: str
    parent: nn.Module
    attr: str
    attn_key: str | None
    fused: AttentionSpec | None
    #: The config location that adapts it: selfattn, attn_output, intermediate, output or gate.
    location: str = "selfattn"

    @property
    def module(self) -> nn.Module:
        return self.parent._modules[self.attr]  # type: ignore[return-value]


def _split(path: str) -> tuple[str, str]:
    parent, _, attr = path.rpartition(".")
    return parent, attr


def _target(
    layer: nn.Module,
    prefix: str,
    path: str,
    attn_key: str | None,
    fused: AttentionSpec | None,
    location: str = "selfattn",
) -> Target | None:
    # The first existing alternative of ``a.b|a.c``.
    path = next((alt for alt in path.split("|") if resolve(layer, alt) is not None), "")
    if not path:
        return None
    parent_path, attr = _split(path)
    parent = resolve(layer, parent_path)
    assert parent is not None
    return Target(f"{prefix}.{path}", parent, attr, attn_key, fused, location)


def lora_targets(model: nn.Module, arch: ModelSpec, config: LoRAConfig) -> list[Target]:
    """Every projection ``config`` adapts on ``model``, in layer order."""
    leave_out = set(config.leave_out or ())
    matrices = set(config.attn_matrices or ())
    targets: list[Target] = []
    for ref in iter_layers(model, arch):
        if ref.index in leave_out:
            continue
        layer = ref.module
        prefix = f"{ref.group.layers}.{ref.local_index}"
        found: list[Target | None] = []
        if config.selfattn_lora:
            for spec in (ref.group.self_attention, ref.group.cross_attention):
                if spec is None or resolve(layer, spec.module) is None:
                    continue
                if spec.is_fused:
                    assert spec.qkv is not None
                    if matrices & set(spec.qkv_order):
                        found.append(_target(layer, prefix, spec.qkv, None, spec))
                    continue
                for key, path in (("q", spec.q), ("k", spec.k), ("v", spec.v)):
                    if key in matrices and path is not None:
                        found.append(_target(layer, prefix, path, key, None))
        if config.attn_output_lora:
            for spec in (ref.group.self_attention, ref.group.cross_attention):
                if spec is not None and resolve(layer, spec.module) is not None:
                    found.append(_target(layer, prefix, spec.o, None, None, "attn_output"))
        if config.intermediate_lora:
            found.append(_target(layer, prefix, ref.group.intermediate, None, None, "intermediate"))
        if config.output_lora:
            found.append(_target(layer, prefix, ref.group.output, None, None, "output"))
        if config.gate_lora and ref.group.gate is not None:
            found.append(_target(layer, prefix, ref.group.gate, None, None, "gate"))
        targets.extend(t for t in found if t is not None)
    return targets


def lora_wrappers(model: nn.Module) -> Iterator[LoRAWrapper]:
    """Every LoRA wrapper currently in ``model``."""
    for module in model.modules():
        if isinstance(module, LoRAWrapper):
            yield module


# ConfigError.single with this module's default code (a call may pass another).
_error = partial(ConfigError.single, code="unsupported_config")


class LoRAHandler(MethodHandler[LoRAConfig]):
    """Builds LoRA/IA3/DoRA/Vera units into wrapped projections; merges them exactly."""

    family = "lora"

    def check_active(self, model: nn.Module, arch: ModelSpec, names: Sequence[str]) -> None:
        # A fused q/k/v projection (GPT-2's c_attn) holds one delta layout: one adapter at a time.
        for module in model.modules():
            if isinstance(module, LoRAFusedQKV):
                both = [n for n in names if n in module.loras]
                if len(both) > 1:
                    raise ConfigError.single(
                        f"adapters {', '.join(repr(n) for n in both)} both adapt the fused q/k/v "
                        f"projection of this '{arch.model_type}' model, which applies one LoRA "
                        "adapter at a time",
                        expected="at most one active LoRA-family adapter on fused q/k/v",
                        found=repr(list(names)),
                        code="conflict",
                    )

    def check_setup(self, model: nn.Module, arch: ModelSpec, setup: Any) -> None:
        # In a Stack a LoRA unit reads the previous unit's delta instead of x, which needs a
        # projection whose output is as wide as its input (not LLaMA's grouped k/v).
        if setup is None:
            return
        for path, module in model.named_modules():
            if not isinstance(module, LoRALinear):
                continue
            fed = fed_names(setup, module.loras._modules.__contains__)
            for name in sorted(fed):
                if module.unit(name).composition_mode == "scale":
                    continue
                if module.in_features != module.out_features:
                    raise ConfigError.single(
                        f"{setup}: adapter '{name}' would read the previous adapter's output at "
                        f"{path}, which is {module.out_features} wide while the projection's input "
                        f"is {module.in_features} wide",
                        expected="stacked LoRA adapters only on projections whose output is as "
                        "wide as their input",
                        found=f"{path}: {module.in_features} → {module.out_features}",
                        suggestion="leave this projection out of one adapter (attn_matrices / "
                        "leave_out), or combine them with Average or BatchSplit",
                        code="unsupported_composition",
                    )

    # -- check -------------------------------------------------------------------------------
    def check(self, model: nn.Module, arch: ModelSpec, config: LoRAConfig) -> None:
        if not arch.supports("lora"):
            raise _error(
                f"LoRA adapters are not supported on '{arch.model_type}' models",
                expected="one of " + ", ".join(arch.supported_families),
                found="lora",
            )
        # r, composition_mode, dtype and IA³'s r=1/no dropout/no DoRA are the config's own
        # types and cross-field rules (tests/test_backend_guarantees.py).
        targets = lora_targets(model, arch, config)
        if config.gate_lora and not any(t.location == "gate" for t in targets):
            raise _error(
                f"'{arch.model_type}' models have no separate feed-forward gate projection "
                "for gate_lora",
                expected="a model whose feed-forward has a gate (LLaMA-family gate_proj, "
                "gated T5 wi_0)",
                found="gate_lora=True",
                suggestion="adapt intermediate_lora / output_lora instead",
            )
        if config.input_scaling and config.use_gating:
            raise _error(
                "input_scaling cannot be combined with use_gating",
                expected="use_gating=False with input_scaling",
                found="use_gating=True",
            )
        if not targets:
            raise _error(
                "this LoRA config adapts no projection of the model",
                expected="selfattn_lora with 'q', 'k' or 'v' in attn_matrices, intermediate_lora or output_lora",
                found=f"attn_matrices={list(config.attn_matrices)}, leave_out={list(config.leave_out)}",
            )
        vera = is_vera(config)
        shapes = set()
        for t in targets:
            module = t.module
            base = module.original if isinstance(module, LoRAWrapper) else module
            if not is_wrappable(base):
                raise _error(
                    f"cannot add LoRA to {t.path}: it is a {type(base).__name__}",
                    expected="nn.Linear or Conv1D",
                )
            if t.fused is not None and (vera or config.use_dora):
                raise _error(
                    f"{'Vera' if vera else 'DoRA'} is not supported on the fused q/k/v projection {t.path}",
                    expected="plain LoRA or IA3 on this model",
                    found="vera_d/vera_b floats" if vera else "use_dora=True",
                )
            if config.use_dora and _weight_oi(base).is_meta:
                raise _error(
                    f"DoRA cannot be added to {t.path}: its weight is on the meta device",
                    expected="materialised weights (DoRA's magnitude starts as their norm)",
                    found="a meta-device weight",
                    suggestion="load the model's weights first, or use plain LoRA",
                )
            shapes.add(tuple(_weight_oi(base).shape))
        if vera and len(shapes) > 1:
            raise _error(
                "Vera shares one pair of random matrices, so every adapted projection must have the same shape",
                expected="projections of one shape (e.g. only attention q/v)",
                found="shapes " + ", ".join(str(s) for s in sorted(shapes)),
            )

    def shares_parameters(self, config: LoRAConfig) -> bool:
        return is_vera(config)  # VeRA's frozen random matrices

    def check_members(
        self, model: nn.Module, arch: ModelSpec, configs: Sequence[LoRAConfig]
    ) -> None:
        """Two LoRA-family members of one union must not adapt the same projection."""
        seen: set[str] = set()
        for config in configs:
            paths = {t.path for t in lora_targets(model, arch, config)}
            overlap = seen & paths
            if overlap:
                raise _error(
                    "two LoRA-family configs of one union adapt the same projection",
                    expected="disjoint locations or leave_out",
                    found=sorted(overlap)[0],
                )
            seen |= paths

    # -- add / remove ------------------------------------------------------------------------
    def add(
        self,
        model: nn.Module,
        arch: ModelSpec,
        name: str,
        config: LoRAConfig,
        ledger: Ledger,
    ) -> None:
        state = get_state(model, arch)
        targets = lora_targets(model, arch, config)
        shared: VeraShared | None = None
        if is_vera(config):
            first = targets[0].module
            weight = _weight_oi(first.original if isinstance(first, LoRAWrapper) else first)
            out_f, in_f = weight.shape
            shared = VeraShared((config.r, in_f), (out_f, config.r), config)
            # Like the units: the model's dtype unless the config names one.
            shared.to(device=weight.device, dtype=weight.dtype if config.dtype is None else None)
            shared_parameters(model, name, ledger, shared)
        for t in targets:
            wrapper = self._wrapper(t, ledger)
            wrapper.bind(state)
            if isinstance(wrapper, LoRAFusedQKV):
                unit = wrapper.add_unit(name, config, config.attn_matrices)
                ledger.on_undo(partial(_forget, wrapper, name))
            else:
                assert isinstance(wrapper, LoRALinear)
                unit = wrapper.add_unit(
                    name, config, shared, scale_input=t.location in config.input_scaling
                )
            unit.train(wrapper.training)
            ledger.add_entry(wrapper.loras, name, unit)
            # Runs before the entry is removed (LIFO): never leave this adapter merged.
            ledger.on_undo(partial(_unmerge_if, wrapper, name))

    @staticmethod
    def _wrapper(t: Target, ledger: Ledger) -> LoRAWrapper:
        """The target's wrapper, created (and scheduled for removal when empty) if needed."""
        current = t.module
        if isinstance(current, LoRAWrapper):
            wrapper = current
        elif t.fused is not None:
            wrapper = LoRAFusedQKV(
                current, fan_in_fan_out=fan_in_fan_out(current), order=t.fused.qkv_order
            )
            wrapper.train(current.training)
            t.parent._modules[t.attr] = wrapper
        else:
            wrapper = LoRALinear.wrap(current, attn_key=t.attn_key)
            wrapper.train(current.training)
            t.parent._modules[t.attr] = wrapper
        # Registered before the unit entry, so it runs after the entry's removal.
        ledger.on_undo(_unwrap_if_unused, t.parent, t.attr, wrapper)
        return wrapper

    # -- merge -------------------------------------------------------------------------------
    def merge(self, model: nn.Module, arch: ModelSpec, name: str, config: LoRAConfig) -> None:
        """Fold ``name`` into the wrapped weights (exactly reproducing its forward pass)."""
        wrappers = [w for w in lora_wrappers(model) if name in w.loras]
        if config.use_gating:
            raise _error(
                f"adapter '{name}' cannot be merged: gated LoRA depends on the input",
                expected="use_gating=False",
                found="use_gating=True",
                code="not_mergeable",
            )
        busy = [w for w in wrappers if w.merged not in (None, name)]
        if busy:
            raise _error(
                f"cannot merge '{name}': '{busy[0].merged}' is already merged into the same layers",
                suggestion=f"unmerge '{busy[0].merged}' first",
                code="not_mergeable",
            )
        for w in wrappers:
            w.merge(name)

    def unmerge(self, model: nn.Module, arch: ModelSpec, name: str, config: LoRAConfig) -> None:
        """Restore the exact weights saved at merge time."""
        for w in lora_wrappers(model):
            if w.merged == name:
                w.unmerge()


def _weight_oi(module: nn.Module) -> Tensor:
    """A Linear's or Conv1D's weight in (out, in) orientation."""
    weight = cast(Tensor, module.weight)
    return weight.t() if fan_in_fan_out(module) else weight


def _unwrap_if_unused(parent: nn.Module, attr: str, wrapper: LoRAWrapper) -> None:
    if len(wrapper.loras) == 0 and parent._modules.get(attr) is wrapper:
        parent._modules[attr] = wrapper.restore_original()


def _forget(wrapper: LoRAFusedQKV, name: str) -> None:
    wrapper.enabled.pop(name, None)


def _unmerge_if(wrapper: LoRAWrapper, name: str) -> None:
    if wrapper.merged == name:
        wrapper.unmerge()


class MTLLoRAHandler(LoRAHandler):
    """MTL-LoRA units in the same wrapped projections as LoRA; rows are routed to tasks by the
    ``MultiTask`` block (``task_ids`` in the forward call). Not on fused q/k/v projections."""

    family = "mtl_lora"

    def check(self, model: nn.Module, arch: ModelSpec, config: LoRAConfig) -> None:
        super().check(model, arch, config)
        for t in lora_targets(model, arch, config):
            if t.fused is not None:
                raise _error(
                    f"MTL-LoRA is not supported on the fused q/k/v projection {t.path}",
                    expected="plain LoRA or IA3 on this model",
                    found="mtl_lora",
                )
