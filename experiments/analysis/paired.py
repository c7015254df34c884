"""Paired statistics for runs evaluated on the same documents (pure functions, numpy only).

``paired_bootstrap``: the difference mean(b) - mean(a) per task and for the unweighted average over tasks (as the
tables' average is), with percentile bootstrap intervals that resample documents, pairing a and b on each one.
``stratified_bootstrap``: the same for one run's means. ``mcnemar``: the exact test on the discordant documents.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np

AVERAGE = "average"  # the key of the unweighted mean over tasks in the results
_MAX_DRAWS = 4_000_000  # multinomial cells drawn at once (bounds memory for metrics with many distinct values)


@dataclass(frozen=True)
class Interval:
    """A mean, or a difference of means, with its percentile bootstrap interval."""

    value: float
    low: float
    high: float
    n_docs: int  # documents behind it (summed over the tasks for the average)

    @property
    def covers_zero(self) -> bool:
        return self.low <= 0.0 <= self.high


@dataclass(frozen=True)
class McNemar:
    """Discordant documents of two binary runs and the exact two-sided p-value of McNemar's test."""

    n01: int  # a wrong, b right
    n10: int  # a right, b wrong
    p_value: float


def _bootstrap_means(values: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """``n_boot`` means of ``values`` resampled with replacement. Drawn as multinomial counts over the distinct
    values: the same distribution as resampling indices, at a cost in the distinct values, not the documents."""
    distinct, counts = np.unique(values, return_counts=True)
    n = len(values)
    chunk = max(1, _MAX_DRAWS // len(distinct))
    sums = [rng.multinomial(n, counts / n, size=min(chunk, n_boot - start)) @ distinct
            for start in range(0, n_boot, chunk)]
    return np.concatenate(sums) / n


def _interval(value: float, boot: np.ndarray, ci: float, n_docs: int) -> Interval:
    low, high = np.quantile(boot, [(1 - ci) / 2, (1 + ci) / 2])
    return Interval(float(value), float(low), float(high), n_docs)


def stratified_bootstrap(values_by_task: dict[str, np.ndarray], n_boot: int = 10000, seed: int = 0,
                         ci: float = 0.95) -> dict[str, Interval]:
    """Per task the mean of its per-document values with a percentile bootstrap interval (documents resampled
    within the task), and under ``AVERAGE`` the unweighted mean of the task means with a stratified bootstrap
    interval (each replicate resamples every task's documents independently, then averages the task means).
    Deterministic given ``seed``; a task's draws depend on its name and the seed, not on the other tasks."""
    if not values_by_task:
        raise ValueError("no tasks")
    out, boots = {}, []
    for task, values in values_by_task.items():
        values = np.asarray(values, dtype=float)
        if values.ndim != 1 or len(values) == 0:
            raise ValueError(f"{task}: a non-empty 1-d array of per-document values is expected")
        boots.append(_bootstrap_means(values, n_boot, np.random.default_rng([seed, zlib.crc32(task.encode())])))
        out[task] = _interval(values.mean(), boots[-1], ci, len(values))
    means = [i.value for i in out.values()]
    out[AVERAGE] = _interval(np.mean(means), np.mean(boots, axis=0), ci, sum(i.n_docs for i in out.values()))
    return out


def paired_bootstrap(a_by_task: dict[str, np.ndarray], b_by_task: dict[str, np.ndarray], n_boot: int = 10000,
                     seed: int = 0, ci: float = 0.95) -> dict[str, Interval]:
    """mean(b) - mean(a) per task and under ``AVERAGE`` (unweighted over tasks), with intervals from resampling
    documents: a and b are aligned on the same documents, so each resampled document carries both outcomes
    (the stratified bootstrap of the per-document differences b - a)."""
    if set(a_by_task) != set(b_by_task):
        raise ValueError(f"tasks differ: {sorted(set(a_by_task) ^ set(b_by_task))}")
    diffs = {}
    for task, a in a_by_task.items():
        a, b = np.asarray(a, dtype=float), np.asarray(b_by_task[task], dtype=float)
        if a.shape != b.shape:
            raise ValueError(f"{task}: {a.shape} vs {b.shape} outcomes; pair them on the same documents")
        diffs[task] = b - a
    return stratified_bootstrap(diffs, n_boot=n_boot, seed=seed, ci=ci)


def _binomial_two_sided(k: int, n: int) -> float:
    """P(X <= min(k, n - k)) + P(X >= max(k, n - k)) for X ~ Binomial(n, 1/2), summed in log space."""
    tail = min(k, n - k)
    logs = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) - n * math.log(2)
            for i in range(tail + 1)]
    top = max(logs)
    return min(1.0, 2 * math.exp(top) * sum(math.exp(x - top) for x in logs))


def mcnemar(a: np.ndarray, b: np.ndarray) -> McNemar:
    """McNemar's exact test for two binary runs on the same documents: under the null a discordant document is
    as likely to favour a as b, so n01 ~ Binomial(n01 + n10, 1/2); two-sided p-value (1 without discordance)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"{a.shape} vs {b.shape} outcomes; pair them on the same documents")
    if not (np.isin(a, (0, 1)).all() and np.isin(b, (0, 1)).all()):
        raise ValueError("McNemar's test needs binary (0/1) outcomes")
    n01, n10 = int(np.sum((a == 0) & (b == 1))), int(np.sum((a == 1) & (b == 0)))
    return McNemar(n01, n10, _binomial_two_sided(n01, n01 + n10))
