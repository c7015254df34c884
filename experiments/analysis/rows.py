"""The report's rows: their order (by target sparsity, the reference first within each) and their labels."""

from __future__ import annotations

import pandas as pd


def row_label(method: str, sparsity: float) -> str:
    return f"{method} @ {sparsity:.2f}"


def paper_order(df: pd.DataFrame, reference: str) -> list:
    """The index of ``df`` by target sparsity; within one, the reference method first, then by method name."""
    return sorted(df.index, key=lambda i: (df.at[i, "sparsity"], df.at[i, "method"] != reference, df.at[i, "method"]))
