"""The shared score and masks, checked against a plain element-by-element statement of the rules."""

import pytest
import torch

from kernels.score import (_topk_mask_by_partition, channel_score, quantile_threshold, sorted_scores, threshold_mask,
                           topk_mask, topk_threshold_torch)


def test_score_and_threshold_mask_follow_the_definition():
    torch.manual_seed(0)
    x, scale = torch.randn(3, 10), torch.rand(10) + 0.1
    for r in range(3):
        for i in range(10):
            s = abs(float(x[r, i])) * float(scale[i])
            assert float(channel_score(x, scale)[r, i]) == pytest.approx(s, rel=1e-6)
            assert bool(threshold_mask(x, 0.5, scale)[r, i]) == (s > 0.5)


def test_topk_mask_keeps_the_k_largest_per_row():
    torch.manual_seed(1)
    x, scale = torch.randn(4, 33), torch.rand(33)
    keep = topk_mask(x, 7, scale)
    score = (x.abs() * scale).tolist()
    for r in range(4):
        kept = sorted(i for i in range(33) if keep[r, i])
        assert kept == sorted(sorted(range(33), key=lambda i: -score[r][i])[:7])
    assert topk_mask(x, 33).all() and not topk_mask(x, 0).any()


@pytest.mark.parametrize("rows", [3, 300])  # 300: the rows split across the CPU's threads
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_the_cpu_partition_keeps_the_k_largest_and_leaves_ties_to_topk(rows, dtype):
    """On a CPU a top-k mask comes from numpy's partition: the same channels as the definition's k largest; a row
    tied at its k-th score returns None, and ``topk_mask`` then still keeps exactly k."""
    torch.manual_seed(3)
    x, scale = torch.randn(rows, 50).to(dtype), torch.rand(50)
    score = channel_score(x, scale).float()
    for k in (16, 30, 49):
        fast = _topk_mask_by_partition(score, k)
        want = torch.zeros_like(score, dtype=torch.bool)
        for r in range(rows):
            want[r, sorted(range(50), key=lambda i: -float(score[r, i]))[:k]] = True
        if dtype == torch.float32:  # no ties: the partition's own answer
            assert fast is not None and torch.equal(fast, want), k
        assert torch.equal(topk_mask(x, k, scale), want) or dtype == torch.bfloat16
        assert (topk_mask(x, k, scale).sum(-1) == k).all()
    tied = torch.ones(2, 40)
    assert _topk_mask_by_partition(tied, 20) is None and (topk_mask(tied, 20).sum(-1) == 20).all()


def test_topk_threshold_matches_topk_mask():
    torch.manual_seed(2)
    x, scale = torch.randn(5, 40), torch.rand(40)
    t = topk_threshold_torch(x, 12, scale)
    assert torch.equal(threshold_mask(x, t, scale), topk_mask(x, 12, scale))
    assert (topk_threshold_torch(x, 40) == -1).all()


def test_quantile_threshold_skips_the_level_fraction_and_nothing_at_zero():
    sample = torch.arange(1000.0)  # scores 0..999
    s = sorted_scores(sample)
    assert quantile_threshold(s, 0.25) == 250.0  # 0..250 (251 values) are <= t: the int(level * n)-th smallest
    assert quantile_threshold(s, 0.0) == float("-inf")
    assert quantile_threshold(s, 1.0) == 999.0
    assert (threshold_mask(sample, quantile_threshold(s, 0.0))).all()  # an exact zero is kept at level 0
