"""The lm-eval post-processing benchmark runs both ways on a few documents and finds the same results."""

import pytest

from experiments.bench import lm_eval_post

pytestmark = pytest.mark.real  # the tasks read the real benchmark data


def test_the_benchmark_times_both_ways_and_finds_the_same_results(capsys):
    lm_eval_post.main(["--tasks", "quick", "--limit", "5", "--repeats", "2"])
    out = capsys.readouterr().out
    assert "not kept: 15 documents" in out and "kept: 15 documents" in out
    assert "the same results and samples: True" in out
