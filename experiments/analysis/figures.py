"""The report's figures (PNG and PDF), each titled with the model, limit and token policy:

- ``<name>``: average accuracy vs the sparsity measured during the evaluation, and vs effective GFLOPs per token
  (with WINA's rotations); error bars: the record's own 95% bootstrap CI (documents resampled within each task);
- ``<name>_tasks``: per task, headline accuracy vs measured sparsity (small multiples);
- ``<name>_diff``: each row's average minus its reference row's, with the paired 95% bootstrap CI.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from experiments.analysis.paired import AVERAGE


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _colors(methods) -> dict:
    cycle = _pyplot().rcParams["axes.prop_cycle"].by_key()["color"]
    return {"dense": "k", **{m: cycle[k % len(cycle)] for k, m in enumerate(sorted(set(methods) - {"dense"}))}}


def _save(fig, path: Path) -> list[Path]:
    paths = [path.with_name(f"{path.name}.{ext}") for ext in ("png", "pdf")]
    for p in paths:
        fig.savefig(p, dpi=150, bbox_inches="tight")
    _pyplot().close(fig)
    return paths


def _legend(fig, axes) -> None:
    """One legend for the figure, right of the panels, from every panel's labels."""
    labelled = {}
    for ax in np.ravel(axes):
        for h, label in zip(*ax.get_legend_handles_labels()):
            labelled.setdefault(label, h)
    labels = sorted(labelled, key=lambda label: (not label.startswith("dense"), label))
    fig.legend([labelled[k] for k in labels], labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)


def _errors(values: pd.Series, intervals: list) -> np.ndarray | None:
    """Asymmetric error bars (2 x n) from intervals in [0, 1] around values in %; None without any interval."""
    if all(iv is None for iv in intervals):
        return None
    low = [np.nan if iv is None else v - 100 * iv.low for v, iv in zip(values, intervals)]
    high = [np.nan if iv is None else 100 * iv.high - v for v, iv in zip(values, intervals)]
    return np.array([low, high])


def _dense_line(ax, dense: pd.DataFrame, column: str, own: dict) -> None:
    """The dense model's value as a dashed line, its CI as a band."""
    if dense.empty or dense[column].isna().all():
        return
    i = dense.index[-1]
    ax.axhline(dense.at[i, column], color="k", ls="--", lw=1, label="dense")
    if column == "average" and i in own:
        ax.axhspan(100 * own[i].low, 100 * own[i].high, color="k", alpha=0.08, lw=0, label="dense 95% CI")


def accuracy_figure(df: pd.DataFrame, own: dict, out: Path, title: str) -> list[Path]:
    plt = _pyplot()
    done = df[df["status"] == "complete"]
    colors = _colors(df["method"])
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
    for ax in axes:
        _dense_line(ax, done[done["method"] == "dense"], "average", own)
    for method, g in done[done["method"] != "dense"].groupby("method"):
        g = g.sort_values("sparsity")
        err = _errors(g["average"], [own.get(i) for i in g.index])
        x = (100 * g["measured"].fillna(g["sparsity"]), g["gflops_with_rotations"].fillna(g["gflops_paper"]))
        for ax, xs in zip(axes, x):
            ax.errorbar(xs, g["average"], yerr=err, marker="o", capsize=3, color=colors[method], label=method)
    axes[0].set(xlabel="sparsity measured during evaluation (%)", ylabel="average accuracy (%)")
    axes[1].set(xlabel="effective GFLOPs per token (paper convention + WINA's rotations)")
    axes[1].xaxis.set_major_locator(plt.MaxNLocator(5))  # no offset text: tiny models' counts are ~1e-4
    axes[1].xaxis.set_major_formatter(plt.FormatStrFormatter("%.3g"))
    for ax in axes:
        ax.grid(alpha=0.3)
    _legend(fig, axes)
    bars = ("error bars: the record's 95% bootstrap CI (documents resampled within each task)" if own
            else "no error bars: no record has per-document outcomes")
    fig.suptitle(f"{title}\n{bars}", fontsize=10)
    fig.tight_layout()
    return _save(fig, out)


def task_figure(df: pd.DataFrame, tasks: list[str], out: Path, title: str) -> list[Path]:
    plt = _pyplot()
    done = df[df["status"] == "complete"]
    colors = _colors(df["method"])
    ncols = min(4, len(tasks))
    nrows = -(-len(tasks) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 2.8 * nrows), squeeze=False)
    for ax, task in zip(axes.flat, tasks):
        _dense_line(ax, done[done["method"] == "dense"], task, {})
        for method, g in done[done["method"] != "dense"].groupby("method"):
            g = g.sort_values("sparsity")
            ax.plot(100 * g["measured"].fillna(g["sparsity"]), g[task], marker="o", ms=4, color=colors[method],
                    label=method)
        ax.set_title(task, fontsize=9)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=8)
    for ax in axes.flat[len(tasks):]:
        ax.set_visible(False)
    fig.supxlabel("sparsity measured during evaluation (%)", fontsize=9)
    fig.supylabel("headline accuracy (%)", fontsize=9)
    _legend(fig, axes)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, out)


def difference_figure(df: pd.DataFrame, comparisons: dict, reference: str, out: Path, title: str) -> list[Path]:
    """Nothing (no file) where no row has a paired comparison."""
    rows = [(i, c.intervals[AVERAGE]) for i, c in comparisons.items() if c.intervals]
    if not rows:
        return []
    plt = _pyplot()
    colors = _colors(df["method"])
    targets = sorted({df.at[i, "sparsity"] for i, _ in rows})
    fig, ax = plt.subplots(figsize=(max(5.0, 1.6 * len(targets) + 3), 3.8))
    for k, target in enumerate(targets):  # the methods at one target side by side around its tick
        here = sorted((df.at[i, "method"], iv) for i, iv in rows if df.at[i, "sparsity"] == target)
        width = 0.8 / len(here)
        for j, (method, iv) in enumerate(here):
            ax.errorbar(k + (j - (len(here) - 1) / 2) * width, 100 * iv.value, capsize=3, fmt="o",
                        yerr=[[100 * (iv.value - iv.low)], [100 * (iv.high - iv.value)]], color=colors[method],
                        label=method)
    ax.axhline(0, color="k", lw=1)
    ax.set_xticks(range(len(targets)), [f"{t:.2f}" for t in targets])
    ax.set(xlabel="target sparsity", ylabel=f"average minus {reference} (pp)")
    ax.grid(alpha=0.3, axis="y")
    _legend(fig, ax)
    fig.suptitle(f"{title}\nerror bars: paired 95% bootstrap CI vs {reference}, on the documents both evaluated",
                 fontsize=10)
    fig.tight_layout()
    return _save(fig, out)
