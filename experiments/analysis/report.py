"""Run records -> the paper's table with paired CIs vs a reference, differences, FLOPs and figures.

One report per (model, limit, token policy), never merged.

    python -m experiments.analysis.report outputs/ [--out outputs/report] [--name NAME] [--reference dense]

Each row is compared with the reference method's row at the same target sparsity, else at sparsity 0 (dense), on
the documents both evaluated (their per-document outcomes, ``outcomes.jsonl.gz`` beside each record; a record
without them gets no interval, and the tables say so). Writes ``<name>.md`` (every table), ``<name>.tex`` (the
paper's table, booktabs), ``<name>.csv`` (one row per record), ``<name>_paper.csv``, ``<name>_differences.csv``,
and ``<name>.png``/``_tasks``/``_diff`` (and PDF).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from experiments.analysis.comparisons import compare_with_reference, load_outcomes, own_intervals
from experiments.analysis.difference_table import difference_frame, difference_markdown
from experiments.analysis.figures import accuracy_figure, difference_figure, task_figure
from experiments.analysis.paper_table import caption, paper_frame, paper_latex, paper_markdown
from experiments.analysis.records import load_records, task_columns
from experiments.analysis.summary_tables import accuracy_table, flops_table, projection_table
from experiments.harness.tables import markdown


def setting(df: pd.DataFrame) -> str:
    """The rows' model, document limit and token policy (every value, where a report was asked to mix them)."""
    def values(column, show=str):
        return ", ".join(sorted({show(v) for v in df[column]}))

    limit = values("limit", lambda v: "all documents" if v is None or v != v else f"{int(v)} documents per task")
    return f"model {values('model')}, limit {limit}, token policy {values('tokens')}"


def write_report(df: pd.DataFrame, out_dir: Path, name: str, command: str, reference: str = "dense",
                 n_boot: int = 10000) -> Path:
    """``<name>.md`` (every table), ``<name>.tex`` (the paper's table), CSVs (``<name>.csv``: one row per record;
    ``_paper``, ``_differences``) and the figures, for the rows of one (model, limit, token policy)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    tasks = task_columns(df)
    df.drop(columns=["record"]).to_csv(out_dir / f"{name}.csv", index=False)
    if not (df["method"] == reference).any():
        print(f"warning: {name}: no {reference} row to compare with (--reference)", file=sys.stderr)
    outcomes = load_outcomes(df)
    comparisons = compare_with_reference(df, outcomes, reference, n_boot=n_boot)
    title = setting(df)
    paper, paper_caption = paper_frame(df, tasks, comparisons, reference), caption(title, reference, n_boot)
    paper.to_csv(out_dir / f"{name}_paper.csv", index=False)
    (out_dir / f"{name}.tex").write_text(paper_latex(paper, tasks, paper_caption))
    diffs = difference_frame(df, comparisons, reference)
    diffs.to_csv(out_dir / f"{name}_differences.csv", index=False)
    figures = [*accuracy_figure(df, own_intervals(outcomes, n_boot=n_boot), out_dir / name, title),
               *task_figure(df, tasks, out_dir / f"{name}_tasks", title),
               *difference_figure(df, comparisons, reference, out_dir / f"{name}_diff", title)]
    text = [f"# {name}", "", f"Command: `{command}`", "", f"Setting: {title}.", "",
            f"## The paper's table (reference: {reference})", "", paper_markdown(paper, tasks, paper_caption), "",
            f"LaTeX: `{name}.tex`; numbers: `{name}_paper.csv`.", "",
            f"## Differences from the reference ({reference})", "",
            "Per task and for the average: the row minus its reference row in percentage points, the paired 95% "
            "bootstrap CI, the documents both evaluated, McNemar's discordant documents (n01: the reference wrong "
            "and the row right; n10: the reverse) and its exact two-sided p-value.", "",
            difference_markdown(diffs), "",
            "## FLOPs", "", "GFLOPs per token in the WINA paper's Table 5 convention (linear-layer MACs: projections "
            "and lm_head, at the measured sparsity), without and with WINA's rotations (2 d^2 per layer):", "",
            markdown(flops_table(df, reference), ".4g"), "",
            "## Average by target sparsity", "",
            "Average headline accuracy (%) by target sparsity, the sparsity measured during the evaluation in "
            "brackets (n/a: the method cannot reach that sparsity; -: not run):", "",
            markdown(accuracy_table(df), ".2f"), "", "Sparsity measured on the gated positions, per projection:", "",
            markdown(projection_table(df), ".3f"), ""]
    policies = sorted({str(x) for x in df["tokens"]})
    text.append(f"Token policy (which positions are gated): {', '.join(policies)}"
                + (" -- this table MIXES token policies." if len(policies) > 1 else "."))
    limits = sorted({str(x) for x in df["limit"]})
    text.append(f"Document limit per task: {', '.join(limits)} (None = full sets).")
    text += ["", "Figures: " + ", ".join(f"`{p.name}`" for p in figures if p.suffix == ".png") + " (and PDF)."]
    (out_dir / f"{name}.md").write_text("\n".join(text) + "\n")
    return out_dir / f"{name}.md"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folders", nargs="+", type=Path, help="folders searched for record.json files")
    ap.add_argument("--out", type=Path, default=Path("outputs/report"), help="folder for the tables and figures")
    ap.add_argument("--name", default="comparison", help="file stem; one report per (model, limit, token policy) "
                                                         "gets the group appended when the records hold several")
    ap.add_argument("--reference", default="dense", help="the method label every other row is compared with: its "
                    "row at the same target sparsity, else at sparsity 0 (dense)")
    ap.add_argument("--command", default=None, help="the command that produced the records (written into the table)")
    args = ap.parse_args(argv)
    df = load_records(args.folders)
    given = sys.argv[1:] if argv is None else argv
    command = args.command or "python -m experiments.analysis.report " + " ".join(given)
    groups = list(df.groupby(["model", "limit", "tokens"], dropna=False))
    for (model, limit, tokens), part in groups:  # never merged: one table per model and setting
        limit = "all" if limit is None or limit != limit else int(limit)
        name = args.name if len(groups) == 1 else f"{args.name}_{model}_limit-{limit}_{tokens}"
        print(write_report(part.reset_index(drop=True), args.out, name, command, args.reference).read_text())


if __name__ == "__main__":
    main()
