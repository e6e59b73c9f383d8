"""Invertible adapters (MAD-X): a NICE coupling block applied right after the embeddings.

``NICECouplingBlock(h, act, rf)`` splits the last axis into ``x1`` (``h//2``) and ``x2`` (the rest):
``y1 = x1 + F(x2)``, ``y2 = x2 + G(y1)``; the inverse subtracts in the opposite order.
``F = Linear(s2, s2//rf) → act → Linear(s2//rf, s1)`` and ``G`` mirrors it, so the state-dict keys
are ``F.0.*``, ``F.2.*``, ``G.0.*``, ``G.2.*`` as in the reference. All Linears are initialised
``N(0, 0.02)`` with zero biases.

GLOW coupling blocks are rejected (``ConfigError``): the reference implementation slices the
sequence axis instead of the hidden axis and fails for every (batch, seq, hidden) input, so no
reference checkpoint can exist and there is no agreed-upon correct behaviour to reproduce.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from adapter_dsl.backend.methods.common import activation

__all__ = ["SUPPORTED_INVERTIBLE", "NICECouplingBlock"]

SUPPORTED_INVERTIBLE = ("nice",)


def _subnet(
    dim_in: int, dim_out: int, non_linearity: str, reduction_factor: float
) -> nn.Sequential:
    hidden = max(1, int(dim_in // reduction_factor))
    net = nn.Sequential(
        nn.Linear(dim_in, hidden), activation(non_linearity), nn.Linear(hidden, dim_out)
    )
    for m in net:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)
            nn.init.zeros_(m.bias)
    return net


class NICECouplingBlock(nn.Module):
    """Additive coupling on the hidden axis; ``forward(x, rev=True)`` inverts it."""

    def __init__(self, hidden: int, non_linearity: str, reduction_factor: float) -> None:
        super().__init__()
        self.split1 = hidden // 2
        self.split2 = hidden - hidden // 2
        self.F = _subnet(self.split2, self.split1, non_linearity, reduction_factor)
        self.G = _subnet(self.split1, self.split2, non_linearity, reduction_factor)

    def forward(self, x: Tensor, rev: bool = False) -> Tensor:
        x1, x2 = x[..., : self.split1], x[..., self.split1 :]
        if not rev:
            y1 = x1 + self.F(x2)
            y2 = x2 + self.G(y1)
        else:
            y2 = x2 - self.G(x1)
            y1 = x1 - self.F(y2)
        return torch.cat((y1, y2), dim=-1)
