"""The paper's table: rows sparsity x method (the reference first at each sparsity), columns the tasks' headline
accuracy (%) and their average with its paired 95% CI against the reference; as numbers (CSV), markdown and
LaTeX (booktabs)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import pandas as pd

from experiments.analysis.paired import AVERAGE
from experiments.analysis.rows import paper_order
from experiments.harness.tables import markdown_table

DAGGER = "†"


def paper_frame(df: pd.DataFrame, tasks: list[str], comparisons: dict, reference: str) -> pd.DataFrame:
    """The table's numbers in its row order: headline % per task, the average, and the average's difference from
    the reference row with its CI (percentage points; empty where there is no paired comparison)."""
    rows = {}
    for i in paper_order(df, reference):
        r, c = df.loc[i], comparisons.get(i)
        avg = c.intervals.get(AVERAGE) if c else None
        rows[i] = {"sparsity": r["sparsity"], "method": r["method"], "status": r["status"],
                   **{t: r.get(t) for t in tasks}, "average": r["average"],
                   "diff": None if avg is None else 100 * avg.value,
                   "ci_low": None if avg is None else 100 * avg.low,
                   "ci_high": None if avg is None else 100 * avg.high,
                   "ci_covers_zero": None if avg is None else avg.covers_zero,
                   "reference": c.reference if c else None, "note": c.note if c else ""}
    return pd.DataFrame.from_dict(rows, orient="index")


def best_cells(frame: pd.DataFrame, columns: list[str]) -> set:
    """(row, column) of the highest value (to the shown two decimals, ties all) among the rows of one target
    sparsity, where at least two rows have a value."""
    best = set()
    for col in columns:
        for _, group in frame.groupby("sparsity"):
            values = pd.to_numeric(group[col], errors="coerce").round(2).dropna()
            if len(values) >= 2:
                best |= {(i, col) for i in values.index[values == values.max()]}
    return best


@dataclass(frozen=True)
class Style:
    bold: Callable[[str], str]
    dagger: str
    name: Callable[[str], str]  # a method or task name as the format needs it


def _tex_escape(s: str) -> str:
    return "".join("\\" + ch if ch in "_%&#$" else ch for ch in str(s))


MARKDOWN = Style(lambda s: f"**{s}**", DAGGER, str)
LATEX = Style(lambda s: rf"\textbf{{{s}}}", r"$^\dagger$", _tex_escape)


def _average_cell(row, text: str, style: Style) -> str:
    if row["diff"] is not None and row["diff"] == row["diff"]:
        return f"{text} [{row['ci_low']:.1f}, {row['ci_high']:.1f}]" + (style.dagger if row["ci_covers_zero"] else "")
    return text + (" (no CI)" if row["note"] else "")


def cells(frame: pd.DataFrame, tasks: list[str], style: Style) -> tuple[list[str], list[list[str]]]:
    """Header and rows of formatted cells: n/a where not reachable, - where a task has no value."""
    best = best_cells(frame, tasks + ["average"])
    rows = []
    for i, r in frame.iterrows():
        row = [f"{r['sparsity']:.2f}", style.name(r["method"])]
        for col in tasks + ["average"]:
            v = r[col]
            if r["status"] == "not_reachable":
                row.append("n/a")
                continue
            text = "-" if v is None or v != v else f"{v:.2f}"
            text = style.bold(text) if (i, col) in best else text
            row.append(_average_cell(r, text, style) if col == "average" else text)
        rows.append(row)
    return ["sparsity", "method", *map(style.name, tasks), "average"], rows


def caption(setting: str, reference: str, n_boot: int) -> str:
    """What the table shows, for the line under it (markdown) or its ``\\caption`` (LaTeX)."""
    return (f"Headline accuracy (%) per task and their unweighted average; {setting}. Headline: acc_norm where the "
            "task has it, else GSM8K's flexible-extract exact match, else acc. Average: in brackets the paired 95% "
            f"bootstrap CI of its difference from the reference ({reference} at the same sparsity, else at "
            "sparsity 0), in percentage points, on the documents both evaluated (documents resampled within each "
            f"task, {n_boot} times); {DAGGER}: the CI covers 0; (no CI): no paired comparison (the differences table "
            "says why). Bold: the best at each sparsity. n/a: the method cannot reach that sparsity.")


def paper_markdown(frame: pd.DataFrame, tasks: list[str], text: str) -> str:
    header, rows = cells(frame, tasks, MARKDOWN)
    return markdown_table(header, rows) + "\n\n" + text


def paper_latex(frame: pd.DataFrame, tasks: list[str], text: str) -> str:
    """A booktabs ``table`` (``\\toprule``/``\\midrule``/``\\bottomrule``) with the caption."""
    header, rows = cells(frame, tasks, LATEX)
    table = pd.DataFrame(rows, columns=header)
    return table.to_latex(index=False, escape=False, column_format="ll" + "r" * (len(header) - 2),
                          caption=_tex_escape(text).replace(DAGGER, LATEX.dagger), position="t")
