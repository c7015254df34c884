"""TEAL: zero ``|x| <= t`` with per-projection thresholds calibrated on activations (arXiv 2408.14690).

``mask=topk`` is the WINA paper's TEAL column (microsoft/wina's ``scripts/teal`` pass ``--mask_by topk``: per-token
top-k by ``|x|``, greedy allocation); ``transform=true`` is its "TEAL-transform" (the same rule on the rotated model).
"""

from __future__ import annotations

from dataclasses import dataclass

from wina.config import SparsityConfig
from wina.gated import ThresholdGate, TopKGate
from wina.registry import Method, register
from wina.targets import Target
from wina.transform import transform_if_asked_


@dataclass(frozen=True)
class TealConfig(SparsityConfig):
    mask: str = "threshold"  # TEAL's own method: calibrated thresholds
    allocation: str = "greedy"  # TEAL's block-wise greedy search
    transform: bool = False


@register
class Teal(Method):
    name = "teal"
    config_cls = TealConfig

    def prepare_(self, model, targets: list[Target]) -> dict:
        return transform_if_asked_(model, self.config.transform)

    def make_gate(self, target: Target, sample):
        return ThresholdGate(sample, rule=self.config.threshold_rule) if self.config.mask == "threshold" else TopKGate()
