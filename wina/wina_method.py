"""WINA: keep, per token, the channels with the largest ``|x_i| * ||W[:, i]||_2`` (arXiv 2505.19427).

``mask=topk`` (the reference's evaluation scripts) keeps exactly k channels per token; ``mask=threshold`` (the
reference's ``mask_by threshold``, the form a kernel can run) keeps ``|x_i| c_i > t`` with ``t`` calibrated per
projection on the same score. ``c`` is taken from the weights the model uses, i.e. after the transform."""

from __future__ import annotations

from dataclasses import dataclass

from wina.config import SparsityConfig, check_choice
from wina.gated import ThresholdGate, TopKGate
from wina.registry import Method, register
from wina.targets import KINDS, Target
from wina.transform import transform_if_asked_

WEIGHT_INFORMED = {"paper": ("k", "gate"), "all": KINDS, "none": ()}


@dataclass(frozen=True)
class WinaConfig(SparsityConfig):
    allocation: str = "greedy"  # the paper's setting: TEAL's greedy block-wise search
    transform: bool = True  # the function-preserving orthogonal rotation (column-orthogonal k and gate)
    weight_informed: str = "paper"  # paper: k_proj and gate_proj use |x|*c (reference code); all; none

    def check(self) -> None:
        super().check()
        check_choice("weight_informed", self.weight_informed, WEIGHT_INFORMED)


@register
class Wina(Method):
    name = "wina"
    config_cls = WinaConfig

    def prepare_(self, model, targets: list[Target]) -> dict:
        return transform_if_asked_(model, self.config.transform)

    def make_gate(self, target: Target, sample=None):
        scale = None
        if target.kind in WEIGHT_INFORMED[self.config.weight_informed]:
            scale = target.module.weight.float().norm(dim=0)
        if self.config.mask == "threshold":
            return ThresholdGate(sample, scale, self.config.threshold_rule)
        return TopKGate(scale)
