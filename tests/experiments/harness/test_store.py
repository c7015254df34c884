"""The results store and in-process sweeps: complete jobs are skipped, ``force`` re-runs, a corrupt record is re-run,
a killed sweep resumes to the same records, a dense job after a sparse one equals a fresh dense job, and a later
job of a sweep builds no lm-eval requests again."""

import gzip
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from experiments.harness.record import RunRecord, read_outcomes
from tests.experiments.harness.runner import ROOT, record_file, run

pytestmark = pytest.mark.real  # the tasks read the real benchmark data

TINY = ["model=tiny-random", "tasks.names=[piqa,winogrande]", "limit=6"]
SWEEP = ["--multirun", *TINY, "method=wina,dense,teal-topk", "sparsity=0.5,0.25", "++method.allocation=uniform"]


def _sweep(store, extra=(), popen=False):
    cmd = [sys.executable, "run.py", *SWEEP, f"store={store}", f"hydra.sweep.dir={store.parent / 'hydra'}", *extra]
    if popen:
        return subprocess.Popen(cmd, cwd=ROOT, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                start_new_session=True)
    return subprocess.run(cmd, cwd=ROOT, text=True, capture_output=True, timeout=900)


def _outcomes(path) -> tuple[list, list]:
    """A record's per-document outcomes (metric values, exactly) and, apart, the log-likelihoods behind them: two CPU
    processes may sum a continuation's log-probabilities in another order under load (the last bits differ)."""
    rows = read_outcomes(path)
    return [{k: v for k, v in r.items() if k != "resps"} for r in rows], [r["resps"] for r in rows]


def _flat(rs: list) -> list:
    return [x for choice in rs for x in (choice if isinstance(choice, list) else [choice])]


def _same_resps(a: list, b: list) -> bool:
    return pytest.approx([x for r in a for x in _flat(r)], rel=1e-5) == [x for r in b for x in _flat(r)]


def _docs_differing(a: list, b: list) -> list[int]:
    """The documents (row indices) whose log-likelihoods differ beyond float32 summation noise."""
    assert len(a) == len(b)
    return [i for i, (x, y) in enumerate(zip(a, b)) if pytest.approx(_flat(x), rel=1e-5) != _flat(y)]


def _results(store) -> tuple[dict, dict]:
    """What each record says, less what differs between two runs of the same job (time, command, paths); and the
    log-likelihoods of its documents."""
    out, resps = {}, {}
    for path in sorted(store.rglob("record.json")):
        r = RunRecord.read(path)
        rows, resps[str(path.relative_to(store))] = _outcomes(path)
        out[str(path.relative_to(store))] = (r.lm_eval_results, r.tasks, r.sparsity, r.flops, rows)
    return out, resps


def test_a_complete_job_is_skipped_and_force_reruns_it(tmp_path):
    proc, _ = run(TINY, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    first = RunRecord.read(record_file(tmp_path))
    proc, _ = run(TINY, tmp_path)
    assert proc.returncode == 0 and "skip: tiny-random dense sparsity=0: its complete record exists" in proc.stdout
    assert "Running loglikelihood" not in proc.stderr
    assert RunRecord.read(record_file(tmp_path)).created == first.created
    time.sleep(1.1)  # records carry their creation time in seconds
    proc, _ = run([*TINY, "force=true"], tmp_path)
    assert proc.returncode == 0 and "skip:" not in proc.stdout
    again = RunRecord.read(record_file(tmp_path))
    assert again.created != first.created and again.key == first.key and again.lm_eval_results == first.lm_eval_results


@pytest.mark.parametrize("damage", ["truncate", "drop_outcomes"])
def test_a_corrupt_record_is_reported_and_run_again(tmp_path, damage):
    proc, _ = run(TINY, tmp_path)
    path = record_file(tmp_path)
    good = RunRecord.read(path)
    if damage == "truncate":
        path.write_text(path.read_text()[:200])
    else:
        (path.parent / good.outcomes).unlink()
    proc, _ = run(TINY, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "warning:" in proc.stderr and "running the job again" in proc.stderr and "skip:" not in proc.stdout
    assert RunRecord.read(path).lm_eval_results == good.lm_eval_results and read_outcomes(path)


def test_dense_after_sparse_jobs_in_one_process_equals_a_fresh_dense_run(tmp_path):
    """The basic launcher runs a sweep in one process on one loaded model: WINA (which rotates the weights) and
    TEAL-topk run first, then dense; its record (per-document log-likelihoods included) equals a fresh process's."""
    proc = _sweep(tmp_path / "sweep" / "store")
    assert proc.returncode == 0, proc.stderr[-3000:]
    fresh, _ = run(TINY, tmp_path)
    assert fresh.returncode == 0
    in_sweep = sorted((tmp_path / "sweep" / "store").rglob("dense/*/record.json"))
    assert len(in_sweep) == 1  # dense at 0.5 and 0.25: one record
    a, b = RunRecord.read(in_sweep[0]), RunRecord.read(record_file(tmp_path))
    assert a.lm_eval_results == b.lm_eval_results and a.key == b.key
    (rows_a, resps_a), (rows_b, resps_b) = _outcomes(in_sweep[0]), _outcomes(record_file(tmp_path))
    assert rows_a == rows_b and all(resps_a) and _same_resps(resps_a, resps_b)
    # a later job of the sweep reuses lm-eval's requests and the tokenization: it builds none
    later = [RunRecord.read(p) for p in (tmp_path / "sweep" / "store").rglob("record.json")]
    built = [r for r in later if "lm_eval_build_requests" in r.stage_seconds]
    assert len(built) == 1 and len(later) == 5
    assert "sweep: 6 jobs, 5 records; 0 already in the store" in proc.stdout
    assert "sweep: 5/5 records in the store (5 made by this sweep)" in proc.stdout


def test_a_killed_sweep_resumes_with_only_the_missing_jobs_and_the_same_records(tmp_path):
    whole = tmp_path / "whole" / "store"
    assert _sweep(whole).returncode == 0
    store = tmp_path / "killed" / "store"
    proc = _sweep(store, popen=True)
    deadline = time.time() + 600
    while not list(store.rglob("record.json")) and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # mid-sweep: the first record is written, the next job is running
    proc.wait()
    done = len(list(store.rglob("record.json")))
    assert 1 <= done < 5
    resumed = _sweep(store)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"{done} already in the store (skipped), {5 - done} to run" in resumed.stdout
    assert resumed.stdout.count("skip:") >= done
    (got, got_resps), (want, want_resps) = _results(store), _results(whole)
    assert got == want and got_resps.keys() == want_resps.keys()
    # A sparse job's top-k keeps a channel or its near-tied neighbour as the last bit of a CPU sum falls in this
    # process or that one (seen once in CI: metric values equal, one record's log-likelihoods not): a sparse record
    # may differ from the uninterrupted sweep's in one document, never in more; the dense record in none.
    differing = {k: _docs_differing(got_resps[k], want_resps[k]) for k in want_resps}
    assert all(len(d) <= (0 if "/dense/" in k else 1) for k, d in differing.items()), differing


def test_scoring_shared_is_its_own_record_and_hflm_keeps_the_earlier_keys(tmp_path):
    """``scoring=shared`` runs end to end into a record of its own key; ``scoring=hflm`` (the default) has the key a
    config without the option had, so stores written before it stay valid."""
    from experiments.harness import store as st
    from experiments.harness.schema import compose_config
    from experiments.harness.sparsity import method_config

    cfgs = {s: compose_config([*TINY, "method=dense", f"scoring={s}"]) for s in ("hflm", "shared")}
    idents = {s: st.identity(c, method_config(c)) for s, c in cfgs.items()}
    assert "scoring" not in idents["hflm"] and idents["shared"]["scoring"] == "shared"
    assert {k: v for k, v in idents["shared"].items() if k != "scoring"} == idents["hflm"]
    assert st.key_of(idents["hflm"]) != st.key_of(idents["shared"])
    store = tmp_path / "store"
    for s in ("hflm", "shared"):
        proc, _ = run([*TINY, f"scoring={s}", f"store={store}"], tmp_path)
        assert proc.returncode == 0, proc.stderr[-2000:]
    records = sorted(store.rglob("record.json"))
    assert len(records) == 2
    accs = [RunRecord.read(p).tasks["piqa"].headline for p in records]
    assert accs[0] == accs[1]  # dense: the same documents scored the same way (no dense prefix to differ)
