"""The paper table's averages as one method x sparsity grid, each cell with its paired difference from the report's
reference row and the 95% CI (from the ``*_paper.csv`` that ``experiments.analysis.report`` writes).

    python -m experiments.analysis.average_grid results/sweeps/h100_paper8_grid/smollm2-135m_paper8_h100_vs_teal-topk_paper.csv
"""

from __future__ import annotations

import argparse

import pandas as pd


def average_grid(paper_csv: str) -> str:
    rows = pd.read_csv(paper_csv)
    rows = rows[rows.sparsity > 0]

    def cell(r) -> str:
        if r.status != "complete":
            return "n/a"
        if pd.isna(r["diff"]):
            return f"{r.average:.2f}"
        return f"{r.average:.2f} ({r['diff']:+.2f} [{r.ci_low:+.2f}, {r.ci_high:+.2f}])"

    grid = rows.assign(cell=rows.apply(cell, axis=1)).pivot(index="method", columns="sparsity", values="cell")
    grid = grid.loc[list(dict.fromkeys(rows.method))]  # the report's row order
    lines = ["| method | " + " | ".join(f"{s:.0%}" for s in grid.columns) + " |",
             "|---" * (len(grid.columns) + 1) + "|"]
    lines += [f"| {method} | " + " | ".join(cells.fillna("")) + " |" for method, cells in grid.iterrows()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("paper_csv")
    print(average_grid(ap.parse_args(argv).paper_csv))


if __name__ == "__main__":
    main()
