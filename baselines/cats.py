"""CATS: zero the MLP activation where ``|silu(gate_proj x)| <= t`` (arXiv 2404.08763).

A skipped neuron saves a row of up_proj and a column of down_proj; gate_proj and attention stay dense, so the
model-level sparsity cannot reach the share of up+down in a layer's weights: such targets are not reachable.
"""

from __future__ import annotations

from dataclasses import dataclass

from wina.config import SparsityConfig
from wina.errors import NotReachable, SparsityError
from wina.gated import ThresholdGate
from wina.registry import Method, register
from wina.targets import Target


@dataclass(frozen=True)
class CatsConfig(SparsityConfig):
    mask: str = "threshold"  # CATS's rule; the only one offered

    def check(self) -> None:
        super().check()
        if self.mask != "threshold":
            raise SparsityError(f"mask={self.mask!r}: CATS thresholds the MLP activation; accepted: threshold")


@register
class Cats(Method):
    name = "cats"
    config_cls = CatsConfig
    gates_activations = True

    def make_gate(self, target: Target, sample) -> ThresholdGate:
        return ThresholdGate(sample, rule=self.config.threshold_rule)

    def uniform_levels(self, targets, sparsity, params):
        share = (params["up"] + params["down"]) / sum(params.values())
        level = sparsity / share
        if level >= 1.0:
            raise NotReachable(f"CATS cannot reach sparsity {sparsity}: it skips only up/down neurons, "
                               f"{share:.1%} of each layer's weights, so its maximum is below {share:.3f}")
        return {t.key: level for t in targets}
