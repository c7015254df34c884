"""The frozen configs every method shares. Each default lives here, once; the harness derives its typed Hydra
schema from these dataclasses (``experiments/harness/schema.py``)."""

from __future__ import annotations

from dataclasses import dataclass

from wina.errors import SparsityError

ALLOCATIONS = ("uniform", "greedy")
KERNEL_MODES = ("auto", "off")
THRESHOLD_SOURCES = ("sparse", "dense")


def check_choice(key: str, value, accepted) -> None:
    if value not in accepted:
        raise SparsityError(f"{key}={value!r} is not known; accepted: {', '.join(map(str, accepted))}")


@dataclass(frozen=True)
class SparsityConfig:
    sparsity: float = 0.5
    allocation: str = "uniform"  # uniform | greedy (TEAL's block-wise search)
    dense_prefix: float = 0.0  # leading fraction of each sequence left dense (WINA reference: 0.01)
    greedy_step: float = 0.05
    greedy_samples: int = 8  # calibration sequences the greedy search replays
    greedy_max: float = 0.9  # the greedy curve is computed up to this block sparsity (cached, reused by sweeps)
    kernel: str = "auto"  # auto: Triton kernel for single-row (decode) calls on CUDA; off: always PyTorch

    def check(self) -> None:
        if isinstance(self.sparsity, bool) or not isinstance(self.sparsity, (int, float)) or not 0.0 <= self.sparsity < 1.0:
            raise SparsityError(f"sparsity={self.sparsity!r} is outside [0, 1)")
        check_choice("kernel", self.kernel, KERNEL_MODES)
        check_choice("allocation", self.allocation, ALLOCATIONS)
        if not 0.0 <= self.dense_prefix < 1.0:
            raise SparsityError(f"dense_prefix={self.dense_prefix!r} is outside [0, 1)")
        if not 0.0 < self.greedy_step <= 1.0:
            raise SparsityError(f"greedy_step={self.greedy_step!r} is outside (0, 1]")
        if self.greedy_samples < 1:
            raise SparsityError(f"greedy_samples={self.greedy_samples!r} must be a positive integer")
        if self.allocation == "greedy" and self.sparsity > self.greedy_max:
            raise SparsityError(f"sparsity={self.sparsity} is above greedy_max={self.greedy_max}; raise greedy_max")


@dataclass(frozen=True)
class ThresholdConfig(SparsityConfig):
    """For methods with calibrated thresholds: ``sparse`` re-calibrates them layer by layer on the sparsified
    upstream (measured sparsity then matches the target); ``dense`` keeps thresholds from the dense model's
    activations, as TEAL's reference does (the measured sparsity then overshoots at high targets)."""

    thresholds_from: str = "sparse"

    def check(self) -> None:
        super().check()
        check_choice("thresholds_from", self.thresholds_from, THRESHOLD_SOURCES)
