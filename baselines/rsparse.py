"""R-Sparse: sparse channels plus a rank-r SVD term for the dropped ones (arXiv 2504.19449).

``y = W (x * m) + U_r S_r V_r^T (x * (1 - m))``. The channel budget is ``in (1 - s) alpha`` and the rank fills the
rest of the FLOP budget: ``r = (in out (1 - s) - kept out) / (in + out)``, so ``sparsity`` is FLOP-equivalent and
the channel sparsity measured is ``1 - (1 - s) alpha``. The score is ``|x|`` where alpha = 1 and ``|x| * ||W[:, i]||``
otherwise (the reference's ``R_Sparse_Linear``). ``mask=threshold`` (default, the reference): one calibrated
threshold per linear at that channel budget, so the kept count varies per token; ``mask=topk``: exactly the budget
per token. ``alpha`` is one number, or one per projection type (``{attn: 0.9, mlp: 1.0}``, or per kind).
The rank uses each projection's true shape (the reference uses in = out = hidden for every attention projection,
which over-spends on GQA k/v).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from wina import memo
from wina.config import SparsityConfig
from wina.errors import SparsityError
from wina.gated import ThresholdGate, TopKGate
from wina.registry import Method, register
from wina.targets import ATTN_KINDS, KINDS, Target


@dataclass(frozen=True)
class RSparseConfig(SparsityConfig):
    mask: str = "threshold"  # the reference: one calibrated threshold per linear
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


def svd_factors(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``U S`` and ``V^T`` of ``weight`` (float64 SVD, stored in the weight's dtype), once per weight in a process
    (``wina.memo``): a sweep over sparsities decomposes each weight once, not once per job (16-22 s of a SmolLM2 job
    on an H100)."""

    def compute():
        u, s, vh = torch.linalg.svd(weight.double(), full_matrices=False)
        return (u * s).to(weight.dtype), vh.to(weight.dtype)

    return memo.MEMO.get("rsparse-svd", (weight,), compute)


class _LowRank:
    """The FLOP-matched budget of one linear and the rank-r term for its dropped channels."""

    def _init_lowrank(self, weight: torch.Tensor, alpha: float) -> None:
        self.alpha = alpha
        self.out_features, self.in_features = weight.shape
        us, vh = svd_factors(weight)
        self.register_buffer("us", us, persistent=False)  # [out, R]
        self.register_buffer("vh", vh, persistent=False)  # [R, in]
        self.rank, self.kept = 0, self.in_features

    def _budget(self, level: float) -> None:
        n, out = self.in_features, self.out_features
        if level <= 0:  # level 0 is the dense layer, whatever alpha says
            self.kept, self.rank = n, 0
            return
        self.kept = int(n * (1.0 - level) * self.alpha)
        budget = n * out * (1.0 - level) - self.kept * out
        self.rank = max(0, min(int(budget // (n + out)), self.vh.shape[0]))

    def channel_level(self, level: float) -> float:
        """The fraction of channels the selection skips at FLOP-equivalent ``level``."""
        return 0.0 if level <= 0 else 1.0 - self.kept / self.in_features

    def residual(self, x_dropped: torch.Tensor) -> torch.Tensor | None:
        if self.rank == 0:
            return None
        r = self.rank
        return (x_dropped @ self.vh[:r].T) @ self.us[:, :r].T

    def extra_macs(self) -> int:
        return self.rank * (self.in_features + self.out_features)


class RSparseGate(_LowRank, TopKGate):
    """Exactly ``kept`` channels per token (``mask=topk``)."""

    def __init__(self, weight: torch.Tensor, alpha: float) -> None:
        TopKGate.__init__(self, scale=None if alpha == 1.0 else weight.float().norm(dim=0))
        self._init_lowrank(weight, alpha)

    def set_level(self, level: float) -> None:
        self._budget(level)
        TopKGate.set_level(self, level)

    def keep_count(self, n: int) -> int:
        return self.kept


class RSparseThresholdGate(_LowRank, ThresholdGate):
    """One calibrated threshold per linear at the channel budget (``mask=threshold``, the reference)."""

    def __init__(self, weight: torch.Tensor, alpha: float, sample: torch.Tensor, rule: str = "quantile") -> None:
        ThresholdGate.__init__(self, sample, scale=None if alpha == 1.0 else weight.float().norm(dim=0), rule=rule)
        self._init_lowrank(weight, alpha)

    def set_level(self, level: float) -> None:
        self._budget(level)
        ThresholdGate.set_level(self, self.channel_level(level))
        self.level = float(level)  # the FLOP-equivalent level the budget was set for


@register
class RSparse(Method):
    name = "rsparse"
    config_cls = RSparseConfig

    def make_gate(self, target: Target, sample=None):
        weight, alpha = target.module.weight.detach(), self.config.alpha_for(target.kind)
        if self.config.mask == "threshold":
            return RSparseThresholdGate(weight, alpha, sample, self.config.threshold_rule)
        return RSparseGate(weight, alpha)
