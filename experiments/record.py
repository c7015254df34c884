"""The run record: one JSON per run, written atomically only once the evaluation finished."""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
from importlib import metadata
from pathlib import Path

RECORD_NAME = "record.json"
_PACKAGES = ("torch", "transformers", "lm_eval", "datasets", "hydra-core", "omegaconf", "triton", "gguf")


def package_versions() -> dict:
    out = {"python": platform.python_version()}
    for pkg in _PACKAGES:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def write_record(out_dir: Path, record: dict) -> Path:
    """Write ``record.json`` via a temp file + rename, so a crash never leaves a complete-looking file."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=".record.", suffix=".part")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(record, fh, indent=1, default=str)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, out_dir / RECORD_NAME)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out_dir / RECORD_NAME


def format_table(record: dict) -> str:
    """A readable per-task table with the headline metric, its stderr and the document counts."""
    rows = [("task", "metric", "value", "stderr", "docs")]
    for name, t in record["tasks"].items():
        value = "n/a" if t["headline"] is None else f"{100 * t['headline']:.2f}"
        err = "" if t["headline_stderr"] in (None, "N/A") else f"{100 * float(t['headline_stderr']):.2f}"
        docs = f"{t['n_docs_evaluated']}/{t['n_docs_total']}"
        rows.append((name, t["headline_metric"] or "-", value, err, docs))
    avg = record.get("average")
    rows.append(("average", "headline", "n/a" if avg is None else f"{100 * avg:.2f}", "", ""))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    if record.get("sparsity"):
        sp, fl = record["sparsity"], record["flops"]
        lines.append(f"sparsity: target {sp['target']:.3f}, measured {sp['overall']:.3f} "
                     f"({', '.join(f'{k} {v:.2f}' for k, v in sp['per_kind'].items())})")
        lines.append(f"GFLOPs/token at context {fl['context_len']}: {fl['effective_gflops']:.4f} of "
                     f"{fl['dense_gflops']:.4f} dense ({fl['ratio']:.1%}); paper convention "
                     f"{fl['paper_gflops_effective']:.4f} of {fl['paper_gflops_dense']:.4f}")
    notes = [t["note"] for t in record["tasks"].values() if t.get("note")]
    if record["config"].get("limit") is not None:
        notes.append(f"limit={record['config']['limit']}: a subset of each task, not comparable to full-set numbers.")
    return "\n".join(lines + [f"note: {n}" for n in notes])


def print_summary(record: dict, path: Path) -> None:
    print(format_table(record), file=sys.stdout)
    print(f"record: {path}", file=sys.stdout, flush=True)
