import copy

import pytest

from experiments.analysis.compare_records import differences, main
from experiments.harness.record import RunRecord, TaskResult


def _rec(acc):
    task = TaskResult("piqa", {"acc_norm,none": acc, "acc,none": 0.5}, "acc_norm,none", acc, 0.01, 10, 10)
    base = dict(created="t", command="c", config={"method": {"name": "wina"}, "sparsity": 0.5}, model={"name": "m"},
                data={}, versions={})
    return RunRecord.build(base, status="complete", tasks={"piqa": task}, wall_time_s=1.0)


def test_identical_results_and_one_changed_metric(tmp_path, capsys):
    a = _rec(0.6)
    b = copy.deepcopy(a)
    b.created, b.wall_time_s = "later", 9.0  # not results
    assert differences(a, b) == []
    c = _rec(0.61)
    assert differences(a, c) == ["average: 0.6 vs 0.61", "piqa.acc_norm,none: 0.6 vs 0.61", "piqa.headline: 0.6 vs 0.61"]
    pa, pc = a.write(tmp_path / "a"), c.write(tmp_path / "c")
    with pytest.raises(SystemExit) as exit_:
        main([str(pa), str(pc)])
    assert exit_.value.code == 1 and "3 differ" in capsys.readouterr().out
