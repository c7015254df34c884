"""Run records under folders -> one pandas row each: the configuration, the headline metric per task (%), their
average, the sparsity measured during evaluation and the FLOPs. The last record wins when a configuration was run
twice."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd

from experiments.harness.record import CorruptRecord, RunRecord

_NOT_TASKS = {"model", "method", "sparsity", "status", "limit", "created", "record", "average", "measured",
              "gflops_dense", "gflops_paper", "gflops_with_rotations", "flops_ratio", "tokens"}


def load_records(folders: list[Path]) -> pd.DataFrame:
    """Every run record (``record.json``, or a copy under another ``*.json`` name) under ``folders``, complete and
    not-reachable ones (half-written runs never leave one); one row per (model, method, sparsity, limit, token
    policy), ``record`` its path."""
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
            row["gflops_dense"] = fl.get("paper_gflops_dense")
            row["gflops_paper"] = fl.get("paper_gflops_effective")
            # records made before the field existed carry the rotations' MACs among their parts
            rotations = fl.get("parts_gmacs", {}).get("transform", 0.0)
            row["gflops_with_rotations"] = fl.get("paper_gflops_effective_with_rotations") or (
                None if row["gflops_paper"] is None else row["gflops_paper"] + rotations)
            row["flops_ratio"] = fl.get("ratio")
            rows.append(row)
    if not rows:
        raise SystemExit(f"error: no run records under {', '.join(map(str, folders))}")
    df = pd.DataFrame(rows).sort_values("created")
    return df.drop_duplicates(["model", "method", "sparsity", "limit", "tokens"], keep="last").reset_index(drop=True)


def task_columns(df: pd.DataFrame) -> list[str]:
    """The columns of ``load_records`` that hold a task's headline, in the records' task order."""
    return [c for c in df.columns if c not in _NOT_TASKS and not c.startswith("measured_")]
