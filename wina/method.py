"""WINA: keep, per token, the channels with the largest ``|x_i| * ||W[:, i]||_2`` (arXiv 2505.19427)."""

from __future__ import annotations

from dataclasses import dataclass

from experiments.errors import HarnessError
from wina.api import Method, SparsityConfig, register
from wina.gated import TopKGate
from wina.targets import KINDS, Target
from wina.transform import apply_transform_, rotation_macs_per_token

WEIGHT_INFORMED = {"paper": ("k", "gate"), "all": KINDS, "none": ()}


@dataclass(frozen=True)
class WinaConfig(SparsityConfig):
    transform: bool = True  # the function-preserving orthogonal rotation (column-orthogonal k and gate)
    weight_informed: str = "paper"  # paper: k_proj and gate_proj use |x|*c (reference code); all; none

    def check(self) -> None:
        super().check()
        if self.weight_informed not in WEIGHT_INFORMED:
            raise HarnessError(f"weight_informed={self.weight_informed!r} is not known; accepted: {', '.join(WEIGHT_INFORMED)}")


def transform_if_asked_(model, transform: bool) -> dict:
    if not transform:
        return {"transform": False}
    apply_transform_(model)
    return {"transform": True, "transform_macs_per_token": rotation_macs_per_token(model)}


@register
class Wina(Method):
    name = "wina"
    config_cls = WinaConfig

    def prepare_(self, model, targets: list[Target]) -> dict:
        return transform_if_asked_(model, self.config.transform)

    def make_gate(self, target: Target, sample=None) -> TopKGate:
        if target.kind in WEIGHT_INFORMED[self.config.weight_informed]:
            return TopKGate(scale=target.module.weight.float().norm(dim=0))
        return TopKGate()
