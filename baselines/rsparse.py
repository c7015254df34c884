"""R-Sparse: sparse channels plus a rank-r SVD term for the dropped ones (arXiv 2504.19449).

``y = W (x * m) + U_r S_r V_r^T (x * (1 - m))``, ``m`` keeping the ``in (1 - s) alpha`` channels with the largest
``|x| * c``; the rank fills the rest of the FLOP budget: ``r = (in out (1 - s) - kept out) / (in + out)``.
So ``sparsity`` here is FLOP-equivalent; the channel sparsity measured is ``1 - (1 - s) alpha``.
``alpha`` is one number, or one per projection type (``{attn: 0.9, mlp: 1.0}``, or per kind: q, k, ..., down).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from wina.config import SparsityConfig
from wina.errors import SparsityError
from wina.gated import TopKGate
from wina.registry import Method, register
from wina.targets import ATTN_KINDS, KINDS, Target


@dataclass(frozen=True)
class RSparseConfig(SparsityConfig):
    alpha: float | dict = 1.0

    def alpha_for(self, kind: str) -> float:
        if isinstance(self.alpha, (int, float)):
            return float(self.alpha)
        a = dict(self.alpha)
        group = "attn" if kind in ATTN_KINDS else "mlp"
        return float(a.get(kind, a.get(group, 1.0)))

    def check(self) -> None:
        super().check()
        keys = set() if isinstance(self.alpha, (int, float)) else set(dict(self.alpha))
        bad = keys - set(KINDS) - {"attn", "mlp"}
        if bad:
            raise SparsityError(f"alpha key {sorted(bad)[0]!r} is not known; accepted: attn, mlp, {', '.join(KINDS)}")
        for kind in KINDS:
            if not 0.0 < self.alpha_for(kind) <= 1.0:
                raise SparsityError(f"alpha for {kind} is {self.alpha_for(kind)}; it must lie in (0, 1]")


class RSparseGate(TopKGate):
    def __init__(self, weight: torch.Tensor, alpha: float) -> None:
        super().__init__(scale=weight.float().norm(dim=0))
        self.alpha = alpha
        self.out_features, self.in_features = weight.shape
        u, s, vh = torch.linalg.svd(weight.double(), full_matrices=False)
        self.register_buffer("us", (u * s).to(weight.dtype), persistent=False)  # [out, R]
        self.register_buffer("vh", vh.to(weight.dtype), persistent=False)  # [R, in]
        self.rank = 0
        self.kept = self.in_features

    def set_level(self, level: float) -> None:
        n, out = self.in_features, self.out_features
        if level <= 0:  # level 0 is the dense layer, whatever alpha says
            self.kept, self.rank = n, 0
        else:
            self.kept = int(n * (1.0 - level) * self.alpha)
            budget = n * out * (1.0 - level) - self.kept * out
            self.rank = max(0, min(int(budget // (n + out)), self.vh.shape[0]))
        super().set_level(level)

    def keep_count(self, n: int) -> int:
        return self.kept

    def residual(self, x_dropped: torch.Tensor) -> torch.Tensor | None:
        if self.rank == 0:
            return None
        r = self.rank
        return (x_dropped @ self.vh[:r].T) @ self.us[:, :r].T

    def extra_macs(self) -> int:
        return self.rank * (self.in_features + self.out_features)


@register
class RSparse(Method):
    name = "rsparse"
    config_cls = RSparseConfig

    def make_gate(self, target: Target, sample=None) -> RSparseGate:
        return RSparseGate(target.module.weight.detach(), self.config.alpha_for(target.kind))
