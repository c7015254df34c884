"""The frozen configs every method shares. Each default lives here, once (a method's own defaults in its config
subclass); the harness derives its typed Hydra schema from these dataclasses (``experiments/harness/schema.py``)."""

from __future__ import annotations

from dataclasses import dataclass

from wina.errors import SparsityError

ALLOCATIONS = ("uniform", "greedy")
KERNEL_MODES = ("auto", "off")
MASKS = ("topk", "threshold")
THRESHOLD_SOURCES = ("sparse", "dense")
THRESHOLD_RULES = ("quantile", "histogram")
PREFIX_ROUNDINGS = ("wina", "floor")


def check_choice(key: str, value, accepted) -> None:
    if value not in accepted:
        raise SparsityError(f"{key}={value!r} is not known; accepted: {', '.join(map(str, accepted))}")


@dataclass(frozen=True)
class SparsityConfig:
    sparsity: float = 0.5
    mask: str = "topk"  # topk: the k = int(in (1 - level)) best channels per token; threshold: a calibrated cut
    allocation: str = "uniform"  # uniform | greedy (TEAL's block-wise search)
    # Which positions are gated (the harness's token policy sets these for every method alike): the leading
    # positions of each sequence left dense; decode steps (one position) are always gated.
    dense_prefix: float = 0.0  # fraction of positions left dense
    dense_prefix_rounding: str = "wina"  # wina: L - int((1 - f) L) dense (microsoft/wina, TEAL); floor: int(f L) (R-Sparse)
    # mask=threshold: where the thresholds come from
    thresholds_from: str = "sparse"  # sparse: re-calibrated layer by layer on the sparsified upstream; dense: TEAL
    threshold_rule: str = "quantile"  # quantile: exact quantile of the score; histogram: TEAL's icdf(0.5 + s/2)
    greedy_step: float = 0.05
    greedy_samples: int = 8  # calibration sequences the greedy search replays
    greedy_max: float = 0.9  # the highest target greedy allocation takes (its curve is made up to the target,
    # cached, and extended by a later job with a higher one)
    kernel: str = "auto"  # auto: Triton on CUDA (decode GEMV for one row, one-pass masking else); off: PyTorch

    def check(self) -> None:
        if isinstance(self.sparsity, bool) or not isinstance(self.sparsity, (int, float)) or not 0.0 <= self.sparsity < 1.0:
            raise SparsityError(f"sparsity={self.sparsity!r} is outside [0, 1)")
        check_choice("mask", self.mask, MASKS)
        check_choice("kernel", self.kernel, KERNEL_MODES)
        check_choice("allocation", self.allocation, ALLOCATIONS)
        check_choice("thresholds_from", self.thresholds_from, THRESHOLD_SOURCES)
        check_choice("threshold_rule", self.threshold_rule, THRESHOLD_RULES)
        check_choice("dense_prefix_rounding", self.dense_prefix_rounding, PREFIX_ROUNDINGS)
        if not 0.0 <= self.dense_prefix < 1.0:
            raise SparsityError(f"dense_prefix={self.dense_prefix!r} is outside [0, 1)")
        if not 0.0 < self.greedy_step <= 1.0:
            raise SparsityError(f"greedy_step={self.greedy_step!r} is outside (0, 1]")
        if self.greedy_samples < 1:
            raise SparsityError(f"greedy_samples={self.greedy_samples!r} must be a positive integer")
        if self.allocation == "greedy" and self.sparsity > self.greedy_max:
            raise SparsityError(f"sparsity={self.sparsity} is above greedy_max={self.greedy_max}; raise greedy_max")
