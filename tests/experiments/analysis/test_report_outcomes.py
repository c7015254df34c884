"""Which per-document rows make a task's headline outcomes, and how two records are joined on their documents."""

import numpy as np

from experiments.analysis.outcomes import aligned, headline_outcomes
from experiments.harness.record import RunRecord, TaskResult


def _write(path, tasks: dict, rows: list[dict] | None) -> None:
    base = dict(created="2026-01-01T00:00:00", command="test", config={"method": {"name": "dense"}, "sparsity": 0.0},
                model={"name": "m"}, data={}, versions={})
    rec = RunRecord.build(base, status="complete", tasks=tasks, wall_time_s=1.0)
    if rows is not None:
        rec.write_outcomes(path, rows)
    rec.write(path)


def test_headline_filter_and_group_leaves(tmp_path):
    tasks = {"gsm8k": TaskResult("gsm8k_cot", {}, "exact_match,flexible-extract", 0.5, None, 2, 2),
             "mmlu": TaskResult("mmlu", {}, "acc,none", 2 / 3, None, 3, 3)}
    rows = [{"task": "gsm8k_cot", "doc_id": 0, "filter": "strict-match", "exact_match": 0.0},
            {"task": "gsm8k_cot", "doc_id": 0, "filter": "flexible-extract", "exact_match": 1.0},
            {"task": "gsm8k_cot", "doc_id": 1, "filter": "strict-match", "exact_match": 1.0},
            {"task": "gsm8k_cot", "doc_id": 1, "filter": "flexible-extract", "exact_match": 0.0},
            {"task": "mmlu_anatomy", "doc_id": 0, "filter": "none", "acc": 1.0},
            {"task": "mmlu_virology", "doc_id": 0, "filter": "none", "acc": 0.0},  # same doc_id, another subject
            {"task": "mmlu_virology", "doc_id": 1, "filter": "none", "acc": 1.0}]
    _write(tmp_path, tasks, rows)
    out = headline_outcomes(tmp_path / "record.json")
    assert out["gsm8k"] == {("gsm8k_cot", 0, "flexible-extract"): 1.0, ("gsm8k_cot", 1, "flexible-extract"): 0.0}
    assert sorted(out["mmlu"].values()) == [0.0, 1.0, 1.0] and np.mean(list(out["mmlu"].values())) == 2 / 3


def test_a_task_whose_rows_do_not_count_its_documents_is_left_out(tmp_path, capsys):
    tasks = {"piqa": TaskResult("piqa", {}, "acc_norm,none", 1.0, None, 2, 2)}
    _write(tmp_path, tasks, [{"task": "piqa", "doc_id": 0, "filter": "none", "acc_norm": 1.0}])
    assert headline_outcomes(tmp_path / "record.json") == {}
    assert "1 outcome rows for piqa, 2 documents evaluated" in capsys.readouterr().err


def test_records_without_an_outcomes_file(tmp_path):
    tasks = {"piqa": TaskResult("piqa", {}, "acc_norm,none", 1.0, None, 1, 1)}
    _write(tmp_path / "none", tasks, None)
    assert headline_outcomes(tmp_path / "none" / "record.json") is None
    _write(tmp_path / "gone", tasks, [{"task": "piqa", "doc_id": 0, "filter": "none", "acc_norm": 1.0}])
    (tmp_path / "gone" / "outcomes.jsonl.gz").unlink()  # a record copied without its outcomes
    assert headline_outcomes(tmp_path / "gone" / "record.json") is None


def test_aligned_keeps_the_documents_and_tasks_both_evaluated():
    a = {"piqa": {("piqa", 0, "none"): 1.0, ("piqa", 1, "none"): 0.0, ("piqa", 2, "none"): 0.5},
         "boolq": {("boolq", 0, "none"): 1.0}}
    b = {"piqa": {("piqa", 2, "none"): 0.0, ("piqa", 0, "none"): 0.25}, "sciq": {("sciq", 0, "none"): 1.0}}
    x, y = aligned(a, b)
    assert list(x) == ["piqa"] and list(x["piqa"]) == [1.0, 0.5] and list(y["piqa"]) == [0.25, 0.0]
