"""Parameterised hypercomplex multiplication layers (Compacter's down/up projections).

``PHMLayer(in, out)`` computes ``y = x @ H + b`` with ``H = Σ_i kron(rule_i, W_i)`` (in × out),
where ``n = phm_dim`` slices are summed:

* ``W_i`` is ``W_left[i] @ W_right[i]`` (shapes (n, in/n, rank) and (n, rank, out/n)) when
  ``factorized_phm_W``, else a full ``W`` (n, in/n, out/n);
* ``rule`` is (n, n, n), or ``rule_left`` (n, n, 1) @ ``rule_right`` (n, 1, n) when
  ``factorized_phm_rule``.

With ``shared_phm_rule`` / ``shared_W_phm`` the rule / weights live once per adapter in
``base_model.shared_parameters[<name>]`` under the reference's keys (``phm_rule``,
``phm_rule_left/right``, ``W_down_left/right``, ``W_up_left/right``, ``W_down``, ``W_up``); the layer
holds a reference to that dict (not registered as a submodule, so the tensors are stored once).

Initialisation follows the reference: W slices ``xavier_normal`` (the reference picks xavier
normal for every ``hypercomplex_nonlinearity`` value), ``b = 0``; per-layer rules ``N(0, 0.01)`` or
``U(±0.01)``; shared rules ``N(0, phm_init_range)`` or ``U(±1)``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["PHMLayer", "init_rule", "make_shared_phm_parameters"]


def _rule_shapes(n: int, factorized: bool) -> dict[str, tuple[int, ...]]:
    if factorized:
        return {"phm_rule_left": (n, n, 1), "phm_rule_right": (n, 1, n)}
    return {"phm_rule": (n, n, n)}


def init_rule(t: Tensor, c_init: str, std: float, uniform_bound: float) -> None:
    with torch.no_grad():
        if c_init == "normal":
            t.normal_(0.0, std)
        else:
            t.uniform_(-uniform_bound, uniform_bound)


def _init_w(t: Tensor) -> None:
    with torch.no_grad():
        for i in range(t.shape[0]):
            nn.init.xavier_normal_(t[i])


def _w_shapes(
    n: int, in_f: int, out_f: int, rank: int, factorized: bool, prefix: str
) -> dict[str, tuple[int, ...]]:
    if factorized:
        return {f"{prefix}left": (n, in_f // n, rank), f"{prefix}right": (n, rank, out_f // n)}
    return {prefix.rstrip("_"): (n, in_f // n, out_f // n)}


def make_shared_phm_parameters(cfg: Any, hidden: int, bottleneck: int) -> dict[str, nn.Parameter]:
    """The shared tensors of one Compacter adapter (keys as in the reference)."""
    n = int(cfg.phm_dim)
    out: dict[str, nn.Parameter] = {}
    if cfg.shared_phm_rule:
        for key, shape in _rule_shapes(n, bool(cfg.factorized_phm_rule)).items():
            t = torch.empty(shape)
            init_rule(t, cfg.phm_c_init, float(cfg.phm_init_range), 1.0)
            out[key] = nn.Parameter(t, requires_grad=bool(cfg.learn_phm))
    if cfg.shared_W_phm:
        rank = int(cfg.phm_rank)
        fact = bool(cfg.factorized_phm_W)
        for which, (i, o) in (("down", (hidden, bottleneck)), ("up", (bottleneck, hidden))):
            for key, shape in _w_shapes(n, i, o, rank, fact, f"W_{which}_").items():
                t = torch.empty(shape)
                _init_w(t)
                out[key] = nn.Parameter(t)
    return out


class PHMLayer(nn.Module):
    """A PHM projection ``in_features → out_features`` (see the module docstring).

    ``which`` is ``"down"`` or ``"up"`` (selects the shared W keys); ``shared`` is the adapter's
    shared-parameter dict, or ``None`` when nothing is shared.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        cfg: Any,
        which: str,
        shared: nn.ParameterDict | None,
    ) -> None:
        super().__init__()
        n = int(cfg.phm_dim)
        self.in_features, self.out_features, self.n = in_features, out_features, n
        self.which = which
        self.factorized_W = bool(cfg.factorized_phm_W)
        self.factorized_rule = bool(cfg.factorized_phm_rule)
        self.shared_W = bool(cfg.shared_W_phm)
        self.shared_rule = bool(cfg.shared_phm_rule)
        # Plain attribute (bypasses Module.__setattr__): the dict belongs to shared_parameters.
        object.__setattr__(self, "_shared", shared)
        if not self.shared_W:
            for key, shape in _w_shapes(
                n, in_features, out_features, int(cfg.phm_rank), self.factorized_W, "W_"
            ).items():
                t = torch.empty(shape)
                _init_w(t)
                self.register_parameter(key, nn.Parameter(t))
        if not self.shared_rule:
            for key, shape in _rule_shapes(n, self.factorized_rule).items():
                t = torch.empty(shape)
                init_rule(t, cfg.phm_c_init, 0.01, 0.01)
                self.register_parameter(key, nn.Parameter(t, requires_grad=bool(cfg.learn_phm)))
        self.b: nn.Parameter | None
        if cfg.phm_bias:
            self.b = nn.Parameter(torch.zeros(out_features))
        else:
            self.register_parameter("b", None)

    def _shared_dict(self) -> nn.ParameterDict | None:
        shared = self.__dict__["_shared"]
        assert shared is None or isinstance(shared, nn.ParameterDict)
        return shared

    def _get(self, key: str) -> Tensor:
        shared = self._shared_dict()
        if key in self._parameters:
            p = self._parameters[key]
            assert p is not None
            return p
        assert shared is not None
        return shared[key]

    def _source(self, shared_flag: bool, key: str) -> Tensor:
        if shared_flag:
            shared = self._shared_dict()
            assert shared is not None
            return shared[key]
        return self._get(key)

    def rule(self) -> Tensor:
        if self.factorized_rule:
            left = self._source(self.shared_rule, "phm_rule_left")
            right = self._source(self.shared_rule, "phm_rule_right")
            return torch.bmm(left, right)
        return self._source(self.shared_rule, "phm_rule")

    def weight_slices(self) -> Tensor:
        prefix = f"W_{self.which}_" if self.shared_W else "W_"
        if self.factorized_W:
            left = self._source(self.shared_W, f"{prefix}left")
            right = self._source(self.shared_W, f"{prefix}right")
            return torch.bmm(left, right)
        return self._source(self.shared_W, prefix.rstrip("_"))

    def kronecker_weight(self) -> Tensor:
        """``H = Σ_i kron(rule_i, W_i)`` of shape (in, out)."""
        rule, w = self.rule(), self.weight_slices()
        n, a, b = w.shape
        # kron(R, W)[j*a + p, k*b + q] = R[j, k] * W[p, q]
        return torch.einsum("ijk,ipq->jpkq", rule, w).reshape(n * a, n * b)

    def forward(self, x: Tensor) -> Tensor:
        y = torch.matmul(x, self.kronecker_weight())
        if self.b is not None:
            y = y + self.b
        return y

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, phm_dim={self.n}"
