import json

import pytest

from experiments.harness.record import CorruptRecord, RunRecord, TaskResult, format_table


def _record():
    t = TaskResult("piqa", {"acc_norm,none": 0.6, "acc_norm_stderr,none": 0.02}, "acc_norm,none", 0.6, 0.02, 50, 1838)
    base = dict(created="now", command="python run.py", config={"method": {"name": "dense"}, "sparsity": 0.0,
                                                                  "limit": 50}, model={"name": "m"}, data={}, versions={})
    return RunRecord.build(base, status="complete", tasks={"piqa": t, "boolq": t}, wall_time_s=1.234)


def test_round_trip_and_average(tmp_path):
    r = _record()
    assert r.average == pytest.approx(0.6) and r.wall_time_s == 1.23
    path = r.write(tmp_path)
    assert RunRecord.read(path) == r
    assert "piqa" in format_table(r) and "limit=50" in format_table(r)


@pytest.mark.parametrize("mutate,needle", [
    (lambda d: d.pop("tasks"), "missing tasks"),
    (lambda d: d.update(status="half"), "status 'half'"),
    (lambda d: d["tasks"]["piqa"].update(bogus=1), "a task entry does not parse"),
])
def test_corrupt_records_are_refused(tmp_path, mutate, needle):
    d = json.loads(_record().write(tmp_path).read_text())
    mutate(d)
    (tmp_path / "bad.json").write_text(json.dumps(d))
    with pytest.raises(CorruptRecord, match=needle):
        RunRecord.read(tmp_path / "bad.json")
    (tmp_path / "cut.json").write_text(json.dumps(d)[:40])
    with pytest.raises(CorruptRecord, match="not JSON"):
        RunRecord.read(tmp_path / "cut.json")
