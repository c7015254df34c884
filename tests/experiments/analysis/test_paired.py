"""Paired bootstrap and McNemar's test against cases computed by hand."""

import numpy as np
import pytest

from experiments.analysis.paired import AVERAGE, mcnemar, paired_bootstrap, stratified_bootstrap


def test_mcnemar_six_documents_by_hand():
    a = np.array([0, 0, 0, 0, 0, 1])
    b = np.array([1, 1, 1, 1, 1, 1])
    t = mcnemar(a, b)
    assert (t.n01, t.n10) == (5, 0)  # a wrong and b right on five documents
    assert t.p_value == pytest.approx(2 * 0.5 ** 5)  # 0.0625: two-sided
    assert mcnemar(b, a).n10 == 5


def test_mcnemar_mixed_discordance_by_hand():
    # n01 = 1, n10 = 4: P(X <= 1) for X ~ Bin(5, 1/2) is (1 + 5) / 32; two-sided 12/32
    a = np.array([1, 1, 1, 1, 0, 0, 1])
    b = np.array([0, 0, 0, 0, 1, 0, 1])
    t = mcnemar(a, b)
    assert (t.n01, t.n10, t.p_value) == (1, 4, pytest.approx(12 / 32))


def test_mcnemar_large_counts_match_the_exact_binomial():
    scipy_stats = pytest.importorskip("scipy.stats")
    a = np.r_[np.zeros(900), np.ones(700), np.zeros(3000)]
    b = np.r_[np.ones(900), np.zeros(700), np.zeros(3000)]
    t = mcnemar(a, b)
    assert t.p_value == pytest.approx(scipy_stats.binomtest(900, 1600, 0.5).pvalue, rel=1e-9)


def test_identical_outcomes_give_zero_difference_and_p_one():
    rng = np.random.default_rng(1)
    a = {"piqa": rng.integers(0, 2, 40), "boolq": rng.integers(0, 2, 25)}
    res = paired_bootstrap(a, a, n_boot=500)
    for key in ("piqa", "boolq", AVERAGE):
        assert (res[key].value, res[key].low, res[key].high) == (0.0, 0.0, 0.0)
    assert res[AVERAGE].n_docs == 65
    assert mcnemar(a["piqa"], a["piqa"]).p_value == 1.0


def _correlated_pair(n=200, flips=12, seed=3):
    """b = a with ``flips`` of a's wrong documents made right: a difference of flips/n, strongly paired."""
    a = np.random.default_rng(seed).integers(0, 2, n)
    b = a.copy()
    b[np.flatnonzero(a == 0)[:flips]] = 1
    return a, b


def test_a_paired_difference_excludes_zero_where_unpaired_would_not():
    a, b = _correlated_pair()
    res = paired_bootstrap({"t": a}, {"t": b}, n_boot=4000)["t"]
    assert res.value == pytest.approx(0.06)  # mean(b) - mean(a), not the reverse
    # paired: the differences are 12 ones among 200, sd of the mean ~0.017, so about [0.03, 0.095];
    # resampling a and b independently gives sd ~0.05 and an interval that covers 0
    assert 0.02 < res.low < 0.04 and 0.08 < res.high < 0.10 and not res.covers_zero


def test_the_average_is_unweighted_and_its_interval_stratified():
    a1, b1 = _correlated_pair(n=200, flips=12)
    a2, b2 = np.zeros(50), np.zeros(50)  # a task without any difference
    res = paired_bootstrap({"x": a1, "y": a2}, {"x": b1, "y": b2}, n_boot=4000)
    assert res[AVERAGE].value == pytest.approx((0.06 + 0.0) / 2)  # not 12 / 250
    # task y adds no spread: the average's interval is task x's halved
    assert res[AVERAGE].low == pytest.approx(res["x"].low / 2) and res[AVERAGE].high == pytest.approx(res["x"].high / 2)


def test_bootstrap_is_deterministic_given_the_seed():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=300), rng.normal(size=300)  # metric values: quantiles that move with the draws
    one = paired_bootstrap({"t": a}, {"t": b}, n_boot=1000, seed=7)
    assert one == paired_bootstrap({"t": a}, {"t": b}, n_boot=1000, seed=7)
    assert one != paired_bootstrap({"t": a}, {"t": b}, n_boot=1000, seed=8)


def test_stratified_bootstrap_of_one_run():
    res = stratified_bootstrap({"x": np.array([1, 1, 1, 0]), "y": np.array([0, 1])}, n_boot=2000)
    assert res["x"].value == 0.75 and res[AVERAGE].value == pytest.approx(0.625)
    assert 0.0 <= res[AVERAGE].low < 0.625 < res[AVERAGE].high <= 1.0


def test_misaligned_outcomes_are_refused():
    with pytest.raises(ValueError, match="same documents"):
        paired_bootstrap({"t": np.zeros(3)}, {"t": np.zeros(4)})
    with pytest.raises(ValueError, match="tasks differ"):
        paired_bootstrap({"t": np.zeros(3)}, {"u": np.zeros(3)})
    with pytest.raises(ValueError, match="binary"):
        mcnemar(np.array([0.5, 1]), np.array([1, 1]))
