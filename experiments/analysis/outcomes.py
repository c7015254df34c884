"""A record's per-document headline outcomes, keyed so that two records can be joined on their documents."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from experiments.harness.record import RunRecord, read_outcomes

Outcomes = dict[str, dict[tuple, float]]  # our task name -> {(lm-eval task, doc_id, filter): headline value}


def _task_rows(rows: list[dict], lm_eval_task: str, metric: str, filter_: str) -> list[dict]:
    """The rows of one of our tasks: lm-eval's task of that name, or, for a group (mmlu), its leaves, which
    lm-eval names ``<group>_<subtask>``; only the headline filter's rows that carry the metric."""
    rows = [r for r in rows if r.get("filter") == filter_ and metric in r]
    return [r for r in rows if r["task"] == lm_eval_task] or [r for r in rows
                                                               if r["task"].startswith(lm_eval_task + "_")]


def headline_outcomes(record_path: Path) -> Outcomes | None:
    """Per task, the headline metric (acc_norm / GSM8K's flexible-extract exact match / acc, as the record's
    ``headline_metric`` names it) of every evaluated document. None for a record without an outcomes file; a task
    whose rows do not number its evaluated documents is left out, with a warning."""
    record_path = Path(record_path)
    record = RunRecord.read(record_path)
    if not record.outcomes or not (record_path.parent / record.outcomes).exists():
        return None
    rows = read_outcomes(record_path)
    out = {}
    for name, t in record.tasks.items():
        if t is None or t.headline_metric is None:
            continue
        metric, filter_ = t.headline_metric.split(",", 1)
        mine = _task_rows(rows, t.lm_eval_task, metric, filter_)
        if len(mine) != t.n_docs_evaluated:
            print(f"warning: {record_path}: {len(mine)} outcome rows for {name}, {t.n_docs_evaluated} documents "
                  "evaluated; left out of the paired statistics", file=sys.stderr)
            continue
        out[name] = {(r["task"], r["doc_id"], filter_): float(r[metric]) for r in mine}
    return out


def aligned(a: Outcomes, b: Outcomes) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Both records' values on the tasks and documents both evaluated, in the same document order."""
    a_by_task, b_by_task = {}, {}
    for task in [t for t in a if t in b]:
        keys = sorted(a[task].keys() & b[task].keys(), key=str)
        if keys:
            a_by_task[task] = np.array([a[task][k] for k in keys])
            b_by_task[task] = np.array([b[task][k] for k in keys])
    return a_by_task, b_by_task
