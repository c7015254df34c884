"""Each row of a report against its reference row, on the documents both evaluated: paired bootstrap intervals
and McNemar's test per task and for the average; and each row's own average with a bootstrap interval."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from experiments.analysis.outcomes import Outcomes, aligned, headline_outcomes
from experiments.analysis.paired import AVERAGE, Interval, McNemar, mcnemar, paired_bootstrap, stratified_bootstrap
from experiments.analysis.rows import row_label


@dataclass
class Comparison:
    """One row against its reference row (differences of means in [0, 1]: row minus reference)."""

    reference: str | None  # the reference row's label, e.g. "dense @ 0.00"
    intervals: dict[str, Interval] = field(default_factory=dict)  # per task and AVERAGE
    tests: dict[str, McNemar] = field(default_factory=dict)  # per task with binary outcomes
    note: str = ""  # why there are no intervals


def load_outcomes(df: pd.DataFrame) -> dict:
    """Per row of ``df``: its record's headline outcomes (None where not reachable or without outcomes)."""
    return {i: headline_outcomes(Path(df.at[i, "record"])) if df.at[i, "status"] == "complete" else None
            for i in df.index}


def reference_row(df: pd.DataFrame, i, reference: str):
    """The reference method's row at row ``i``'s target sparsity, else at sparsity 0 (dense), else None."""
    ref = df[df["method"] == reference]
    for target in (df.at[i, "sparsity"], 0.0):
        same = ref[ref["sparsity"] == target]
        if len(same):
            return same.index[0]
    return None


def _binary(x: np.ndarray) -> bool:
    return bool(np.isin(x, (0, 1)).all())


def compare_with_reference(df: pd.DataFrame, outcomes: dict, reference: str, n_boot: int = 10000,
                           seed: int = 0) -> dict:
    """Per complete row other than the reference rows: its ``Comparison`` with its reference row."""
    out = {}
    for i in df.index[df["status"] == "complete"]:
        j = reference_row(df, i, reference)
        if j == i:
            continue
        if j is None:
            out[i] = Comparison(None, note=f"no {reference} row at this sparsity or at 0")
            continue
        label = row_label(df.at[j, "method"], df.at[j, "sparsity"])
        if df.at[j, "status"] != "complete":
            out[i] = Comparison(label, note=f"{label} is not reachable")
            continue
        missing = [name for name, k in (("this record", i), (label, j)) if outcomes[k] is None]
        if missing:
            out[i] = Comparison(label, note=f"no per-document outcomes for {' and '.join(missing)}")
            continue
        a, b = aligned(outcomes[j], outcomes[i])
        if not a:
            out[i] = Comparison(label, note=f"no document evaluated by both this record and {label}")
            continue
        tests = {t: mcnemar(a[t], b[t]) for t in a if _binary(a[t]) and _binary(b[t])}
        out[i] = Comparison(label, paired_bootstrap(a, b, n_boot=n_boot, seed=seed), tests)
    return out


def own_intervals(outcomes: dict, n_boot: int = 10000, seed: int = 0) -> dict:
    """Per row with outcomes: its average over tasks with a bootstrap interval (documents resampled within each
    task, the task means averaged)."""
    return {i: stratified_bootstrap(_arrays(o), n_boot=n_boot, seed=seed)[AVERAGE]
            for i, o in outcomes.items() if o}


def _arrays(o: Outcomes) -> dict[str, np.ndarray]:
    return {task: np.array(list(values.values())) for task, values in o.items() if values}
