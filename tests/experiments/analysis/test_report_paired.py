"""The report's paper table, differences and FLOPs tables and figures, on a store of records with outcomes."""

import numpy as np
import pandas as pd
import pytest

from experiments.analysis.report import load_records, main, write_report
from tests.experiments.analysis.test_report import _record

N = 200  # documents per task


def _flip(x, right_to_wrong=0, wrong_to_right=0):
    """``x`` with that many of its right documents made wrong and of its wrong ones made right."""
    y = x.copy()
    y[np.flatnonzero(x == 1)[:right_to_wrong]] = 0
    y[np.flatnonzero(x == 0)[:wrong_to_right]] = 1
    return y


@pytest.fixture
def store(tmp_path):
    """dense; wina@0.5 clearly worse (30 of 200 documents lost per task); teal@0.5 even with dense (3 lost, 3 won);
    wina@0.25 one document lost; cats@0.5 not reachable; rsparse@0.5 without outcomes."""
    rng = np.random.default_rng(0)
    dense = {t: (rng.random(N) < p).astype(int) for t, p in (("piqa", 0.65), ("arc_easy", 0.55),
                                                              ("winogrande", 0.5))}
    runs = {"dense": (0.0, dense),
            "wina50": (0.5, {t: _flip(x, right_to_wrong=30) for t, x in dense.items()}),
            "teal50": (0.5, {t: _flip(x, 3, 3) for t, x in dense.items()}),
            "wina25": (0.25, {t: _flip(x, right_to_wrong=1) for t, x in dense.items()}),
            "rsparse50": (0.5, {t: _flip(x, right_to_wrong=10) for t, x in dense.items()})}
    for folder, (sparsity, correct) in runs.items():
        _record(tmp_path / "runs" / folder, folder.rstrip("0123456789"), sparsity, correct=correct,
                outcomes=folder != "rsparse50")
    _record(tmp_path / "runs" / "cats50", "cats", 0.5, status="not_reachable")
    return tmp_path, dense


def _paper_rows(md: str) -> list[list[str]]:
    """The paper table's body rows (the first table of the report) as cells."""
    block = md.split("## The paper's table")[1].split("\n\n")[1]
    return [[c.strip() for c in line.strip("|").split("|")] for line in block.splitlines()[2:]]


def test_paper_table_reference_on_top_bold_best_and_ci_marks(store):
    tmp, dense = store
    md = write_report(load_records([tmp / "runs"]), tmp / "out", "t", "cmd", n_boot=2000).read_text()
    rows = _paper_rows(md)
    assert [(r[0], r[1]) for r in rows] == [("0.00", "dense"), ("0.25", "wina"), ("0.50", "cats"),
                                            ("0.50", "rsparse"), ("0.50", "teal"), ("0.50", "wina")]
    by = {(r[0], r[1]): r for r in rows}
    assert by[("0.50", "cats")][2:] == ["n/a"] * 4
    # average: wina@0.5 loses 15 points a task (CI far from 0); teal@0.5 and wina@0.25 cover 0
    assert by[("0.50", "wina")][5].endswith("]") and "†" not in by[("0.50", "wina")][5]
    assert by[("0.50", "teal")][5].endswith("]†") and by[("0.25", "wina")][5].endswith("]†")
    assert by[("0.50", "rsparse")][5].endswith("(no CI)") and by[("0.00", "dense")][5] == f"{_avg(dense):.2f}"
    assert sum("†" in c for r in rows for c in r) == 2
    # bold: at 0.50 teal is the best in every column (it loses nothing on average); alone at 0.00 and 0.25: none
    assert all(c.startswith("**") for c in by[("0.50", "teal")][2:])
    assert not any("**" in c for key, r in by.items() if key != ("0.50", "teal") for c in r)
    lo, hi = map(float, by[("0.50", "wina")][5].split("[")[1].rstrip("]").split(","))
    assert lo < -15 < hi < 0  # the interval is around the -15 points lost


def _avg(correct: dict) -> float:
    return 100 * np.mean([x.mean() for x in correct.values()])


def test_differences_table_counts_and_notes(store):
    tmp, _ = store
    write_report(load_records([tmp / "runs"]), tmp / "out", "t", "cmd", n_boot=500)
    diffs = pd.read_csv(tmp / "out" / "t_differences.csv")
    teal = diffs[(diffs["row"] == "teal @ 0.50") & (diffs["task"] == "piqa")].iloc[0]
    assert (teal["n01"], teal["n10"], teal["diff"], teal["n_docs"]) == (3, 3, 0.0, N)
    assert teal["mcnemar_p"] == pytest.approx(1.0) and teal["reference"] == "dense @ 0.00"
    lost = diffs[(diffs["row"] == "wina @ 0.50") & (diffs["task"] == "piqa")].iloc[0]
    assert (lost["n01"], lost["n10"]) == (0, 30) and lost["mcnemar_p"] == pytest.approx(2 * 0.5 ** 30)
    wina = diffs[(diffs["row"] == "wina @ 0.50") & (diffs["task"] == "average")].iloc[0]
    assert wina["diff"] == pytest.approx(-15.0) and wina["n_docs"] == 3 * N and np.isnan(wina["n01"])
    rsparse = diffs[diffs["row"] == "rsparse @ 0.50"]
    assert len(rsparse) == 1 and rsparse["note"].iloc[0] == "no per-document outcomes for this record"
    assert set(diffs["row"]) == {"wina @ 0.25", "wina @ 0.50", "teal @ 0.50", "rsparse @ 0.50"}  # not dense, cats


def test_latex_has_booktabs_rules_bold_and_marks(store):
    tmp, _ = store
    write_report(load_records([tmp / "runs"]), tmp / "out", "t", "cmd", n_boot=500)
    tex = (tmp / "out" / "t.tex").read_text()
    assert tex.index(r"\toprule") < tex.index(r"\midrule") < tex.index(r"\bottomrule")
    assert r"arc\_easy" in tex and r"\textbf{" in tex and r"$^\dagger$" in tex and "**" not in tex
    assert r"\caption{" in tex and "limit all documents" in tex and "token policy wina" in tex


def test_flops_table_has_both_conventions(store):
    tmp, _ = store
    md = write_report(load_records([tmp / "runs"]), tmp / "out", "t", "cmd", n_boot=500).read_text()
    flops = md.split("## FLOPs")[1].split("\n\n")[2]
    assert "| effective | % of dense | effective with rotations | % of dense, with rotations |" in flops
    assert "| wina @ 0.50 | 0.5 | 1 | 0.5 | 50 | 0.6 | 60 |" in flops


def test_figures_are_written(store):
    tmp, _ = store
    md = write_report(load_records([tmp / "runs"]), tmp / "out", "t", "cmd", n_boot=500).read_text()
    for stem in ("t", "t_tasks", "t_diff"):
        assert (tmp / "out" / f"{stem}.png").stat().st_size > 0 and (tmp / "out" / f"{stem}.pdf").exists()
    assert "Figures: `t.png`, `t_tasks.png`, `t_diff.png` (and PDF)." in md


def test_another_reference_is_compared_at_the_same_sparsity(store):
    tmp, _ = store
    main([str(tmp / "runs"), "--out", str(tmp / "out"), "--name", "r", "--reference", "teal"])
    md = (tmp / "out" / "r.md").read_text()
    rows = _paper_rows(md)
    assert [(r[0], r[1]) for r in rows][2:4] == [("0.50", "teal"), ("0.50", "cats")]  # teal first at 0.50
    diffs = pd.read_csv(tmp / "out" / "r_differences.csv")
    assert set(diffs.loc[diffs["row"] == "wina @ 0.50", "reference"]) == {"teal @ 0.50"}
    # no teal row at 0.25 or at 0: dense and wina@0.25 are not compared, and say so
    assert set(diffs.loc[diffs["row"] == "wina @ 0.25", "note"]) == {"no teal row at this sparsity or at 0"}
    assert rows[0][5].endswith("(no CI)")


def test_two_models_give_two_paper_tables(tmp_path):
    rng = np.random.default_rng(1)
    for model in ("m1", "m2"):
        dense = {"piqa": (rng.random(50) < 0.6).astype(int)}
        _record(tmp_path / model / "dense", "dense", 0.0, model=model, correct=dense)
        _record(tmp_path / model / "wina", "wina", 0.5, model=model, correct={"piqa": _flip(dense["piqa"], 5)})
    main([str(tmp_path), "--out", str(tmp_path / "out"), "--name", "r"])
    for model in ("m1", "m2"):
        md = (tmp_path / "out" / f"r_{model}_limit-all_wina.md").read_text()
        assert [r[1] for r in _paper_rows(md)] == ["dense", "wina"] and f"model {model}," in md
        assert f"model {model}," in (tmp_path / "out" / f"r_{model}_limit-all_wina.tex").read_text()


@pytest.mark.real  # the harness reads the real benchmark data
def test_records_of_real_runs_are_paired_on_their_documents(tmp_path):
    from tests.experiments.harness.runner import run

    for folder, args in (("dense", []), ("wina", ["method=wina", "sparsity=0.5"])):
        proc, _ = run(["model=tiny-random", "tasks=quick", "limit=5", *args], tmp_path / folder)
        assert proc.returncode == 0, proc.stderr[-3000:]
    main([str(tmp_path), "--out", str(tmp_path / "out"), "--name", "r"])
    diffs = pd.read_csv(tmp_path / "out" / "r_differences.csv")
    assert list(diffs["task"]) == ["piqa", "arc_easy", "winogrande", "average"]
    assert list(diffs["n_docs"]) == [5, 5, 5, 15] and diffs["note"].isna().all()
    assert [r[1] for r in _paper_rows((tmp_path / "out" / "r.md").read_text())] == ["dense", "wina"]
