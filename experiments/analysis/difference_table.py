"""The differences table: per compared row and task (and the average), the difference from the reference row in
percentage points with its paired 95% bootstrap CI, the documents behind it, and McNemar's discordant counts
(n01: reference wrong, row right; n10: the reverse) and exact p-value."""

from __future__ import annotations

import pandas as pd

from experiments.analysis.rows import paper_order, row_label
from experiments.harness.tables import markdown_table


def difference_frame(df: pd.DataFrame, comparisons: dict, reference: str) -> pd.DataFrame:
    """One row per (compared row, task or ``average``), in the paper table's order; a row without a paired
    comparison gets one line that says why."""
    lines = []
    for i in paper_order(df, reference):
        c = comparisons.get(i)
        if c is None:
            continue
        base = {"row": row_label(df.at[i, "method"], df.at[i, "sparsity"]), "reference": c.reference}
        if not c.intervals:
            lines.append({**base, "task": None, "note": c.note})
        for task, iv in c.intervals.items():
            t = c.tests.get(task)
            lines.append({**base, "task": task, "diff": 100 * iv.value, "ci_low": 100 * iv.low,
                          "ci_high": 100 * iv.high, "ci_covers_zero": iv.covers_zero, "n_docs": iv.n_docs,
                          "n01": None if t is None else t.n01, "n10": None if t is None else t.n10,
                          "mcnemar_p": None if t is None else t.p_value, "note": ""})
    columns = ["row", "reference", "task", "diff", "ci_low", "ci_high", "ci_covers_zero", "n_docs", "n01", "n10",
               "mcnemar_p", "note"]
    return pd.DataFrame(lines, columns=columns)


def _missing(v) -> bool:
    return v is None or v != v


def _blank_if_missing(v, fmt: str) -> str:
    return "" if _missing(v) else format(v, fmt)


def difference_markdown(frame: pd.DataFrame) -> str:
    rows = [[r.row, r.reference, "-" if _missing(r.task) else r.task, _blank_if_missing(r.diff, "+.2f"),
             "" if _missing(r.ci_low) else f"[{r.ci_low:.2f}, {r.ci_high:.2f}]", _blank_if_missing(r.n_docs, ".0f"),
             _blank_if_missing(r.n01, ".0f"), _blank_if_missing(r.n10, ".0f"), _blank_if_missing(r.mcnemar_p, ".3g"),
             r.note] for r in frame.itertuples()]
    header = ["row", "reference", "task", "diff (pp)", "95% CI", "docs", "n01", "n10", "McNemar p", "note"]
    return markdown_table(header, rows)
