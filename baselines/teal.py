"""TEAL: zero ``|x| <= t`` with per-projection thresholds calibrated on activations (arXiv 2408.14690).

``transform=true`` is the WINA paper's "TEAL-transform": the same thresholds on the rotated model.
"""

from __future__ import annotations

from dataclasses import dataclass

from wina.config import ThresholdConfig
from wina.gated import ThresholdGate
from wina.registry import Method, register
from wina.targets import Target
from wina.transform import transform_if_asked_


@dataclass(frozen=True)
class TealConfig(ThresholdConfig):
    allocation: str = "greedy"  # TEAL's own block-wise greedy search
    transform: bool = False


@register
class Teal(Method):
    name = "teal"
    config_cls = TealConfig
    needs_samples = True

    def prepare_(self, model, targets: list[Target]) -> dict:
        return transform_if_asked_(model, self.config.transform)

    def make_gate(self, target: Target, sample) -> ThresholdGate:
        return ThresholdGate(sample)
