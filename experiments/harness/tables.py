"""The one table writer: rows of cells as a GitHub markdown table or as aligned plain text."""

from __future__ import annotations

from typing import Sequence


def _cell(v, floatfmt: str) -> str:
    if isinstance(v, float):
        return "n/a" if v != v else format(v, floatfmt)
    return "" if v is None else str(v)


def markdown_table(header: Sequence, rows: Sequence[Sequence], floatfmt: str = ".4f") -> str:
    """A GitHub markdown table (floats formatted with ``floatfmt``, NaN as n/a)."""
    lines = ["| " + " | ".join(_cell(h, floatfmt) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(v, floatfmt) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def text_table(header: Sequence, rows: Sequence[Sequence], floatfmt: str = ".4f") -> str:
    """Columns padded to their widest cell, a dashed line under the header (for terminals and logs)."""
    cells = [[_cell(v, floatfmt) for v in r] for r in [header, *rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown(df, floatfmt: str = ".4f") -> str:
    """A pandas DataFrame (index included) as a markdown table."""
    header = [str(df.index.name or "")] + [str(c) for c in df.columns]
    return markdown_table(header, [[i, *row] for i, row in zip(df.index, df.itertuples(index=False))], floatfmt)
