"""Markdown tables from pandas without extra dependencies."""

from __future__ import annotations


def markdown(df, floatfmt: str = ".4f") -> str:
    """A GitHub markdown table of ``df`` (index included)."""
    def cell(v):
        if isinstance(v, float):
            return "n/a" if v != v else format(v, floatfmt)
        return str(v)

    header = [str(df.index.name or "")] + [str(c) for c in df.columns]
    rows = [[cell(i)] + [cell(v) for v in row] for i, row in zip(df.index, df.itertuples(index=False))]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)
