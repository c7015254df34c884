"""The one definition of a channel's score and of the keep-masks built from it (PyTorch, numpy on a CPU; no Triton).

    score[..., i] = |x[..., i]| * scale[i]        (fp32; scale=None is plain |x|)
    threshold mask:  score > t                    (TEAL, CATS: one calibrated t; per-row t for a top-k)
    top-k mask:      the k largest scores per row (WINA, R-Sparse)

The harness's gates (``wina.gated``), the kernel dispatch and the Triton kernels' reference tests all use these;
the Triton kernels evaluate the same comparison in fp32 (``kernels.parts._gate``).
"""

from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch


def channel_score(x: torch.Tensor, scale: torch.Tensor | None = None) -> torch.Tensor:
    """``|x| * scale`` in ``x``'s dtype."""
    s = x.abs()
    return s if scale is None else s * scale.to(s.dtype)


def threshold_mask(x: torch.Tensor, threshold, scale: torch.Tensor | None = None) -> torch.Tensor:
    """Keep ``score > threshold`` (a number, or a tensor broadcastable to ``x``)."""
    return channel_score(x, scale) > threshold


def topk_mask(x: torch.Tensor, k: int, scale: torch.Tensor | None = None) -> torch.Tensor:
    """Keep exactly the ``k`` largest scores of each row (everything when ``k >= in``)."""
    n = x.shape[-1]
    if k >= n:
        return torch.ones_like(x, dtype=torch.bool)
    if k <= 0:
        return torch.zeros_like(x, dtype=torch.bool)
    score = channel_score(x, scale)
    if score.device.type == "cpu" and k >= _PARTITION_FROM_K:
        if (keep := _topk_mask_by_partition(score, k)) is not None:
            return keep
    return torch.zeros_like(x, dtype=torch.bool).scatter_(-1, score.topk(k, dim=-1, sorted=False).indices, True)


_PARTITION_FROM_K = 16  # below, torch.topk is faster on a CPU (its cost grows with k, a partition's does not)


def _topk_mask_by_partition(score: torch.Tensor, k: int) -> torch.Tensor | None:
    """``topk_mask`` on a CPU via numpy's introselect (2-3x faster than ``torch.topk`` plus a scatter): keep the
    scores at or above each row's k-th largest; None where a row has a tie at its k-th (or a NaN), which
    ``torch.topk`` settles."""
    n = score.shape[-1]
    rows = score.detach().reshape(-1, n).float().numpy()
    kth = np.empty((rows.shape[0], 1), dtype=rows.dtype)

    def select(part: slice) -> None:
        kth[part] = np.partition(rows[part], n - k, axis=-1)[:, n - k:n - k + 1]

    parts = _row_parts(rows.shape[0])
    if len(parts) == 1:
        select(parts[0])
    else:
        list(_pool().map(select, parts))
    keep = rows >= kth
    if not (np.count_nonzero(keep, axis=-1) == k).all():
        return None
    return torch.from_numpy(keep).view(score.shape)


def _row_parts(rows: int) -> list[slice]:
    """Row ranges for the CPU's threads (numpy's partition runs single-threaded and releases the GIL)."""
    workers = min(torch.get_num_threads(), rows // 128) or 1
    bounds = [rows * i // workers for i in range(workers + 1)]
    return [slice(a, b) for a, b in zip(bounds, bounds[1:])]


def _pool() -> ThreadPoolExecutor:
    """The process's threads for the partitions (a forked child gets its own: the parent's threads are not in it)."""
    return _pool_of(os.getpid())


@functools.cache
def _pool_of(pid: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max(torch.get_num_threads(), 1), thread_name_prefix="topk-partition")


def topk_threshold_torch(x: torch.Tensor, k: int, scale: torch.Tensor | None = None) -> torch.Tensor:
    """Per-row fp32 threshold ``[..., 1]`` with ``threshold_mask(x.float(), t, scale) == topk_mask(x.float(), k,
    scale)`` (ties aside; the kernel's fp32 semantics): the (k+1)-th largest score, or -1 when ``k >= in``."""
    if k >= x.shape[-1]:
        return torch.full((*x.shape[:-1], 1), -1.0, device=x.device, dtype=torch.float32)
    return channel_score(x.float(), scale).topk(k + 1, dim=-1).values[..., k:k + 1]


def quantile_threshold(sorted_scores: torch.Tensor, level: float) -> float:
    """The threshold that skips a ``level`` fraction of a calibration sample: its ``int(level * n)``-th smallest
    score (sorted ascending); ``-inf`` at level 0, so that nothing, not even an exact zero, is skipped."""
    if level <= 0:
        return float("-inf")
    n = sorted_scores.numel()
    return float(sorted_scores[min(int(level * n), n - 1)])


def sorted_scores(sample: torch.Tensor, scale: torch.Tensor | None = None) -> torch.Tensor:
    """fp32 scores of a calibration sample ``[..., in]`` (or flat, with ``scale=None``), flattened and sorted."""
    return channel_score(sample.detach().float(), scale).flatten().sort().values


class SignedHistogram:
    """TEAL's threshold rule (``threshold_rule=histogram``): a 10,000-bin histogram of *signed* activations whose two
    outer bins lump the 1% tails, read as a CDF with cumulative counts at the bin centres and linear interpolation
    between them; the threshold for skipping a ``level`` fraction is ``icdf(0.5 + level / 2)`` (``|x| <= t`` then
    holds ``level`` of a distribution symmetric about 0)."""

    BINS, TAIL = 10_000, 0.01

    def __init__(self, values: torch.Tensor) -> None:
        acts = values.detach().float().flatten().sort().values.cpu()  # sorted where the values are
        n = acts.numel()
        tail = max(1, int(self.TAIL * n))
        inner = torch.linspace(float(acts[tail]), float(acts[n - tail]), self.BINS - 1)
        edges = torch.unique(torch.cat([acts[:1], inner, acts[-1:]]))  # sorted; ties only in degenerate samples
        counts = torch.histogram(acts, bins=edges).hist.double()
        self.centers = ((edges[1:] + edges[:-1]) / 2).double()
        self.cum = counts.cumsum(0)

    def icdf(self, q: float) -> float:
        target = q * float(self.cum[-1])
        i = int(torch.searchsorted(self.cum, torch.tensor([target], dtype=torch.float64)))
        if i <= 0:
            return float(self.centers[0])
        if i >= self.cum.numel():
            return float(self.centers[-1])
        c0, c1 = float(self.cum[i - 1]), float(self.cum[i])
        frac = 0.0 if c1 == c0 else (target - c0) / (c1 - c0)
        return float(self.centers[i - 1] + frac * (self.centers[i] - self.centers[i - 1]))

    def threshold(self, level: float) -> float:
        return float("-inf") if level <= 0 else self.icdf(0.5 + level / 2)
