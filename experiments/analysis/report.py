"""Run records -> pandas -> paper-style tables (markdown, LaTeX, CSV) and accuracy/FLOPs figures.

    python -m experiments.analysis.report outputs/ [--out outputs/report] [--name NAME]

Reads every run record (``record.json``, or a copy under another ``*.json`` name) under the given folders (complete and not-reachable ones; half-written runs never
leave one). One row per (model, method, sparsity): the headline metric per task, their average, the sparsity
measured during evaluation and the effective FLOPs. The last record wins when a configuration was run twice.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

from experiments.harness.record import CorruptRecord, RunRecord
from experiments.harness.tables import markdown


def load_records(folders: list[Path]) -> pd.DataFrame:
    rows = []
    for folder in folders:
        for path in sorted(Path(folder).rglob("*.json")):
            try:
                raw = json.loads(path.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError):
                raw = None
            if not isinstance(raw, dict) or "status" not in raw or "config" not in raw:
                continue  # not a run record (a manifest, a figure's data, ...)
            try:
                r = RunRecord.from_dict(raw)
            except CorruptRecord as exc:
                print(f"warning: skipping corrupt record {path}: {exc}", file=sys.stderr)
                continue
            row = {"model": r.model["name"], "method": r.label, "sparsity": float(r.config["sparsity"]),
                   "status": r.status, "limit": r.config.get("limit"), "created": r.created, "record": str(path),
                   "tokens": (r.config.get("tokens") or {}).get("name", "all")}  # records before token policies: all
            for task, t in r.tasks.items():
                row[task] = None if t is None or t.headline is None else 100 * t.headline
            row["average"] = None if r.average is None else 100 * r.average
            row["measured"] = (r.sparsity or {}).get("overall")
            for kind, v in ((r.sparsity or {}).get("per_kind") or {}).items():
                row[f"measured_{kind}"] = v
            fl = r.flops or {}
            row["gflops_paper"] = fl.get("paper_gflops_effective")
            # records made before the field existed carry the rotations' MACs among their parts
            row["gflops_with_rotations"] = fl.get("paper_gflops_effective_with_rotations") or (
                None if row["gflops_paper"] is None else row["gflops_paper"] + fl.get("parts_gmacs", {}).get("transform", 0.0))
            row["flops_ratio"] = fl.get("ratio")
            rows.append(row)
    if not rows:
        raise SystemExit(f"error: no run records under {', '.join(map(str, folders))}")
    df = pd.DataFrame(rows).sort_values("created")
    return df.drop_duplicates(["model", "method", "sparsity", "limit", "tokens"], keep="last").reset_index(drop=True)


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


def task_table(df: pd.DataFrame, tasks: list[str]) -> pd.DataFrame:
    cols = [t for t in tasks if t in df.columns]
    out = df.set_index(["method", "sparsity"])[cols + ["average", "measured", "gflops_paper",
                                                       "gflops_with_rotations"]].sort_index()
    out.index = [f"{m} @ {s:.2f}" for m, s in out.index]
    out.index.name = "method @ target"
    return out


def projection_table(df: pd.DataFrame) -> pd.DataFrame:
    """Sparsity measured on the gated positions, overall and per projection kind, by method and target."""
    cols = ["measured"] + [c for c in df.columns if c.startswith("measured_")]
    out = df[df["status"] == "complete"].set_index(["method", "sparsity"])[cols].dropna(how="all").sort_index()
    out.columns = ["overall"] + [c.removeprefix("measured_") for c in cols[1:]]
    out.index = [f"{m} @ {s:.2f}" for m, s in out.index]
    out.index.name = "method @ target"
    return out


def plot(df: pd.DataFrame, out: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
    for method, g in df[df["status"] == "complete"].groupby("method"):
        g = g.sort_values("sparsity")
        if method == "dense":
            for ax in axes:
                ax.axhline(g["average"].iloc[-1], color="k", ls="--", lw=1, label="dense")
            continue
        measured = g["measured"].fillna(g["sparsity"])
        axes[0].plot(measured * 100, g["average"], marker="o", label=method)
        axes[1].plot(g["gflops_with_rotations"].fillna(g["gflops_paper"]), g["average"], marker="o", label=method)
    axes[0].set(xlabel="sparsity measured during evaluation (%)", ylabel="average accuracy (%)")
    axes[1].set(xlabel="effective GMACs per token (linear layers + WINA's rotations)", ylabel="average accuracy (%)")
    for ax in axes:
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center right", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0, 0.86, 1))
    for ext in ("png", "pdf"):
        fig.savefig(out.with_suffix(f".{ext}"), dpi=150)


def write_report(df: pd.DataFrame, out_dir: Path, name: str, command: str) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    meta = {"model", "method", "sparsity", "status", "limit", "created", "record", "average", "measured",
            "gflops_paper", "gflops_with_rotations", "flops_ratio", "tokens"}
    tasks = [c for c in df.columns if c not in meta and not c.startswith("measured_")]
    df.drop(columns=["record"]).to_csv(out_dir / f"{name}.csv", index=False)
    acc = accuracy_table(df)
    per_task = task_table(df, tasks)
    (out_dir / f"{name}.tex").write_text(per_task.to_latex(float_format="%.2f", na_rep="n/a"))
    text = [f"# {name}", "", f"Command: `{command}`", "",
            "Average headline accuracy (%) by target sparsity, the sparsity measured during the evaluation in "
            "brackets (n/a: the method cannot reach that sparsity; -: not run):", "",
            markdown(acc, ".2f"), "", "Per task (headline metric, %), measured sparsity, and effective GMACs per token "
            "in the WINA paper's Table 5 convention (linear layers only) without and with WINA's rotations "
            "(2 d^2 per layer):", "",
            markdown(per_task, ".3f"), "", "Sparsity measured on the gated positions, per projection:", "",
            markdown(projection_table(df), ".3f"), ""]
    policies = sorted({str(x) for x in df["tokens"]})
    text.append(f"Token policy (which positions are gated): {', '.join(policies)}"
                + (" -- this table MIXES token policies." if len(policies) > 1 else "."))
    limits = sorted({str(x) for x in df["limit"]})
    text.append(f"Document limit per task: {', '.join(limits)} (None = full sets).")
    (out_dir / f"{name}.md").write_text("\n".join(text) + "\n")
    plot(df, out_dir / name, name)
    return out_dir / f"{name}.md"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folders", nargs="+", type=Path, help="folders searched for record.json files")
    ap.add_argument("--out", type=Path, default=Path("outputs/report"), help="folder for the tables and figures")
    ap.add_argument("--name", default="comparison", help="file stem; one report per (model, limit, token policy) "
                                                         "gets the group appended when the records hold several")
    ap.add_argument("--command", default=None, help="the command that produced the records (written into the table)")
    args = ap.parse_args(argv)
    df = load_records(args.folders)
    command = args.command or "python -m experiments.analysis.report " + " ".join(sys.argv[1:] if argv is None else argv)
    groups = list(df.groupby(["model", "limit", "tokens"], dropna=False))
    for (model, limit, tokens), part in groups:  # never merged: one table per model and setting
        limit = "all" if limit is None or limit != limit else int(limit)
        name = args.name if len(groups) == 1 else f"{args.name}_{model}_limit-{limit}_{tokens}"
        print(write_report(part.reset_index(drop=True), args.out, name, command).read_text())


if __name__ == "__main__":
    main()
