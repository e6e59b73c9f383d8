"""AdapterFusion (reference §3.1, ``methods/modeling.py`` ``BertFusion``) over bottleneck adapters.

One :class:`AdapterFusion` per fusion and bottleneck location where every fused adapter is
placed, in the location's ``adapter_fusion_layer`` ModuleDict (reference keys, e.g. BERT
``encoder.layer.{i}.output.adapter_fusion_layer.a,b.query.weight``). The fusion's name is the
comma-joined adapter names unless given.

Math (``U_i`` the fused adapters' scaled up-projections, ``q`` the last adapter's pre-step
output, before the original LN with ``query_before_ln``, ``R`` its residual)::

    V_i = U_i (+ R with residual_before, which also changes the keys: the reference adds in place)
    p   = softmax(dropout(query(q) · key(V_i)) / T)
    ctx = Σ_i p_i · value(V_i)        (value after the sum without value_before_softmax)
    out = ctx + R                     (unless residual_before)

``T`` starts at 50 with ``temperature`` (else 1) and falls by ``T₀/1000`` on every forward call,
in training and in evaluation alike, down to 1, as in the reference. ``value`` is initialised to
the identity with 1e-6 elsewhere when ``value_initialized``; the regularisation loss is
``Σ 0.01·‖I − value‖²`` over the fusion layers whose value weight trains.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from adapter_dsl.backend.methods.common import match_device_dtype
from adapter_dsl.backend.state import AdapterState, Ledger, peek_state, require_adapter
from adapter_dsl.errors import ConfigError

__all__ = [
    "AdapterFusion",
    "FusionEntry",
    "add_fusion",
    "delete_fusion",
    "delete_fusions_of",
    "fusion_modules",
    "fusion_name",
    "fusion_parameters",
    "fusion_regularization_loss",
    "resolve_fusion_config",
]

CONTAINER = "adapter_fusion_layer"


def _init_bert(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


class AdapterFusion(nn.Module):
    """The reference's ``BertFusion`` for one location; see the module docstring."""

    def __init__(self, config: Any, hidden: int, dropout: float) -> None:
        super().__init__()
        self.config = config
        self.query_before_ln = bool(config.query_before_ln)
        self.dropout = nn.Dropout(dropout)
        self.query = nn.Linear(hidden, hidden) if config.query else None
        self.key = nn.Linear(hidden, hidden) if config.key else None
        self.value = nn.Linear(hidden, hidden, bias=False) if config.value else None
        with torch.no_grad():
            for layer in (self.query, self.key, self.value):
                if layer is not None:
                    _init_bert(layer)
            if self.value is not None and config.value_initialized:
                init = torch.full((hidden, hidden), 1e-6)
                init.fill_diagonal_(1.0)
                self.value.weight.copy_(init)
        self.T = 50.0 if config.temperature else 1.0
        self.reduction = self.T / 1000.0

    def forward(self, query: Tensor, up: Tensor, residual: Tensor) -> Tensor:
        """``query`` (B, T, h), ``up`` (B, T, k, h) the stacked ``U_i``, ``residual`` (B, T, h)."""
        cfg = self.config
        value = up
        if cfg.residual_before:
            # The reference adds the residual to its key/value tensor in place: keys change too.
            value = up + residual.unsqueeze(2)
        key = value
        q = self.query(query) if self.query is not None else query
        k = self.key(key) if self.key is not None else key
        v = value
        if self.value is not None and cfg.value_before_softmax:
            v = self.value(value)
        scores = torch.matmul(q.unsqueeze(2), k.transpose(-2, -1)).squeeze(2)
        scores = self.dropout(scores)
        probs = torch.softmax(scores / self.T, dim=-1)
        self.T = max(self.T - self.reduction, 1.0)
        context = torch.matmul(probs.unsqueeze(2), v).squeeze(2)
        if self.value is not None and not cfg.value_before_softmax:
            context = self.value(context)
        if not cfg.residual_before:
            context = context + residual
        return context


@dataclass
class FusionEntry:
    """One fusion of a model: its name, adapters, config and the changes it made."""

    name: str
    adapters: tuple[str, ...]
    config: Any
    ledger: Ledger = field(default_factory=Ledger)

    def parameters(self) -> list[nn.Parameter]:
        return list(self.ledger.parameters())


def fusion_name(adapters: Any) -> str:
    """The reference's fusion name of a list of names, a ``Fuse`` block or a name string."""
    if isinstance(adapters, str):
        return adapters
    name = getattr(adapters, "name", None)
    if isinstance(name, str):
        return name
    return ",".join(str(a) for a in adapters)


def _fusion_adapters(adapters: Any) -> tuple[str, ...]:
    if isinstance(adapters, str):
        return tuple(a.strip() for a in adapters.split(","))
    children = getattr(adapters, "children", adapters)
    return tuple(c if isinstance(c, str) else c.last() for c in children)


def resolve_fusion_config(config: Any) -> Any:
    """A validated fusion config object (``"dynamic"``, ``"static"``, a dict, a config object)."""
    from adapter_dsl import load_fusion_config  # the config layer (no torch)

    return load_fusion_config(config)


def _sites_of(model: nn.Module, names: Sequence[str]) -> list[Any]:
    """Bottleneck sites where every fused adapter is placed (the reference's rule)."""
    state = peek_state(model)
    shared = state.shared.get("bottleneck") if state is not None else None
    if shared is None:
        return []
    return [
        site
        for _, site in sorted(shared.sites.items())
        if all(n in site.adapters._modules for n in names)
    ]


def _check_locations(model: nn.Module, names: Sequence[str]) -> None:
    """Every fused adapter must define the same bottleneck locations (reference: ValueError
    "All given adapters must define the same value for config attribute …")."""
    state = peek_state(model)
    assert state is not None
    flags = ("mh_adapter", "output_adapter", "cross_adapter")
    configs = []
    for n in names:
        members = [m for fam, m, _ in state.adapters[n].members if fam == "bottleneck"]
        if not members:
            raise ConfigError.single(
                f"adapter '{n}' has no bottleneck adapter: AdapterFusion fuses bottleneck adapters",
                expected="bottleneck adapters (seq_bn, par_bn, double_seq_bn, ...)",
                found=type(state.adapters[n].config).__name__,
                code="unsupported_composition",
            )
        configs.append(members[0])
    for flag in flags:
        values = {bool(getattr(c, flag, False)) for c in configs}
        if len(values) > 1:
            raise ConfigError.single(
                f"the fused adapters {', '.join(names)} do not all set {flag} alike",
                expected=f"the same {flag} for every fused adapter",
                found=", ".join(
                    f"{n}: {bool(getattr(c, flag, False))}"
                    for n, c in zip(names, configs, strict=True)
                ),
                code="conflict",
            )


def add_fusion(
    model: nn.Module, adapters: Any, config: Any = "dynamic", *, name: str | None = None
) -> str:
    """Add a fusion layer over ``adapters`` (names, a ``Fuse`` block or ``"a,b"``); its name.

    Checks everything first (adapters exist and are bottleneck adapters at the same
    locations, the name is new); the model is unchanged when a check fails.
    """
    names = _fusion_adapters(adapters)
    fname = name or fusion_name(adapters)
    if len(names) < 2 or len(set(names)) != len(names):
        raise ConfigError.single(
            "a fusion needs at least two different adapters",
            expected="two or more adapter names",
            found=repr(list(names)),
            code="invalid_fusion",
        )
    for n in names:
        require_adapter(model, n)
    state = peek_state(model)
    assert state is not None
    if fname in state.fusions:
        raise ConfigError.single(
            f"the model already has a fusion named '{fname}'",
            expected="a new fusion",
            found=repr(fname),
            suggestion="delete_fusion() it first",
            code="duplicate_fusion",
        )
    cfg = resolve_fusion_config(config)
    _check_locations(model, names)
    sites = _sites_of(model, names)
    hidden = state.arch.hidden_size(model.config)
    dropout = cfg.dropout_prob
    if dropout is None:
        dropout = getattr(model.config, "attention_probs_dropout_prob", 0.0) or 0.0
    entry = FusionEntry(fname, names, cfg)
    try:
        for site in sites:
            module = AdapterFusion(cfg, hidden, float(dropout))
            match_device_dtype(module, site.adapters)
            module.train(site.holder.training)
            container = _container(site, entry.ledger)
            entry.ledger.add_entry(container, fname, module)
    except BaseException:
        entry.ledger.undo()
        raise
    state.fusions[fname] = entry
    return fname


def _container(site: Any, ledger: Ledger) -> nn.ModuleDict:
    if site.fusions is None:
        site.fusions = nn.ModuleDict()
        site.holder.adapter_fusion_layer = site.fusions
        ledger.on_undo(_drop_container_if_empty, site)
    fusions: nn.ModuleDict = site.fusions
    return fusions


def _drop_container_if_empty(site: Any) -> None:
    # Module-level (data, not a closure): undo steps survive deep copies and pickles.
    if site.fusions is not None and len(site.fusions) == 0:
        del site.holder.adapter_fusion_layer
        site.fusions = None


def fusion_of(model: nn.Module, adapters: Any) -> tuple[AdapterState, str]:
    """The model's adapter state and the name of the fusion ``adapters`` names (``"a,b"``,
    names or a ``Fuse``), or a ConfigError listing the fusions it has."""
    state = peek_state(model)
    fname = fusion_name(adapters)
    if state is None or fname not in state.fusions:
        raise ConfigError.single(
            f"the model has no fusion named '{fname}'",
            expected="one of " + ", ".join(state.fusions)
            if state and state.fusions
            else "a fusion",
            found=repr(fname),
            code="unknown_fusion",
        )
    return state, fname


def delete_fusion(model: nn.Module, adapters: Any) -> None:
    """Remove a fusion (by name, names or ``Fuse`` block); deactivates setups that use it."""
    state, fname = fusion_of(model, adapters)
    entry = state.fusions.pop(fname)
    entry.ledger.undo()
    node = state.active_setup()
    if node is not None and any(b.kind == "Fuse" and b.name == fname for b in node.walk()):
        state.setup = None
        state.active = ()


def delete_fusions_of(model: nn.Module, adapter: str) -> None:
    """Remove every fusion that fuses ``adapter`` (before the adapter itself goes)."""
    state = peek_state(model)
    if state is None:
        return
    for fname, entry in list(state.fusions.items()):
        if adapter in entry.adapters:
            delete_fusion(model, fname)


def fusion_modules(model: nn.Module, fname: str) -> list[AdapterFusion]:
    state = peek_state(model)
    if state is None or fname not in state.fusions:
        return []
    return [m for m in state.fusions[fname].ledger.owned_modules if isinstance(m, AdapterFusion)]


def fusion_regularization_loss(model: nn.Module) -> Tensor:
    """``Σ 0.01·‖I − value‖²`` over fusion layers whose value weight trains (the reference's
    ``get_fusion_regularization_loss``; its trainer adds it for configs with ``regularization``)."""
    state = peek_state(model)
    total: Tensor = torch.zeros(())
    if state is None:
        return total
    for entry in state.fusions.values():
        for module in entry.ledger.owned_modules:
            if isinstance(module, AdapterFusion) and module.value is not None:
                weight = module.value.weight
                if weight.requires_grad:
                    target = torch.eye(weight.shape[0], device=weight.device, dtype=weight.dtype)
                    total = total + 0.01 * (target - weight).pow(2).sum()
    return total


def fusion_parameters(model: nn.Module, names: Sequence[str]) -> list[nn.Parameter]:
    """The parameters of the named fusions."""
    state = peek_state(model)
    if state is None:
        return []
    return [p for n in names for p in state.fusions[n].parameters()]
