"""``python -m experiments.analysis.approx_error`` writes per-layer, per-projection errors and a figure."""

import pytest

from tests.experiments.harness.runner import error_line, run


@pytest.mark.real
def test_approx_error_command_writes_tables_and_figure(tmp_path):
    proc, _ = run(["model=tiny-random", "sparsity=0.5", "methods=[wina,teal]", 'method_overrides=["allocation=uniform"]',
                   "eval_samples=2", "calibration.n_samples=4", "calibration.seq_len=64", f"out={tmp_path}"], tmp_path,
                  module="experiments.analysis.approx_error")
    assert proc.returncode == 0, proc.stderr[-3000:]
    import pandas as pd

    df = pd.read_csv(tmp_path / "tiny-random_s0.5_dense_allocation-uniform.csv")
    assert set(df["method"]) == {"wina", "teal"} and len(df) == 2 * 2 * 7
    assert ((df["rel_error"] >= 0) & (df["rel_error"] < 2)).all() and (df["rel_error"] > 0).any()
    assert (tmp_path / "tiny-random_s0.5_dense_allocation-uniform.png").exists()


def test_approx_error_refuses_an_unknown_method(tmp_path):
    proc, _ = run(["model=tiny-random", "methods=[wina,magic]"], tmp_path, module="experiments.analysis.approx_error")
    assert proc.returncode == 2 and error_line(proc).startswith("error: methods: 'magic' is not a sparsity method")
