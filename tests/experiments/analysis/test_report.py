import json
from pathlib import Path

import numpy as np
import pandas as pd

from experiments.analysis.report import accuracy_table, load_records, write_report
from experiments.harness.record import RunRecord, TaskResult

ROOT = Path(__file__).resolve().parents[3]


HEADLINE = {"piqa": "acc_norm", "arc_easy": "acc_norm", "winogrande": "acc"}  # the metric each task's rows carry


def _record(path, method, sparsity, status="complete", average=0.5, created="2026-01-01T00:00:00", tokens="wina",
            model="m", correct=None, outcomes=True):
    """A run record in ``path``. With ``correct`` ({task: 0/1 per document}) its tasks and headlines come from
    those documents, written as its outcomes unless ``outcomes`` is false; else one task at ``average``."""
    if status != "complete":
        tasks = {"piqa": None}
    elif correct is None:
        tasks = {"piqa": TaskResult("piqa", {"acc_norm,none": average}, "acc_norm,none", average, 0.01, 10, 10)}
    else:
        tasks = {t: TaskResult(t, {f"{HEADLINE[t]},none": float(np.mean(c))}, f"{HEADLINE[t]},none",
                               float(np.mean(c)), 0.01, len(c), len(c)) for t, c in correct.items()}
    base = dict(created=created, command="test", config={"method": {"name": method, "label": method},
                                                         "sparsity": sparsity, "limit": None,
                                                         "tokens": {"name": tokens}},
                model={"name": model}, data={}, versions={})
    rec = RunRecord.build(base, status=status, tasks=tasks, wall_time_s=1.0,
                          reason=None if status == "complete" else "cannot")
    rec.sparsity = {"overall": sparsity}
    rec.flops = {"paper_gflops_dense": 1.0, "paper_gflops_effective": 1 - sparsity, "ratio": 1 - sparsity,
                 "paper_gflops_effective_with_rotations": 1.1 - sparsity}
    if correct is not None and outcomes:
        rec.write_outcomes(path, [{"task": t, "doc_id": k, "filter": "none", HEADLINE[t]: float(v)}
                                  for t, c in correct.items() for k, v in enumerate(c)])
    rec.write(path)


def test_table_marks_not_reachable_and_not_run(tmp_path):
    _record(tmp_path / "a", "dense", 0.0, average=0.6)
    _record(tmp_path / "b", "wina", 0.5, average=0.55)
    _record(tmp_path / "c", "cats", 0.5, status="not_reachable", average=None)
    (tmp_path / "notes.json").write_text(json.dumps({"something": "else"}))  # not a record: ignored
    df = load_records([tmp_path])
    assert len(df) == 3
    table = accuracy_table(df)
    assert table.loc["0.50", "cats"] == "n/a"
    assert table.loc["0.50", "wina"] == "55.00 (0.500)"  # measured next to the target
    assert table.loc["0.00", "wina"] == "-"
    md = write_report(df, tmp_path / "out", "t", "cmd")
    text = md.read_text()
    assert "| 0.50 | n/a |" in text and "cmd" in text and "MIXES" not in text
    assert (tmp_path / "out" / "t.png").exists() and (tmp_path / "out" / "t.tex").exists()
    assert len(pd.read_csv(tmp_path / "out" / "t.csv")) == 3


def test_a_corrupt_record_is_reported_and_never_a_row(tmp_path, capsys):
    _record(tmp_path / "a", "wina", 0.5, average=0.55)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "record.json").write_text(json.dumps({"status": "complete", "config": {}, "tasks": {}}))
    df = load_records([tmp_path])
    assert list(df["method"]) == ["wina"]
    assert "skipping corrupt record" in capsys.readouterr().err


def test_committed_records_still_load():
    df = load_records([ROOT / "results" / "comparison" / "h100_fullsets"])
    wina65 = df[(df["method"] == "wina") & (df["sparsity"] == 0.65)]
    assert len(wina65) == 1 and round(float(wina65["average"].iloc[0]), 2) == 41.56


def test_a_table_that_mixes_token_policies_says_so(tmp_path):
    _record(tmp_path / "a", "wina", 0.5, average=0.55)
    _record(tmp_path / "b", "teal", 0.5, average=0.54, tokens="teal")
    text = write_report(load_records([tmp_path]), tmp_path / "out", "t", "cmd").read_text()
    assert "Token policy (which positions are gated): teal, wina -- this table MIXES token policies." in text


def test_records_of_two_models_give_two_reports(tmp_path):
    from experiments.analysis.report import main

    _record(tmp_path / "a", "wina", 0.5, average=0.55, model="m1")
    _record(tmp_path / "b", "wina", 0.5, average=0.45, model="m2")
    main([str(tmp_path), "--out", str(tmp_path / "out"), "--name", "r"])
    assert sorted(p.name for p in (tmp_path / "out").glob("*.md")) == ["r_m1_limit-all_wina.md", "r_m2_limit-all_wina.md"]
    assert "45.00" in (tmp_path / "out" / "r_m2_limit-all_wina.md").read_text()
