"""The report's smaller tables: average accuracy by target sparsity, the sparsity measured per projection, and
the FLOPs per token in both conventions."""

from __future__ import annotations

import pandas as pd

from experiments.analysis.rows import paper_order, row_label


def accuracy_table(df: pd.DataFrame) -> pd.DataFrame:
    """Rows: target sparsity; columns: method; cells: average headline accuracy with the sparsity measured during the
    evaluation in brackets, ``n/a`` where the method cannot reach the target, ``-`` where no record exists."""
    def cell(r):
        if r["status"] == "not_reachable":
            return "n/a"
        measured = r["measured"]
        return f"{r['average']:.2f}" + ("" if measured is None or measured != measured else f" ({measured:.3f})")

    cell = df.apply(cell, axis=1)
    table = df.assign(cell=cell).pivot(index="sparsity", columns="method", values="cell").fillna("-")
    table.index = [f"{s:.2f}" for s in table.index]
    table.index.name = "sparsity"
    return table


def projection_table(df: pd.DataFrame) -> pd.DataFrame:
    """Sparsity measured on the gated positions, overall and per projection kind, by method and target."""
    cols = ["measured"] + [c for c in df.columns if c.startswith("measured_")]
    out = df[df["status"] == "complete"].set_index(["method", "sparsity"])[cols].dropna(how="all").sort_index()
    out.columns = ["overall"] + [c.removeprefix("measured_") for c in cols[1:]]
    out.index = [row_label(m, s) for m, s in out.index]
    out.index.name = "method @ target"
    return out


def flops_table(df: pd.DataFrame, reference: str) -> pd.DataFrame:
    """Per complete row, in the paper table's order: the measured sparsity and GFLOPs per token in the WINA paper's
    Table 5 convention (linear-layer MACs: projections + lm_head), dense and effective, without and with WINA's
    rotations (2 d^2 per layer), each effective count also as a share of dense."""
    done = df.loc[paper_order(df[df["status"] == "complete"], reference)]
    dense, plain, rotated = (pd.to_numeric(done[c]) for c in ("gflops_dense", "gflops_paper", "gflops_with_rotations"))
    out = pd.DataFrame({"measured sparsity": done["measured"], "dense": dense, "effective": plain,
                        "% of dense": 100 * plain / dense, "effective with rotations": rotated,
                        "% of dense, with rotations": 100 * rotated / dense})
    out.index = [row_label(m, s) for m, s in zip(done["method"], done["sparsity"])]
    out.index.name = "method @ target"
    return out
