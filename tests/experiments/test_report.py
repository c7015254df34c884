import json

import pandas as pd

from experiments.report import accuracy_table, load_records, write_report


def _record(path, method, sparsity, status="complete", average=0.5, tasks=None):
    path.mkdir(parents=True)
    tasks = tasks if tasks is not None else {"piqa": {"headline": average}}
    rec = {"status": status, "created": f"2026-01-01T00:00:0{len(str(path)) % 10}", "average": average,
           "config": {"method": {"name": method, "label": method}, "sparsity": sparsity, "limit": None},
           "model": {"name": "m"}, "tasks": tasks if status == "complete" else {"piqa": None},
           "sparsity": {"overall": sparsity}, "flops": {"paper_gflops_effective": 1 - sparsity, "ratio": 1 - sparsity}}
    (path / "record.json").write_text(json.dumps(rec))


def test_table_marks_not_reachable_and_not_run(tmp_path):
    _record(tmp_path / "a", "dense", 0.0, average=0.6)
    _record(tmp_path / "b", "wina", 0.5, average=0.55)
    _record(tmp_path / "c", "cats", 0.5, status="not_reachable", average=None)
    (tmp_path / "notes.json").write_text(json.dumps({"something": "else"}))  # not a record: ignored
    df = load_records([tmp_path])
    assert len(df) == 3
    table = accuracy_table(df)
    assert table.loc["0.50", "cats"] == "n/a"
    assert table.loc["0.50", "wina"] == "55.00"
    assert table.loc["0.00", "wina"] == "-"
    md = write_report(df, tmp_path / "out", "t", "cmd")
    text = md.read_text()
    assert "| 0.50 | n/a |" in text and "cmd" in text
    assert (tmp_path / "out" / "t.png").exists() and (tmp_path / "out" / "t.tex").exists()
    assert len(pd.read_csv(tmp_path / "out" / "t.csv")) == 3
