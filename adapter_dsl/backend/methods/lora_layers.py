"""Torch modules of the LoRA family: the per-adapter units and the wrapped projections.

A wrapped projection (:class:`LoRALinear` for one ``nn.Linear``/``Conv1D``, :class:`LoRAFusedQKV`
for a fused q/k/v projection such as GPT-2's ``c_attn``) *shares* the original module's ``weight``
and ``bias`` parameters (same objects, same state-dict keys) and holds a ``ModuleDict`` ``loras``
so that unit parameters get the reference's keys, e.g. ``…attention.self.query.loras.<name>.lora_A``.

Math (reference §3.2; ``W`` is always used in the (out, in) orientation, Conv1D weights are
transposed on the fly):

* LoRA: ``y = Wx + b + s·B A dropout(x)`` with ``s = α/r``.
* DoRA: ``y = m / ‖W + BA‖_row ⊙ (Wx + b + s·BAx)`` (the norm omits ``s``; the bias is rescaled).
* IA3:  ``y = (Wx + b) ⊙ (α·l)``.
* IA3 on the input (``input_scaling``, PEFT's feed-forward modules): ``y = W(x ⊙ α·l) + b``,
  computed as the additive delta ``W((α·l − 1) ⊙ x)`` so that it composes and merges as LoRA
  does (merged: ``W·diag(α·l)``).
* Vera: ``y = Wx + b + s·(vera_B · B · vera_D · A) x`` with ``A``/``B`` frozen and shared.
* Gating (UniPELT): the scaling ``s`` (or ``α``) is *replaced* by ``mean_t sigmoid(gate(x_t))``.

Several active adapters in one projection follow the active setup (``backend/composition.py``,
primitives in ``lora_compose.py``): in a ``Stack`` each unit gets the previous unit's delta as its
input (it does not add up), and the last unit decides how the final delta is combined with the
base output.

Deliberate differences from the reference (all make merging exact):

* IA3 merge scales the bias too (the forward pass does), the reference leaves it untouched.
* DoRA merge includes ``α/r`` and rescales the bias, i.e. it reproduces the forward pass exactly.
* Unmerge restores a copy of the original weight and bias taken at merge time, so it is exact for
  every variant (the reference subtracts/divides, and does nothing at all for DoRA). The copy
  costs the memory of one weight per merged projection while merged.
* On fused q/k/v projections IA3's ``α`` scales only the enabled thirds (the reference also
  multiplies the untouched thirds by ``α``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from adapter_dsl.backend.composition import Node, compose
from adapter_dsl.backend.methods.lora_compose import LoRAComposer, LoRAState
from adapter_dsl.methods.lora import LoRAConfig

__all__ = [
    "IA3",
    "IA3Input",
    "LoRA",
    "LoRAFusedQKV",
    "LoRALinear",
    "LoRAUnit",
    "LoRAWrapper",
    "Vera",
    "VeraShared",
    "is_vera",
    "torch_dtype",
]


def torch_dtype(name: str | None) -> torch.dtype | None:
    """``"float32"`` → ``torch.float32``; ``None`` → ``None``. Raises ``ValueError`` otherwise."""
    if name is None:
        return None
    value = getattr(torch, name, None)
    if not isinstance(value, torch.dtype):
        raise ValueError(f"'{name}' is not a torch dtype")
    return value


def is_vera(cfg: LoRAConfig) -> bool:
    """The reference picks Vera when either ``vera_d`` or ``vera_b`` *is a float* (ints do not count)."""
    return cfg.composition_mode == "add" and (
        isinstance(cfg.vera_d, float) or isinstance(cfg.vera_b, float)
    )


def _generator(seed: int | None) -> torch.Generator | None:
    # A local generator keeps the global RNG untouched; every module built from the same seed gets
    # the same initial values, which is what `init_weights_seed` promises.
    return torch.Generator().manual_seed(seed) if seed is not None else None


def _init_pair(a: Tensor, b: Tensor, scheme: str, gen: torch.Generator | None) -> None:
    """Reference initialisations of an (A, B) pair."""
    with torch.no_grad():
        if scheme == "lora":
            nn.init.kaiming_uniform_(a, a=math.sqrt(5), generator=gen)
            nn.init.zeros_(b)
        elif scheme == "bert":
            nn.init.normal_(a, std=0.02, generator=gen)
            nn.init.normal_(b, std=0.02, generator=gen)
        elif scheme == "ia3":
            nn.init.ones_(a)
            nn.init.ones_(b)
        elif scheme == "vera":
            nn.init.kaiming_uniform_(a, generator=gen)
            nn.init.kaiming_uniform_(b, generator=gen)
        else:
            raise ValueError(f"unknown init_weights '{scheme}'")


def _make_gate(in_features: int, heads: int, gen: torch.Generator | None) -> nn.Linear:
    gate = nn.Linear(in_features, heads)
    with torch.no_grad():
        nn.init.normal_(gate.weight, std=0.02, generator=gen)
    return gate


def gate_value(gate: nn.Linear, x: Tensor) -> Tensor:
    """Token-averaged sigmoid gate: ``(batch, heads)`` from ``x`` of shape ``(batch, tokens, in)``."""
    return torch.sigmoid(gate(x.to(gate.weight.dtype))).mean(dim=1)


class LoRAUnit(nn.Module):
    """Common interface of the per-adapter units held in ``loras``."""

    composition_mode: str  # "add" or "scale"
    use_gating: bool
    use_dora: bool
    scaling: float
    r: int
    # Present depending on the variant (declared for type checkers): LoRA/Vera have lora_A,
    # lora_B (LoRA, IA3), m (DoRA), gate (gating).
    lora_A: nn.Parameter
    lora_B: nn.Parameter
    lora_dropout: nn.Module
    m: nn.Linear
    gate: nn.Linear

    def delta_weight(self) -> Tensor:
        """The unscaled weight delta in (out, in) orientation (IA3: the (out, 1) scale vector)."""
        raise NotImplementedError

    def compute(self, hidden: Tensor) -> Tensor:
        """The unscaled update for input ``hidden`` (``add``) or the scale vector (``scale``)."""
        raise NotImplementedError


class LoRA(LoRAUnit):
    """Low-rank update ``B A`` (optionally with DoRA's magnitude ``m``)."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        cfg: LoRAConfig,
        *,
        gating_heads: int = 1,
        base_weight: Tensor | None = None,
        a_shape: tuple[int, int] | None = None,
        b_shape: tuple[int, int] | None = None,
    ) -> None:
        super().__init__()
        dtype = torch_dtype(cfg.dtype)
        gen = _generator(cfg.init_weights_seed)
        self.r = cfg.r
        self.composition_mode = "add"
        self.use_gating = cfg.use_gating
        self.use_dora = cfg.use_dora
        self.scaling = cfg.alpha / cfg.r
        self.lora_dropout = nn.Dropout(cfg.dropout) if cfg.dropout > 0 else nn.Identity()
        a_shape = a_shape or (cfg.r, in_features)
        b_shape = b_shape or (out_features, cfg.r)
        self.lora_A = nn.Parameter(torch.zeros(a_shape, dtype=dtype))
        self.lora_B = nn.Parameter(torch.zeros(b_shape, dtype=dtype))
        _init_pair(self.lora_A, self.lora_B, cfg.init_weights, gen)
        if self.use_dora:
            self.m = _magnitude(base_weight, out_features, dtype)
        if self.use_gating:
            self.gate = _make_gate(in_features, gating_heads, gen)

    def delta_weight(self) -> Tensor:
        return self.lora_B @ self.lora_A

    def compute(self, hidden: Tensor) -> Tensor:
        # Cast at the unit's boundary: a config ``dtype`` may differ from the model's.
        hidden = hidden.to(self.lora_A.dtype)
        return self.lora_dropout(hidden) @ self.lora_A.t() @ self.lora_B.t()


class TaskSpecific(nn.Module):
    """MTL-LoRA's task-specific matrix: a diagonal of ``values`` (r) (``singular_values``) or a
    full (r, r) matrix (``linear``); key ``…loras.<name>.task_specific.values``."""

    def __init__(self, rank: int, kind: str, dtype: Any) -> None:
        super().__init__()
        self.kind = kind
        shape = (rank,) if kind == "singular_values" else (rank, rank)
        self.values = nn.Parameter(torch.ones(shape, dtype=dtype))

    def forward(self) -> Tensor:
        return torch.diag(self.values) if self.kind == "singular_values" else self.values


class MTLLoRA(LoRA):
    """MTL-LoRA (reference ``MTLLoRA``): ``n_up_projection`` up-projections ``B_k`` mixed by
    ``softmax(weights / weights_sharpness)`` around a task-specific ``S``:
    ``Σ_k w̃_k · B_k S A x``, then the LoRA scaling (or gate)."""

    def __init__(self, in_features: int, out_features: int, cfg: Any) -> None:
        super().__init__(in_features, out_features, cfg)
        dtype = torch_dtype(cfg.dtype)
        n_up = int(cfg.n_up_projection)
        self.lora_B = nn.Parameter(torch.zeros(n_up, out_features, cfg.r, dtype=dtype))
        if cfg.init_weights == "bert":
            with torch.no_grad():
                nn.init.normal_(self.lora_B, std=0.02, generator=_generator(cfg.init_weights_seed))
        self.task_specific = TaskSpecific(cfg.r, str(cfg.task_specific_matrix_type), dtype)
        self.weights = nn.Parameter(torch.ones(n_up, dtype=dtype))
        self.weights_sharpness = float(cfg.weights_sharpness)

    def _mix(self) -> Tensor:
        return torch.softmax(self.weights / self.weights_sharpness, dim=0)

    def delta_weight(self) -> Tensor:
        # The forward computes x·Aᵀ·S·B_kᵀ, i.e. the weight B_k·Sᵀ·A.
        s_a = self.task_specific().t() @ self.lora_A  # (r, in)
        return torch.einsum("k,kor,ri->oi", self._mix(), self.lora_B, s_a)

    def compute(self, hidden: Tensor) -> Tensor:
        low = self.lora_dropout(hidden) @ self.lora_A.t() @ self.task_specific()  # (…, r)
        return torch.einsum("k,...r,kor->...o", self._mix(), low, self.lora_B)


def _magnitude(base_weight: Tensor | None, out_features: int, dtype: Any) -> nn.Linear:
    """DoRA's magnitude, initialised to the row norms of W; stored as a bias-free Linear(1, out)
    like the reference (key ``…loras.<name>.m.weight``)."""
    if base_weight is None:
        raise ValueError("DoRA needs the base weight to initialise its magnitude")
    m = nn.Linear(1, out_features, bias=False, dtype=dtype)
    with torch.no_grad():
        m.weight.copy_(torch.linalg.norm(base_weight.detach(), dim=1, keepdim=True))
    return m


class Vera(LoRA):
    """Vera: trainable full ``vera_D`` (r×r) and ``vera_B`` (out×out) around frozen shared A/B.

    The reference initialises the two "vectors" as full diagonal matrices, so they are full
    trainable matrices here too (same shapes, same keys). ``shared`` (:class:`VeraShared`) is
    referenced, not registered, so the frozen matrices appear once in the model (under the base
    model's ``shared_parameters``).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        cfg: LoRAConfig,
        shared: VeraShared,
        *,
        gating_heads: int = 1,
        base_weight: Tensor | None = None,
    ) -> None:
        nn.Module.__init__(self)
        dtype = torch_dtype(cfg.dtype)
        gen = _generator(cfg.init_weights_seed)
        self.r = cfg.r
        self.composition_mode = "add"
        self.use_gating = cfg.use_gating
        self.use_dora = cfg.use_dora
        self.scaling = cfg.alpha / cfg.r
        self.lora_dropout = nn.Dropout(cfg.dropout) if cfg.dropout > 0 else nn.Identity()
        d = 0.0 if cfg.vera_d is None else float(cfg.vera_d)
        b = 0.0 if cfg.vera_b is None else float(cfg.vera_b)
        self.vera_D = nn.Parameter(torch.diag(torch.full((cfg.r,), d, dtype=dtype)))
        self.vera_B = nn.Parameter(torch.diag(torch.full((out_features,), b, dtype=dtype)))
        self._shared = (shared,)  # a tuple hides it from Module registration
        if self.use_dora:
            self.m = _magnitude(base_weight, out_features, dtype)
        if self.use_gating:
            self.gate = _make_gate(in_features, gating_heads, gen)

    def delta_weight(self) -> Tensor:
        shared = self._shared[0]
        return self.vera_B @ shared.lora_B @ self.vera_D @ shared.lora_A

    def compute(self, hidden: Tensor) -> Tensor:
        delta = self.delta_weight()
        return self.lora_dropout(hidden.to(delta.dtype)) @ delta.t()


class VeraShared(nn.Module):
    """The frozen random ``lora_A`` (r, in) / ``lora_B`` (out, r) shared by one Vera adapter.

    They are buffers, not parameters: they never train (so training helpers that unfreeze an
    adapter's parameters cannot unfreeze them), they are not counted as trainable, and they are
    still part of the state dict under the reference's key ``shared_parameters.<name>.lora_A``.
    Unlike the reference on bare models, they are therefore saved with the adapter.
    """

    lora_A: Tensor
    lora_B: Tensor

    def __init__(self, a_shape: tuple[int, int], b_shape: tuple[int, int], cfg: LoRAConfig) -> None:
        super().__init__()
        dtype = torch_dtype(cfg.dtype)
        a = torch.zeros(a_shape, dtype=dtype)
        b = torch.zeros(b_shape, dtype=dtype)
        _init_pair(a, b, cfg.init_weights, _generator(cfg.init_weights_seed))
        self.register_buffer("lora_A", a)
        self.register_buffer("lora_B", b)


class IA3(LoRAUnit):
    """(IA)³: a learned per-output scale ``lora_B`` (out, 1); ``y = (Wx + b) ⊙ α·l``."""

    def __init__(
        self, in_features: int, out_features: int, cfg: LoRAConfig, *, gating_heads: int = 1
    ) -> None:
        super().__init__()
        gen = _generator(cfg.init_weights_seed)
        self.r = cfg.r
        self.composition_mode = "scale"
        self.use_gating = cfg.use_gating
        self.use_dora = False
        self.scaling = float(cfg.alpha)
        self.lora_B = nn.Parameter(torch.zeros(out_features, 1, dtype=torch_dtype(cfg.dtype)))
        with torch.no_grad():
            if cfg.init_weights == "ia3":
                nn.init.ones_(self.lora_B)
            elif cfg.init_weights == "bert":
                nn.init.normal_(self.lora_B, std=0.02, generator=gen)
            elif cfg.init_weights == "lora":
                nn.init.zeros_(self.lora_B)
            else:
                raise ValueError(f"init_weights '{cfg.init_weights}' is not valid for IA3")
        if self.use_gating:
            self.gate = _make_gate(in_features, gating_heads, gen)

    def delta_weight(self) -> Tensor:
        return self.lora_B

    def compute(self, hidden: Tensor) -> Tensor:
        return self.lora_B.view(-1)


class IA3Input(IA3):
    """IA³ scaling a projection's *input*: ``lora_B`` (in, 1); ``y = W(x ⊙ α·l) + b``.

    An additive unit (``composition_mode`` "add", scaling 1) whose delta is ``W((α·l − 1) ⊙ x)``;
    ``owner`` is the wrapped projection whose weight it reads (held outside the module tree).
    """

    scales_input = True

    def __init__(
        self, in_features: int, out_features: int, cfg: LoRAConfig, owner: LoRAWrapper
    ) -> None:
        super().__init__(out_features, in_features, cfg)  # one scale per input feature
        self.composition_mode = "add"
        self.alpha = float(cfg.alpha)
        self.scaling = 1.0
        self._owner = (owner,)

    def _factor(self) -> Tensor:
        return self.alpha * self.lora_B.view(-1) - 1

    def delta_weight(self) -> Tensor:
        weight = self._owner[0].weight_oi()
        return weight * self._factor().to(weight.dtype).unsqueeze(0)

    def compute(self, hidden: Tensor) -> Tensor:
        weight = self._owner[0].weight_oi()
        return F.linear(hidden * self._factor().to(hidden.dtype), weight.to(hidden.dtype))


# ---------------------------------------------------------------------------------------------
# Wrapped projections

BACKUP_WEIGHT = "merge_backup_weight"
BACKUP_BIAS = "merge_backup_bias"


def _copy_hooks(src: nn.Module, dst: nn.Module) -> None:
    # Hooks registered on the original module (e.g. by another adapter method) must keep firing.
    # The dicts are shared, not copied, so handles created on either module remove from both.
    for key, value in vars(src).items():
        if "_hooks" in key and isinstance(value, dict):
            setattr(dst, key, value)


class LoRAWrapper(nn.Module):
    """Shared behaviour of wrapped projections: weight sharing, activation, merge/unmerge.

    ``active`` is the ordered tuple of adapter names applied at forward time, read from the
    model's adapter state (see :meth:`bind`). ``merged`` names the adapter folded into the
    weights, if any; it is skipped at forward time while other active adapters still apply.
    """

    weight: Tensor  # the base module's Parameter (typed as nn.Linear types it)

    def __init__(self, base: nn.Module, *, fan_in_fan_out: bool) -> None:
        # Not super().__init__(): a subclass may also derive from nn.Linear (see LoRALinear.wrap),
        # whose __init__ would allocate new weights.
        nn.Module.__init__(self)
        self.weight = cast(nn.Parameter, base.weight)
        bias = getattr(base, "bias", None)
        if bias is not None:
            self.bias = cast(nn.Parameter, bias)
        else:
            self.register_parameter("bias", None)
        self.fan_in_fan_out = fan_in_fan_out
        if fan_in_fan_out:
            self.in_features, self.out_features = self.weight.shape
        else:
            self.out_features, self.in_features = self.weight.shape
        self.loras = nn.ModuleDict()
        self._state: tuple[Any, ...] = ()  # the model's AdapterState once bound (not registered)
        self._fixed_active: tuple[str, ...] = ()
        self.merged: str | None = None
        self._original = (base,)  # tuple: not registered as a submodule
        _copy_hooks(base, self)

    # -- activation --------------------------------------------------------------------------
    def bind(self, state: Any) -> None:
        """Read the active adapters from ``state.active_members("lora")`` at forward time."""
        self._state = (state,)

    @property
    def active(self) -> tuple[str, ...]:
        """Names applied at forward time, in stack order."""
        if self._state:
            return tuple(name for name, _ in self._state[0].active_members("lora"))
        return self._fixed_active

    @active.setter
    def active(self, names: Sequence[str]) -> None:
        # Only for a wrapper used outside a model state (tests, manual use).
        self._fixed_active = tuple(names)

    # -- helpers -----------------------------------------------------------------------------
    @property
    def original(self) -> nn.Module:
        """The module this wrapper replaced (same weight and bias objects)."""
        return self._original[0]

    def restore_original(self) -> nn.Module:
        """Unmerge and hand back the original module (its parameters re-pointed at ours)."""
        self.unmerge()
        base = self.original
        base.weight = self.weight
        if self.bias is not None:
            base.bias = self.bias
        return base

    def _place(self, unit: LoRAUnit, cfg: LoRAConfig) -> LoRAUnit:
        """Move ``unit`` to the weight's device, and to its dtype unless ``cfg.dtype`` says otherwise."""
        if cfg.dtype is None and self.weight.is_floating_point():
            return unit.to(device=self.weight.device, dtype=self.weight.dtype)
        return unit.to(device=self.weight.device)

    def weight_oi(self) -> Tensor:
        """The weight in (out, in) orientation."""
        return self.weight.t() if self.fan_in_fan_out else self.weight

    def _base_forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight_oi(), self.bias)

    def active_setup(self) -> Node | None:
        """The active setup when it names an unmerged adapter of this projection."""
        if self._state:
            node = self._state[0].active_setup()
        else:
            node = Node("Stack", self._fixed_active) if self._fixed_active else None
        if node is None or not any(
            n in self.loras._modules and n != self.merged for n in node.names()
        ):
            return None
        return node

    def _active_units(self) -> list[tuple[str, LoRAUnit]]:
        # A merged adapter already lives in the weights; other active adapters still apply.
        return [(n, self.unit(n)) for n in self.active if n in self.loras and n != self.merged]

    def unit(self, name: str) -> LoRAUnit:
        """The unit of adapter ``name``."""
        return cast(LoRAUnit, self.loras[name])

    # -- merging -----------------------------------------------------------------------------
    def merged_parameters(self, name: str) -> tuple[Tensor, Tensor | None]:
        """(weight, bias) in stored orientation that make the plain projection equal the forward."""
        raise NotImplementedError

    def merge(self, name: str) -> None:
        """Fold adapter ``name`` into the weights. Gated units and a second merge are refused."""
        if self.merged == name:
            return
        if self.merged is not None:
            raise ValueError(
                f"'{self.merged}' is already merged into this layer; unmerge it before merging '{name}'"
            )
        unit = self.unit(name)
        if unit.use_gating:
            raise ValueError("Cannot merge a LoRA layer with gating: the gate depends on the input")
        with torch.no_grad():
            weight, bias = self.merged_parameters(name)
            # Exact copies of the pre-merge tensors, as non-persistent buffers: they follow
            # `.to()`/`.cuda()` with the model but never enter the state dict.
            self.register_buffer(BACKUP_WEIGHT, self.weight.detach().clone(), persistent=False)
            self.weight.copy_(weight)
            if self.bias is not None and bias is not None:
                self.register_buffer(BACKUP_BIAS, self.bias.detach().clone(), persistent=False)
                self.bias.copy_(bias)
        self.merged = name

    def unmerge(self) -> None:
        """Restore the exact pre-merge weight and bias (no-op when nothing is merged)."""
        with torch.no_grad():
            for key, target in ((BACKUP_WEIGHT, self.weight), (BACKUP_BIAS, self.bias)):
                saved = self._buffers.pop(key, None)
                if saved is not None and target is not None:
                    target.copy_(saved)
        self.merged = None

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, fan_in_fan_out={self.fan_in_fan_out}"


class LoRALinear(LoRAWrapper):
    """One ``nn.Linear`` (or transposed ``Conv1D``) with LoRA-family units in ``loras``.

    Build it with :meth:`wrap`, which returns an ``nn.Linear`` subclass for Linear bases so that
    ``isinstance(module, nn.Linear)`` checks (autocast policies, user code) still hold.
    """

    @classmethod
    def wrap(cls, base: nn.Module, *, attn_key: str | None = None) -> LoRALinear:
        if isinstance(base, nn.Linear):
            return LoRALinearTorch(base, fan_in_fan_out=False, attn_key=attn_key)
        return LoRALinear(base, fan_in_fan_out=fan_in_fan_out(base), attn_key=attn_key)

    def __init__(
        self, base: nn.Module, *, fan_in_fan_out: bool, attn_key: str | None = None
    ) -> None:
        super().__init__(base, fan_in_fan_out=fan_in_fan_out)
        self.attn_key = attn_key

    def add_unit(
        self,
        name: str,
        cfg: LoRAConfig,
        shared: VeraShared | None = None,
        *,
        scale_input: bool = False,
    ) -> LoRAUnit:
        """Build the unit chosen by ``cfg`` (not yet inserted into ``loras``); ``scale_input``:
        IA³ on this projection's input (``cfg.input_scaling`` lists its location)."""
        base_weight = self.weight_oi().detach() if cfg.use_dora else None
        unit: LoRAUnit
        if cfg.composition_mode == "scale" and scale_input:
            unit = IA3Input(self.in_features, self.out_features, cfg, self)
        elif cfg.composition_mode == "scale":
            unit = IA3(self.in_features, self.out_features, cfg)
        elif getattr(cfg, "architecture", None) == "mtl_lora":
            unit = MTLLoRA(self.in_features, self.out_features, cfg)
        elif is_vera(cfg):
            assert shared is not None
            unit = Vera(self.in_features, self.out_features, cfg, shared, base_weight=base_weight)
        else:
            unit = LoRA(self.in_features, self.out_features, cfg, base_weight=base_weight)
        return self._place(unit, cfg)

    def forward(self, x: Tensor) -> Tensor:
        out = self._base_forward(x)
        node = self.active_setup()
        if node is None:
            return out
        composer = LoRAComposer(self, self._state[0].context if self._state else None)
        state = compose(node, LoRAState(x=x, hidden=None, out=out), composer)
        # Results keep the projection's output dtype (under autocast the float32 magnitudes
        # and scales would otherwise promote a bfloat16 output).
        return composer.finish(state).to(out.dtype)

    def combine(self, last: LoRAUnit, out: Tensor, hidden: Tensor) -> Tensor:
        """The base output combined with the composed delta, as the last unit defines it."""
        if last.composition_mode == "scale":
            return out * hidden
        if last.use_dora:
            norm = torch.linalg.norm(self.weight_oi() + last.delta_weight(), dim=1)
            return last.m.weight.view(-1) / norm * (out + hidden)
        return out + hidden

    @staticmethod
    def _unit_step(unit: LoRAUnit, hidden: Tensor | None, x: Tensor) -> Tensor:
        """One unit of the stack: its (scaled or gated) delta, fed by the previous delta."""
        if unit.composition_mode == "scale":
            vec = unit.compute(x)
            value = vec if hidden is None else hidden * vec
        else:
            value = unit.compute(x if hidden is None else hidden)
        if unit.use_gating:
            return value * gate_value(unit.gate, x).unsqueeze(-1)
        return value * unit.scaling

    def merged_parameters(self, name: str) -> tuple[Tensor, Tensor | None]:
        unit = self.unit(name)
        w = self.weight_oi()
        b = self.bias
        if unit.composition_mode == "scale":
            vec = unit.delta_weight().view(-1) * unit.scaling
            new_w, new_b = w * vec.unsqueeze(1), None if b is None else b * vec
        elif unit.use_dora:
            delta = unit.delta_weight()
            s = unit.m.weight.view(-1) / torch.linalg.norm(w + delta, dim=1)
            new_w = s.unsqueeze(1) * (w + unit.scaling * delta)
            new_b = None if b is None else s * b
        else:
            new_w, new_b = w + unit.scaling * unit.delta_weight(), b
        if self.fan_in_fan_out:
            new_w = new_w.t()
        return new_w, new_b


class LoRALinearTorch(LoRALinear, nn.Linear):
    """A :class:`LoRALinear` that is also an ``nn.Linear`` (same weight and bias objects)."""


class LoRAFusedQKV(LoRAWrapper):
    """A fused q/k/v projection (GPT-2 ``c_attn``) in the reference's merged layout.

    With ``k`` enabled matrices among q/k/v (in ``order``): LoRA ``lora_A`` is (r·k, in) and
    ``lora_B`` is (out/3·k, r), block ``g`` of A pairing with block ``g`` of B; IA3 ``lora_B`` is
    (out/3·k, 1). The delta is written into the enabled thirds of the output. The gate has ``k``
    heads, one per enabled third. Only one active adapter is allowed at a time (as in the
    reference); Vera and DoRA are not available here.
    """

    def __init__(self, base: nn.Module, *, fan_in_fan_out: bool, order: Sequence[str]) -> None:
        super().__init__(base, fan_in_fan_out=fan_in_fan_out)
        self.order = tuple(order)
        if self.out_features % len(self.order):
            raise ValueError("the fused projection's output is not divisible into q/k/v thirds")
        self.part = self.out_features // len(self.order)
        self.enabled: dict[str, tuple[int, ...]] = {}  # adapter → indices of enabled thirds

    def add_unit(self, name: str, cfg: LoRAConfig, attn_matrices: Sequence[str]) -> LoRAUnit:
        """Build the unit for the enabled thirds (``attn_matrices`` ∩ ``order``)."""
        enabled = tuple(i for i, key in enumerate(self.order) if key in attn_matrices)
        if not enabled:
            raise ValueError("no q/k/v matrix enabled for the fused projection")
        k = len(enabled)
        unit: LoRAUnit
        if cfg.composition_mode == "scale":
            unit = IA3(self.in_features, self.part * k, cfg, gating_heads=k)
        else:
            unit = LoRA(
                self.in_features,
                self.part * k,
                cfg,
                gating_heads=k,
                a_shape=(cfg.r * k, self.in_features),
                b_shape=(self.part * k, cfg.r),
            )
        self.enabled[name] = enabled
        return self._place(unit, cfg)

    def _scatter(self, name: str, value: Tensor, fill: float) -> Tensor:
        """Place ``value`` (…, k·part) into the enabled thirds of a (…, out) tensor filled with ``fill``."""
        parts = value.split(self.part, dim=-1)
        pieces = []
        enabled = self.enabled[name]
        for i in range(len(self.order)):
            if i in enabled:
                pieces.append(parts[enabled.index(i)])
            else:
                pieces.append(value.new_full((*value.shape[:-1], self.part), fill))
        return torch.cat(pieces, dim=-1)

    def _grouped_delta(self, unit: LoRAUnit, x: Tensor) -> Tensor:
        """``[B_g A_g x]_g`` concatenated over the enabled groups, unscaled."""
        k = unit.lora_A.shape[0] // unit.r
        after_a = unit.lora_dropout(x.to(unit.lora_A.dtype)) @ unit.lora_A.t()  # (…, r·k)
        after_a = after_a.unflatten(-1, (k, unit.r))
        b = unit.lora_B.view(k, self.part, unit.r)
        return torch.einsum("...kr,kor->...ko", after_a, b).flatten(-2)

    def _group_scale(self, unit: LoRAUnit, x: Tensor) -> Tensor | float:
        """Per-output scale of the update: the gate (repeated over each third) or the scaling."""
        if unit.use_gating:
            gate = gate_value(unit.gate, x)  # (batch, k)
            return gate.repeat_interleave(self.part, dim=-1).unsqueeze(1)
        return unit.scaling

    def forward(self, x: Tensor) -> Tensor:
        out = self._base_forward(x)
        units = self._active_units()
        if not units:
            return out
        if len(units) > 1:
            names = ", ".join(n for n, _ in units)
            raise ValueError(
                f"a fused q/k/v projection can apply only one LoRA adapter at a time ({names})"
            )
        name, unit = units[0]
        scale = self._group_scale(unit, x)
        if unit.composition_mode == "scale":
            factor = unit.lora_B.view(-1) * scale
            return (out * self._scatter(name, factor, 1.0)).to(out.dtype)
        delta = self._grouped_delta(unit, x) * scale
        return (out + self._scatter(name, delta, 0.0)).to(out.dtype)

    def merged_parameters(self, name: str) -> tuple[Tensor, Tensor | None]:
        unit = self.unit(name)
        w = self.weight_oi()
        b = self.bias
        if unit.composition_mode == "scale":
            vec = self._scatter(name, unit.lora_B.view(-1) * unit.scaling, 1.0)
            new_w, new_b = w * vec.unsqueeze(1), None if b is None else b * vec
        else:
            k = unit.lora_A.shape[0] // unit.r
            a = unit.lora_A.view(k, unit.r, self.in_features)
            bmat = unit.lora_B.view(k, self.part, unit.r)
            delta = torch.bmm(bmat, a).reshape(k * self.part, self.in_features)  # (k·part, in)
            full = self._scatter(name, delta.t() * unit.scaling, 0.0).t()  # (out, in)
            new_w, new_b = w + full, b
        if self.fan_in_fan_out:
            new_w = new_w.t()
        return new_w, new_b


def is_wrappable(module: nn.Module) -> bool:
    """``nn.Linear`` or HF ``Conv1D`` (a 2-D ``weight`` and an optional ``bias``)."""
    return isinstance(module, nn.Linear) or type(module).__name__ == "Conv1D"


def fan_in_fan_out(module: nn.Module) -> bool:
    """HF ``Conv1D`` stores its weight as (in, out)."""
    return type(module).__name__ == "Conv1D"


def describe(module: Any) -> str:
    return type(module).__name__
