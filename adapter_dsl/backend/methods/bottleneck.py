"""Bottleneck adapters: sequential (Pfeiffer/Houlsby), parallel (He et al.), Compacter, MAD-X.

One :class:`BottleneckAdapter` per (layer, location), stored in an ``adapters`` ModuleDict at the
location's ``adapters_at`` path from the architecture table, so state-dict keys match the
reference (BERT ``encoder.layer.{i}.output.adapters.<name>.adapter_down.0.weight``, GPT-2
``h.{i}.output_adapters.adapters.<name>.…``).

Math (reference §3.1, reproduced term by term). ``H`` is the sublayer output after its dropout,
``X`` its residual input, ``LN`` the model's post-sublayer norm (``None`` for pre-LN models)::

    pre (sequential):  R = H                      if residual_before_ln is True
                       S = H + X; R = S           if original_ln_before (R only for "post_add")
                       A = LN(S) or S             if original_ln_before, else A = H
                       R = A                      if residual_before_ln is False
    pre (parallel):    A = X, R = X
    core (per adapter):
                       U = scaling · up(act(down(ln_before?(A))))   (DropPath first if set)
                       O = dropout(U) [· mean_t σ(gate(A))]
                       sequential: O = O + R before or after ln_after (adapter_residual_before_ln)
                       parallel:   O = ln_after?(O), no residual
    post (last adapter's config):
                       T = O (sequential) or O + H (parallel)
                       Y = LN(T + X) or T + X     if original_ln_after, else Y = T

Several adapters at one site follow the active setup (``backend/composition.py``, primitives in
``bottleneck_compose.py``): as in the reference, a ``Stack`` re-runs the pre step before each
adapter, on the previous adapter's output ``O`` with the same ``X``.

How this is put into an unmodified HF model (no forward code is copied): a pre-hook captures
``X``; then either the sublayer-output module's forward hook replaces ``H`` by ``T`` (the model's
own ``LN(T + X)`` / ``T + X`` then yields ``Y`` exactly), or, where the dropout is functional
(BART), a pre-hook on the post-sublayer norm recovers ``H = S - X`` from its input ``S`` and
replaces the input by ``T + X``. For ``original_ln_after=False`` a forward hook on the norm
returns ``T`` (post-LN), or the sublayer output becomes ``T - X`` (pre-LN); both paths cost one
rounding step compared with the reference's direct computation.

Deliberate differences from the reference (all concern inputs that crash there):
``residual_before_ln="post_add"`` without an original LN, ``mam_adapter``/``houlsby`` init with
PHM layers, ``shared_W_phm`` with ``factorized_phm_W=False`` (supported here), GLOW invertible
adapters (rejected, see ``invertible.py``) and ``ln_before`` with ``mam_adapter`` (the Linear is
initialised, not the LayerNorm) are handled explicitly. ``init_weights_seed=0`` seeds with 0
(the reference ignores 0). ``learn_phm=False`` stays frozen under ``train_adapter``.
``stochastic_depth`` uses a built-in row-wise DropPath (no torchvision needed).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from torch import Tensor, nn

from adapter_dsl.backend.architectures import (
    LayerGroup,
    ModelSpec,
    ResidualSite,
    base_model_of,
    group_config,
    iter_layers,
    resolve,
)
from adapter_dsl.backend.composition import Node, compose
from adapter_dsl.backend.methods.base import MethodHandler
from adapter_dsl.backend.methods.bottleneck_compose import BottleneckComposer, BottleneckState
from adapter_dsl.backend.methods.common import (
    activation,
    add_shared,
    init_seed,
    layer_value,
    match_device_dtype,
    shared_parameters,
)
from adapter_dsl.backend.methods.invertible import SUPPORTED_INVERTIBLE, NICECouplingBlock
from adapter_dsl.backend.methods.phm import PHMLayer, make_shared_phm_parameters
from adapter_dsl.backend.state import AdapterState, Ledger, get_state
from adapter_dsl.errors import ConfigError
from adapter_dsl.methods.bottleneck import BnConfig

__all__ = ["BottleneckAdapter", "BottleneckHandler", "bottleneck_size"]

#: LayerGroup attribute naming a ResidualSite → the config flag that places an adapter there
#: (the cross site's flag is the group's ``cross_site_flag``).
LOCATIONS: dict[str, str] = {
    "mh_site": "mh_adapter",
    "output_site": "output_adapter",
    "cross_site": "cross_adapter",
}


def bottleneck_size(hidden: int, reduction_factor: Any, layer: int) -> int:
    """``d = max(1, int(h // rf))`` for the layer's reduction factor (reference rule)."""
    rf = layer_value(reduction_factor, layer, "reduction_factor")
    if isinstance(rf, bool) or not isinstance(rf, int | float) or rf == 0:
        raise ConfigError.single(
            f"reduction_factor for layer {layer} must be a non-zero number",
            expected="a non-zero number",
            found=repr(rf),
            code="invalid_reduction_factor",
        )
    return max(1, int(hidden // rf))


class DropPath(nn.Module):
    """Row-wise stochastic depth: drop whole samples with probability ``p`` while training."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = float(p)

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        survival = 1.0 - self.p
        noise = torch.empty((x.shape[0],) + (1,) * (x.dim() - 1), dtype=x.dtype, device=x.device)
        noise.bernoulli_(survival)
        if survival > 0.0:
            noise.div_(survival)
        return x * noise


def _init_bert(module: nn.Module) -> None:
    # The reference's init_bert_weights, applied module by module.
    if isinstance(module, nn.Linear | nn.Embedding):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)


class BottleneckAdapter(nn.Module):
    """One bottleneck module; ``forward(A, R)`` is the core step of the module docstring."""

    scaling: Tensor | float

    def __init__(
        self, cfg: Any, hidden: int, bottleneck: int, shared: nn.ParameterDict | None
    ) -> None:
        super().__init__()
        self.is_parallel = bool(cfg.is_parallel)
        self.original_ln_before = bool(cfg.original_ln_before)
        self.original_ln_after = bool(cfg.original_ln_after)
        self.residual_before_ln: bool | str = cfg.residual_before_ln
        self.adapter_residual_before_ln = bool(cfg.adapter_residual_before_ln)

        down: list[nn.Module] = []
        if cfg.ln_before:
            down.append(nn.LayerNorm(hidden))
        if cfg.phm_layer:
            down.append(PHMLayer(hidden, bottleneck, cfg, "down", shared))
        else:
            down.append(nn.Linear(hidden, bottleneck))
        down.append(activation(cfg.non_linearity))
        self.adapter_down = nn.Sequential(*down)
        self.adapter_up: nn.Module = (
            PHMLayer(bottleneck, hidden, cfg, "up", shared)
            if cfg.phm_layer
            else nn.Linear(bottleneck, hidden)
        )
        if isinstance(cfg.scaling, str):
            size = 1 if cfg.scaling == "learned" else hidden
            self.scaling = nn.Parameter(torch.ones(size))
        else:
            self.scaling = float(cfg.scaling)
        self.adapter_norm_after = nn.LayerNorm(hidden) if cfg.ln_after else None
        self.gate = nn.Linear(hidden, 1) if cfg.use_gating else None
        self.dropout = nn.Dropout(p=float(cfg.dropout))
        stochastic = float(cfg.stochastic_depth or 0.0)
        # The reference applies stochastic depth in sequential adapters only.
        self.drop_path = DropPath(stochastic) if stochastic > 0 and not self.is_parallel else None
        self._initialise(str(cfg.init_weights))

    def _initialise(self, scheme: str) -> None:
        linears = [m for m in self.adapter_down if isinstance(m, nn.Linear)]
        with torch.no_grad():
            if scheme == "bert":
                self.adapter_down.apply(_init_bert)
                self.adapter_up.apply(_init_bert)
                if self.gate is not None:
                    self.gate.apply(_init_bert)
            elif scheme == "mam_adapter":
                for lin in linears:
                    nn.init.kaiming_uniform_(lin.weight, a=math.sqrt(5))
                    nn.init.zeros_(lin.bias)
                assert isinstance(self.adapter_up, nn.Linear)
                # Zero up-projection: the adapter starts as the identity.
                nn.init.zeros_(self.adapter_up.weight)
                nn.init.zeros_(self.adapter_up.bias)
                if self.gate is not None:
                    self.gate.apply(_init_bert)
            else:  # houlsby
                assert isinstance(self.adapter_up, nn.Linear)
                for lin in [*linears, self.adapter_up]:
                    nn.init.trunc_normal_(lin.weight, mean=0.0, std=1e-2, a=-2e-2, b=2e-2)
                    nn.init.zeros_(lin.bias)

    def pre_forward(
        self, h: Tensor, x: Tensor, ln: nn.Module | None, query_before_ln: bool = False
    ) -> tuple[Tensor, Tensor, Tensor]:
        """The pre-step ``(A, query, R)`` of the module docstring; ``query`` is what a fusion
        attends from (before the original LN with ``query_before_ln``)."""
        if self.is_parallel:
            return x, x, x
        residual_before = self.residual_before_ln
        r: Tensor | None = h if residual_before is True else None
        query = h
        if self.original_ln_before:
            s = h + x
            if residual_before == "post_add":
                r = s
            a = ln(s) if ln is not None else s
        else:
            a = h
        if not residual_before:
            r = a
        assert r is not None  # "post_add" without an original LN is rejected at add
        return a, (query if query_before_ln else a), r

    def core(self, a: Tensor, residual: Tensor) -> tuple[Tensor, Tensor]:
        """``(O, U)``: the output of the core step and the scaled up-projection ``U`` (before
        dropout and gate), which AdapterFusion attends over."""
        up = self.adapter_up(self.adapter_down(a))
        if self.drop_path is not None:
            up = self.drop_path(up)
        up = up * self.scaling
        out = self.dropout(up)
        if self.gate is not None:
            # (B, T, 1) → mean over tokens → (B, 1, 1)
            out = out * torch.mean(torch.sigmoid(self.gate(a)), dim=1).unsqueeze(-1)
        if self.is_parallel:
            out = self.adapter_norm_after(out) if self.adapter_norm_after is not None else out
            return out, up
        if self.adapter_residual_before_ln:
            out = out + residual
        if self.adapter_norm_after is not None:
            out = self.adapter_norm_after(out)
        if not self.adapter_residual_before_ln:
            out = out + residual
        return out, up

    def forward(self, a: Tensor, residual: Tensor) -> Tensor:
        return self.core(a, residual)[0]


class _Holder(nn.Module):
    """An empty container that only exists to give the ``adapters`` dict its reference path."""


def _split_path(path: str) -> tuple[str, str]:
    parent, _, attr = path.rpartition(".")
    return parent, attr


def _x_from(args: tuple[Any, ...], kwargs: dict[str, Any], index: int, name: str | None) -> Any:
    if name is not None and name in kwargs:
        return kwargs[name]
    return args[index] if len(args) > index else None


class BottleneckSite:
    """The hooks of one (layer, location); applies whichever of its adapters are active.

    Created when the first adapter arrives at the location, released (hooks removed, the
    ``adapters`` dict and any created holder detached) when the last one leaves.
    """

    def __init__(self, state: AdapterState, layer: nn.Module, spec: ResidualSite) -> None:
        self.state = state
        self.spec = spec
        residual_module = resolve(layer, spec.residual_module)
        output_module = resolve(layer, spec.output_module)
        extra_module = resolve(layer, spec.residual_extra)
        if (
            (residual_module is None and spec.residual_module is not None)
            or output_module is None
            or (extra_module is None and spec.residual_extra is not None)
        ):
            raise ConfigError.single(
                "the model does not have the modules this adapter location needs",
                expected=f"modules '{spec.residual_module}' and '{spec.output_module}'",
                found=type(layer).__name__,
                code="missing_module",
            )
        self.layer_norm = resolve(layer, spec.layer_norm)
        self._x: Tensor | None = None
        self._extra: Tensor | None = None
        self._bypass: Tensor | None = None
        self._busy = False

        holder = resolve(layer, spec.adapters_at)
        self._created_holder: tuple[nn.Module, str] | None = None
        if holder is None:
            parent_path, attr = _split_path(spec.adapters_at)
            parent = resolve(layer, parent_path)
            assert parent is not None
            holder = _Holder()
            setattr(parent, attr, holder)
            self._created_holder = (parent, attr)
        self.holder = holder
        self.adapters = nn.ModuleDict()
        holder.adapters = self.adapters
        #: ``adapter_fusion_layer`` of the holder (reference key), created with the first fusion.
        self.fusions: nn.ModuleDict | None = None

        self._handles = []
        if residual_module is not None:
            self._handles.append(
                residual_module.register_forward_pre_hook(self._capture_residual, with_kwargs=True)
            )
        if extra_module is not None:
            self._handles.append(extra_module.register_forward_hook(self._capture_extra))
        if spec.output_kind == "output":
            # Prepended: another site's capture of this output (residual_extra) must see it
            # after this site rewrote it, whichever site was created first.
            self._handles.append(output_module.register_forward_hook(self._on_output, prepend=True))
        else:
            self._handles.append(
                output_module.register_forward_pre_hook(self._on_sum, with_kwargs=True)
            )
        if self.layer_norm is not None and not spec.hooked:
            self._handles.append(self.layer_norm.register_forward_hook(self._on_norm_output))

    # -- lifecycle ---------------------------------------------------------------------------
    def release(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        del self.holder.adapters
        if self.fusions is not None:
            del self.holder.adapter_fusion_layer
            self.fusions = None
        if self._created_holder is not None:
            parent, attr = self._created_holder
            delattr(parent, attr)

    # -- runtime -----------------------------------------------------------------------------
    def _node(self) -> Node | None:
        """The active setup when it names an adapter of this site, else ``None``."""
        node = self.state.active_setup()
        if node is None or not any(n in self.adapters._modules for n in node.names()):
            return None
        return node

    def adapter(self, name: str) -> BottleneckAdapter:
        module = self.adapters._modules[name]
        assert isinstance(module, BottleneckAdapter)
        return module

    def _capture_residual(self, module: nn.Module, args: Any, kwargs: Any) -> None:
        if self._busy:
            return
        x = _x_from(args, kwargs, self.spec.residual_arg, self.spec.residual_kwarg)
        self._x = x if isinstance(x, Tensor) and self._node() is not None else None
        self._extra = None

    def _capture_extra(self, module: nn.Module, args: Any, output: Any) -> None:
        if self._busy or self._x is None:
            return
        out = output[0] if isinstance(output, tuple) else output
        self._extra = out if isinstance(out, Tensor) else None

    def _take_residual(self, like: Tensor) -> Tensor | None:
        """The captured ``X`` (plus the extra module's output), consumed; ``0`` without one."""
        if self.spec.residual_module is None:
            return torch.zeros_like(like) if self._node() is not None else None
        x, extra, self._x, self._extra = self._x, self._extra, None, None
        if x is not None and extra is not None:
            x = x + extra
        return x

    def _transform(self, h: Tensor, x: Tensor, node: Node) -> Tensor:
        """``T`` of the module docstring for the active setup; also stores the bypass value
        when the model's own LN output must be replaced."""
        self._busy = True  # our own LN calls must not trigger our hooks
        try:
            start = BottleneckState(h=h, x=x, r=x, up=None, h0=h)
            st = compose(node, start, BottleneckComposer(self))
            if st.spans is None:
                if st.last is None:
                    return h
                return self._finish(self.adapter(st.last), st.h, h, x)
            # Row ranges finished by different adapters (or by none): the final value of each
            # range is computed here and replaces the model's output.
            finals = [
                self._final(st, slice(a, b), self.adapter(n) if n is not None else None)
                for a, b, n in st.spans
            ]
        finally:
            self._busy = False
        y = torch.cat(finals, dim=0)
        if self.layer_norm is not None:
            self._bypass = y
            return h
        return y - x

    def _finish(self, last: BottleneckAdapter, out: Tensor, h: Tensor, x: Tensor) -> Tensor:
        """The post step of the last adapter, left to the model where it computes it itself."""
        t = out + h if last.is_parallel else out
        if last.original_ln_after or self.spec.hooked:
            # Hooking mode: the model adds X and applies its norms itself.
            return t
        if self.layer_norm is not None:
            self._bypass = t
            return t
        # Pre-LN model without the final residual: the block will add X back.
        return t - x

    def _final(self, st: BottleneckState, rows: slice, last: BottleneckAdapter | None) -> Tensor:
        """``Y`` for a range of rows: the model's own ``LN(H + X)`` where no adapter ran."""
        h, x, out = st.h0[rows], st.x[rows], st.h[rows]
        if last is None:
            t, ln_after = h, True
        else:
            t, ln_after = (out + h if last.is_parallel else out), last.original_ln_after
        if not ln_after:
            return t
        ln = self.layer_norm
        return ln(t + x) if ln is not None else t + x

    def _on_output(self, module: nn.Module, args: Any, output: Any) -> Any:
        if self._busy:
            return None
        h = output[0] if isinstance(output, tuple) else output
        if not isinstance(h, Tensor):
            return None
        x = self._take_residual(h)
        if x is None:
            return None
        node = self._node()
        if node is None:
            return None
        if isinstance(output, tuple):
            return (self._transform(h, x, node), *output[1:])
        return self._transform(h, x, node)

    def _on_sum(self, module: nn.Module, args: Any, kwargs: Any) -> Any:
        if self._busy or self._x is None or not args:
            return None
        node = self._node()
        x, self._x = self._x, None
        if node is None:
            return None
        s = args[0]
        # The model added dropout(H) + X itself; recovering H costs one rounding of |X|.
        t = self._transform(s - x, x, node)
        return (t + x, *args[1:]), kwargs

    def _on_norm_output(self, module: nn.Module, args: Any, output: Any) -> Any:
        if self._busy or self._bypass is None:
            return None
        out, self._bypass = self._bypass, None
        return out


class InvertibleSite:
    """Applies the first active adapter's invertible block after the embedding output, and its
    inverse before the output embeddings (the LM head's final projection), as the reference
    does for models with an LM head."""

    def __init__(self, state: AdapterState, model: nn.Module, arch: ModelSpec) -> None:
        base = base_model_of(model)
        target = resolve(base, arch.invertible_after)
        holder = resolve(base, arch.invertible_container)
        assert target is not None and holder is not None
        base = holder
        self.state = state
        created = "invertible_adapters" not in base._modules
        if created:
            base.invertible_adapters = nn.ModuleDict()
        self.base, self.created = base, created
        container = base._modules["invertible_adapters"]
        assert isinstance(container, nn.ModuleDict)
        self.adapters = container
        self.handle = (
            target.register_forward_pre_hook(self._apply_to_input, with_kwargs=True)
            if arch.invertible_input
            else target.register_forward_hook(self._apply)
        )
        get_head = getattr(model, "get_output_embeddings", None)
        head = get_head() if callable(get_head) else None
        self.head_handle = (
            head.register_forward_pre_hook(self._invert) if isinstance(head, nn.Module) else None
        )

    def _active_block(self) -> nn.Module | None:
        for name in self.state.active:
            block = self.adapters._modules.get(name)
            if block is not None:
                return block
        return None

    def _apply(self, module: nn.Module, args: Any, output: Any) -> Any:
        block = self._active_block()
        if block is None:
            return None
        if isinstance(output, tuple):
            return (block(output[0]), *output[1:])
        return block(output)

    def _apply_to_input(self, module: nn.Module, args: Any, kwargs: Any) -> Any:
        block = self._active_block()
        if block is None:
            return None
        if args:
            return (block(args[0]), *args[1:]), kwargs
        if "hidden_states" in kwargs:
            return args, {**kwargs, "hidden_states": block(kwargs["hidden_states"])}
        return None

    def _invert(self, module: nn.Module, args: Any) -> Any:
        block = self._active_block()
        if block is None or not args:
            return None
        return (block(args[0], rev=True), *args[1:])

    def release(self) -> None:
        self.handle.remove()
        if self.head_handle is not None:
            self.head_handle.remove()
        if self.created:
            del self.base.invertible_adapters


@dataclass
class _Shared:
    sites: dict[tuple[int, str], BottleneckSite]
    invertible: InvertibleSite | None = None


def _locations(cfg: Any, group: LayerGroup) -> list[tuple[str, ResidualSite]]:
    """(site attribute, site) of every place ``cfg`` puts an adapter in a layer of ``group``."""
    out = []
    for attr, flag in LOCATIONS.items():
        site = getattr(group, attr)
        if attr == "cross_site":
            flag = group.cross_site_flag
        if getattr(cfg, flag, False) and site is not None:
            out.append((attr, site))
    return out


# ConfigError.single with this module's default code (a call may pass another).
_fail = partial(ConfigError.single, code="unsupported_setting")


def _shares_phm(config: BnConfig) -> bool:
    """Compacter layers whose PHM rule or weights live in ``shared_parameters.<name>``."""
    return config.phm_layer and (config.shared_phm_rule or config.shared_W_phm)


class BottleneckHandler(MethodHandler[BnConfig]):
    """Handler for bottleneck configs (``architecture`` ``None``/``"bottleneck"``)."""

    family = "bottleneck"

    # -- validation (never touches the model) -----------------------------------------------
    def check(self, model: nn.Module, arch: ModelSpec, config: BnConfig) -> None:
        sites = [site for g in arch.groups for _, site in _locations(config, g)]
        if not config.original_ln_after and any(site.hooked for site in sites):
            raise _fail(
                f"original_ln_after=False is not supported on '{arch.model_type}' models, which "
                "apply their own residual and norms after the adapter",
                expected="original_ln_after=True",
                found="original_ln_after=False",
            )
        if config.is_parallel and any(site.residual_module is None for site in sites):
            raise _fail(
                f"parallel adapters need the sublayer's input, which this '{arch.model_type}' "
                "location does not have (attention and FFN run in parallel)",
                expected="a sequential adapter, or mh_adapter only",
                found="is_parallel=True",
            )
        activation(config.non_linearity)  # raises ConfigError for unknown names
        # init_weights, scaling and residual_before_ln values, PHM's init and 'post_add'
        # without original_ln_before are refused by the config itself (types and cross-field
        # rules; tests/test_backend_guarantees.py).
        if (
            not config.is_parallel
            and config.residual_before_ln == "post_add"
            and arch.pre_ln
            and (config.mh_adapter or config.output_adapter)
        ):
            raise _fail(
                f"residual_before_ln='post_add' needs a post-sublayer LayerNorm, which "
                f"'{arch.model_type}' (a pre-LN model) does not have",
                expected="residual_before_ln True or False",
                found="'post_add'",
            )
        layers = [ref.index for ref in iter_layers(model, arch)]
        placed = config.mh_adapter or config.output_adapter or config.cross_adapter
        if placed and config.inv_adapter is None and set(layers) <= set(config.leave_out):
            raise _fail(
                f"leave_out={list(config.leave_out)} leaves out every layer of this model "
                f"(layers {layers[0]}–{layers[-1]}): the adapter would be placed nowhere",
                expected="at least one layer index not in leave_out",
                found=repr(list(config.leave_out)),
                code="placed_nowhere",
            )
        if config.inv_adapter is not None:
            if not arch.supports("invertible"):
                raise _fail(
                    f"invertible adapters are not supported on '{arch.model_type}' models",
                    expected="inv_adapter=None (a config without an invertible adapter)",
                    found=f"inv_adapter={config.inv_adapter!r}",
                    code="unsupported_method",
                )
            if config.inv_adapter not in SUPPORTED_INVERTIBLE:
                raise _fail(
                    f"invertible adapter type '{config.inv_adapter}' is not supported",
                    expected="'nice'",
                    found=repr(config.inv_adapter),
                    suggestion=(
                        "the reference's GLOW block fails for every input; use 'nice'"
                        if config.inv_adapter == "glow"
                        else None
                    ),
                )
        n = int(config.phm_dim)
        shared_d = None
        for ref in iter_layers(model, arch):
            if ref.index in set(config.leave_out) or not _locations(config, ref.group):
                continue
            hidden = arch.hidden_size(group_config(model, ref.group))
            d = bottleneck_size(hidden, config.reduction_factor, ref.index)
            if config.phm_layer:
                if hidden % n or d % n:
                    raise _fail(
                        f"phm_dim={n} must divide the hidden size ({hidden}) and the bottleneck "
                        f"size ({d}) of layer {ref.index}",
                        expected=f"sizes divisible by {n}",
                        found=f"hidden {hidden}, bottleneck {d}",
                        suggestion="lower reduction_factor or phm_dim",
                    )
                if config.shared_W_phm:
                    if shared_d is not None and d != shared_d:
                        raise _fail(
                            "shared_W_phm needs the same bottleneck size in every layer",
                            found=f"{shared_d} and {d}",
                        )
                    shared_d = d

    def shares_parameters(self, config: BnConfig) -> bool:
        return _shares_phm(config)

    def check_members(self, model: nn.Module, arch: ModelSpec, configs: Sequence[BnConfig]) -> None:
        """Several bottleneck members of one union must not share a (layer, location)."""
        if len(configs) < 2:
            return
        seen: dict[tuple[int, str], int] = {}
        inv = [c for c in configs if c.inv_adapter is not None]
        if len(inv) > 1:
            raise _fail(
                "only one member of a union may define an invertible adapter",
                found=f"{len(inv)} members with inv_adapter",
                code="conflict",
            )
        for i, cfg in enumerate(configs):
            for ref in iter_layers(model, arch):
                if ref.index in set(cfg.leave_out):
                    continue
                for flag, site in _locations(cfg, ref.group):
                    if resolve(ref.module, site.output_module) is None:
                        continue
                    key = (ref.position, flag)
                    if key in seen:
                        raise _fail(
                            f"union members {seen[key]} and {i} both put a bottleneck adapter at "
                            f"{flag} of layer {ref.index}",
                            expected="one adaptation block per location and layer",
                            suggestion="use leave_out to separate them",
                            code="conflict",
                        )
                    seen[key] = i

    # -- building ---------------------------------------------------------------------------
    def add(
        self, model: nn.Module, arch: ModelSpec, name: str, config: BnConfig, ledger: Ledger
    ) -> None:
        state = get_state(model, arch)
        shared_state: _Shared = state.shared.setdefault("bottleneck", _Shared(sites={}))
        # Registered first so that it runs last on undo, after the sites were released.
        ledger.on_undo(_drop_shared_if_empty, state)
        base = base_model_of(model)
        seed = config.init_weights_seed
        leave_out = set(config.leave_out)

        refs = [
            ref
            for ref in iter_layers(model, arch)
            if ref.index not in leave_out and _locations(config, ref.group)
        ]
        shared_pd: nn.ParameterDict | None = None
        if _shares_phm(config):
            shared_pd = shared_parameters(model, name, ledger)
            hidden = arch.hidden_size(
                group_config(model, refs[0].group if refs else arch.groups[0])
            )
            d0 = bottleneck_size(hidden, config.reduction_factor, refs[0].index) if refs else 1
            with init_seed(seed):
                params = make_shared_phm_parameters(config, hidden, d0)
            for key, param in params.items():
                add_shared(shared_pd, key, param, ledger)
                if not param.requires_grad:
                    ledger.keep_frozen(param)
            match_device_dtype(shared_pd, base)

        for ref in refs:
            hidden = arch.hidden_size(group_config(model, ref.group))
            d = bottleneck_size(hidden, config.reduction_factor, ref.index)
            for flag, spec in _locations(config, ref.group):
                if resolve(ref.module, spec.output_module) is None:
                    continue  # e.g. BERT's crossattention, present in decoders only
                site_key = (ref.position, flag)
                site = shared_state.sites.get(site_key)
                if site is None:
                    site = BottleneckSite(state, ref.module, spec)
                    shared_state.sites[site_key] = site
                with init_seed(seed):
                    module = BottleneckAdapter(config, hidden, d, shared_pd)
                match_device_dtype(module, ref.module)
                module.train(ref.module.training)
                for p in module.parameters():
                    if not p.requires_grad:
                        ledger.keep_frozen(p)
                ledger.on_undo(_release_site, shared_state, site_key)
                ledger.add_entry(site.adapters, name, module)

        if config.inv_adapter is not None:
            if shared_state.invertible is None:
                shared_state.invertible = InvertibleSite(state, model, arch)
            inv_site = shared_state.invertible
            inv_rf = config.inv_adapter_reduction_factor
            assert inv_rf is not None  # a cross-field rule of BnConfig
            with init_seed(seed):
                block = NICECouplingBlock(
                    arch.embedding_size(group_config(model, arch.groups[0])),
                    config.non_linearity,
                    float(inv_rf),
                )
            match_device_dtype(block, base)
            block.train(base.training)
            ledger.on_undo(_release_invertible, shared_state)
            ledger.add_entry(inv_site.adapters, name, block)


def _release_site(shared_state: _Shared, key: tuple[int, str]) -> None:
    site = shared_state.sites.get(key)
    if site is not None and len(site.adapters) == 0:
        site.release()
        del shared_state.sites[key]


def _release_invertible(shared_state: _Shared) -> None:
    site = shared_state.invertible
    if site is not None and len(site.adapters) == 0:
        site.release()
        shared_state.invertible = None


def _drop_shared_if_empty(state: AdapterState) -> None:
    shared = state.shared.get("bottleneck")
    if isinstance(shared, _Shared) and not shared.sites and shared.invertible is None:
        del state.shared["bottleneck"]
